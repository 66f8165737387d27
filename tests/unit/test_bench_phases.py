"""sync_bench times run_sync by patching the functions and gateway calls it names: each name must still exist,
or the bench's agent arms fail when the sync's code moves."""

from __future__ import annotations

import pytest

from agent.keycloak import KeycloakGateway
from agent.sync import runner
from benchmarks.sync_bench import GATEWAY_PHASES, GATEWAY_READ_PHASES, RUNNER_PHASES


@pytest.mark.parametrize("name", sorted(RUNNER_PHASES))
def test_each_timed_phase_of_the_runner_is_a_function_it_calls(name: str) -> None:
    assert callable(getattr(runner, name, None))


@pytest.mark.parametrize("name", sorted({*GATEWAY_PHASES, *GATEWAY_READ_PHASES}))
def test_each_timed_gateway_call_is_a_method_of_the_gateway(name: str) -> None:
    assert callable(getattr(KeycloakGateway, name, None))
