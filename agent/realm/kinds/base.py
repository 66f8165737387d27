"""What every kind shares: the interface, ownership marks, protected built-ins, secret fingerprints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.keycloak import KeycloakGateway
from agent.keycloak.models import default_role_name

if TYPE_CHECKING:
    from agent.realm.live import LiveReader
from agent.realm.plan import Change
from agent.realm.spec import ManageMode, RealmSpec
from agent.secrets import Secret

# Set on objects the agent created (roles, groups, clients, client scopes carry attributes).
OWNER_ATTRIBUTE = "idp-agent.managed"
# Realm attributes holding salted hashes of secrets the agent wrote: changes are detected, values not kept.
FINGERPRINT_PREFIX = "idp-agent.fingerprint."


@dataclass(frozen=True)
class LiveRealm:
    """The realm as read before planning; `representation` is empty when the realm does not exist yet."""

    name: str
    exists: bool
    id: str
    representation: Mapping[str, Any]

    @property
    def attributes(self) -> Mapping[str, str]:
        raw = self.representation.get("attributes") or {}
        return {str(k): str(v) for k, v in raw.items()}

    def fingerprint(self, name: str) -> str | None:
        return self.attributes.get(FINGERPRINT_PREFIX + name)


def secret_changed(live: LiveRealm, name: str, secret: Secret) -> bool:
    """True when `secret` differs from what the agent last wrote (or nothing was recorded)."""
    recorded = live.fingerprint(name)
    return recorded is None or not live.exists or recorded != secret.fingerprint(live.id.encode())


def fingerprint_attributes(realm_id: str, secrets: Mapping[str, Secret]) -> dict[str, str]:
    """Realm attributes recording salted hashes (salt: the realm's random id) of secrets just written."""
    return {FINGERPRINT_PREFIX + name: secret.fingerprint(realm_id.encode()) for name, secret in secrets.items()}


def is_owned(attributes: Mapping[str, Any]) -> bool:
    value = attributes.get(OWNER_ATTRIBUTE)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return str(value).lower() == "true"


def may_delete(mode: ManageMode, *, owned: bool, protected: bool) -> bool:
    """Delete only what we own, unless the kind is declared fully managed; never built-ins."""
    if protected or mode == "no-delete":
        return False
    return mode == "full" or owned


class Kind(Protocol):
    """A kind of realm object: read the live side, plan (pure), apply one change."""

    name: str

    def read(self, live: LiveReader) -> Any: ...

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: Any) -> list[Change]: ...

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None: ...


BUILT_IN_ROLES = frozenset({"offline_access", "uma_authorization"})
BUILT_IN_CLIENTS = frozenset(
    {"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"}
)
BUILT_IN_CLIENT_SCOPES = frozenset(
    {
        "AuthnContextClassRef", "acr", "address", "basic", "email", "microprofile-jwt", "offline_access",
        "organization", "phone",
        "profile", "role_list", "roles", "saml_organization", "service_account", "web-origins",
    }
)  # fmt: skip
# The agent's own service-account clients are never deleted or changed unless written explicitly.
AGENT_CLIENT_PREFIX = "idp-agent-"


def is_protected_role(realm: str, name: str) -> bool:
    return name in BUILT_IN_ROLES or name == default_role_name(realm)


def is_protected_client(client_id: str) -> bool:
    return client_id in BUILT_IN_CLIENTS or client_id.startswith(AGENT_CLIENT_PREFIX)
