"""Connections and transactions: one SQLite connection per thread, explicit BEGIN/COMMIT, `?` placeholders."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.store.clock import Clock, system_clock
from agent.store.errors import StoreConflict, StoreError

Param = str | int | float | None
Row = Mapping[str, Param]

BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another writer before the store reports busy


@dataclass(frozen=True)
class Dialect:
    """What differs between backends. PostgreSQL will be `Dialect("postgresql", "%s", "BEGIN", " FOR UPDATE")`."""

    name: str
    placeholder: str
    begin_write: str  # starts a transaction that holds the write lock from its first statement
    for_update: str  # appended to a SELECT whose rows the transaction will update

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = Dialect("sqlite", "?", "BEGIN IMMEDIATE", "")


class Transaction:
    """Statements inside one transaction; made only by `Database.transaction`."""

    def __init__(self, connection: sqlite3.Connection, dialect: Dialect, where: str) -> None:
        self._connection = connection
        self.dialect = dialect
        self._where = where

    def execute(self, sql: str, params: Sequence[Param] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        with translate_errors(self._where):
            return self._connection.execute(self.dialect.sql(sql), params).rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[Param]]) -> None:
        with translate_errors(self._where):
            self._connection.executemany(self.dialect.sql(sql), rows)

    def query(self, sql: str, params: Sequence[Param] = ()) -> list[Row]:
        return list(self.iterate(sql, params))

    def query_one(self, sql: str, params: Sequence[Param] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def iterate(self, sql: str, params: Sequence[Param] = ()) -> Iterator[Row]:
        """Rows one at a time (for long reads such as verifying the whole journal)."""
        with translate_errors(self._where):
            cursor = self._connection.execute(self.dialect.sql(sql), params)
            names = [column[0] for column in cursor.description]
            for values in cursor:
                yield dict(zip(names, values, strict=True))


class Database:
    """A SQLite file reached through per-thread connections; `now` is the clock every module stamps with.

    Thread-safety: a Database may be shared by threads; each thread gets its own connection on first use
    (sqlite3 connections must not be shared), and `close()` closes them all. Writers are serialised by
    SQLite itself: a write transaction starts with `BEGIN IMMEDIATE`, which takes the single write lock up
    front (waiting up to the busy timeout), so threads or processes never interleave writes, and a
    read-then-write inside one transaction never acts on a stale snapshot.

    Portability: SQL in this package uses `?` placeholders and never a literal `?`; `Dialect` rewrites them
    (psycopg wants `%s`) and names the few statements that differ between backends.
    """

    def __init__(self, path: Path, *, now: Clock = system_clock) -> None:
        self.path = path
        self.dialect = SQLITE
        self._now = now
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the list of connections, not the database
        self._connections: list[sqlite3.Connection] = []
        self._closed = False

    def now(self) -> datetime:
        moment = self._now()
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise StoreError("the store's clock returned a naive datetime; it must be timezone-aware")
        return moment.astimezone(UTC)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Transaction]:
        """One transaction, committed when the block ends and rolled back if it raises. `write=True` takes the
        write lock at BEGIN. Transactions do not nest: a second one on the same thread is a bug."""
        connection = self._connection()
        if getattr(self._local, "active", False):
            raise StoreError("a store transaction is already open on this thread; they do not nest")
        where = f"store {self.path}"
        with translate_errors(where):
            connection.execute(self.dialect.begin_write if write else "BEGIN")
        self._local.active = True
        try:
            yield Transaction(connection, self.dialect, where)
            with translate_errors(where):
                connection.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (some errors end the transaction); ROLLBACK would then fail
            # and hide the error that matters.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            self._local.active = False

    def close(self) -> None:
        """Close every thread's connection; the Database cannot be used afterwards."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module opens no transaction by itself; we BEGIN and COMMIT.
        # check_same_thread=False only so that close() may close it from another thread; each connection is
        # otherwise used by the thread that made it.
        where = f"store {self.path}"
        with translate_errors(where):
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            try:
                configure(connection)
            except BaseException:
                connection.close()
                raise
        with self._lock:
            if self._closed:
                connection.close()
                raise StoreError(f"store {self.path} is closed")
            self._connections.append(connection)
        return connection


def configure(connection: sqlite3.Connection) -> None:
    """WAL (readers never block the writer), foreign keys on, and a busy timeout instead of failing at once."""
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"SQLite refused WAL mode (got {mode}); the store needs a file on a local disk")
    # FULL: a commit is on disk before the call returns, so a journal entry survives a power cut as well as
    # a killed agent (NORMAL in WAL mode may lose the last commits on power loss).
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """sqlite3 errors as StoreError; SQLite's messages name tables and columns, never the values bound."""
    try:
        yield
    except sqlite3.IntegrityError as error:
        raise StoreConflict(f"{where}: {error}") from error
    except sqlite3.Error as error:
        raise StoreError(f"{where}: {error}") from error


def text(row: Row, column: str) -> str:
    value = row[column]
    if not isinstance(value, str):
        raise StoreError(f"column {column} holds {type(value).__name__}, expected text")
    return value


def optional_text(row: Row, column: str) -> str | None:
    return None if row[column] is None else text(row, column)


def integer(row: Row, column: str) -> int:
    value = row[column]
    if not isinstance(value, int):
        raise StoreError(f"column {column} holds {type(value).__name__}, expected an integer")
    return value
