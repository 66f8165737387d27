"""Counters and gauges per job, rendered in the Prometheus text exposition format (version 0.0.4).

Kept in memory by the daemon: counters start at 0 when it starts, as Prometheus expects of a process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

# succeeded | failed | staged | drift | unavailable | interrupted, or skipped_ + locked | done | running | missed
Outcome = str
PREFIX = "idp_agent_"


@dataclass
class JobStats:
    runs: dict[Outcome, int] = field(default_factory=dict)
    duration_sum: float = 0.0
    duration_count: int = 0
    last_duration: float | None = None
    changes: int = 0
    failures: int = 0
    staged_removals: int = 0
    skipped_locked: int = 0
    last_success: datetime | None = None
    last_drift_changes: int | None = None
    next_run: datetime | None = None


@dataclass(frozen=True)
class RunRecord:
    """What one job run contributes to the metrics."""

    job: str
    outcome: Outcome
    duration: float
    finished_at: datetime
    changes: int = 0
    failures: int = 0
    staged_removals: int = 0
    drift_changes: int | None = None


class Metrics:
    """Thread-safe: jobs record from the scheduler's threads while the HTTP thread renders."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobStats] = {}
        self._running = 0

    def run_started(self) -> None:
        with self._lock:
            self._running += 1

    def run_ended(self) -> None:
        with self._lock:
            self._running -= 1

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def declare(self, job: str) -> None:
        with self._lock:
            self._jobs.setdefault(job, JobStats())

    def record(self, run: RunRecord) -> None:
        with self._lock:
            stats = self._jobs.setdefault(run.job, JobStats())
            stats.runs[run.outcome] = stats.runs.get(run.outcome, 0) + 1
            if run.outcome.startswith("skipped"):  # skipped_locked, skipped_done: nothing ran
                stats.skipped_locked += run.outcome == "skipped_locked"
                return
            stats.duration_sum += run.duration
            stats.duration_count += 1
            stats.last_duration = run.duration
            stats.changes += run.changes
            stats.failures += run.failures + (1 if run.outcome == "failed" else 0)
            stats.staged_removals += run.staged_removals
            if run.drift_changes is not None:
                stats.last_drift_changes = run.drift_changes
            if run.outcome in {"succeeded", "staged", "drift"}:
                stats.last_success = run.finished_at

    def set_next_run(self, job: str, moment: datetime | None) -> None:
        with self._lock:
            self._jobs.setdefault(job, JobStats()).next_run = moment

    def set_next_runs(self, scheduled: Mapping[str, datetime | None]) -> None:
        """The next run of every scheduled job; a job not scheduled (any more) has none."""
        with self._lock:
            for job, stats in self._jobs.items():
                stats.next_run = scheduled.get(job)
            for job, moment in scheduled.items():
                self._jobs.setdefault(job, JobStats(next_run=moment))

    def forget(self, job: str) -> None:
        """Drop a job taken off the schedule: every series of it ends."""
        with self._lock:
            self._jobs.pop(job, None)

    def snapshot(self) -> dict[str, JobStats]:
        with self._lock:
            return {
                name: JobStats(**{**stats.__dict__, "runs": dict(stats.runs)}) for name, stats in self._jobs.items()
            }


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Mapping[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in pairs.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> list[str]:
    lines = [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}"]
    lines += [f"{PREFIX}{name}{_labels(labels)} {_number(value)}" for labels, value in samples]
    return lines


def render_metrics(jobs: Mapping[str, JobStats], *, version: str, up_since: datetime, running: int = 0) -> str:
    """The exposition text: one family per metric, samples sorted by job, ending with a newline."""
    names = sorted(jobs)

    def per_job(value: str) -> list[tuple[Mapping[str, str], float]]:
        samples: list[tuple[Mapping[str, str], float]] = []
        for name in names:
            number = getattr(jobs[name], value)
            if number is not None:
                samples.append(({"job": name}, number.timestamp() if isinstance(number, datetime) else number))
        return samples

    runs = [
        ({"job": name, "outcome": outcome}, float(count))
        for name in names
        for outcome, count in sorted(jobs[name].runs.items())
    ]
    lines = _family("info", "gauge", "the daemon's version", [({"version": version}, 1)])
    lines += _family("start_time_seconds", "gauge", "when the daemon started (unix time)", [({}, up_since.timestamp())])
    lines += _family("runs_in_progress", "gauge", "job runs under way now", [({}, running)])
    lines += _family("job_runs_total", "counter", "job runs by outcome", runs)
    lines += [
        f"# HELP {PREFIX}job_duration_seconds time spent per job run",
        f"# TYPE {PREFIX}job_duration_seconds summary",
    ]
    for name in names:
        stats = jobs[name]
        lines.append(f"{PREFIX}job_duration_seconds_sum{_labels({'job': name})} {_number(stats.duration_sum)}")
        lines.append(f"{PREFIX}job_duration_seconds_count{_labels({'job': name})} {stats.duration_count}")
    lines += _family("job_changes_total", "counter", "writes applied by job runs", per_job("changes"))
    lines += _family("job_failures_total", "counter", "failed runs and failed items", per_job("failures"))
    lines += _family("job_staged_removals_total", "counter", "removals staged for approval", per_job("staged_removals"))
    lines += _family(
        "job_skipped_locked_total", "counter", "runs skipped: another run held the lock", per_job("skipped_locked")
    )
    lines += _family(
        "job_last_success_timestamp_seconds", "gauge", "end of the last good run (unix time)", per_job("last_success")
    )
    lines += _family(
        "job_next_run_timestamp_seconds", "gauge", "the next scheduled run (unix time)", per_job("next_run")
    )
    lines += _family("drift_changes", "gauge", "changes the last drift check found", per_job("last_drift_changes"))
    return "\n".join(lines) + "\n"


def parse_metrics(text: str) -> dict[str, float]:
    """Sample name with labels -> value (for tests and `idp-agent daemon` smoke checks)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
