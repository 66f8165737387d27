"""The `daemon:` section of idp-agent.yaml: which jobs run when (interval or cron, always UTC), where
health and metrics listen, and where alerts go.

    daemon:
      listen: 127.0.0.1:9464
      jobs:
        - job: sync            # one job per configured sync unless `sync:` names one
          every: 15m
        - job: drift
          cron: "0 * * * *"
          apply: false         # alert on drift (true: apply the realm config)
      alerts:
        webhook: ${env:ALERT_WEBHOOK_URL}
        email: [iam-oncall@example.org]
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import Field, model_validator

from agent.config.values import Duration, NonEmpty, SecretValue, Spec

JobKind = Literal["sync", "drift", "sanctions", "events", "reviews", "retention"]
AlertReason = Literal["failure", "staged", "drift"]
# Jobs that work on one realm, named by `realm:`.
REALM_JOBS = frozenset({"sanctions", "events", "reviews"})
DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_MISFIRE_GRACE_SECONDS = 300
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 30
CRON_FIELDS = 5
# misfire_grace is still read, so configs that set it stay valid, but no longer drops late runs (see service.py).
LATE_RUNS_NEVER_DROPPED = "a run due while the daemon was busy or late starts when it can, once"


def parse_cron(expression: str) -> CronTrigger:
    """A standard 5-field crontab line (minute hour day month weekday), evaluated in UTC."""
    if len(expression.split()) != CRON_FIELDS:
        raise ValueError(f"cron '{expression}' needs 5 fields: minute hour day-of-month month day-of-week")
    try:
        return CronTrigger.from_crontab(expression, timezone=UTC)
    except ValueError as error:
        raise ValueError(f"cron '{expression}': {error}") from None


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:PORT); port 0 picks a free port."""
    host, separator, port_text = value.rpartition(":")
    if not separator or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address '{value}' is not HOST:PORT")
    return host.strip("[]"), int(port_text)


class JobSpec(Spec):
    """One scheduled job. Exactly one of `every` (an interval) or `cron` (5 fields, UTC)."""

    job: JobKind
    every: Duration | None = Field(default=None, description="run every so long, e.g. 15m")
    cron: NonEmpty | None = Field(default=None, description="5-field crontab in UTC, e.g. '0 3 * * *'")
    misfire_grace: Duration | None = Field(default=None, description=f"accepted, unused: {LATE_RUNS_NEVER_DROPPED}")
    sync: NonEmpty | None = Field(default=None, description="job sync: which sync (default: every configured one)")
    realm: NonEmpty | None = Field(default=None, description="jobs sanctions/events/reviews: the realm")
    paths: tuple[Path, ...] = Field(default=(Path("realm-config"),), description="job drift: realm-config paths")
    policies: Path = Field(default=Path("policies"), description="job drift: the presets folder")
    apply: bool = Field(default=False, description="job drift: apply the realm config when it drifted")
    scope: NonEmpty = Field(default="privileged", description="job reviews: privileged, all, role:NAME, group:/PATH")
    due_in: Duration = Field(
        default=14 * 86400, ge=1, description="job reviews: the campaign's due date from its start"
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> JobSpec:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"job '{self.job}' needs exactly one of `every` or `cron`")
        if self.every is not None and self.every < 1:
            raise ValueError(f"job '{self.job}': `every` must be at least 1s")
        if self.cron is not None:
            parse_cron(self.cron)
        if self.sync is not None and self.job != "sync":
            raise ValueError(f"job '{self.job}': `sync` only applies to sync jobs")
        if self.apply and self.job != "drift":
            raise ValueError(f"job '{self.job}': `apply` only applies to the drift job")
        if self.job in REALM_JOBS and self.realm is None:
            raise ValueError(f"job '{self.job}' needs `realm:`")
        return self


class AlertsSpec(Spec):
    webhook: SecretValue | None = Field(default=None, description="URL that gets a JSON POST per alert")
    email: tuple[NonEmpty, ...] = Field(default=(), description="addresses mailed per alert (needs smtp:)")
    on: tuple[AlertReason, ...] = Field(default=("failure", "staged", "drift"), description="what raises an alert")


class StoreRetentionSpec(Spec):
    """`daemon.retention`: what the retention job (and `idp-agent store prune`) deletes from the store."""

    runs_older_than: Duration = Field(
        default=400 * 86400, ge=1, description="finished runs, their items, decided or expired staged sets"
    )
    logins_older_than: Duration = Field(default=400 * 86400, ge=1, description="harvested login events")
    batch_size: int = Field(default=500, ge=1, le=900, description="rows deleted per transaction")


class DaemonSpec(Spec):
    listen: NonEmpty = Field(default=DEFAULT_LISTEN, description="health and metrics HTTP address, HOST:PORT")
    misfire_grace: Duration = Field(
        default=DEFAULT_MISFIRE_GRACE_SECONDS, ge=1, description=f"accepted, unused: {LATE_RUNS_NEVER_DROPPED}"
    )
    shutdown_timeout: Duration = Field(
        default=DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, ge=1, description="SIGTERM: the longest wait for the current item"
    )
    jobs: tuple[JobSpec, ...] = ()
    alerts: AlertsSpec = AlertsSpec()
    retention: StoreRetentionSpec = StoreRetentionSpec()

    @model_validator(mode="after")
    def _valid_listen(self) -> DaemonSpec:
        parse_listen(self.listen)
        return self


# -- schedules (pure) ------------------------------------------------------------------------------


def build_trigger(job: JobSpec, *, first_run: datetime) -> BaseTrigger:
    """The APScheduler trigger of a job, in UTC; an interval counts from its first run."""
    if job.every is not None:
        return IntervalTrigger(seconds=job.every, start_date=first_run, timezone=UTC)
    assert job.cron is not None
    return parse_cron(job.cron)


def first_run_time(job: JobSpec, last_run: datetime | None, now: datetime) -> datetime | None:
    """When a (re)started or rescheduled job next runs: at once if a scheduled time passed since its last run
    (one catch-up run, however many were missed), else at its next scheduled time. An interval job that
    never ran runs at once; a cron job that never ran waits for its time. A last run later than `now` means
    the clock went back: the interval counts from now, and a cron time already run is not run again."""
    if job.every is not None:
        if last_run is None:
            return now
        due = min(last_run, now) + timedelta(seconds=job.every)
        return now if due <= now else due
    assert job.cron is not None
    trigger = parse_cron(job.cron)
    if last_run is not None and last_run <= now:
        missed = trigger.get_next_fire_time(None, last_run + timedelta(seconds=1))
        if missed is not None and missed <= now:
            return now
    after = now if last_run is None or last_run < now else last_run + timedelta(seconds=1)
    if last_run is not None and last_run > now and last_run - now >= _cron_period(trigger, now):
        # Ahead by more than a period: the clock was wrong when it ran (a bad RTC set right since), not a
        # slot run a moment ago; waiting for that time again could silence the job for days or a year.
        after = now
    next_time: datetime | None = trigger.get_next_fire_time(None, after)
    return next_time


def _cron_period(trigger: BaseTrigger, now: datetime) -> timedelta:
    """The time between the next two fire times after `now` (a day for a daily job)."""
    first = trigger.get_next_fire_time(None, now)
    second = None if first is None else trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    return (second - first) if first is not None and second is not None else timedelta(days=1)


def already_done(job: JobSpec, last_run: datetime | None, now: datetime) -> bool:
    """Whether a run of the job due now was made already (by this or another daemon sharing the store): an
    interval job that ran within the last 90 % of its interval (the slack absorbs start-time jitter), a cron
    job that ran at or after its latest slot. A last run later than `now` (the clock went back) counts as
    not done, so a jump back never silences a job."""
    if last_run is None or last_run > now:
        return False
    if job.every is not None:
        return (now - last_run).total_seconds() < job.every * 0.9
    assert job.cron is not None
    latest_slot = parse_cron(job.cron).get_next_fire_time(None, last_run + timedelta(seconds=1))
    return latest_slot is None or latest_slot > now


def merge_pending(first: datetime | None, pending: datetime | None, now: datetime) -> datetime | None:
    """On a reschedule, a run that was due but not started (the clock jumped over it) still happens, once."""
    if pending is not None and pending <= now:
        return now
    return first


def job_ids(job: JobSpec, sync_names: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(job id, sync name) pairs: a sync job without `sync:` becomes one job per configured sync."""
    if job.job == "sync":
        names = (job.sync,) if job.sync is not None else sync_names
        return [(f"sync:{name}", name) for name in names]
    suffix = f":{job.realm}" if job.realm else ""
    return [(f"{job.job}{suffix}", None)]
