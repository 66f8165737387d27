"""Terms and conditions with versions, as numbered steps against a real Keycloak.

Raising the version adds TERMS_AND_CONDITIONS to every existing user (never to service accounts); the
version is recorded last, so an interrupted raise is finished by the next run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from agent.errors import Unavailable
from agent.keycloak import KeycloakGateway, RetryPolicy, User, UserDraft
from agent.realm import engine
from agent.realm.engine import apply_plan, plan_realm
from agent.realm.kinds.terms import TERMS_ACTION, VERSION_ATTRIBUTE, ask_every_user
from agent.realm.plan import Plan
from agent.secrets import Secret
from agent.settings import KeycloakConnection, LdapConnection
from agent.stack.demo_directory import PEOPLE
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.federation import add_disabled_ldap_federation, add_ldap_federation
from tests.harness.realm_steps import apply_and_converge, planned, spec_of
from tests.integration.test_realm_mfa_login import KINDS, Browser, add_client, password_of

FAST_RETRY = RetryPolicy(max_attempts=2, base_seconds=0.01, cap_seconds=0.02)


@pytest.fixture(autouse=True)
def registered_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in KINDS:
        monkeypatch.setitem(engine.KINDS_BY_NAME, kind.name, kind)


def terms_spec(realm: str, version: int, **terms: Any) -> dict[str, Any]:
    return {"realm": realm, "terms": {"version": version, **terms}}


def keys(plan: Plan) -> list[tuple[str, str, str, str]]:
    return [(change.action, change.kind, change.key, change.note) for change in plan.changes]


def add_users(gateway: KeycloakGateway, realm: str, count: int) -> dict[str, str]:
    """`count` users (the first also has to verify its email), by username."""
    ids = {}
    for index in range(count):
        name = f"user{index:02d}"
        actions = ("VERIFY_EMAIL",) if index == 0 else ()
        draft = UserDraft(name, email=f"{name}@example.org", first_name="U", last_name=name, required_actions=actions)
        ids[name] = gateway.create_user(realm, draft)
    return ids


def add_service_account(gateway: KeycloakGateway, realm: str) -> str:
    client = gateway.create_client(realm, {"clientId": "batch", "serviceAccountsEnabled": True, "publicClient": False})
    account = gateway.service_account_user(realm, client)
    assert account is not None
    return account.id


def required_actions(gateway: KeycloakGateway, realm: str, user_id: str) -> set[str]:
    user = gateway.get_user(realm, user_id)
    assert user is not None
    return set(user.required_actions)


def recorded(gateway: KeycloakGateway, realm: str) -> str | None:
    live = gateway.get_realm(realm)
    assert live is not None
    value = (live.representation.get("attributes") or {}).get(VERSION_ATTRIBUTE)
    return None if value is None else str(value)


def terms_action(gateway: KeycloakGateway, realm: str) -> tuple[bool, bool]:
    action = next(a for a in gateway.list_required_actions(realm) if a.alias == TERMS_ACTION)
    return action.enabled, action.default_action


def test_terms_steps(keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str) -> None:
    users = add_users(gateway, realm, 3)
    robot = add_service_account(gateway, realm)

    # Step 1: terms version 1: the action is enabled and default; existing users are not asked.
    plan = apply_and_converge(keycloak_connection, spec_of(terms_spec(realm, 1)), KINDS)
    assert keys(plan) == [
        ("update", "terms", TERMS_ACTION, ""),
        ("create", "terms", "version", "existing users are not asked; new users accept at their first login"),
    ]
    assert terms_action(gateway, realm) == (True, True) and recorded(gateway, realm) == "1"
    assert all(TERMS_ACTION not in required_actions(gateway, realm, uid) for uid in users.values())
    newcomer = gateway.create_user(realm, UserDraft("newcomer"))
    assert TERMS_ACTION in required_actions(gateway, realm, newcomer), "a default action is given to new users"

    # Step 2: version 2: the plan says how many users must accept again; every user (not the service
    # account) gets the action, keeping the ones it had.
    spec = spec_of(terms_spec(realm, 2))
    plan = planned(keycloak_connection, spec, KINDS)
    assert keys(plan) == [("update", "terms", "version", "4 users must accept again")]
    assert [(f.field, f.live, f.desired) for f in plan.changes[0].fields] == [("version", 1, 2)]
    apply_and_converge(keycloak_connection, spec, KINDS)
    assert required_actions(gateway, realm, users["user00"]) == {"VERIFY_EMAIL", TERMS_ACTION}
    assert all(TERMS_ACTION in required_actions(gateway, realm, uid) for uid in [*users.values(), newcomer])
    assert TERMS_ACTION not in required_actions(gateway, realm, robot)
    assert recorded(gateway, realm) == "2"

    # Step 3: a user who accepts is not asked again while the version stays.
    gateway.set_user_required_actions(realm, users["user01"], ())
    assert planned(keycloak_connection, spec, KINDS).is_empty

    # Step 4: the action disabled by hand is drift, shown and fixed; users are not asked again for it.
    gateway.update_required_action(realm, TERMS_ACTION, {"enabled": False, "defaultAction": False})
    drift = planned(keycloak_connection, spec, KINDS)
    assert keys(drift) == [("update", "terms", TERMS_ACTION, "")]
    assert [(f.field, f.live, f.desired) for f in drift.changes[0].fields] == [
        ("enabled", False, True),
        ("defaultAction", False, True),
    ]
    apply_and_converge(keycloak_connection, spec, KINDS)
    assert terms_action(gateway, realm) == (True, True)
    assert TERMS_ACTION not in required_actions(gateway, realm, users["user01"])


def test_a_user_asked_again_sees_the_terms_at_login(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    add_client(gateway, realm)
    user = gateway.create_user(realm, UserDraft("reader", email="reader@example.org", first_name="R", last_name="D"))
    gateway.set_password(realm, user, Secret(password_of("reader")))
    apply_and_converge(keycloak_connection, spec_of(terms_spec(realm, 1)), KINDS)
    apply_and_converge(keycloak_connection, spec_of(terms_spec(realm, 2)), KINDS)

    browser = Browser(keycloak_connection.url, realm)
    terms_page = browser.submit(browser.open_login(), username="reader", password=password_of("reader"))
    assert terms_page.code is None and 'name="accept"' in terms_page.page

    assert browser.submit(terms_page, accept="").code
    assert TERMS_ACTION not in required_actions(gateway, realm, user)
    assert planned(keycloak_connection, spec_of(terms_spec(realm, 2)), KINDS).is_empty


FIRST_APPLICATIONS = [
    ({}, "existing users are not asked; new users accept at their first login", False),
    ({"first_apply": "all-users"}, "2 users must accept", True),
    ({"required": False}, "terms not required: nobody is asked", False),
]


@pytest.mark.parametrize("case", FIRST_APPLICATIONS, ids=["default", "all-users", "not-required"])
def test_first_application(
    keycloak_connection: KeycloakConnection,
    gateway: KeycloakGateway,
    realm: str,
    case: tuple[dict[str, Any], str, bool],
) -> None:
    terms, expected_note, asked = case
    users = add_users(gateway, realm, 2)
    spec = spec_of(terms_spec(realm, 1, **terms))

    plan = planned(keycloak_connection, spec, KINDS)
    apply_and_converge(keycloak_connection, spec, KINDS)

    assert plan.changes[-1].note == expected_note
    assert [TERMS_ACTION in required_actions(gateway, realm, uid) for uid in users.values()] == [asked, asked]
    assert recorded(gateway, realm) == "1"


def test_interrupted_raise_converges(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    users = add_users(gateway, realm, 6)
    apply_and_converge(keycloak_connection, spec_of(terms_spec(realm, 1)), KINDS)
    spec = spec_of(terms_spec(realm, 2))

    # Step 1: Keycloak fails the PUT of the fourth user (the pack lists users by id): the run stops, the version is
    # not recorded.
    by_id = sorted(users.values())  # Keycloak's ids are UUIDs: ordered alike here and in its database
    stuck = by_id[3]
    with FaultProxy(keycloak_connection.url) as proxy:
        proxied = KeycloakGateway.connect(replace(keycloak_connection, url=proxy.url), retry=FAST_RETRY)
        plan = plan_realm(proxied, spec, KINDS)
        proxy.add(Fault("status", rf"/users/{stuck}$", method="PUT", status=503, times=100))
        with pytest.raises(Unavailable):
            apply_plan(proxied, plan)
        proxied.close()
    asked = {uid for uid in users.values() if TERMS_ACTION in required_actions(gateway, realm, uid)}
    assert asked == set(by_id[:3]) and recorded(gateway, realm) == "1"

    # Step 2: the raise is still planned; applying it writes only the users left and the version.
    plan = planned(keycloak_connection, spec, KINDS)
    assert [(change.key, change.note) for change in plan.changes] == [("version", "6 users must accept again")]
    fresh = KeycloakGateway.connect(keycloak_connection)
    try:
        assert apply_plan(fresh, plan_realm(fresh, spec, KINDS)).ok
        assert fresh.stats.writes == len(users) - len(asked) + 1
    finally:
        fresh.close()
    assert all(TERMS_ACTION in required_actions(gateway, realm, uid) for uid in users.values())
    assert recorded(gateway, realm) == "2"
    apply_and_converge(keycloak_connection, spec, KINDS)


def delete_once_asked(
    gateway: KeycloakGateway, realm: str, monkeypatch: pytest.MonkeyPatch, *, asked: str, doomed: str
) -> None:
    """Once `asked` has been asked, `doomed` is deleted (someone else's cleanup, during the pass)."""
    write = gateway.set_user_required_actions

    def write_then_delete(realm_: str, user_id: str, actions: Any) -> None:
        write(realm_, user_id, actions)
        if user_id == asked:
            gateway.delete_user(realm, doomed)

    monkeypatch.setattr(gateway, "set_user_required_actions", write_then_delete)


def test_a_user_deleted_during_a_raise_makes_no_one_else_skip_the_terms(
    gateway: KeycloakGateway, realm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the admin API (the pack steps aside for a realm with user federation), pages of 3 by offset: user00
    deleted once asked moves user03 into the page already read. A pass that asked someone is followed by another,
    so user03 is asked too."""
    users = add_users(gateway, realm, 10)
    add_disabled_ldap_federation(gateway, realm)
    assert gateway.plugin_raw_users(realm) is None
    delete_once_asked(gateway, realm, monkeypatch, asked=users["user00"], doomed=users["user00"])

    assert ask_every_user(gateway, realm, page_size=3) == 10
    left = {name: uid for name, uid in users.items() if name != "user00"}
    assert all(TERMS_ACTION in required_actions(gateway, realm, uid) for uid in left.values())


def test_through_the_pack_one_pass_by_id_reaches_everyone(
    gateway: KeycloakGateway, realm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pack's listing, by id: one pass, no admin listing. The last user listed is deleted once the first is
    asked: it is skipped (nobody left to ask), the others are asked."""
    users = add_users(gateway, realm, 10)
    by_id = sorted(users.values())  # the pack's order
    delete_once_asked(gateway, realm, monkeypatch, asked=by_id[0], doomed=by_id[-1])
    listings: list[object] = []

    def admin_listing(*args: object, **kwargs: object) -> Iterator[User]:
        listings.append(args)
        return iter(())

    monkeypatch.setattr(gateway, "list_users", admin_listing)

    assert ask_every_user(gateway, realm) == 9
    assert listings == []
    assert all(TERMS_ACTION in required_actions(gateway, realm, uid) for uid in by_id[:-1])


def test_a_raise_asks_the_users_keycloak_stores_and_says_who_it_cannot_ask(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, demo_ldap: LdapConnection
) -> None:
    """The directory's people through a federation that does not import them: Keycloak refuses their required
    actions (read only), so asking them would fail every apply. The plan names the federation; the apply asks
    the realm's own users and records the version."""
    users = add_users(gateway, realm, 2)
    add_ldap_federation(gateway, realm, demo_ldap, import_users=False)
    apply_and_converge(keycloak_connection, spec_of(terms_spec(realm, 1)), KINDS)
    spec = spec_of(terms_spec(realm, 2))

    plan = planned(keycloak_connection, spec, KINDS)
    note = (
        "2 users must accept again; users of corp cannot be asked: Keycloak keeps required actions only for users "
        "it stores (turn import on to ask them)"
    )
    assert keys(plan) == [("update", "terms", "version", note)]
    apply_and_converge(keycloak_connection, spec, KINDS)

    assert all(TERMS_ACTION in required_actions(gateway, realm, uid) for uid in users.values())
    listed = {user.username: user for user in gateway.list_users(realm, brief=False)}
    assert set(listed) == set(users) | {person.uid for person in PEOPLE}
    assert not any(TERMS_ACTION in listed[person.uid].required_actions for person in PEOPLE)
    assert recorded(gateway, realm) == "2"
