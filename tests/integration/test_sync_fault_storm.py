"""S09: a sync run while a fault proxy in front of the real Keycloak answers 30 % of the admin and plugin
requests with 429 and Retry-After, 5 % with 503, and slows others down. Retry-After is honoured, backoff is
bounded, and the run completes or stops as incomplete; whatever it did is what its journal says it did, nobody
still in HR loses access, nobody is created twice, and one run after the storm converges."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.errors import AgentError
from agent.keycloak import KeycloakGateway, RetryPolicy, User
from agent.settings import KeycloakConnection
from agent.store import open_store
from agent.sync.agent_config import AgentConfig
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, SOURCE_ATTRIBUTE
from agent.sync.runner import prepare_sync, run_sync
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.sync_setup import NOW, SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed

# Every admin API and plugin call; the token endpoint is left alone (its faults are S08's).
KEYCLOAK_CALLS = r"^/admin/realms/|^/realms/[^/]+/idp-agent/"
# Creates (partialImport), the plugin's bulk changes, a PUT of one user (the admin API's path).
PEOPLE_WRITES = r"/partialImport$|/idp-agent/users/changes$|/users/[0-9a-f-]{36}$"
RETRY_AFTER = 2.0
# Jitter at most 0.05 s: a wait of RETRY_AFTER can only come from a Retry-After.
FAST_RETRY = RetryPolicy(max_attempts=5, base_seconds=0.01, cap_seconds=0.05)
STAYING, LEAVING, JOINING, RENAMED = range(0, 24), range(24, 27), range(30, 36), range(0, 10)


def hr_after(setup: SyncSetup) -> AgentConfig:
    """HR as the storm run reads it: ten renamed, three gone, six new."""
    rows = [*(hr_row(i, LastName=f"Renamed{i}") for i in RENAMED), *map(hr_row, range(10, 24)), *map(hr_row, JOINING)]
    return hr_config(setup, rows)


def storm(proxy: FaultProxy) -> tuple[Fault, Fault]:
    """The storm, and with it one 503 sure to hit a write of people (a run of few requests may draw none)."""
    many = 10**6
    first_write = proxy.add(Fault("status", PEOPLE_WRITES, method="WRITE", status=503))
    too_many = proxy.add(
        Fault("status", KEYCLOAK_CALLS, status=429, retry_after=f"{RETRY_AFTER:g}", times=many, share=0.3)
    )
    proxy.add(Fault("status", KEYCLOAK_CALLS, status=503, times=many, share=0.07))
    proxy.add(Fault("latency", KEYCLOAK_CALLS, delay_seconds=0.02, times=many, share=0.3))
    return too_many, first_write


def run_through(setup: SyncSetup, url: str, waits: list[float]) -> tuple[str, list[tuple[str, str, str]]]:
    """One run through `url`: its status ('raised' when it stopped with an error before finishing) and items."""
    config = hr_after(setup)
    gateway = KeycloakGateway.connect(replace(setup.connection, url=url), retry=FAST_RETRY, sleep=waits.append)
    try:
        with open_store(config.store) as store:
            try:
                run, _, _ = run_sync(config, config.sync(SYNC), gateway, store, now=NOW, env={})
            except AgentError:
                last = store.runs.list_runs(limit=1)
                if not last or last[0].status == "succeeded":
                    return "raised", []
                run = last[0]
            items: list[tuple[str, str, str]] = [
                (item.subject, item.action, item.outcome) for item in store.runs.run_items(run.id)
            ]
            return run.status, items
    finally:
        gateway.close()


@pytest.mark.parametrize("keycloak_write", ["plugin", "admin-api"])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_run_in_a_429_and_503_storm_does_what_it_says_and_the_next_run_converges(
    keycloak_write: str, seed: int, keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path,
    gateway: KeycloakGateway,
) -> None:  # fmt: skip
    setup = make_sync_setup(keycloak_connection, realm, tmp_path, keycloak_write=keycloak_write)
    setup.run(hr_config(setup, [hr_row(i) for i in range(27)]))
    waits: list[float] = []

    with FaultProxy(keycloak_connection.url, seed=seed) as proxy:
        too_many, first_write = storm(proxy)
        status, items = run_through(setup, proxy.url, waits)

    assert too_many.applied > 0 and first_write.applied == 1
    # Retry-After honoured: each wait is the server's, or a jitter within the cap, never in between.
    long_waits = [wait for wait in waits if wait >= RETRY_AFTER]
    assert 0 < len(long_waits) <= too_many.applied
    assert all(wait <= FAST_RETRY.cap_seconds for wait in waits if wait < RETRY_AFTER)
    assert status in {"succeeded", "failed", "raised"}
    after_storm = users_by_external_id(gateway, realm)
    # N5: one user per person; N1: nobody still in HR lost access.
    assert all(len(users) == 1 for users in after_storm.values())
    staying = {str(5000 + i) for i in STAYING}
    assert all(after_storm[person][0].enabled for person in staying)
    # N6: what the journal says was applied is in Keycloak.
    for subject, action, outcome in items:
        if outcome == "applied":
            assert applied_in_keycloak(after_storm, subject, action), (subject, action)

    status, _ = run_through(setup, keycloak_connection.url, [])

    assert status == "succeeded"
    converged = managed(gateway, realm)
    assert sorted(converged) == sorted(str(5000 + i) for i in [*STAYING, *LEAVING, *JOINING])
    assert {person for person, user in converged.items() if not user.enabled} == {str(5000 + i) for i in LEAVING}
    assert all(converged[str(5000 + i)].last_name == f"Renamed{i}" for i in RENAMED)
    assert nothing_left_to_do(setup)


def users_by_external_id(gateway: KeycloakGateway, realm: str) -> dict[str, list[User]]:
    found: dict[str, list[User]] = {}
    for user in gateway.list_users_with_attribute(realm, SOURCE_ATTRIBUTE, SYNC):
        found.setdefault(user.attributes[EXTERNAL_ID_ATTRIBUTE][0], []).append(user)
    return found


def applied_in_keycloak(users: dict[str, list[User]], subject: str, action: str) -> bool:
    by_username = {found[0].username: found[0] for found in users.values()}
    user = by_username.get(subject)
    if action == "create":
        return user is not None
    if action == "disable":
        return user is not None and not user.enabled
    if action == "update":
        index = int(subject.removeprefix("person"))
        return user is not None and (index not in RENAMED or user.last_name == f"Renamed{index}")
    return user is not None


def nothing_left_to_do(setup: SyncSetup) -> bool:
    config = hr_after(setup)
    gateway = KeycloakGateway.connect(setup.connection)
    try:
        with open_store(config.store) as store:
            prepared = prepare_sync(config, config.sync(SYNC), gateway, store, now=NOW, env={}, full_read=True)
        return prepared.plan.is_empty
    finally:
        gateway.close()
