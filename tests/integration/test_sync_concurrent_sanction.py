"""A sync's writes never undo account state changed after its listing was read: a user disabled (by a
sanction or an admin) between the sync's read and its update stays disabled, and required actions set in
between stay set. The race is made exact by preparing the run, changing the user, then executing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from agent.store import open_store
from agent.sync.runner import execute, prepare_sync
from tests.harness.sync_setup import NOW, SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


def test_an_update_planned_before_a_disable_does_not_re_enable(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    run, _, _ = setup.run(hr_config(setup, [hr_row(i) for i in range(3)]))
    assert run.status == "succeeded"
    config = hr_config(setup, [hr_row(i, LastName=f"Renamed{i}") for i in range(3)])
    with open_store(config.store) as store:
        prepared = prepare_sync(config, config.sync(SYNC), gateway, store, now=NOW, env={})
        assert {item.action for item in prepared.plan.items} == {"update"}
        target = managed(gateway, setup.realm)["5000"]
        # Between the sync's read and its write: the account is suspended and must set a new password.
        gateway.update_user(setup.realm, target.id, {"enabled": False, "requiredActions": ["UPDATE_PASSWORD"]})
        started = store.runs.start_run("sync", setup.realm, sources=tuple(prepared.reads))
        outcome = execute(prepared, gateway, store, started, now=NOW)

    assert not outcome.failed
    after = gateway.get_user(setup.realm, target.id)
    assert after is not None
    assert after.last_name == "Renamed0", "the sync's own change is made"
    assert after.enabled is False, "a stale listing re-enabled a disabled account"
    assert list(after.required_actions) == ["UPDATE_PASSWORD"]
    others = [user for key, user in managed(gateway, setup.realm).items() if key != "5000"]
    assert all(user.enabled for user in others)
