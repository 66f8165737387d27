"""S13 with the daemon: two daemons start together and a CLI run overlaps their run. Exactly one writes;
the others report "skipped: locked" (counted in /metrics) and carry on without an error. Each process has
its own state dir, as on separate machines: only the store is shared (SQLite, or PostgreSQL and its
advisory lock)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from agent.store.db import open_store
from agent.sync.agent_config import load_agent_config
from tests.harness.daemon_process import REPO, DaemonProcess, add_daemon_section, wait_for
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.sync_setup import SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed
from tests.integration.test_realm_cli import cli_env

SYNC_JOB = f"sync:{SYNC}"


def set_store(config_file: Path, url: str) -> None:
    data = yaml.safe_load(config_file.read_text())
    data["store"] = url
    config_file.write_text(yaml.safe_dump(data))


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, setup: SyncSetup) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{setup.folder / 'store.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database("daemon")
    yield url
    server.drop_database(url)


def test_two_daemons_and_a_cli_run_make_one_writer(
    setup: SyncSetup, store_url: str, keycloak_connection: KeycloakConnection, gateway: KeycloakGateway
) -> None:
    hr_config(setup, [hr_row(i) for i in range(12)])
    config_file = setup.folder / "idp-agent.yaml"
    add_daemon_section(config_file, {"jobs": [{"job": "sync", "every": "1h"}]})
    set_store(config_file, store_url)
    config = load_agent_config(config_file, {})
    with FaultProxy(keycloak_connection.url) as proxy:
        # The one bulk create is held back, so whoever writes still holds the lock when the others try.
        held = proxy.add(Fault("latency", r"/partialImport", method="POST", delay_seconds=6.0))

        def machine(name: str) -> dict[str, str]:
            return cli_env(keycloak_connection, url=proxy.url, IDP_AGENT_STATE_DIR=str(setup.folder / name))

        env = machine("cli")
        first = DaemonProcess(config_file, machine("first"), name="first")
        second = DaemonProcess(config_file, machine("second"), name="second")
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


def test_a_daemon_on_another_machine_does_not_repeat_a_run_made_through_the_store(
    setup: SyncSetup, store_url: str, keycloak_connection: KeycloakConnection
) -> None:
    hr_config(setup, [hr_row(i) for i in range(3)])
    config_file = setup.folder / "idp-agent.yaml"
    add_daemon_section(config_file, {"jobs": [{"job": "sync", "every": "1h"}]})
    set_store(config_file, store_url)

    def machine(name: str) -> dict[str, str]:
        return cli_env(keycloak_connection, IDP_AGENT_STATE_DIR=str(setup.folder / name))

    with DaemonProcess(config_file, machine("first"), name="first") as first:
        wait_for("the first machine's run", lambda: first.runs(SYNC_JOB, "succeeded") == 1)
        assert first.stop() == 0
    # Another machine, its own state dir, the same store: the run is recorded there, so nothing is due.
    with DaemonProcess(config_file, machine("second"), name="second") as second:
        scheduled = wait_for("the schedule", lambda: [r for r in second.log_records() if r.get("event") == "scheduled"])
        next_run = second.metrics()[f'idp_agent_job_next_run_timestamp_seconds{{job="{SYNC_JOB}"}}']
        assert next_run > time.time() + 3000, scheduled
        assert second.all_runs(SYNC_JOB) == {}
        assert second.stop() == 0
