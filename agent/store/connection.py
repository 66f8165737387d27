"""Connections and transactions: one connection per thread, explicit BEGIN/COMMIT, `?` placeholders.

`Database` is the interface every store area (runs, journal, ...) uses; `SqliteDatabase` here and
`agent.store.postgres.PostgresDatabase` implement it with the same transaction semantics: a write
transaction holds the store's single writer lock from BEGIN to COMMIT, so a read-then-write never acts on
a stale row and writers (threads, processes, machines) never interleave; a read transaction sees one
consistent snapshot.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.store.clock import Clock, system_clock
from agent.store.errors import StoreConflict, StoreError

Param = str | int | float | None
Row = Mapping[str, Param]

BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another writer before the store reports busy
WAL_RETRY_FIRST_PAUSE = 0.005  # seconds; doubled after each refused switch to WAL, up to the next
WAL_RETRY_MAX_PAUSE = 0.1


@dataclass(frozen=True)
class Dialect:
    """What differs between backends: the placeholder, how a transaction starts, and the row lock suffix."""

    name: str
    placeholder: str
    begin_write: str  # starts a transaction that holds (or, on PostgreSQL, is followed by) the writer lock
    for_update: str  # appended to a SELECT whose rows the transaction will update
    begin_read: str = "BEGIN"  # starts a transaction whose reads all see one snapshot

    def sql(self, text: str) -> str:
        """`text` with `?` placeholders rewritten for the driver. psycopg reads `%` as the start of a
        placeholder, so a literal `%` (as in LIKE 'a%') is doubled there; it always gets parameters."""
        if self.placeholder == "?":
            return text
        return text.replace("%", "%%").replace("?", self.placeholder)


SQLITE = Dialect("sqlite", "?", "BEGIN IMMEDIATE", "")
# READ COMMITTED for writers: each statement sees what was committed before it, and the writer lock taken
# right after BEGIN means nothing else commits in between. REPEATABLE READ for readers: one snapshot, as
# SQLite's WAL gives (journal verify reads the head and every entry and must see them agree).
POSTGRESQL = Dialect(
    "postgresql",
    "%s",
    "BEGIN ISOLATION LEVEL READ COMMITTED",
    " FOR UPDATE",
    "BEGIN ISOLATION LEVEL REPEATABLE READ",
)


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses (sqlite3's and psycopg's both fit)."""

    @property
    def description(self) -> Sequence[Sequence[Any]] | None: ...

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Param], /) -> object: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Param]], /) -> object: ...

    def __iter__(self) -> Iterator[Sequence[Any]]: ...

    def close(self) -> None: ...


ErrorTranslator = Callable[[str], AbstractContextManager[None]]


class Transaction:
    """Statements inside one transaction; made only by `Database.transaction`."""

    def __init__(
        self,
        cursor: Callable[[], Cursor],
        dialect: Dialect,
        where: str,
        errors: ErrorTranslator,
        stream: Callable[[], Cursor] | None = None,
    ) -> None:
        self._cursor = cursor
        self._stream = stream or cursor
        self.dialect = dialect
        self._where = where
        self._errors = errors
        self._open: list[Cursor] = []  # cursors of unfinished reads, closed when the transaction ends

    def execute(self, sql: str, params: Sequence[Param] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        with self._errors(self._where):
            cursor = self._cursor()
            cursor.execute(self.dialect.sql(sql), tuple(params))
            return cursor.rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[Param]]) -> None:
        if not rows:
            return  # psycopg refuses an empty batch; there is nothing to do anyway
        with self._errors(self._where):
            self._cursor().executemany(self.dialect.sql(sql), [tuple(row) for row in rows])

    def query(self, sql: str, params: Sequence[Param] = ()) -> list[Row]:
        return list(self._rows(self._cursor, sql, params))

    def query_one(self, sql: str, params: Sequence[Param] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def iterate(self, sql: str, params: Sequence[Param] = ()) -> Iterator[Row]:
        """Rows of a SELECT one at a time, fetched in batches (for long reads such as verifying the whole
        journal): memory stays flat however many rows there are."""
        return self._rows(self._stream, sql, params)

    def _rows(self, make_cursor: Callable[[], Cursor], sql: str, params: Sequence[Param]) -> Iterator[Row]:
        with self._errors(self._where):
            cursor = make_cursor()
            self._open.append(cursor)
            try:
                cursor.execute(self.dialect.sql(sql), tuple(params))
                description = cursor.description or ()
                names = [column[0] for column in description]
                for values in cursor:
                    yield dict(zip(names, values, strict=True))
            finally:
                self._close(cursor)

    def close_cursors(self) -> None:
        """Close what unfinished reads left open, while their transaction still exists (a server-side cursor
        closed later would be looked for in whatever transaction the connection is in by then)."""
        for cursor in list(self._open):
            self._close(cursor)

    def _close(self, cursor: Cursor) -> None:
        if cursor in self._open:
            self._open.remove(cursor)
            cursor.close()


class Database(ABC):
    """A store reached through per-thread connections; `now` is the clock every module stamps with.

    Thread-safety: a Database may be shared by threads; each thread gets its own connection on first use
    (neither sqlite3 nor psycopg connections may be used by two threads at once), and `close()` closes them
    all. Transactions do not nest. See the module docstring for the transaction semantics.

    Portability: SQL in this package uses `?` placeholders and never a literal `?`; `Dialect` rewrites them
    (psycopg wants `%s`) and names the few statements that differ between backends.
    """

    dialect: Dialect  # connections are the driver's own type, hence Any in the hooks below

    def __init__(self, name: str, *, now: Clock = system_clock) -> None:
        self.name = name  # how messages name the store: its file, or its URL without credentials
        self._now = now
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the list of connections, not the database
        self._connections: list[Any] = []
        self._closed = False

    @property
    def path(self) -> Path | None:
        """The store's file, for a file-based backend."""
        return None

    def now(self) -> datetime:
        moment = self._now()
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise StoreError("the store's clock returned a naive datetime; it must be timezone-aware")
        return moment.astimezone(UTC)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One write transaction for everything the block does on this thread through the store (a record and
        the journal entry that tells of it, say): all of it is committed when the block ends, or none. Inside,
        each of the store's own transactions is a savepoint, so one that fails (a unique key drawn twice, and
        retried) is undone alone, as it would be on its own; an atomic block inside another is one too."""
        if getattr(self._local, "joined", None) is not None:
            with self.transaction(write=True):
                yield
            return
        with self.transaction(write=True) as joined:
            self._local.joined = joined
            try:
                yield
            finally:
                self._local.joined = None

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Transaction]:
        """One transaction, committed when the block ends and rolled back if it raises. `write=True` takes the
        writer lock at BEGIN. Transactions do not nest: a second one on the same thread is a bug, except in an
        `atomic` block, where it is a savepoint of the block's transaction."""
        joined: Transaction | None = getattr(self._local, "joined", None)
        if joined is not None:
            with self._savepoint(joined):
                yield joined
            return
        if getattr(self._local, "active", False):
            raise StoreError("a store transaction is already open on this thread; they do not nest")
        connection = self._connection()
        where = f"store {self.name}"
        with self.errors(where):
            self._begin(connection, write=write)
        self._local.active = True
        transaction = Transaction(
            lambda: self._cursor(connection),
            self.dialect,
            where,
            self.errors,
            stream=lambda: self._stream_cursor(connection),
        )
        try:
            yield transaction
            with self.errors(where):
                transaction.close_cursors()
                self._commit(connection)
        except BaseException:
            with suppress(Exception):  # the rollback below matters, not a cursor that cannot close
                transaction.close_cursors()
            self._rollback(connection)
            raise
        finally:
            self._local.active = False

    @contextmanager
    def _savepoint(self, transaction: Transaction) -> Iterator[None]:
        """A savepoint of the open transaction: released when the block ends, rolled back to if it raises."""
        depth = getattr(self._local, "savepoints", 0) + 1
        self._local.savepoints = depth
        name = f"idp_agent_{depth}"  # fixed text and a number: nothing from outside goes into the SQL
        try:
            transaction.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                with suppress(Exception):  # the error that got here matters more than a failed undo
                    transaction.execute(f"ROLLBACK TO SAVEPOINT {name}")
                raise
            transaction.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            self._local.savepoints = depth - 1

    def close(self) -> None:
        """Close every thread's connection; the Database cannot be used afterwards."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            self._close(connection)

    def _connection(self) -> Any:
        connection: Any = getattr(self._local, "connection", None)
        if self._closed:
            raise StoreError(f"store {self.name} is closed")
        if connection is not None and self._broken(connection):
            # The server went away (restart, failover): forget this connection and open a new one.
            self._forget(connection)
            connection = None
        if connection is None:
            connection = self._register(self._connect())
            self._local.connection = connection
        return connection

    def _register(self, connection: Any) -> Any:
        with self._lock:
            if self._closed:
                self._close(connection)
                raise StoreError(f"store {self.name} is closed")
            self._connections.append(connection)
        return connection

    def _forget(self, connection: Any) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
        self._local.connection = None
        self._close(connection)

    @abstractmethod
    def errors(self, where: str) -> AbstractContextManager[None]:
        """Driver errors as StoreError (StoreConflict for a violated constraint), naming no value bound."""

    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    def _cursor(self, connection: Any) -> Cursor: ...

    def _stream_cursor(self, connection: Any) -> Cursor:
        """A cursor that fetches a SELECT's rows in batches; SQLite's steps through them anyway."""
        return self._cursor(connection)

    @abstractmethod
    def _begin(self, connection: Any, *, write: bool) -> None: ...

    @abstractmethod
    def _commit(self, connection: Any) -> None: ...

    @abstractmethod
    def _rollback(self, connection: Any) -> None:
        """Roll back if a transaction is still open; never raise over the error that caused it."""

    @abstractmethod
    def _broken(self, connection: Any) -> bool: ...

    @abstractmethod
    def _close(self, connection: Any) -> None: ...


class SqliteDatabase(Database):
    """A SQLite file. Writers are serialised by SQLite itself: a write transaction starts with
    `BEGIN IMMEDIATE`, which takes the single write lock up front (waiting up to the busy timeout), so
    threads or processes never interleave writes, and a read-then-write inside one transaction never acts on
    a stale snapshot."""

    dialect = SQLITE

    def __init__(self, path: Path, *, now: Clock = system_clock) -> None:
        super().__init__(str(path), now=now)
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    def errors(self, where: str) -> AbstractContextManager[None]:
        return translate_errors(where)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module opens no transaction by itself; we BEGIN and COMMIT.
        # check_same_thread=False only so that close() may close it from another thread; each connection is
        # otherwise used by the thread that made it.
        with translate_errors(f"store {self.name}"):
            connection = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            try:
                configure(connection)
            except BaseException:
                connection.close()
                raise
        return connection

    def _cursor(self, connection: sqlite3.Connection) -> Cursor:
        return connection.cursor()

    def _begin(self, connection: sqlite3.Connection, *, write: bool) -> None:
        connection.execute(self.dialect.begin_write if write else self.dialect.begin_read)

    def _commit(self, connection: sqlite3.Connection) -> None:
        connection.execute("COMMIT")

    def _rollback(self, connection: sqlite3.Connection) -> None:
        # SQLite may have rolled back already (some errors end the transaction); ROLLBACK would then fail
        # and hide the error that matters.
        if connection.in_transaction:
            connection.execute("ROLLBACK")

    def _broken(self, connection: sqlite3.Connection) -> bool:
        return False

    def _close(self, connection: sqlite3.Connection) -> None:
        connection.close()


def configure(connection: sqlite3.Connection) -> None:
    """WAL (readers never block the writer), foreign keys on, and a busy timeout instead of failing at once."""
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = switch_to_wal(connection)
    if str(mode).lower() != "wal":
        raise StoreError(f"SQLite refused WAL mode (got {mode}); the store needs a file on a local disk")
    # FULL: a commit is on disk before the call returns, so a journal entry survives a power cut as well as
    # a killed agent (NORMAL in WAL mode may lose the last commits on power loss).
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")


def switch_to_wal(connection: sqlite3.Connection, timeout_seconds: float = BUSY_TIMEOUT_MS / 1000) -> str:
    """`PRAGMA journal_mode = WAL`, retried for up to the busy timeout. Switching a new file to WAL needs an
    exclusive lock, and while another connection writes (several processes opening one new store together)
    SQLite answers "database is locked" at once instead of calling the busy handler."""
    deadline = time.monotonic() + timeout_seconds
    pause = WAL_RETRY_FIRST_PAUSE
    while True:
        try:
            return str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, WAL_RETRY_MAX_PAUSE)


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
