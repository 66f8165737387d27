"""Staged removal sets: kept exactly, approved exactly once, refused when expired or changed in the store
(on SQLite, and on PostgreSQL as integration tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.store import ApprovalError, ManualClock, StagedRemoval, Store, StoreError, open_store
from agent.store.runs import Run, holding
from tests.harness.store_backends import StoreBackend

T0 = datetime(2026, 11, 29, 16, 55, 1, tzinfo=UTC)
REMOVALS = (
    StagedRemoval("kc-1", "hr-1001", "disable", "not in hr since 2026-11-28"),
    StagedRemoval("kc-2", "hr-1002", "revoke", "left the finance department", grant="group /finance"),
    StagedRemoval("kc-3", "hr-1003", "delete", "retention of 90 days over"),
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(store_backend: StoreBackend, clock: ManualClock) -> Iterator[Store]:
    with open_store(store_backend.url, now=clock) as opened:
        yield opened


def staged_run(store: Store, removals: tuple[StagedRemoval, ...] = REMOVALS, **options: Any) -> Run:
    """A sync run that stopped over the threshold and staged its removals, as the sync does it."""
    run = store.runs.start_run("sync", "acme", ("hr",))
    store.staging.stage_removals(run.id, "acme", removals, **options)
    return store.runs.finish_run(run.id, "staged", summary="3 removals reach the threshold of 2")


def test_the_exact_set_is_kept_in_order(store: Store, store_backend: StoreBackend) -> None:
    run = staged_run(store)
    with open_store(store_backend.url) as reopened:
        staged = reopened.staging.staged(run.id)
    assert staged is not None
    assert staged.items == REMOVALS
    assert (staged.realm, staged.staged_at, staged.approved, staged.expires_at) == ("acme", T0, False, None)
    assert len(staged.set_hash) == 64
    assert store.staging.staged("no-such-run") is None


def test_approve_once_returns_the_set_and_marks_the_run(store: Store, clock: ManualClock) -> None:
    run = staged_run(store)
    clock.advance(timedelta(hours=2))
    approved = store.staging.approve(run.id, "ops-alice")
    assert approved.items == REMOVALS
    assert (approved.approved_by, approved.approved_at) == ("ops-alice", T0 + timedelta(hours=2))
    assert store.runs.get_run(run.id).status == "approved"  # type: ignore[union-attr]
    with pytest.raises(ApprovalError, match="approved already, by ops-alice at 2026-11-29T18:55:01") as caught:
        store.staging.approve(run.id, "ops-bob")
    assert "applied once" in caught.value.hint
    assert store.staging.staged(run.id) == approved


def test_two_approvers_at_once_one_wins(store_backend: StoreBackend) -> None:
    url = store_backend.url
    with open_store(url) as store:
        run = staged_run(store)
    stores = [open_store(url) for _ in range(6)]  # as if six operators ran `sync approve` together
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def approve(index: int) -> None:
        barrier.wait()
        try:
            stores[index].staging.approve(run.id, f"ops-{index}")
            outcomes.append("approved")
        except ApprovalError:
            outcomes.append("refused")

    threads = [threading.Thread(target=approve, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for opened in stores:
        opened.close()
    assert sorted(outcomes) == ["approved"] + ["refused"] * 5


def test_an_expired_set_cannot_be_approved(store: Store, clock: ManualClock) -> None:
    run = staged_run(store, expires_at=T0 + timedelta(days=1))
    clock.advance(timedelta(days=1))
    with pytest.raises(ApprovalError, match="expired at 2026-11-30T16:55:01") as caught:
        store.staging.approve(run.id, "ops-alice")
    assert "run the sync again" in caught.value.hint
    staged = store.staging.staged(run.id)
    assert staged is not None and not staged.approved


def test_a_set_is_approved_only_once_its_run_finished_as_staged(store: Store) -> None:
    run = store.runs.start_run("sync", "acme")
    store.staging.stage_removals(run.id, "acme", REMOVALS)
    with pytest.raises(ApprovalError, match=f"run {run.id} is running, not staged"):
        store.staging.approve(run.id, "ops-alice")
    with pytest.raises(ApprovalError, match="has no staged removal set"):
        store.staging.approve("20261129T000000Z-0000", "ops-alice")


def test_a_later_run_of_the_same_sync_supersedes_the_sets_awaiting_approval(store: Store, clock: ManualClock) -> None:
    """Once a run computed the removals again (a source fixed meanwhile, say), an older set is never applied;
    sets of another sync (another lock), another realm or already approved are left as they are."""
    with holding("sync-hr"):
        approved, pending = staged_run(store), staged_run(store)
        store.staging.approve(approved.id, "ops-alice")
        cut_off = store.runs.start_run("sync", "acme")  # killed between staging and finishing as staged
        store.staging.stage_removals(cut_off.id, "acme", REMOVALS)
    with holding("sync-ldap"):
        other_sync = staged_run(store)
    with holding("sync-hr"):
        other_realm = store.runs.start_run("sync", "globex")
        store.staging.stage_removals(other_realm.id, "globex", REMOVALS)
        store.runs.finish_run(other_realm.id, "staged")
        clock.advance(timedelta(minutes=15))
        later = store.runs.start_run("sync", "acme")

    assert sorted(store.staging.supersede(later.id)) == sorted([pending.id, cut_off.id])

    assert store.staging.supersede(later.id) == []  # once
    with pytest.raises(ApprovalError, match=f"superseded by run {later.id}") as caught:
        store.staging.approve(pending.id, "ops-alice")
    assert "newest staged run" in caught.value.hint
    for kept in (other_sync, other_realm):
        assert store.staging.approve(kept.id, "ops-alice").approved
    for expired in (pending, cut_off):
        staged = store.staging.staged(expired.id)
        assert staged is not None and not staged.approved and staged.superseded_by == later.id
        assert staged.expires_at == T0 + timedelta(minutes=15)  # when retention counts it ended
    approved_set = store.staging.staged(approved.id)
    assert approved_set is not None and approved_set.expires_at is None


def test_supersession_is_a_mark_not_a_time_hosts_may_disagree_on(store: Store, clock: ManualClock) -> None:
    """The run that computes the removals again may run on a host whose clock is behind the one that staged
    the set, and the approver's clock may be behind both: the set is refused all the same."""
    with holding("sync-hr"):
        staged = staged_run(store)
        clock.advance(timedelta(minutes=-10))  # a host 10 minutes behind
        later = store.runs.start_run("sync", "acme")
    assert store.staging.supersede(later.id) == [staged.id]
    clock.advance(timedelta(minutes=-10))
    with pytest.raises(ApprovalError, match=f"superseded by run {later.id}"):
        store.staging.approve(staged.id, "ops-alice")


def test_a_set_changed_in_the_file_is_refused(store: Store, store_backend: StoreBackend) -> None:
    run = staged_run(store)
    store_backend.execute(("UPDATE staged_items SET user_id = 'kc-admin' WHERE run_id = ? AND seq = 1", (run.id,)))
    with pytest.raises(StoreError, match="no longer matches its hash") as caught:
        store.staging.approve(run.id, "ops-alice")
    assert "do not approve" in caught.value.hint
    store_backend.execute(
        ("UPDATE staged_items SET user_id = 'kc-1' WHERE run_id = ? AND seq = 1", (run.id,)),
        ("DELETE FROM staged_items WHERE run_id = ? AND seq = 3", (run.id,)),
    )
    with pytest.raises(StoreError, match="no longer matches its hash"):
        store.staging.staged(run.id)


def test_a_run_stages_one_non_empty_set(store: Store) -> None:
    run = staged_run(store)
    with pytest.raises(StoreError, match="has a staged removal set already"):
        store.staging.stage_removals(run.id, "acme", REMOVALS[:1])
    other = store.runs.start_run("sync", "acme")
    with pytest.raises(StoreError, match="an empty removal set is not staged"):
        store.staging.stage_removals(other.id, "acme", [])
    with pytest.raises(StoreError, match="no run 20261129T000000Z-0000"):
        store.staging.stage_removals("20261129T000000Z-0000", "acme", REMOVALS)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("kc-1", "hr-1", "revoke", "why"), "a staged revoke names the grant"),
        (("kc-1", "hr-1", "disable", "why", "group /x"), "only a revoke does"),
        (
            ("kc-1", "hr-1", "create", "why"),
            "a staged removal is one of anonymise, confirm-leaver, delete, disable, revoke, not 'create'",
        ),
        (("", "hr-1", "disable", "why"), "staged user id must not be empty"),
        (("kc-1", "hr-1", "disable", ""), "staged reason must not be empty"),
    ],
)
def test_staged_removals_are_checked(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(StoreError, match=message):
        StagedRemoval(*arguments)
