"""Clients, client scopes, protocol mappers, client roles and service-account roles: the pure mapping and
diff functions, and the export translation, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agent.keycloak import Client, Role
from agent.keycloak.models import ClientScope, ProtocolMapper
from agent.realm.kinds.base import LiveRealm, fingerprint_attributes
from agent.realm.kinds.client_roles import (
    managed_roles,
    plan_client_role_composites,
    plan_client_roles,
    plan_service_account_roles,
)
from agent.realm.kinds.client_scopes import plan_client_scopes, scope_fields
from agent.realm.kinds.clients import (
    ClientWrite,
    LiveClients,
    ScopeLinks,
    client_fields,
    create_body,
    link_changes,
    link_steps,
    plan_clients,
    secret_differs,
    secret_name,
)
from agent.realm.kinds.protocol_mappers import (
    LiveMappers,
    MapperOwner,
    diff_mapper,
    mapper_representation,
    owned_mapper_names,
    owned_mapper_value,
    plan_owner_mappers,
)
from agent.realm.kinds.roles import RoleRef
from agent.realm.native import (
    client_secret_reference,
    friendly_client,
    friendly_client_scope,
    friendly_clients_and_scopes,
    friendly_mapper,
)
from agent.realm.plan import Change
from agent.realm.references import check_references
from agent.realm.spec import ClientScopeSpec, ClientSpec, ProtocolMapperSpec, RealmSpec
from agent.secrets import Secret

pytestmark = pytest.mark.unit

REALM_ID = "0f6a0c9e-realm-id"
LIVE_REALM = LiveRealm("acme", exists=True, id=REALM_ID, representation={})


def spec_of(**data: Any) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "acme", **data})


def client_of(raw: dict[str, Any]) -> Client:
    return Client.from_json({"id": f"uuid-{raw['clientId']}", "enabled": True, **raw})


def fingerprint(secret: str) -> str:
    return Secret(secret).fingerprint(REALM_ID.encode())


def keys(changes: list[Change]) -> list[tuple[str, str]]:
    return [(change.action, change.key) for change in changes]


# -- client fields ------------------------------------------------------------------------------------

CLIENT_FIELD_CASES: list[tuple[dict[str, Any], bool, dict[str, Any]]] = [
    ({}, False, {}),
    ({}, True, {"attributes": {"idp-agent.managed": "true"}}),
    ({"public": True, "web_origins": ["+"]}, False, {"publicClient": True, "webOrigins": ["+"]}),
    (
        {"redirect_uris": ["https://a/cb"], "standard_flow": True, "implicit_flow": False},
        False,
        {"redirectUris": ["https://a/cb"], "standardFlowEnabled": True, "implicitFlowEnabled": False},
    ),
    (
        {"direct_access_grants": False, "service_account": True, "consent_required": False},
        False,
        {"directAccessGrantsEnabled": False, "serviceAccountsEnabled": True, "consentRequired": False},
    ),
    (
        {"name": "A", "description": "d", "enabled": True, "root_url": "https://a", "base_url": "/home"},
        False,
        {"name": "A", "description": "d", "enabled": True, "rootUrl": "https://a", "baseUrl": "/home"},
    ),
    (
        {"post_logout_redirect_uris": ["https://a/bye", "https://a/out"], "pkce": "S256"},
        False,
        {
            "attributes": {
                "post.logout.redirect.uris": "https://a/bye##https://a/out",
                "pkce.code.challenge.method": "S256",
            }
        },
    ),
    (
        {"attributes": {"login_theme": "acme"}, "pkce": "plain"},
        True,
        {"attributes": {"login_theme": "acme", "pkce.code.challenge.method": "plain", "idp-agent.managed": "true"}},
    ),
]


@pytest.mark.parametrize(("written", "owned_mark", "expected"), CLIENT_FIELD_CASES)
def test_client_fields_translate_friendly_keys(
    written: dict[str, Any], owned_mark: bool, expected: dict[str, Any]
) -> None:
    client = ClientSpec.model_validate({"client_id": "app", **written})
    assert client_fields(client, owned_mark=owned_mark) == expected


def test_create_body_never_names_the_protocol_and_carries_secret_and_scopes() -> None:
    client = ClientSpec.model_validate(
        {"client_id": "app", "secret": Secret("s3"), "default_client_scopes": ["profile"], "optional_client_scopes": []}
    )
    links = ScopeLinks.of(client)
    body = create_body("app", ClientWrite(client_fields(client, owned_mark=True), client.secret, links))
    assert "protocol" not in body  # naming it makes Keycloak apply its console defaults (public client)
    assert body["secret"] == "s3"
    assert body["defaultClientScopes"] == ["profile"] and body["optionalClientScopes"] == []


# -- scope links --------------------------------------------------------------------------------------

LINK_CASES: list[tuple[ScopeLinks, set[str], set[str], list[tuple[str, str, bool]]]] = [
    (ScopeLinks(), {"profile"}, {"phone"}, []),
    (ScopeLinks(frozenset({"profile"})), {"profile"}, {"phone"}, []),
    (ScopeLinks(frozenset({"profile", "email"})), {"profile"}, set(), [("link", "email", False)]),
    (ScopeLinks(frozenset({"profile"})), {"profile", "roles"}, set(), [("unlink", "roles", False)]),
    # service_account is Keycloak's own link: kept unless named.
    (ScopeLinks(frozenset({"profile"})), {"profile", "service_account"}, set(), []),
    (ScopeLinks(frozenset({"profile", "service_account"})), {"profile"}, set(), [("link", "service_account", False)]),
    # A scope that moves is unlinked from its old list first, even when that list is not written.
    (ScopeLinks(frozenset({"phone"})), set(), {"phone"}, [("unlink", "phone", True), ("link", "phone", False)]),
    (
        ScopeLinks(frozenset(), frozenset({"email"})),
        {"email"},
        {"phone"},
        [("unlink", "email", False), ("unlink", "phone", True), ("link", "email", True)],
    ),
]


@pytest.mark.parametrize(("links", "default", "optional", "steps"), LINK_CASES)
def test_link_steps(links: ScopeLinks, default: set[str], optional: set[str], steps: list[Any]) -> None:
    assert link_steps(links, frozenset(default), frozenset(optional)) == steps


def test_link_changes_show_only_written_lists_that_differ() -> None:
    links = ScopeLinks(frozenset({"profile"}), None)
    changes = link_changes(links, frozenset({"profile", "email", "service_account"}), frozenset({"phone"}))
    assert [(c.field, c.live, c.desired) for c in changes] == [
        ("default_client_scopes", ["email", "profile"], ["profile"])
    ]


# -- secrets ------------------------------------------------------------------------------------------

APP = {"clientId": "app", "publicClient": False, "attributes": {}}
SECRET_CASES: list[tuple[str, dict[str, Any] | None, dict[str, str], dict[str, str], bool]] = [
    ("new client", None, {}, {}, True),
    ("live secret equal", APP, {"app": fingerprint("s3")}, {}, False),
    ("live secret rotated by hand", APP, {"app": fingerprint("other")}, {}, True),
    ("live secret equal beats a stale record", APP, {"app": fingerprint("s3")}, {"app": "other"}, False),
    ("public becoming confidential", {**APP, "publicClient": True}, {}, {}, True),
    ("secret not readable, recorded equal", APP, {}, {"app": "s3"}, False),
    ("secret not readable, recorded differs", APP, {}, {"app": "old"}, True),
    ("secret not readable, nothing recorded", APP, {}, {}, True),
]


@pytest.mark.parametrize(("case", "live_client", "live_hashes", "recorded", "expected"), SECRET_CASES)
def test_secret_differs(
    case: str, live_client: dict[str, Any] | None, live_hashes: dict[str, str], recorded: dict[str, str], expected: bool
) -> None:
    attributes = fingerprint_attributes(REALM_ID, {secret_name(k): Secret(v) for k, v in recorded.items()})
    live_realm = LiveRealm("acme", True, REALM_ID, {"attributes": attributes})
    clients = {"app": client_of(live_client)} if live_client else {}
    client = ClientSpec(client_id="app", secret=Secret("s3"))
    assert secret_differs(live_realm, LiveClients(clients, live_hashes), client) is expected, case


def test_a_changed_secret_is_planned_hidden_and_sent_once() -> None:
    spec = spec_of(clients=[{"client_id": "app", "secret": Secret("canary-new")}])
    live = LiveClients({"app": client_of(APP)}, {"app": fingerprint("canary-old")})
    (change,) = plan_clients(spec, LIVE_REALM, live)
    (field,) = change.fields
    assert (field.field, field.secret, field.shown()) == ("secret", True, ("(value hidden)", "(value hidden)"))
    assert change.desired.secret == Secret("canary-new") and change.desired.fields == {}
    assert "canary" not in repr(change)


# -- plan clients -------------------------------------------------------------------------------------

OWNED = {"idp-agent.managed": "true"}
LIVE_CLIENTS = {
    "owned-app": client_of({"clientId": "owned-app", "attributes": OWNED}),
    "handmade": client_of({"clientId": "handmade", "attributes": {}}),
    "account": client_of({"clientId": "account", "attributes": OWNED}),
    "idp-agent-sync": client_of({"clientId": "idp-agent-sync", "attributes": OWNED}),
}


@pytest.mark.parametrize(
    ("mode", "deleted"),
    [("owned", ["owned-app"]), ("full", ["handmade", "owned-app"]), ("no-delete", [])],
)
def test_clients_not_written_are_deleted_by_mode_never_protected(mode: str, deleted: list[str]) -> None:
    spec = spec_of(clients=[], managed={"clients": mode})
    changes = plan_clients(spec, LIVE_REALM, LiveClients(LIVE_CLIENTS))
    assert keys(changes) == [("delete", name) for name in deleted]


def test_clients_not_written_at_all_are_not_managed() -> None:
    assert plan_clients(spec_of(), LIVE_REALM, LiveClients(LIVE_CLIENTS)) == []


def test_update_lists_only_differing_fields_and_keeps_ownership_as_is() -> None:
    live = client_of({"clientId": "handmade", "description": "old", "redirectUris": ["https://b", "https://a"]})
    spec = spec_of(
        clients=[{"client_id": "handmade", "description": "new", "redirect_uris": ["https://a", "https://b"]}]
    )
    (change,) = plan_clients(spec, LIVE_REALM, LiveClients({"handmade": live}))
    assert [(f.field, f.live, f.desired) for f in change.fields] == [("description", "old", "new")]
    assert "attributes" not in change.desired.fields  # an unowned client is not adopted


def test_a_written_client_that_matches_plans_nothing() -> None:
    live = client_of(
        {"clientId": "app", "publicClient": True, "attributes": {**OWNED, "pkce.code.challenge.method": "S256"}}
    )
    spec = spec_of(clients=[{"client_id": "app", "public": True, "pkce": "S256"}])
    assert plan_clients(spec, LIVE_REALM, LiveClients({"app": live})) == []


@pytest.mark.parametrize(
    ("written", "live_attributes", "changed"),
    [
        ({"post_logout_redirect_uris": []}, {}, False),  # Keycloak drops an attribute written as ""
        ({"post_logout_redirect_uris": []}, {"post.logout.redirect.uris": "https://a"}, True),
        ({"attributes": {"x": ""}}, {}, False),
        ({"attributes": {"x": "1"}}, {}, True),
    ],
)
def test_an_empty_attribute_equals_an_absent_one(
    written: dict[str, Any], live_attributes: dict[str, str], changed: bool
) -> None:
    live = client_of({"clientId": "app", "attributes": live_attributes})
    spec = spec_of(clients=[{"client_id": "app", **written}])
    assert bool(plan_clients(spec, LIVE_REALM, LiveClients({"app": live}))) is changed


# -- client scopes ------------------------------------------------------------------------------------


def scope(name: str, attributes: dict[str, str] | None = None, **extra: Any) -> ClientScope:
    return ClientScope(
        f"id-{name}", name, extra.get("protocol", "openid-connect"), extra.get("description"), attributes or {}
    )


def test_scope_fields() -> None:
    written = ClientScopeSpec(name="x", description="X", include_in_token_scope=False, attributes={"gui.order": "1"})
    assert scope_fields(written, owned_mark=True) == {
        "protocol": "openid-connect",
        "description": "X",
        "attributes": {"gui.order": "1", "include.in.token.scope": "false", "idp-agent.managed": "true"},
    }


@pytest.mark.parametrize(("mode", "deleted"), [("owned", ["mine"]), ("full", ["handmade", "mine"]), ("no-delete", [])])
def test_scopes_not_written_are_deleted_by_mode_never_built_ins(mode: str, deleted: list[str]) -> None:
    live = {name: scope(name) for name in ("profile", "AuthnContextClassRef", "handmade", "kept")}
    live["mine"] = scope("mine", OWNED)
    spec = spec_of(client_scopes=[{"name": "kept"}], managed={"client_scopes": mode})
    changes = plan_client_scopes(spec, live)
    assert keys(changes) == [("delete", name) for name in deleted]


def test_scope_update_and_create() -> None:
    live = {"extra": scope("extra", {"include.in.token.scope": "true", "other": "x"}, description="old")}
    spec = spec_of(
        client_scopes=[{"name": "extra", "description": "new"}, {"name": "fresh", "include_in_token_scope": True}]
    )
    changes = plan_client_scopes(spec, live)
    assert keys(changes) == [("update", "extra"), ("create", "fresh")]
    assert [(f.field, f.live, f.desired) for f in changes[0].fields] == [("description", "old", "new")]


# -- protocol mappers ---------------------------------------------------------------------------------


def test_user_attribute_mapper_compiles_to_keycloak_form() -> None:
    mapper = ProtocolMapperSpec.model_validate(
        {"name": "dept", "user_attribute": "department", "in_userinfo": False, "multivalued": True}
    )
    assert mapper_representation(mapper, "openid-connect") == {
        "name": "dept",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-attribute-mapper",
        "config": {
            "user.attribute": "department",
            "claim.name": "department",
            "jsonType.label": "String",
            "multivalued": "true",
            "id.token.claim": "true",
            "access.token.claim": "true",
            "userinfo.token.claim": "false",
        },
    }


def test_raw_mapper_keeps_type_and_config() -> None:
    mapper = ProtocolMapperSpec(name="tier", mapper="oidc-hardcoded-claim-mapper", config={"claim.value": "gold"})
    assert mapper_representation(mapper, "saml")["protocol"] == "saml"
    assert mapper_representation(mapper, "saml")["config"] == {"claim.value": "gold"}


def test_mapper_needs_exactly_one_form() -> None:
    with pytest.raises(ValidationError):
        ProtocolMapperSpec.model_validate({"name": "x"})
    with pytest.raises(ValidationError):
        ProtocolMapperSpec.model_validate({"name": "x", "user_attribute": "a", "mapper": "m"})


def live_mapper(name: str, mapper: str = "oidc-hardcoded-claim-mapper", **config: str) -> ProtocolMapper:
    return ProtocolMapper(f"id-{name}", name, "openid-connect", mapper, config)


DIFF_CASES: list[tuple[ProtocolMapper, dict[str, Any], list[str]]] = [
    (live_mapper("t", **{"claim.value": "gold", "extra": "kept"}), {"claim.value": "gold"}, []),
    (live_mapper("t", **{"claim.value": "gold"}), {"claim.value": "silver"}, ["config.claim.value"]),
    (live_mapper("t"), {"access.token.claim": "true"}, ["config.access.token.claim"]),
    (live_mapper("t", "other-mapper"), {}, ["mapper"]),
]


@pytest.mark.parametrize(("live", "config", "fields"), DIFF_CASES)
def test_diff_mapper_compares_type_and_written_config_keys(
    live: ProtocolMapper, config: dict[str, Any], fields: list[str]
) -> None:
    desired = {"name": "t", "protocolMapper": "oidc-hardcoded-claim-mapper", "config": config}
    assert [change.field for change in diff_mapper(live, desired)] == fields


@pytest.mark.parametrize(("mode", "deleted"), [("owned", ["mine"]), ("full", ["keycloaks", "mine"]), ("no-delete", [])])
def test_mappers_written_are_authoritative_over_owned_ones(mode: Any, deleted: list[str]) -> None:
    owner = MapperOwner("clients", "app")
    mappers = {name: live_mapper(name) for name in ("mine", "keycloaks", "kept")}
    live = LiveMappers("uuid-app", "openid-connect", mappers, frozenset({"mine", "kept"}))
    written = (ProtocolMapperSpec(name="kept", mapper="oidc-hardcoded-claim-mapper", config={}),)
    changes = plan_owner_mappers(owner, written, "openid-connect", live, mode)
    assert keys(changes) == [("delete", f"client app: {name}") for name in deleted]


def test_mappers_of_a_new_client_are_created() -> None:
    owner = MapperOwner("client-scopes", "extra")
    written = (ProtocolMapperSpec.model_validate({"name": "dept", "user_attribute": "department", "claim": "dept"}),)
    (change,) = plan_owner_mappers(owner, written, "openid-connect", None, "owned")
    assert (change.action, change.key) == ("create", "client scope extra: dept")
    assert ("config.claim.name", "dept") in [(f.field, f.desired) for f in change.fields]


@pytest.mark.parametrize(
    ("value", "names"),
    [(None, set()), ("", set()), ('["a","b, c"]', {"a", "b, c"}), ("not json", set()), ('{"a": 1}', set())],
)
def test_owned_mapper_names(value: str | None, names: set[str]) -> None:
    assert owned_mapper_names({"idp-agent.mappers": value} if value is not None else {}) == names


def test_owned_mapper_value_round_trips() -> None:
    names = {"b", "a, with comma"}
    assert owned_mapper_names({"idp-agent.mappers": owned_mapper_value(names)}) == names


# -- client roles, composites, service accounts -------------------------------------------------------


def role(name: str, owned: bool = False, description: str | None = None) -> Role:
    return Role(
        f"id-{name}", name, description, client_role=True, attributes={"idp-agent.managed": ("true",)} if owned else {}
    )


@pytest.mark.parametrize(
    ("client_id", "mode", "deleted"),
    [
        ("app", "owned", ["app/mine"]),
        ("app", "full", ["app/handmade", "app/mine"]),
        ("app", "no-delete", []),
        ("account", "full", ["account/mine"]),  # unowned roles of built-in clients are never deleted
    ],
)
def test_client_roles_written_are_authoritative_over_owned_ones(client_id: str, mode: str, deleted: list[str]) -> None:
    live = {client_id: {"mine": role("mine", True), "handmade": role("handmade"), "kept": role("kept", True)}}
    spec = spec_of(clients=[{"client_id": client_id, "roles": [{"name": "kept"}]}], managed={"client_roles": mode})
    assert keys(plan_client_roles(spec, live)) == [("delete", key) for key in deleted]


def test_client_roles_create_and_update() -> None:
    live = {"app": {"viewer": role("viewer", True, "old")}}
    spec = spec_of(
        clients=[{"client_id": "app", "roles": [{"name": "viewer", "description": "new"}, {"name": "editor"}]}]
    )
    changes = plan_client_roles(spec, live)
    assert keys(changes) == [("update", "app/viewer"), ("create", "app/editor")]
    assert changes[1].desired.fields == {"attributes": {"idp-agent.managed": ["true"]}}


def test_client_role_composites_are_authoritative_when_written() -> None:
    spec = spec_of(
        roles=[{"name": "auditor"}],
        clients=[
            {
                "client_id": "app",
                "roles": [
                    {"name": "viewer"},
                    {"name": "editor", "composites": {"realm": ["auditor"], "clients": {"app": ["viewer"]}}},
                    {"name": "admin", "composites": {}},
                ],
            }
        ],
    )
    live = {RoleRef("app", "admin"): frozenset({RoleRef(None, "auditor")}), RoleRef("app", "editor"): frozenset()}
    changes = plan_client_role_composites(spec, live)
    assert [(c.key, c.fields[0].live, c.fields[0].desired) for c in changes] == [
        ("app/editor", [], ["app/viewer", "auditor"]),
        ("app/admin", ["auditor"], []),
    ]


DEFAULT_ROLE = RoleRef(None, "default-roles-acme")


@pytest.mark.parametrize(
    ("wanted", "current", "managed"),
    [
        ({RoleRef(None, "a")}, {DEFAULT_ROLE, RoleRef(None, "a")}, {RoleRef(None, "a")}),
        ({DEFAULT_ROLE}, {DEFAULT_ROLE, RoleRef("app", "x")}, {DEFAULT_ROLE, RoleRef("app", "x")}),
        (set(), {RoleRef("app", "x")}, {RoleRef("app", "x")}),
    ],
)
def test_service_account_default_roles_stay_unless_named(
    wanted: set[RoleRef], current: set[RoleRef], managed: set[RoleRef]
) -> None:
    assert managed_roles("acme", frozenset(wanted), frozenset(current)) == managed


def test_service_account_roles_plan() -> None:
    spec = spec_of(
        clients=[
            {"client_id": "app", "service_account": True, "service_account_roles": {"realm": ["auditor"]}},
            {"client_id": "same", "service_account_roles": {"clients": {"app": ["viewer"]}}},
            {"client_id": "untouched", "service_account": True},
        ]
    )
    live = {
        "app": frozenset({DEFAULT_ROLE, RoleRef("app", "viewer")}),
        "same": frozenset({DEFAULT_ROLE, RoleRef("app", "viewer")}),
        "untouched": frozenset({RoleRef(None, "anything")}),
    }
    (change,) = plan_service_account_roles(spec, live)
    assert (change.key, change.fields[0].live, change.fields[0].desired) == ("app", ["app/viewer"], ["auditor"])


# -- spec and references ------------------------------------------------------------------------------

INVALID_CLIENTS: list[dict[str, Any]] = [
    {"client_id": "a", "public": True, "secret": Secret("x")},
    {"client_id": "a", "public": True, "service_account": True},
    {"client_id": "a", "service_account": False, "service_account_roles": {"realm": ["r"]}},
    {"client_id": "a", "default_client_scopes": ["email"], "optional_client_scopes": ["email"]},
    {"client_id": "a", "roles": [{"name": "r"}, {"name": "r"}]},
    {
        "client_id": "a",
        "protocol_mappers": [{"name": "m", "user_attribute": "x"}, {"name": "m", "user_attribute": "y"}],
    },
]


@pytest.mark.parametrize("written", INVALID_CLIENTS)
def test_invalid_clients_are_config_errors(written: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ClientSpec.model_validate(written)


def test_references_unknown_client_scope_when_scopes_are_written() -> None:
    spec = spec_of(
        client_scopes=[{"name": "extra"}],
        clients=[{"client_id": "app", "default_client_scopes": ["profile", "extra", "AuthnContextClassRef", "typo"]}],
    )
    assert [(path, message) for path, message, _ in check_references(spec)] == [
        (("clients", 0, "default_client_scopes", 3), "client 'app' names unknown client scope 'typo'")
    ]
    unchecked = spec_of(clients=[{"client_id": "app", "optional_client_scopes": ["handmade"]}])
    assert check_references(unchecked) == []


def test_references_of_client_role_composites() -> None:
    spec = spec_of(
        roles=[{"name": "auditor"}],
        clients=[
            {
                "client_id": "app",
                "roles": [{"name": "editor", "composites": {"realm": ["nope"], "clients": {"app": ["ghost"]}}}],
            }
        ],
    )
    messages = [message for _, message, _ in check_references(spec)]
    assert messages == [
        "client role 'app/editor' grants unknown realm role 'nope'",
        "client role 'app/editor' grants unknown client role 'app/ghost'",
    ]


# -- export -------------------------------------------------------------------------------------------

EXPORTED_APP: dict[str, Any] = {
    "id": "uuid-app",
    "clientId": "app",
    "name": "App",
    "enabled": True,
    "clientAuthenticatorType": "client-secret",
    "secret": "**********",
    "redirectUris": ["https://app/cb"],
    "webOrigins": [],
    "bearerOnly": False,
    "consentRequired": False,
    "standardFlowEnabled": True,
    "implicitFlowEnabled": False,
    "directAccessGrantsEnabled": False,
    "serviceAccountsEnabled": True,
    "publicClient": False,
    "protocol": "openid-connect",
    "attributes": {
        "realm_client": "false",
        "client.secret.creation.time": "1795969234",
        "idp-agent.managed": "true",
        "idp-agent.mappers": '["tier"]',
        "post.logout.redirect.uris": "https://app/bye##https://app/out",
        "pkce.code.challenge.method": "S256",
        "login_theme": "acme",
    },
    "protocolMappers": [
        {
            "name": "tier",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-hardcoded-claim-mapper",
            "config": {"claim.name": "tier", "claim.value": "gold"},
        }
    ],
    "defaultClientScopes": ["service_account", "profile"],
    "optionalClientScopes": ["phone"],
}
EXPORTED_ROLES: list[dict[str, Any]] = [
    {"name": "viewer", "description": "Views", "composite": False, "attributes": {"idp-agent.managed": ["true"]}},
    {"name": "editor", "composite": True, "composites": {"realm": ["auditor"], "client": {"app": ["viewer"]}}},
]


def test_friendly_client_never_carries_the_secret() -> None:
    friendly = friendly_client(EXPORTED_APP, EXPORTED_ROLES)
    assert friendly["secret"] == "${env:CLIENT_SECRET_APP}"
    assert friendly["attributes"] == {"login_theme": "acme"}
    assert friendly["post_logout_redirect_uris"] == ["https://app/bye", "https://app/out"]
    assert friendly["pkce"] == "S256"
    assert friendly["default_client_scopes"] == ["service_account", "profile"]
    assert friendly["roles"] == [
        {"name": "viewer", "description": "Views"},
        {"name": "editor", "composites": {"realm": ["auditor"], "clients": {"app": ["viewer"]}}},
    ]
    assert "**********" not in str(friendly)


@pytest.mark.parametrize(
    ("client_id", "reference"),
    [("app", "${env:CLIENT_SECRET_APP}"), ("my-app.v2", "${env:CLIENT_SECRET_MY_APP_V2}")],
)
def test_client_secret_reference(client_id: str, reference: str) -> None:
    assert client_secret_reference(client_id) == reference


def test_exported_client_plans_no_change_against_itself() -> None:
    friendly = friendly_client(EXPORTED_APP, EXPORTED_ROLES)
    friendly["secret"] = Secret("s3")  # what the loader makes of ${env:CLIENT_SECRET_APP}
    spec = spec_of(clients=[friendly])
    live = LiveClients({"app": client_of(EXPORTED_APP)}, {"app": fingerprint("s3")})
    assert plan_clients(spec, LIVE_REALM, live) == []
    mappers = LiveMappers(
        "uuid-app",
        "openid-connect",
        {"tier": live_mapper("tier", **{"claim.name": "tier", "claim.value": "gold"})},
        frozenset(),
    )
    client = spec.clients[0] if spec.clients else None
    assert client is not None and client.protocol_mappers is not None
    assert (
        plan_owner_mappers(MapperOwner("clients", "app"), client.protocol_mappers, "openid-connect", mappers, "owned")
        == []
    )


MAPPER_EXPORTS: list[tuple[dict[str, str], bool]] = [
    (
        {"user.attribute": "dept", "claim.name": "d", "jsonType.label": "String", "multivalued": "false",
         "id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "false"},
        True,
    ),
    (
        {"user.attribute": "dept", "claim.name": "d", "jsonType.label": "String", "multivalued": "false",
         "id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "false",
         "introspection.token.claim": "true"},
        True,
    ),
    ({"user.attribute": "dept", "claim.name": "d", "jsonType.label": "String"}, False),
    (
        {"user.attribute": "dept", "claim.name": "d", "jsonType.label": "String", "multivalued": "false",
         "id.token.claim": "true", "access.token.claim": "true", "userinfo.token.claim": "false",
         "aggregate.attrs": "true"},
        False,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("config", "simple"), MAPPER_EXPORTS)
def test_friendly_mapper_round_trips(config: dict[str, str], simple: bool) -> None:
    raw = {
        "name": "m",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-attribute-mapper",
        "config": config,
    }
    friendly = friendly_mapper(raw)
    assert ("user_attribute" in friendly) is simple
    representation = mapper_representation(ProtocolMapperSpec.model_validate(friendly), "openid-connect")
    live = ProtocolMapper("id", "m", "openid-connect", "oidc-usermodel-attribute-mapper", config)
    assert diff_mapper(live, representation) == ()


def test_friendly_scopes_and_clients_skip_built_ins() -> None:
    representation = {
        "clients": [EXPORTED_APP, {"clientId": "account"}, {"clientId": "idp-agent-sync"}],
        "clientScopes": [
            {"name": "profile", "protocol": "openid-connect"},
            {
                "name": "extra",
                "protocol": "openid-connect",
                "description": "X",
                "attributes": {"include.in.token.scope": "true", "idp-agent.managed": "true", "gui.order": "2"},
            },
            {"name": "odd", "protocol": "openid4vc"},
        ],
        "roles": {"client": {"app": EXPORTED_ROLES, "account": [{"name": "view-profile"}]}},
    }
    friendly = friendly_clients_and_scopes(representation)
    assert [client["client_id"] for client in friendly["clients"]] == ["app"]
    assert friendly["client_scopes"] == [
        {
            "name": "extra",
            "protocol": "openid-connect",
            "description": "X",
            "include_in_token_scope": True,
            "attributes": {"gui.order": "2"},
        }
    ]
    assert friendly_client_scope({"name": "bare"}) == {"name": "bare", "protocol": "openid-connect"}
    RealmSpec.model_validate(
        {
            "realm": "acme",
            "clients": [{**friendly["clients"][0], "secret": Secret("x")}],
            "client_scopes": friendly["client_scopes"],
        }
    )


def test_clients_are_told_apart_by_client_id_not_display_name() -> None:
    spec_of(clients=[{"client_id": "a"}, {"client_id": "b"}])
    with pytest.raises(ValidationError, match="'a' is listed twice"):
        spec_of(clients=[{"client_id": "a", "name": "A"}, {"client_id": "a", "name": "B"}])
