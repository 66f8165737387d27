"""S12: the daemon killed (SIGKILL) while its k-th write to Keycloak is in flight, then started again: the
lock of the dead run is free, one catch-up run finishes what was left (and ends the dead run's record as
interrupted), and the journal's chain is intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from agent.store.db import open_store
from tests.harness.daemon_process import DaemonProcess, add_daemon_section, wait_for
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.sync_setup import SYNC, hr_config, hr_row, make_sync_setup, managed
from tests.integration.test_realm_cli import cli_env

SYNC_JOB = f"sync:{SYNC}"
PEOPLE = 8


# The k-th PUT of a person (admin API), or the plugin's one bulk change of all PEOPLE.
WRITES = {"admin-api": r"/admin/realms/[^/]+/users/", "plugin": r"/idp-agent/users/changes"}


@pytest.mark.parametrize(("k", "keycloak_write"), [(1, "admin-api"), (3, "admin-api"), (6, "admin-api"), (1, "plugin")])
def test_killed_at_the_kth_write_converges_with_one_catch_up_run(
    k: int, keycloak_write: str, keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path,
    gateway: KeycloakGateway,
) -> None:  # fmt: skip
    setup = make_sync_setup(keycloak_connection, realm, tmp_path, keycloak_write=keycloak_write)
    write = WRITES[keycloak_write]
    setup.run(hr_config(setup, [hr_row(i) for i in range(PEOPLE)]))
    config = hr_config(setup, [hr_row(i, LastName=f"Renamed{i}") for i in range(PEOPLE)])  # PEOPLE updates
    config_file = setup.folder / "idp-agent.yaml"
    add_daemon_section(config_file, {"jobs": [{"job": "sync", "every": "1h"}]})
    state = str(setup.folder / "state")

    with FaultProxy(keycloak_connection.url) as proxy:
        kth = proxy.add(Fault("latency", write, method="PUT", skip=k - 1, delay_seconds=3.0))
        with DaemonProcess(
            config_file, cli_env(keycloak_connection, url=proxy.url, IDP_AGENT_STATE_DIR=state)
        ) as first:
            wait_for(f"write {k} in flight", lambda: kth.times == 0)
            first.kill()
        # The proxy still delivers the k-th write: Keycloak applied it, the agent never heard the answer.
        wait_for(f"write {k} delivered", lambda: len(proxy.seen("PUT", write)) >= k)

    with DaemonProcess(config_file, cli_env(keycloak_connection, IDP_AGENT_STATE_DIR=state), name="again") as again:
        wait_for("the catch-up run", lambda: sum(again.all_runs(SYNC_JOB).values()) >= 1)
        # Its next run is an interval away: this count is final.
        assert again.all_runs(SYNC_JOB) == {"succeeded": 1}, again.log_text()
        assert again.stop() == 0

    users = managed(gateway, setup.realm).values()
    assert sorted(user.last_name or "" for user in users) == sorted(f"Renamed{i}" for i in range(PEOPLE))
    with open_store(config.store) as store:
        assert store.journal.verify().ok
        entries = [entry for entry in store.journal.entries() if entry.action == "user.update"]
        updates = [entry.subject for entry in entries if entry.details.get("outcome") == "applied"]
        assert len(updates) == len(set(updates)), "no write journalled twice"
        # N6: every write sent has a record, even those of the killed run that never heard back (an intent).
        announced = {entry.subject for entry in entries if entry.details.get("outcome") == "intent"}
        assert {user.username for user in users} <= announced
        runs = store.runs.list_runs(kind="sync")
        assert runs[0].status == "succeeded"
        # The killed run does not stay `running`: the catch-up run's lock found it and ended it.
        killed = runs[1]
        assert killed.status == "failed" and killed.summary.startswith("interrupted: its process ended"), killed
