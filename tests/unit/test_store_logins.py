"""Harvested login events: idempotent by event id, a high-water mark that only moves forward, last login."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agent.store import ManualClock, Store, open_store
from agent.store.logins import StoredLoginEvent, from_epoch_ms
from tests.harness.store_backends import StoreBackend

T0 = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)


@pytest.fixture
def store(store_backend: StoreBackend) -> Iterator[Store]:
    """The store on each backend (SQLite here; the PostgreSQL variant runs with the integration tests)."""
    with open_store(store_backend.url, now=ManualClock(T0)) as opened:
        yield opened


def event(event_id: str, at: datetime, user: str | None = "u1", kind: str = "LOGIN") -> StoredLoginEvent:
    return StoredLoginEvent(event_id, at, kind, user, "app")


def test_events_are_kept_once_and_last_login_is_the_latest_success(store: Store) -> None:
    assert store.logins.mark("acme") is None and store.logins.known_since("acme") is None
    day = timedelta(days=1)
    batch = [event("e1", T0 - 3 * day), event("e2", T0 - day), event("e3", T0, kind="LOGIN_ERROR")]
    assert store.logins.record("acme", batch, high_water_ms=1000) == 3
    assert store.logins.record("acme", batch, high_water_ms=1000) == 0  # a re-fetched page adds nothing
    assert store.logins.count("acme") == 3
    assert store.logins.last_logins("acme") == {"u1": T0 - day}  # the failed attempt is not a login
    assert store.logins.known_since("acme") == T0 - 3 * day
    assert store.logins.logins_per_day("acme", T0 - 10 * day) == [
        ((T0 - 3 * day).date().isoformat(), 1, 0),
        ((T0 - day).date().isoformat(), 1, 0),
        (T0.date().isoformat(), 0, 1),
    ]
    assert store.logins.last_logins("other") == {}


def test_high_water_mark_never_moves_back(store: Store) -> None:
    store.logins.record("acme", [], high_water_ms=5000)
    store.logins.record("acme", [], high_water_ms=3000)
    mark = store.logins.mark("acme")
    assert mark is not None and mark.high_water_ms == 5000
    assert mark.first_harvest_at == T0
    # No events yet: logins are known since the first harvest.
    assert store.logins.known_since("acme") == T0


def test_epoch_milliseconds_are_utc() -> None:
    assert from_epoch_ms(1_795_980_299_939) == datetime(2026, 11, 29, 19, 24, 59, 939000, tzinfo=UTC)
