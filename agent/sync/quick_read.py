"""The quick read of Keycloak: a brief listing of every user, compared with what the sync recorded last time.

A full listing costs Keycloak about 1 ms per user (attributes, credentials, required actions, user profile
per user); a brief listing a tenth of that. So a run lists everyone briefly and takes full representations
only where the brief fields (names, email, enabled) differ from the record, or where there is no record. The
rest comes from the records, which hold what the last run read or wrote.

What a brief listing cannot show (an attribute or required action changed by hand in the admin console) is
seen at the next full read: every `full_read_every` (a day by default), on `--full-read`, and always before a
write: every user the plan would change is read afresh and planned again, so a write never rests on a
record (see `refresh`).

Where the idp-agent Keycloak plugin answers (`keycloak_read: plugin`, the default), none of that is needed:
it gives every user in full, a few thousand per request, a few times faster than the brief listing alone, so
each run reads everything afresh (`read_by_plugin`). Such a run keeps no records (building them cost a tenth
of a second per 10k users, each run) and drops any it finds: a later run without the plugin reads all users
in full once, then quickly again.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from agent.keycloak import KeycloakGateway
from agent.keycloak.base import PLUGIN_PAGE_SIZE
from agent.store.sync_records import UserRecord
from agent.sync.live import LISTING_PAGE_SIZE, LiveDirectory, is_managed, split_directory

# Users per page of the brief listing: brief representations are small and cheap to build, but every page
# costs Keycloak a sort of the whole realm (a 100k realm: 0.55-0.8 s a page of 1,000, 1.2 s a page of
# 5,000; the whole listing 64 s in pages of 1,000, 24 s in pages of 5,000). So about BRIEF_PAGES pages,
# within these bounds (the upper one bounds what a page in flight holds in memory).
BRIEF_PAGE_SIZE = 1000
MAX_BRIEF_PAGE_SIZE = 5000
BRIEF_PAGES = 20
# Users per page of the full listing: LISTING_PAGE_SIZE, or about FULL_PAGES pages in a big realm. Per page
# Keycloak sorts the realm; per user it builds a full representation, dearer in a big page. Measured with
# 4 pages in flight, 100k users: read_full 285 s in pages of 200, 179-184 s of 500, 193 s of 1,000 (the
# listing alone 339, 198, 182 s, and 277 s of 2,000); peak RSS 256, 260, 264 MiB. 10k users: 1.2-1.4 s
# at any size in a second round, but in the first round after the import 6.6 s (200), 9.7 s (500), 13 s
# (1,000), 53 s (5,000), so small realms keep 200.
FULL_PAGES = 200
MAX_FULL_PAGE_SIZE = 1000
# Pages (or single-user reads) in flight at once.
READ_WORKERS = 4
# Above this share of users to read one by one, one full listing is cheaper: measured at 10k, a GET of one
# user costs Keycloak about as much as 15 users of a listing read four pages at a time.
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

    reuse: Mapping[str, Keyed]
    to_read: tuple[str, ...]
    gone: tuple[str, ...]


class Keyed(Protocol):
    """A record as far as planning reads needs it (a UserRecord, or a RecordKey without the representation)."""

    @property
    def brief(self) -> str: ...

    @property
    def managed(self) -> bool: ...


def plan_reads(brief: Sequence[Mapping[str, Any]], records: Mapping[str, Keyed]) -> ReadPlan:
    reuse: dict[str, Keyed] = {}
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


def brief_page_size(users: int) -> int:
    return min(MAX_BRIEF_PAGE_SIZE, max(BRIEF_PAGE_SIZE, -(-users // BRIEF_PAGES)))


def full_page_size(users: int) -> int:
    return min(MAX_FULL_PAGE_SIZE, max(LISTING_PAGE_SIZE, -(-users // FULL_PAGES)))


def too_many_single_reads(to_read: int, users: int) -> bool:
    return to_read > max(1, int(users * MAX_SINGLE_READ_SHARE))


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
    via_plugin: bool = False  # every user came from the idp-agent plugin


def realm_settings(gateway: KeycloakGateway, realm: str) -> Mapping[str, Any]:
    """The realm's representation; empty when the realm is gone."""
    live_realm = gateway.get_realm(realm)
    return {} if live_realm is None else live_realm.representation


def usernames_editable(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("editUsernameAllowed"))


def read_live_directory(gateway: KeycloakGateway, realm: str, source: str) -> LiveDirectory:
    """Every user in one full listing: managed users whole, everyone else by name (no records involved)."""
    return read_full(gateway, realm, source).directory


def read_full(gateway: KeycloakGateway, realm: str, source: str, *, users: int | None = None) -> LiveRead:
    """Every user in one full listing, pages read a few at a time; `users`, when the caller knows about how
    many there are, sizes the pages without counting them again."""
    fresh: list[UserRecord] = []
    page_size = full_page_size(gateway.count_users(realm) if users is None else users)
    raws = gateway.list_raw_users(realm, page_size=page_size, workers=READ_WORKERS)
    managed, everyone = split_directory(_remembered(raws, source, fresh), source)
    return LiveRead(LiveDirectory(managed, everyone), True, frozenset(), tuple(fresh))


def read_by_plugin(
    gateway: KeycloakGateway, realm: str, source: str, *, page_size: int = PLUGIN_PAGE_SIZE
) -> LiveRead | None:
    """Every user in full from the idp-agent plugin, a few thousand per request: a full read, and fresh (no
    records involved), at a fraction of a full listing's cost. None where the plugin does not answer. It makes
    no records: a run that reads through the plugin drops them (see runner.remember_reads)."""
    raws = gateway.plugin_raw_users(realm, page_size=page_size)
    if raws is None:
        return None
    managed, everyone = split_directory(raws, source)
    return LiveRead(LiveDirectory(managed, everyone), True, frozenset(), (), via_plugin=True)


def read_quick(gateway: KeycloakGateway, realm: str, source: str, records: RecordStore) -> LiveRead:
    """A brief listing, records where the brief fields match, full reads of the rest (or one full listing
    when the rest are many). Records are compared by key first; representations are then streamed from the
    store, so a 100k realm is never held twice."""
    page_size = brief_page_size(gateway.count_users(realm))
    listing = gateway.list_raw_users(realm, page_size=page_size, brief=True, workers=READ_WORKERS)
    brief = [slim(raw) for raw in listing]
    plan = plan_reads(brief, records.load_keys(source, realm))
    if too_many_single_reads(len(plan.to_read), len(brief)):
        return read_full(gateway, realm, source, users=len(brief))
    fetched = read_each(gateway, realm, plan.to_read)
    fresh = [user_record(raw, source) for raw in fetched.values()]
    wanted = {user_id for user_id, key in plan.reuse.items() if key.managed}
    unmanaged = (raw for raw in brief if str(raw["id"]) in plan.reuse and str(raw["id"]) not in wanted)
    recorded = _recorded(records.representations(source, realm), wanted)
    managed, everyone = split_directory(itertools.chain(fetched.values(), recorded, unmanaged), source)
    directory = LiveDirectory(managed, everyone)
    read = LiveRead(directory, False, frozenset(wanted), tuple(fresh), plan.gone, len(plan.to_read))
    # A record dropped since its key was read (another run of the same sync): read those users now.
    missing = wanted - {live.user.id for live in managed}
    return refresh(gateway, realm, source, read, missing) if missing else read


def _recorded(rows: Iterable[tuple[str, str]], wanted: set[str]) -> Iterator[Mapping[str, Any]]:
    for user_id, representation in rows:
        if user_id in wanted:
            yield json.loads(representation)


class RecordStore(Protocol):
    """What a quick read needs of the store's records (agent.store.sync_records.SyncRecords)."""

    def load_keys(self, sync: str, realm: str) -> Mapping[str, Keyed]: ...

    def representations(self, sync: str, realm: str) -> Iterable[tuple[str, str]]: ...


# What a brief listing's entry keeps: the key's fields and what another account needs (its names).
BRIEF_KEPT = ("id", "username", "email", "firstName", "lastName", "enabled", "emailVerified", "serviceAccountClientId")


def slim(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {name: raw[name] for name in BRIEF_KEPT if name in raw}


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
    listed = {user.id for user in read.directory.all_users}
    everyone = (
        *(by_id.get(user.id, user) for user in read.directory.all_users if user.id not in stale or user.id in by_id),
        *(user for user in new_users if user.id not in listed),
    )
    return replace(
        read,
        directory=LiveDirectory(managed, everyone),
        from_records=read.from_records - stale,
        fresh=(*read.fresh, *(user_record(raw, source) for raw in fetched.values())),
        single_reads=read.single_reads + len(stale),
    )


def _remembered(raws: Iterable[Mapping[str, Any]], source: str, into: list[UserRecord]) -> Iterator[Mapping[str, Any]]:
    """`raws`, passed on, each one's record added to `into` on the way (a full listing is not kept whole)."""
    for raw in raws:
        into.append(user_record(raw, source))
        yield raw
