"""The store on PostgreSQL (psycopg 3): `postgresql://user@host:port/db`, the password from the URL, from
PGPASSWORD or from the file PGPASSWORD_FILE names (also ~/.pgpass, read by libpq).

Same semantics as SQLite (see agent.store.connection): every write transaction takes one transaction-level
advisory lock right after BEGIN (the equivalent of SQLite's BEGIN IMMEDIATE), so writers from any number of
processes and machines are serialised and a read-then-write never acts on a stale row; read transactions
are REPEATABLE READ, one snapshot each.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import SplitResult, urlsplit

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper
from psycopg.conninfo import conninfo_to_dict

from agent.errors import ConfigError
from agent.secrets import read_secret
from agent.store.clock import Clock, system_clock
from agent.store.connection import BUSY_TIMEOUT_MS, POSTGRESQL, Cursor, Database
from agent.store.errors import StoreConflict, StoreError

POSTGRES_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10
STREAM_BATCH_ROWS = 2_000  # rows per round trip when a long read is streamed (Transaction.iterate)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (pg_advisory_lock takes a bigint). sha256, not PostgreSQL's
    hashtext: the key must not change with the server's version, and 64 bits make collisions negligible."""
    digest = hashlib.sha256(f"idp-agent:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# The store's single writer lock. Advisory locks are per database, so stores in other databases of the
# same server do not share it.
WRITER_KEY = advisory_key("store-writer")


# Said instead of a URL that does not split cleanly: its parts may hold pieces of the password.
URL_NOT_SHOWN = "(URL not shown: it does not parse)"
LIBPQ_CANNOT_PARSE = "the store URL cannot be parsed by libpq (its text is not shown: it may hold the password)"
URL_HINT = (
    "write postgresql://user@host:5432/db; percent-encode / ? # @ : and spaces in a password (/ is %2F), "
    "or give the password in PGPASSWORD_FILE"
)


def describe_url(url: str) -> str:
    """The URL as messages may show it: scheme, host, port and database; never the user info or the query
    (either may carry a password), nor any part of a URL that does not parse (`svc:pa/ss@db` splits the
    password into host, port and path)."""
    scheme = url.partition(":")[0].lower()
    shown_scheme = scheme if scheme in POSTGRES_SCHEMES else POSTGRES_SCHEMES[0]
    parts = _clean_split(url)
    if parts is None:
        return f"{shown_scheme}://{URL_NOT_SHOWN}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _clean_split(url: str) -> SplitResult | None:
    """The URL's parts, or None when they may hold pieces of the user info: an '@' after the netloc means a
    '/', '?' or '#' in the password ended the netloc early; a port that is not a number may be the password."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises on a port that is not a number
    except ValueError:
        return None
    if "@" in parts.path + parts.query + parts.fragment:
        return None
    return parts


def check_url(url: str) -> None:
    scheme = url.partition(":")[0].lower()
    if scheme not in POSTGRES_SCHEMES or not url[len(scheme) :].startswith("://"):
        raise ConfigError(
            f"store URL with scheme '{scheme}' is not a PostgreSQL URL", hint="write postgresql://user@host:5432/db"
        )
    if _clean_split(url) is None:
        raise ConfigError(
            "the store URL does not parse (an invalid port, or an '@' after a '/', '?' or '#'); "
            "it is not shown: it may hold the password",
            hint=URL_HINT,
        )
    try:
        conninfo_to_dict(url)
    except psycopg.Error:
        raise ConfigError(LIBPQ_CANNOT_PARSE, hint=URL_HINT) from None


def connect_arguments(url: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for psycopg.connect besides the URL: the password from PGPASSWORD(_FILE) when the
    URL has none (libpq would read PGPASSWORD itself, but not a _FILE), a name and timeouts."""
    arguments: dict[str, Any] = {
        "autocommit": True,  # we send BEGIN and COMMIT ourselves, as with SQLite
        "application_name": "idp-agent",
        "connect_timeout": CONNECT_TIMEOUT_S,
        # The SQLite busy timeout's equivalent: a writer waits this long for the writer lock, then fails.
        "options": f"-c lock_timeout={BUSY_TIMEOUT_MS}",
    }
    if urlsplit(url).password is None:
        secret = read_secret(env, "PGPASSWORD")
        if secret is not None:
            arguments["password"] = secret.reveal()
    return arguments


def open_connection(url: str, arguments: Mapping[str, Any]) -> psycopg.Connection[Any]:
    """psycopg.connect, with libpq's conninfo parse errors replaced by a fixed one: libpq quotes the text it
    cannot parse, which may be the password."""
    try:
        return psycopg.connect(url, **arguments)
    except psycopg.ProgrammingError:
        raise psycopg.ProgrammingError(LIBPQ_CANNOT_PARSE) from None


class FlagAsInteger(Dumper):
    """True/False bound as 1/0, as sqlite3 binds them: the store's flags are INTEGER columns (SQLite has no
    boolean type), and PostgreSQL refuses a boolean where an integer is expected."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class PostgresDatabase(Database):
    """A PostgreSQL database; connections open on first use in each thread, and again after the server
    dropped one (a restart), between transactions."""

    dialect = POSTGRESQL

    def __init__(self, url: str, *, now: Clock = system_clock, env: Mapping[str, str] | None = None) -> None:
        check_url(url)
        super().__init__(describe_url(url), now=now)
        self._url = url
        self._arguments = connect_arguments(url, os.environ if env is None else env)
        self._cursor_numbers = itertools.count()

    def errors(self, where: str) -> AbstractContextManager[None]:
        return translate_errors(where)

    def connect_dedicated(self, **overrides: Any) -> psycopg.Connection[Any]:
        """A connection of its own, outside the per-thread ones (agent.store.locks holds a lock on it); the
        caller closes it. Raises psycopg errors: wrap in translate_errors."""
        return open_connection(self._url, {**self._arguments, **overrides})

    def _connect(self) -> psycopg.Connection[Any]:
        with translate_errors(f"store {self.name}"):
            connection = open_connection(self._url, self._arguments)
        connection.adapters.register_dumper(bool, FlagAsInteger)
        return connection

    def _cursor(self, connection: psycopg.Connection[Any]) -> Cursor:
        return connection.cursor()

    def _stream_cursor(self, connection: psycopg.Connection[Any]) -> Cursor:
        # A server-side cursor (a client one would hold every row in memory at once); it lives until the
        # transaction ends, so a name unique within the transaction is enough.
        cursor = connection.cursor(name=f"idp_agent_{next(self._cursor_numbers)}")
        cursor.itersize = STREAM_BATCH_ROWS
        return cursor

    def _begin(self, connection: psycopg.Connection[Any], *, write: bool) -> None:
        if not write:
            connection.execute(self.dialect.begin_read)
            return
        connection.execute(self.dialect.begin_write)
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_KEY,))

    def _commit(self, connection: psycopg.Connection[Any]) -> None:
        connection.execute("COMMIT")

    def _rollback(self, connection: psycopg.Connection[Any]) -> None:
        if connection.closed or connection.info.transaction_status == pq.TransactionStatus.IDLE:
            return
        try:
            connection.execute("ROLLBACK")
        except psycopg.Error:
            # The connection is unusable (the server went away): drop it; the next transaction reconnects.
            self._forget(connection)

    def _broken(self, connection: psycopg.Connection[Any]) -> bool:
        return bool(connection.closed or connection.broken)

    def _close(self, connection: psycopg.Connection[Any]) -> None:
        connection.close()


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """psycopg errors as StoreError. Only the server's primary message is kept: its DETAIL line may quote
    the values of a row (`Key (id)=(...) already exists`)."""
    try:
        yield
    except psycopg.IntegrityError as error:
        raise StoreConflict(f"{where}: {primary_message(error)}") from None
    except psycopg.Error as error:
        raise StoreError(f"{where}: {primary_message(error)}") from None


def primary_message(error: psycopg.Error) -> str:
    primary = error.diag.message_primary
    if primary:
        return primary
    # A client-side error (cannot connect, connection lost): libpq's text names host and user, never the
    # password (its conninfo parse errors, which quote the URL, are replaced in open_connection). First line
    # only, like the server's primary message.
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
