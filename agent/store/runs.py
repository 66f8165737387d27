"""Runs (one sync, apply or enforce pass) and their per-subject items: what `sync runs` and `sync show` print.

A run's counts are derived from its items when it finishes (`count_items`), so a report can never
disagree with its own journal; counts the items cannot give (records read, unchanged users) are extras.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal, get_args

from agent.store.connection import Database, Row, Transaction, integer, optional_text, text
from agent.store.errors import StoreConflict, StoreError
from agent.store.values import JsonValue, allowed_mapping, check_text, parse_utc, utc_text

RunStatus = Literal["running", "succeeded", "failed", "stopped", "staged", "approved"]
ItemAction = Literal[
    "create", "update", "disable", "enable", "mark-left", "delete", "anonymise", "grant", "revoke", "skip", "reject"
]
# "unknown": a write sent whose answer never came (it may or may not have been made; the next run reads again).
ItemOutcome = Literal["applied", "failed", "staged", "skipped", "unknown"]

RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))
# What finish_run may set; "approved" is set only by approving the run's staged removal set.
FINISHED_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "stopped", "staged"})
ITEM_ACTIONS: frozenset[str] = frozenset(get_args(ItemAction))
ITEM_OUTCOMES: frozenset[str] = frozenset(get_args(ItemOutcome))

# Fields an item may show before and after. Both our names (DesiredUser) and Keycloak's are accepted; the
# user's managed attributes go under `attributes.<name>`. Anything else (and any credential) is refused.
# Only ever add names: stored items are checked again when read back.
ITEM_FIELDS: frozenset[str] = frozenset(
    {
        "username",
        "email",
        "first_name",
        "firstName",
        "last_name",
        "lastName",
        "enabled",
        "email_verified",
        "emailVerified",
        "required_actions",
        "requiredActions",
        "status",
        "start",
        "end",
        "source",
        "external_id",
        "groups",
        "realm_roles",
        "client_roles",
    }
)
ITEM_FIELD_PREFIXES = ("attributes.",)
RUN_ID_ATTEMPTS = 5  # two runs started in the same second draw different suffixes; a clash is retried


@dataclass(frozen=True)
class Run:
    id: str
    kind: str  # "sync", "apply", "enforce", ...
    realm: str
    sources: tuple[str, ...]
    started_at: datetime
    finished_at: datetime | None
    status: RunStatus
    counts: Mapping[str, int]  # empty while running
    summary: str


@dataclass(frozen=True)
class NewItem:
    """One subject's step in a run, as the executor reports it. `before`/`after` hold only allow-listed
    fields (ITEM_FIELDS); checked here, so a bad item fails where it is made."""

    subject: str  # username or external id: whom the step was for
    action: ItemAction
    outcome: ItemOutcome
    before: Mapping[str, JsonValue] = field(default_factory=lambda: MappingProxyType({}))
    after: Mapping[str, JsonValue] = field(default_factory=lambda: MappingProxyType({}))
    granted: tuple[str, ...] = ()  # e.g. "group /finance", "role admin", "role app/viewer"
    revoked: tuple[str, ...] = ()
    error: str = ""  # why it failed, was skipped or rejected

    def __post_init__(self) -> None:
        check_text(self.subject, "item subject", empty=False)
        if self.action not in ITEM_ACTIONS:
            raise StoreError(f"item action '{self.action}' is not one of {', '.join(sorted(ITEM_ACTIONS))}")
        if self.outcome not in ITEM_OUTCOMES:
            raise StoreError(f"item outcome '{self.outcome}' is not one of {', '.join(sorted(ITEM_OUTCOMES))}")
        for name in ("before", "after"):
            checked = allowed_mapping(getattr(self, name), ITEM_FIELDS, f"item {name}", ITEM_FIELD_PREFIXES)
            object.__setattr__(self, name, checked)
        for name in ("granted", "revoked"):
            values = tuple(getattr(self, name))
            for value in values:
                check_text(value, f"item {name}", empty=False)
            object.__setattr__(self, name, values)
        check_text(self.error, "item error")


@dataclass(frozen=True, kw_only=True)
class RunItem(NewItem):
    """An item as stored: which run, and its place in it (1, 2, 3 ... in the order items were added)."""

    run_id: str
    seq: int

    @classmethod
    def of(cls, run_id: str, seq: int, item: NewItem) -> RunItem:
        return cls(
            run_id=run_id,
            seq=seq,
            subject=item.subject,
            action=item.action,
            outcome=item.outcome,
            before=item.before,
            after=item.after,
            granted=item.granted,
            revoked=item.revoked,
            error=item.error,
        )


def new_run_id(at: datetime, suffix: str) -> str:
    """`20261129T165501Z-3f9a`: sorts by start second; the suffix tells apart runs of the same second."""
    return f"{utc_text(at)[:19].replace('-', '').replace(':', '')}Z-{suffix}"


def random_suffix() -> str:
    return secrets.token_hex(2)


def count_key(action: str, outcome: str) -> str:
    return f"{action}.{outcome}"


def count_items(items: Iterable[NewItem]) -> dict[str, int]:
    """`{"create.applied": 3, "disable.staged": 40, ...}`: how many items per action and outcome."""
    return count_pairs((item.action, item.outcome) for item in items)


def count_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
    counter = Counter(count_key(action, outcome) for action, outcome in pairs)
    return dict(sorted(counter.items()))


def is_item_count(key: str) -> bool:
    action, _, outcome = key.partition(".")
    return action in ITEM_ACTIONS and outcome in ITEM_OUTCOMES


def merge_counts(derived: Mapping[str, int], given: Mapping[str, int]) -> dict[str, int]:
    """`derived` plus the extras in `given`. A key in `given` that counts items must agree with `derived`:
    counts that disagree with the items are a bug in the caller, refused rather than stored."""
    merged = dict(derived)
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise StoreError(f"count '{key}' must be a whole number >= 0")
        if is_item_count(key):
            if value != derived.get(key, 0):
                raise StoreError(f"count '{key}' is {value} but the run's items give {derived.get(key, 0)}")
            continue
        merged[key] = value
    return dict(sorted(merged.items()))


# The store locks this thread holds, innermost last (pushed by agent.store.locks.store_lock). A run started
# under one records it; thread-local, because a run counts as the lock's only on the thread that holds it.
_held_locks = threading.local()


def held_locks() -> tuple[str, ...]:
    return tuple(getattr(_held_locks, "names", ()))


@contextmanager
def holding(name: str) -> Iterator[None]:
    """Runs started on this thread in the block are the lock `name`'s."""
    names = [*held_locks(), name]
    _held_locks.names = names
    try:
        yield
    finally:
        _held_locks.names = names[:-1]


class Runs:
    """Runs and their items in the store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start_run(self, kind: str, realm: str, sources: Sequence[str] = (), summary: str = "") -> Run:
        """A new run in status `running`, stamped with the store's clock."""
        check_text(kind, "run kind", empty=False)
        check_text(realm, "run realm", empty=False)
        names = tuple(check_text(source, "run source", empty=False) for source in sources)
        check_text(summary, "run summary")
        started = self._db.now()
        lock = held_locks()[-1] if held_locks() else None
        for _ in range(RUN_ID_ATTEMPTS):
            run = Run(new_run_id(started, random_suffix()), kind, realm, names, started, None, "running", {}, summary)
            try:
                with self._db.transaction(write=True) as tx:
                    tx.execute(
                        "INSERT INTO runs (id, kind, realm, sources, started_at, finished_at, status, counts, summary,"
                        " lock_name) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                        (
                            run.id, kind, realm, json.dumps(list(names)), utc_text(started), "running", "{}", summary,
                            lock,
                        ),
                    )  # fmt: skip
            except StoreConflict:
                continue
            return run
        raise StoreError(f"could not find a free run id after {RUN_ID_ATTEMPTS} tries")

    def add_items(self, run_id: str, items: Iterable[NewItem]) -> list[RunItem]:
        """Append items to a running run, numbered after those it has."""
        batch = list(items)
        with self._db.transaction(write=True) as tx:
            self._running(tx, run_id)
            row = tx.query_one("SELECT COALESCE(MAX(seq), 0) AS last FROM run_items WHERE run_id = ?", (run_id,))
            last = integer(row, "last") if row else 0
            stored = [RunItem.of(run_id, last + offset, item) for offset, item in enumerate(batch, start=1)]
            tx.execute_many(
                "INSERT INTO run_items (run_id, seq, subject, action, before_fields, after_fields, grants, outcome,"
                " error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_item_params(item) for item in stored],
            )
        return stored

    def finish_run(
        self, run_id: str, status: RunStatus, counts: Mapping[str, int] | None = None, summary: str | None = None
    ) -> Run:
        """End a running run. Its counts are those of its items plus the extras in `counts` (see merge_counts);
        `summary` replaces the one given at start when not None."""
        if status not in FINISHED_STATUSES:
            raise StoreError(f"a run finishes as one of {', '.join(sorted(FINISHED_STATUSES))}, not '{status}'")
        if summary is not None:
            check_text(summary, "run summary")
        with self._db.transaction(write=True) as tx:
            current = self._running(tx, run_id)
            pairs = tx.iterate("SELECT action, outcome FROM run_items WHERE run_id = ?", (run_id,))
            merged = merge_counts(
                count_pairs((text(row, "action"), text(row, "outcome")) for row in pairs), counts or {}
            )
            finished = self._db.now()
            final_summary = current.summary if summary is None else summary
            tx.execute(
                "UPDATE runs SET status = ?, finished_at = ?, counts = ?, summary = ? WHERE id = ?",
                (status, utc_text(finished), json.dumps(merged, sort_keys=True), final_summary, run_id),
            )
        return Run(
            current.id,
            current.kind,
            current.realm,
            current.sources,
            current.started_at,
            finished,
            status,
            MappingProxyType(merged),
            final_summary,
        )

    def end_interrupted(self, lock_name: str) -> list[Run]:
        """Call holding the store lock `lock_name`: its runs still `running` lost their process (killed, or their
        machine gone, which released the lock), and end as failed, their items counted, saying so."""
        with self._db.transaction() as tx:
            rows = tx.query("SELECT id FROM runs WHERE lock_name = ? AND status = 'running'", (lock_name,))
        ended = []
        for run_id in (text(row, "id") for row in rows):
            summary = f"interrupted: its process ended before it finished (found by the next holder of {lock_name})"
            ended.append(self.finish_run(run_id, "failed", summary=summary))
        return ended

    def get_run(self, run_id: str) -> Run | None:
        with self._db.transaction() as tx:
            return get_run(tx, run_id)

    def list_runs(self, kind: str | None = None, limit: int = 50) -> list[Run]:
        """The newest runs first, of one kind or of all."""
        with self._db.transaction() as tx:
            if kind is None:
                rows = tx.query("SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))
            else:
                rows = tx.query(
                    "SELECT * FROM runs WHERE kind = ? ORDER BY started_at DESC, id DESC LIMIT ?", (kind, limit)
                )
        return [_run_from_row(row) for row in rows]

    def run_items(self, run_id: str) -> list[RunItem]:
        """The run's items in the order they were added."""
        with self._db.transaction() as tx:
            rows = tx.query("SELECT * FROM run_items WHERE run_id = ? ORDER BY seq", (run_id,))
        return [_item_from_row(row) for row in rows]

    @staticmethod
    def _running(tx: Transaction, run_id: str) -> Run:
        run = get_run(tx, run_id)
        if run is None:
            raise StoreError(f"no run {run_id}")
        if run.status != "running":
            raise StoreError(f"run {run_id} has finished ({run.status}); its items and counts are final")
        return run


def get_run(tx: Transaction, run_id: str) -> Run | None:
    row = tx.query_one("SELECT * FROM runs WHERE id = ?", (run_id,))
    return None if row is None else _run_from_row(row)


def _run_from_row(row: Row) -> Run:
    finished = optional_text(row, "finished_at")
    status = text(row, "status")
    if status not in RUN_STATUSES:
        raise StoreError(f"run {text(row, 'id')} has an unknown status '{status}'")
    return Run(
        id=text(row, "id"),
        kind=text(row, "kind"),
        realm=text(row, "realm"),
        sources=tuple(json.loads(text(row, "sources"))),
        started_at=parse_utc(text(row, "started_at")),
        finished_at=None if finished is None else parse_utc(finished),
        status=status,  # type: ignore[arg-type]  # checked against RUN_STATUSES above
        counts=MappingProxyType(json.loads(text(row, "counts"))),
        summary=text(row, "summary"),
    )


def _item_params(item: RunItem) -> tuple[str, int, str, str, str, str, str, str, str]:
    grants = {"granted": list(item.granted), "revoked": list(item.revoked)}
    return (
        item.run_id,
        item.seq,
        item.subject,
        item.action,
        _json(item.before),
        _json(item.after),
        json.dumps(grants, ensure_ascii=False),
        item.outcome,
        item.error,
    )


def _json(value: Mapping[str, JsonValue]) -> str:
    # An item's before and after were checked when it was made (NewItem): plain JSON already.
    return _ITEM_ENCODER.encode(dict(value))


_ITEM_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


def _item_from_row(row: Row) -> RunItem:
    grants = json.loads(text(row, "grants"))
    return RunItem(
        run_id=text(row, "run_id"),
        seq=integer(row, "seq"),
        subject=text(row, "subject"),
        action=text(row, "action"),  # type: ignore[arg-type]  # NewItem checks it
        outcome=text(row, "outcome"),  # type: ignore[arg-type]
        before=json.loads(text(row, "before_fields")),
        after=json.loads(text(row, "after_fields")),
        granted=tuple(grants["granted"]),
        revoked=tuple(grants["revoked"]),
        error=text(row, "error"),
    )
