"""The append-only, hash-chained journal of every write idp-agent makes (apply, sync, sanctions, appeals).
Entry n carries sha256(canonical JSON of its columns, including the hash of entry n-1); see `Journal`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from agent.store.connection import Database, Param, Row, integer, optional_text, text
from agent.store.errors import StoreError
from agent.store.values import (
    JsonValue,
    allowed_mapping,
    canonical_json,
    canonical_json_of_checked,
    check_text,
    parse_utc,
    sha256_hex,
    utc_text,
)

GENESIS_HASH = "0" * 64  # the "previous hash" of entry 1

# Keys an entry's details may have (values may nest; credential-like keys are refused at any depth).
# Personal data stays out unless named here: the journal is kept for years and exported for audits.
# Only ever add keys: entries are checked again when read back.
DETAIL_KEYS: frozenset[str] = frozenset(
    {
        # any write
        "kind",
        "name",
        "id",
        "fields",
        "before",
        "after",
        "outcome",
        "error",
        "status",
        "attempt",
        "verified",
        "count",
        # realm apply
        "client_id",
        "role",
        "group",
        "flow",
        "scope",
        "federation",
        # sync
        "source",
        "sources",
        "external_id",
        "username",
        "email",
        "enabled",
        "granted",
        "revoked",
        "required_actions",
        "staged_run_id",
        "threshold",
        # sanctions and appeals
        "sanction_id",
        "level",
        "reason_code",
        "until",
        "evidence",
        "note",
        "appeal_id",
        "decision",
        "drift",
        "sessions_ended",
        "consents_revoked",
        "notice",
        # access-review campaigns
        "campaign",
        "item",
        "reviewer",
        # store retention (counts of what a pass deleted)
        "runs",
        "run_items",
        "staged_sets",
        "staged_items",
        "login_events",
    }
)


@dataclass(frozen=True)
class NewEntry:
    """A write to record: who (`actor`), what (`action`, e.g. "user.disable"), on what (`subject`), where,
    in which run, why, and allow-listed details."""

    actor: str
    action: str
    subject: str
    realm: str
    run_id: str | None = None
    reason: str = ""
    details: Mapping[str, JsonValue] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        check_text(self.actor, "journal actor", empty=False)
        check_text(self.action, "journal action", empty=False)
        check_text(self.subject, "journal subject")
        check_text(self.realm, "journal realm")
        if self.run_id is not None:
            check_text(self.run_id, "journal run id", empty=False)
        check_text(self.reason, "journal reason")
        object.__setattr__(self, "details", allowed_mapping(self.details, DETAIL_KEYS, "journal details"))


@dataclass(frozen=True, kw_only=True)
class JournalEntry(NewEntry):
    """An entry as stored. Only the journal makes them: when sealing a NewEntry (checked when it was made) and
    when reading a row back (`_entry_from_row` checks the details again), so making one checks nothing twice."""

    seq: int
    at: datetime
    prev_hash: str
    hash: str

    def __post_init__(self) -> None:
        pass


class JournalHead(NamedTuple):
    seq: int
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    first_bad_seq: int | None  # the first entry missing, moved or changed; None when ok or the head is gone
    problem: str  # empty when ok
    checked: int  # entries read


def entry_hash(columns: Mapping[str, Param]) -> str:
    """The hash of one stored entry, over the exact stored text of every column but `hash` itself."""
    payload = {name: columns[name] for name in HASHED_COLUMNS}
    return sha256_hex(canonical_json(payload))


def _hash_of_sealed(columns: Mapping[str, Param]) -> str:
    """entry_hash of columns built by _columns from a checked entry (text, numbers, None): not checked again."""
    return sha256_hex(canonical_json_of_checked({name: columns[name] for name in HASHED_COLUMNS}))


HASHED_COLUMNS = ("seq", "at", "actor", "action", "subject", "realm", "run_id", "reason", "details", "prev_hash")


def verify_chain(
    rows: Iterable[Mapping[str, Param]], head: JournalHead | None, anchor: JournalHead | None = None
) -> VerifyResult:
    """Check stored rows (ordered by seq) against each other, the head record and an optional outside anchor."""
    expected, previous, anchored = 1, GENESIS_HASH, False
    for row in rows:
        seq = row["seq"]
        if seq != expected:
            problem = (
                f"entry {expected} is missing (the next is {seq})"
                if isinstance(seq, int) and seq > expected
                else f"entry {expected} is out of place (found seq {seq})"
            )
            return VerifyResult(False, expected, problem, expected - 1)
        if row["prev_hash"] != previous:
            problem = (
                f"entry {expected} does not follow entry {expected - 1}: an entry was removed, moved or rewritten"
                if expected > 1
                else "entry 1 does not start the chain: its previous hash was changed"
            )
            return VerifyResult(False, expected, problem, expected - 1)
        if entry_hash(row) != row["hash"]:
            return VerifyResult(False, expected, f"entry {expected} was changed after it was written", expected - 1)
        if anchor is not None and anchor.seq == expected:
            if row["hash"] != anchor.hash:
                return VerifyResult(False, expected, f"entry {expected} differs from the anchor kept outside", expected)
            anchored = True
        previous = str(row["hash"])
        expected += 1
    last = expected - 1
    return _check_ends(last, previous, head, anchor, anchored)


def _check_ends(
    last: int, last_hash: str, head: JournalHead | None, anchor: JournalHead | None, anchored: bool
) -> VerifyResult:
    if head is None:
        return VerifyResult(False, None, "the journal's head record is missing", last)
    if head.seq > last:
        return VerifyResult(False, last + 1, f"entries {last + 1} to {head.seq} are missing from the end", last)
    if head.seq < last:
        return VerifyResult(False, head.seq + 1, f"entries after {head.seq} are not covered by the head record", last)
    if head.hash != last_hash:
        return VerifyResult(False, last or None, f"the head record's hash does not match entry {last}", last)
    if anchor is not None and anchor.seq > 0 and not anchored:
        return VerifyResult(False, last + 1, f"the journal ends at {last}, before the anchor entry {anchor.seq}", last)
    return VerifyResult(True, None, "", last)


class Journal:
    """The journal in the store. A head record keeps the last seq and hash, updated in the same transaction as
    each append; appends hold the write lock (`BEGIN IMMEDIATE`), so threads and processes never fork the chain.

    What `verify` guarantees: every entry from 1 to the head is present, in order, and unchanged since it was
    written, unless whoever changed the file also recomputed the hashes after the change and the head. The
    chain has no key, so it cannot stop someone who rewrites the whole tail; for that, keep `head()` outside
    the store (a log line, an alert, a ticket) and pass it back as `verify(anchor=...)`: everything up to the
    anchor is then proven unchanged, and the journal proven not cut short before it.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        realm: str,
        run_id: str | None = None,
        reason: str = "",
        details: Mapping[str, JsonValue] | None = None,
    ) -> JournalEntry:
        """Record one write; the entry as stored."""
        entry = NewEntry(actor, action, subject, realm, run_id, reason, details or {})
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[NewEntry]) -> list[JournalEntry]:
        """Record several writes in one transaction (one disk flush): all of them, in order, or none."""
        with self._db.transaction(write=True) as tx:
            # The dialect's row lock (PostgreSQL); SQLite's BEGIN IMMEDIATE holds the lock already.
            head_row = tx.query_one("SELECT seq, hash FROM journal_head WHERE id = 1" + tx.dialect.for_update)  # noqa: S608
            if head_row is None:
                raise StoreError(
                    "the journal's head record is missing; nothing is appended to a broken journal",
                    hint="run `idp-agent audit verify`",
                )
            seq, previous = integer(head_row, "seq"), text(head_row, "hash")
            stored: list[JournalEntry] = []
            rows: list[tuple[Param, ...]] = []
            for entry in entries:
                seq += 1
                sealed, row = _seal(entry, seq, self._db.now(), previous)
                stored.append(sealed)
                rows.append(tuple(row.values()))
                previous = sealed.hash
            tx.execute_many(
                "INSERT INTO journal (seq, at, actor, action, subject, realm, run_id, reason, details, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            tx.execute("UPDATE journal_head SET seq = ?, hash = ? WHERE id = 1", (seq, previous))
        return stored

    def entries(
        self, subject: str | None = None, since: datetime | None = None, run_id: str | None = None
    ) -> list[JournalEntry]:
        """Entries in seq order, filtered by subject, by time (`at >= since`) and by run."""
        filters = (
            ("subject = ?", subject),
            ("at >= ?", None if since is None else utc_text(since)),
            ("run_id = ?", run_id),
        )
        active = [(condition, value) for condition, value in filters if value is not None]
        where = " WHERE " + " AND ".join(condition for condition, _ in active) if active else ""
        with self._db.transaction() as tx:
            rows = tx.query(f"SELECT * FROM journal{where} ORDER BY seq", [value for _, value in active])  # noqa: S608  # fixed column names
        return [_entry_from_row(row) for row in rows]

    def head(self) -> JournalHead:
        """The last entry's seq and hash (seq 0 and GENESIS_HASH when empty): keep it outside as an anchor."""
        with self._db.transaction() as tx:
            row = tx.query_one("SELECT seq, hash FROM journal_head WHERE id = 1")
        if row is None:
            raise StoreError("the journal's head record is missing", hint="run `idp-agent audit verify`")
        return JournalHead(integer(row, "seq"), text(row, "hash"))

    def verify(self, anchor: JournalHead | None = None) -> VerifyResult:
        """Check the whole chain and the head record (and `anchor`, when given) in one consistent snapshot."""
        with self._db.transaction() as tx:
            head_row = tx.query_one("SELECT seq, hash FROM journal_head WHERE id = 1")
            head = None if head_row is None else JournalHead(integer(head_row, "seq"), text(head_row, "hash"))
            return verify_chain(tx.iterate("SELECT * FROM journal ORDER BY seq"), head, anchor)


def _seal(entry: NewEntry, seq: int, at: datetime, prev_hash: str) -> tuple[JournalEntry, dict[str, Param]]:
    """The entry as stored, and its row (every column, `hash` last)."""
    row = _columns(entry, seq, utc_text(at), prev_hash)
    row["hash"] = _hash_of_sealed(row)
    sealed = JournalEntry(
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        realm=entry.realm,
        run_id=entry.run_id,
        reason=entry.reason,
        details=entry.details,
        seq=seq,
        at=parse_utc(text(row, "at")),  # as stored: UTC, to the microsecond
        prev_hash=prev_hash,
        hash=text(row, "hash"),
    )
    return sealed, row


def _columns(entry: NewEntry, seq: int, at: str, prev_hash: str) -> dict[str, Param]:
    """The journal table's columns but `hash`, in INSERT order."""
    return {
        "seq": seq,
        "at": at,
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "realm": entry.realm,
        "run_id": entry.run_id,
        "reason": entry.reason,
        "details": canonical_json_of_checked(dict(entry.details)),
        "prev_hash": prev_hash,
    }


def _entry_from_row(row: Row) -> JournalEntry:
    return JournalEntry(
        actor=text(row, "actor"),
        action=text(row, "action"),
        subject=text(row, "subject"),
        realm=text(row, "realm"),
        run_id=optional_text(row, "run_id"),
        reason=text(row, "reason"),
        details=allowed_mapping(json.loads(text(row, "details")), DETAIL_KEYS, "journal details"),
        seq=integer(row, "seq"),
        at=parse_utc(text(row, "at")),
        prev_hash=text(row, "prev_hash"),
        hash=text(row, "hash"),
    )
