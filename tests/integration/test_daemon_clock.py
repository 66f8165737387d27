"""S14: wall-clock jumps under a running daemon (a fake clock injected into the scheduler through
IDP_AGENT_DAEMON_CLOCK_FILE): a jump forward over many missed slots causes one catch-up run per job, a
jump back does not postpone the next run by the size of the jump, and nothing runs twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.settings import KeycloakConnection
from tests.harness.daemon_process import DaemonProcess, add_daemon_section, wait_for
from tests.harness.sync_setup import SYNC, SyncSetup, hr_config, hr_row, make_sync_setup
from tests.integration.test_realm_cli import cli_env

HOUR = 3600.0
TWO_DAYS = 2 * 86400.0
SYNC_JOB = f"sync:{SYNC}"


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


def next_run(daemon: DaemonProcess, job: str) -> float:
    return daemon.metrics()[f'idp_agent_job_next_run_timestamp_seconds{{job="{job}"}}']


def test_clock_jumps_cause_at_most_one_catch_up_run(setup: SyncSetup, keycloak_connection: KeycloakConnection) -> None:
    hr_config(setup, [hr_row(i) for i in range(2)])
    config_file = setup.folder / "idp-agent.yaml"
    add_daemon_section(config_file, {"jobs": [
        {"job": "sync", "every": "1h"},
        {"job": "retention", "cron": "0 3 * * *"},  # a cron job: its slot is jumped over
    ]})  # fmt: skip
    offset = setup.folder / "clock-offset"
    offset.write_text("0")
    env = cli_env(
        keycloak_connection, IDP_AGENT_STATE_DIR=str(setup.folder / "state"), IDP_AGENT_DAEMON_CLOCK_FILE=str(offset)
    )
    with DaemonProcess(config_file, env) as daemon:
        wait_for("the first sync run", lambda: daemon.runs(SYNC_JOB, "succeeded") == 1)
        assert next_run(daemon, SYNC_JOB) > time.time() + HOUR - 60
        assert daemon.all_runs("retention") == {}

        # Forward two days: 48 missed sync slots and two missed 03:00 slots.
        offset.write_text(str(TWO_DAYS))
        wait_for("the catch-up runs", lambda: daemon.runs(SYNC_JOB, "succeeded") == 2 and daemon.ran("retention"))
        wait_for(
            "the next sync an interval after the jump", lambda: next_run(daemon, SYNC_JOB) > time.time() + TWO_DAYS + 60
        )
        # Nothing else is due before a full interval of the new time: these counts are final.
        assert daemon.all_runs(SYNC_JOB) == {"succeeded": 2}
        assert daemon.all_runs("retention") == {"succeeded": 1}
        assert next_run(daemon, "retention") > time.time() + TWO_DAYS

        # Back again by two days: the next run is an interval from now, not two days and an interval away.
        offset.write_text("0")
        wait_for("the sync rescheduled from the new time", lambda: next_run(daemon, SYNC_JOB) < time.time() + HOUR + 60)
        assert daemon.all_runs(SYNC_JOB) == {"succeeded": 2}
        assert daemon.all_runs("retention") == {"succeeded": 1}
        records = daemon.log_records()
        assert daemon.stop() == 0

    jumps = [r for r in records if r.get("event") == "clock_jump"]
    assert len(jumps) == 2, jumps
    started = [r for r in records if r.get("event") == "run_started" and r["job"] == SYNC_JOB]
    assert len(started) == 2
