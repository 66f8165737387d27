"""Store retention: the pure cut-off and selection rules, and a pass on a real store (SQLite, and PostgreSQL as
an integration test) that deletes old finished runs, decided or expired staged sets and old login events, in
batches, while running runs, sets awaiting approval, recent data and the whole journal stay."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from agent.config.diagnostics import ConfigErrors
from agent.daemon.config import JobSpec
from agent.daemon.jobs import JobRun, retention_job
from agent.store import ManualClock, NewItem, Store, open_store
from agent.store.commands import retention_policy
from agent.store.logins import StoredLoginEvent
from agent.store.retention import (
    Cutoffs,
    RetentionPolicy,
    cutoffs,
    prune_store,
    run_prunable,
    staged_set_prunable,
)
from agent.store.staging import StagedRemoval
from agent.sync.agent_config import load_agent_config
from tests.harness.store_backends import StoreBackend

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=500)
RECENT = NOW - timedelta(days=10)
POLICY = RetentionPolicy(runs_max_age=timedelta(days=400), logins_max_age=timedelta(days=30), batch_size=2)
REMOVAL = StagedRemoval("kc-1", "hr-1", "disable", "left the company")


# -- pure -------------------------------------------------------------------------------------------


def test_cutoffs_count_back_from_now() -> None:
    assert cutoffs(POLICY, NOW) == Cutoffs(runs=NOW - timedelta(days=400), logins=NOW - timedelta(days=30))
    with pytest.raises(ValueError, match="timezone-aware"):
        cutoffs(POLICY, NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"runs_max_age": timedelta(0)}, "positive"), ({"batch_size": 0}, "batch"), ({"batch_size": 901}, "batch")],
)
def test_a_bad_policy_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetentionPolicy(**fields)  # type: ignore[arg-type]


def test_only_decided_or_expired_sets_before_the_cutoff_go() -> None:
    cut = NOW - timedelta(days=400)
    before, after = cut - timedelta(seconds=1), cut + timedelta(seconds=1)
    assert staged_set_prunable(before, None, cut), "approved long ago"
    assert not staged_set_prunable(after, None, cut), "approved recently"
    assert not staged_set_prunable(cut, None, cut), "exactly at the cut-off: kept"
    assert staged_set_prunable(None, before, cut), "expired long ago"
    assert not staged_set_prunable(None, after, cut), "expired recently"
    assert not staged_set_prunable(None, None, cut), "awaiting approval, however old"


def test_only_finished_runs_without_a_kept_set_go() -> None:
    cut = NOW - timedelta(days=400)
    old = cut - timedelta(days=1)
    assert run_prunable("succeeded", old, cut, has_kept_set=False)
    assert not run_prunable("succeeded", cut + timedelta(days=1), cut, has_kept_set=False)
    assert not run_prunable("running", None, cut, has_kept_set=False)
    assert not run_prunable("running", old, cut, has_kept_set=False)
    assert not run_prunable("staged", old, cut, has_kept_set=True), "its set still awaits approval"


def test_the_policy_comes_from_daemon_retention(tmp_path: Path) -> None:
    assert retention_policy(None) == RetentionPolicy()
    path = write_config(tmp_path, {"runs_older_than": "90d", "logins_older_than": "30d", "batch_size": 100})
    policy = retention_policy(load_agent_config(path, {}))
    assert policy == RetentionPolicy(timedelta(days=90), timedelta(days=30), 100)


@pytest.mark.parametrize(
    ("retention", "message"),
    [({"runs_older_than": "soon"}, "not a duration"), ({"batch_size": 5000}, "900"), ({"keep": "1d"}, "keep")],
)
def test_retention_config_errors_point_at_the_line(tmp_path: Path, retention: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigErrors) as raised:
        load_agent_config(write_config(tmp_path, retention), {})
    text = str(raised.value)
    assert "idp-agent.yaml:" in text and message in text, text


def write_config(tmp_path: Path, retention: dict[str, object]) -> Path:
    body = {
        "store": f"sqlite:///{tmp_path / 'store.db'}",
        "daemon": {"jobs": [{"job": "retention", "cron": "0 3 * * *"}], "retention": retention},
    }
    (tmp_path / "idp-agent.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return tmp_path / "idp-agent.yaml"


# -- on a store -------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(OLD)


@pytest.fixture
def store(store_backend: StoreBackend, clock: ManualClock) -> Iterator[Store]:
    with open_store(store_backend.url, now=clock) as opened:
        yield opened


def finished_run(store: Store, status: str = "succeeded", items: int = 3) -> str:
    run = store.runs.start_run("sync", "acme", ("hr",))
    store.runs.add_items(run.id, [NewItem(f"user-{i}", "update", "applied") for i in range(items)])
    store.runs.finish_run(run.id, status)  # type: ignore[arg-type]
    return run.id


def staged_run(store: Store, *, expires_at: datetime | None = None, approve: bool = False) -> str:
    run_id = finished_run(store, "staged", items=1)
    store.staging.stage_removals(run_id, "acme", [REMOVAL, REMOVAL], expires_at=expires_at)
    if approve:
        store.staging.approve(run_id, "alice")
    return run_id


def login(event_id: str, at: datetime) -> StoredLoginEvent:
    return StoredLoginEvent(event_id, at, "LOGIN", "kc-1", "app")


def fill(store: Store, clock: ManualClock) -> dict[str, str]:
    """Old and recent data of every kind; the names say what must stay."""
    runs = {
        "old_done": finished_run(store),
        "old_failed": finished_run(store, "failed"),
        "old_pending": staged_run(store),
        "old_approved": staged_run(store, approve=True),
        "old_expired": staged_run(store, expires_at=OLD + timedelta(days=7)),
        "old_running": store.runs.start_run("sync", "acme", ("hr",)).id,
    }
    store.journal.append(actor="test", action="user.update", subject="bob", realm="acme", run_id=runs["old_done"])
    store.logins.record("acme", [login(f"old-{i}", OLD) for i in range(5)], 1)
    store.logins.record("other", [login("old-x", OLD)], 1)
    clock.set(RECENT)
    runs["recent_done"] = finished_run(store)
    runs["recent_approved"] = staged_run(store, approve=True)
    # Expired 10 days ago, staged long before: it ended recently, so it stays.
    clock.set(OLD)
    runs["recently_expired"] = staged_run(store, expires_at=RECENT)
    clock.set(RECENT)
    store.logins.record("acme", [login("recent", RECENT)], 2)
    store.journal.append(actor="test", action="user.update", subject="carol", realm="acme")
    clock.set(NOW)
    return runs


def test_a_pass_deletes_old_data_and_keeps_the_rest(
    store: Store, clock: ManualClock, store_backend: StoreBackend
) -> None:
    runs = fill(store, clock)
    journal_before = list(store.journal.entries())

    preview = prune_store(store, POLICY, NOW, dry_run=True)
    expected = {"runs": 4, "run_items": 3 + 3 + 1 + 1, "staged_sets": 2, "staged_items": 4, "login_events": 6}
    assert preview.counts() == expected and preview.dry_run
    assert len(store_backend.rows("SELECT id FROM runs")) == len(runs), "a dry run deletes nothing"
    assert list(store.journal.entries()) == journal_before, "and journals nothing"

    report = prune_store(store, POLICY, NOW, actor="test-retention")  # batch_size 2: several batches each
    assert report.counts() == expected and not report.dry_run
    assert "the journal is kept whole" in report.describe()

    kept = {row["id"] for row in store_backend.rows("SELECT id FROM runs")}
    gone = {"old_done", "old_failed", "old_approved", "old_expired"}
    assert kept == {runs[name] for name in runs.keys() - gone}
    assert store.runs.run_items(runs["old_done"]) == []
    assert len(store.runs.run_items(runs["recent_done"])) == 3
    assert store.staging.staged(runs["old_approved"]) is None
    assert store.staging.staged(runs["old_expired"]) is None
    for name in ("old_pending", "recent_approved", "recently_expired"):
        staged = store.staging.staged(runs[name])  # also re-checks its hash
        assert staged is not None and len(staged.items) == 2, name
    running = store.runs.get_run(runs["old_running"])
    assert running is not None and running.status == "running"
    assert [row["event_id"] for row in store_backend.rows("SELECT event_id FROM login_events")] == ["recent"]
    # Logins are known only from the cut on now: before it, nothing says who logged in.
    assert store.logins.known_since("acme") == store.logins.known_since("other") == NOW - POLICY.logins_max_age

    entries = list(store.journal.entries())
    assert entries[: len(journal_before)] == journal_before, "no journal entry deleted or changed"
    intent, prune_entry = entries[len(journal_before) :]
    assert (intent.action, intent.details["outcome"]) == ("store.prune", "intent"), "journalled before deleting"
    assert (prune_entry.actor, prune_entry.action) == ("test-retention", "store.prune")
    assert dict(prune_entry.details) == {"outcome": "applied", **expected}, "counts only"
    assert store.journal.verify().ok

    again = prune_store(store, POLICY, NOW)
    assert again.total == 0
    assert len(list(store.journal.entries())) == len(entries), "a pass that deleted nothing journals nothing"


def test_a_pass_asked_to_stop_deletes_no_further_batch(store: Store, clock: ManualClock) -> None:
    fill(store, clock)
    asked: list[int] = []

    def stop_after_first_batch() -> bool:
        asked.append(1)
        return len(asked) > 1

    report = prune_store(store, POLICY, NOW, should_stop=stop_after_first_batch)
    assert report.counts() == {"runs": 0, "run_items": 0, "staged_sets": 2, "staged_items": 4, "login_events": 0}
    last = dict(list(store.journal.entries())[-1].details)
    assert last == {"outcome": "applied", **report.counts()}, "what it did delete is journalled"
    assert prune_store(store, POLICY, NOW).counts()["runs"] == 4, "the next pass finishes the job"
    assert store.journal.verify().ok


def test_the_daemon_job_prunes_with_the_configured_policy(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"runs_older_than": "400d", "logins_older_than": "30d"})
    config = load_agent_config(path, {})
    clock = ManualClock(OLD)
    with open_store(config.store, now=clock) as store:
        old = finished_run(store)
        clock.set(NOW)
        recent = finished_run(store)
    run = JobRun(
        spec=JobSpec(job="retention", cron="0 3 * * *"),
        job_id="retention",
        sync_name=None,
        config=config,
        env={},
        clock=lambda: NOW,
        stopping=threading.Event(),
        run_id="daemon-run-1",
    )
    result = retention_job(run)
    assert result.outcome == "succeeded" and result.changes == 1 + 3
    assert "deleted: 1 runs, 3 run items" in result.summary
    with open_store(config.store) as store:
        assert store.runs.get_run(old) is None and store.runs.get_run(recent) is not None
        intent, entry = store.journal.entries()
        assert intent.details["outcome"] == "intent"
        assert entry.actor == "daemon:retention" and entry.details["runs"] == 1
        assert store.journal.verify().ok
