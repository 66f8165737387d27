"""Per-source baselines for the shrink brake: how many records the last good (complete) read returned."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from agent.store.connection import Database, integer, text
from agent.store.errors import StoreError
from agent.store.values import check_text, parse_utc, utc_text


class Baseline(NamedTuple):
    """Unpacks as `(count, at)`; `records` because a tuple's `count` is a method."""

    records: int
    at: datetime


class Baselines:
    """The last good read of each source."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_good_read(self, source: str, count: int, at: datetime | None = None) -> None:
        """Remember a complete read of `source` (at `at`, default now). Only a newer read replaces the one
        kept: a slow run finishing after a faster, later one does not roll the baseline back."""
        check_text(source, "source name", empty=False)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise StoreError(f"source '{source}': a record count is a whole number >= 0")
        moment = utc_text(self._db.now() if at is None else at)
        with self._db.transaction(write=True) as tx:
            tx.execute(
                "INSERT INTO baselines (source, record_count, read_at) VALUES (?, ?, ?)"
                " ON CONFLICT (source) DO UPDATE SET record_count = excluded.record_count, read_at = excluded.read_at"
                " WHERE excluded.read_at >= baselines.read_at",
                (source, count, moment),
            )

    def last_good(self, source: str) -> Baseline | None:
        with self._db.transaction() as tx:
            row = tx.query_one("SELECT record_count, read_at FROM baselines WHERE source = ?", (source,))
        return None if row is None else Baseline(integer(row, "record_count"), parse_utc(text(row, "read_at")))

    def last_good_counts(self) -> dict[str, int]:
        """Source name -> record count of its last good read, for every source that has one."""
        with self._db.transaction() as tx:
            rows = tx.query("SELECT source, record_count FROM baselines ORDER BY source")
        return {text(row, "source"): integer(row, "record_count") for row in rows}
