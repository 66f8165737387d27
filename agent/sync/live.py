"""What the sync reads from Keycloak before planning: the users it manages and every account's names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.errors import ConfigError
from agent.keycloak import KeycloakGateway, User
from agent.sync.model import SOURCE_ATTRIBUTE
from agent.sync.plan import LiveUser, managed_live_users

# Unmanaged attributes must be kept for admins, or Keycloak silently drops the sync's bookkeeping.
KEEPS_ATTRIBUTES = frozenset({"ENABLED", "ADMIN_EDIT"})


@dataclass(frozen=True)
class LiveDirectory:
    managed: tuple[LiveUser, ...]
    all_users: tuple[User, ...]
    usernames_editable: bool = True

    def by_user_id(self) -> dict[str, User]:
        return {live.user.id: live.user for live in self.managed}


def check_realm_keeps_attributes(gateway: KeycloakGateway, realm: str, attribute_names: Iterable[str]) -> None:
    """Fail before any write when the user profile would drop the attributes the sync writes."""
    profile = gateway.get_user_profile(realm)
    declared = {str(attribute.get("name")) for attribute in profile.attributes}
    if profile.unmanaged_attribute_policy in KEEPS_ATTRIBUTES:
        return
    missing = sorted(set(attribute_names) - declared)
    raise ConfigError(
        f"realm '{realm}' would silently drop the attributes the sync writes ({', '.join(missing[:5])}...)",
        hint="set `user_profile: {unmanaged_attributes: admin_edit}` in its realm-config and apply it",
    )


def read_live_directory(gateway: KeycloakGateway, realm: str, source: str) -> LiveDirectory:
    """Managed users in full (their attributes hold the sync's bookkeeping); everyone else brief, for names."""
    managed = managed_live_users(gateway.list_users_with_attribute(realm, SOURCE_ATTRIBUTE, source), source)
    live_realm = gateway.get_realm(realm)
    editable = bool(live_realm and live_realm.representation.get("editUsernameAllowed"))
    return LiveDirectory(tuple(managed), tuple(gateway.list_users(realm)), editable)
