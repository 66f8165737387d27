"""Typed values the gateway returns: plain nouns for live Keycloak state, built from its JSON once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Attributes = Mapping[str, tuple[str, ...]]


def _attributes(raw: Any) -> Attributes:
    if not isinstance(raw, Mapping):
        return MappingProxyType({})
    return MappingProxyType({str(key): tuple(str(v) for v in values or ()) for key, values in raw.items()})


def _frozen(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(raw))


@dataclass(frozen=True)
class Realm:
    """A realm: its name, and Keycloak's own representation of its settings (read-only)."""

    name: str
    id: str
    enabled: bool
    representation: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Realm:
        return cls(str(raw["realm"]), str(raw.get("id", "")), bool(raw.get("enabled", True)), _frozen(raw))


@dataclass(frozen=True)
class RealmOutline:
    """What a sync reads of a realm before it plans: its representation (the settings `get_realm` gives), its
    groups (parents before children), its realm roles, its required actions and its user profile."""

    settings: Mapping[str, Any] = field(repr=False)
    groups: tuple[Group, ...]
    realm_roles: tuple[Role, ...]
    required_actions: tuple[RequiredAction, ...]
    user_profile: UserProfileConfig


def default_role_name(realm: str) -> str:
    """The name Keycloak gives a new realm's default role: `default-roles-` and the realm name in lower case
    (realm Acme has default-roles-acme). A realm renamed since keeps its first name's role: where the realm
    exists, its representation's `defaultRole` is the truth."""
    return f"default-roles-{realm.lower()}"


def stored_by_keycloak(user_id: str) -> bool:
    """Whether Keycloak stores the user. A federation that does not import its users lists them with ids
    `f:<federation id>:<id in the directory>`: Keycloak refuses their required actions, attributes and enabled
    flag as read only, and makes up their creation time when it reads them."""
    return not user_id.startswith("f:")


@dataclass(frozen=True)
class User:
    id: str
    username: str
    enabled: bool
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email_verified: bool = False
    attributes: Attributes = field(default_factory=lambda: MappingProxyType({}))
    required_actions: tuple[str, ...] = ()
    federation_link: str | None = None
    service_account_client_id: str | None = None
    created_timestamp: int | None = None
    # Only the full representation says whether OTP is configured; None means "not read".
    totp: bool | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> User:
        return cls(
            id=str(raw["id"]),
            username=str(raw["username"]),
            enabled=bool(raw.get("enabled", False)),
            email=raw.get("email"),
            first_name=raw.get("firstName"),
            last_name=raw.get("lastName"),
            email_verified=bool(raw.get("emailVerified", False)),
            attributes=_attributes(raw.get("attributes")),
            required_actions=tuple(raw.get("requiredActions") or ()),
            federation_link=raw.get("federationLink"),
            service_account_client_id=raw.get("serviceAccountClientId"),
            created_timestamp=raw.get("createdTimestamp"),
            totp=raw.get("totp"),
        )


@dataclass(frozen=True)
class UserDraft:
    """A user to create. Attributes are written whole; required actions are added as given."""

    username: str
    enabled: bool = True
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email_verified: bool = False
    attributes: Attributes = field(default_factory=lambda: MappingProxyType({}))
    required_actions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "username": self.username,
            "enabled": self.enabled,
            "emailVerified": self.email_verified,
            "attributes": {key: list(values) for key, values in self.attributes.items()},
            "requiredActions": list(self.required_actions),
        }
        for key, value in (("email", self.email), ("firstName", self.first_name), ("lastName", self.last_name)):
            if value is not None:
                body[key] = value
        return body


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    description: str | None = None
    composite: bool = False
    client_role: bool = False
    container_id: str | None = None
    attributes: Attributes = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Role:
        return cls(
            id=str(raw["id"]),
            name=str(raw["name"]),
            description=raw.get("description"),
            composite=bool(raw.get("composite", False)),
            client_role=bool(raw.get("clientRole", False)),
            container_id=raw.get("containerId"),
            attributes=_attributes(raw.get("attributes")),
        )


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    path: str
    parent_id: str | None = None
    sub_group_count: int = 0
    attributes: Attributes = field(default_factory=lambda: MappingProxyType({}))
    realm_roles: tuple[str, ...] = ()
    client_roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Group:
        client_roles = raw.get("clientRoles") or {}
        return cls(
            id=str(raw["id"]),
            name=str(raw["name"]),
            path=str(raw.get("path", "/" + str(raw["name"]))),
            parent_id=raw.get("parentId"),
            sub_group_count=int(raw.get("subGroupCount", 0) or 0),
            attributes=_attributes(raw.get("attributes")),
            realm_roles=tuple(raw.get("realmRoles") or ()),
            client_roles=MappingProxyType({k: tuple(v) for k, v in client_roles.items()}),
        )


@dataclass(frozen=True)
class Client:
    """A client; `representation` keeps Keycloak's full form for the fields we do not model."""

    id: str
    client_id: str
    enabled: bool
    public_client: bool
    service_accounts_enabled: bool
    representation: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Client:
        return cls(
            id=str(raw["id"]),
            client_id=str(raw["clientId"]),
            enabled=bool(raw.get("enabled", True)),
            public_client=bool(raw.get("publicClient", False)),
            service_accounts_enabled=bool(raw.get("serviceAccountsEnabled", False)),
            representation=_frozen({k: v for k, v in raw.items() if k != "secret"}),
        )


# -- clients, client scopes, protocol mappers (realm as code) -------------------------------------


def _string_map(raw: Any) -> Mapping[str, str]:
    if not isinstance(raw, Mapping):
        return MappingProxyType({})
    return MappingProxyType({str(key): str(value) for key, value in raw.items() if value is not None})


@dataclass(frozen=True)
class ProtocolMapper:
    """A token mapper of a client or client scope; `mapper` is Keycloak's `protocolMapper` type id."""

    id: str
    name: str
    protocol: str
    mapper: str
    config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ProtocolMapper:
        return cls(
            id=str(raw.get("id", "")),
            name=str(raw["name"]),
            protocol=str(raw.get("protocol") or "openid-connect"),
            mapper=str(raw.get("protocolMapper", "")),
            config=_string_map(raw.get("config")),
        )


def protocol_mappers_from_json(raw: Any) -> tuple[ProtocolMapper, ...]:
    """The `protocolMappers` list of a client or client scope representation."""
    return tuple(ProtocolMapper.from_json(item) for item in raw or ())


@dataclass(frozen=True)
class ClientScope:
    id: str
    name: str
    protocol: str
    description: str | None = None
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    protocol_mappers: tuple[ProtocolMapper, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ClientScope:
        return cls(
            id=str(raw["id"]),
            name=str(raw["name"]),
            protocol=str(raw.get("protocol") or "openid-connect"),
            description=raw.get("description"),
            attributes=_string_map(raw.get("attributes")),
            protocol_mappers=protocol_mappers_from_json(raw.get("protocolMappers")),
        )


# -- user profile and components (LDAP federation) ------------------------------------------------

USER_STORAGE_PROVIDER = "org.keycloak.storage.UserStorageProvider"
LDAP_MAPPER_PROVIDER = "org.keycloak.storage.ldap.mappers.LDAPStorageMapper"


def _component_config(raw: Any) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        return MappingProxyType({})
    return MappingProxyType({str(key): tuple(str(v) for v in values or ()) for key, values in raw.items()})


@dataclass(frozen=True)
class Component:
    """A Keycloak component (a user federation, an LDAP mapper, ...): config values are lists of strings.

    Secrets in `config` read back masked (`**********`); sending the mask back keeps the stored value.
    """

    id: str
    name: str
    provider_id: str
    provider_type: str
    parent_id: str | None = None
    sub_type: str | None = None
    config: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Component:
        return cls(
            id=str(raw["id"]),
            name=str(raw.get("name", "")),
            provider_id=str(raw.get("providerId", "")),
            provider_type=str(raw.get("providerType", "")),
            parent_id=raw.get("parentId"),
            sub_type=raw.get("subType"),
            config=_component_config(raw.get("config")),
        )


@dataclass(frozen=True)
class SyncResult:
    """What a user-storage sync did, as Keycloak counts it."""

    added: int
    updated: int
    removed: int
    failed: int
    ignored: bool
    status: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SyncResult:
        return cls(
            added=int(raw.get("added", 0) or 0),
            updated=int(raw.get("updated", 0) or 0),
            removed=int(raw.get("removed", 0) or 0),
            failed=int(raw.get("failed", 0) or 0),
            ignored=bool(raw.get("ignored", False)),
            status=str(raw.get("status", "")),
        )


@dataclass(frozen=True)
class ConnectionCheck:
    """The answer of Keycloak's own LDAP connection test: `detail` is Keycloak's reason when not ok."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class UserProfileConfig:
    """The realm's declarative user profile (Keycloak's UPConfig), in Keycloak's own shape.

    Attributes and groups stay Keycloak's JSON objects (read them, do not mutate them); a policy of None
    means unmanaged attributes are disabled.
    """

    attributes: tuple[Mapping[str, Any], ...]
    groups: tuple[Mapping[str, Any], ...] = ()
    unmanaged_attribute_policy: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> UserProfileConfig:
        return cls(
            attributes=tuple(dict(attribute) for attribute in raw.get("attributes") or ()),
            groups=tuple(dict(group) for group in raw.get("groups") or ()),
            unmanaged_attribute_policy=raw.get("unmanagedAttributePolicy"),
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "attributes": [dict(attribute) for attribute in self.attributes],
            "groups": [dict(group) for group in self.groups],
        }
        if self.unmanaged_attribute_policy is not None:
            body["unmanagedAttributePolicy"] = self.unmanaged_attribute_policy
        return body


# -- authentication: required actions and flows -------------------------------------------------


@dataclass(frozen=True)
class RequiredAction:
    """A required action registered in a realm; lower `priority` runs first."""

    alias: str
    name: str
    provider_id: str
    enabled: bool
    default_action: bool
    priority: int
    config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RequiredAction:
        return cls(
            alias=str(raw.get("alias") or raw.get("providerId") or ""),
            name=str(raw.get("name") or ""),
            provider_id=str(raw.get("providerId") or raw.get("alias") or ""),
            enabled=bool(raw.get("enabled", False)),
            default_action=bool(raw.get("defaultAction", False)),
            priority=int(raw.get("priority") or 0),
            config=MappingProxyType({str(k): str(v) for k, v in (raw.get("config") or {}).items()}),
        )


@dataclass(frozen=True)
class RequiredActionProvider:
    """A required-action provider installed in Keycloak but not registered in the realm."""

    provider_id: str
    name: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RequiredActionProvider:
        return cls(str(raw["providerId"]), str(raw.get("name") or raw["providerId"]))


@dataclass(frozen=True)
class AuthFlow:
    """A top-level authentication flow."""

    id: str
    alias: str
    provider_id: str
    built_in: bool
    description: str = ""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AuthFlow:
        return cls(
            id=str(raw["id"]),
            alias=str(raw["alias"]),
            provider_id=str(raw.get("providerId") or "basic-flow"),
            built_in=bool(raw.get("builtIn", False)),
            description=str(raw.get("description") or ""),
        )


@dataclass(frozen=True)
class FlowExecution:
    """One row of a flow's flattened execution list: an authenticator, or a sub-flow when `flow_id` is set.

    `level` is the depth below the listed flow; rows come parents first, in execution order.
    """

    id: str
    level: int
    index: int
    requirement: str
    display_name: str
    provider_id: str | None
    flow_id: str | None
    config_id: str | None
    priority: int
    representation: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FlowExecution:
        return cls(
            id=str(raw["id"]),
            level=int(raw.get("level") or 0),
            index=int(raw.get("index") or 0),
            requirement=str(raw.get("requirement") or "DISABLED"),
            display_name=str(raw.get("displayName") or ""),
            provider_id=raw.get("providerId"),
            flow_id=raw.get("flowId") if raw.get("authenticationFlow") else None,
            config_id=raw.get("authenticationConfig"),
            priority=int(raw.get("priority") or 0),
            representation=_frozen(raw),
        )


@dataclass(frozen=True)
class ImportedUser:
    """One user of a partialImport answer: ADDED (created now) or SKIPPED (the username existed)."""

    username: str
    id: str
    action: str


@dataclass(frozen=True)
class DirectAccess:
    """What a user holds themselves, not through a group or a composite role: group memberships (paths), realm
    role names, client roles as (clientId, role name)."""

    groups: frozenset[str] = frozenset()
    realm_roles: frozenset[str] = frozenset()
    client_roles: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class UserChange:
    """What to change of one user, naming only what changes (the idp-agent plugin's `users/changes`): profile
    fields (None clears one), attributes (None removes one), groups by id, realm roles by name, client roles as
    (client id, role name), and whether to end the user's sessions, consents and offline tokens."""

    user_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, list[str] | None] = field(default_factory=dict)
    join_groups: tuple[str, ...] = ()
    leave_groups: tuple[str, ...] = ()
    grant_realm_roles: tuple[str, ...] = ()
    revoke_realm_roles: tuple[str, ...] = ()
    grant_client_roles: tuple[tuple[str, str], ...] = ()
    revoke_client_roles: tuple[tuple[str, str], ...] = ()
    end_sessions: bool = False

    def body(self) -> dict[str, Any]:
        """The change as the plugin reads it."""

        def client_roles(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
            return [{"client": client, "role": role} for client, role in pairs]

        return {
            "id": self.user_id,
            "fields": dict(self.fields),
            "attributes": dict(self.attributes),
            "joinGroups": list(self.join_groups),
            "leaveGroups": list(self.leave_groups),
            "grantRealmRoles": list(self.grant_realm_roles),
            "revokeRealmRoles": list(self.revoke_realm_roles),
            "grantClientRoles": client_roles(self.grant_client_roles),
            "revokeClientRoles": client_roles(self.revoke_client_roles),
            "endSessions": self.end_sessions,
        }
