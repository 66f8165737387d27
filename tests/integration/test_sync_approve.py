"""`sync approve` against a real Keycloak: an approval applies the staged set (leavers HR marks terminated
included, client roles as client roles), and leaves out each removal whose user changed since it was staged;
a user locked by brute-force detection keeps `enabled` as it is (precedence sanction > lock > leaver)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.errors import Unavailable
from agent.keycloak import KeycloakGateway, RetryPolicy
from agent.sanctions.service import issue_sanction
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.store import ApprovalError, ManualClock, open_store
from agent.store.runs import Runs
from agent.sync.agent_config import AgentConfig
from agent.sync.model import DISABLED_BY_SYNC_ATTRIBUTE, SOURCE_ATTRIBUTE
from agent.sync.runner import approve_staged
from tests.harness.accounts import lock_out_by_failed_logins
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.sanctions import POLICY_FILE, START, context_for
from tests.harness.sync_setup import HR_MAPPER, NOW, SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed

# 10 managed users x 20 % = a threshold of 2 removals: any run below removes at least that many.
BRAKES = {"max_removal_ratio": 0.2, "max_shrink_ratio": 1.0}
FAST_RETRY = RetryPolicy(max_attempts=2, base_seconds=0.01, cap_seconds=0.02)


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    sync_setup = make_sync_setup(keycloak_connection, realm, tmp_path)
    (tmp_path / "policies").mkdir()  # the sanction policy beside the agent config, as the sync reads it
    shutil.copy(POLICY_FILE, tmp_path / "policies" / "sanctions.yaml")
    return sync_setup


def approve(setup: SyncSetup, config: AgentConfig, run_id: str) -> tuple[Any, Any]:
    gateway = KeycloakGateway.connect(setup.connection)
    try:
        with setup.store(config) as store:
            approved, _ = approve_staged(
                run_id, approver="security-lead", config=config, sync=config.sync(SYNC), gateway=gateway,
                store=store, now=NOW, env={},
            )  # fmt: skip
            return approved, store.runs.run_items(approved.id)
    finally:
        gateway.close()


def approve_through(
    outage: Fault, setup: SyncSetup, config: AgentConfig, run_id: str, connection: KeycloakConnection
) -> None:
    """Approve `run_id` through a fault proxy giving `outage`: the approval raises Unavailable."""
    with FaultProxy(connection.url) as proxy:
        proxy.add(outage)
        down = KeycloakGateway.connect(replace(setup.connection, url=proxy.url), retry=FAST_RETRY)
        try:
            with setup.store(config) as store, pytest.raises(Unavailable):
                approve_staged(
                    run_id, approver="security-lead", config=config, sync=config.sync(SYNC), gateway=down,
                    store=store, now=NOW, env={},
                )  # fmt: skip
        finally:
            down.close()


def enabled_by_username(gateway: KeycloakGateway, realm: str) -> dict[str, bool]:
    return {user.username: user.enabled for user in managed(gateway, realm).values()}


def test_approval_disables_the_leavers_hr_marks_terminated(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    """HR keeps leavers listed as Terminated: a staged set of them is applied as staged, not 'confirmed' by a
    lookup that finds their record and so leaves them enabled."""
    setup.run(hr_config(setup, [hr_row(i) for i in range(10)]))
    rows = [hr_row(i, Status="Terminated") if i < 3 else hr_row(i) for i in range(10)]
    config = hr_config(setup, rows, **BRAKES)

    run, _, _ = setup.run(config)
    assert run.status == "staged"
    approved, items = approve(setup, config, run.id)

    assert approved.status == "succeeded"
    assert [(item.action, item.outcome) for item in items] == [("disable", "applied")] * 3
    states = enabled_by_username(gateway, setup.realm)
    assert {name for name, on in states.items() if not on} == {"person000", "person001", "person002"}


def test_approval_leaves_out_users_changed_since_the_set_was_staged(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    setup.run(hr_config(setup, [hr_row(i) for i in range(10)]))
    config = hr_config(setup, [hr_row(i) for i in range(4, 10)], **BRAKES)  # four people gone from HR
    run, _, _ = setup.run(config)
    assert run.status == "staged"
    users = {user.username: user for user in managed(gateway, setup.realm).values()}
    # Since staging: an admin disabled person000, person001 left the sync's hands, person002 was banned.
    gateway.update_user(setup.realm, users["person000"].id, {"enabled": False})
    attributes = {k: list(v) for k, v in users["person001"].attributes.items() if k != SOURCE_ATTRIBUTE}
    gateway.update_user(setup.realm, users["person001"].id, {"attributes": attributes})
    clock = ManualClock(START)
    with open_store(config.store, now=clock) as store:
        assert issue_sanction(
            context_for(gateway, store, setup.realm, clock), "person002", level="ban", reason_code="fraud"
        )

    approved, items = approve(setup, config, run.id)

    assert approved.status == "succeeded"
    outcomes = {item.subject: (item.outcome, item.error) for item in items}
    assert outcomes["person000"] == ("skipped", "disabled since it was staged: nothing to do")
    assert outcomes["person001"] == ("skipped", "no longer this sync's account for that id since it was staged")
    assert outcomes["person002"][0] == "skipped" and "under a sanction since it was staged" in outcomes["person002"][1]
    assert outcomes["person003"][0] == "applied"
    left_alone = gateway.get_user(setup.realm, users["person000"].id)
    assert left_alone is not None and DISABLED_BY_SYNC_ATTRIBUTE not in left_alone.attributes
    assert gateway.get_user(setup.realm, users["person001"].id).enabled  # type: ignore[union-attr]


def ledger_setup(setup: SyncSetup, gateway: KeycloakGateway) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Client `ledger` with role auditor, granted to Finance by a rule of the test mapper; the HR source."""
    client_uuid = gateway.create_client(setup.realm, {"clientId": "ledger", "publicClient": False})
    gateway.create_client_role(setup.realm, client_uuid, "auditor")
    ledger_rule = {
        "name": "ledger",
        "when": {"department": "Finance"},
        "grant": {"client_roles": {"ledger": ["auditor"]}},
    }
    everyone, finance = HR_MAPPER["rules"][:2]  # type: ignore[index]  # the test mapper's first two rules
    mapper = {**HR_MAPPER, "rules": [everyone, finance, ledger_rule]}
    hr_source = {"name": "hr", "type": "csv", "path": str(setup.folder / "hr.csv"), "id_field": "EmployeeID"}
    return client_uuid, mapper, hr_source


def test_approval_revokes_a_client_role_as_a_client_role(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    client_uuid, mapper, hr_source = ledger_setup(setup, gateway)
    hr_config(setup, [hr_row(i, Department="Finance") for i in range(10)])
    setup.run(setup.config(sources=[hr_source], mapper=mapper))
    hr_config(setup, [hr_row(i, Department="Sales" if i < 3 else "Finance") for i in range(10)])
    config = setup.config(sources=[hr_source], mapper=mapper, safety=BRAKES)

    run, _, _ = setup.run(config)
    assert run.status == "staged"
    approved, items = approve(setup, config, run.id)

    assert approved.status == "succeeded", [(item.subject, item.error) for item in items]
    movers = [user for user in managed(gateway, setup.realm).values() if user.username < "person003"]
    assert len(movers) == 3
    for user in movers:
        assert gateway.user_client_roles(setup.realm, user.id, client_uuid) == []
        assert "/finance" not in gateway.user_group_paths(setup.realm, user.id)


def test_a_leaver_locked_by_brute_force_detection_is_left_as_the_lock_holds_them(
    setup: SyncSetup, gateway: KeycloakGateway, keycloak_connection: KeycloakConnection
) -> None:
    gateway.update_realm(
        setup.realm,
        {"bruteForceProtected": True, "failureFactor": 2, "waitIncrementSeconds": 900, "permanentLockout": False},
    )
    setup.run(hr_config(setup, [hr_row(i) for i in range(3)]))
    users = {user.username: user for user in managed(gateway, setup.realm).values()}
    gateway.set_password(setup.realm, users["person000"].id, Secret("Right-Passw0rd-2026"))
    assert lock_out_by_failed_logins(keycloak_connection, gateway, setup.realm, "person000", users["person000"].id)
    no_brakes = {"max_removals": 100, "max_removal_ratio": 1.0, "max_shrink_ratio": 1.0}

    run, _, outcome = setup.run(hr_config(setup, [hr_row(2)], **no_brakes))

    assert run.status == "succeeded"
    results = {result.item.username: (result.outcome, result.detail) for result in outcome.results}
    assert results["person000"] == ("skipped", "locked by brute-force detection; left as it is until the lock ends")
    assert results["person001"][0] == "applied"
    assert enabled_by_username(gateway, setup.realm) == {"person000": True, "person001": False, "person002": True}


def test_a_client_role_no_one_is_granted_any_more_is_revoked(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    """The last people granted ledger/auditor move to sales: the run must read the ledger client's roles to
    revoke it (no desired user names that client any more), not take the role for gone."""
    client_uuid, mapper, hr_source = ledger_setup(setup, gateway)
    no_brakes = {"max_removals": 100, "max_removal_ratio": 1.0, "max_shrink_ratio": 1.0}
    hr_config(setup, [hr_row(i, Department="Finance" if i < 2 else "Sales") for i in range(10)])
    setup.run(setup.config(sources=[hr_source], mapper=mapper, safety=no_brakes))
    hr_config(setup, [hr_row(i, Department="Sales") for i in range(10)])

    run, _, _ = setup.run(setup.config(sources=[hr_source], mapper=mapper, safety=no_brakes))

    assert run.status == "succeeded", run.summary
    for user in managed(gateway, setup.realm).values():
        assert gateway.user_client_roles(setup.realm, user.id, client_uuid) == [], user.username


def test_a_broken_sanction_policy_fails_the_approval_before_it_is_recorded(
    setup: SyncSetup, gateway: KeycloakGateway, tmp_path: Path
) -> None:
    """The policy says which sanctions hold an account: read before the approval is recorded, so a typo in it
    does not use up the one approval a staged set gets; fixed, the same set is approved and applied."""
    setup.run(hr_config(setup, [hr_row(i) for i in range(10)]))
    config = hr_config(setup, [hr_row(i) for i in range(3, 10)], **BRAKES)
    run, _, _ = setup.run(config)
    assert run.status == "staged"
    policy = tmp_path / "policies" / "sanctions.yaml"
    good = policy.read_text(encoding="utf-8")
    policy.write_text(good + "\nunknown_key: 1\n", encoding="utf-8")

    with pytest.raises(ConfigErrors, match=r"sanctions\.yaml:\d+:1: unknown field 'unknown_key'"):
        approve(setup, config, run.id)
    assert all(enabled_by_username(gateway, setup.realm).values())

    policy.write_text(good, encoding="utf-8")
    approved, items = approve(setup, config, run.id)
    assert approved.status == "succeeded"
    assert [(item.action, item.outcome) for item in items] == [("disable", "applied")] * 3


@pytest.mark.parametrize("keycloak_write", ["plugin", "admin-api"])
def test_after_an_approval_of_revokes_the_next_run_has_nothing_left_to_remove(
    keycloak_write: str, keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path,
) -> None:  # fmt: skip
    """The sync remembers what it granted on each user (idp-agent.grants); an approval that revokes a grant
    must update that record too, or every later run plans the same revokes, stages them again, and applies
    nothing else (joiners included)."""
    setup = make_sync_setup(keycloak_connection, realm, tmp_path, keycloak_write=keycloak_write)
    setup.run(hr_config(setup, [hr_row(i, Department="Finance") for i in range(10)]))
    config = hr_config(setup, [hr_row(i, Department="Sales" if i < 3 else "Finance") for i in range(10)], **BRAKES)
    run, _, _ = setup.run(config)
    assert run.status == "staged"
    approved, _ = approve(setup, config, run.id)
    assert approved.status == "succeeded"

    rows = [hr_row(i, Department="Sales" if i < 3 else "Finance") for i in range(10)] + [hr_row(10)]
    after, prepared, _ = setup.run(hr_config(setup, rows, **BRAKES))

    assert after.status == "succeeded", after.summary
    # What the staged run held back besides its removals (the movers' department) goes now; no revoke again.
    planned = sorted((item.action, item.username, item.reason) for item in prepared.plan.items)
    movers = [("update", f"person00{i}", "source data changed") for i in range(3)]
    assert planned == [("create", "person010", "joiner"), *movers], planned
    again, prepared, _ = setup.run(hr_config(setup, rows, **BRAKES))
    assert again.status == "succeeded" and prepared.plan.is_empty


def test_keycloak_unavailable_while_approving_does_not_use_up_the_approval(
    setup: SyncSetup, gateway: KeycloakGateway, keycloak_connection: KeycloakConnection
) -> None:
    """The staged users are read from Keycloak before the approval is recorded: an outage then fails the
    approval with nothing recorded, and the same set is approved once Keycloak answers."""
    setup.run(hr_config(setup, [hr_row(i) for i in range(10)]))
    config = hr_config(setup, [hr_row(i) for i in range(3, 10)], **BRAKES)
    run, _, _ = setup.run(config)
    assert run.status == "staged"

    outage = Fault("status", r"/users/[0-9a-f-]{36}$", method="GET", status=503, times=10**6)
    approve_through(outage, setup, config, run.id, keycloak_connection)
    with setup.store(config) as store:
        waiting = store.staging.staged(run.id)
    assert waiting is not None and not waiting.approved

    approved, items = approve(setup, config, run.id)
    assert approved.status == "succeeded"
    assert [(item.action, item.outcome) for item in items] == [("disable", "applied")] * 3


class Stopped(BaseException):
    """The agent stopped (killed, or a signal) at a given point."""


def test_an_agent_stopped_before_the_approvals_run_starts_leaves_the_set_to_approve_again(
    setup: SyncSetup, gateway: KeycloakGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.run(hr_config(setup, [hr_row(i) for i in range(10)]))
    config = hr_config(setup, [hr_row(i) for i in range(3, 10)], **BRAKES)
    run, _, _ = setup.run(config)
    assert run.status == "staged"
    start_run = Runs.start_run

    def stopped_once(self: Runs, kind: str, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(Runs, "start_run", start_run)
        raise Stopped("the agent stopped after recording the approval")

    monkeypatch.setattr(Runs, "start_run", stopped_once)
    with pytest.raises(Stopped):
        approve(setup, config, run.id)
    with setup.store(config) as store:
        waiting = store.staging.staged(run.id)
        assert waiting is not None and not waiting.approved
        assert not [e for e in store.journal.entries() if e.action == "sync.approve"]

    approved, items = approve(setup, config, run.id)
    assert approved.status == "succeeded"
    assert [(item.action, item.outcome) for item in items] == [("disable", "applied")] * 3


def test_a_set_computed_again_since_cannot_be_approved(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    """HR marks three people terminated by mistake and the set is staged; HR is fixed and the next run finds
    nothing to remove. Approving the old set then would disable three people HR keeps: it is refused, nobody
    is disabled, and the journal says which run superseded the set."""
    setup.run(hr_config(setup, [hr_row(i) for i in range(10)]))
    wrong = hr_config(setup, [hr_row(i, Status="Terminated") if i < 3 else hr_row(i) for i in range(10)], **BRAKES)
    staged, _, _ = setup.run(wrong)
    assert staged.status == "staged"
    fixed = hr_config(setup, [hr_row(i) for i in range(10)], **BRAKES)
    later, prepared, _ = setup.run(fixed)
    assert later.status == "succeeded" and prepared.plan.is_empty

    with pytest.raises(ApprovalError, match=f"superseded by run {later.id}"):
        approve(setup, fixed, staged.id)

    assert all(enabled_by_username(gateway, setup.realm).values())
    with setup.store(fixed) as store:
        entries = [entry for entry in store.journal.entries() if entry.action.startswith("sync.")]
        waiting = store.staging.staged(staged.id)
    assert [(entry.action, entry.subject, entry.run_id) for entry in entries] == [
        ("sync.staged-superseded", staged.id, later.id)
    ]
    assert waiting is not None and not waiting.approved


def test_an_approval_stopped_by_an_outage_ends_its_run_as_failed_and_the_next_run_converges(
    setup: SyncSetup, gateway: KeycloakGateway, keycloak_connection: KeycloakConnection
) -> None:
    """Keycloak stops taking writes while the approved set is applied: the approval's run ends as failed at
    once (not left running for the next lock holder to call interrupted), and once Keycloak answers, the next
    sync run stages what is left (below the threshold: applies it)."""
    setup.run(hr_config(setup, [hr_row(i) for i in range(10)]))
    config = hr_config(setup, [hr_row(i) for i in range(3, 10)], **BRAKES)
    run, _, _ = setup.run(config)
    assert run.status == "staged"

    outage = Fault("status", r"/users", method="WRITE", status=503, times=10**6)  # not the token endpoint
    approve_through(outage, setup, config, run.id, keycloak_connection)
    with setup.store(config) as store:
        [approval] = [r for r in store.runs.list_runs() if r.kind == "sync-approve"]
    assert approval.status == "failed" and "stopped by an error" in approval.summary
    assert all(enabled_by_username(gateway, setup.realm).values())

    after, _, _ = setup.run(hr_config(setup, [hr_row(i) for i in range(3, 10)], **{**BRAKES, "max_removal_ratio": 0.5}))
    assert after.status == "succeeded", after.summary
    states = enabled_by_username(gateway, setup.realm)
    assert {name for name, on in states.items() if not on} == {"person000", "person001", "person002"}
