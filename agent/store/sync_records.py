"""What each sync last knew of its realm's users, so that a run can read Keycloak's cheap brief listing and
take full representations only for users whose brief fields changed (see agent/sync/live.py).

Per user: `brief`, a key of the fields a brief listing shows, and `representation`, the full JSON of a user
the sync manages (None for every other account: only its names matter). Plus, per sync and realm, when all
users were last read in full: records are trusted only for a bounded time after that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import NamedTuple, TypeVar

from agent.store.connection import Database, optional_text, text
from agent.store.values import check_text, parse_utc, utc_text

INSERT = "INSERT INTO sync_user_records (sync, realm, user_id, brief, representation) VALUES (?, ?, ?, ?, ?)"
# Rows per executemany: bounds the memory of one statement at 100k users.
WRITE_CHUNK = 2000
Value = TypeVar("Value")


class UserRecord(NamedTuple):
    user_id: str
    brief: str
    representation: str | None  # JSON; None for an account the sync does not manage

    @property
    def managed(self) -> bool:
        return self.representation is not None


class RecordKey(NamedTuple):
    brief: str
    managed: bool  # the record holds a full representation


class SyncRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self, sync: str, realm: str) -> dict[str, UserRecord]:
        """User id -> record, for one sync's view of one realm."""
        with self._db.transaction() as tx:
            rows = tx.iterate(
                "SELECT user_id, brief, representation FROM sync_user_records WHERE sync = ? AND realm = ?",
                (sync, realm),
            )
            return {
                text(row, "user_id"): UserRecord(
                    text(row, "user_id"), text(row, "brief"), optional_text(row, "representation")
                )
                for row in rows
            }

    def load_keys(self, sync: str, realm: str) -> dict[str, RecordKey]:
        """User id -> brief key and whether a representation is kept: what a quick read compares first
        (representations are streamed afterwards, only for the users whose record holds)."""
        with self._db.transaction() as tx:
            rows = tx.iterate(
                "SELECT user_id, brief, representation IS NOT NULL AS managed FROM sync_user_records"
                " WHERE sync = ? AND realm = ?",
                (sync, realm),
            )
            return {text(row, "user_id"): RecordKey(text(row, "brief"), bool(row["managed"])) for row in rows}

    def representations(self, sync: str, realm: str) -> Iterator[tuple[str, str]]:
        """(user id, representation JSON) of every managed user's record, one row at a time."""
        with self._db.transaction() as tx:
            rows = tx.iterate(
                "SELECT user_id, representation FROM sync_user_records"
                " WHERE sync = ? AND realm = ? AND representation IS NOT NULL",
                (sync, realm),
            )
            for row in rows:
                yield text(row, "user_id"), text(row, "representation")

    def replace_all(self, sync: str, realm: str, records: Iterable[UserRecord], read_at: datetime) -> None:
        """After a full read: exactly these records, and `read_at` as the last full read (one transaction)."""
        _check(sync, realm)
        with self._db.transaction(write=True) as tx:
            tx.execute("DELETE FROM sync_user_records WHERE sync = ? AND realm = ?", (sync, realm))
            for chunk in _chunks(records):
                tx.execute_many(INSERT, [(sync, realm, *record) for record in chunk])
            tx.execute(
                "INSERT INTO sync_full_reads (sync, realm, read_at) VALUES (?, ?, ?)"
                " ON CONFLICT (sync, realm) DO UPDATE SET read_at = excluded.read_at",
                (sync, realm, utc_text(read_at)),
            )

    def update(self, sync: str, realm: str, *, upsert: Iterable[UserRecord], forget: Iterable[str]) -> None:
        """Replace or add `upsert`, then drop the records of `forget` (one transaction)."""
        _check(sync, realm)
        with self._db.transaction(write=True) as tx:
            for chunk in _chunks(upsert):
                tx.execute_many(
                    INSERT + " ON CONFLICT (sync, realm, user_id) DO UPDATE SET brief = excluded.brief,"
                    " representation = excluded.representation",
                    [(sync, realm, *record) for record in chunk],
                )
            for ids in _chunks(forget):
                tx.execute_many(
                    "DELETE FROM sync_user_records WHERE sync = ? AND realm = ? AND user_id = ?",
                    [(sync, realm, user_id) for user_id in ids],
                )

    def last_full_read(self, sync: str, realm: str) -> datetime | None:
        with self._db.transaction() as tx:
            row = tx.query_one("SELECT read_at FROM sync_full_reads WHERE sync = ? AND realm = ?", (sync, realm))
        return None if row is None else parse_utc(text(row, "read_at"))

    def forget_realm(self, sync: str, realm: str) -> None:
        """Drop every record and the full-read time: the next run reads all users in full."""
        with self._db.transaction(write=True) as tx:
            tx.execute("DELETE FROM sync_user_records WHERE sync = ? AND realm = ?", (sync, realm))
            tx.execute("DELETE FROM sync_full_reads WHERE sync = ? AND realm = ?", (sync, realm))


def _check(sync: str, realm: str) -> None:
    check_text(sync, "sync name", empty=False)
    check_text(realm, "realm", empty=False)


def _chunks(values: Iterable[Value]) -> Iterator[list[Value]]:
    chunk: list[Value] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == WRITE_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
