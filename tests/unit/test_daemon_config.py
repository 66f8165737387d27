"""The daemon: section: schedules (interval or 5-field cron, UTC), first runs after a (re)start or a clock
jump (one catch-up run at most), job ids, and errors reported at file:line:col."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from agent.config.diagnostics import ConfigErrors
from agent.daemon.config import (
    DaemonSpec,
    JobSpec,
    already_done,
    build_trigger,
    first_run_time,
    job_ids,
    merge_pending,
    parse_cron,
    parse_listen,
)
from agent.daemon.jobs import campaign_name, lock_name
from agent.daemon.service import checked_jobs, scheduled_jobs
from agent.errors import ConfigError
from agent.sync.agent_config import load_agent_config

NOW = datetime(2026, 11, 29, 10, 30, tzinfo=UTC)


def job(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"job": "sync", **fields})


def test_cron_has_five_fields_in_utc() -> None:
    trigger = parse_cron("0 3 * * *")
    assert trigger.get_next_fire_time(None, NOW) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, NOW).utcoffset() == timedelta(0)


@pytest.mark.parametrize("expression", ["0 3 * *", "0 3 * * * *", "61 3 * * *", "0 3 * * funday"])
def test_bad_cron_is_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        parse_cron(expression)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)), ("0.0.0.0:80", ("0.0.0.0", 80))],  # noqa: S104
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9464", ":9464", "localhost:", "host:port", "host:70000"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)


def test_default_listen_is_loopback() -> None:
    assert parse_listen(DaemonSpec().listen)[0] == "127.0.0.1"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of `every` or `cron`"),
        ({"every": "5m", "cron": "0 * * * *"}, "exactly one of"),
        ({"every": 0}, "at least 1s"),
        ({"job": "drift", "every": "5m", "sync": "x"}, "`sync` only applies"),
        ({"job": "sanctions", "every": "5m", "apply": True}, "`apply` only applies"),
        ({"every": "5m", "surprise": 1}, "Extra inputs"),
        ({"job": "reviews", "every": "5m"}, "needs `realm:`"),
        ({"job": "sanctions", "every": "5m"}, "job 'sanctions' needs `realm:`"),
        ({"job": "events", "every": "5m"}, "job 'events' needs `realm:`"),
    ],
)
def test_job_spec_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        job(**fields)


def test_errors_in_the_daemon_section_point_at_the_line(tmp_path: Path) -> None:
    config = {"daemon": {"jobs": [{"job": "sync", "every": "5m"}, {"job": "drift", "cron": "0 3 * *"}]}}
    (tmp_path / "idp-agent.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigErrors) as raised:
        load_agent_config(tmp_path / "idp-agent.yaml", {})
    text = str(raised.value)
    assert "idp-agent.yaml:" in text and "needs 5 fields" in text


def test_one_scheduled_campaign_per_realm_and_day() -> None:
    assert campaign_name("acme", NOW) == campaign_name("acme", NOW + timedelta(hours=5)) == "acme-2026-11-29"


def test_interval_job_first_runs() -> None:
    every = job(every="1h")
    assert first_run_time(every, None, NOW) == NOW, "never ran: run at once"
    assert first_run_time(every, NOW - timedelta(minutes=20), NOW) == NOW + timedelta(minutes=40)
    assert first_run_time(every, NOW - timedelta(days=3), NOW) == NOW, "72 slots missed: one catch-up run"
    # The clock went back two days: the next run is an interval from now, not two days and an interval away.
    assert first_run_time(every, NOW + timedelta(days=2), NOW) == NOW + timedelta(hours=1)


def test_cron_job_first_runs() -> None:
    nightly = job(cron="0 3 * * *")
    assert first_run_time(nightly, None, NOW) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC), "never ran: wait"
    ran_today = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert first_run_time(nightly, ran_today, NOW) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert first_run_time(nightly, ran_today - timedelta(days=5), NOW) == NOW, "five nights missed: one catch-up"
    # The clock went back to before today's 03:00, which already ran: it is not run twice.
    back = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    assert first_run_time(nightly, ran_today, back) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    # The clock ran a year ahead when the job last ran (a bad RTC, set right since): that time is no slot run a
    # moment ago, and waiting for it would silence the job for a year.
    a_year_ahead = NOW + timedelta(days=365)
    assert first_run_time(nightly, a_year_ahead, NOW) == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def test_already_done_by_this_or_another_daemon() -> None:
    every = job(every="15m")
    assert not already_done(every, None, NOW)
    assert already_done(every, NOW - timedelta(minutes=3), NOW), "another daemon ran it 3 minutes ago"
    assert not already_done(every, NOW - timedelta(minutes=15, milliseconds=-5), NOW), "start-time jitter"
    assert not already_done(every, NOW - timedelta(minutes=20), NOW)
    assert not already_done(every, NOW + timedelta(hours=2), NOW), "the clock went back: never silenced"
    nightly = job(cron="0 3 * * *")
    assert already_done(nightly, datetime(2026, 11, 29, 3, 0, 2, tzinfo=UTC), NOW)
    assert not already_done(nightly, datetime(2026, 11, 28, 3, 0, 2, tzinfo=UTC), NOW), "today's slot not run"


def test_a_slot_jumped_over_runs_once() -> None:
    later = NOW + timedelta(hours=5)
    assert merge_pending(later, NOW - timedelta(days=2), NOW) == NOW
    assert merge_pending(later, NOW + timedelta(minutes=1), NOW) == later
    assert merge_pending(later, None, NOW) == later


def test_interval_trigger_counts_from_the_first_run() -> None:
    trigger = build_trigger(job(every="15m"), first_run=NOW)
    assert trigger.get_next_fire_time(None, NOW) == NOW
    assert trigger.get_next_fire_time(NOW, NOW + timedelta(seconds=1)) == NOW + timedelta(minutes=15)


def test_job_ids_and_locks() -> None:
    assert job_ids(job(every="5m"), ("hr", "contractors")) == [("sync:hr", "hr"), ("sync:contractors", "contractors")]
    assert job_ids(job(every="5m", sync="hr"), ("hr", "contractors")) == [("sync:hr", "hr")]
    assert job_ids(JobSpec(job="sanctions", every=60, realm="acme"), ()) == [("sanctions:acme", None)]
    assert job_ids(JobSpec(job="drift", every=60), ()) == [("drift", None)]
    # The same lock names as the CLI commands: `sync run` takes sync-<name>, `sanctions enforce` sanctions-<realm>.
    assert lock_name("sync:hr") == "sync-hr"
    assert lock_name("sanctions:acme") == "sanctions-acme"
    assert lock_name("drift") == "drift"


def _config(tmp_path: Path, daemon: dict[str, Any] | None) -> Path:
    (tmp_path / "hr.csv").write_text("id\n")
    body: dict[str, Any] = {
        "sources": [{"name": "hr", "type": "csv", "path": "hr.csv"}],
        "syncs": [{"name": "people", "mapper": "m.yaml", "sources": ["hr"]}],
    }
    if daemon is not None:
        body["daemon"] = daemon
    (tmp_path / "idp-agent.yaml").write_text(yaml.safe_dump(body))
    return tmp_path / "idp-agent.yaml"


def test_scheduled_jobs(tmp_path: Path) -> None:
    path = _config(tmp_path, {"jobs": [{"job": "sync", "every": "5m"}, {"job": "events", "every": "1h", "realm": "a"}]})
    jobs = scheduled_jobs(load_agent_config(path, {}))
    assert [(j.job_id, j.sync_name) for j in jobs] == [("sync:people", "people"), ("events:a", None)]


@pytest.mark.parametrize(
    ("daemon", "error", "message"),
    [
        (None, ConfigError, "no daemon jobs"),
        ({"jobs": [{"job": "sync", "every": "5m", "sync": "nobody"}]}, ConfigErrors, "no sync named 'nobody'"),
        ({"jobs": [{"job": "drift", "every": "5m"}, {"job": "drift", "cron": "0 * * * *"}]}, ConfigError, "twice"),
    ],
)
def test_scheduled_jobs_errors(
    tmp_path: Path, daemon: dict[str, Any] | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        scheduled_jobs(load_agent_config(_config(tmp_path, daemon), {}))


def test_what_the_jobs_read_is_checked_when_they_are_scheduled(tmp_path: Path) -> None:
    """A missing mapper or realm-config folder fails the daemon's start (or a reload), not every run."""
    path = _config(tmp_path, {"jobs": [{"job": "sync", "every": "5m"}, {"job": "drift", "every": "1h"}]})
    config = load_agent_config(path, {})
    with pytest.raises(ConfigErrors, match=r"m\.yaml:1:1: cannot read this file"):
        checked_jobs(config, {})
    (tmp_path / "m.yaml").write_text(
        "name: people\nrealm: acme\nid: id\nsources: {hr: {priority: 1, fields: [id, username]}}\n"
        "fields: {hr: {id: {from: id}, username: {from: id}}}\n"
    )
    with pytest.raises(ConfigError, match=r"drift: no such config path: .*realm-config"):
        checked_jobs(config, {})
    (tmp_path / "realm-config").mkdir()
    assert [job.job_id for job in checked_jobs(config, {})] == ["sync:people", "drift"]


def test_webhook_must_come_from_the_environment() -> None:
    with pytest.raises(pydantic.ValidationError, match="never be written in the file"):
        DaemonSpec.model_validate({"alerts": {"webhook": "https://hooks.example.org/T0/secret"}})
