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


def test_a_superseded_set_is_expired_from_its_expiry_on_not_before() -> None:
    superseded = replace(WAITING, expires_at=NOW)
    assert staged_set_state(superseded, NOW).endswith(
        "expired at 2026-12-01T09:00:00+00:00 (a later run computed the removals again)"
    )
    assert "awaiting approval" in staged_set_state(superseded, NOW - timedelta(seconds=1))
