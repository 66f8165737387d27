# ruff: noqa: S608  # every SQL text here is fixed; values only ever go in as `?` parameters
"""Staged removal sets: the exact removals a run computed but did not apply, kept until approved once.

`sync approve RUN_ID` applies exactly the set returned by `approve`, never a set computed again: the hash
taken at staging is checked on every read, so a set changed in the store is refused, not applied.
Applying an approved set is a new run; the staged run's status moves from `staged` to `approved`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from agent.store.connection import Database, Row, Transaction, integer, optional_text, text
from agent.store.errors import ApprovalError, StoreError
from agent.store.runs import get_run
from agent.store.values import canonical_json, check_text, parse_utc, sha256_hex, utc_text

RemovalAction = Literal["disable", "confirm-leaver", "delete", "anonymise", "revoke"]
REMOVAL_ACTIONS: frozenset[str] = frozenset(get_args(RemovalAction))


@dataclass(frozen=True)
class StagedRemoval:
    """One removal: the Keycloak user id it acts on, the source's immutable id, and `grant` for a revoke."""

    user_id: str
    external_id: str
    action: RemovalAction
    reason: str
    grant: str = ""  # what a revoke removes, e.g. "group /finance"; empty for the others

    def __post_init__(self) -> None:
        check_text(self.user_id, "staged user id", empty=False)
        check_text(self.external_id, "staged external id")
        check_text(self.reason, "staged reason", empty=False)
        check_text(self.grant, "staged grant")
        if self.action not in REMOVAL_ACTIONS:
            raise StoreError(f"a staged removal is one of {', '.join(sorted(REMOVAL_ACTIONS))}, not '{self.action}'")
        if (self.action == "revoke") != bool(self.grant):
            raise StoreError("a staged revoke names the grant it removes, and only a revoke does")


@dataclass(frozen=True)
class StagedSet:
    run_id: str
    realm: str
    items: tuple[StagedRemoval, ...]  # in the order they were staged
    set_hash: str
    staged_at: datetime
    expires_at: datetime | None
    approved_by: str | None
    approved_at: datetime | None
    superseded_by: str | None = None  # the later run of the same sync that computed the removals again

    @property
    def approved(self) -> bool:
        return self.approved_by is not None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def set_hash(run_id: str, realm: str, items: tuple[StagedRemoval, ...]) -> str:
    """sha256 over the canonical JSON of the run, the realm and every item in order."""
    rows = [[item.user_id, item.external_id, item.action, item.grant, item.reason] for item in items]
    return sha256_hex(canonical_json({"run_id": run_id, "realm": realm, "items": rows}))


class Staging:
    """Staged removal sets in the store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def stage_removals(
        self, run_id: str, realm: str, items: Sequence[StagedRemoval], *, expires_at: datetime | None = None
    ) -> StagedSet:
        """Keep `items` for `run_id` (once per run), with their hash; `expires_at` ends the chance to approve."""
        check_text(realm, "staged realm", empty=False)
        removals = tuple(items)
        if not removals:
            raise StoreError(f"run {run_id}: an empty removal set is not staged; nothing needs approval")
        digest = set_hash(run_id, realm, removals)
        staged_at = self._db.now()
        with self._db.transaction(write=True) as tx:
            if get_run(tx, run_id) is None:
                raise StoreError(f"no run {run_id} to stage removals for")
            if tx.query_one("SELECT run_id FROM staged_sets WHERE run_id = ?", (run_id,)) is not None:
                raise StoreError(f"run {run_id} has a staged removal set already")
            tx.execute(
                "INSERT INTO staged_sets (run_id, realm, set_hash, item_count, staged_at, expires_at, approved_by,"
                " approved_at) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    run_id,
                    realm,
                    digest,
                    len(removals),
                    utc_text(staged_at),
                    None if expires_at is None else utc_text(expires_at),
                ),
            )
            tx.execute_many(
                "INSERT INTO staged_items (run_id, seq, user_id, external_id, action, grant_name, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (run_id, seq, item.user_id, item.external_id, item.action, item.grant, item.reason)
                    for seq, item in enumerate(removals, start=1)
                ],
            )
            return read_staged(tx, run_id)  # type: ignore[return-value]  # inserted just above

    def staged(self, run_id: str) -> StagedSet | None:
        """The run's staged set, or None; raises when the stored set no longer matches its hash."""
        with self._db.transaction() as tx:
            return read_staged(tx, run_id)

    def supersede(self, run_id: str) -> list[str]:
        """Mark the sets still awaiting approval that other runs of the same sync (runs of the same store lock,
        or of none, in the same realm: under the lock, earlier ones) staged as superseded by `run_id`, which
        computed the removals again: an old set applied after its removals were computed anew (a source fixed
        meanwhile) would remove people the sources keep. This also ends a set whose run was cut off before it
        finished as staged (it can never be approved). Each also expires now, which is when retention counts
        it ended. The run ids whose sets were superseded, oldest first."""
        with self._db.transaction(write=True) as tx:
            same_sync, params = _same_sync_runs(tx, run_id)
            waiting = (
                f"approved_at IS NULL AND superseded_by IS NULL AND run_id IN (SELECT id FROM runs WHERE {same_sync})"
            )
            rows = tx.query(f"SELECT run_id FROM staged_sets WHERE {waiting} ORDER BY staged_at, run_id", params)
            now = utc_text(self._db.now())
            ends = "CASE WHEN expires_at IS NULL OR expires_at > ? THEN ? ELSE expires_at END"
            tx.execute(
                f"UPDATE staged_sets SET superseded_by = ?, expires_at = {ends} WHERE {waiting}",
                (run_id, now, now, *params),
            )
        return [text(row, "run_id") for row in rows]

    def approve(self, run_id: str, approver: str) -> StagedSet:
        """Mark the set approved by `approver`, exactly once; the caller then applies exactly the set returned.
        Refused when there is no set, it was approved already, it expired, it changed, or its run did not
        finish as `staged`."""
        check_text(approver, "approver", empty=False)
        with self._db.transaction(write=True) as tx:
            current = read_staged(tx, run_id)
            now = self._db.now()
            check_approvable(current, run_id, now)
            run = get_run(tx, run_id)
            if run is None or run.status != "staged":
                status = "missing" if run is None else run.status
                raise ApprovalError(f"run {run_id} is {status}, not staged: only a finished, staged run is approved")
            # The WHERE clause makes approval exactly-once even against a writer that bypassed the lock.
            changed = tx.execute(
                "UPDATE staged_sets SET approved_by = ?, approved_at = ? WHERE run_id = ? AND approved_by IS NULL",
                (approver, utc_text(now), run_id),
            )
            if changed != 1:
                raise ApprovalError(f"the removal set of run {run_id} was approved already")
            tx.execute("UPDATE runs SET status = 'approved' WHERE id = ?", (run_id,))
            approved = read_staged(tx, run_id)
        assert approved is not None
        return approved


def _same_sync_runs(tx: Transaction, run_id: str) -> tuple[str, tuple[str, ...]]:
    """A WHERE condition on `runs` for the other runs of `run_id`'s sync, and its parameters: runs of the same
    store lock ("sync-<name>", or none for a run started without one), of kind sync, in the same realm."""
    head = tx.query_one("SELECT realm, lock_name FROM runs WHERE id = ?", (run_id,))
    if head is None:
        raise StoreError(f"no run {run_id} to supersede staged removal sets with")
    lock = optional_text(head, "lock_name")
    same_lock = "lock_name IS NULL" if lock is None else "lock_name = ?"
    condition = f"kind = 'sync' AND realm = ? AND {same_lock} AND id <> ?"
    return condition, (text(head, "realm"), *(() if lock is None else (lock,)), run_id)


def check_approvable(current: StagedSet | None, run_id: str, now: datetime) -> None:
    if current is None:
        raise ApprovalError(f"run {run_id} has no staged removal set", hint="`idp-agent sync runs` lists the runs")
    if current.approved:
        raise ApprovalError(
            f"the removal set of run {run_id} was approved already, by {current.approved_by} at "
            f"{utc_text(current.approved_at) if current.approved_at else '?'}",
            hint="an approved set is applied once; run the sync again to compute a new one",
        )
    if current.superseded_by is not None:
        raise ApprovalError(
            f"the removal set of run {run_id} was superseded by run {current.superseded_by}, which computed the "
            "removals again: an older set is never applied",
            hint="review and approve the newest staged run (`idp-agent sync runs`), or run the sync again",
        )
    if current.expired(now):
        raise ApprovalError(
            f"the removal set of run {run_id} expired at {utc_text(current.expires_at) if current.expires_at else '?'}",
            hint="run the sync again; it stages the removals it still finds",
        )


def read_staged(tx: Transaction, run_id: str) -> StagedSet | None:
    head = tx.query_one("SELECT * FROM staged_sets WHERE run_id = ?", (run_id,))
    if head is None:
        return None
    rows = tx.query("SELECT * FROM staged_items WHERE run_id = ? ORDER BY seq", (run_id,))
    staged = _set_from_rows(head, rows)
    if (
        len(staged.items) != integer(head, "item_count")
        or set_hash(run_id, staged.realm, staged.items) != staged.set_hash
    ):
        raise StoreError(
            f"the staged removal set of run {run_id} no longer matches its hash: it was changed in the store",
            hint="do not approve it; run the sync again to stage a fresh set",
        )
    return staged


def _set_from_rows(head: Row, rows: list[Row]) -> StagedSet:
    items = tuple(
        StagedRemoval(
            user_id=text(row, "user_id"),
            external_id=text(row, "external_id"),
            action=text(row, "action"),  # type: ignore[arg-type]  # StagedRemoval checks it
            reason=text(row, "reason"),
            grant=text(row, "grant_name"),
        )
        for row in rows
    )
    expires = optional_text(head, "expires_at")
    approved_at = optional_text(head, "approved_at")
    return StagedSet(
        run_id=text(head, "run_id"),
        realm=text(head, "realm"),
        items=items,
        set_hash=text(head, "set_hash"),
        staged_at=parse_utc(text(head, "staged_at")),
        expires_at=None if expires is None else parse_utc(expires),
        approved_by=optional_text(head, "approved_by"),
        approved_at=None if approved_at is None else parse_utc(approved_at),
        superseded_by=optional_text(head, "superseded_by"),
    )
