"""Where the test session's real Keycloak comes from: the local stack, or testcontainers with Docker."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.stack.keycloak import KEYCLOAK_VERSION

# The same version as the local stack: pinned once, in agent/stack/keycloak.py.
CONTAINER_IMAGE = f"quay.io/keycloak/keycloak:{KEYCLOAK_VERSION}"


def _echo(line: str) -> None:
    print(f"[stack] {line}")


def local_stack(state_dir: Path, components: tuple[str, ...]) -> Iterator[None]:
    """The local stack (real Keycloak and/or slapd) through `agent.stack`; started, and stopped at the end,
    only when it was not already running (set IDP_TEST_KEEP_STACK=1 to leave it up for the next run)."""
    from agent import stack

    current = stack.status(state_dir)
    running = {
        "keycloak": bool(current.keycloak and current.keycloak.running),
        "ldap": bool(current.ldap and current.ldap.running),
    }
    missing = tuple(component for component in components if not running[component])
    if missing:
        stack.up(state_dir, components=missing, echo=_echo)
    try:
        yield None
    finally:
        if missing and os.environ.get("IDP_TEST_KEEP_STACK") != "1":
            stack.down(state_dir, echo=_echo)


def _docker_available() -> bool:
    try:
        docker: Any = importlib.import_module("docker")  # comes with testcontainers
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
