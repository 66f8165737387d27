"""Joiners, movers, leavers and rehires against a real Keycloak, from desired users (sources and mapping
are tested on their own). After every run, a second plan is empty and applying it writes nothing.

Every test runs twice: people's changes written in bulk by the plugin, and through the admin API (where the
plugin is not installed, or the realm has user federation); both must leave Keycloak the same."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import requests

from agent.keycloak import KeycloakGateway, UserDraft
from agent.keycloak.transport import admin_path
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.store.db import open_store
from agent.store.journal import JournalEntry
from agent.sync.executor import SyncExecutor
from agent.sync.found_held import FOUND_HELD, settle_found_held
from agent.sync.grants import GrantRecord, Grants, grant_record
from agent.sync.live import check_profile_keeps_attributes
from agent.sync.model import (
    DISABLED_BY_SYNC_ATTRIBUTE,
    EXTERNAL_ID_ATTRIBUTE,
    DesiredUser,
    Found,
    NotFound,
    SourceRecord,
)
from agent.sync.outcomes import SyncOutcome
from agent.sync.people_changes import read_targets
from agent.sync.plan import FOUND_DISABLED, STARTS_AGAIN, SyncContext, SyncItem, SyncPlan, plan_sync
from agent.sync.quick_read import read_live_directory, realm_settings, usernames_editable
from agent.sync.runner import intent_entry
from tests.harness.accounts import lock_out_by_failed_logins
from tests.harness.offline_tokens import offline_login, refresh_status
from tests.harness.realm_steps import apply_spec, spec_of

SOURCE = "hr-sync"
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ATTRIBUTES = ("department", "title")
IN_BULK = True  # set per test by `write_path`


@pytest.fixture(autouse=True, params=["plugin", "admin-api"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys.modules[__name__], "IN_BULK", request.param == "plugin")
    return str(request.param)


@pytest.fixture
def sync_realm(keycloak_connection: KeycloakConnection, realm: str) -> str:
    apply_spec(
        keycloak_connection,
        spec_of(
            {
                "realm": realm,
                "roles": [{"name": "employee"}, {"name": "finance-approver"}],
                "groups": [{"path": "/staff"}, {"path": "/finance"}, {"path": "/sales"}, {"path": "/hand-made"}],
                "user_profile": {"unmanaged_attributes": "admin_edit"},
                "registration": {"edit_username": True},
                "required_actions": [{"alias": "VERIFY_EMAIL", "enabled": True, "default_action": True}],
            }
        ),
    )
    return realm


def person(external_id: str, username: str, **extra: Any) -> DesiredUser:
    values: dict[str, Any] = {
        "email": f"{username}@example.org",
        "first_name": username.title(),
        "last_name": "Tester",
        "groups": frozenset({"/staff"}),
        "realm_roles": frozenset({"employee"}),
        "attributes": {"department": ("Sales",)},
    }
    values.update(extra)
    return DesiredUser(external_id=external_id, source=SOURCE, username=username, **values)


@dataclass
class Directory:
    """Stands for the source of truth's exact lookup by immutable id (what the leaver check asks)."""

    present: set[str]

    def lookup(self, external_id: str) -> Found | NotFound:
        if external_id in self.present:
            return Found(SourceRecord(SOURCE, {"id": external_id}))
        return NotFound()


def plan_for(
    gateway: KeycloakGateway, realm: str, people: Iterable[DesiredUser], now: datetime,
    journal: Sequence[JournalEntry] = (), **context: Any,
) -> SyncPlan:  # fmt: skip
    """As a run plans (runner.prepare_sync): then what the people granted something already hold is read."""
    directory = read_live_directory(gateway, realm, SOURCE)
    settings = SyncContext(
        realm=realm, source=SOURCE, now=now, managed_attributes=ATTRIBUTES,
        usernames_editable=usernames_editable(realm_settings(gateway, realm)), **context,
    )  # fmt: skip
    everyone = list(people)
    plan = plan_sync(everyone, [], directory.managed, directory.all_users, settings)
    # What people hold is read through the plugin on the plugin's write path, through the admin API on the other.
    client_ids = {client for desired in everyone for client, _ in desired.client_roles}
    targets = read_targets(gateway, realm, client_ids) if IN_BULK else None
    return settle_found_held(gateway, plan, sync=SOURCE, journal_of=lambda username: journal, targets=targets)


def sync(
    connection: KeycloakConnection, realm: str, people: list[DesiredUser], *, now: datetime = NOW,
    present: set[str] | None = None, settles: bool = True, journal: Sequence[JournalEntry] = (), **context: Any,
) -> tuple[SyncPlan, SyncOutcome]:  # fmt: skip
    """One sync run, then the proof that it converged: a second plan is empty and writes nothing (unless
    `settles` is False: a run that leaves work for the next on purpose). `journal`: what the store's journal
    holds about the people (the same for each of them)."""
    gateway = KeycloakGateway.connect(connection)
    lookup = Directory(present if present is not None else {p.external_id for p in people}).lookup
    try:
        check_profile_keeps_attributes(realm, gateway.get_user_profile(realm), ATTRIBUTES)
        plan = plan_for(gateway, realm, people, now, journal, **context)
        live = read_live_directory(gateway, realm, SOURCE).by_user_id()
        executor = SyncExecutor(
            gateway, plan, now=now, attribute_names=ATTRIBUTES, lookup=lookup, live_users=live, in_bulk=IN_BULK
        )
        outcome = executor.run()
        assert not outcome.failed, outcome.failed
        assert executor.in_bulk == IN_BULK  # the plugin took every bulk change it was given
    finally:
        gateway.close()
    if not settles:
        return plan, outcome
    second = KeycloakGateway.connect(connection)
    try:
        again = plan_for(second, realm, people, now, **context)
        remaining = [
            (i.action, i.external_id)
            for i in again.items
            if i.action != "confirm-leaver" or i.external_id not in (present or set())
        ]
        assert remaining == [], remaining
        assert second.stats.writes == 0
    finally:
        second.close()
    return plan, outcome


def user_of(gateway: KeycloakGateway, realm: str, external_id: str) -> Any:
    [user] = list(gateway.list_users_with_attribute(realm, EXTERNAL_ID_ATTRIBUTE, external_id))
    return user


def groups_of(gateway: KeycloakGateway, realm: str, user_id: str) -> set[str]:
    return set(gateway.user_group_paths(realm, user_id))


def test_joiner_mover_rename_leaver_rehire(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    realm = sync_realm
    ann = person(
        "1001",
        "ann",
        groups=frozenset({"/staff", "/finance"}),
        realm_roles=frozenset({"employee", "finance-approver"}),
        attributes={"department": ("Finance",)},
    )
    bob = person("1002", "bob")

    # Step 1: joiners.
    plan, _ = sync(keycloak_connection, realm, [ann, bob])
    assert sorted((i.action, i.external_id) for i in plan.items) == [("create", "1001"), ("create", "1002")]
    created = user_of(gateway, realm, "1001")
    assert created.enabled and created.email == "ann@example.org"
    assert dict(created.attributes)["department"] == ("Finance",)
    assert "VERIFY_EMAIL" in created.required_actions  # the realm's default required action, added explicitly
    assert groups_of(gateway, realm, created.id) == {"/staff", "/finance"}
    effective = {role.name for role in gateway.user_realm_roles(realm, created.id, effective=True)}
    assert {"employee", "finance-approver", "offline_access"} <= effective  # default roles included

    # Step 2: a mover: Finance -> Sales. A group added by hand stays; only the sync's own grants move.
    hand_made = gateway.find_group_by_path(realm, "/hand-made")
    assert hand_made is not None
    gateway.add_user_to_group(realm, created.id, hand_made.id)
    moved = person("1001", "ann", groups=frozenset({"/staff", "/sales"}), attributes={"department": ("Sales",)})
    plan, _ = sync(keycloak_connection, realm, [moved, bob])
    assert {i.action for i in plan.items} == {"grant", "revoke", "update"}
    assert groups_of(gateway, realm, created.id) == {"/staff", "/sales", "/hand-made"}
    assert "finance-approver" not in {r.name for r in gateway.user_realm_roles(realm, created.id)}

    # Step 3: renamed in HR, new email: the same Keycloak user keeps its grants.
    renamed = person(
        "1001",
        "ann.smith",
        email="ann.smith@example.org",
        groups=frozenset({"/staff", "/sales"}),
        attributes={"department": ("Sales",)},
    )
    sync(keycloak_connection, realm, [renamed, bob])
    same = user_of(gateway, realm, "1001")
    assert (same.id, same.username, same.email) == (created.id, "ann.smith", "ann.smith@example.org")
    assert groups_of(gateway, realm, same.id) == {"/staff", "/sales", "/hand-made"}

    # Step 4: bob leaves (absent from the source, confirmed by an exact lookup): disabled, sessions ended.
    bob_user = user_of(gateway, realm, "1002")
    gateway.set_password(realm, bob_user.id, Secret("Bob-password-1!"))
    gateway.update_user(realm, bob_user.id, {"requiredActions": []})
    token = requests.post(
        f"{keycloak_connection.url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": "admin-cli", "username": "bob", "password": "Bob-password-1!"},
        timeout=30,
    )
    assert token.status_code == 200
    plan, _ = sync(keycloak_connection, realm, [renamed], present={"1001"})
    assert [(i.action, i.external_id) for i in plan.items] == [("confirm-leaver", "1002")]
    left = user_of(gateway, realm, "1002")
    assert not left.enabled
    assert gateway._get(admin_path(realm, "users", left.id, "sessions")) == []
    refreshed = requests.post(
        f"{keycloak_connection.url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "refresh_token", "client_id": "admin-cli", "refresh_token": token.json()["refresh_token"]},
        timeout=30,
    )
    assert refreshed.status_code == 400  # the old refresh token no longer works

    # Step 5: rehired within retention: the same account is enabled again.
    plan, _ = sync(keycloak_connection, realm, [renamed, bob])
    assert [(i.action, i.reason) for i in plan.items] == [("enable", "rehired")]
    assert user_of(gateway, realm, "1002").id == left.id and user_of(gateway, realm, "1002").enabled


def test_grants_an_admin_gave_by_hand_stay_when_a_rule_that_wanted_them_too_stops(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    """The sync removes only grants it gave. An admin put ann in /hand-made and gave her finance-approver and
    ledger's auditor by hand; then a rule wants all three (and /sales, which she does not hold). Only /sales is
    granted, the admin's three are recorded as found held, and when the rule stops wanting all four only /sales
    is removed."""
    realm = sync_realm
    ann = person("1001", "ann")
    sync(keycloak_connection, realm, [ann])
    user = user_of(gateway, realm, "1001")
    hand_made = gateway.find_group_by_path(realm, "/hand-made")
    approver = gateway.get_realm_role(realm, "finance-approver")
    assert hand_made is not None and approver is not None
    ledger = gateway.create_client(realm, {"clientId": "ledger", "publicClient": False})
    gateway.create_client_role(realm, ledger, "auditor")
    gateway.add_user_to_group(realm, user.id, hand_made.id)
    gateway.add_realm_roles_to_user(realm, user.id, [approver])
    gateway.add_client_roles_to_user(realm, user.id, ledger, gateway.list_client_roles(realm, ledger))
    wanted = person(
        "1001", "ann", groups=frozenset({"/staff", "/hand-made", "/sales"}),
        realm_roles=frozenset({"employee", "finance-approver"}), client_roles=frozenset({("ledger", "auditor")}),
    )  # fmt: skip

    plan, _ = sync(keycloak_connection, realm, [wanted])

    assert [item.grants for item in plan.of("grant")] == [Grants(groups=frozenset({"/sales"}))]
    held = Grants(frozenset({"/hand-made"}), frozenset({"finance-approver"}), frozenset({("ledger", "auditor")}))
    [update] = plan.of("update")
    assert update.found_held == held and FOUND_HELD in update.reason
    given = Grants(groups=frozenset({"/staff", "/sales"}), realm_roles=frozenset({"employee"}))
    assert grant_record(user_of(gateway, realm, "1001")) == GrantRecord(given, held)

    plan, _ = sync(keycloak_connection, realm, [ann])

    assert [item.grants for item in plan.of("revoke")] == [Grants(groups=frozenset({"/sales"}))]
    assert groups_of(gateway, realm, user.id) == {"/staff", "/hand-made"}
    assert "finance-approver" in {role.name for role in gateway.user_realm_roles(realm, user.id)}
    assert [role.name for role in gateway.user_client_roles(realm, user.id, ledger)] == ["auditor"]
    own = Grants(groups=frozenset({"/staff"}), realm_roles=frozenset({"employee"}))
    assert grant_record(user_of(gateway, realm, "1001")) == GrantRecord(own)


def test_a_grant_made_just_before_a_run_was_cut_off_stays_the_syncs_own(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str, tmp_path: Path
) -> None:
    """A run put ann in /sales and was cut off before it recorded the grant: the journal holds the grant's
    intent and no outcome. The next run finds /sales held, but it is the sync's grant: recorded as the sync's,
    and removed when no rule wants it any more."""
    realm = sync_realm
    ann = person("1001", "ann")
    sync(keycloak_connection, realm, [ann])
    user = user_of(gateway, realm, "1001")
    moved = person("1001", "ann", groups=frozenset({"/staff", "/sales"}))
    sales = gateway.find_group_by_path(realm, "/sales")
    assert sales is not None
    gateway.add_user_to_group(realm, user.id, sales.id)  # the cut-off run's write
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        grant = SyncItem("grant", "1001", "ann", user.id, moved, grants=Grants(groups=frozenset({"/sales"})))
        store.journal.append_many([intent_entry(grant, SOURCE, realm, "run-cut-off")])
        journal = store.journal.entries("ann")

    plan, _ = sync(keycloak_connection, realm, [moved], journal=journal)

    assert [item.grants for item in plan.of("grant")] == [Grants(groups=frozenset({"/sales"}))]
    assert grant_record(user_of(gateway, realm, "1001")).given.groups == {"/staff", "/sales"}
    plan, _ = sync(keycloak_connection, realm, [ann])
    assert [item.grants for item in plan.of("revoke")] == [Grants(groups=frozenset({"/sales"}))]
    assert groups_of(gateway, realm, user.id) == {"/staff"}


def test_absent_but_still_in_the_source_is_not_disabled(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    sync(keycloak_connection, sync_realm, [person("1", "cara"), person("2", "dan")])
    # A filter change drops dan from the listing, but the exact lookup still finds him: left alone.
    _, outcome = sync(keycloak_connection, sync_realm, [person("1", "cara")], present={"1", "2"})
    [result] = outcome.results
    assert (result.item.action, result.outcome) == ("confirm-leaver", "skipped")
    assert user_of(gateway, sync_realm, "2").enabled


def test_s06_a_leavers_email_reissued_to_a_new_hire_goes_to_a_new_account_of_their_own(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    """HR gives the leaver Erin's address to Fay. Keycloak keeps one account per email: the first run takes it off
    Erin's disabled account (nothing else of it changes), the next creates Fay's with it and none of Erin's access."""
    lead = person("10", "erin", email="team-lead@example.org", groups=frozenset({"/staff", "/finance"}))
    sync(keycloak_connection, sync_realm, [lead])
    sync(keycloak_connection, sync_realm, [], present=set())  # erin leaves
    hire = person("11", "fay", email="team-lead@example.org")

    plan, _ = sync(keycloak_connection, sync_realm, [hire], present=set(), settles=False)
    assert [(i.action, i.username, i.fields) for i in plan.items] == [
        ("update", "erin", (("email", "team-lead@example.org", None),))
    ]
    assert [(h.username, h.reason) for h in plan.held] == [
        ("fay", "email held by the disabled account of leaver 'erin': released in this run, the account is "
         "created at the next")
    ]  # fmt: skip
    erin = user_of(gateway, sync_realm, "10")
    assert erin.email is None and not erin.enabled and groups_of(gateway, sync_realm, erin.id) == {"/staff", "/finance"}
    assert erin.attributes[DISABLED_BY_SYNC_ATTRIBUTE]  # still the leaver the sync disabled

    plan, _ = sync(keycloak_connection, sync_realm, [hire], present=set())
    assert [(i.action, i.username) for i in plan.items] == [("create", "fay")]
    fay = user_of(gateway, sync_realm, "11")
    assert fay.id != erin.id and fay.email == "team-lead@example.org" and fay.enabled
    assert groups_of(gateway, sync_realm, fay.id) == {"/staff"}


def test_an_email_held_by_an_account_the_sync_did_not_disable_is_never_taken_from_it(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    """Only the account of a person who left, as the sync marked it, gives up an email: not one whose person is
    still in the sources (here disabled by an admin), nor one the sync does not manage."""
    lead = person("10", "erin", email="team-lead@example.org")
    sync(keycloak_connection, sync_realm, [lead])
    gateway.update_user(sync_realm, user_of(gateway, sync_realm, "10").id, {"enabled": False})  # by an admin
    gateway.create_user(sync_realm, UserDraft("ops", email="ops@example.org"))
    for hire in (person("11", "fay", email="team-lead@example.org"), person("12", "gus", email="ops@example.org")):
        plan, _ = sync(keycloak_connection, sync_realm, [lead, hire])
        assert plan.of("create") == () and [i for i in plan.items if i.action == "update"] == []
        assert "belongs to another account" in plan.rejected[0].reason
    assert user_of(gateway, sync_realm, "10").email == "team-lead@example.org"


def test_two_accounts_carrying_one_id_are_left_alone_then_both_disabled_when_the_person_leaves(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    """An admin restored an old account of Ivy's beside the one the sync made, with its bookkeeping."""
    ivy = person("15", "ivy")
    sync(keycloak_connection, sync_realm, [ivy])
    made = user_of(gateway, sync_realm, "15")
    copied = {key: values for key, values in made.attributes.items() if key.startswith("idp-agent.")}
    restored_id = gateway.create_user(
        sync_realm, UserDraft("ivy.old", email="ivy.old@example.org", attributes=MappingProxyType(copied))
    )

    # Ivy moves to Finance: which account is hers cannot be told, so neither changes.
    moved = person("15", "ivy", groups=frozenset({"/staff", "/finance"}), attributes={"department": ("Finance",)})
    plan, _ = sync(keycloak_connection, sync_realm, [moved])
    assert plan.items == ()
    assert sorted(held.username for held in plan.held) == ["ivy", "ivy.old"]
    assert all("2 accounts carry external id 15" in held.reason for held in plan.held)
    assert groups_of(gateway, sync_realm, made.id) == {"/staff"}
    assert dict(gateway.get_user(sync_realm, made.id).attributes)["department"] == ("Sales",)  # type: ignore[union-attr]

    # Ivy leaves: neither account outlives her.
    plan, _ = sync(keycloak_connection, sync_realm, [], present=set())
    assert sorted((i.action, i.user_id) for i in plan.items) == sorted(
        [("confirm-leaver", made.id), ("confirm-leaver", restored_id)]
    )
    for user_id in (made.id, restored_id):
        assert not gateway.get_user(sync_realm, user_id).enabled  # type: ignore[union-attr]


def test_sanctioned_and_admin_disabled_users_stay_disabled(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    gus, hal = person("20", "gus"), person("21", "hal")
    sync(keycloak_connection, sync_realm, [gus, hal])
    gus_id = user_of(gateway, sync_realm, "20").id
    hal_id = user_of(gateway, sync_realm, "21").id
    gateway.update_user(sync_realm, gus_id, {"enabled": False})  # suspended by the sanction engine
    gateway.update_user(sync_realm, hal_id, {"enabled": False})  # disabled by an admin by hand

    plan, _ = sync(keycloak_connection, sync_realm, [gus, hal], sanctioned=frozenset({gus_id}))

    assert plan.items == ()
    reasons = {held.username: held.reason for held in plan.held}
    assert "active sanction" in reasons["gus"] and "disabled outside the sync" in reasons["hal"]
    assert not user_of(gateway, sync_realm, "20").enabled and not user_of(gateway, sync_realm, "21").enabled


def test_locked_rehire_is_not_unlocked_by_the_sync(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    # A temporary lockout after one failure, long enough to outlast the test.
    gateway.update_realm(
        sync_realm,
        {"bruteForceProtected": True, "failureFactor": 1, "waitIncrementSeconds": 600, "maxFailureWaitSeconds": 900},
    )
    ida = person("30", "ida")
    sync(keycloak_connection, sync_realm, [ida])
    sync(keycloak_connection, sync_realm, [], present=set())  # leaves: disabled by the sync
    user_id = user_of(gateway, sync_realm, "30").id
    gateway.update_user(sync_realm, user_id, {"enabled": True, "requiredActions": []})
    gateway.set_password(sync_realm, user_id, Secret("Ida-password-1!"))
    assert lock_out_by_failed_logins(keycloak_connection, gateway, sync_realm, "ida", user_id)
    gateway.update_user(sync_realm, user_id, {"enabled": False})  # as the sync left it: a leaver

    gateway_ = KeycloakGateway.connect(keycloak_connection)
    try:
        plan = plan_for(gateway_, sync_realm, [ida], NOW)
        live = read_live_directory(gateway_, sync_realm, SOURCE).by_user_id()
        outcome = SyncExecutor(
            gateway_, plan, now=NOW, attribute_names=ATTRIBUTES, lookup=Directory({"30"}).lookup, live_users=live
        ).run()
    finally:
        gateway_.close()
    assert [(r.item.action, r.outcome) for r in outcome.results] == [("enable", "skipped")]
    assert gateway.is_locked_out(sync_realm, user_id)


def test_future_hire_is_created_disabled_and_enabled_at_start(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    start = NOW + timedelta(days=2)
    # (At least 3 characters: partialImport skips the user profile's username check, updates do not.)
    jo = person("40", "joe", start=start)
    sync(keycloak_connection, sync_realm, [jo])
    assert not user_of(gateway, sync_realm, "40").enabled
    plan, _ = sync(keycloak_connection, sync_realm, [jo], now=start + timedelta(minutes=1))
    assert [(i.action, i.reason) for i in plan.items] == [("enable", "start date reached")]
    assert user_of(gateway, sync_realm, "40").enabled


def test_realm_that_drops_attributes_is_refused_before_any_write(gateway: KeycloakGateway, realm: str) -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError, match="would silently drop"):
        check_profile_keeps_attributes(realm, gateway.get_user_profile(realm), ATTRIBUTES)


def test_realm_that_lets_users_edit_the_syncs_bookkeeping_is_refused(gateway: KeycloakGateway, realm: str) -> None:
    """With unmanaged attributes ENABLED, a user could remove their own idp-agent.source from the account
    console and never be disabled when they leave."""
    from dataclasses import replace

    from agent.errors import ConfigError

    profile = gateway.get_user_profile(realm)
    gateway.update_user_profile(realm, replace(profile, unmanaged_attribute_policy="ENABLED"))
    with pytest.raises(ConfigError, match="lets users edit the sync's bookkeeping"):
        check_profile_keeps_attributes(realm, gateway.get_user_profile(realm), ATTRIBUTES)


def test_rename_in_a_realm_that_forbids_it_is_held_not_failed(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    gateway.update_realm(sync_realm, {"editUsernameAllowed": False})
    sync(keycloak_connection, sync_realm, [person("50", "kim", first_name="Kim")])
    plan, _ = sync(
        keycloak_connection, sync_realm, [person("50", "kim.lee", first_name="Kim", email="kim.lee@example.org")]
    )
    assert [(i.action, dict((f, n) for f, _, n in i.fields)) for i in plan.items] == [
        ("update", {"email": "kim.lee@example.org"})
    ]
    assert "does not allow username changes" in plan.held[0].reason
    assert user_of(gateway, sync_realm, "50").username == "kim"


@pytest.mark.parametrize(("then", "usernames_editable"), [("delete", True), ("anonymise", True), ("anonymise", False)])
def test_leaver_past_retention_is_deleted_or_anonymised(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str, then: str,
    usernames_editable: bool,
) -> None:  # fmt: skip
    """Anonymising renames the user, also where the realm lets no one change usernames (the admin API
    refuses it there; erasing personal data does not wait on that setting)."""
    from agent.sync.plan import Retention

    gateway.update_realm(sync_realm, {"editUsernameAllowed": usernames_editable})
    retention = Retention(timedelta(days=90), then)  # type: ignore[arg-type]
    lou = person("60", "lou", email="lou@example.org")
    sync(keycloak_connection, sync_realm, [lou])
    sync(keycloak_connection, sync_realm, [], present=set())  # leaves: disabled, kept
    user_id = user_of(gateway, sync_realm, "60").id

    later = NOW + timedelta(days=91)
    plan, _ = sync(keycloak_connection, sync_realm, [], now=later, present=set(), retention=retention)

    assert [(i.action, i.external_id) for i in plan.items] == [(then, "60")]
    remaining = gateway.get_user(sync_realm, user_id)
    if then == "delete":
        assert remaining is None
    else:
        assert remaining is not None and not remaining.enabled
        assert (remaining.email, remaining.first_name, dict(remaining.attributes)) == (None, None, {})
        assert remaining.username.startswith("anonymised-")
        # No longer linked to the source id: a rehire gets a new account.
        plan, _ = sync(keycloak_connection, sync_realm, [lou], now=later, retention=retention)
        assert [i.action for i in plan.items] == ["create"]
        assert user_of(gateway, sync_realm, "60").id != user_id


def test_leavers_an_admin_disabled_first_are_marked_and_removed_after_retention(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    """The helpdesk disables a leaver's account by hand before HR says so: the sync marks it as left (no other
    write), so the retention period still ends in a delete; a rehire does not undo the admin's disable."""
    from agent.sync.plan import Retention

    kim, lee, max_ = person("70", "kim"), person("71", "lee"), person("72", "max")
    sync(keycloak_connection, sync_realm, [kim, lee, max_])
    ids = {p.external_id: user_of(gateway, sync_realm, p.external_id).id for p in (kim, lee, max_)}
    for user_id in ids.values():
        gateway.update_user(sync_realm, user_id, {"enabled": False})  # by hand, on the last day

    # HR: kim and max terminated, lee deleted from the feed (confirmed gone by the exact lookup).
    gone = [replace(kim, status="inactive"), replace(max_, status="inactive")]
    plan, _ = sync(keycloak_connection, sync_realm, gone, present={"70", "72"})
    assert sorted((i.action, i.external_id) for i in plan.items) == [
        ("mark-left", "70"), ("mark-left", "71"), ("mark-left", "72")
    ]  # fmt: skip
    assert plan.removals == ()
    for external_id in ids:
        marker = user_of(gateway, sync_realm, external_id).attributes[DISABLED_BY_SYNC_ATTRIBUTE][0]
        assert marker.startswith(f"left {NOW.isoformat()}: ") and FOUND_DISABLED in marker
        assert not user_of(gateway, sync_realm, external_id).enabled

    # max comes back: the admin's disable stands.
    plan, _ = sync(keycloak_connection, sync_realm, [gone[0], max_], present={"70", "72"})
    assert plan.items == () and [h.username for h in plan.held] == ["max"]
    assert not user_of(gateway, sync_realm, "72").enabled

    later = NOW + timedelta(days=91)
    retention = Retention(timedelta(days=90), "delete")
    plan, _ = sync(keycloak_connection, sync_realm, gone, now=later, present={"70", "72"}, retention=retention)
    assert sorted((i.action, i.external_id) for i in plan.items) == [
        ("delete", "70"),
        ("delete", "71"),
        ("delete", "72"),
    ]
    assert all(gateway.get_user(sync_realm, user_id) is None for user_id in ids.values())


def test_an_employee_whose_start_moves_ahead_is_disabled_until_the_new_start(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    """Fail closed: HR moves an employee's start date ahead (a correction, a rehire entered early); the account
    in use is disabled until then and enabled again at the new start."""
    sync(keycloak_connection, sync_realm, [person("41", "jim")])
    start = NOW + timedelta(days=3)
    plan, _ = sync(keycloak_connection, sync_realm, [person("41", "jim", start=start)])
    assert [(i.action, i.reason) for i in plan.items] == [("disable", "not started yet")]
    assert not user_of(gateway, sync_realm, "41").enabled
    plan, _ = sync(
        keycloak_connection, sync_realm, [person("41", "jim", start=start)], now=start + timedelta(minutes=1)
    )
    assert [(i.action, i.reason) for i in plan.items] == [("enable", STARTS_AGAIN)]
    assert user_of(gateway, sync_realm, "41").enabled


@pytest.mark.parametrize(
    ("why_disabled", "enabled_because"),
    [("employment ended", "rehired"), ("not started yet", STARTS_AGAIN)],
)
def test_a_rehire_whose_leaving_was_cut_off_before_its_sessions_ended_gets_none_of_them_back(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str, why_disabled: str,
    enabled_because: str,
) -> None:  # fmt: skip
    """A leaver's disable is written first and the sessions are ended after it: a run cut off (or a logout
    Keycloak refused) in between leaves a disabled, marked account whose offline session Keycloak keeps, and no
    later run plans anything for it. A disabled user's tokens do not work, but a rehire would resume that
    session: enabling a rehire ends whatever sessions and consents the account still has first. So does enabling
    an account disabled when its start date moved ahead."""
    realm = sync_realm
    cal = person("1003", "cal")
    sync(keycloak_connection, realm, [cal])
    user = user_of(gateway, realm, "1003")
    gateway.set_password(realm, user.id, Secret("Cal-password-1!"))
    gateway.update_user(realm, user.id, {"requiredActions": []})
    offline = offline_login(keycloak_connection, realm, "cal", "Cal-password-1!")
    # What the cut-off leaving left: disabled and marked by the sync, the offline session still there.
    attributes = {name: list(values) for name, values in user.attributes.items()}
    attributes[DISABLED_BY_SYNC_ATTRIBUTE] = [f"left {NOW.isoformat()}: {why_disabled}"]
    gateway.update_user(realm, user.id, {"enabled": False, "attributes": attributes})

    plan, _ = sync(keycloak_connection, realm, [cal])

    assert [(i.action, i.reason) for i in plan.items] == [("enable", enabled_because)]
    assert user_of(gateway, realm, "1003").enabled
    assert refresh_status(keycloak_connection, realm, offline) == 400
    assert gateway.list_consents(realm, user.id) == []


def test_an_attribute_written_after_the_plan_was_made_is_kept_by_the_update(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, sync_realm: str
) -> None:
    """A sanction (or an admin) writes an attribute on a person between the sync's read and its update: the
    update writes the sync's own fields and attributes and keeps that one (a PUT with the user as read for
    the plan would drop it, undoing the sanction's attribute until its next pass)."""
    realm = sync_realm
    sync(keycloak_connection, realm, [person("1004", "dee")])
    moved = person("1004", "dee", last_name="Moved", attributes={"department": ("Finance",)})
    plan = plan_for(gateway, realm, [moved], NOW)
    live = read_live_directory(gateway, realm, SOURCE).by_user_id()
    user = user_of(gateway, realm, "1004")
    written = {name: list(values) for name, values in user.attributes.items()} | {"sanction_level": ["restriction"]}
    gateway.update_user(realm, user.id, {"attributes": written})  # after the read, before the update

    executor = SyncExecutor(
        gateway, plan, now=NOW, attribute_names=ATTRIBUTES, lookup=Directory({"1004"}).lookup, live_users=live,
        in_bulk=IN_BULK,
    )  # fmt: skip
    outcome = executor.run()

    assert not outcome.failed, outcome.failed
    after = user_of(gateway, realm, "1004")
    assert (after.last_name, after.attributes["department"]) == ("Moved", ("Finance",))
    assert after.attributes["sanction_level"] == ("restriction",)
