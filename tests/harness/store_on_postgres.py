"""A pytest plugin that runs store-level tests written for SQLite against PostgreSQL, unchanged:

    .venv/bin/pytest -p tests.harness.store_on_postgres tests/unit/test_store_sanctions.py

Every `sqlite:///PATH` store a test opens becomes a fresh database on a real PostgreSQL started for the
session (one database per path, so reopening a path reopens the same store). A portability check for
new store areas and migrations; tests that read the SQLite file directly fail under it by design.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.store import db as store_db
from agent.store.clock import Clock, system_clock
from agent.store.connection import Database
from agent.store.postgres import PostgresDatabase
from tests.harness.postgres import PostgresServer, postgres_session


@pytest.fixture(scope="session", autouse=True)
def _stores_on_postgres() -> Iterator[None]:
    sessions = postgres_session()
    server: PostgresServer = next(sessions)
    databases: dict[str, str] = {}
    real_open_database = store_db.open_database

    def open_database(url: str, *, now: Clock = system_clock) -> Database:
        if not url.startswith(store_db.SQLITE_PREFIX):
            return real_open_database(url, now=now)
        if url not in databases:
            databases[url] = server.create_database("redirected")
        return PostgresDatabase(databases[url], now=now)

    store_db.open_database = open_database
    try:
        yield
    finally:
        store_db.open_database = real_open_database
        for _ in sessions:  # runs the generator's cleanup: stops the server
            pass
