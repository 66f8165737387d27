"""S13: one writer at a time. An overlapping run reports "skipped: locked" and exits cleanly; the lock of
a killed run is released by the kernel, so the next run goes ahead."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.locks import Locked, exclusive
from agent.settings import KeycloakConnection
from agent.sync.model import SOURCE_ATTRIBUTE
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.sync_setup import SYNC, SyncSetup, hr_config, hr_row, make_sync_setup
from tests.integration.test_realm_cli import cli_env

REPO = Path(__file__).resolve().parents[2]


def test_lock_of_a_killed_holder_is_released(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; from agent.locks import exclusive\n"
            f"with exclusive('job', Path({str(tmp_path)!r})):\n print('held', flush=True); time.sleep(60)"
        )],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(Locked, match=f"pid {holder.pid}"), exclusive("job", tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    with exclusive("job", tmp_path):
        pass  # free again, with no clean-up by anyone


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


def test_overlapping_sync_runs_write_once(
    setup: SyncSetup,
    keycloak_connection: KeycloakConnection,
    gateway: KeycloakGateway,
) -> None:
    hr_config(setup, [hr_row(i) for i in range(15)])
    with FaultProxy(keycloak_connection.url) as proxy:
        # The first run's bulk create is slowed, so it still holds the lock when the second run starts.
        proxy.add(Fault("latency", r"/partialImport", method="POST", delay_seconds=4.0))
        env = cli_env(keycloak_connection, url=proxy.url, IDP_AGENT_STATE_DIR=str(setup.folder / "state"))
        command = [sys.executable, "-m", "agent", "sync", "run", "--config", str(setup.folder / "idp-agent.yaml")]
        first = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        second = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
        out, err = first.communicate(timeout=300)

    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert "skipped: locked" in second.stdout
    assert "succeeded" in out
    users = list(gateway.list_users_with_attribute(setup.realm, SOURCE_ATTRIBUTE, SYNC))
    assert len(users) == 15
