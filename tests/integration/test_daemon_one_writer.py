"""S13 with the daemon: two daemons start together and a CLI run overlaps their run. Exactly one writes;
the others report "skipped: locked" (counted in /metrics) and carry on without an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from agent.store.db import open_store
from tests.harness.daemon_process import REPO, DaemonProcess, add_daemon_section, wait_for
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.sync_setup import SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed
from tests.integration.test_realm_cli import cli_env

SYNC_JOB = f"sync:{SYNC}"


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


def test_two_daemons_and_a_cli_run_make_one_writer(
    setup: SyncSetup, keycloak_connection: KeycloakConnection, gateway: KeycloakGateway
) -> None:
    config = hr_config(setup, [hr_row(i) for i in range(12)])
    config_file = setup.folder / "idp-agent.yaml"
    add_daemon_section(config_file, {"jobs": [{"job": "sync", "every": "1h"}]})
    with FaultProxy(keycloak_connection.url) as proxy:
        # The one bulk create is held back, so whoever writes still holds the lock when the others try.
        held = proxy.add(Fault("latency", r"/partialImport", method="POST", delay_seconds=6.0))
        env = cli_env(keycloak_connection, url=proxy.url, IDP_AGENT_STATE_DIR=str(setup.folder / "state"))
        first = DaemonProcess(config_file, env, name="first")
        second = DaemonProcess(config_file, env, name="second")
        with first.launch(), second.launch():
            first.wait_healthy()
            second.wait_healthy()
            wait_for("the bulk create to reach the proxy", lambda: held.times == 0)
            command = [sys.executable, "-m", "agent", "sync", "run", "--config", str(config_file)]
            cli = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)

            def finished() -> bool:
                return sum(first.all_runs(SYNC_JOB).values()) + sum(second.all_runs(SYNC_JOB).values()) == 2

            wait_for("both daemons' runs to end", finished)
            outcomes = [first.all_runs(SYNC_JOB), second.all_runs(SYNC_JOB)]
            skipped_metric = [
                daemon.metrics()[f'idp_agent_job_skipped_locked_total{{job="{SYNC_JOB}"}}']
                for daemon in (first, second)
            ]
            assert first.stop() == 0
            assert second.stop() == 0

    assert cli.returncode == 0, cli.stderr
    assert "skipped: locked" in cli.stdout
    assert sorted(outcomes, key=str) == [{"skipped_locked": 1}, {"succeeded": 1}]
    assert sorted(skipped_metric) == [0, 1]
    skipped_logs = [r for d in (first, second) for r in d.log_records() if r.get("event") == "run_skipped"]
    assert len(skipped_logs) == 1 and "skipped: locked" in skipped_logs[0]["msg"]
    assert skipped_logs[0]["level"] == "info"  # not an error
    assert len(proxy.seen("POST", r"/partialImport")) == 1
    assert len(managed(gateway, setup.realm)) == 12
    with open_store(config.store) as store:
        assert [run.status for run in store.runs.list_runs(kind="sync")] == ["succeeded"]
