"""Appeals without Keycloak: the store area, deadlines and overdue flags at fixed times, which decisions are
allowed, and opening/acknowledging with their journal entries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.appeals.deadlines import is_overdue, next_deadline, overdue_reasons
from agent.appeals.decisions import AppealError, check_can_open, check_decision
from agent.appeals.service import acknowledge_appeal, list_appeals, open_appeal
from agent.sanctions.policy import SanctionPolicy, load_sanction_policy
from agent.store import ManualClock, open_store
from agent.store.appeals import Appeal
from agent.store.db import Store
from agent.store.errors import StoreError
from agent.store.sanctions import NewSanction, Sanction
from tests.harness.store_backends import StoreBackend

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "sanctions.yaml"


@pytest.fixture(scope="module")
def policy() -> SanctionPolicy:
    return load_sanction_policy(POLICY_FILE, {})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(store_backend: StoreBackend, clock: ManualClock) -> Iterator[Store]:
    """On SQLite, and on PostgreSQL as an integration variant."""
    with open_store(store_backend.url, now=clock) as store:
        yield store


def active_sanction(store: Store, level: str = "suspension", username: str = "ann") -> Sanction:
    added = store.sanctions.add(
        NewSanction("acme", f"kc-{username}", username, level, level, "spam", "moderator", START + timedelta(days=7))
    )
    return store.sanctions.save(replace(added, state="active"))


def appeal_at(opened: datetime, **changes: object) -> Appeal:
    values: dict[str, object] = {
        "sanction_id": "s-1", "realm": "acme", "username": "ann", "text": "not me", "opened_by": "ann",
        "id": "a-1", "opened_at": opened, "acknowledge_due": opened + timedelta(days=2),
        "decide_due": opened + timedelta(days=15),
    }  # fmt: skip
    values.update(changes)
    return Appeal(**values)  # type: ignore[arg-type]


# Deadlines: acknowledge within 2 days, decide within 15, at fixed times.
@pytest.mark.parametrize(
    ("after", "acknowledged", "expected"),
    [
        (timedelta(days=1), False, ()),
        (timedelta(days=2), False, ()),  # due at that very moment: not late yet
        (timedelta(days=2, seconds=1), False, ("not acknowledged by 2026-12-01 09:00 UTC",)),
        (timedelta(days=3), True, ()),
        (timedelta(days=15, seconds=1), True, ("not decided by 2026-12-14 09:00 UTC",)),
        (
            timedelta(days=16),
            False,
            ("not acknowledged by 2026-12-01 09:00 UTC", "not decided by 2026-12-14 09:00 UTC"),
        ),
    ],
)
def test_overdue_reasons(after: timedelta, acknowledged: bool, expected: tuple[str, ...]) -> None:
    appeal = appeal_at(START, acknowledged_at=START + timedelta(hours=1) if acknowledged else None)
    assert overdue_reasons(appeal, START + after) == expected
    assert is_overdue(appeal, START + after) is bool(expected)


def test_a_decided_appeal_is_never_overdue_and_has_no_next_deadline() -> None:
    decided = appeal_at(START, decision="uphold", decided_at=START + timedelta(days=30), note="late but decided")
    assert overdue_reasons(decided, START + timedelta(days=40)) == ()
    assert next_deadline(decided) is None
    assert next_deadline(appeal_at(START)) == START + timedelta(days=2)
    assert next_deadline(appeal_at(START, acknowledged_at=START)) == START + timedelta(days=15)


# Decisions allowed.
def test_reduce_must_be_to_a_milder_level(store: Store, policy: SanctionPolicy) -> None:
    sanction = active_sanction(store, "suspension")
    appeal = appeal_at(START, sanction_id=sanction.id)
    check_decision(appeal, sanction, "reduce", "warning", policy)
    check_decision(appeal, sanction, "reduce", "restriction", policy)
    for level, problem in (("ban", "milder level"), ("suspension", "milder level"), ("jail", "not a level")):
        with pytest.raises(AppealError, match=problem):
            check_decision(appeal, sanction, "reduce", level, policy)


def test_the_mildest_level_cannot_be_reduced(store: Store, policy: SanctionPolicy) -> None:
    sanction = active_sanction(store, "warning")
    with pytest.raises(AppealError, match="milder level than warning") as raised:
        check_decision(appeal_at(START), sanction, "reduce", "warning", policy)
    assert raised.value.hint == "warning is the mildest level: uphold or overturn"


def test_an_ended_sanction_can_only_be_upheld(store: Store, policy: SanctionPolicy) -> None:
    sanction = replace(active_sanction(store), state="expired")
    appeal = appeal_at(START)
    check_decision(appeal, sanction, "uphold", None, policy)
    for decision, level in (("overturn", None), ("reduce", "warning")):
        with pytest.raises(AppealError, match="no longer be"):
            check_decision(appeal, sanction, decision, level, policy)  # type: ignore[arg-type]
    with pytest.raises(AppealError, match="nothing left to appeal"):
        check_can_open(sanction)
    with pytest.raises(AppealError, match="nothing left to appeal"):
        check_can_open(replace(active_sanction(store), ending="lifted"))


def test_a_decision_is_final(store: Store, policy: SanctionPolicy) -> None:
    sanction = active_sanction(store)
    with pytest.raises(AppealError, match="decided: uphold already"):
        check_decision(appeal_at(START, decision="uphold"), sanction, "overturn", None, policy)


# Store and service.
def test_open_sets_due_dates_from_the_policy_and_journals_without_the_text(
    store: Store, policy: SanctionPolicy
) -> None:
    sanction = active_sanction(store)
    appeal = open_appeal(store, policy.appeals, sanction.id, text="I was on holiday", actor="ann")
    assert appeal.opened_at == START
    assert appeal.acknowledge_due == START + policy.appeals.acknowledge_within
    assert appeal.decide_due == START + policy.appeals.decide_within
    assert (appeal.status, appeal.username, appeal.realm) == ("open", "ann", "acme")
    assert store.appeals.get(appeal.id) == appeal
    [entry] = store.journal.entries()
    assert (entry.action, entry.actor, entry.subject, entry.realm) == ("appeal.open", "ann", "ann", "acme")
    assert entry.details == {"appeal_id": appeal.id, "sanction_id": sanction.id, "level": "suspension"}
    assert "holiday" not in entry.reason


def test_one_undecided_appeal_per_sanction(store: Store, policy: SanctionPolicy) -> None:
    sanction = active_sanction(store)
    first = open_appeal(store, policy.appeals, sanction.id, text="first", actor="ann")
    with pytest.raises(StoreError, match=f"undecided appeal already: {first.id}"):
        open_appeal(store, policy.appeals, sanction.id, text="second", actor="ann")
    store.appeals.decide(first.id, "uphold", actor="lead", note="evidence is clear", reduced_to=None)
    assert open_appeal(store, policy.appeals, sanction.id, text="second", actor="ann").id != first.id


def test_open_refuses_unknown_or_ended_sanctions(store: Store, policy: SanctionPolicy) -> None:
    with pytest.raises(AppealError, match="no sanction s-missing"):
        open_appeal(store, policy.appeals, "s-missing", text="x", actor="ann")
    ended = store.sanctions.save(replace(active_sanction(store), state="lifted"))
    with pytest.raises(AppealError, match="is lifted"):
        open_appeal(store, policy.appeals, ended.id, text="x", actor="ann")
    assert store.journal.entries() == []


def test_acknowledge_once_and_overdue_listing(store: Store, policy: SanctionPolicy, clock: ManualClock) -> None:
    late = open_appeal(store, policy.appeals, active_sanction(store, username="ann").id, text="a", actor="ann")
    on_time = open_appeal(store, policy.appeals, active_sanction(store, username="bob").id, text="b", actor="bob")
    clock.advance(timedelta(days=1))
    acknowledged = acknowledge_appeal(store, on_time.id, actor="lead")
    assert (acknowledged.status, acknowledged.acknowledged_at) == ("acknowledged", START + timedelta(days=1))
    clock.advance(timedelta(days=1))
    assert acknowledge_appeal(store, on_time.id, actor="other") == acknowledged  # unchanged
    assert [e.action for e in store.journal.entries()] == ["appeal.open", "appeal.open", "appeal.acknowledge"]
    assert list_appeals(store, clock(), overdue_only=True) == []
    clock.advance(timedelta(seconds=1))
    [flagged] = list_appeals(store, clock(), overdue_only=True)
    assert flagged.appeal.id == late.id
    assert flagged.overdue == ("not acknowledged by 2026-12-01 09:00 UTC",)
    assert {item.appeal.id for item in list_appeals(store, clock())} == {late.id, on_time.id}  # same second


def test_decide_records_once_and_acknowledges(store: Store, policy: SanctionPolicy, clock: ManualClock) -> None:
    appeal = open_appeal(store, policy.appeals, active_sanction(store).id, text="a", actor="ann")
    clock.advance(timedelta(days=3))
    decided = store.appeals.decide(appeal.id, "reduce", actor="lead", note="first offence", reduced_to="warning")
    assert (decided.decision, decided.reduced_to, decided.decided_by) == ("reduce", "warning", "lead")
    assert decided.acknowledged_at == decided.decided_at == START + timedelta(days=3)
    assert decided.status == "decided: reduce to warning"
    assert store.appeals.get(appeal.id) == decided
    with pytest.raises(StoreError, match="decided already"):
        store.appeals.decide(appeal.id, "overturn", actor="lead", note="changed my mind", reduced_to=None)
    with pytest.raises(StoreError, match="goes with the decision reduce"):
        store.appeals.decide(appeal.id, "uphold", actor="lead", note="x", reduced_to="warning")
