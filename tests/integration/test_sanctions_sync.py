"""S19 against a real Keycloak: the sync never flips `enabled` on a user under an access-holding sanction
(a banned user active in HR stays disabled); a warning holds nothing, so a warned leaver is still disabled;
when a suspension of a leaver ends, the next sync disables the leaver."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.sanctions.service import enforce_sanctions, issue_sanction
from agent.settings import KeycloakConnection
from agent.store import ManualClock, open_store
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE
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
    assert not [item for item in prepared.plan.items if item.username in {"person001", "person003"}]
    # A second run changes nothing: the sync does not fight the sanction engine.
    run, prepared, _ = setup.run(hr_config(setup, rows, **NO_BRAKES))
    assert prepared.plan.items == () and enabled(gateway, setup.realm) == states

    # The suspension ends: access comes back as it was (enabled), and the next sync disables the leaver.
    clock.advance(timedelta(days=31))
    with open_store(config.store, now=clock) as store:
        report = enforce_sanctions(context_for(gateway, store, setup.realm, clock))
        assert report.lifted == [suspension.id] and report.ok
    assert enabled(gateway, setup.realm)["person003"]
    run, prepared, _ = setup.run(hr_config(setup, rows, **NO_BRAKES))
    assert [(item.action, item.username) for item in prepared.plan.items] == [("disable", "person003")]
    assert enabled(gateway, setup.realm) == {**states, "person003": False}
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
