"""A real PostgreSQL server for the test session (agent/stack/postgres.py), installed on first use.

Throwaway settings (no fsync), so a fresh database per test stays cheap; the password is a random one
per server, so the store's password handling is really exercised.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.stack.postgres import THROWAWAY_SETTINGS, PostgresServer, pg_binary
from tests.harness.debian import apt_install

__all__ = ["PostgresServer", "postgres_session"]


def _installed() -> bool:
    return pg_binary("initdb") is not None and pg_binary("postgres") is not None


def postgres_session() -> Iterator[PostgresServer]:
    """The body of the session fixture: one server, started on first use and stopped at the end."""
    if not _installed():
        problem = apt_install(("postgresql",))
        if not _installed():
            pytest.fail(f"PostgreSQL is not installed and could not be ({problem}): apt-get install postgresql")
    server = PostgresServer(settings=THROWAWAY_SETTINGS)
    try:
        server.start()
        yield server
    finally:
        server.stop()
