"""Whole sync runs (source -> mapping -> plan -> brakes -> Keycloak -> store) against a real Keycloak and a
real slapd: S01 broken feeds, S02 removal threshold and approval, S05 scope change, S06 renames in LDAP, S07 bad
rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ldap3
import pytest

from agent.errors import KeycloakError
from agent.keycloak import KeycloakGateway, UserDraft
from agent.settings import KeycloakConnection
from agent.sync.agent_config import AgentConfig
from agent.sync.found_held import FOUND_HELD
from agent.sync.runner import approve_staged
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.ldap_directory import SUFFIX, DirectoryFactory, numbered_people
from tests.harness.sync_setup import NOW, SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


def test_s07_bad_rows_are_rejected_with_reasons_and_the_rest_applied(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    rows = [hr_row(i) for i in range(6)]
    rows += [
        hr_row(6, EmployeeID="5001"),  # duplicate id (also row 2)
        hr_row(7, Email="person000@example.org"),  # duplicate email
        hr_row(8, EmployeeID=""),  # missing id
        hr_row(9, StartDate="31/12/2020"),  # bad date
        hr_row(10, Department="Ghost"),  # grants a role the realm does not have
        hr_row(11, Department="Finance"),
    ]
    run, prepared, _ = setup.run(hr_config(setup, rows))

    assert run.status == "succeeded"
    live = managed(gateway, setup.realm)
    assert set(live) == {"5002", "5003", "5004", "5005", "5011"}
    reasons = " | ".join(r.reason for r in prepared.plan.rejected)
    for fragment in ("duplicate id", "duplicate email", "missing id", "31/12/2020", "no-such-role"):
        assert fragment in reasons, reasons
    # N6: the run's counts equal an independent count taken from Keycloak.
    assert run.counts["create.applied"] == len(live) == 5
    assert set(gateway.user_group_paths(setup.realm, live["5011"].id)) == {"/staff", "/finance"}
    with setup.store(hr_config(setup, rows)) as store:
        assert [item.action for item in store.runs.run_items(run.id)].count("create") == 5
        assert store.journal.verify().ok
        # N6: each create has an intent recorded before it was sent, then its outcome.
        creates = [(e.subject, e.details.get("outcome")) for e in store.journal.entries() if e.action == "user.create"]
        created = {user.username for user in live.values()}
        assert {subject for subject, outcome in creates if outcome == "intent"} == created
        assert {subject for subject, outcome in creates if outcome == "applied"} == created
        assert creates.index((live["5011"].username, "intent")) < creates.index((live["5011"].username, "applied"))


@pytest.mark.parametrize("broken", ["header-only", "missing-file", "lost-60-percent"])
def test_s01_a_broken_feed_disables_no_one(setup: SyncSetup, gateway: KeycloakGateway, broken: str) -> None:
    good = [hr_row(i) for i in range(20)]
    run, _, _ = setup.run(hr_config(setup, good))
    assert run.status == "succeeded" and len(managed(gateway, setup.realm)) == 20

    feeds = {"header-only": [], "missing-file": None, "lost-60-percent": good[:8]}
    run, prepared, outcome = setup.run(hr_config(setup, feeds[broken]))

    assert all(user.enabled for user in managed(gateway, setup.realm).values())
    assert run.status == "stopped" and outcome is None  # suspect: nothing applied at all
    assert "source 'hr'" in run.summary
    if broken == "missing-file":
        assert not prepared.reads["hr"].complete
    # The next good feed proceeds normally.
    run, _, _ = setup.run(hr_config(setup, good))
    assert run.status == "succeeded" and all(user.enabled for user in managed(gateway, setup.realm).values())


@pytest.mark.parametrize(("leavers", "staged"), [(3, False), (4, True), (5, True)])
def test_s02_removals_at_the_threshold_are_staged_and_approval_applies_exactly_that_set(
    setup: SyncSetup, gateway: KeycloakGateway, leavers: int, staged: bool
) -> None:
    everyone = [hr_row(i) for i in range(20)]
    setup.run(hr_config(setup, everyone))
    # 20 managed users x 20 % = a threshold of 4 removals.
    config = hr_config(setup, everyone[leavers:], max_removal_ratio=0.2, max_shrink_ratio=1.0)

    run, _, _ = setup.run(config)

    live = managed(gateway, setup.realm)
    gone = {str(5000 + i) for i in range(leavers)}
    if not staged:
        assert run.status == "succeeded"
        assert {eid for eid, user in live.items() if not user.enabled} == gone
        return
    assert run.status == "staged" and "idp-agent sync approve" in run.summary
    assert all(user.enabled for user in live.values())  # nothing applied
    with setup.store(config) as store:
        staged_set = store.staging.staged(run.id)
        assert staged_set is not None and {item.external_id for item in staged_set.items} == gone
    # A person leaves after the run was staged: approval must not include them.
    later = hr_config(setup, everyone[leavers + 1 :], max_removal_ratio=0.2, max_shrink_ratio=1.0)
    gateway_ = KeycloakGateway.connect(setup.connection)
    try:
        with setup.store(later) as store:
            approved, _ = approve_staged(
                run.id,
                approver="security-lead",
                config=later,
                sync=later.sync(SYNC),
                gateway=gateway_,
                store=store,
                now=NOW,
                env={},
            )
            assert store.journal.entries(subject=run.id)[0].action == "sync.approve"
    finally:
        gateway_.close()
    assert approved.status == "succeeded"
    live = managed(gateway, setup.realm)
    assert {eid for eid, user in live.items() if not user.enabled} == gone
    assert live[str(5000 + leavers)].enabled


def test_a_group_an_admin_gave_by_hand_stays_after_the_rule_that_also_gave_it_stops(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    """Whole runs: person000 (Sales) is put in /finance by an admin; HR then moves them to Finance, whose rule
    grants /finance; then back to Sales. The sync never granted /finance, so it does not remove it, and the
    journal says why it was left alone."""
    rows = [hr_row(i) for i in range(3)]
    setup.run(hr_config(setup, rows))
    user = managed(gateway, setup.realm)["5000"]
    finance = gateway.find_group_by_path(setup.realm, "/finance")
    assert finance is not None
    gateway.add_user_to_group(setup.realm, user.id, finance.id)

    run, prepared, _ = setup.run(hr_config(setup, [hr_row(0, Department="Finance"), *rows[1:]]))

    assert run.status == "succeeded" and prepared.plan.of("grant") == ()
    [update] = prepared.plan.of("update")
    assert update.found_held.groups == {"/finance"}
    run, prepared, _ = setup.run(hr_config(setup, rows))
    assert run.status == "succeeded" and prepared.plan.of("revoke") == ()
    assert set(gateway.user_group_paths(setup.realm, user.id)) == {"/staff", "/finance"}
    with setup.store(hr_config(setup, rows)) as store:
        reasons = [entry.reason for entry in store.journal.entries("person000") if entry.action == "user.update"]
        assert any(FOUND_HELD in reason and "group /finance" in reason for reason in reasons), reasons


@pytest.fixture
def directory_setup(setup: SyncSetup, ldap_directory: DirectoryFactory) -> Iterator[tuple[SyncSetup, Any]]:
    yield setup, ldap_directory(numbered_people(10))


def ldap_config(
    setup: SyncSetup, directory: Any, uids: list[str] | None, *, id_attribute: str = "employeeNumber",
    id_from: str | None = None, listing: str | None = None, status_from: str | None = None,
) -> AgentConfig:  # fmt: skip
    """`id_from`: the LDAP attribute the mapper's id comes from, when not `id_attribute` (a mismatch).
    `listing`: the filter (else by `uids`); `status_from`: an attribute whose value `terminated` is inactive."""
    admin = directory.admin
    setup.env = {"TEST_LDAP_PASSWORD": admin.bind_password.reveal()}
    if listing is None:
        listing = "(objectClass=inetOrgPerson)" if uids is None else "(|" + "".join(f"(uid={u})" for u in uids) + ")"
    source = {
        "name": "ldap",
        "type": "ldap",
        "url": admin.url,
        "bind_dn": admin.bind_dn,
        "bind_password": "${env:TEST_LDAP_PASSWORD}",
        "base_dn": f"ou=people,{SUFFIX}",
        "filter": listing,
        "tls": "none",
        "id_attribute": id_attribute,
        "lookup_base_dn": SUFFIX,
    }
    decided = ["employee_id", "username", "email", "first_name", "last_name"]
    fields: dict[str, Any] = {
        "employee_id": {"from": id_from or id_attribute},
        "username": {"from": "uid"},
        "email": {"from": "mail"},
        "first_name": {"from": "givenName"},
        "last_name": {"from": "sn"},
    }
    if status_from is not None:
        decided.append("status")
        fields["status"] = {
            "from": status_from,
            "map": {"terminated": "inactive"},
            "default": "active",
        }
    mapper = {"name": SYNC, "id": "employee_id", "sources": {"ldap": {"priority": 10, "fields": decided}},
              "fields": {"ldap": fields}}  # fmt: skip
    return setup.config(sources=[source], mapper=mapper, safety={"max_removal_ratio": 1.0, "max_shrink_ratio": 1.0})


def test_s05_a_narrower_filter_disables_only_those_really_deleted(
    directory_setup: tuple[SyncSetup, Any], gateway: KeycloakGateway
) -> None:
    setup, directory = directory_setup
    run, _, _ = setup.run(ldap_config(setup, directory, None))
    assert run.status == "succeeded" and len(managed(gateway, setup.realm)) == 10

    # 3 people are really deleted from the directory; the filter also narrows to 4 of the remaining 7.
    admin = directory.admin
    connection = ldap3.Connection(admin.url, admin.bind_dn, admin.bind_password.reveal(), auto_bind=True)
    for index in (7, 8, 9):
        assert connection.delete(f"uid=user{index:05d},ou=people,{SUFFIX}")
    connection.unbind()
    run, _, outcome = setup.run(ldap_config(setup, directory, [f"user{i:05d}" for i in range(4)]))

    assert run.status == "succeeded"
    disabled = {eid for eid, user in managed(gateway, setup.realm).items() if not user.enabled}
    assert disabled == {"10007", "10008", "10009"}
    skipped = [r for r in outcome.results if r.outcome == "skipped"]
    assert len(skipped) == 3 and all("scope or filter change" in r.detail for r in skipped)


def test_s05_a_lookup_searching_another_attribute_than_the_mappers_id_confirms_no_one_gone(
    directory_setup: tuple[SyncSetup, Any], gateway: KeycloakGateway
) -> None:
    """The mapper's id comes from employeeNumber, the source's id_attribute says uid: its exact lookup searches
    (uid=10005) and finds no one. A narrower filter then drops 6 people who are still in
    the directory; none of them may be disabled on the word of that lookup."""
    setup, directory = directory_setup
    run, _, _ = setup.run(ldap_config(setup, directory, None))
    assert run.status == "succeeded" and len(managed(gateway, setup.realm)) == 10

    mismatched = ldap_config(setup, directory, [f"user{i:05d}" for i in range(4)], id_attribute="uid",
                             id_from="employeeNumber")  # fmt: skip
    run, _, outcome = setup.run(mismatched)

    assert all(user.enabled for user in managed(gateway, setup.realm).values())
    failed = [r for r in outcome.results if r.outcome == "failed"]
    assert len(failed) == 6 and run.status == "failed"
    assert all("its exact lookup found none of 3 id(s) its listing returned" in r.detail for r in failed)


def test_a_leaver_a_listing_of_the_active_leaves_out_is_found_inactive_by_the_lookup_and_disabled(
    directory_setup: tuple[SyncSetup, Any], gateway: KeycloakGateway
) -> None:
    """The listing shows the active only (a filter on employeeType, as on AD's disabled bit); the exact lookup,
    which ignores the filter, finds the two marked terminated: they left, and are disabled. One is still
    active (the listing left them out for another reason): found, and left enabled."""
    setup, directory = directory_setup
    active_only = "(&(objectClass=inetOrgPerson)(!(employeeType=terminated))(!(uid=user00009)))"
    config = ldap_config(setup, directory, None, listing="(objectClass=inetOrgPerson)", status_from="employeeType")
    run, _, _ = setup.run(config)
    assert run.status == "succeeded" and len(managed(gateway, setup.realm)) == 10
    admin = directory.admin
    connection = ldap3.Connection(admin.url, admin.bind_dn, admin.bind_password.reveal(), auto_bind=True)
    for index in (1, 2):
        assert connection.modify(
            f"uid=user{index:05d},ou=people,{SUFFIX}", {"employeeType": [(ldap3.MODIFY_REPLACE, ["terminated"])]}
        )
    connection.unbind()

    run, _, outcome = setup.run(ldap_config(setup, directory, None, listing=active_only, status_from="employeeType"))

    assert run.status == "succeeded"
    assert {eid for eid, user in managed(gateway, setup.realm).items() if not user.enabled} == {"10001", "10002"}
    details = sorted((r.outcome, r.detail) for r in outcome.results)
    assert details == [
        ("applied", "left: ldap says inactive (found by an exact lookup outside the listing)"),
        ("applied", "left: ldap says inactive (found by an exact lookup outside the listing)"),
        ("skipped", "still in the source (left out of the listing: a scope or filter change?)"),
    ]


def test_s06_a_uid_renamed_in_ldap_keeps_the_same_keycloak_user_and_its_grants(
    directory_setup: tuple[SyncSetup, Any], gateway: KeycloakGateway
) -> None:
    """entryUUID as the immutable id: a modrdn of uid=user00003 to uid=ann.new (the uid attribute follows) and a
    new mail for user00004 change that user's username and email, not its id or its groups."""
    setup, directory = directory_setup
    config = ldap_config(setup, directory, None, id_attribute="entryUUID")
    run, _, _ = setup.run(config)
    before = managed(gateway, setup.realm)
    assert run.status == "succeeded" and len(before) == 10
    renamed_id, moved_id = (
        next(eid for eid, user in before.items() if user.username == uid) for uid in ("user00003", "user00004")
    )
    staff = gateway.find_group_by_path(setup.realm, "/staff")  # a grant given by hand, not by the sync
    assert staff is not None
    gateway.add_user_to_group(setup.realm, before[renamed_id].id, staff.id)

    admin = directory.admin
    connection = ldap3.Connection(admin.url, admin.bind_dn, admin.bind_password.reveal(), auto_bind=True)
    assert connection.modify_dn(f"uid=user00003,ou=people,{SUFFIX}", "uid=ann.new", delete_old_dn=True)
    assert connection.modify(
        f"uid=user00004,ou=people,{SUFFIX}", {"mail": [(ldap3.MODIFY_REPLACE, ["moved@example.org"])]}
    )
    connection.unbind()
    run, prepared, _ = setup.run(config)

    after = managed(gateway, setup.realm)
    assert run.status == "succeeded" and set(after) == set(before)
    assert {eid: user.id for eid, user in after.items()} == {eid: user.id for eid, user in before.items()}
    assert after[renamed_id].username == "ann.new" and after[renamed_id].enabled
    assert after[moved_id].email == "moved@example.org" and after[moved_id].username == "user00004"
    assert "/staff" in gateway.user_group_paths(setup.realm, after[renamed_id].id)
    assert not [item for item in prepared.plan.items if item.action in {"create", "confirm-leaver"}]
    run, prepared, _ = setup.run(config)
    assert not prepared.plan.items  # converged


@pytest.mark.parametrize("keycloak_write", ["plugin", "admin-api"])
def test_an_update_keycloak_refuses_as_a_clash_fails_that_person_and_the_run_goes_on(
    keycloak_write: str, keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path, gateway: KeycloakGateway
) -> None:
    """HR gives person001 the e-mail of an account outside the sync (Keycloak answers the update 409): that
    person's update fails with why, everyone else's change is made, and the next run is not stopped there."""
    setup = make_sync_setup(keycloak_connection, realm, tmp_path, keycloak_write=keycloak_write)
    setup.run(hr_config(setup, [hr_row(i) for i in range(4)]))
    gateway.create_user(setup.realm, UserDraft(username="helpdesk", email="helpdesk@example.org"))
    rows = [hr_row(1, Email="helpdesk@example.org")] + [hr_row(i, LastName="Changed") for i in (0, 2, 3)]

    run, _, _ = setup.run(hr_config(setup, rows))

    with setup.store(hr_config(setup, rows)) as store:
        outcomes = {(item.subject, item.action): item.outcome for item in store.runs.run_items(run.id)}
    assert outcomes[("person001", "update")] == "failed", outcomes
    assert [outcomes[(f"person00{i}", "update")] for i in (0, 2, 3)] == ["applied"] * 3
    names = {user.username: user.last_name for user in managed(gateway, setup.realm).values()}
    assert names == {"person000": "Changed", "person001": "Son1", "person002": "Changed", "person003": "Changed"}


def test_a_joiner_keycloak_cannot_create_does_not_keep_its_batch_mates_out(
    setup: SyncSetup, gateway: KeycloakGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin deletes group /finance while the run goes on, after the plan was made: the import batch that
    puts person003 in it fails inside Keycloak (500, rolled back). Its batch-mates are created one by one and
    only person003 fails, with why; the run is not stopped, and the batch is not failed whole at every run."""
    setup.run(hr_config(setup, [hr_row(0)]))
    rows = [hr_row(0)] + [hr_row(i, Department="Finance" if i == 3 else "Sales") for i in range(1, 6)]
    import_users = KeycloakGateway.import_users

    def group_deleted_meanwhile(self: KeycloakGateway, realm: str, users: Any) -> Any:
        finance = self.find_group_by_path(realm, "/finance")
        if finance is not None:
            self.delete_group(realm, finance.id)
        return import_users(self, realm, users)

    monkeypatch.setattr(KeycloakGateway, "import_users", group_deleted_meanwhile)
    run, _, _ = setup.run(hr_config(setup, rows))

    with setup.store(hr_config(setup, rows)) as store:
        outcomes = {item.subject: (item.outcome, item.error) for item in store.runs.run_items(run.id)}
    assert outcomes["person003"][0] == "failed" and "refused by Keycloak" in outcomes["person003"][1]
    assert [outcomes[f"person00{i}"][0] for i in (1, 2, 4, 5)] == ["applied"] * 4
    assert sorted(user.username for user in managed(gateway, setup.realm).values()) == [
        "person000", "person001", "person002", "person004", "person005"
    ]  # fmt: skip


@pytest.mark.parametrize(("kind", "outcome"), [("status", "failed"), ("reset_after", "unknown")])
def test_n6_a_run_stopped_by_keycloak_closes_every_intent_with_an_outcome(
    kind: str, outcome: str, setup: SyncSetup, keycloak_connection: KeycloakConnection
) -> None:
    """Keycloak stops answering the people's changes (a 503 every time; or the change made and its answer lost,
    every time): the run stops, and each change announced by an intent in the journal ends with an outcome,
    `failed` where Keycloak said no, `unknown` where no answer came; none is left open. The next run, with
    Keycloak back, makes every change."""
    setup.run(hr_config(setup, [hr_row(i) for i in range(6)]))
    changed = hr_config(setup, [hr_row(i, LastName="Renamed") for i in range(6)])
    with FaultProxy(keycloak_connection.url) as proxy:
        proxy.add(Fault(kind, r"/idp-agent/users/changes", method="PUT", status=503, times=10**6))  # type: ignore[arg-type]
        with pytest.raises(KeycloakError):
            setup.run_through(changed, replace(setup.connection, url=proxy.url))

    with setup.store(changed) as store:
        assert store.journal.verify().ok
        updates = [e for e in store.journal.entries() if e.action == "user.update"]
        [stopped] = [run for run in store.runs.list_runs(kind="sync", limit=1)]
    intents = sorted(e.subject for e in updates if e.details["outcome"] == "intent")
    closed = sorted(e.subject for e in updates if e.details["outcome"] == outcome)
    assert intents == [f"person00{i}" for i in range(6)] and closed == intents
    assert stopped.status == "failed" and stopped.counts == {f"update.{outcome}": 6}

    again, _, _ = setup.run(changed)
    assert again.status == "succeeded", again.summary
