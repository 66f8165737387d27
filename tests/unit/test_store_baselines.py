"""Baselines for the shrink brake: the last good read of each source, never rolled back by an older one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.store import ManualClock, Store, StoreError, open_store
from tests.harness.store_backends import StoreBackend

T0 = datetime(2026, 11, 29, 16, 55, 1, tzinfo=UTC)


@pytest.fixture
def store(store_backend: StoreBackend) -> Iterator[Store]:
    with open_store(store_backend.url, now=ManualClock(T0)) as opened:
        yield opened


def test_last_good_read_round_trips(store: Store, store_backend: StoreBackend) -> None:
    assert store.baselines.last_good("hr") is None
    store.baselines.record_good_read("hr", 4850)
    store.baselines.record_good_read("ldap", 5000, T0 - timedelta(minutes=3))
    with open_store(store_backend.url) as reopened:
        count, at = reopened.baselines.last_good("hr")  # type: ignore[misc]
        assert (count, at) == (4850, T0)
        assert reopened.baselines.last_good_counts() == {"hr": 4850, "ldap": 5000}


@pytest.mark.parametrize(
    ("reads", "kept"),
    [
        ([(100, 0), (90, 10)], (90, 10)),  # a newer read replaces
        ([(100, 10), (90, 0)], (100, 10)),  # an older read arriving late does not
        ([(100, 10), (0, 10)], (0, 10)),  # same instant: the last recorded wins
    ],
)
def test_only_a_newer_read_replaces_the_baseline(
    store: Store, reads: list[tuple[int, int]], kept: tuple[int, int]
) -> None:
    for count, minute in reads:
        store.baselines.record_good_read("hr", count, T0 + timedelta(minutes=minute))
    assert store.baselines.last_good("hr") == (kept[0], T0 + timedelta(minutes=kept[1]))


@pytest.mark.parametrize(("source", "count"), [("", 1), ("hr", -1), ("hr", True), ("hr", 1.5)])
def test_bad_baselines_are_refused(store: Store, source: str, count: Any) -> None:
    with pytest.raises(StoreError):
        store.baselines.record_good_read(source, count)
    assert store.baselines.last_good_counts() == {}
