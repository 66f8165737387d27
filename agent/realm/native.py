"""Keycloak's own realm representation (an admin-console export, or a live read) as friendly config keys.

Used to adopt a running realm (`idp-agent export`) and to accept native JSON exports as input. Keys that
have a friendly form are translated; realm fields without one are kept under `keycloak:` as written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from agent.realm.kinds.realm_settings import (
    EVENT_FIELDS,
    OTP_FIELDS,
    REGISTRATION_FIELDS,
    SESSION_FIELDS,
    WEBAUTHN_FIELDS,
)
from agent.realm.password_policy import parse_password_policy

# Realm fields that are ids, server-managed, or handled by a kind of their own: never copied as-is.
NOT_COPIED = frozenset(
    {
        "id", "realm", "notBefore", "defaultRole", "roles", "groups", "users", "clients", "clientScopes",
        "identityProviders", "identityProviderMappers", "components", "authenticationFlows",
        "authenticatorConfig", "requiredActions", "scopeMappings", "clientScopeMappings", "federatedUsers",
        "keycloakVersion", "userManagedAccessAllowed", "defaultDefaultClientScopes", "defaultOptionalClientScopes",
        "attributes", "smtpServer", "passwordPolicy", "defaultGroups", "browserFlow", "registrationFlow",
        "directGrantFlow", "resetCredentialsFlow", "clientAuthenticationFlow", "dockerAuthenticationFlow",
        "firstBrokerLoginFlow", "clientPolicies", "clientProfiles", "localizationTexts", "organizations",
    }
)  # fmt: skip


def _section(representation: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, Any]:
    return {friendly: representation[name] for friendly, name in table.items() if name in representation}


def _walk_groups(groups: list[Mapping[str, Any]], parent: str = "") -> Iterator[dict[str, Any]]:
    for group in groups:
        path = f"{parent}/{group['name']}"
        entry: dict[str, Any] = {"path": path}
        if group.get("attributes"):
            entry["attributes"] = dict(group["attributes"])
        if group.get("realmRoles"):
            entry["realm_roles"] = list(group["realmRoles"])
        if group.get("clientRoles"):
            entry["client_roles"] = {k: list(v) for k, v in group["clientRoles"].items()}
        yield entry
        yield from _walk_groups(list(group.get("subGroups") or ()), path)


def _roles(representation: Mapping[str, Any]) -> list[dict[str, Any]]:
    realm = str(representation.get("realm", ""))
    roles = []
    for role in (representation.get("roles") or {}).get("realm") or ():
        if role["name"] in {"offline_access", "uma_authorization", f"default-roles-{realm}"}:
            continue
        entry: dict[str, Any] = {"name": role["name"]}
        if role.get("description"):
            entry["description"] = role["description"]
        if role.get("attributes"):
            entry["attributes"] = dict(role["attributes"])
        roles.append(entry)
    return roles


def friendly_from_representation(representation: Mapping[str, Any]) -> dict[str, Any]:
    """Friendly config data for a realm representation (secrets are never carried over)."""
    friendly: dict[str, Any] = {"realm": representation["realm"]}
    for key, name in (("display_name", "displayName"), ("display_name_html", "displayNameHtml")):
        if representation.get(name):
            friendly[key] = representation[name]
    for key, table in (
        ("registration", REGISTRATION_FIELDS),
        ("sessions", SESSION_FIELDS),
        ("events", EVENT_FIELDS),
        ("otp_policy", OTP_FIELDS),
        ("webauthn_policy", WEBAUTHN_FIELDS),
    ):
        section = _section(representation, table)
        if section:
            friendly[key] = section
    if representation.get("passwordPolicy"):
        spec = parse_password_policy(str(representation["passwordPolicy"]))
        friendly["password_policy"] = spec.model_dump(exclude_none=True, exclude_defaults=True, mode="json")
    roles = _roles(representation)
    if roles:
        friendly["roles"] = roles
    groups = list(_walk_groups(list(representation.get("groups") or ())))
    if groups:
        friendly["groups"] = groups
    rest = {key: value for key, value in representation.items() if key not in NOT_COPIED}
    for table in (REGISTRATION_FIELDS, SESSION_FIELDS, EVENT_FIELDS, OTP_FIELDS, WEBAUTHN_FIELDS):
        for name in table.values():
            rest.pop(name, None)
    rest.pop("displayName", None)
    rest.pop("displayNameHtml", None)
    if rest:
        friendly["keycloak"] = rest
    return friendly
