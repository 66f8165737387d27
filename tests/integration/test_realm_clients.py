"""Clients, client scopes, protocol mappers, client roles and service-account roles: numbered steps against a
real Keycloak. After every apply a second plan must be empty and applying it must write nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from agent.keycloak import KeycloakGateway
from agent.realm.kinds.base import Kind
from agent.realm.kinds.client_roles import ClientRoleComposites, ClientRoles, ServiceAccountRoles
from agent.realm.kinds.client_scopes import ClientScopes
from agent.realm.kinds.clients import Clients
from agent.realm.kinds.protocol_mappers import ProtocolMappers
from agent.realm.kinds.realm_settings import RealmSettings
from agent.realm.kinds.roles import RealmRoles, RoleComposites
from agent.realm.loader import load_realms
from agent.realm.native import friendly_from_representation
from agent.realm.plan import Plan
from agent.realm.render import render_json, render_text
from agent.realm.spec import RealmSpec
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from tests.harness import realm_steps

KINDS: tuple[Kind, ...] = (
    RealmSettings(),
    ClientScopes(),
    Clients(),
    ProtocolMappers(),
    RealmRoles(),
    ClientRoles(),
    RoleComposites(),
    ClientRoleComposites(),
    ServiceAccountRoles(),
)
CLIENT_KINDS = {
    "client scopes",
    "clients",
    "protocol mappers",
    "client roles",
    "client role composites",
    "service account roles",
}


def hardcoded_claim(name: str, claim: str, value: str) -> dict[str, Any]:
    """A raw mapper (Keycloak's hardcoded-claim mapper) as written in config."""
    config = {"claim.name": claim, "claim.value": value, "access.token.claim": "true"}
    return {"name": name, "mapper": "oidc-hardcoded-claim-mapper", "config": config}


def made_by_hand(name: str) -> dict[str, Any]:
    """A mapper in Keycloak's own form, for objects made by hand through the admin API."""
    config = {"claim.name": name, "claim.value": "x"}
    return {
        "name": name,
        "protocol": "openid-connect",
        "protocolMapper": "oidc-hardcoded-claim-mapper",
        "config": config,
    }


TIER = hardcoded_claim("tier", "tier", "gold")
SA_NAME = {"name": "sa-name", "user_attribute": "username", "claim": "sa_name"}


@pytest.fixture
def admin(keycloak_connection: KeycloakConnection) -> Iterator[KeycloakGateway]:
    gateway = KeycloakGateway.connect(keycloak_connection)
    yield gateway
    gateway.close()


def spec_of(data: dict[str, Any]) -> RealmSpec:
    return RealmSpec.model_validate(data)


def planned(connection: KeycloakConnection, spec: RealmSpec) -> Plan:
    """Plan through a read-only gateway, so planning provably writes nothing."""
    return realm_steps.planned(connection, spec, KINDS)


def apply_and_converge(connection: KeycloakConnection, spec: RealmSpec) -> Plan:
    """Apply; then a second plan is empty and applying it makes zero writes."""
    return realm_steps.apply_and_converge(connection, spec, KINDS)


def changes_of(plan: Plan) -> set[tuple[str, str, str]]:
    return {(change.action, change.kind, change.key) for change in plan.changes}


def fields_of(plan: Plan, kind: str, key: str) -> dict[str, tuple[Any, Any]]:
    (change,) = [change for change in plan.changes if (change.kind, change.key) == (kind, key)]
    return {field.field: field.shown() for field in change.fields}


def client_rep(gateway: KeycloakGateway, realm: str, client_id: str) -> dict[str, Any]:
    client = gateway.find_client(realm, client_id)
    assert client is not None, f"client {client_id} missing"
    return dict(client.representation)


def mapper_configs(rep: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {mapper["name"]: mapper["config"] for mapper in rep.get("protocolMappers") or ()}


def client_role_names(gateway: KeycloakGateway, realm: str, client_id: str) -> set[str]:
    client = gateway.find_client(realm, client_id)
    assert client is not None
    return {role.name for role in gateway.list_client_roles(realm, client.id)}


def service_account_roles(gateway: KeycloakGateway, realm: str, client_id: str) -> set[str]:
    client = gateway.find_client(realm, client_id)
    assert client is not None
    user = gateway.service_account_user(realm, client.id)
    assert user is not None
    return {
        role.name if not role.client_role else f"{client_id if role.container_id == client.id else '?'}/{role.name}"
        for role in gateway.user_role_mappings(realm, user.id)
    }


def token_claims(gateway: KeycloakGateway, realm: str, client_id: str, secret: str) -> dict[str, Any]:
    """Claims of an access token from the client-credentials grant at Keycloak's real token endpoint."""
    response = requests.post(
        f"{gateway.server_url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    payload = response.json()["access_token"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def token_refused(gateway: KeycloakGateway, realm: str, client_id: str, secret: str) -> bool:
    response = requests.post(
        f"{gateway.server_url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=30,
    )
    return response.status_code == 401


def lifecycle_spec(realm: str, step: int) -> dict[str, Any]:
    """The config of each step of the lifecycle scenario."""
    app: dict[str, Any] = {
        "client_id": "app",
        "name": "App",
        "secret": Secret("app-secret-1"),
        "service_account": True,
        "standard_flow": True,
        "direct_access_grants": False,
        "redirect_uris": ["https://app.example.org/cb"],
        "post_logout_redirect_uris": ["https://app.example.org/bye", "https://app.example.org/out"],
        "pkce": "S256",
        "default_client_scopes": ["profile", "email", "extra"],
        "optional_client_scopes": ["phone"],
        "protocol_mappers": [TIER, SA_NAME],
        "roles": [
            {"name": "viewer", "description": "Views"},
            {"name": "editor", "composites": {"clients": {"app": ["viewer"]}}},
        ],
        "service_account_roles": {"realm": ["auditor"], "clients": {"app": ["editor"]}},
        "attributes": {"login_theme": "keycloak"},
    }
    spa: dict[str, Any] = {
        "client_id": "spa",
        "public": True,
        "pkce": "S256",
        "web_origins": ["+"],
        "redirect_uris": ["https://spa.example.org/*"],
    }
    extra: dict[str, Any] = {
        "name": "extra",
        "description": "Extra claims",
        "include_in_token_scope": True,
        "protocol_mappers": [{"name": "dept", "user_attribute": "department", "claim": "dept"}],
    }
    if step >= 2:
        app["description"] = "The app"
        app["redirect_uris"] = ["https://app.example.org/callback"]
        app["protocol_mappers"] = [hardcoded_claim("tier", "tier", "platinum")]
        app["default_client_scopes"] = ["profile", "email", "extra", "phone"]
        app["optional_client_scopes"] = []
        app["roles"][0] = {"name": "viewer", "description": "Can view"}
        app["service_account_roles"] = {"clients": {"app": ["editor"]}}
        extra["include_in_token_scope"] = False
    if step >= 3:
        app["roles"] = [app["roles"][0]]
        app["service_account_roles"] = {"clients": {"app": ["viewer"]}}
        app["default_client_scopes"] = ["profile", "email", "phone"]
    data: dict[str, Any] = {
        "realm": realm,
        "roles": [{"name": "auditor"}],
        "clients": [app, spa],
        "client_scopes": [extra],
    }
    if step >= 3:
        data["clients"] = [app]
        data["client_scopes"] = []
    return data


def test_01_clients_lifecycle(keycloak_connection: KeycloakConnection, admin: KeycloakGateway, realm: str) -> None:
    # Step 1: create a confidential client (mappers, roles, service account) and a public one.
    spec = spec_of(lifecycle_spec(realm, 1))
    plan = apply_and_converge(keycloak_connection, spec)
    assert {
        ("create", "client scopes", "extra"),
        ("create", "clients", "app"),
        ("create", "clients", "spa"),
        ("create", "protocol mappers", "client app: tier"),
        ("create", "protocol mappers", "client app: sa-name"),
        ("create", "protocol mappers", "client scope extra: dept"),
        ("create", "client roles", "app/viewer"),
        ("create", "client roles", "app/editor"),
        ("update", "client role composites", "app/editor"),
        ("update", "service account roles", "app"),
    } <= changes_of(plan)
    app = client_rep(admin, realm, "app")
    assert (app["publicClient"], app["serviceAccountsEnabled"], app["directAccessGrantsEnabled"]) == (
        False,
        True,
        False,
    )
    assert app["redirectUris"] == ["https://app.example.org/cb"]
    assert app["attributes"]["post.logout.redirect.uris"] == "https://app.example.org/bye##https://app.example.org/out"
    assert app["attributes"]["pkce.code.challenge.method"] == "S256"
    assert app["attributes"]["login_theme"] == "keycloak"
    assert set(app["defaultClientScopes"]) == {"profile", "email", "extra", "service_account"}
    assert set(app["optionalClientScopes"]) == {"phone"}
    assert mapper_configs(app)["tier"]["claim.value"] == "gold"
    assert mapper_configs(app)["sa-name"]["user.attribute"] == "username"
    assert client_role_names(admin, realm, "app") == {"viewer", "editor"}
    assert service_account_roles(admin, realm, "app") == {f"default-roles-{realm}", "auditor", "app/editor"}
    spa = client_rep(admin, realm, "spa")
    assert (spa["publicClient"], spa["webOrigins"]) == (True, ["+"])
    scope = admin.find_client_scope(realm, "extra")
    assert scope is not None and scope.attributes["include.in.token.scope"] == "true"
    assert [mapper.name for mapper in scope.protocol_mappers] == ["dept"]

    # Step 2: update fields, a mapper, scope links, a role and the service account's roles.
    spec = spec_of(lifecycle_spec(realm, 2))
    plan = apply_and_converge(keycloak_connection, spec)
    assert changes_of(plan) == {
        ("update", "client scopes", "extra"),
        ("update", "clients", "app"),
        ("update", "protocol mappers", "client app: tier"),
        ("delete", "protocol mappers", "client app: sa-name"),
        ("update", "client roles", "app/viewer"),
        ("update", "service account roles", "app"),
    }
    assert set(fields_of(plan, "clients", "app")) == {
        "description",
        "redirectUris",
        "default_client_scopes",
        "optional_client_scopes",
    }
    app = client_rep(admin, realm, "app")
    assert app["description"] == "The app" and app["redirectUris"] == ["https://app.example.org/callback"]
    assert set(app["defaultClientScopes"]) == {"profile", "email", "extra", "phone", "service_account"}
    assert app["optionalClientScopes"] == []
    assert set(mapper_configs(app)) == {"tier"} and mapper_configs(app)["tier"]["claim.value"] == "platinum"
    assert service_account_roles(admin, realm, "app") == {f"default-roles-{realm}", "app/editor"}

    # Step 3: remove owned objects; keep objects made by hand (not owned) and built-ins.
    app_client = admin.find_client(realm, "app")
    assert app_client is not None
    admin.create_client(realm, {"clientId": "legacy"})
    admin.create_client_scope(realm, {"name": "hand-scope", "protocol": "openid-connect"})
    admin.create_client_role(realm, app_client.id, "handmade")
    admin.create_protocol_mapper(realm, "clients", app_client.id, made_by_hand("hand-mapper"))
    spec = spec_of(lifecycle_spec(realm, 3))
    plan = apply_and_converge(keycloak_connection, spec)
    assert changes_of(plan) == {
        ("delete", "client scopes", "extra"),
        ("delete", "clients", "spa"),
        ("update", "clients", "app"),
        ("delete", "client roles", "app/editor"),
        ("update", "service account roles", "app"),
    }
    assert admin.find_client(realm, "spa") is None and admin.find_client_scope(realm, "extra") is None
    assert admin.find_client(realm, "legacy") is not None and admin.find_client_scope(realm, "hand-scope") is not None
    assert admin.find_client(realm, "account") is not None and admin.find_client_scope(realm, "profile") is not None
    assert client_role_names(admin, realm, "app") == {"viewer", "handmade"}
    assert set(mapper_configs(client_rep(admin, realm, "app"))) == {"tier", "hand-mapper"}
    assert service_account_roles(admin, realm, "app") == {f"default-roles-{realm}", "app/viewer"}

    # Step 4: drift by hand; the plan shows exactly that drift and apply puts it back.
    admin.update_client(
        realm, app_client.id, {"redirectUris": ["https://evil.example.org/*"], "secret": "rotated-by-hand"}
    )
    tier = next(m for m in admin.list_protocol_mappers(realm, "clients", app_client.id) if m.name == "tier")
    admin.update_protocol_mapper(
        realm,
        "clients",
        app_client.id,
        tier.id,
        {
            "name": "tier",
            "protocol": "openid-connect",
            "protocolMapper": tier.mapper,
            "config": {**tier.config, "claim.value": "bronze"},
        },
    )
    profile = admin.find_client_scope(realm, "profile")
    assert profile is not None
    admin.unlink_client_scope(realm, app_client.id, profile.id, optional=False)
    user = admin.service_account_user(realm, app_client.id)
    assert user is not None
    viewer = admin.get_client_role(realm, app_client.id, "viewer")
    assert viewer is not None
    admin.remove_client_roles_from_user(realm, user.id, app_client.id, [viewer])

    drift = planned(keycloak_connection, spec)
    assert changes_of(drift) == {
        ("update", "clients", "app"),
        ("update", "protocol mappers", "client app: tier"),
        ("update", "service account roles", "app"),
    }
    assert fields_of(drift, "clients", "app") == {
        "redirectUris": (["https://evil.example.org/*"], ["https://app.example.org/callback"]),
        "secret": ("(value hidden)", "(value hidden)"),
        "default_client_scopes": (["email", "phone"], ["email", "phone", "profile"]),
    }
    assert fields_of(drift, "protocol mappers", "client app: tier") == {"config.claim.value": ("bronze", "platinum")}
    assert fields_of(drift, "service account roles", "app") == {"roles": ([], ["app/viewer"])}
    apply_and_converge(keycloak_connection, spec)
    assert client_rep(admin, realm, "app")["redirectUris"] == ["https://app.example.org/callback"]
    assert token_claims(admin, realm, "app", "app-secret-1")["tier"] == "platinum"
    assert token_refused(admin, realm, "app", "rotated-by-hand")


def test_02_empty_client_list_deletes_only_owned_clients(
    keycloak_connection: KeycloakConnection, admin: KeycloakGateway, realm: str
) -> None:
    # Step 1: the agent creates one client; another one and an agent service account are made by hand.
    # An empty list is written as "", which Keycloak stores as no attribute at all: still converges.
    owned_app = {"client_id": "owned-app", "post_logout_redirect_uris": []}
    apply_and_converge(keycloak_connection, spec_of({"realm": realm, "clients": [owned_app]}))
    admin.create_client(realm, {"clientId": "handmade"})
    admin.create_client(realm, {"clientId": "idp-agent-ops", "serviceAccountsEnabled": True})
    built_ins = {"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"}

    # Step 2: `clients: []` in the default mode deletes only what the agent created.
    plan = apply_and_converge(keycloak_connection, spec_of({"realm": realm, "clients": []}))
    assert changes_of(plan) == {("delete", "clients", "owned-app")}
    live = {client.client_id for client in admin.list_clients(realm)}
    assert live == built_ins | {"handmade", "idp-agent-ops"}

    # Step 3: fully managed, unwritten clients go too; built-ins and the agent's own clients never do.
    plan = apply_and_converge(
        keycloak_connection, spec_of({"realm": realm, "clients": [], "managed": {"clients": "full"}})
    )
    assert changes_of(plan) == {("delete", "clients", "handmade")}
    assert {client.client_id for client in admin.list_clients(realm)} == built_ins | {"idp-agent-ops"}


def test_03_secret_changed_in_environment_is_applied_once_and_never_shown(
    keycloak_connection: KeycloakConnection, admin: KeycloakGateway, realm: str
) -> None:
    first, second = "canary-7f3a9c1e-first", "canary-b41d0e77-second"

    def spec(secret: str) -> RealmSpec:
        client = {"client_id": "app", "secret": Secret(secret), "service_account": True, "standard_flow": False}
        return spec_of({"realm": realm, "clients": [client]})

    # Step 1: created with the first secret.
    plan = apply_and_converge(keycloak_connection, spec(first))
    assert fields_of(plan, "clients", "app")["secret"] == (None, "(value hidden)")
    assert token_claims(admin, realm, "app", first)["azp"] == "app"

    # Step 2: the files stay, the environment's secret changes: one change, hidden, applied once.
    drift = planned(keycloak_connection, spec(second))
    assert changes_of(drift) == {("update", "clients", "app")}
    assert fields_of(drift, "clients", "app") == {"secret": ("(value hidden)", "(value hidden)")}
    for shown in (render_text([plan]), render_json([plan]), render_text([drift]), render_json([drift]), repr(drift)):
        assert first not in shown and second not in shown and "canary" not in shown
    apply_and_converge(keycloak_connection, spec(second))
    assert token_claims(admin, realm, "app", second)["azp"] == "app"
    assert token_refused(admin, realm, "app", first)
    live = admin.get_realm(realm)
    assert live is not None
    recorded = live.representation["attributes"]["idp-agent.fingerprint.client.app.secret"]
    assert recorded and second not in recorded


def test_04_token_carries_mapped_claims_and_service_account_roles(
    keycloak_connection: KeycloakConnection, admin: KeycloakGateway, realm: str
) -> None:
    scope_claim = hardcoded_claim("scope-claim", "from_scope", "yes")
    spec = spec_of(
        {
            "realm": realm,
            "roles": [{"name": "auditor"}],
            "client_scopes": [{"name": "extra", "protocol_mappers": [scope_claim]}],
            "clients": [
                {
                    "client_id": "app",
                    "secret": Secret("token-test-secret"),
                    "service_account": True,
                    "default_client_scopes": ["extra", "profile", "roles"],
                    "protocol_mappers": [TIER, SA_NAME],
                    "roles": [{"name": "viewer"}, {"name": "editor", "composites": {"clients": {"app": ["viewer"]}}}],
                    "service_account_roles": {"realm": ["auditor"], "clients": {"app": ["editor"]}},
                }
            ],
        }
    )
    apply_and_converge(keycloak_connection, spec)
    claims = token_claims(admin, realm, "app", "token-test-secret")
    assert claims["tier"] == "gold"  # hardcoded-claim mapper of the client
    assert claims["sa_name"] == "service-account-app"  # user-attribute mapper on the service-account user
    assert claims["from_scope"] == "yes"  # mapper of a default client scope
    assert "auditor" in claims["realm_access"]["roles"]
    assert set(claims["resource_access"]["app"]["roles"]) == {"editor", "viewer"}  # composite expanded


def test_05_mappers_not_written_are_deleted_only_when_fully_managed(
    keycloak_connection: KeycloakConnection, admin: KeycloakGateway, realm: str
) -> None:
    # Step 1: a client made by hand, with its own mapper; the config adds one mapper to it.
    client_uuid = admin.create_client(realm, {"clientId": "legacy"})
    admin.create_protocol_mapper(realm, "clients", client_uuid, made_by_hand("hand"))
    data: dict[str, Any] = {"realm": realm, "clients": [{"client_id": "legacy", "protocol_mappers": [TIER]}]}
    plan = apply_and_converge(keycloak_connection, spec_of(data))
    assert changes_of(plan) == {("create", "protocol mappers", "client legacy: tier")}
    assert set(mapper_configs(client_rep(admin, realm, "legacy"))) == {"hand", "tier"}
    assert "idp-agent.managed" not in client_rep(admin, realm, "legacy")["attributes"]  # not adopted

    # Step 2: fully managed mappers: the hand-made one goes.
    plan = apply_and_converge(keycloak_connection, spec_of({**data, "managed": {"protocol_mappers": "full"}}))
    assert changes_of(plan) == {("delete", "protocol mappers", "client legacy: hand")}
    assert set(mapper_configs(client_rep(admin, realm, "legacy"))) == {"tier"}

    # Step 3: an empty list removes the mapper the agent made.
    data["clients"] = [{"client_id": "legacy", "protocol_mappers": []}]
    plan = apply_and_converge(keycloak_connection, spec_of(data))
    assert changes_of(plan) == {("delete", "protocol mappers", "client legacy: tier")}
    assert mapper_configs(client_rep(admin, realm, "legacy")) == {}


def test_06_export_then_plan_shows_no_client_changes(
    keycloak_connection: KeycloakConnection, admin: KeycloakGateway, realm: str, tmp_path: Path
) -> None:
    # Step 1: a realm with clients, scopes, mappers and roles, part by the agent and part by hand.
    apply_and_converge(keycloak_connection, spec_of(lifecycle_spec(realm, 1)))
    legacy = admin.create_client(realm, {"clientId": "legacy", "publicClient": True, "redirectUris": ["https://l/*"]})
    admin.create_client_role(realm, legacy, "reader", {"description": "Reads"})
    mapper = {
        "name": "email-claim",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-attribute-mapper",
        "config": {"user.attribute": "email", "claim.name": "mail", "jsonType.label": "String"},
    }
    admin.create_protocol_mapper(realm, "clients", legacy, mapper)

    # Step 2: export as `idp-agent export` does, and load it back as YAML with the secret from the environment.
    live = admin.get_realm(realm)
    assert live is not None
    friendly = friendly_from_representation({**live.representation, **admin.export_realm(realm)})
    text = yaml.safe_dump(friendly, sort_keys=False)
    assert "app-secret-1" not in text and "${env:CLIENT_SECRET_APP}" in text
    folder = tmp_path / "realm-config" / realm
    folder.mkdir(parents=True)
    (folder / "realm.yaml").write_text(text, encoding="utf-8")
    env = {"CLIENT_SECRET_APP": "app-secret-1", "CLIENT_SECRET_SPA": "unused"}
    (sourced,) = load_realms([tmp_path / "realm-config"], policies_dir=tmp_path / "policies", env=env)

    # Step 3: planning the export against the realm it came from changes no client.
    plan = planned(keycloak_connection, sourced.spec)
    assert [change for change in plan.changes if change.kind in CLIENT_KINDS] == []
