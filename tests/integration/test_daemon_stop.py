"""SIGTERM mid-run: the daemon finishes the item being written, journals it, refuses the next write and
exits 0 within its shutdown timeout; the journal is intact and the next start converges in one run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from agent.store.db import open_store
from agent.sync.agent_config import AgentConfig
from tests.harness.daemon_process import DaemonProcess, add_daemon_section, wait_for
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.sync_setup import SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed
from tests.integration.test_realm_cli import cli_env

SYNC_JOB = f"sync:{SYNC}"
PEOPLE = 30
SHUTDOWN_TIMEOUT = 20


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    # A PUT per person, so SIGTERM lands between people's writes (the plugin's bulk change is one request).
    return make_sync_setup(keycloak_connection, realm, tmp_path, keycloak_write="admin-api")


def renamed_config(setup: SyncSetup) -> AgentConfig:
    """PEOPLE users created, then renamed in HR: the next run has PEOPLE updates, one PUT each."""
    setup.run(hr_config(setup, [hr_row(i) for i in range(PEOPLE)]))
    config = hr_config(setup, [hr_row(i, LastName=f"Renamed{i}") for i in range(PEOPLE)])
    daemon = {"jobs": [{"job": "sync", "every": "1h"}], "shutdown_timeout": SHUTDOWN_TIMEOUT}
    add_daemon_section(setup.folder / "idp-agent.yaml", daemon)
    return config


def journalled_updates(config: AgentConfig, outcome: str = "applied") -> list[str]:
    """Who has a `user.update` entry with this outcome ("intent" entries are written before the PUT)."""
    with open_store(config.store) as store:
        assert store.journal.verify().ok
        entries = store.journal.entries()
        return [e.subject for e in entries if e.action == "user.update" and e.details.get("outcome") == outcome]


def renamed(gateway: KeycloakGateway, realm: str) -> set[str]:
    return {user.username for user in managed(gateway, realm).values() if (user.last_name or "").startswith("Renamed")}


def test_sigterm_finishes_the_current_item_and_exits_0(
    setup: SyncSetup, keycloak_connection: KeycloakConnection, gateway: KeycloakGateway
) -> None:
    config = renamed_config(setup)
    state = str(setup.folder / "state")
    with FaultProxy(keycloak_connection.url) as proxy:
        proxy.add(Fault("latency", r"/users/", method="PUT", delay_seconds=1.0, times=100))
        env = cli_env(keycloak_connection, url=proxy.url, IDP_AGENT_STATE_DIR=state)
        daemon = DaemonProcess(setup.folder / "idp-agent.yaml", env)
        with daemon:
            wait_for("two updates made", lambda: len(proxy.seen("PUT", r"/users/")) >= 2)
            daemon.signal(signal.SIGTERM)
            assert daemon.process is not None
            # Bounded: the items under way (one delayed PUT each) end well within the shutdown timeout.
            assert daemon.process.wait(timeout=SHUTDOWN_TIMEOUT + 30) == 0, daemon.log_text()
        records = daemon.log_records()

    journalled = journalled_updates(config)
    assert len(journalled) < PEOPLE, "the run went on after SIGTERM"
    # Every write made is journalled: the people updated in Keycloak are exactly the journalled ones, and
    # each was announced by an intent before its PUT was sent.
    assert renamed(gateway, setup.realm) == set(journalled)
    assert set(journalled) <= set(journalled_updates(config, "intent"))
    finished = [r for r in records if r.get("event") == "run_finished"]
    assert [r["outcome"] for r in finished] == ["interrupted"]
    with open_store(config.store) as store:
        (run,) = store.runs.list_runs(kind="sync", limit=1)
        assert run.status == "failed" and "interrupted between items" in run.summary

    # Restarted: one catch-up run finishes the rest, each user journalled once.
    env = cli_env(keycloak_connection, IDP_AGENT_STATE_DIR=state)
    with DaemonProcess(setup.folder / "idp-agent.yaml", env, name="again") as again:
        wait_for("the catch-up run", lambda: again.runs(SYNC_JOB, "succeeded") == 1)
        assert again.all_runs(SYNC_JOB) == {"succeeded": 1}
        assert again.stop() == 0
    journalled = journalled_updates(config)
    assert len(renamed(gateway, setup.realm)) == PEOPLE
    assert sorted(journalled) == sorted(set(journalled)) and len(journalled) == PEOPLE
