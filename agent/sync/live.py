"""What the sync reads from Keycloak before planning: the users it manages and every account's names.

One plain listing of full representations gives both: the users this sync manages are kept whole (their
attributes hold the sync's bookkeeping), every other account only by its names. A search by attribute
(`q=`, full representations too) plus a separate brief listing of everyone cost more, for the same data.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agent.errors import ConfigError
from agent.keycloak import User, UserDraft
from agent.keycloak.models import UserProfileConfig
from agent.sync.grants import GrantRecord
from agent.sync.model import DISABLED_BY_SYNC_ATTRIBUTE, EXTERNAL_ID_ATTRIBUTE, GRANTS_ATTRIBUTE, SOURCE_ATTRIBUTE
from agent.sync.plan import LiveUser

# The sync's bookkeeping on each user: whoever can edit it decides whether the sync manages the account.
BOOKKEEPING_ATTRIBUTES = (SOURCE_ATTRIBUTE, EXTERNAL_ID_ATTRIBUTE, GRANTS_ATTRIBUTE, DISABLED_BY_SYNC_ATTRIBUTE)
# Users per listing request. Keycloak's cost per user of a full listing grows with the page above a few
# hundred (5,000 users: about the same time in pages of 50 to 250, 2.5x in pages of 1,000, more beyond).
LISTING_PAGE_SIZE = 200


@dataclass(frozen=True)
class LiveDirectory:
    managed: tuple[LiveUser, ...]
    all_users: tuple[User, ...]

    def by_user_id(self) -> dict[str, User]:
        return {live.user.id: live.user for live in self.managed}


def check_profile_keeps_attributes(realm: str, profile: UserProfileConfig, attribute_names: Iterable[str]) -> None:
    """Fail before any write when the realm's user profile would drop the attributes the sync writes, or lets
    users edit its bookkeeping (see `attribute_problems`)."""
    problems = attribute_problems(profile, attribute_names)
    if problems:
        raise ConfigError(
            f"realm '{realm}' {'; and '.join(problems)}",
            hint="set `user_profile: {unmanaged_attributes: admin_edit}` in its realm-config and apply it",
        )


def attribute_problems(profile: UserProfileConfig, attribute_names: Iterable[str]) -> list[str]:
    """What the realm's user profile does wrong to the attributes the sync writes: drops them (an unmanaged
    attribute is kept only where admins may edit it), or lets users edit its bookkeeping from the account
    console (`ENABLED`, or declared so): a user who removes their source or changes their id is then no
    longer the sync's, and is never disabled when they leave."""
    declared = {str(attribute.get("name")): attribute for attribute in profile.attributes}
    policy = profile.unmanaged_attribute_policy
    dropped = sorted(
        name for name in set(attribute_names) | set(BOOKKEEPING_ATTRIBUTES)
        if name not in declared and policy not in {"ENABLED", "ADMIN_EDIT"}
    )  # fmt: skip
    editable = [
        name for name in BOOKKEEPING_ATTRIBUTES
        if (name in declared and _users_edit(declared[name])) or (name not in declared and policy == "ENABLED")
    ]  # fmt: skip
    problems: list[str] = []
    if dropped:
        problems.append(f"would silently drop the attributes the sync writes ({', '.join(dropped[:5])}...)")
    if editable:
        problems.append(f"lets users edit the sync's bookkeeping ({', '.join(editable)}) from the account console")
    return problems


def _users_edit(attribute: Mapping[str, Any]) -> bool:
    permissions = attribute.get("permissions")
    edit = permissions.get("edit") if isinstance(permissions, Mapping) else None
    return isinstance(edit, list) and "user" in edit


def split_directory(
    raw_users: Iterable[Mapping[str, Any]], source: str
) -> tuple[tuple[LiveUser, ...], tuple[User, ...]]:
    """(users this sync manages, every user) from raw full representations; the managed ones are the same
    objects in both. Other accounts keep only what the planner needs of them: names and state."""
    managed: list[LiveUser] = []
    everyone: list[User] = []
    shared = _Interner()
    for raw in raw_users:
        if is_managed(raw, source):
            user = managed_user(raw, shared)
            managed.append(shared.live_user(user))
        else:
            user = name_only_user(raw)
        everyone.append(user)
    return tuple(managed), tuple(everyone)


def is_managed(raw: Mapping[str, Any], source: str) -> bool:
    attributes = raw.get("attributes")
    if not isinstance(attributes, Mapping):
        return False
    sources: Sequence[Any] = attributes.get(SOURCE_ATTRIBUTE) or ()
    return bool(sources) and sources[0] == source and bool(attributes.get(EXTERNAL_ID_ATTRIBUTE))


class _Interner:
    """One copy of each repeated value (source name, department, grant sets) across 100k users."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._records: dict[str | None, GrantRecord] = {}

    def values(self, raw: Iterable[Any]) -> tuple[str, ...]:
        given = tuple(raw or ())
        found = self._values.get(given)  # text values, seen before: as they are (most are)
        if found is None:
            values = tuple(sys.intern(str(value)) for value in given)
            found = self._values.setdefault(values, values)
        return found

    def live_user(self, user: User) -> LiveUser:
        """LiveUser.from_user, with one record per distinct recorded text (six sets each, per user)."""
        text = _first(user.attributes.get(GRANTS_ATTRIBUTE))
        record = self._records.get(text)
        if record is None:
            record = self._records[text] = GrantRecord.from_json(text)
        return LiveUser(
            user=user,
            external_id=_first(user.attributes.get(EXTERNAL_ID_ATTRIBUTE)) or "",
            recorded_grants=record.given,
            disabled_by_sync=_first(user.attributes.get(DISABLED_BY_SYNC_ATTRIBUTE)),
            found_held=record.held,
        )


def _first(values: tuple[str, ...] | None) -> str | None:
    return values[0] if values else None


def managed_user(raw: Mapping[str, Any], shared: _Interner) -> User:
    """A managed user with what the planner and the executor read (and write back whole: all attributes)."""
    raw_attributes = raw.get("attributes") or {}
    attributes = {sys.intern(str(key)): shared.values(values) for key, values in raw_attributes.items()}
    return User(
        id=str(raw["id"]),
        username=str(raw["username"]),
        enabled=bool(raw.get("enabled", False)),
        email=raw.get("email"),
        first_name=raw.get("firstName"),
        last_name=raw.get("lastName"),
        email_verified=bool(raw.get("emailVerified", False)),
        attributes=MappingProxyType(attributes),
        required_actions=shared.values(raw.get("requiredActions") or ()),
        federation_link=raw.get("federationLink"),
        service_account_client_id=raw.get("serviceAccountClientId"),
    )


def name_only_user(raw: Mapping[str, Any]) -> User:
    """Another account: only its names matter (a joiner never takes them), not its attributes."""
    return User(
        id=str(raw["id"]),
        username=str(raw["username"]),
        enabled=bool(raw.get("enabled", False)),
        email=raw.get("email"),
        service_account_client_id=raw.get("serviceAccountClientId"),
    )


def full_representation(user: User) -> dict[str, Any]:
    """The user as a whole PUT body (every profile field and attribute), from what the listing gave.

    Keycloak's PUT replaces the profile (names, email, attributes) with what it is sent; fields the
    listing does not carry (credentials, timestamps) are not part of a PUT. The listing's copy is as fresh
    as the plan that decided the change, so no read is needed before writing.
    """
    profile = UserDraft(
        user.username,
        enabled=user.enabled,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        email_verified=user.email_verified,
        attributes=user.attributes,
        required_actions=user.required_actions,
    )
    return {"id": user.id, **profile.to_json()}
