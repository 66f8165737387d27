"""/metrics: per-job counters and gauges in the Prometheus text format, label values escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from agent.daemon.metrics import Metrics, RunRecord, escape_label, parse_metrics, render_metrics

AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def _render(metrics: Metrics) -> str:
    return render_metrics(metrics.snapshot(), version="1.2.3", up_since=AT)


def test_runs_durations_changes_and_last_success() -> None:
    metrics = Metrics()
    metrics.record(RunRecord("sync:hr", "succeeded", 2.5, AT, changes=7))
    metrics.record(RunRecord("sync:hr", "failed", 1.0, AT.replace(hour=11), changes=1, failures=2))
    metrics.record(RunRecord("sync:hr", "staged", 0.5, AT.replace(hour=12), staged_removals=40))
    metrics.record(RunRecord("sync:hr", "skipped_locked", 0.01, AT.replace(hour=13)))
    metrics.record(RunRecord("sync:hr", "skipped_done", 0.01, AT.replace(hour=14)))
    metrics.record(RunRecord("drift", "drift", 3.0, AT, drift_changes=4))
    values = parse_metrics(_render(metrics))

    assert values['idp_agent_job_runs_total{job="sync:hr",outcome="succeeded"}'] == 1
    assert values['idp_agent_job_runs_total{job="sync:hr",outcome="failed"}'] == 1
    assert values['idp_agent_job_runs_total{job="sync:hr",outcome="skipped_locked"}'] == 1
    assert values['idp_agent_job_skipped_locked_total{job="sync:hr"}'] == 1
    assert values['idp_agent_job_runs_total{job="sync:hr",outcome="skipped_done"}'] == 1
    assert values['idp_agent_job_duration_seconds_count{job="sync:hr"}'] == 3, "a skipped run is not timed"
    assert values['idp_agent_job_duration_seconds_sum{job="sync:hr"}'] == 4.0
    assert values['idp_agent_job_changes_total{job="sync:hr"}'] == 8
    assert values['idp_agent_job_failures_total{job="sync:hr"}'] == 3, "the failed run and its two failed items"
    assert values['idp_agent_job_staged_removals_total{job="sync:hr"}'] == 40
    # Staged is a good run (the brake worked); a failed one is not.
    assert values['idp_agent_job_last_success_timestamp_seconds{job="sync:hr"}'] == AT.replace(hour=12).timestamp()
    assert values['idp_agent_drift_changes{job="drift"}'] == 4
    assert values['idp_agent_info{version="1.2.3"}'] == 1


def test_runs_in_progress() -> None:
    metrics = Metrics()
    metrics.run_started()
    metrics.run_started()
    metrics.run_ended()
    text = render_metrics(metrics.snapshot(), version="1", up_since=AT, running=metrics.running)
    assert parse_metrics(text)["idp_agent_runs_in_progress"] == 1


def test_exposition_format() -> None:
    metrics = Metrics()
    metrics.declare("events:acme")
    metrics.set_next_run("events:acme", AT)
    metrics.record(RunRecord("sync:hr", "succeeded", 0.25, AT))
    text = _render(metrics)
    assert text.endswith("\n")
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families)), "each family is declared once"
    for line in text.splitlines():
        if not line.startswith("#"):
            assert SAMPLE.match(line), line
    values = parse_metrics(text)
    assert values['idp_agent_job_next_run_timestamp_seconds{job="events:acme"}'] == AT.timestamp()
    assert 'idp_agent_job_last_success_timestamp_seconds{job="events:acme"}' not in values, "never succeeded"
    assert values['idp_agent_job_duration_seconds_count{job="events:acme"}'] == 0


def test_label_values_are_escaped() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    metrics = Metrics()
    metrics.record(RunRecord('sync:"odd"\nname', "succeeded", 1.0, AT))
    assert 'job="sync:\\"odd\\"\\nname"' in _render(metrics)


def test_snapshot_is_a_copy() -> None:
    metrics = Metrics()
    metrics.record(RunRecord("drift", "succeeded", 1.0, AT))
    snapshot = metrics.snapshot()
    metrics.record(RunRecord("drift", "succeeded", 1.0, AT))
    assert snapshot["drift"].runs == {"succeeded": 1}


def test_a_job_taken_off_the_schedule_leaves_no_series() -> None:
    metrics = Metrics()
    for job in ("drift", "sync:hr"):
        metrics.declare(job)
        metrics.set_next_run(job, AT)
    metrics.record(RunRecord("drift", "drift", 1.0, AT, drift_changes=3))
    metrics.forget("drift")
    text = _render(metrics)
    assert 'job="drift"' not in text, "a stale next run, last success or drift count would go on alerting"
    assert parse_metrics(text)['idp_agent_job_next_run_timestamp_seconds{job="sync:hr"}'] == AT.timestamp()


def test_next_runs_are_those_of_the_jobs_scheduled_now() -> None:
    metrics = Metrics()
    metrics.set_next_runs({"drift": AT, "sync:hr": AT})
    metrics.record(RunRecord("drift", "succeeded", 1.0, AT))
    metrics.set_next_runs({"sync:hr": AT.replace(hour=11)})
    values = parse_metrics(_render(metrics))
    assert 'idp_agent_job_next_run_timestamp_seconds{job="drift"}' not in values, "no longer scheduled"
    assert values['idp_agent_job_runs_total{job="drift",outcome="succeeded"}'] == 1
    assert values['idp_agent_job_next_run_timestamp_seconds{job="sync:hr"}'] == AT.replace(hour=11).timestamp()


def test_runs_the_scheduler_dropped_count_as_skipped_and_are_not_timed() -> None:
    metrics = Metrics()
    metrics.record(RunRecord("sync:hr", "skipped_running", 0.0, AT))
    metrics.record(RunRecord("sync:hr", "skipped_missed", 0.0, AT))
    values = parse_metrics(_render(metrics))
    assert values['idp_agent_job_runs_total{job="sync:hr",outcome="skipped_running"}'] == 1
    assert values['idp_agent_job_runs_total{job="sync:hr",outcome="skipped_missed"}'] == 1
    assert values['idp_agent_job_duration_seconds_count{job="sync:hr"}'] == 0
    assert 'idp_agent_job_last_success_timestamp_seconds{job="sync:hr"}' not in values
