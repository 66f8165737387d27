"""The environment a CLI run in a test gets: the test's Keycloak, never whatever stack happens to run.

Without it a command falls back to the local stack of the default state dir (the demo's), which a CI
machine does not have and a developer's machine may have with other data.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.settings import KeycloakConnection

REPO = Path(__file__).resolve().parents[2]


def keycloak_env(connection: KeycloakConnection, url: str | None = None) -> dict[str, str]:
    """Only the KEYCLOAK_* variables that point a command at `connection` (for click's CliRunner)."""
    assert connection.password is not None
    return {
        "KEYCLOAK_URL": url or connection.url,
        "KEYCLOAK_ADMIN_USER": connection.username or "",
        "KEYCLOAK_ADMIN_PASSWORD": connection.password.reveal(),
    }


def cli_env(connection: KeycloakConnection, url: str | None = None, **extra: str) -> dict[str, str]:
    """A whole environment for a CLI subprocess: ours, minus any other KEYCLOAK_* settings, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEYCLOAK_")}
    env.update(keycloak_env(connection, url), PYTHONPATH=str(REPO), **extra)
    return env
