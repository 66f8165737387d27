"""Realm settings, roles, composites, groups, grants and defaults: numbered steps against a real Keycloak.

After every apply a second plan must be empty and write nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.keycloak import KeycloakGateway
from agent.realm.password_policy import PasswordPolicySpec
from agent.realm.plan import Plan
from agent.realm.render import render_json, render_text
from agent.settings import KeycloakConnection
from tests.conftest import realm_name_for
from tests.harness.realm_steps import apply_and_converge, planned, spec_of


def _keys(plan: Plan) -> list[tuple[str, str, str]]:
    return [(change.action, change.kind, change.key) for change in plan.changes]


def base(realm: str, **extra: Any) -> dict[str, Any]:
    return {"realm": realm, **extra}


@pytest.fixture
def new_realm(gateway: KeycloakGateway) -> Any:
    name = realm_name_for("core")
    yield name
    if gateway.get_realm(name) is not None:
        gateway.delete_realm(name)


def test_00_create_realm_with_settings(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, new_realm: str
) -> None:
    spec = spec_of(
        base(
            new_realm,
            display_name="Core",
            registration={"allowed": True, "verify_email": True, "login_with_email": True},
            sessions={"idle_timeout": "30m", "access_token_lifespan": "5m"},
            events={"enabled": True, "types": ["LOGIN", "LOGIN_ERROR"], "expiration": "90d", "admin_events": True},
            internationalization={"supported_locales": ["en", "de"], "default_locale": "en"},
            password_policy=PasswordPolicySpec(min_length=14, digits=1, not_username=True, history=5),
            lockout={
                "max_failures": 5,
                "wait_increment": "1m",
                "max_wait": "15m",
                "failure_reset": "12h",
                "permanent_after": 3,
            },
            otp_policy={"algorithm": "HmacSHA256", "digits": 6, "period": 30},
        )
    )
    plan = apply_and_converge(keycloak_connection, spec)

    assert _keys(plan) == [("create", "realm", new_realm)]
    live = gateway.get_realm(new_realm)
    assert live is not None
    rep = live.representation
    assert rep["displayName"] == "Core" and rep["registrationAllowed"] and rep["verifyEmail"]
    assert (rep["ssoSessionIdleTimeout"], rep["accessTokenLifespan"]) == (1800, 300)
    assert rep["eventsEnabled"] and set(rep["enabledEventTypes"]) == {"LOGIN", "LOGIN_ERROR"}
    assert rep["eventsExpiration"] == 90 * 86400
    assert "length(14)" in rep["passwordPolicy"] and "passwordHistory(5)" in rep["passwordPolicy"]
    assert (rep["bruteForceProtected"], rep["failureFactor"], rep["permanentLockout"], rep["maxTemporaryLockouts"]) == (
        True, 5, True, 3)  # fmt: skip
    assert rep["otpPolicyAlgorithm"] == "HmacSHA256"
    assert set(rep["supportedLocales"]) == {"en", "de"} and rep["defaultLocale"] == "en"


def test_01_settings_update_and_drift(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    spec = spec_of(base(realm, display_name="One", registration={"allowed": False}, sessions={"idle_timeout": "1h"}))
    apply_and_converge(keycloak_connection, spec)

    # Step 2: the config changes one field.
    spec = spec_of(base(realm, display_name="Two", registration={"allowed": False}, sessions={"idle_timeout": "1h"}))
    plan = planned(keycloak_connection, spec)
    [change] = plan.changes
    assert [(f.field, f.live, f.desired) for f in change.fields] == [("displayName", "One", "Two")]
    apply_and_converge(keycloak_connection, spec)

    # Step 3: someone changes a managed field and an unmanaged one by hand in the admin console.
    gateway.update_realm(realm, {"registrationAllowed": True, "rememberMe": True})
    drift = planned(keycloak_connection, spec)
    [change] = drift.changes
    assert [(f.field, f.live, f.desired) for f in change.fields] == [("registrationAllowed", True, False)]
    apply_and_converge(keycloak_connection, spec)
    live = gateway.get_realm(realm)
    assert live is not None
    assert live.representation["registrationAllowed"] is False
    assert live.representation["rememberMe"] is True  # not managed: left as set by hand


def test_02_roles_groups_grants_defaults(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    spec = spec_of(
        base(
            realm,
            roles=[
                {"name": "user", "description": "Ordinary user"},
                {"name": "premium", "composites": {"realm": ["user"]}},
                {
                    "name": "admin",
                    "attributes": {"level": "3"},
                    "composites": {"realm": ["premium"], "clients": {"realm-management": ["view-users"]}},
                },
            ],
            groups=[
                {"path": "/customers", "realm_roles": ["user"]},
                {
                    "path": "/staff/admins",
                    "realm_roles": ["admin"],
                    "attributes": {"owner": ["security"]},
                    "client_roles": {"realm-management": ["view-events"]},
                },
            ],
            default_roles=["user", "offline_access"],
            default_groups=["/customers"],
        )
    )
    apply_and_converge(keycloak_connection, spec)

    admins = gateway.find_group_by_path(realm, "/staff/admins")
    assert admins is not None
    assert admins.realm_roles == ("admin",)
    assert admins.client_roles == {"realm-management": ("view-events",)}
    assert dict(admins.attributes)["owner"] == ("security",)
    admin_role = gateway.get_realm_role(realm, "admin")
    assert admin_role is not None
    members = {(m.client_role, m.name) for m in gateway.role_composites(realm, admin_role.id)}
    assert members == {(False, "premium"), (True, "view-users")}
    assert [g.path for g in gateway.list_default_groups(realm)] == ["/customers"]

    # Step 2: a user is created and gets exactly the default roles through the realm's default composite.
    from agent.keycloak import UserDraft

    newcomer = gateway.create_user(realm, UserDraft("newcomer"))
    effective = {role.name for role in gateway.user_realm_roles(realm, newcomer, effective=True)}
    assert {"user", "offline_access"} <= effective
    assert "uma_authorization" not in effective  # dropped from the defaults: the list written is authoritative

    # Step 3: change grants and composites; drop `premium` from the config.
    spec = spec_of(
        base(
            realm,
            roles=[
                {"name": "user"},
                {"name": "admin", "attributes": {"level": "3"}, "composites": {"realm": ["user"]}},
            ],
            groups=[
                {"path": "/customers", "realm_roles": ["user"]},
                {"path": "/staff/admins", "realm_roles": ["user", "admin"]},
            ],
            default_roles=["user"],
            default_groups=[],
        )
    )
    plan = planned(keycloak_connection, spec)
    assert ("delete", "realm roles", "premium") in _keys(plan)
    assert ("delete", "groups", "/staff") not in _keys(plan)
    apply_and_converge(keycloak_connection, spec)
    assert gateway.get_realm_role(realm, "premium") is None
    assert gateway.list_default_groups(realm) == []


def test_03_unowned_objects_are_kept_and_deleted_owned_ones_recreated(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    spec = spec_of(base(realm, roles=[{"name": "a"}, {"name": "b"}], groups=[{"path": "/team"}, {"path": "/team/x"}]))
    apply_and_converge(keycloak_connection, spec)
    # Made by hand: not owned, so never deleted in the default mode.
    gateway.create_realm_role(realm, "hand-made")
    team = gateway.find_group_by_path(realm, "/team")
    assert team is not None
    gateway.create_group_with(realm, "hand-child", team.id)
    # An owned object deleted out of band comes back on the next apply.
    gateway.delete_realm_role(realm, "b")

    spec = spec_of(base(realm, roles=[{"name": "a"}, {"name": "b"}], groups=[]))
    plan = planned(keycloak_connection, spec)
    assert ("create", "realm roles", "b") in _keys(plan)
    assert ("delete", "realm roles", "hand-made") not in _keys(plan)
    assert ("delete", "groups", "/team/x") in _keys(plan)
    # /team holds a child the agent does not own: deleting it would take that child along.
    assert ("delete", "groups", "/team") not in _keys(plan)
    apply_and_converge(keycloak_connection, spec)
    assert gateway.get_realm_role(realm, "hand-made") is not None
    assert gateway.find_group_by_path(realm, "/team/hand-child") is not None
    assert gateway.get_realm_role(realm, "b") is not None


def test_04_modes_full_and_no_delete(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    gateway.create_realm_role(realm, "stranger")
    apply_and_converge(keycloak_connection, spec_of(base(realm, roles=[{"name": "mine"}])))

    no_delete = spec_of(base(realm, roles=[], managed={"realm_roles": "no-delete"}))
    assert planned(keycloak_connection, no_delete).is_empty

    full = spec_of(base(realm, roles=[], managed={"realm_roles": "full"}))
    plan = planned(keycloak_connection, full)
    assert sorted(_keys(plan)) == [("delete", "realm roles", "mine"), ("delete", "realm roles", "stranger")]
    apply_and_converge(keycloak_connection, full)
    # Built-in roles survive even a fully managed kind.
    names = {role.name for role in gateway.list_realm_roles(realm)}
    assert {"offline_access", "uma_authorization", f"default-roles-{realm}"} <= names


def test_05_smtp_secret_is_hidden_and_applied_once(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    from agent.secrets import Secret

    canary = "canary-smtp-8Zk2"
    smtp = {"host": "127.0.0.1", "port": 2525, "from": "noreply@example.org", "user": "mailer"}
    spec = spec_of(base(realm, smtp={**smtp, "password": Secret(canary)}))
    plan = planned(keycloak_connection, spec)
    assert canary not in render_text([plan]) and canary not in render_json([plan])
    assert "(value hidden)" in render_text([plan])
    apply_and_converge(keycloak_connection, spec)

    # The secret changes in the environment while the files do not: applied once.
    rotated = spec_of(base(realm, smtp={**smtp, "password": Secret(canary + "-rotated")}))
    plan = planned(keycloak_connection, rotated)
    [change] = plan.changes
    assert [(f.field, f.shown()) for f in change.fields] == [
        ("smtpServer.password", ("(value hidden)", "(value hidden)"))
    ]
    assert canary not in render_json([plan])
    apply_and_converge(keycloak_connection, rotated)
    exported = gateway.export_realm(realm)
    assert canary not in str(exported)


def test_06_plan_of_new_realm_reads_nothing_but_the_realm(keycloak_connection: KeycloakConnection) -> None:
    name = realm_name_for("never-created")
    gateway = KeycloakGateway.connect(keycloak_connection)
    try:
        spec = spec_of(base(name, roles=[{"name": "r"}], groups=[{"path": "/g"}]))
        plan = plan_realm_read_only(gateway, spec)
        assert not plan.realm_exists
        assert _keys(plan)[0] == ("create", "realm", name)
        assert gateway.stats.writes == 0
        assert gateway.stats.by_method["GET"] <= 2
    finally:
        gateway.close()


def plan_realm_read_only(gateway: KeycloakGateway, spec: Any) -> Plan:
    from agent.realm.engine import plan_realm

    return plan_realm(gateway.read_only(), spec)


def test_07_mfa_group_may_grant_roles_too(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    spec = spec_of(
        base(
            realm,
            roles=[{"name": "finance-approver"}],
            groups=[{"path": "/finance", "realm_roles": ["finance-approver"]}],
            mfa={"otp_for_groups": ["/finance"]},
        )
    )
    apply_and_converge(keycloak_connection, spec)

    finance = gateway.find_group_by_path(realm, "/finance")
    assert finance is not None
    assert set(finance.realm_roles) == {"finance-approver", "idp-agent-mfa-required"}

    # Leaving `mfa` out leaves MFA as it is (not managed).
    grants = {
        "roles": [{"name": "finance-approver"}],
        "groups": [{"path": "/finance", "realm_roles": ["finance-approver"]}],
    }
    assert planned(keycloak_connection, spec_of(base(realm, **grants))).is_empty

    # `mfa` with no groups and no roles: the group stops requiring OTP but keeps the role it grants.
    apply_and_converge(keycloak_connection, spec_of(base(realm, **grants, mfa={"otp_for_groups": []})))
    finance = gateway.find_group_by_path(realm, "/finance")
    assert finance is not None and finance.realm_roles == ("finance-approver",)


def test_08_attributes_left_out_of_the_config_are_not_managed_and_written_ones_are_managed_whole(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    """Keycloak replaces a role's or group's attributes whole: an update of the description must not drop a key
    added by hand when the config writes no attributes; when it writes them, a key added by hand is drift."""
    apply_and_converge(
        keycloak_connection,
        spec_of(base(realm, roles=[{"name": "a", "description": "old"}, {"name": "b", "attributes": {"tier": ["1"]}}])),
    )
    for name in ("a", "b"):
        role = gateway.get_realm_role(realm, name)
        assert role is not None
        gateway.update_realm_role(realm, name, {"attributes": {**role.attributes, "ticket": ["SEC-42"]}})

    spec = spec_of(
        base(realm, roles=[{"name": "a", "description": "new"}, {"name": "b", "attributes": {"tier": ["1"]}}])
    )
    plan = planned(keycloak_connection, spec)

    assert [(change.key, [field.field for field in change.fields]) for change in plan.changes] == [
        ("a", ["description"]),
        ("b", ["attributes"]),  # the hand-made ticket on a role whose attributes the config writes
    ]
    apply_and_converge(keycloak_connection, spec)
    kept = gateway.get_realm_role(realm, "a")
    managed = gateway.get_realm_role(realm, "b")
    assert kept is not None and kept.description == "new" and kept.attributes.get("ticket") == ("SEC-42",)
    assert managed is not None and "ticket" not in managed.attributes
