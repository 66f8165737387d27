"""Required actions and MFA flow changes as numbered steps against a real Keycloak.

After every apply a second plan is empty and applying it writes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from agent.errors import Unavailable
from agent.keycloak import KeycloakGateway, RetryPolicy
from agent.realm import engine
from agent.realm.engine import apply_plan, plan_realm
from agent.realm.kinds.flows import BUILT_IN_BROWSER, OWNED_FLOWS_ATTRIBUTE
from agent.realm.plan import Plan
from agent.settings import KeycloakConnection
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.realm_steps import apply_and_converge, planned, spec_of
from tests.integration.test_realm_mfa_login import KINDS, add_client, add_user, asks_otp_setup, log_in

FAST_RETRY = RetryPolicy(max_attempts=2, base_seconds=0.01, cap_seconds=0.02)


@pytest.fixture(autouse=True)
def registered_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in KINDS:
        monkeypatch.setitem(engine.KINDS_BY_NAME, kind.name, kind)


def keys(plan: Plan) -> list[tuple[str, str, str]]:
    return [(change.action, change.kind, change.key) for change in plan.changes]


def fields(plan: Plan, key: str) -> dict[str, tuple[Any, Any]]:
    change = next(change for change in plan.changes if change.key == key)
    return {field.field: (field.live, field.desired) for field in change.fields}


def actions(gateway: KeycloakGateway, realm: str) -> dict[str, Any]:
    return {action.alias: action for action in gateway.list_required_actions(realm)}


# -- required actions -------------------------------------------------------------------------------------


def test_required_actions_steps(keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str) -> None:
    # Step 1: set priority, config, default and enabled on three actions.
    step1 = [
        {"alias": "UPDATE_PASSWORD", "priority": 5, "config": {"max_auth_age": 600}},
        {"alias": "CONFIGURE_TOTP", "default_action": True},
        {"alias": "delete_account", "enabled": True},
    ]
    plan = apply_and_converge(keycloak_connection, spec_of({"realm": realm, "required_actions": step1}), KINDS)
    assert keys(plan) == [
        ("update", "required actions", "UPDATE_PASSWORD"),
        ("update", "required actions", "CONFIGURE_TOTP"),
        ("update", "required actions", "delete_account"),
    ]
    live = actions(gateway, realm)
    assert (live["UPDATE_PASSWORD"].priority, dict(live["UPDATE_PASSWORD"].config)) == (5, {"max_auth_age": "600"})
    # Keycloak's PUT replaces the whole action: name and other fields must survive the overlay.
    assert live["UPDATE_PASSWORD"].name == "Update Password" and live["UPDATE_PASSWORD"].enabled
    assert live["CONFIGURE_TOTP"].default_action and live["delete_account"].enabled

    # Step 2: change one config key; a key set by hand and not written is kept.
    gateway.update_required_action(realm, "UPDATE_PASSWORD", {"config": {"max_auth_age": "600", "extra": "kept"}})
    step2 = [{**step1[0], "priority": 7, "config": {"max_auth_age": "900"}}, *step1[1:]]
    spec2 = spec_of({"realm": realm, "required_actions": step2})
    assert fields(planned(keycloak_connection, spec2, KINDS), "UPDATE_PASSWORD") == {
        "priority": (5, 7),
        "config": ({"max_auth_age": "600", "extra": "kept"}, {"max_auth_age": "900"}),
    }
    apply_and_converge(keycloak_connection, spec2, KINDS)
    assert dict(actions(gateway, realm)["UPDATE_PASSWORD"].config) == {"max_auth_age": "900", "extra": "kept"}

    # Step 3: an action no longer listed is left as it is (never deleted); unlisted ones were never touched.
    spec3 = spec_of({"realm": realm, "required_actions": step2[1:]})
    assert planned(keycloak_connection, spec3, KINDS).is_empty
    live = actions(gateway, realm)
    assert live["UPDATE_PASSWORD"].priority == 7 and not live["VERIFY_PROFILE"].default_action

    # Step 4: drift by hand is shown field by field and put back.
    gateway.update_required_action(realm, "CONFIGURE_TOTP", {"defaultAction": False})
    drift = planned(keycloak_connection, spec3, KINDS)
    assert keys(drift) == [("update", "required actions", "CONFIGURE_TOTP")]
    assert fields(drift, "CONFIGURE_TOTP") == {"defaultAction": (False, True)}
    apply_and_converge(keycloak_connection, spec3, KINDS)
    assert actions(gateway, realm)["CONFIGURE_TOTP"].default_action


def test_unregistered_provider_is_registered_and_unknown_one_is_rejected(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    # Step 1: an installed provider taken out of the realm by hand is registered again, with its fields.
    gateway.unregister_required_action(realm, "delete_account")
    spec = spec_of({"realm": realm, "required_actions": [{"alias": "delete_account", "enabled": False, "priority": 3}]})
    plan = planned(keycloak_connection, spec, KINDS)
    assert keys(plan) == [("create", "required actions", "delete_account")]
    assert plan.changes[0].note == "register"
    apply_and_converge(keycloak_connection, spec, KINDS)
    registered = actions(gateway, realm)["delete_account"]
    assert (registered.enabled, registered.priority, registered.name) == (False, 3, "Delete Account")

    # Step 2: a provider Keycloak does not have is named in the plan and refused at apply; the rest goes on.
    spec = spec_of(
        {"realm": realm, "required_actions": [{"alias": "no-such-action"}, {"alias": "VERIFY_EMAIL", "priority": 1}]}
    )
    plan = planned(keycloak_connection, spec, KINDS)
    assert "not installed" in plan.changes[0].note
    result = apply_plan(gateway, plan)
    assert [change.key for change, _ in result.failed] == ["no-such-action"]
    assert actions(gateway, realm)["VERIFY_EMAIL"].priority == 1


# -- MFA flow changes -------------------------------------------------------------------------------------


def flow_spec(realm: str, roles: list[str] | None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"realm": realm, "roles": [{"name": "admin"}, {"name": "auditor"}], **extra}
    if roles is not None:
        spec["mfa"] = {"otp_for_roles": roles}
    return spec


def bound_flow(gateway: KeycloakGateway, realm: str) -> str:
    live = gateway.get_realm(realm)
    assert live is not None
    return str(live.representation["browserFlow"])


def owned_record(gateway: KeycloakGateway, realm: str) -> list[str]:
    live = gateway.get_realm(realm)
    assert live is not None
    return list(json.loads((live.representation.get("attributes") or {}).get(OWNED_FLOWS_ATTRIBUTE, "[]")))


def flow_aliases(gateway: KeycloakGateway, realm: str) -> set[str]:
    return {flow.alias for flow in gateway.list_flows(realm)}


@pytest.fixture
def users(gateway: KeycloakGateway, realm: str) -> Iterator[None]:
    """Roles first (as the realm spec writes them), then a client and one user per role."""
    for name in ("admin", "auditor"):
        gateway.create_realm_role(realm, name)
    add_client(gateway, realm)
    add_user(gateway, realm, "ada", roles=("admin",))
    add_user(gateway, realm, "aud", roles=("auditor",))
    add_user(gateway, realm, "plain")
    yield


@pytest.mark.usefixtures("users")
def test_mfa_flow_steps(keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str) -> None:
    url = keycloak_connection.url
    hand_made = "hand-made browser"
    gateway.copy_flow(realm, BUILT_IN_BROWSER, hand_made)

    # Step 1: MFA for admin: a copy is built under alias + digest, bound, and recorded as owned.
    plan = apply_and_converge(keycloak_connection, spec_of(flow_spec(realm, ["admin"])), KINDS)
    first = bound_flow(gateway, realm)
    assert keys(plan) == [("create", "flows", first)] and first.startswith("idp-agent browser ")
    assert owned_record(gateway, realm) == [first]
    assert asks_otp_setup(log_in(url, realm, "ada")[1]) and log_in(url, realm, "aud")[1].code

    # Step 2: roles change: a new flow is built and bound, then the old one deleted.
    plan = apply_and_converge(keycloak_connection, spec_of(flow_spec(realm, ["admin", "auditor"])), KINDS)
    second = bound_flow(gateway, realm)
    assert keys(plan) == [("create", "flows", second), ("delete", "flows", first)]
    assert fields(plan, second)["otp for roles"] == (["admin"], ["admin", "auditor"])
    assert first not in flow_aliases(gateway, realm) and owned_record(gateway, realm) == [second]
    assert asks_otp_setup(log_in(url, realm, "aud")[1]) and log_in(url, realm, "plain")[1].code

    # Step 3: someone rebinds the built-in browser flow by hand: the plan shows exactly that, apply fixes it.
    gateway.update_realm(realm, {"browserFlow": BUILT_IN_BROWSER})
    spec = spec_of(flow_spec(realm, ["admin", "auditor"]))
    drift = planned(keycloak_connection, spec, KINDS)
    assert keys(drift) == [("update", "flows", "browserFlow")]
    assert fields(drift, "browserFlow") == {"browserFlow": (BUILT_IN_BROWSER, second)}
    apply_and_converge(keycloak_connection, spec, KINDS)
    assert bound_flow(gateway, realm) == second

    # Step 4: someone disables OTP inside the bound flow: rebuilt under a free alias, the edit shown.
    otp = [row for row in gateway.flow_executions(realm, second) if row.provider_id == "auth-otp-form"][-1]
    gateway.set_execution_requirement(realm, second, otp, "DISABLED")
    drift = planned(keycloak_connection, spec, KINDS)
    assert keys(drift) == [("create", "flows", f"{second}-2"), ("delete", "flows", second)]
    assert fields(drift, f"{second}-2")["other steps"] == (
        ["forms > MFA auditor > auth-otp-form DISABLED"],
        ["forms > MFA auditor > auth-otp-form REQUIRED"],
    )
    apply_and_converge(keycloak_connection, spec, KINDS)
    assert bound_flow(gateway, realm) == f"{second}-2"

    # Step 5: mfa written with no roles: the built-in browser flow is bound again and the owned flow
    # deleted; the hand-made flow, never owned, stays. (Leaving `mfa` out would leave MFA unmanaged.)
    plan = apply_and_converge(keycloak_connection, spec_of(flow_spec(realm, [])), KINDS)
    assert keys(plan) == [("update", "flows", "browserFlow"), ("delete", "flows", f"{second}-2")]
    assert bound_flow(gateway, realm) == BUILT_IN_BROWSER
    assert hand_made in flow_aliases(gateway, realm) and owned_record(gateway, realm) == []
    assert log_in(url, realm, "ada")[1].code


def custom_flows(gateway: KeycloakGateway, realm: str) -> set[str]:
    return {flow.alias for flow in gateway.list_flows(realm) if not flow.built_in}


def apply_through_faults(connection: KeycloakConnection, spec: Any, *faults: Fault) -> None:
    """Plan, then apply through a proxy injecting `faults`: the run must stop on Keycloak being unavailable."""
    with FaultProxy(connection.url) as proxy:
        proxied = KeycloakGateway.connect(replace(connection, url=proxy.url), retry=FAST_RETRY)
        try:
            plan = plan_realm(proxied, spec, KINDS)
            for fault in faults:
                proxy.add(fault)
            with pytest.raises(Unavailable):
                apply_plan(proxied, plan)
        finally:
            proxied.close()


@pytest.mark.usefixtures("users")
def test_interrupted_flow_change_converges(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    apply_and_converge(keycloak_connection, spec_of(flow_spec(realm, ["admin"])), KINDS)
    first = bound_flow(gateway, realm)
    spec = spec_of(flow_spec(realm, ["auditor"]))

    # Step 1: the build stops half-way (Keycloak fails a config POST): the half-built copy stays unbound.
    config_post = Fault("status", r"/authentication/executions/[^/]+/config$", method="POST", status=503)
    apply_through_faults(keycloak_connection, spec, config_post)
    (partial,) = custom_flows(gateway, realm) - {first}
    assert bound_flow(gateway, realm) == first and owned_record(gateway, realm) == [first, partial]

    # Step 2: the next plan builds under a free alias and deletes both the old and the half-built flow;
    # this time every delete fails, after the new flow is bound.
    replanned = planned(keycloak_connection, spec, KINDS)
    assert sorted(keys(replanned)) == sorted(
        [("create", "flows", f"{partial}-2"), ("delete", "flows", first), ("delete", "flows", partial)]
    )
    deletes = Fault("status", r"/authentication/flows/[^/]+$", method="DELETE", status=503, times=100)
    apply_through_faults(keycloak_connection, spec, deletes)
    assert bound_flow(gateway, realm) == f"{partial}-2"

    # Step 3: only the deletes are left; applying them converges.
    assert {change.action for change in planned(keycloak_connection, spec, KINDS).changes} == {"delete"}
    apply_and_converge(keycloak_connection, spec, KINDS)
    assert custom_flows(gateway, realm) == {f"{partial}-2"} and owned_record(gateway, realm) == [f"{partial}-2"]


@pytest.fixture
def unborn_realm(gateway: KeycloakGateway) -> Iterator[str]:
    """A realm name nobody has created yet; deleted afterwards if a test created it."""
    name = f"t-unborn-{uuid.uuid4().hex[:6]}"
    yield name
    if gateway.get_realm(name) is not None:
        gateway.delete_realm(name)


def test_new_realm_with_required_actions_terms_and_mfa_in_one_apply(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, unborn_realm: str
) -> None:
    spec = spec_of(
        {
            **flow_spec(unborn_realm, None),
            "groups": [{"path": "/ops"}],
            "required_actions": [{"alias": "UPDATE_PASSWORD", "priority": 5}],
            "terms": {"version": 3},
            "mfa": {"otp_for_roles": ["admin"], "otp_for_groups": ["/ops"]},
        }
    )

    plan = apply_and_converge(keycloak_connection, spec, KINDS)

    assert not plan.realm_exists
    assert ("create", "flows", "idp-agent browser") in keys(plan)
    bound = bound_flow(gateway, unborn_realm)
    assert bound.startswith("idp-agent browser ") and owned_record(gateway, unborn_realm) == [bound]
    assert next(a for a in gateway.list_required_actions(unborn_realm) if a.alias == "UPDATE_PASSWORD").priority == 5
    role = gateway.get_realm_role(unborn_realm, "idp-agent-mfa-required")
    assert role is not None
    assert [g.path for g in gateway.list_role_groups(unborn_realm, role.name)] == ["/ops"]
