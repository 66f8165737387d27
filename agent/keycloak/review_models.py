"""Typed values of the access-review reads: the realm's grants in one export (or the plugin pack's structure),
the plugin's users and memberships, login events. Built from Keycloak's JSON once, as in models.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from agent.keycloak.models import Client, Group, Role, User


def _role_names_by_client(raw: Any) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        return MappingProxyType({})
    return MappingProxyType({str(client): tuple(str(name) for name in names or ()) for client, names in raw.items()})


@dataclass(frozen=True)
class ExportedRole:
    """A realm role (`client` None) or client role (`client` = its human clientId) with its direct composites."""

    role: Role
    client: str | None
    composite_realm_roles: tuple[str, ...] = ()
    composite_client_roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], client: str | None) -> ExportedRole:
        composites = raw.get("composites") or {}
        return cls(
            role=Role.from_json(raw),
            client=client,
            composite_realm_roles=tuple(str(name) for name in composites.get("realm") or ()),
            composite_client_roles=_role_names_by_client(composites.get("client")),
        )


@dataclass(frozen=True)
class ExportedUser:
    """A user the partial export carries (service accounts only), with its direct grants by name."""

    user: User
    realm_roles: tuple[str, ...] = ()
    client_roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    groups: tuple[str, ...] = ()  # group paths

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ExportedUser:
        return cls(
            user=User.from_json(raw),
            realm_roles=tuple(str(name) for name in raw.get("realmRoles") or ()),
            client_roles=_role_names_by_client(raw.get("clientRoles")),
            groups=tuple(str(path) for path in raw.get("groups") or ()),
        )


@dataclass(frozen=True)
class AccessExport:
    """What one partial export says about access: roles with composites, the group tree with its grants,
    clients (id <-> clientId) and the service-account users (the user listing leaves them out)."""

    roles: tuple[ExportedRole, ...]
    groups: tuple[Group, ...]
    clients: tuple[Client, ...]
    service_accounts: tuple[ExportedUser, ...]
    default_role: str | None = None  # the realm's default role (default-roles-<realm>), given to new users


OTP_CREDENTIAL = "otp"


@dataclass(frozen=True)
class PluginAccess:
    """What the idp-agent plugin's access endpoints answer: every person (service accounts aside,
    as in the user listing) with the types of their stored credentials, and the users each role (by id) is
    mapped on directly and each group (by id) holds directly."""

    users: tuple[User, ...]
    credential_types: Mapping[str, frozenset[str]]
    role_members: Mapping[str, tuple[str, ...]]
    group_members: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PluginAccess:
        listed = raw.get("users") or ()
        # The full listing's `totp` says whether an OTP credential is configured; the types say the same.
        types = {str(user["id"]): frozenset(map(str, user.get("credentialTypes") or ())) for user in listed}
        return cls(
            users=tuple(User.from_json({**user, "totp": OTP_CREDENTIAL in types[str(user["id"])]}) for user in listed),
            credential_types=MappingProxyType(types),
            role_members=_members(raw.get("roles")),
            group_members=_members(raw.get("groups")),
        )


def _members(raw: Mapping[str, Any] | None) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({str(key): tuple(map(str, ids or ())) for key, ids in (raw or {}).items()})


@dataclass(frozen=True)
class LoginEvent:
    """A LOGIN or LOGIN_ERROR event: `time_ms` is Keycloak's epoch milliseconds. No IP address or details are
    kept (personal data the review does not need)."""

    id: str
    time_ms: int
    type: str
    user_id: str | None
    client_id: str | None
    error: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LoginEvent:
        return cls(
            id=str(raw.get("id") or ""),
            time_ms=int(raw.get("time") or 0),
            type=str(raw.get("type") or ""),
            user_id=raw.get("userId"),
            client_id=raw.get("clientId"),
            error=raw.get("error"),
        )
