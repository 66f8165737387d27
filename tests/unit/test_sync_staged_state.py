"""`sync show` says where a run's staged removal set stands: awaiting approval, approved, or superseded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from agent.store.staging import StagedRemoval, StagedSet
from agent.sync.commands import staged_set_state

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WAITING = StagedSet(
    run_id="20261201T080000Z-ab12",
    realm="acme",
    items=(StagedRemoval("kc-1", "hr-1", "disable", "employment ended"),),
    set_hash="0" * 64,
    staged_at=NOW - timedelta(hours=1),
    expires_at=None,
    approved_by=None,
    approved_at=None,
)


def test_a_set_awaiting_approval_names_the_command_that_approves_it() -> None:
    assert staged_set_state(WAITING, NOW) == (
        "staged set of 1 removal(s): awaiting approval (idp-agent sync approve 20261201T080000Z-ab12)"
    )


def test_an_approved_set_names_who_approved_it_and_when() -> None:
    approved = replace(WAITING, approved_by="security-lead", approved_at=NOW)
    assert staged_set_state(approved, NOW) == (
        "staged set of 1 removal(s): approved by security-lead at 2026-12-01T09:00:00+00:00"
    )


def test_a_superseded_set_names_the_run_that_superseded_it_whatever_the_clock() -> None:
    superseded = replace(WAITING, superseded_by="20261201T083000Z-cd34", expires_at=NOW)
    expected = "staged set of 1 removal(s): superseded by run 20261201T083000Z-cd34, which computed the removals again"
    assert staged_set_state(superseded, NOW) == expected
    assert staged_set_state(superseded, NOW - timedelta(hours=1)) == expected


def test_a_set_past_its_expiry_says_when_it_expired() -> None:
    expiring = replace(WAITING, expires_at=NOW)
    assert staged_set_state(expiring, NOW) == "staged set of 1 removal(s): expired at 2026-12-01T09:00:00+00:00"
    assert "awaiting approval" in staged_set_state(expiring, NOW - timedelta(seconds=1))
