"""S19 against a real Keycloak: the sync never flips `enabled` on a user under an access-holding sanction
(a banned user active in HR stays disabled); a warning holds nothing, so a warned leaver is still disabled;
when a suspension of a leaver ends, the account stays disabled (the sync marked the leaver meanwhile), and
the sync enables it again only if the person comes back."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.keycloak import KeycloakGateway
from agent.sanctions.service import KEPT_DISABLED_NOTE, enforce_sanctions, issue_sanction
from agent.settings import KeycloakConnection
from agent.store import ManualClock, open_store
from agent.sync import runner
from agent.sync.executor import SANCTIONED_SINCE_PLAN
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE
from agent.sync.plan import LEFT_SANCTIONED
from tests.harness.sanctions import POLICY_FILE, START, context_for
from tests.harness.sync_setup import SyncSetup, hr_config, hr_row, make_sync_setup, managed


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    sync_setup = make_sync_setup(keycloak_connection, realm, tmp_path)
    # The policy beside the agent config is the one the sync reads to know which levels hold access.
    (tmp_path / "policies").mkdir()
    shutil.copy(POLICY_FILE, tmp_path / "policies" / "sanctions.yaml")
    return sync_setup


# Five people and two leavers would trip the removal brake; brakes are tested elsewhere.
NO_BRAKES = {"max_removals": 100, "max_removal_ratio": 1.0, "max_shrink_ratio": 1.0}


def enabled(gateway: KeycloakGateway, realm: str) -> dict[str, bool]:
    return {user.username: user.enabled for user in managed(gateway, realm).values()}


def test_s19_sync_never_undoes_a_sanction(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    rows = [hr_row(i) for i in range(5)]
    config = hr_config(setup, rows, **NO_BRAKES)
    run, _, _ = setup.run(config)
    assert run.status == "succeeded" and all(enabled(gateway, setup.realm).values())
    clock = ManualClock(START)
    with open_store(config.store, now=clock) as store:
        context = context_for(gateway, store, setup.realm, clock)
        ban = issue_sanction(context, "person001", level="ban", reason_code="fraud")
        issue_sanction(context, "person002", level="warning", reason_code="spam")
        suspension = issue_sanction(context, "person003", level="suspension", reason_code="spam")
        assert ban.state == suspension.state == "active"

    # HR still lists person001 as active; person002 (warned) and person003 (suspended) have left.
    leavers = {"person002", "person003"}
    rows = [hr_row(i, Status="Terminated") if f"person{i:03d}" in leavers else hr_row(i) for i in range(5)]
    run, prepared, _ = setup.run(hr_config(setup, rows, **NO_BRAKES))

    assert run.status == "succeeded"
    states = enabled(gateway, setup.realm)
    assert states == {"person000": True, "person001": False, "person002": False, "person003": False, "person004": True}
    held = {h.username: h.reason for h in prepared.plan.held}
    assert "active sanction" in held["person001"]
    assert not [item for item in prepared.plan.items if item.username == "person001"]
    # The suspended leaver is only marked as left (already disabled: no change of access).
    assert [(i.action, i.reason) for i in prepared.plan.items if i.username == "person003"] == [
        ("mark-left", LEFT_SANCTIONED)
    ]
    # A second run changes nothing: the sync does not fight the sanction engine.
    run, prepared, _ = setup.run(hr_config(setup, rows, **NO_BRAKES))
    assert prepared.plan.items == () and enabled(gateway, setup.realm) == states

    # The suspension ends: the leaver's account stays disabled (not re-enabled until the next sync), and the
    # sync has nothing left to do.
    clock.advance(timedelta(days=31))
    with open_store(config.store, now=clock) as store:
        report = enforce_sanctions(context_for(gateway, store, setup.realm, clock))
        assert report.lifted == [suspension.id] and report.ok
        ended = store.sanctions.get(suspension.id)
        assert ended is not None and ended.state == "expired" and ended.end_note.endswith(KEPT_DISABLED_NOTE)
    assert enabled(gateway, setup.realm) == states
    run, prepared, _ = setup.run(hr_config(setup, rows, **NO_BRAKES))
    assert prepared.plan.items == () and enabled(gateway, setup.realm) == states
    banned = next(u for u in managed(gateway, setup.realm).values() if u.username == "person001")
    assert banned.attributes[EXTERNAL_ID_ATTRIBUTE] == ("5001",) and not banned.enabled


def test_s19_a_rehire_with_an_active_ban_is_not_re_enabled(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    everyone = [hr_row(i) for i in range(3)]
    setup.run(hr_config(setup, everyone, **NO_BRAKES))
    left = [hr_row(0), hr_row(1), hr_row(2, Status="Terminated")]
    run, _, _ = setup.run(hr_config(setup, left, **NO_BRAKES))
    assert run.status == "succeeded" and not enabled(gateway, setup.realm)["person002"]  # disabled by the sync
    clock = ManualClock(START)
    with open_store(hr_config(setup, left, **NO_BRAKES).store, now=clock) as store:
        ban = issue_sanction(
            context_for(gateway, store, setup.realm, clock), "person002", level="ban", reason_code="fraud"
        )
        assert ban.state == "active" and ban.changes.enabled_before is None  # already disabled: not the ban's doing

    run, prepared, _ = setup.run(hr_config(setup, everyone, **NO_BRAKES))  # rehired in HR

    assert run.status == "succeeded" and not enabled(gateway, setup.realm)["person002"]
    assert [h.reason for h in prepared.plan.held if h.username == "person002"] == [
        "active sanction: only the sanction engine changes this user's access"
    ]


def test_s19_a_suspension_ends_after_the_person_left_or_came_back(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    everyone = [hr_row(i) for i in range(4)]
    setup.run(hr_config(setup, everyone, **NO_BRAKES))
    clock = ManualClock(START)
    with open_store(hr_config(setup, everyone, **NO_BRAKES).store, now=clock) as store:
        context = context_for(gateway, store, setup.realm, clock)
        gone = issue_sanction(context, "person001", level="suspension", reason_code="spam")
        back = issue_sanction(context, "person002", level="suspension", reason_code="spam")

    # person001 is deleted from HR, person002 terminated, while both are suspended: each is marked as left.
    left = [hr_row(0), hr_row(2, Status="Terminated"), hr_row(3)]
    run, prepared, _ = setup.run(hr_config(setup, left, **NO_BRAKES))
    assert run.status == "succeeded"
    assert sorted((item.action, item.username) for item in prepared.plan.items) == [
        ("mark-left", "person001"), ("mark-left", "person002")
    ]  # fmt: skip
    # person002 comes back while still suspended: the sync holds them, the sanction decides for now.
    run, prepared, _ = setup.run(hr_config(setup, everyone[:1] + everyone[2:], **NO_BRAKES))
    assert prepared.plan.items == () and not any(enabled(gateway, setup.realm)[f"person00{i}"] for i in (1, 2))

    clock.advance(timedelta(days=31))
    with open_store(hr_config(setup, everyone[:1] + everyone[2:], **NO_BRAKES).store, now=clock) as store:
        report = enforce_sanctions(context_for(gateway, store, setup.realm, clock))
        assert sorted(report.lifted) == sorted([gone.id, back.id]) and report.ok
    assert not any(enabled(gateway, setup.realm)[f"person00{i}"] for i in (1, 2))  # neither enabled by the lift

    # The sync, which knows who works here, enables the one who came back and only them.
    run, prepared, _ = setup.run(hr_config(setup, everyone[:1] + everyone[2:], **NO_BRAKES))
    assert [(item.action, item.username, item.reason) for item in prepared.plan.items] == [
        ("enable", "person002", "rehired")
    ]
    assert enabled(gateway, setup.realm) == {
        "person000": True,
        "person001": False,
        "person002": True,
        "person003": True,
    }


def test_s19_a_ban_issued_while_the_sync_plans_a_rehire_keeps_the_account_disabled(
    setup: SyncSetup, gateway: KeycloakGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    everyone = [hr_row(i) for i in range(3)]
    setup.run(hr_config(setup, everyone, **NO_BRAKES))
    setup.run(hr_config(setup, [hr_row(0), hr_row(1), hr_row(2, Status="Terminated")], **NO_BRAKES))
    assert not enabled(gateway, setup.realm)["person002"]
    config = hr_config(setup, everyone, **NO_BRAKES)  # rehired in HR
    planned = runner.prepare_sync
    clock = ManualClock(START)

    def ban_once_planned(*args: Any, **kwargs: Any) -> runner.Prepared:
        # The plan saw no sanction; a moderator bans the person before the sync writes.
        prepared = planned(*args, **kwargs)
        with open_store(config.store, now=clock) as store:
            issue_sanction(
                context_for(gateway, store, setup.realm, clock), "person002", level="ban", reason_code="fraud"
            )
        return prepared

    monkeypatch.setattr(runner, "prepare_sync", ban_once_planned)
    run, prepared, outcome = setup.run(config)

    assert [(item.action, item.username) for item in prepared.plan.items] == [("enable", "person002")]
    assert [(r.outcome, r.detail) for r in outcome.results] == [("skipped", SANCTIONED_SINCE_PLAN)]
    assert run.status == "succeeded" and not enabled(gateway, setup.realm)["person002"]
