"""The daemon's scheduling with APScheduler (paused: nothing runs unless a test runs it): a run that waited for
a worker still runs once, runs APScheduler drops are counted, a run cannot start under a shutdown that saw
none, and a job taken off the schedule leaves no metric behind."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import (
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.base import run_job

from agent.daemon.clock import system_clock
from agent.daemon.metrics import parse_metrics
from agent.daemon.service import Daemon, ScheduledJob
from agent.store.db import open_store

pytestmark = pytest.mark.unit

RARE = '"0 3 1 1 *"'  # once a year: the scheduler never fires it during a test
WORKERS_BUSY = timedelta(hours=1)  # far beyond the 5 min misfire_grace of old


def write_config(path: Path, jobs: list[str]) -> None:
    lines = "".join(f"    - {{job: {job}, cron: {RARE}, realm: acme}}\n" for job in jobs)
    path.write_text(f"store: sqlite:///{path.parent / 'store.db'}\ndaemon:\n  jobs:\n{lines}", encoding="utf-8")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "idp-agent.yaml"
    write_config(path, ["sanctions", "events"])
    return path


@pytest.fixture
def daemon(config_file: Path) -> Iterator[Daemon]:
    made = Daemon(config_file, env={}, clock=system_clock, listen="127.0.0.1:0")
    made.scheduler.start(paused=True)
    made._place_jobs()
    yield made
    made.scheduler.shutdown(wait=False)
    made.http.stop()


def metrics(daemon: Daemon) -> dict[str, float]:
    return parse_metrics(daemon.render_metrics())


def run_late(daemon: Daemon, job_id: str) -> list[int]:
    """Run the job as an APScheduler worker does once it is free, its slot long past; the events' codes."""
    job = daemon.scheduler.get_job(job_id)
    events = run_job(job, "default", [datetime.now(UTC) - WORKERS_BUSY], "apscheduler.executors.default")
    return [event.code for event in events]


def test_a_run_queued_behind_busy_workers_still_runs_once(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[ScheduledJob] = []
    monkeypatch.setattr(daemon, "_run_once", ran.append)
    assert run_late(daemon, "sanctions:acme") == [EVENT_JOB_EXECUTED], "dropped as missed"
    assert [job.job_id for job in ran] == ["sanctions:acme"]


def test_a_late_run_of_a_slot_another_daemon_made_is_skipped(daemon: Daemon) -> None:
    with open_store(daemon.config.store) as store:
        store.daemon_jobs.record("sanctions:acme", datetime.now(UTC) - timedelta(minutes=1), "succeeded", "other pid 1")
    assert run_late(daemon, "sanctions:acme") == [EVENT_JOB_EXECUTED]
    values = metrics(daemon)
    assert values['idp_agent_job_runs_total{job="sanctions:acme",outcome="skipped_done"}'] == 1
    assert 'idp_agent_job_runs_total{job="sanctions:acme",outcome="succeeded"}' not in values


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        (JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, "events:acme", "default", [datetime.now(UTC)]), "skipped_running"),
        (JobExecutionEvent(EVENT_JOB_MISSED, "events:acme", "default", datetime.now(UTC)), "skipped_missed"),
    ],
)
def test_runs_the_scheduler_drops_are_counted_and_logged(
    daemon: Daemon, event: JobEvent, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="idp_agent.daemon")
    daemon.scheduler._dispatch_event(event)  # as APScheduler does when it drops the run
    assert metrics(daemon)[f'idp_agent_job_runs_total{{job="events:acme",outcome="{outcome}"}}'] == 1
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "run_skipped"]
    assert (getattr(record, "job", None), getattr(record, "outcome", None)) == ("events:acme", outcome)


class AnnouncedCondition(threading.Condition):
    """A Condition that tells when another thread than its first holder comes to take it."""

    def __init__(self) -> None:
        super().__init__()
        self.owner = threading.current_thread()
        self.another_comes = threading.Event()

    def __enter__(self) -> Any:
        if threading.current_thread() is not self.owner:
            self.another_comes.set()
        return super().__enter__()


def test_a_run_starting_as_shutdown_begins_does_not_start(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[ScheduledJob] = []
    monkeypatch.setattr(daemon, "_run_once", ran.append)
    condition = AnnouncedCondition()
    daemon._active_changed = condition
    (job,) = [job for job in daemon.jobs if job.job_id == "sanctions:acme"]
    worker = threading.Thread(target=daemon._run, args=[job])
    with condition:  # where shutdown counts the active runs
        worker.start()
        assert condition.another_comes.wait(5.0)
        daemon.stopping.set()  # shutdown sets it, then sees no active run and exits
    worker.join(5.0)
    assert ran == [], "a run started after shutdown saw none going on"
    assert daemon._active == 0


def test_a_job_removed_by_a_reload_leaves_no_series(daemon: Daemon, config_file: Path) -> None:
    assert 'idp_agent_job_next_run_timestamp_seconds{job="events:acme"}' in metrics(daemon)
    write_config(config_file, ["sanctions"])
    assert daemon.reload()
    values = metrics(daemon)
    assert not [name for name in values if 'job="events:acme"' in name], "a stale next run would look overdue"
    assert 'idp_agent_job_next_run_timestamp_seconds{job="sanctions:acme"}' in values


def test_the_next_runs_shown_are_those_scheduled(daemon: Daemon) -> None:
    daemon.metrics.set_next_run("events:acme", datetime.now(UTC))  # as a run that read the old schedule may
    daemon.scheduler.remove_job("events:acme")
    daemon._refresh_next_runs()
    values = metrics(daemon)
    assert 'idp_agent_job_next_run_timestamp_seconds{job="events:acme"}' not in values
    assert 'idp_agent_job_next_run_timestamp_seconds{job="sanctions:acme"}' in values
