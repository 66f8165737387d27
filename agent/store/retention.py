# ruff: noqa: S608  # every SQL text here is fixed; values only ever go in as `?` parameters
"""Store retention: delete finished runs (with their items), decided or expired staged removal sets, and
harvested login events once they are older than the configured ages, in bounded batches.

Never touched: the journal (append-only and hash-chained: deleting from it would break `journal verify`),
a run still running, and a staged set still awaiting approval (nor the run it belongs to).
Leaver retention of Keycloak users is a different thing: the sync does it (policies/retention.yaml).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.store.connection import Param, Transaction, integer, text
from agent.store.db import Store
from agent.store.values import utc_text

DEFAULT_RUNS_MAX_AGE = timedelta(days=400)
DEFAULT_LOGINS_MAX_AGE = timedelta(days=400)
DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 900  # one placeholder per row in `IN (...)`: below SQLite's oldest variable limit (999)

# A staged set is decided when approved, and over once it expired; its end time is when that happened.
# `?` 1: runs cut-off for approved sets, 2: runs cut-off for expired sets.
_SET_PRUNABLE = (
    "((approved_at IS NOT NULL AND approved_at < ?) OR (approved_at IS NULL AND expires_at IS NOT NULL"
    " AND expires_at < ?))"
)
_SET_KEPT = (
    "((approved_at IS NOT NULL AND approved_at >= ?) OR (approved_at IS NULL AND (expires_at IS NULL"
    " OR expires_at >= ?)))"
)
_RUN_PRUNABLE = (
    "status <> 'running' AND finished_at IS NOT NULL AND finished_at < ?"
    f" AND id NOT IN (SELECT run_id FROM staged_sets WHERE {_SET_KEPT})"
)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long the store keeps what it no longer needs (ages counted back from the pass's `now`)."""

    runs_max_age: timedelta = DEFAULT_RUNS_MAX_AGE  # finished runs, their items, decided/expired staged sets
    logins_max_age: timedelta = DEFAULT_LOGINS_MAX_AGE  # harvested login events
    batch_size: int = DEFAULT_BATCH_SIZE  # rows deleted per transaction

    def __post_init__(self) -> None:
        if self.runs_max_age <= timedelta(0) or self.logins_max_age <= timedelta(0):
            raise ValueError("retention ages must be positive")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"retention batch size must be 1..{MAX_BATCH_SIZE}")


@dataclass(frozen=True)
class Cutoffs:
    """Everything that ended strictly before these times goes."""

    runs: datetime
    logins: datetime


def cutoffs(policy: RetentionPolicy, now: datetime) -> Cutoffs:
    """The cut-off times of a pass at `now` (timezone-aware; a naive time is refused, its zone is a guess)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("retention needs a timezone-aware `now`")
    return Cutoffs(runs=now - policy.runs_max_age, logins=now - policy.logins_max_age)


def staged_set_prunable(approved_at: datetime | None, expires_at: datetime | None, cutoff: datetime) -> bool:
    """Whether a staged set goes (mirrors _SET_PRUNABLE): decided (approved) or expired before the cut-off.
    A set neither approved nor expired is still awaiting approval and always stays."""
    if approved_at is not None:
        return approved_at < cutoff
    return expires_at is not None and expires_at < cutoff


def run_prunable(status: str, finished_at: datetime | None, cutoff: datetime, *, has_kept_set: bool) -> bool:
    """Whether a run goes (mirrors _RUN_PRUNABLE): finished before the cut-off, and no staged set of it stays."""
    return status != "running" and finished_at is not None and finished_at < cutoff and not has_kept_set


@dataclass(frozen=True)
class PruneReport:
    cutoffs: Cutoffs
    dry_run: bool
    runs: int = 0
    run_items: int = 0
    staged_sets: int = 0
    staged_items: int = 0
    login_events: int = 0

    @property
    def total(self) -> int:
        return self.runs + self.run_items + self.staged_sets + self.staged_items + self.login_events

    def counts(self) -> dict[str, int]:
        return {
            "runs": self.runs,
            "run_items": self.run_items,
            "staged_sets": self.staged_sets,
            "staged_items": self.staged_items,
            "login_events": self.login_events,
        }

    def describe(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        counted = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in self.counts().items())
        return (
            f"retention {verb}: {counted} (runs and staged sets ended before {utc_text(self.cutoffs.runs)}, "
            f"login events before {utc_text(self.cutoffs.logins)}); the journal is kept whole"
        )


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _count(tx: Transaction, sql: str, params: Sequence[Param]) -> int:
    row = tx.query_one(sql, params)
    return 0 if row is None else integer(row, "n")


def _prune_staged_sets(store: Store, cut: str, batch: int, stop: Callable[[], bool]) -> tuple[int, int]:
    sets = items = 0
    while not stop():
        with store.db.transaction(write=True) as tx:
            ids = [
                text(row, "run_id")
                for row in tx.query(
                    f"SELECT run_id FROM staged_sets WHERE {_SET_PRUNABLE} ORDER BY run_id LIMIT ?", (cut, cut, batch)
                )
            ]
            if not ids:
                return sets, items
            items += tx.execute(f"DELETE FROM staged_items WHERE run_id IN ({_marks(len(ids))})", ids)
            sets += tx.execute(f"DELETE FROM staged_sets WHERE run_id IN ({_marks(len(ids))})", ids)
        if len(ids) < batch:
            return sets, items
    return sets, items


def _prune_runs(store: Store, cut: str, batch: int, stop: Callable[[], bool]) -> tuple[int, int]:
    runs = items = 0
    while not stop():
        with store.db.transaction(write=True) as tx:
            ids = [
                text(row, "id")
                for row in tx.query(
                    f"SELECT id FROM runs WHERE {_RUN_PRUNABLE} ORDER BY id LIMIT ?", (cut, cut, cut, batch)
                )
            ]
            if not ids:
                return runs, items
            items += tx.execute(f"DELETE FROM run_items WHERE run_id IN ({_marks(len(ids))})", ids)
            runs += tx.execute(f"DELETE FROM runs WHERE id IN ({_marks(len(ids))})", ids)
        if len(ids) < batch:
            return runs, items
    return runs, items


def _prune_logins(store: Store, cut: str, batch: int, stop: Callable[[], bool]) -> int:
    deleted = 0
    while not stop():
        with store.db.transaction(write=True) as tx:
            rows = tx.query(
                "SELECT realm, event_id FROM login_events WHERE at < ? ORDER BY at, realm, event_id LIMIT ?",
                (cut, batch),
            )
            by_realm: dict[str, list[str]] = {}
            for row in rows:
                by_realm.setdefault(text(row, "realm"), []).append(text(row, "event_id"))
            for realm, events in by_realm.items():
                deleted += tx.execute(
                    f"DELETE FROM login_events WHERE realm = ? AND event_id IN ({_marks(len(events))})",
                    (realm, *events),
                )
                # Logins of this realm are known only from the cut on now: a user whose last login was pruned
                # is not one who never logged in since the first harvest.
                tx.execute(
                    "UPDATE login_harvests SET first_harvest_at = ? WHERE realm = ? AND first_harvest_at < ?",
                    (cut, realm, cut),
                )
        if len(rows) < batch:
            return deleted
    return deleted


def _dry_run(store: Store, found: Cutoffs) -> PruneReport:
    runs_cut, logins_cut = utc_text(found.runs), utc_text(found.logins)
    with store.db.transaction() as tx:
        return PruneReport(
            found,
            dry_run=True,
            staged_sets=_count(tx, f"SELECT COUNT(*) AS n FROM staged_sets WHERE {_SET_PRUNABLE}", (runs_cut,) * 2),
            staged_items=_count(
                tx,
                "SELECT COUNT(*) AS n FROM staged_items WHERE run_id IN"
                f" (SELECT run_id FROM staged_sets WHERE {_SET_PRUNABLE})",
                (runs_cut,) * 2,
            ),
            runs=_count(tx, f"SELECT COUNT(*) AS n FROM runs WHERE {_RUN_PRUNABLE}", (runs_cut,) * 3),
            run_items=_count(
                tx,
                f"SELECT COUNT(*) AS n FROM run_items WHERE run_id IN (SELECT id FROM runs WHERE {_RUN_PRUNABLE})",
                (runs_cut,) * 3,
            ),
            login_events=_count(tx, "SELECT COUNT(*) AS n FROM login_events WHERE at < ?", (logins_cut,)),
        )


def _never() -> bool:
    return False


def prune_store(
    store: Store,
    policy: RetentionPolicy,
    now: datetime,
    *,
    dry_run: bool = False,
    actor: str = "idp-agent",
    should_stop: Callable[[], bool] = _never,
) -> PruneReport:
    """One retention pass. Staged sets go before runs (a run whose set stays is kept). Each batch is its own
    transaction, so a long pass never holds the store; `should_stop` is asked before each batch, and a pass
    stopped half-way (counts of what it did delete are still journalled) is finished by the next one.
    A pass with anything to delete journals its intent first (the counts it found), then what it deleted
    (counts only, never what): a process killed between batches leaves the intent in the journal."""
    found = cutoffs(policy, now)
    planned = _dry_run(store, found)
    if dry_run:
        return planned
    if planned.total:
        store.journal.append(
            actor=actor, action="store.prune", subject="store", realm="", reason=_prune_reason(policy),
            details={"outcome": "intent", **planned.counts()},
        )  # fmt: skip
    runs_cut = utc_text(found.runs)
    staged_sets, staged_items = _prune_staged_sets(store, runs_cut, policy.batch_size, should_stop)
    runs, run_items = _prune_runs(store, runs_cut, policy.batch_size, should_stop)
    login_events = _prune_logins(store, utc_text(found.logins), policy.batch_size, should_stop)
    report = PruneReport(found, False, runs, run_items, staged_sets, staged_items, login_events)
    if report.total:
        store.journal.append(
            actor=actor, action="store.prune", subject="store", realm="", reason=_prune_reason(policy),
            details={"outcome": "applied", **report.counts()},
        )  # fmt: skip
    return report


def _prune_reason(policy: RetentionPolicy) -> str:
    return (
        f"retention: runs and staged sets older than {policy.runs_max_age.days}d, "
        f"login events older than {policy.logins_max_age.days}d"
    )
