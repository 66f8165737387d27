"""The store's backends for tests: a SQLite file in tmp_path, or a fresh database on the session's PostgreSQL.

Tests written against `StoreBackend` run on both (the `store_backend` fixture is parametrized; its
PostgreSQL variant is an integration test). `execute` changes the store from outside the agent, as someone
with write access would, for tamper tests; `rows` reads it back raw.
"""

from __future__ import annotations

import itertools
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from agent.store.connection import POSTGRESQL
from tests.harness.postgres import PostgresServer

Statement = str | tuple[str, Sequence[Any]]


def _split(statement: Statement) -> tuple[str, Sequence[Any]]:
    return (statement, ()) if isinstance(statement, str) else statement


class StoreBackend(ABC):
    """One backend for one test. SQL given here uses `?` placeholders, as the store's own does."""

    name: str

    @property
    @abstractmethod
    def url(self) -> str:
        """The test's store (the same on every call)."""

    @abstractmethod
    def fresh_url(self) -> str:
        """Another, empty store."""

    @abstractmethod
    def execute(self, *statements: Statement, url: str | None = None, around_triggers: bool = False) -> None:
        """Run statements in one transaction outside the agent; `around_triggers` switches the journal's
        append-only triggers off first (they stay off)."""

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = (), *, url: str | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def tables(self, url: str | None = None) -> set[str]: ...

    @abstractmethod
    def cleanup(self) -> None:
        """Remove what the test made outside tmp_path."""


@dataclass
class SqliteBackend(StoreBackend):
    directory: Path
    name = "sqlite"
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.directory / 'store.db'}"

    def fresh_url(self) -> str:
        return f"sqlite:///{self.directory / f'store-{next(self._numbers)}.db'}"

    def _path(self, url: str | None) -> Path:
        return Path((url or self.url).removeprefix("sqlite:///"))

    def execute(self, *statements: Statement, url: str | None = None, around_triggers: bool = False) -> None:
        with sqlite3.connect(self._path(url)) as raw:
            if around_triggers:
                raw.execute("DROP TRIGGER IF EXISTS journal_no_update")
                raw.execute("DROP TRIGGER IF EXISTS journal_no_delete")
            for statement in statements:
                raw.execute(*_split(statement))
        raw.close()

    def rows(self, sql: str, params: Sequence[Any] = (), *, url: str | None = None) -> list[dict[str, Any]]:
        with sqlite3.connect(self._path(url)) as raw:
            raw.row_factory = sqlite3.Row
            found = [dict(row) for row in raw.execute(sql, params)]
        raw.close()
        return found

    def tables(self, url: str | None = None) -> set[str]:
        return {row["name"] for row in self.rows("SELECT name FROM sqlite_master WHERE type = 'table'", url=url)}

    def cleanup(self) -> None:
        pass  # everything is in tmp_path


@dataclass
class PostgresBackend(StoreBackend):
    server: PostgresServer
    name = "postgresql"
    _url: str | None = None
    _made: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self.fresh_url()
        return self._url

    def fresh_url(self) -> str:
        made = self.server.create_database()
        self._made.append(made)
        return made

    def cleanup(self) -> None:
        for url in self._made:
            self.server.drop_database(url)

    def execute(self, *statements: Statement, url: str | None = None, around_triggers: bool = False) -> None:
        with psycopg.connect(url or self.url) as raw:  # one transaction, committed on leaving the block
            if around_triggers:
                raw.execute("ALTER TABLE journal DISABLE TRIGGER USER")
            for statement in statements:
                sql, params = _split(statement)
                raw.execute(POSTGRESQL.sql(sql), tuple(params))

    def rows(self, sql: str, params: Sequence[Any] = (), *, url: str | None = None) -> list[dict[str, Any]]:
        with psycopg.connect(url or self.url, row_factory=dict_row) as raw:
            return raw.execute(POSTGRESQL.sql(sql), tuple(params)).fetchall()

    def tables(self, url: str | None = None) -> set[str]:
        found = self.rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()", url=url
        )
        return {row["table_name"] for row in found}
