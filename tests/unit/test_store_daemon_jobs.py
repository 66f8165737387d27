"""store.daemon_jobs: the last run of each daemon job, shared by the daemons on one store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.store.daemon_jobs import JobRecord
from agent.store.db import open_store

AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_the_latest_record_wins_even_when_earlier(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        jobs = store.daemon_jobs
        assert jobs.get("sync:hr") is None and jobs.last_runs() == {}
        jobs.record("sync:hr", AT, "succeeded", "host-a pid 1")
        jobs.record("drift", AT, "drift", "host-a pid 1")
        # After a wall-clock jump back the newest run carries an earlier time: it still replaces the record.
        jobs.record("sync:hr", AT - timedelta(hours=2), "staged", "host-b pid 2")
        assert jobs.get("sync:hr") == JobRecord(AT - timedelta(hours=2), "staged", "host-b pid 2")
        assert jobs.last_runs() == {"drift": AT, "sync:hr": AT - timedelta(hours=2)}
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as again:
        assert again.daemon_jobs.get("drift") == JobRecord(AT, "drift", "host-a pid 1")
