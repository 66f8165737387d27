"""Pure helpers for `audit`: which entries concern a user, `--since` values, and how entries are printed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from agent.config.values import parse_duration
from agent.errors import ConfigError
from agent.store import JournalEntry, JournalHead, VerifyResult
from agent.store.values import canonical_json

# Detail keys that name the user an entry is about (the subject may be a run, a sanction or an appeal).
USER_DETAIL_KEYS = ("username", "id", "email")
_RELATIVE = re.compile(r"^\d+\s*[smhdw]$")
_ANCHOR = re.compile(r"^(?P<seq>\d+):(?P<hash>[0-9a-f]{64})$")


def parse_since(value: str, now: datetime) -> datetime:
    """`2026-11-01` (midnight UTC), an ISO date-time (UTC when no offset is given), or `7d`/`12h` before `now`."""
    text = value.strip()
    if _RELATIVE.match(text):
        return now - timedelta(seconds=parse_duration(text))
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since '{value}' is not a date", hint="write 2026-11-01, 2026-11-01T08:00:00+01:00 or 7d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_anchor(value: str) -> JournalHead:
    """`SEQ:HASH` as printed by `audit verify` (the head to keep outside the store)."""
    match = _ANCHOR.match(value.strip())
    if match is None:
        raise ConfigError(f"--anchor '{value}' is not SEQ:HASH", hint="copy it from an earlier `audit verify`")
    return JournalHead(int(match["seq"]), match["hash"])


def concerns_user(entry: JournalEntry, user: str) -> bool:
    """Whether the entry is about `user`: as its subject, or named in its details (username, id or e-mail)."""
    wanted = user.casefold()
    if entry.subject.casefold() == wanted:
        return True
    return any(isinstance(entry.details.get(key), str) and str(entry.details[key]).casefold() == wanted
               for key in USER_DETAIL_KEYS)  # fmt: skip


def select_entries(entries: Iterable[JournalEntry], user: str | None) -> list[JournalEntry]:
    return [entry for entry in entries if user is None or concerns_user(entry, user)]


def entry_line(entry: JournalEntry) -> str:
    """One entry on one line: seq, time, actor, action, subject@realm, reason and details."""
    at = entry.at.strftime("%Y-%m-%d %H:%M:%S")
    line = f"{entry.seq:>6} {at} {entry.actor} {entry.action} {entry.subject}@{entry.realm}"
    if entry.run_id:
        line += f" run={entry.run_id}"
    if entry.reason:
        line += f" reason={entry.reason!r}"
    if entry.details:
        line += f" {canonical_json(dict(entry.details))}"
    return line


def entry_json(entry: JournalEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "realm": entry.realm,
        "run_id": entry.run_id,
        "reason": entry.reason,
        "details": dict(entry.details),
        "hash": entry.hash,
    }


def count_entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def verify_message(result: VerifyResult, head: JournalHead | None) -> str:
    """What `audit verify` prints: the head to keep as an anchor when intact, else the first broken entry."""
    if result.ok:
        anchor = f"; keep this anchor outside the store: {head.seq}:{head.hash}" if head is not None else ""
        return f"journal intact: {count_entries(result.checked)}{anchor}"
    where = f"entry {result.first_bad_seq}" if result.first_bad_seq is not None else "the head record"
    return f"journal BROKEN at {where}: {result.problem} ({count_entries(result.checked)} before it intact)"
