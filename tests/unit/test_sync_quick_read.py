"""The quick read's pure parts (which users keep their record, which are read in full, when all are) and the
store area that keeps the records, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from agent.keycloak.base import GatewayBase
from agent.store import open_store
from agent.store.sync_records import UserRecord
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, SOURCE_ATTRIBUTE
from agent.sync.quick_read import (
    RECORDED_FIELDS,
    brief_key,
    brief_page_size,
    full_page_size,
    needs_full_read,
    plan_reads,
    read_full,
    too_many_single_reads,
    user_record,
)
from tests.harness.store_backends import StoreBackend

SOURCE = "people"
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def full_raw(index: int, *, managed: bool = True, **changes: Any) -> dict[str, Any]:
    attributes = {EXTERNAL_ID_ATTRIBUTE: [str(5000 + index)], SOURCE_ATTRIBUTE: [SOURCE], "department": ["Sales"]}
    raw = {
        "id": f"id-{index}",
        "username": f"person{index:03d}",
        "firstName": "Per",
        "lastName": f"Son{index}",
        "email": f"person{index:03d}@example.org",
        "emailVerified": False,
        "enabled": True,
        "createdTimestamp": 1795990054543,
        "totp": False,
        "attributes": attributes if managed else {"note": ["x"]},
        "requiredActions": ["VERIFY_EMAIL"],
        "notBefore": 0,
        "access": {"manage": True},
    }
    raw.update(changes)
    return raw


def brief_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What Keycloak's brief listing gives of the same user."""
    keys = ("id", "username", "firstName", "lastName", "email", "emailVerified", "enabled", "createdTimestamp")
    return {key: raw[key] for key in keys if key in raw}


def test_a_brief_and_a_full_representation_of_one_user_have_one_key() -> None:
    assert brief_key(brief_of(full_raw(1))) == brief_key(full_raw(1))


@pytest.mark.parametrize(
    "change",
    [{"username": "other"}, {"email": "new@example.org"}, {"firstName": "P."}, {"lastName": "Renamed"},
     {"enabled": False}, {"emailVerified": True}, {"email": None}],
)  # fmt: skip
def test_any_change_to_a_brief_field_changes_the_key(change: dict[str, Any]) -> None:
    assert brief_key(full_raw(1, **change)) != brief_key(full_raw(1))


def test_attributes_and_required_actions_are_not_part_of_the_key() -> None:
    """A brief listing does not carry them: a change there is seen only by a full read (or before a write)."""
    assert brief_key(full_raw(1, requiredActions=[], attributes={})) == brief_key(full_raw(1))


def test_a_managed_user_is_recorded_whole_without_listing_noise() -> None:
    record = user_record(full_raw(1), SOURCE)
    assert record.user_id == "id-1"
    assert record.brief == brief_key(full_raw(1))
    assert record.representation is not None
    kept = json.loads(record.representation)
    assert set(kept) <= set(RECORDED_FIELDS)
    assert "access" not in kept and "createdTimestamp" not in kept
    assert kept["attributes"]["department"] == ["Sales"]
    assert kept["requiredActions"] == ["VERIFY_EMAIL"]


def test_other_accounts_are_recorded_by_their_brief_fields_only() -> None:
    assert user_record(full_raw(2, managed=False), SOURCE).representation is None
    other_sync = full_raw(3, attributes={EXTERNAL_ID_ATTRIBUTE: ["1"], SOURCE_ATTRIBUTE: ["another"]})
    assert user_record(other_sync, SOURCE).representation is None


def test_records_are_reused_only_where_the_brief_fields_still_match() -> None:
    records = {record.user_id: record for record in (user_record(full_raw(i), SOURCE) for i in range(4))}
    brief = [brief_of(full_raw(0)), brief_of(full_raw(1, email="moved@example.org")), brief_of(full_raw(2))]
    brief.append(brief_of(full_raw(9)))  # created by someone else since: no record
    plan = plan_reads(brief, records)
    assert set(plan.reuse) == {"id-0", "id-2"}
    assert plan.to_read == ("id-1", "id-9")
    assert plan.gone == ("id-3",)


@pytest.mark.parametrize(
    ("to_read", "users", "expected"),
    [(0, 10, False), (1, 10, False), (2, 10, True), (25, 500, False), (26, 500, True), (5000, 100_000, False),
     (5001, 100_000, True)],
)  # fmt: skip
def test_many_users_to_read_make_one_full_listing_instead(to_read: int, users: int, expected: bool) -> None:
    assert too_many_single_reads(to_read, users) is expected


@pytest.mark.parametrize(
    ("users", "page"), [(0, 1000), (10_000, 1000), (20_001, 1001), (60_000, 3000), (100_000, 5000), (10**6, 5000)]
)
def test_the_brief_listing_takes_about_twenty_pages_within_bounds(users: int, page: int) -> None:
    assert brief_page_size(users) == page


@pytest.mark.parametrize(
    ("users", "page"),
    [(0, 200), (10_000, 200), (40_000, 200), (40_001, 201), (100_000, 500), (200_000, 1000), (10**6, 1000)],
)
def test_the_full_listing_keeps_small_pages_and_takes_about_two_hundred_in_a_big_realm(users: int, page: int) -> None:
    assert full_page_size(users) == page


class CountedListing:
    """A gateway with `users` users (two listed, managed) that remembers the page size it was asked for."""

    def __init__(self, users: int) -> None:
        self.users = users
        self.page_sizes: list[int] = []

    def count_users(self, realm: str) -> int:
        return self.users

    def list_raw_users(self, realm: str, *, page_size: int, workers: int) -> list[dict[str, Any]]:
        self.page_sizes.append(page_size)
        return [full_raw(0), full_raw(1)]


def test_the_full_read_sizes_its_pages_to_the_realm() -> None:
    gateway = CountedListing(100_000)
    read = read_full(cast(Any, gateway), "acme", SOURCE)
    assert gateway.page_sizes == [full_page_size(100_000)]
    assert len(read.directory.managed) == 2 and len(read.fresh) == 2


def test_a_full_read_told_how_many_users_there_are_does_not_count_them_again() -> None:
    gateway = CountedListing(100_000)
    gateway.count_users = None  # type: ignore[assignment,method-assign]  # a second count would fail
    read_full(cast(Any, gateway), "acme", SOURCE, users=100_000)
    assert gateway.page_sizes == [full_page_size(100_000)]


@pytest.mark.parametrize(
    ("last", "now", "asked", "expected"),
    [
        (None, T0, False, True),  # never read in full
        (T0, T0 + timedelta(hours=23), False, False),
        (T0, T0 + timedelta(hours=24), False, True),  # a day old
        (T0, T0 - timedelta(minutes=1), False, True),  # the clock went back: the records' age is unknown
        (T0, T0 + timedelta(hours=1), True, True),  # --full-read
    ],
)
def test_when_every_user_is_read_in_full(last: datetime | None, now: datetime, asked: bool, expected: bool) -> None:
    assert needs_full_read(last, now, timedelta(days=1), asked=asked) is expected


def test_a_zero_interval_reads_in_full_every_time() -> None:
    assert needs_full_read(T0, T0, timedelta(0), asked=False) is True


def test_the_store_keeps_replaces_and_forgets_records(store_backend: StoreBackend) -> None:
    with open_store(store_backend.url) as store:
        area = store.sync_records
        assert area.load(SOURCE, "acme") == {} and area.last_full_read(SOURCE, "acme") is None
        first = [user_record(full_raw(i), SOURCE) for i in range(3)] + [user_record(full_raw(3, managed=False), SOURCE)]
        area.replace_all(SOURCE, "acme", first, T0)
        area.replace_all("other-sync", "acme", first[:1], T0)
        assert area.load(SOURCE, "acme") == {record.user_id: record for record in first}
        assert area.last_full_read(SOURCE, "acme") == T0

        changed = user_record(full_raw(1, lastName="Renamed"), SOURCE)
        area.update(SOURCE, "acme", upsert=[changed, user_record(full_raw(7), SOURCE)], forget=["id-0", "id-9"])
        loaded = area.load(SOURCE, "acme")
        assert set(loaded) == {"id-1", "id-2", "id-3", "id-7"}
        assert loaded["id-1"] == changed and loaded["id-3"].representation is None

        area.replace_all(SOURCE, "acme", first[2:3], T0 + timedelta(days=1))
        assert set(area.load(SOURCE, "acme")) == {"id-2"}
        assert area.last_full_read(SOURCE, "acme") == T0 + timedelta(days=1)
        assert set(area.load("other-sync", "acme")) == {"id-0"}, "another sync's records are its own"

        area.forget_realm(SOURCE, "acme")
        assert area.load(SOURCE, "acme") == {} and area.last_full_read(SOURCE, "acme") is None


def test_records_hold_many_users(tmp_path: Any) -> None:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        records = [UserRecord(f"id-{i}", f"key-{i}", None if i % 3 else "{}") for i in range(4500)]
        store.sync_records.replace_all(SOURCE, "acme", records, T0)
        assert store.sync_records.load(SOURCE, "acme") == {record.user_id: record for record in records}


class PagedList(GatewayBase):
    """A list endpoint over an in-memory list that can change between requests (paging logic only)."""

    def __init__(self, items: list[dict[str, Any]], *, grow_after: int = 0, grow_by: int = 0) -> None:
        self.items = items
        self.requests = 0
        self.grow_after = grow_after
        self.grow_by = grow_by

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        self.requests += 1
        if self.grow_by and self.requests == self.grow_after:
            # Users added at the front (a username sorting first): everything after shifts by grow_by.
            self.items[:0] = [{"id": f"new-{i}"} for i in range(self.grow_by)]
        first, size = int((params or {})["first"]), int((params or {})["max"])
        return self.items[first : first + size]


def test_concurrent_pages_give_every_item_once_in_order() -> None:
    items = [{"id": f"u{i:03d}"} for i in range(230)]
    listed = list(PagedList(list(items))._paged_concurrently("/users", {}, 50, expected=230, workers=4))
    assert listed == items


def test_concurrent_pages_read_on_past_the_count_when_the_list_grew() -> None:
    items = [{"id": f"u{i:03d}"} for i in range(100)]
    paged = PagedList(list(items))
    paged.items.extend({"id": f"v{i:03d}"} for i in range(120))  # 120 more than the count said
    listed = list(paged._paged_concurrently("/users", {}, 50, expected=100, workers=4))
    assert [item["id"] for item in listed] == [item["id"] for item in paged.items]


def test_a_listing_that_shifts_while_read_gives_no_item_twice() -> None:
    items = [{"id": f"u{i:03d}"} for i in range(200)]
    paged = PagedList(list(items), grow_after=2, grow_by=10)
    ids = [item["id"] for item in paged._paged_concurrently("/users", {}, 50, expected=200, workers=1 + 1)]
    assert len(ids) == len(set(ids)), "a user seen on two pages was given twice"
    assert set(ids) >= {item["id"] for item in items[-10:]}
