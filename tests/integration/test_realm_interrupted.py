"""S16 (small): the k-th write of an apply fails, for every k; the next run converges, nothing half-done stays.

The fault proxy answers 503 to the k-th write (a POST is then not retried) or drops the connection after
Keycloak committed it (the answer is lost); either way the re-run must finish the job with no duplicates.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest

from agent.errors import Unavailable
from agent.keycloak import KeycloakGateway, RetryPolicy
from agent.realm.engine import apply_plan, plan_realm
from agent.realm.spec import RealmSpec
from agent.settings import KeycloakConnection
from tests.conftest import realm_name_for
from tests.harness.fault_proxy import Fault, FaultProxy
from tests.harness.realm_steps import apply_and_converge, spec_of

NO_WAIT = RetryPolicy(max_attempts=2, base_seconds=0.0, cap_seconds=0.0)


def small_realm(name: str) -> RealmSpec:
    return spec_of(
        {
            "realm": name,
            "display_name": "Interrupted",
            "roles": [{"name": "user"}, {"name": "premium", "composites": {"realm": ["user"]}}, {"name": "admin"}],
            "groups": [
                {"path": "/customers", "realm_roles": ["user"]},
                {"path": "/staff/admins", "realm_roles": ["admin"]},
            ],
            "default_roles": ["user"],
            "default_groups": ["/customers"],
        }
    )


def count_writes(connection: KeycloakConnection, gateway: KeycloakGateway) -> int:
    name = realm_name_for("count")
    counter = KeycloakGateway.connect(connection)
    try:
        apply_plan(counter, plan_realm(counter, small_realm(name)))
        return counter.stats.writes
    finally:
        counter.close()
        gateway.delete_realm(name)


@pytest.mark.parametrize("fault_kind", ["status", "reset_after"])
def test_every_interrupted_apply_converges_on_the_next_run(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, fault_kind: str
) -> None:
    total = count_writes(keycloak_connection, gateway)
    assert total >= 12
    with FaultProxy(keycloak_connection.url) as proxy:
        for k in range(1, total + 1):
            name = realm_name_for(f"k{k}-{fault_kind}")
            spec = small_realm(name)
            # 503 from the k-th write on: the run stops there. A lost answer: only the k-th write is hit.
            times = 1000 if fault_kind == "status" else 1
            proxy.add(Fault(fault_kind, r"^/admin/realms", method="WRITE", skip=k - 1, times=times))  # type: ignore[arg-type]
            faulty = KeycloakGateway.connect(replace(keycloak_connection, url=proxy.url), retry=NO_WAIT)
            try:
                with contextlib.suppress(Unavailable):  # the run stops; the next one must finish it
                    result = apply_plan(faulty, plan_realm(faulty, spec))
                    assert fault_kind == "reset_after" and result.ok
                apply_and_converge(keycloak_connection, spec)
                assert [role.name for role in gateway.list_realm_roles(name)].count("user") == 1
                assert len([g for g in gateway.list_groups(name) if g.path == "/staff/admins"]) == 1
            finally:
                faulty.close()
                proxy.state.faults.clear()
                if gateway.get_realm(name) is not None:
                    gateway.delete_realm(name)
