"""The sanction ledger in the store (SQLite and PostgreSQL): recorded pending, read back exactly, updated, filtered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from agent.store import ManualClock, open_store
from agent.store.db import Store
from agent.store.errors import ForbiddenValue, StoreError
from agent.store.sanctions import Changes, NewSanction
from tests.harness.store_backends import StoreBackend

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(store_backend: StoreBackend, clock: ManualClock) -> Iterator[Store]:
    with open_store(store_backend.url, now=clock) as opened:
        yield opened


def new(user_id: str = "kc-1", level: str = "suspension", **changes: object) -> NewSanction:
    values: dict[str, object] = {
        "realm": "acme", "user_id": user_id, "username": "ann", "level": level, "requested_level": level,
        "reason_code": "spam", "issued_by": "moderator", "until": START + timedelta(days=7),
        "note": "posted links", "evidence": ("https://tickets.example.org/1",),
    }  # fmt: skip
    values.update(changes)
    return NewSanction(**values)  # type: ignore[arg-type]


def test_a_new_sanction_is_pending_and_reads_back_exactly(store: Store) -> None:
    added = store.sanctions.add(new())
    assert added.state == "pending" and added.id.startswith("s-") and added.issued_at == START
    assert store.sanctions.get(added.id) == added
    assert store.sanctions.get("s-missing") is None


def test_changes_and_progress_are_saved(store: Store, clock: ManualClock) -> None:
    added = store.sanctions.add(new())
    changes = Changes(
        removed_roles=("premium",), removed_groups=("/premium",), added_groups=("/restricted",),
        required_actions_added=("UPDATE_PASSWORD",), enabled_before=True,
        attributes_before=MappingProxyType({"sanction_level": (), "restrictions": ("old",)}),
    )  # fmt: skip
    clock.advance(timedelta(minutes=5))
    saved = replace(added, state="active", changes=changes, attempts=1, verified_at=clock(), problem="")
    store.sanctions.save(saved)
    assert store.sanctions.get(added.id) == saved
    ended = replace(saved, state="lifted", ending=None, ended_at=clock(), ended_by="lead", end_note="appeal won")
    store.sanctions.save(ended)
    assert store.sanctions.get(added.id) == ended


def test_list_filters_by_realm_user_and_state(store: Store, clock: ManualClock) -> None:
    first = store.sanctions.add(new("kc-1"))
    clock.advance(timedelta(seconds=1))
    second = store.sanctions.add(new("kc-2"))
    store.sanctions.save(replace(second, state="active"))
    assert [s.id for s in store.sanctions.list()] == [first.id, second.id]
    assert [s.id for s in store.sanctions.list(user_id="kc-2")] == [second.id]
    assert [s.id for s in store.sanctions.list(states={"active"})] == [second.id]
    assert store.sanctions.list(realm="other") == []
    assert store.sanctions.list(states=()) == []


def test_unknown_states_and_secrets_are_refused(store: Store) -> None:
    added = store.sanctions.add(new())
    with pytest.raises(StoreError, match="not one of"):
        store.sanctions.save(replace(added, state="forgiven"))  # type: ignore[arg-type]
    with pytest.raises(ForbiddenValue):
        new(issued_by="")
    with pytest.raises(StoreError, match="no sanction"):
        store.sanctions.save(replace(added, id="s-nothere"))
