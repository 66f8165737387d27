"""When each daemon job last ran, in the store every daemon shares (see agent/daemon/config.py for how the
scheduler uses it: one catch-up run after a restart, no second run of a slot another daemon ran)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from agent.store.connection import Database, text
from agent.store.values import check_text, parse_utc, utc_text


class JobRecord(NamedTuple):
    last_run: datetime
    outcome: str
    holder: str


class DaemonJobs:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, job_id: str, last_run: datetime, outcome: str, holder: str) -> None:
        """The job ran (started) at `last_run`. Always replaces the record: after a wall-clock jump back the
        newest run may carry an earlier time, and it is still the one that counts."""
        for value, what in ((job_id, "job id"), (outcome, "outcome"), (holder, "holder")):
            check_text(value, what, empty=False)
        with self._db.transaction(write=True) as tx:
            tx.execute(
                "INSERT INTO daemon_jobs (job_id, last_run, outcome, holder) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (job_id) DO UPDATE SET last_run = excluded.last_run, outcome = excluded.outcome,"
                " holder = excluded.holder",
                (job_id, utc_text(last_run), outcome, holder),
            )

    def get(self, job_id: str) -> JobRecord | None:
        with self._db.transaction() as tx:
            row = tx.query_one("SELECT last_run, outcome, holder FROM daemon_jobs WHERE job_id = ?", (job_id,))
        if row is None:
            return None
        return JobRecord(parse_utc(text(row, "last_run")), text(row, "outcome"), text(row, "holder"))

    def last_runs(self) -> dict[str, datetime]:
        with self._db.transaction() as tx:
            rows = tx.query("SELECT job_id, last_run FROM daemon_jobs ORDER BY job_id")
        return {text(row, "job_id"): parse_utc(text(row, "last_run")) for row in rows}
