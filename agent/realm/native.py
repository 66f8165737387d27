"""Keycloak's own realm representation (an admin-console export, or a live read) as friendly config keys.

Used to adopt a running realm (`idp-agent export`) and to accept native JSON exports as input. Keys that
have a friendly form are translated; realm fields without one are kept under `keycloak:` as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from agent.keycloak.models import LDAP_MAPPER_PROVIDER, USER_STORAGE_PROVIDER, default_role_name
from agent.realm.kinds.base import is_protected_client
from agent.realm.kinds.client_scopes import INCLUDE_IN_TOKEN_SCOPE, is_protected_scope
from agent.realm.kinds.clients import (
    CLIENT_FIELDS,
    OIDC,
    PKCE_METHOD,
    POST_LOGOUT_REDIRECT_URIS,
    URI_SEPARATOR,
)
from agent.realm.kinds.ldap_federation import BIND_CREDENTIAL, FEDERATION_FIELDS, LDAP_PROVIDER, friendly_value
from agent.realm.kinds.protocol_mappers import USER_ATTRIBUTE_MAPPER
from agent.realm.kinds.realm_settings import (
    EVENT_FIELDS,
    OTP_FIELDS,
    REGISTRATION_FIELDS,
    SESSION_FIELDS,
    WEBAUTHN_FIELDS,
)
from agent.realm.kinds.user_profile import UNMANAGED_POLICIES
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
        if role["name"] in {"offline_access", "uma_authorization", default_role_name(realm)}:
            continue
        entry: dict[str, Any] = {"name": role["name"]}
        if role.get("description"):
            entry["description"] = role["description"]
        if role.get("attributes"):
            entry["attributes"] = dict(role["attributes"])
        roles.append(entry)
    return roles


class EnvReference(str):
    """A `${env:...}` reference this module writes in place of a secret; every other `${` is data."""

    __slots__ = ()


def escape_data(value: Any) -> Any:
    """Plain data with every `${` from Keycloak (message keys such as `${username}`) written as `$${`,
    so the loader reads it back as text; the references this module wrote stay references."""
    if isinstance(value, EnvReference):
        return str(value)
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, Mapping):
        return {key: escape_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escape_data(item) for item in value]
    return value


def friendly_from_representation(representation: Mapping[str, Any]) -> dict[str, Any]:
    """Friendly config data for a realm representation (secrets are never carried over), ready to be
    written as YAML: data strings escaped, secret references left as references."""
    return dict(escape_data(_friendly(representation)))


def _friendly(representation: Mapping[str, Any]) -> dict[str, Any]:
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
    marker_roles = _mfa_group_roles(representation)
    roles = [role for role in _roles(representation) if role["name"] not in marker_roles]
    if roles:
        friendly["roles"] = roles
    groups = [_without_roles(group, marker_roles) for group in _walk_groups(list(representation.get("groups") or ()))]
    if groups:
        friendly["groups"] = groups
    mfa = _mfa(representation, marker_roles, groups)
    if mfa is not None:
        friendly["mfa"] = mfa
    friendly.update(friendly_federation_and_profile(representation))
    friendly.update(friendly_clients_and_scopes(representation))
    rest = {key: value for key, value in representation.items() if key not in NOT_COPIED}
    for table in (REGISTRATION_FIELDS, SESSION_FIELDS, EVENT_FIELDS, OTP_FIELDS, WEBAUTHN_FIELDS):
        for name in table.values():
            rest.pop(name, None)
    rest.pop("displayName", None)
    rest.pop("displayNameHtml", None)
    if rest:
        friendly["keycloak"] = rest
    return friendly


# -- clients, client scopes, client roles ----------------------------------------------------------

# Attributes Keycloak sets itself (secret timestamps, realm_client) or the agent's bookkeeping: not config.
SERVER_ATTRIBUTE_PREFIXES = ("client.secret.", "realm_client", "idp-agent.")
USER_ATTRIBUTE_CONFIG = frozenset(
    {"user.attribute", "claim.name", "jsonType.label", "multivalued", "id.token.claim", "access.token.claim",
     "userinfo.token.claim"}
)  # fmt: skip
JSON_TYPES = frozenset({"String", "long", "int", "boolean", "JSON"})
SCOPE_LISTS = {"default_client_scopes": "defaultClientScopes", "optional_client_scopes": "optionalClientScopes"}


def _config_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items() if not str(k).startswith(SERVER_ATTRIBUTE_PREFIXES)}


def client_secret_reference(client_id: str) -> str:
    """`${env:CLIENT_SECRET_<CLIENTID>}`: an export never carries a secret, only where to read it."""
    return EnvReference("${env:CLIENT_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", client_id).upper() + "}")


def friendly_mapper(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The `user_attribute` form when the mapper is exactly what it compiles to, else `mapper` + `config`."""
    config = {str(k): str(v) for k, v in (raw.get("config") or {}).items()}
    flags = ("multivalued", "id.token.claim", "access.token.claim", "userinfo.token.claim")
    simple = (
        raw.get("protocolMapper") == USER_ATTRIBUTE_MAPPER
        and set(config) in (USER_ATTRIBUTE_CONFIG, USER_ATTRIBUTE_CONFIG | {"introspection.token.claim"})
        and config["jsonType.label"] in JSON_TYPES
        and all(config[flag] in ("true", "false") for flag in flags)
        and config.get("introspection.token.claim", config["access.token.claim"]) == config["access.token.claim"]
    )
    if not simple:
        return {"name": raw["name"], "mapper": raw.get("protocolMapper"), "config": config}
    return {
        "name": raw["name"],
        "user_attribute": config["user.attribute"],
        "claim": config["claim.name"],
        "json_type": config["jsonType.label"],
        "multivalued": config["multivalued"] == "true",
        "in_id_token": config["id.token.claim"] == "true",
        "in_access_token": config["access.token.claim"] == "true",
        "in_userinfo": config["userinfo.token.claim"] == "true",
    }


def friendly_client_role(raw: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": raw["name"]}
    if raw.get("description"):
        entry["description"] = raw["description"]
    attributes = _config_attributes(raw.get("attributes"))
    if attributes:
        entry["attributes"] = attributes
    composites = raw.get("composites") or {}
    if raw.get("composite") and composites:
        entry["composites"] = {
            "realm": list(composites.get("realm") or ()),
            "clients": {client: list(names) for client, names in (composites.get("client") or {}).items()},
        }
    return entry


def friendly_client(raw: Mapping[str, Any], roles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A client in friendly keys; a confidential client's secret becomes an environment reference."""
    entry: dict[str, Any] = {"client_id": raw["clientId"]}
    for friendly, name in CLIENT_FIELDS.items():
        value = raw.get(name)
        if value not in (None, "", []):
            entry[friendly] = value
    attributes = _config_attributes(raw.get("attributes"))
    logout_uris = attributes.pop(POST_LOGOUT_REDIRECT_URIS, None)
    if logout_uris:
        entry["post_logout_redirect_uris"] = str(logout_uris).split(URI_SEPARATOR)
    if attributes.get(PKCE_METHOD) in ("S256", "plain"):
        entry["pkce"] = attributes.pop(PKCE_METHOD)
    confidential = not raw.get("publicClient") and not raw.get("bearerOnly")
    if confidential and raw.get("clientAuthenticatorType", "client-secret") == "client-secret":
        entry["secret"] = client_secret_reference(str(raw["clientId"]))
    for friendly, name in SCOPE_LISTS.items():
        if name in raw:
            entry[friendly] = list(raw[name])
    if raw.get("protocolMappers"):
        entry["protocol_mappers"] = [friendly_mapper(mapper) for mapper in raw["protocolMappers"]]
    if roles:
        entry["roles"] = [friendly_client_role(role) for role in roles]
    if attributes:
        entry["attributes"] = attributes
    return entry


def friendly_client_scope(raw: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": raw["name"], "protocol": raw.get("protocol") or OIDC}
    if raw.get("description"):
        entry["description"] = raw["description"]
    attributes = _config_attributes(raw.get("attributes"))
    in_token = attributes.pop(INCLUDE_IN_TOKEN_SCOPE, None)
    if in_token is not None:
        entry["include_in_token_scope"] = str(in_token).lower() == "true"
    if attributes:
        entry["attributes"] = attributes
    if raw.get("protocolMappers"):
        entry["protocol_mappers"] = [friendly_mapper(mapper) for mapper in raw["protocolMappers"]]
    return entry


def friendly_clients_and_scopes(representation: Mapping[str, Any]) -> dict[str, Any]:
    """`clients` and `client_scopes` of an export; built-ins and the agent's own clients are left out."""
    client_roles = (representation.get("roles") or {}).get("client") or {}
    clients = [
        friendly_client(raw, list(client_roles.get(raw["clientId"]) or ()))
        for raw in representation.get("clients") or ()
        if not is_protected_client(str(raw["clientId"]))
    ]
    scopes = [
        friendly_client_scope(raw)
        for raw in representation.get("clientScopes") or ()
        if not is_protected_scope(str(raw["name"])) and (raw.get("protocol") or OIDC) in ("openid-connect", "saml")
    ]
    friendly: dict[str, Any] = {}
    if clients:
        friendly["clients"] = clients
    if scopes:
        friendly["client_scopes"] = scopes
    return friendly


# -- LDAP federations and the user profile ----------------------------------------------------------

USER_PROFILE_PROVIDER = "org.keycloak.userprofile.UserProfileProvider"
USER_PROFILE_CONFIG_KEY = "kc.user.profile.config"
# Component config Keycloak keeps for itself, or that the federation kind writes on its own.
SERVER_COMPONENT_KEYS = frozenset({BIND_CREDENTIAL, "lastSync"})
PROFILE_POLICIES = {policy: friendly for friendly, policy in UNMANAGED_POLICIES.items() if policy is not None}


def ldap_credential_reference(federation: str) -> str:
    """`${env:LDAP_BIND_CREDENTIAL_<NAME>}`: an export never carries a credential, only where to read it."""
    return EnvReference("${env:LDAP_BIND_CREDENTIAL_" + re.sub(r"[^A-Za-z0-9]", "_", federation).upper() + "}")


def _single(values: Sequence[Any]) -> Any:
    return values[0] if len(values) == 1 else list(values)


def friendly_ldap_mapper(raw: Mapping[str, Any]) -> dict[str, Any]:
    config = {str(key): _single(values) for key, values in (raw.get("config") or {}).items() if values}
    return {"name": raw["name"], "type": raw.get("providerId"), "config": config}


def friendly_ldap_federation(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One LDAP federation (an exported component, sub-components included) in friendly keys; every mapper
    is listed, Keycloak's defaults too, so the export is planned as it is."""
    config: Mapping[str, Sequence[str]] = raw.get("config") or {}
    entry: dict[str, Any] = {"name": raw["name"]}
    for friendly, key in FEDERATION_FIELDS.items():
        value = friendly_value(key, config.get(key))
        if value not in (None, ""):
            entry[friendly] = value
    entry["bind_credential"] = ldap_credential_reference(str(raw["name"]))
    known = set(FEDERATION_FIELDS.values()) | SERVER_COMPONENT_KEYS
    rest = {key: _single(values) for key, values in config.items() if key not in known and values}
    if rest.get("authType") == "simple":
        rest.pop("authType")
    if rest:
        entry["config"] = rest
    mappers = (raw.get("subComponents") or {}).get(LDAP_MAPPER_PROVIDER) or ()
    entry["mappers"] = [friendly_ldap_mapper(mapper) for mapper in sorted(mappers, key=lambda m: str(m["name"]))]
    return entry


def friendly_profile_attribute(raw: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": raw["name"]}
    for friendly, key in (("display_name", "displayName"), ("group", "group")):
        if raw.get(key):
            entry[friendly] = raw[key]
    if raw.get("multivalued"):
        entry["multivalued"] = True
    if raw.get("validations"):
        entry["validators"] = {name: dict(config or {}) for name, config in raw["validations"].items()}
    if "required" in raw:
        required = raw["required"] or {}
        # `required: {}` means required everywhere, which is what both roles say.
        always = not required.get("roles") and not required.get("scopes")
        entry["required_for"] = ["admin", "user"] if always else sorted(required.get("roles") or ())
        if required.get("scopes"):
            entry["required_scopes"] = sorted(required["scopes"])
    permissions = raw.get("permissions") or {}
    entry["view"] = sorted(permissions.get("view") or ())
    entry["edit"] = sorted(permissions.get("edit") or ())
    if raw.get("annotations"):
        entry["annotations"] = dict(raw["annotations"])
    return entry


def friendly_profile_group(raw: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": raw["name"]}
    for friendly, key in (("display_header", "displayHeader"), ("display_description", "displayDescription")):
        if raw.get(key):
            entry[friendly] = raw[key]
    if raw.get("annotations"):
        entry["annotations"] = dict(raw["annotations"])
    return entry


def friendly_user_profile(config: Mapping[str, Any]) -> dict[str, Any]:
    """A user profile (Keycloak's UPConfig JSON) in friendly keys, whole: every attribute and group."""
    return {
        "unmanaged_attributes": PROFILE_POLICIES.get(str(config.get("unmanagedAttributePolicy")), "disabled"),
        "attributes": [friendly_profile_attribute(attribute) for attribute in config.get("attributes") or ()],
        "groups": [friendly_profile_group(group) for group in config.get("groups") or ()],
    }


def friendly_federation_and_profile(representation: Mapping[str, Any]) -> dict[str, Any]:
    """`ldap` and `user_profile` from an export's `components`. A realm whose profile was never changed has
    no profile component: the section is left out (not managed), as Keycloak's default stays."""
    components: Mapping[str, Any] = representation.get("components") or {}
    friendly: dict[str, Any] = {}
    federations = [c for c in components.get(USER_STORAGE_PROVIDER) or () if c.get("providerId") == LDAP_PROVIDER]
    if federations:
        friendly["ldap"] = [friendly_ldap_federation(raw) for raw in sorted(federations, key=lambda c: str(c["name"]))]
    for component in components.get(USER_PROFILE_PROVIDER) or ():
        stored = (component.get("config") or {}).get(USER_PROFILE_CONFIG_KEY) or ()
        if stored:
            friendly["user_profile"] = friendly_user_profile(json.loads(stored[0]))
    return friendly


# -- MFA: the browser flow the agent built, and its group marker role ---------------------------------

OWNED_FLOWS_ATTRIBUTE = "idp-agent.flows"
GROUP_ROLE_ATTRIBUTE = "idp-agent.mfa-group-role"
FLOW_HASH_SUFFIX = re.compile(r" [0-9a-f]{8}(-\d+)?$")


def _mfa_group_roles(representation: Mapping[str, Any]) -> set[str]:
    """Realm roles the agent made to stand for "member of an MFA group" (not written under `roles:`)."""
    return {
        str(role["name"])
        for role in (representation.get("roles") or {}).get("realm") or ()
        if "true" in [str(value).lower() for value in (role.get("attributes") or {}).get(GROUP_ROLE_ATTRIBUTE, [])]
    }


def _without_roles(group: dict[str, Any], removed: set[str]) -> dict[str, Any]:
    if "realm_roles" not in group or not removed:
        return group
    kept = [role for role in group["realm_roles"] if role not in removed]
    trimmed = {key: value for key, value in group.items() if key != "realm_roles"}
    return {**trimmed, "realm_roles": kept} if kept else trimmed


def _owned_flows(representation: Mapping[str, Any]) -> list[str]:
    raw = (representation.get("attributes") or {}).get(OWNED_FLOWS_ATTRIBUTE) or "[]"
    try:
        owned = json.loads(raw)
    except ValueError:
        return []
    return [str(alias) for alias in owned] if isinstance(owned, list) else []


def _mfa_condition_roles(representation: Mapping[str, Any], flow_alias: str) -> set[str]:
    """Roles named by the role conditions inside the flow (its copied sub-flows are named `<flow> ...`)."""
    configs = {c.get("alias"): c.get("config") or {} for c in representation.get("authenticatorConfig") or ()}
    roles: set[str] = set()
    for flow in representation.get("authenticationFlows") or ():
        alias = str(flow.get("alias", ""))
        if alias != flow_alias and not alias.startswith(flow_alias + " "):
            continue
        for execution in flow.get("authenticationExecutions") or ():
            if execution.get("authenticator") != "conditional-user-role":
                continue
            config = configs.get(execution.get("authenticatorConfig"), {})
            if config.get("condUserRole") and str(config.get("negate", "false")).lower() != "true":
                roles.add(str(config["condUserRole"]))
    return roles


def _mfa(
    representation: Mapping[str, Any], marker_roles: set[str], groups: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """`mfa:` when the bound browser flow is one the agent built; None otherwise (then MFA is not managed)."""
    bound = str(representation.get("browserFlow") or "")
    if bound not in _owned_flows(representation):
        return None
    roles = _mfa_condition_roles(representation, bound)
    group_roles = roles & marker_roles
    by_path = {group["path"]: group for group in _walk_groups(list(representation.get("groups") or ()))}
    otp_groups = sorted(path for path, group in by_path.items() if group_roles & set(group.get("realm_roles") or ()))
    mfa: dict[str, Any] = {"otp_for_roles": sorted(roles - marker_roles), "otp_for_groups": otp_groups}
    alias = FLOW_HASH_SUFFIX.sub("", bound)
    if alias != "idp-agent browser":
        mfa["flow_alias"] = alias
    if group_roles and group_roles != {"idp-agent-mfa-required"}:
        mfa["group_role"] = sorted(group_roles)[0]
    return mfa
