"""One holder at a time across processes and machines sharing a store: `with store_lock(store, "sync-acme"):`.

Raises `agent.locks.Locked` at once when another holder has the lock (never waits behind it). The lock is
released when the block ends and when the holder dies, however it dies:
- SQLite: flock(2) on a file next to the database (`<db>.locks/<name>.lock`, see agent.locks); the kernel
  drops it with the holder's open file.
- PostgreSQL: a session-level `pg_try_advisory_lock` on a connection of its own, held for the block; the
  server drops it when that session ends: at once when the holder's process dies (its socket closes), and
  after the keepalive probes below fail when the holder's machine vanishes. A server restart ends every
  session, so it also releases the locks held: a holder finds out when its next store transaction fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from agent.locks import Locked, exclusive
from agent.store.errors import StoreError
from agent.store.postgres import PostgresDatabase, advisory_key, translate_errors
from agent.store.runs import holding

if TYPE_CHECKING:
    from agent.store.db import Store

# Settings of the lock's session (all user-settable). Server-side keepalives: a holder whose machine is gone
# without closing its socket loses the lock after about idle + interval * count seconds. No idle timeout: the
# session is idle for the whole run it locks, and a server-wide idle_session_timeout would end it, freeing the
# lock under a live holder. That setting exists since PostgreSQL 14, and older servers refuse the connection
# ("unrecognized configuration parameter"): the store on PostgreSQL needs 14 or later. (The session is never
# idle in a transaction, it runs in autocommit, so idle_in_transaction_session_timeout cannot end it.)
KEEPALIVE_OPTIONS = (
    "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3 -c idle_session_timeout=0"
)
APPLICATION_NAME_MAX = 63  # PostgreSQL truncates longer names
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")


@contextmanager
def store_lock(store: Store, name: str) -> Iterator[None]:
    """Hold the lock `name` of this store for the block, or raise Locked (whose message names the holder).
    Runs this thread starts in the block record the lock; on taking it, runs of it left `running` by a holder
    that died are ended as interrupted."""
    if not name or "\x00" in name:
        raise StoreError("a lock needs a name without NUL characters")
    db = store.db
    if isinstance(db, PostgresDatabase):
        held = advisory_lock(db, name)
    elif db.path is None:
        raise StoreError(f"store {db.name} has neither a file nor advisory locks to lock with")
    else:
        held = exclusive(lock_file_name(name), lock_directory(db.path))
    with held, holding(name):
        # A run of this lock still `running` cannot be going on: its holder is gone.
        store.runs.end_interrupted(name)
        yield


def lock_directory(database: Path) -> Path:
    """`<db>.locks` beside the database file, so every agent using the file shares the locks: the path resolved,
    so that a symlink or a relative path to the same file finds the same locks."""
    resolved = database.resolve()
    return resolved.with_name(resolved.name + ".locks")


def lock_file_name(name: str) -> str:
    """`name` as a file name: kept when it is plain, otherwise made plain and told apart by a short hash."""
    if SAFE_NAME.fullmatch(name) and not name.startswith("."):
        return name
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:60]
    return f"{plain}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def holder_label() -> str:
    """Who holds a lock, as other agents will be told: host and pid (the session's application_name)."""
    return f"idp-agent {socket.gethostname()} pid {os.getpid()}"[:APPLICATION_NAME_MAX]


@contextmanager
def advisory_lock(db: PostgresDatabase, name: str) -> Iterator[None]:
    key = advisory_key(f"lock:{name}")
    where = f"store {db.name}"
    with translate_errors(where):
        connection = db.connect_dedicated(application_name=holder_label(), options=KEEPALIVE_OPTIONS)
    try:
        with translate_errors(where):
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not (row and row[0]):
                holder = lock_holder(connection, key)
                raise Locked(f"skipped: locked by another run of '{name}' ({holder})")
        try:
            yield
        finally:
            # Unlock before closing: the server ends a closed session asynchronously, and the next holder
            # (maybe this process, right away) must find the lock free.
            with suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        connection.close()


def lock_holder(connection: psycopg.Connection[Any], key: int) -> str:
    """The holder's application_name (host and pid) as the server knows it; 'unknown' if it just left."""
    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF  # how pg_locks shows a bigint key
    row = connection.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = %s AND l.objid = %s"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (high, low),
    ).fetchone()
    return str(row[0]) if row and row[0] else "holder unknown"
