"""The daemon: APScheduler jobs from the config, one writer per job (the lock), signals, reloads, metrics.

Threads: APScheduler's thread submits due jobs to a small pool; the main thread waits for signals, watches
the config file and the wall clock; the HTTP thread serves health and metrics.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from agent import __version__
from agent.config.diagnostics import ConfigErrors
from agent.daemon.alerts import Alert, Alerter, alert_reason
from agent.daemon.clock import Clock, detect_jump, use_clock, wall_minus_monotonic
from agent.daemon.config import (
    DaemonSpec,
    JobSpec,
    already_done,
    build_trigger,
    first_run_time,
    job_ids,
    merge_pending,
    parse_listen,
)
from agent.daemon.health import Check, Endpoints, HealthServer, readiness
from agent.daemon.jobs import (
    JOBS,
    STOP_POLICIES,
    JobNotAvailable,
    JobResult,
    JobRun,
    drift_paths,
    lock_name,
)
from agent.daemon.logs import daemon_logger, redact
from agent.daemon.metrics import Metrics, RunRecord, render_metrics
from agent.errors import AgentError, ConfigError, Interrupted
from agent.locks import Locked
from agent.store.db import open_store
from agent.store.locks import store_lock
from agent.sync.agent_config import AgentConfig, load_agent_config
from agent.sync.config_files import load_sync_files

TICK_SECONDS = 0.5
# Runs at once, bounding the load on Keycloak and the store; a due job waits for a free worker, then runs.
WORKERS = 4
# APScheduler 3 drops a run that starts later than misfire_grace_time after its slot, counting from when it was
# due, not from when it was queued: a job waiting behind WORKERS long runs would lose its whole slot. So no
# run is ever dropped for lateness; a late run is the one catch-up run (coalesce keeps it one, max_instances=1
# keeps a second out of the queue, and `already_done` skips it when another daemon made that slot's run).
NO_MISFIRE_LIMIT = None
# A run that ended this way counts as done for the schedule; a failed or interrupted run is retried at once
# after a restart (its unfinished steps are then finished: that is the one catch-up run).
DONE_OUTCOMES = frozenset({"succeeded", "staged", "drift", "unavailable"})
HOLDER = f"{socket.gethostname()} pid {os.getpid()}"
# Runs APScheduler drops before they reach the daemon: (outcome, log level, why).
SCHEDULER_SKIPS = {
    EVENT_JOB_MAX_INSTANCES: ("skipped_running", logging.INFO, "skipped: its previous run is still going on"),
    EVENT_JOB_MISSED: ("skipped_missed", logging.WARNING, "skipped: the scheduler started it too late"),
}


@dataclass(frozen=True)
class ScheduledJob:
    job_id: str
    spec: JobSpec
    sync_name: str | None


def checked_jobs(config: AgentConfig, env: Mapping[str, str]) -> list[ScheduledJob]:
    """`scheduled_jobs`, and what each job will read checked now (a sync's mapper against its sources, a drift
    job's realm-config paths), so that a broken reference fails the start or the reload, not every run."""
    jobs = scheduled_jobs(config)
    for job in jobs:
        if job.sync_name is not None:
            sync = config.sync(job.sync_name)
            load_sync_files(config, sync, env)
        if job.spec.job == "drift":
            drift_paths(job.spec, config.base_dir)
    return jobs


def scheduled_jobs(config: AgentConfig) -> list[ScheduledJob]:
    """The jobs of the config's daemon section; a named sync must exist, job ids must be unique."""
    spec = config.daemon
    if spec is None or not spec.jobs:
        raise ConfigError("the agent config has no daemon jobs", hint="add a daemon: section with jobs (see README)")
    jobs: list[ScheduledJob] = []
    for job in spec.jobs:
        for job_id, sync_name in job_ids(job, tuple(sync.name for sync in config.syncs)):
            if sync_name is not None:
                config.sync(sync_name)  # raises for an unknown sync
            if any(known.job_id == job_id for known in jobs):
                raise ConfigError(f"daemon job '{job_id}' is scheduled twice", hint="give each job its own realm/sync")
            jobs.append(ScheduledJob(job_id, job, sync_name))
    if not jobs:
        raise ConfigError("the daemon's sync job found no configured sync", hint="add syncs: to the agent config")
    return jobs


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class Daemon:
    def __init__(
        self,
        config_path: Path,
        *,
        env: Mapping[str, str],
        clock: Clock,
        listen: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.env = env
        self.clock = clock
        self.log = daemon_logger()
        self.metrics = Metrics()
        self.stopping = threading.Event()
        # Signals, as their handlers queue them for the main loop (see `start`).
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._reload_requested = False
        self._active = 0
        self._active_changed = threading.Condition()
        self.config = load_agent_config(config_path, env)
        self.jobs = checked_jobs(self.config, env)
        self.spec: DaemonSpec = self.config.daemon or DaemonSpec()
        self.alerter = Alerter(self.spec.alerts, self.config)
        self.listen = parse_listen(listen or self.spec.listen)
        self.started_at = clock()
        self._config_stamp = self._stamp()
        use_clock(clock)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=WORKERS)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": NO_MISFIRE_LIMIT},
        )
        self.scheduler.add_listener(self._count_scheduler_skip, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self.http = HealthServer(*self.listen, Endpoints(self.render_metrics, self.ready, self.alive))

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Signals first (a SIGTERM right after the health endpoint answers is already a clean stop)."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._queue_signal)
        self.http.start()
        host, port = self.http.address
        self.log.info("health and metrics on http://%s:%d", host, port, extra={"event": "listening"})
        self.scheduler.start()
        self._schedule()

    def run_forever(self) -> int:
        """Serve until SIGTERM/SIGINT; SIGHUP or a changed config file reloads the schedules."""
        offset = wall_minus_monotonic(self.clock)
        while not self._next_tick():
            stamp = self._stamp()
            if self._reload_requested or stamp != self._config_stamp:
                self._reload_requested = False
                self._config_stamp = stamp
                self.reload()
            current = wall_minus_monotonic(self.clock)
            jump = detect_jump(offset, current)
            offset = current
            if jump is not None:
                self.log.warning(
                    "wall clock jumped by %+.0f s: rescheduling from the last runs", jump, extra={"event": "clock_jump"}
                )
                self._schedule()
            self._refresh_next_runs()
        return self.shutdown()

    def _queue_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only this: a handler runs between two bytecodes of the main thread, which may hold a lock just then
        # (Event.wait holds its condition's, a log line its stream's), so setting an Event or logging here can
        # deadlock the daemon in its own signal handler. SimpleQueue.put is reentrant (its C code is documented
        # safe for exactly this).
        self._signals.put(signum)

    def _next_tick(self) -> bool:
        """Wait up to a tick for a signal and act on it; True when the daemon must stop."""
        try:
            signum = self._signals.get(timeout=TICK_SECONDS)
        except queue.Empty:
            return self.stopping.is_set()
        if signum == signal.SIGHUP:
            self._reload_requested = True
            return self.stopping.is_set()
        self.log.info(
            "%s: finishing the current item, then stopping", signal.Signals(signum).name, extra={"event": "stopping"}
        )
        self.stopping.set()
        return True

    def shutdown(self) -> int:
        """No new runs; wait (bounded by daemon.shutdown_timeout) for running ones to finish their item."""
        self.stopping.set()
        self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + self.spec.shutdown_timeout
        with self._active_changed:
            while self._active and (remaining := deadline - time.monotonic()) > 0:
                self._active_changed.wait(remaining)
            unfinished = self._active
        self.http.stop()
        if unfinished:
            self.log.error(
                "%d run(s) still busy after %d s: exiting without them",
                unfinished,
                self.spec.shutdown_timeout,
                extra={"event": "stopped"},
            )
            return 1
        self.log.info("stopped", extra={"event": "stopped"})
        return 0

    # -- schedules ------------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.config_path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def reload(self) -> bool:
        """Re-read the config; a bad one is logged and the running schedule kept."""
        try:
            config = load_agent_config(self.config_path, self.env)
            jobs = checked_jobs(config, self.env)
        except (ConfigErrors, AgentError) as error:
            self.log.error(
                "config reload failed, keeping the current schedule: %s", error, extra={"event": "reload_failed"}
            )
            return False
        spec = config.daemon or DaemonSpec()
        if spec.listen != self.spec.listen:
            self.log.warning("daemon.listen changed: takes effect at the next restart", extra={"event": "reload"})
        self.config, self.jobs, self.spec = config, jobs, spec
        self.alerter = Alerter(spec.alerts, config)
        self._schedule()
        self.log.info("config reloaded: %d job(s)", len(jobs), extra={"event": "reload"})
        return True

    def _schedule(self) -> None:
        """(Re)place every job, its first run computed from its last run: one catch-up run at most. The
        scheduler is paused meanwhile, so it cannot also run a job that is being replaced."""
        self.scheduler.pause()
        try:
            self._place_jobs()
        finally:
            self.scheduler.resume()

    def _shared_last_runs(self) -> dict[str, datetime]:
        """When each job last ran, as the store every daemon shares records it."""
        try:
            with open_store(self.config.store) as store:
                return store.daemon_jobs.last_runs()
        except AgentError as error:
            message = "cannot read the jobs' last runs: %s; scheduling as if never run"
            self.log.error(message, error, extra={"event": "store_error"})
            return {}

    def _place_jobs(self) -> None:
        last_runs = self._shared_last_runs()
        now = self.clock()
        wanted = {job.job_id for job in self.jobs}
        pending = {existing.id: existing.next_run_time for existing in self.scheduler.get_jobs()}
        for existing in self.scheduler.get_jobs():
            if existing.id not in wanted:
                existing.remove()
                self.metrics.forget(existing.id)  # its gauges would go on claiming a next run, a last success
        for job in self.jobs:
            first = merge_pending(
                first_run_time(job.spec, last_runs.get(job.job_id), now), pending.get(job.job_id), now
            )
            if first is None:
                continue
            self.scheduler.add_job(
                self._run, build_trigger(job.spec, first_run=first), args=[job], id=job.job_id, name=job.job_id,
                next_run_time=first, replace_existing=True, coalesce=True, max_instances=1,
                misfire_grace_time=NO_MISFIRE_LIMIT,
            )  # fmt: skip
            self.metrics.declare(job.job_id)
            self.metrics.set_next_run(job.job_id, first)
            self.log.info(
                "scheduled %s, next run %s",
                job.job_id,
                first.isoformat(),
                extra={"job": job.job_id, "event": "scheduled"},
            )

    def _refresh_next_runs(self) -> None:
        self.metrics.set_next_runs({job.id: job.next_run_time for job in self.scheduler.get_jobs()})

    def _count_scheduler_skip(self, event: JobEvent) -> None:
        """A run APScheduler dropped (the job's previous run still going on, or a misfire) counts as skipped."""
        outcome, level, why = SCHEDULER_SKIPS[event.code]
        self.log.log(level, "%s", why, extra={"job": event.job_id, "outcome": outcome, "event": "run_skipped"})
        self.metrics.record(RunRecord(event.job_id, outcome, 0.0, self.clock()))

    # -- one run --------------------------------------------------------------------------------------

    def _run(self, job: ScheduledJob) -> None:
        if not self._enter_run():
            return
        self.metrics.run_started()
        try:
            self._run_once(job)
        finally:
            self.metrics.run_ended()
            with self._active_changed:
                self._active -= 1
                self._active_changed.notify_all()

    def _enter_run(self) -> bool:
        """Count a run as active unless the daemon is stopping, both under the lock `shutdown` waits on: checked
        apart, shutdown could see no active run and exit between the check and the count."""
        with self._active_changed:
            if self.stopping.is_set():
                return False
            self._active += 1
            return True

    def _run_once(self, job: ScheduledJob) -> None:
        run_id = new_run_id()
        started_wall = self.clock()
        started = time.monotonic()
        context = {"job": job.job_id, "run_id": run_id}
        self.log.info("run started", extra={**context, "event": "run_started"})
        run = JobRun(
            job.spec, job.job_id, job.sync_name, self.config, self.env, self.clock, self.stopping, run_id,
            stop_policy=STOP_POLICIES.get(job.spec.job, "before_write"),
        )  # fmt: skip
        try:
            with open_store(self.config.store) as store, store_lock(store, lock_name(job.job_id)):
                previous = store.daemon_jobs.get(job.job_id)
                if previous is not None and already_done(job.spec, previous.last_run, started_wall):
                    self._skip(job, context, "skipped_done", started,
                               f"skipped: done at {previous.last_run.isoformat()} by {previous.holder}")  # fmt: skip
                    return
                result = self._call(job, run, context)
                if result.outcome in DONE_OUTCOMES:
                    store.daemon_jobs.record(job.job_id, started_wall, result.outcome, HOLDER)
        except Locked as locked:
            self._skip(job, context, "skipped_locked", started, str(locked))
            return
        except AgentError as error:  # the store or its lock could not be reached
            result = JobResult("failed", f"{type(error).__name__}: {error}")
        self._finish(job, run_id, result, started_wall, time.monotonic() - started)

    def _skip(self, job: ScheduledJob, context: dict[str, str], outcome: str, started: float, why: str) -> None:
        """Not an error: another run holds the job, or made this slot's run already."""
        self.log.info("%s", why, extra={**context, "outcome": outcome, "event": "run_skipped"})
        self._refresh_next_runs()
        self.metrics.record(RunRecord(job.job_id, outcome, time.monotonic() - started, self.clock()))

    def _call(self, job: ScheduledJob, run: JobRun, context: dict[str, str]) -> JobResult:
        try:
            return JOBS[job.spec.job](run)
        except Interrupted as stop:
            return JobResult("interrupted", f"stopped by the daemon's shutdown ({stop}); the next run converges")
        except JobNotAvailable as missing:
            return JobResult("unavailable", str(missing))
        except AgentError as error:
            return JobResult("failed", f"{type(error).__name__}: {error}")
        except Exception as error:  # a bug or an unexpected library error: report it, keep the daemon alive
            self.log.exception("run crashed", extra={**context, "event": "run_crashed"})
            return JobResult("failed", f"{type(error).__name__}: {error}")

    def _finish(
        self, job: ScheduledJob, run_id: str, result: JobResult, started_wall: datetime, duration: float
    ) -> None:
        finished = self.clock()
        self._refresh_next_runs()  # before the run counts: a reader that sees the run also sees the next one
        self.metrics.record(RunRecord(
            job.job_id, result.outcome, duration, finished, changes=result.changes, failures=result.failures,
            staged_removals=result.staged_removals, drift_changes=result.drift_changes,
        ))  # fmt: skip
        level = {"failed": logging.ERROR, "unavailable": logging.WARNING, "drift": logging.WARNING,
                 "staged": logging.WARNING}.get(result.outcome, logging.INFO)  # fmt: skip
        self.log.log(
            level, "run %s: %s", result.outcome, redact(result.summary),
            extra={"job": job.job_id, "run_id": run_id, "outcome": result.outcome, "duration_s": round(duration, 3),
                   "changes": result.changes, "event": "run_finished"},
        )  # fmt: skip
        reason = alert_reason(result.outcome)
        if reason is not None:
            self.alerter.send(Alert(reason, job.job_id, run_id, result.summary, finished))

    # -- HTTP ---------------------------------------------------------------------------------------

    def render_metrics(self) -> str:
        snapshot = self.metrics.snapshot()
        return render_metrics(snapshot, version=__version__, up_since=self.started_at, running=self.metrics.running)

    def ready(self) -> list[Check]:
        return readiness(self.config)

    def alive(self) -> bool:
        return self.scheduler.running or self.stopping.is_set()
