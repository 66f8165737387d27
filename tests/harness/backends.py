"""Where the test session's real Keycloak comes from: the local stack, or testcontainers with Docker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.secrets import Secret
from agent.settings import KeycloakConnection

CONTAINER_IMAGE = "quay.io/keycloak/keycloak:26.3"


def local_stack_keycloak(state_dir: Path) -> Iterator[KeycloakConnection]:
    """The local stack's Keycloak; started (and stopped afterwards) only if it was not running."""
    from agent import stack

    was_running = stack.running_keycloak_connection(state_dir) is not None
    if not was_running:
        stack.up(state_dir, components=("keycloak",), echo=lambda line: print(f"[stack] {line}"))
    connection = stack.running_keycloak_connection(state_dir)
    assert connection is not None, f"local stack in {state_dir} did not come up"
    try:
        yield connection
    finally:
        if not was_running and os.environ.get("IDP_TEST_KEEP_STACK") != "1":
            stack.down(state_dir, echo=lambda line: print(f"[stack] {line}"))


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:  # noqa: BLE001 - any failure here means "no usable Docker engine"
        return False
    return True


def containers_keycloak() -> Iterator[KeycloakConnection]:
    """A Keycloak container via testcontainers; skips (with the reason) when no Docker engine answers."""
    if not _docker_available():
        pytest.skip("IDP_TEST_BACKEND=containers but no Docker engine is reachable")
    from testcontainers.keycloak import KeycloakContainer

    with KeycloakContainer(CONTAINER_IMAGE) as container:
        yield KeycloakConnection(
            url=container.get_url().rstrip("/"),
            username=container.username,
            password=Secret(container.password),
        )
