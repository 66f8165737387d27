"""The quick read of Keycloak: a brief listing of every user, compared with what the sync recorded last time.

A full listing costs Keycloak about 1 ms per user (attributes, credentials, required actions, user profile
per user); a brief listing a tenth of that. So a run lists everyone briefly and takes full representations
only where the brief fields (names, email, enabled) differ from the record, or where there is no record. The
rest comes from the records, which hold what the last run read or wrote.

What a brief listing cannot show (an attribute or required action changed by hand in the admin console) is
seen at the next full read: every `full_read_every` (a day by default), on `--full-read`, and always before a
write: every user the plan would change is read afresh and planned again, so a write never rests on a
record (see `refresh`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from agent.keycloak import KeycloakGateway
from agent.store.sync_records import UserRecord
from agent.sync.live import LISTING_PAGE_SIZE, LiveDirectory, is_managed, split_directory

# Users per page of the brief listing: brief representations are small and cheap to build.
BRIEF_PAGE_SIZE = 1000
# Pages (or single-user reads) in flight at once.
READ_WORKERS = 4
# Above this many users to read one by one, one full listing is cheaper (a GET costs a few listed users).
MAX_SINGLE_READS = 500
MAX_SINGLE_READ_SHARE = 0.05
DEFAULT_FULL_READ_EVERY = timedelta(days=1)
# What a user's full representation keeps in a record: what the planner and the executor use.
RECORDED_FIELDS = (
    "id", "username", "enabled", "email", "firstName", "lastName", "emailVerified", "attributes",
    "requiredActions", "federationLink", "serviceAccountClientId",
)  # fmt: skip


def brief_key(raw: Mapping[str, Any]) -> str:
    """The fields a brief listing and a full representation both carry, as one comparable text."""
    fields = [raw.get(name) for name in ("username", "email", "firstName", "lastName")]
    return json.dumps([*fields, bool(raw.get("enabled")), bool(raw.get("emailVerified"))], ensure_ascii=False)


def user_record(raw: Mapping[str, Any], source: str) -> UserRecord:
    """What to remember of a user read in full: the whole of a user this sync manages, the key of others."""
    representation = None
    if is_managed(raw, source):
        kept = {name: raw[name] for name in RECORDED_FIELDS if raw.get(name) is not None}
        representation = json.dumps(kept, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return UserRecord(str(raw["id"]), brief_key(raw), representation)


@dataclass(frozen=True)
class ReadPlan:
    """From a brief listing and the records: whose record still holds, whose full representation to read,
    and which recorded users are gone."""

    reuse: Mapping[str, UserRecord]
    to_read: tuple[str, ...]
    gone: tuple[str, ...]


def plan_reads(brief: Sequence[Mapping[str, Any]], records: Mapping[str, UserRecord]) -> ReadPlan:
    reuse: dict[str, UserRecord] = {}
    to_read: list[str] = []
    for raw in brief:
        user_id = str(raw["id"])
        record = records.get(user_id)
        if record is not None and record.brief == brief_key(raw):
            reuse[user_id] = record
        else:
            to_read.append(user_id)
    listed = {str(raw["id"]) for raw in brief}
    return ReadPlan(reuse, tuple(to_read), tuple(sorted(set(records) - listed)))


def too_many_single_reads(to_read: int, users: int) -> bool:
    return to_read > min(MAX_SINGLE_READS, max(1, int(users * MAX_SINGLE_READ_SHARE)))


def needs_full_read(last_full_read: datetime | None, now: datetime, every: timedelta, *, asked: bool) -> bool:
    """A full read when asked, when there is none on record, or when the last is `every` old (a clock set
    back makes one too: a record's age cannot be trusted then)."""
    if asked or last_full_read is None or every <= timedelta(0):
        return True
    return not last_full_read <= now < last_full_read + every


@dataclass(frozen=True)
class LiveRead:
    """The live directory, and what the read learnt for the records."""

    directory: LiveDirectory
    full: bool  # every user was read in full
    from_records: frozenset[str]  # managed users whose representation came from a record
    fresh: tuple[UserRecord, ...]  # records of the users read in full now
    gone: tuple[str, ...] = ()  # recorded users no longer in Keycloak
    single_reads: int = 0


def read_full(gateway: KeycloakGateway, realm: str, source: str, *, editable: bool) -> LiveRead:
    """Every user in one full listing, pages read a few at a time."""
    fresh: list[UserRecord] = []
    raws = gateway.list_raw_users(realm, page_size=LISTING_PAGE_SIZE, workers=READ_WORKERS)
    managed, everyone = split_directory(_remembered(raws, source, fresh), source)
    return LiveRead(LiveDirectory(managed, everyone, editable), True, frozenset(), tuple(fresh))


def read_quick(
    gateway: KeycloakGateway, realm: str, source: str, records: Mapping[str, UserRecord], *, editable: bool
) -> LiveRead:
    """A brief listing, records where the brief fields match, full reads of the rest (or one full listing
    when the rest are many)."""
    brief = list(gateway.list_raw_users(realm, page_size=BRIEF_PAGE_SIZE, brief=True, workers=READ_WORKERS))
    plan = plan_reads(brief, records)
    if too_many_single_reads(len(plan.to_read), len(brief)):
        return read_full(gateway, realm, source, editable=editable)
    fetched = read_each(gateway, realm, plan.to_read)
    fresh = tuple(user_record(raw, source) for raw in fetched.values())
    managed, everyone = split_directory(_merged(brief, plan, fetched), source)
    from_records = frozenset(user_id for user_id, record in plan.reuse.items() if record.representation is not None)
    directory = LiveDirectory(managed, everyone, editable)
    return LiveRead(directory, False, from_records, fresh, plan.gone, len(plan.to_read))


def read_each(gateway: KeycloakGateway, realm: str, user_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """Full representations of `user_ids`, a few at a time; users gone meanwhile are left out."""
    if not user_ids:
        return {}
    with ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="user-reads") as pool:
        found = pool.map(lambda user_id: gateway.get_raw_user(realm, user_id), user_ids)
        return {user_id: raw for user_id, raw in zip(user_ids, found, strict=True) if raw is not None}


def refresh(gateway: KeycloakGateway, realm: str, source: str, read: LiveRead, user_ids: Iterable[str]) -> LiveRead:
    """The read with `user_ids` (users the plan would change whose representation came from a record) read
    afresh: what the sync writes is always based on Keycloak's current copy."""
    stale = set(user_ids) & read.from_records
    if not stale:
        return read
    fetched = read_each(gateway, realm, sorted(stale))
    new_managed, new_users = split_directory(list(fetched.values()), source)
    by_id = {user.id: user for user in new_users}
    managed = (*(live for live in read.directory.managed if live.user.id not in stale), *new_managed)
    everyone = tuple(
        by_id.get(user.id, user) for user in read.directory.all_users if user.id not in stale or user.id in by_id
    )
    return replace(
        read,
        directory=LiveDirectory(managed, everyone, read.directory.usernames_editable),
        from_records=read.from_records - stale,
        fresh=(*read.fresh, *(user_record(raw, source) for raw in fetched.values())),
        single_reads=read.single_reads + len(stale),
    )


def _merged(
    brief: Sequence[Mapping[str, Any]], plan: ReadPlan, fetched: Mapping[str, Mapping[str, Any]]
) -> Iterator[Mapping[str, Any]]:
    """Each listed user's best representation, in listing order: fetched now, else the recorded one, else
    the brief one (an account the sync does not manage: only its names matter)."""
    for raw in brief:
        user_id = str(raw["id"])
        if user_id in fetched:
            yield fetched[user_id]
            continue
        record = plan.reuse.get(user_id)
        if record is None:
            continue  # to be read, and gone meanwhile
        yield json.loads(record.representation) if record.representation is not None else raw


def _remembered(raws: Iterable[Mapping[str, Any]], source: str, into: list[UserRecord]) -> Iterator[Mapping[str, Any]]:
    """`raws`, passed on, each one's record added to `into` on the way (a full listing is not kept whole)."""
    for raw in raws:
        into.append(user_record(raw, source))
        yield raw
