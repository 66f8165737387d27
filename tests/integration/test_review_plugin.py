"""The idp-agent Keycloak plugin (`plugins/keycloak`, built into the test stack's Keycloak) against the admin API:
the same snapshot from one request, the same permissions a reviewer needs, and the admin API where the plugin
must not answer (user federation, an account that may not view users)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from agent.errors import AuthError
from agent.keycloak import KeycloakGateway
from agent.keycloak.transport import realm_path
from agent.review.model import RoleRef, Snapshot
from agent.review.snapshot import take_snapshot
from agent.settings import KeycloakConnection
from agent.store import ManualClock, Store, open_store
from tests.conftest import realm_name_for
from tests.harness.accounts import service_account
from tests.harness.federation import add_disabled_ldap_federation
from tests.integration.test_review_snapshot import NOW, POLICY, found_rules, seed

LONG_VALUE = "x" * 400  # over 255 characters: Keycloak keeps it in its own column


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}", now=ManualClock(NOW)) as opened:
        yield opened


def seed_more(gateway: KeycloakGateway, realm: str, ids: dict[str, str]) -> None:
    """Beyond `seed`: a client role mapped straight on a user, a required action, a long attribute value, a
    disabled user."""
    app = gateway.create_client(realm, {"clientId": "ledger", "publicClient": True})
    gateway.create_client_role(realm, app, "auditor")
    auditor = gateway.get_client_role(realm, app, "auditor")
    assert auditor is not None
    gateway.add_client_roles_to_user(realm, ids["direct"], app, [auditor])
    newbie = gateway.get_user(realm, ids["newbie"])
    assert newbie is not None
    attributes = {**{name: list(values) for name, values in newbie.attributes.items()}, "note": [LONG_VALUE, "short"]}
    gateway.update_user(realm, ids["newbie"], {"requiredActions": ["UPDATE_PASSWORD"], "attributes": attributes})
    gateway.update_user(realm, ids["gone"], {"enabled": False})


def without_unread_credentials(by_api: Snapshot, by_plugin: Snapshot) -> tuple[object, ...]:
    """The plugin's users, with credentials forgotten where the admin API path did not read them (it reads
    them only for privileged people without OTP)."""
    unread = {user.id for user in by_api.users if user.credential_types is None}
    return tuple(replace(user, credential_types=None) if user.id in unread else user for user in by_plugin.users)


def assert_same(by_api: Snapshot, by_plugin: Snapshot) -> None:
    assert not by_api.stats.via_plugin and by_plugin.stats.via_plugin
    assert without_unread_credentials(by_api, by_plugin) == by_api.users
    assert dict(by_plugin.access) == dict(by_api.access)
    assert by_plugin.groups == by_api.groups and by_plugin.roles == by_api.roles
    assert found_rules(by_plugin) == found_rules(by_api)


def test_the_plugin_reads_the_same_snapshot_as_the_admin_api_in_a_few_requests(
    gateway: KeycloakGateway, realm: str, store: Store
) -> None:
    ids = seed(gateway, realm)
    seed_more(gateway, realm, ids)
    by_api = take_snapshot(gateway, store, realm, policy=POLICY, use_plugin=False)
    by_plugin = take_snapshot(gateway, store, realm, policy=POLICY)
    assert_same(by_api, by_plugin)
    # The export, the members, and the one page of users with where the pages end (none); no per-user
    # credential read, yet everyone's are known.
    assert by_plugin.stats.requests == 3 and by_plugin.stats.credential_reads == 0
    assert by_api.stats.credential_reads == 1
    users = {user.username: user for user in by_plugin.users}
    assert users["secure"].totp and users["secure"].credential_types == frozenset({"otp"})
    assert users["clean"].credential_types == frozenset() and not users["clean"].totp
    assert users["newbie"].required_actions == ("UPDATE_PASSWORD",)
    assert set(users["newbie"].attributes["note"]) == {LONG_VALUE, "short"}
    assert not users["gone"].enabled
    assert "robot" not in users and "service-account-robot" in users  # the export's service account, once
    auditor = by_plugin.access_of(ids["direct"]).grant("role", "ledger/auditor")
    assert auditor is not None


def test_the_default_roles_members_come_from_the_plugin_when_asked_for(
    gateway: KeycloakGateway, realm: str, store: Store
) -> None:
    ids = seed(gateway, realm)
    by_api = take_snapshot(gateway, store, realm, policy=POLICY, use_plugin=False, default_role_members="always")
    by_plugin = take_snapshot(gateway, store, realm, policy=POLICY, default_role_members="always")
    assert_same(by_api, by_plugin)
    default = RoleRef(f"default-roles-{realm}")
    assert by_plugin.access_of(ids["clean"]).grant("role", default.label) is not None
    skipped = take_snapshot(gateway, store, realm, policy=POLICY)
    assert skipped.stats.via_plugin and skipped.access_of(ids["clean"]).grant("role", default.label) is None


def test_a_reviewer_that_may_only_view_gets_the_plugins_answer(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str, store: Store
) -> None:
    seed(gateway, realm)
    roles = ["view-realm", "view-users", "view-clients"]
    reviewer = KeycloakGateway.connect(service_account(gateway, keycloak_connection, realm, "svc-review", roles))
    try:
        by_reviewer = take_snapshot(reviewer.read_only(), store, realm, policy=POLICY)
    finally:
        reviewer.close()
    by_api = take_snapshot(gateway, store, realm, policy=POLICY, use_plugin=False)
    assert_same(by_api, by_reviewer)


def test_the_structure_carries_no_secret_and_a_viewer_needs_nothing_more(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str
) -> None:
    """access/structure stands in for the partial export, which Keycloak keeps to manage-realm for its secrets."""
    seed(gateway, realm)
    roles = ["view-realm", "view-users", "view-clients"]
    reviewer = service_account(gateway, keycloak_connection, realm, "svc-review", roles)
    assert reviewer.client_secret is not None
    viewer = KeycloakGateway.connect(reviewer)
    try:
        token = viewer.tokens.access_token()
        url = keycloak_connection.url.rstrip("/") + realm_path(realm, "idp-agent", "access", "structure")
        answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    finally:
        viewer.close()
    assert answer.status_code == 200
    assert reviewer.client_secret.reveal() not in answer.text
    clients = {client["clientId"]: client for client in answer.json()["clients"]}
    assert "secret" not in clients["svc-review"] and clients["svc-review"]["serviceAccountsEnabled"] is True
    accounts = {account["username"]: account for account in answer.json()["users"]}
    assert "credentials" not in accounts["service-account-svc-review"]
    assert set(accounts["service-account-svc-review"]["clientRoles"]["realm-management"]) == set(roles)


PAGE_PEOPLE = 1_050  # more than one page of the admin API's listing below


def seed_people(gateway: KeycloakGateway, realm: str) -> None:
    people = [
        {
            "username": f"p{index:05d}", "enabled": True, "email": f"p{index:05d}@example.org",
            "attributes": {"employeeNumber": [str(index)], "department": [f"d{index % 7}"]},
            "requiredActions": ["UPDATE_PASSWORD"] if index % 100 == 0 else [],
            "credentials": [{"type": "password", "value": "Pass-word-1"}] if index % 500 == 1 else [],
        }
        for index in range(PAGE_PEOPLE)
    ]  # fmt: skip
    profile = gateway.get_user_profile(realm)  # so that the admin API shows the attributes too
    gateway.update_user_profile(realm, replace(profile, unmanaged_attribute_policy="ENABLED"))
    for start in range(0, PAGE_PEOPLE, 350):
        gateway.import_users(realm, people[start : start + 350])


def test_ranges_read_at_once_give_every_user_once_in_id_order(gateway: KeycloakGateway, realm: str) -> None:
    """The bounds end every run of 200 ids; a page asked with `until` stops there; the ranges between the bounds,
    read three at once, give the 1,050 users of the full listing, once each, in id order."""
    seed_people(gateway, realm)
    listed = gateway.list_raw_users(realm, page_size=1000)
    ids = sorted(str(raw["id"]) for raw in listed)  # Keycloak's ids are UUIDs: ordered alike here and in its database
    bounds = gateway._plugin_user_bounds(realm, 200)
    assert bounds == [ids[position - 1] for position in (200, 400, 600, 800, 1000)]
    page = gateway._plugin_users_page(realm, ids[199], ids[210], 5000) or []
    assert [raw["id"] for raw in page] == ids[200:211]
    by_plugin = [raw["id"] for raw in gateway.plugin_raw_users(realm, page_size=200, workers=3) or ()]
    assert by_plugin == ids and len(ids) == PAGE_PEOPLE


def test_a_user_added_between_the_first_page_and_the_bounds_is_read_and_no_user_twice(
    gateway: KeycloakGateway, realm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first page comes with the bounds, in one request; a pack from before that gives them apart. Here they are
    read apart, and between the two a user is added whose id sorts before every other, so the bounds no longer end
    where that page did: the realm is read by the bounds, every user once, the new one too. Without a change in
    between, the first page is not read again: one request a page, the bounds with the first."""
    seed_people(gateway, realm)
    first_read = threading.Event()
    read_first, read_bounds = gateway._plugin_first_page, gateway._plugin_user_bounds

    def page_without_bounds(realm: str, page_size: int) -> Any:
        found = read_first(realm, page_size)
        first_read.set()
        return None if found is None else (found[0], None)

    def bounds_after_a_new_user(realm: str, every: int) -> list[str] | None:
        assert first_read.wait(30)
        gateway.import_users(realm, [{"id": FIRST_ID, "username": "a-newcomer", "enabled": True}])
        return read_bounds(realm, every)

    before = gateway.stats.requests
    unchanged = [raw["id"] for raw in gateway.plugin_raw_users(realm, page_size=200, workers=3) or ()]
    assert len(unchanged) == PAGE_PEOPLE and gateway.stats.requests - before == 6  # six pages
    monkeypatch.setattr(gateway, "_plugin_first_page", page_without_bounds)
    monkeypatch.setattr(gateway, "_plugin_user_bounds", bounds_after_a_new_user)
    read = [raw["id"] for raw in gateway.plugin_raw_users(realm, page_size=200, workers=3) or ()]
    assert read[0] == FIRST_ID and read[1:] == unchanged


FIRST_ID = "00000000-0000-0000-0000-000000000001"


def test_a_user_renamed_while_the_realm_is_read_is_read_once_with_its_attributes(
    gateway: KeycloakGateway, realm: str
) -> None:
    """Between the reads of two ranges, the last user of the unread range is renamed to sort before every other
    username: it is still read, once, with its attributes. (Paged by username, it moved into the range already
    read and was missed; a page's attributes were selected by username too.)"""
    seed_people(gateway, realm)
    gateway.update_realm(realm, {"editUsernameAllowed": True})
    bounds = gateway._plugin_user_bounds(realm, 525)
    assert bounds is not None and len(bounds) == 2
    ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
    renamed = (gateway._plugin_users_page(realm, *ranges[1], 5000) or [])[-1]
    read = list(gateway._plugin_users_page(realm, *ranges[0], 5000) or [])
    gateway.update_user(realm, renamed["id"], {"username": "a-renamed"})
    for after, until in ranges[1:]:
        read += gateway._plugin_users_page(realm, after, until, 5000) or []
    assert len(read) == len({raw["id"] for raw in read}) == PAGE_PEOPLE
    found = next(raw for raw in read if raw["id"] == renamed["id"])
    assert found["username"] == "a-renamed"
    assert found["attributes"]["employeeNumber"] == renamed["attributes"]["employeeNumber"]


def test_a_page_of_a_thousand_users_carries_everyones_details_as_the_full_listing_does(
    gateway: KeycloakGateway, realm: str
) -> None:
    """One plugin page of 1,050 users, its attributes, required actions and credential types read by id range:
    every user's must be the full listing's (the smaller realms of the other tests fit in a few rows)."""
    seed_people(gateway, realm)
    listed = {raw["id"]: raw for raw in gateway.list_raw_users(realm, page_size=1000)}
    by_plugin = list(gateway.plugin_raw_users(realm, page_size=5000) or ())
    assert len(by_plugin) == len(listed) == PAGE_PEOPLE
    for raw in by_plugin:
        full = listed[raw["id"]]
        assert raw["attributes"] == full["attributes"], raw["username"]
        assert sorted(raw["requiredActions"]) == sorted(full["requiredActions"]), raw["username"]
    with_password = sorted(raw["username"] for raw in by_plugin if "password" in raw["credentialTypes"])
    assert with_password == ["p00001", "p00501", "p01001"]


def plugin_status(connection: KeycloakConnection, realm: str, token: str | None, *path: str) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = connection.url.rstrip("/") + realm_path(realm, "idp-agent", *(path or ("access", "memberships")))
    return requests.get(url, headers=headers, timeout=30).status_code


def test_the_plugin_refuses_whoever_may_not_view_users_and_the_snapshot_then_uses_the_admin_api(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str
) -> None:
    seed(gateway, realm)
    assert plugin_status(keycloak_connection, realm, None) == 401
    assert plugin_status(keycloak_connection, realm, "not-a-token") == 401
    no_users = service_account(gateway, keycloak_connection, realm, "svc-partial", ["view-realm", "view-clients"])
    partial = KeycloakGateway.connect(no_users)
    try:
        assert plugin_status(keycloak_connection, realm, partial.tokens.access_token()) == 403
        assert plugin_status(keycloak_connection, realm, partial.tokens.access_token(), "access", "users-by-id") == 403
        assert plugin_status(keycloak_connection, realm, partial.tokens.access_token(), "access", "structure") == 403
        assert partial.plugin_access(realm) is None and partial.plugin_raw_users(realm) is None
    finally:
        partial.close()
    # The users need view-users only; the members need view-realm and view-clients too.
    users_only = KeycloakGateway.connect(
        service_account(gateway, keycloak_connection, realm, "svc-users", ["view-users"])
    )
    try:
        token = users_only.tokens.access_token()
        assert plugin_status(keycloak_connection, realm, token, "access", "users-by-id") == 200
        assert plugin_status(keycloak_connection, realm, token) == 403
        assert plugin_status(keycloak_connection, realm, token, "access", "structure") == 403
        assert len(list(users_only.plugin_raw_users(realm) or ())) == gateway.count_users(realm)
    finally:
        users_only.close()
    assert plugin_status(keycloak_connection, realm, None, "access", "users-by-id") == 401
    assert plugin_status(keycloak_connection, realm, gateway.tokens.access_token()) == 200


def test_a_realm_with_user_federation_is_read_through_the_admin_api(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str, store: Store
) -> None:
    seed(gateway, realm)
    assert gateway.plugin_access(realm) is not None
    add_disabled_ldap_federation(gateway, realm)
    assert plugin_status(keycloak_connection, realm, gateway.tokens.access_token()) == 409
    assert plugin_status(keycloak_connection, realm, gateway.tokens.access_token(), "access", "users-by-id") == 409
    # The structure is read through the model API, as the export is: federation makes no difference to it.
    assert plugin_status(keycloak_connection, realm, gateway.tokens.access_token(), "access", "structure") == 200
    assert gateway.plugin_access(realm) is None
    snapshot = take_snapshot(gateway, store, realm, policy=POLICY)
    assert not snapshot.stats.via_plugin
    assert snapshot.users == take_snapshot(gateway, store, realm, policy=POLICY, use_plugin=False).users


def test_an_account_of_another_realm_is_refused_as_the_admin_api_refuses_it(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str, request: pytest.FixtureRequest
) -> None:
    """A realm's own reviewer may read that realm, not its neighbour: only the master realm's admins reach across."""
    seed(gateway, realm)
    other = realm_name_for(f"{request.node.name}-other")
    gateway.create_realm(other)
    try:
        roles = ["view-realm", "view-users", "view-clients"]
        outsider = KeycloakGateway.connect(service_account(gateway, keycloak_connection, other, "svc-review", roles))
        try:
            token = outsider.tokens.access_token()
            assert plugin_status(keycloak_connection, other, token) == 200  # its own realm
            assert plugin_status(keycloak_connection, realm, token) == 403
            assert plugin_status(keycloak_connection, realm, token, "access", "users-by-id") == 403
            assert plugin_status(keycloak_connection, other, token, "access", "structure") == 200
            assert plugin_status(keycloak_connection, realm, token, "access", "structure") == 403
            assert outsider.plugin_access(realm) is None
            with pytest.raises(AuthError):  # the admin API's answer to the same account
                outsider.get_realm(realm)
        finally:
            outsider.close()
    finally:
        gateway.delete_realm(other)
