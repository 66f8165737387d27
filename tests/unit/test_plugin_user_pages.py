"""Reading the idp-agent plugin's user listing (a fake of its two calls, no server): the bounds it gives (user ids)
cut the listing into ranges read a few at once and given in order, a range that grew since is paged on within
itself, and a plugin that stops answering half-way fails the read instead of passing half a listing for all of it.
Also the ordered concurrent map the ranges are read with. That a renamed user stays in its range is the plugin's
part, proved against Keycloak (tests/integration/test_review_plugin.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from agent.errors import Unavailable
from agent.keycloak.base import GatewayBase, in_order_concurrently

pytestmark = pytest.mark.unit

Page = list[Mapping[str, Any]]


class FakePlugin(GatewayBase):
    """The plugin's bounds, and its pages by (after, until); None: the plugin does not answer (404, 409,
    401/403)."""

    def __init__(self, bounds: list[str] | None, pages: Mapping[tuple[str | None, str | None], Page | None]) -> None:
        self.bounds = bounds  # no transport
        self.pages = pages
        self.asked: list[tuple[str | None, str | None]] = []
        self.lock = threading.Lock()

    def _plugin_user_bounds(self, realm: str, every: int) -> list[str] | None:
        return self.bounds

    def _plugin_users_page(self, realm: str, after: str | None, until: str | None, page_size: int) -> Page | None:
        with self.lock:
            self.asked.append((after, until))
        return self.pages[after, until]


def user(user_id: str) -> dict[str, Any]:
    """The plugin pages by id; the names here are ids, the usernames say nothing of the order."""
    return {"id": user_id, "username": f"name-of-{user_id}"}


def ids(fake: FakePlugin, *, page_size: int = 2, workers: int = 2) -> list[str]:
    listed = fake.plugin_raw_users("r", page_size=page_size, workers=workers)
    assert listed is not None
    return [raw["id"] for raw in listed]


def test_each_range_between_the_bounds_is_read_and_given_in_order() -> None:
    fake = FakePlugin(
        ["b", "d"],
        {(None, "b"): [user("a"), user("b")], ("b", "d"): [user("c"), user("d")], ("d", None): [user("e")]},
    )
    assert ids(fake) == ["a", "b", "c", "d", "e"]
    assert sorted(fake.asked, key=str) == sorted([(None, "b"), ("b", "d"), ("d", None)], key=str)


def test_a_realm_smaller_than_a_page_is_one_range() -> None:
    fake = FakePlugin([], {(None, None): [user("a")]})
    assert ids(fake) == ["a"]
    assert fake.asked == [(None, None)]


def test_a_range_that_grew_since_its_bounds_is_paged_on_within_itself() -> None:
    fake = FakePlugin(
        ["b"],
        {
            (None, "b"): [user("a"), user("aa")],  # full: "ab" was added after the bounds were read
            ("aa", "b"): [user("ab"), user("b")],  # full too, but ends at the bound: the range is done
            ("b", None): [user("c")],
        },
    )
    assert ids(fake) == ["a", "aa", "ab", "b", "c"]


def test_no_plugin_is_known_before_any_user_is_given() -> None:
    assert FakePlugin(None, {}).plugin_raw_users("r", page_size=2) is None


def test_a_plugin_that_stops_answering_half_way_fails_the_read() -> None:
    fake = FakePlugin(["b"], {(None, "b"): [user("a"), user("b")], ("b", None): None})
    with pytest.raises(Unavailable, match="stopped answering"):
        ids(fake)


def test_a_plugin_that_stops_answering_within_a_grown_range_fails_the_read() -> None:
    fake = FakePlugin([], {(None, None): [user("a"), user("b")], ("b", None): None})
    with pytest.raises(Unavailable, match="stopped answering"):
        ids(fake)


def test_results_come_in_the_order_of_the_items_whatever_order_they_finish_in() -> None:
    def slow_first(item: int) -> int:
        time.sleep(0.05 if item == 0 else 0)
        return item * 10

    assert list(in_order_concurrently(slow_first, range(6), 3, name="t")) == [0, 10, 20, 30, 40, 50]


def test_no_more_than_the_workers_run_at_once_and_none_runs_far_ahead_of_the_reader() -> None:
    running = 0
    most = 0
    started: list[int] = []
    lock = threading.Lock()

    def work(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            started.append(item)
        time.sleep(0.01)
        with lock:
            running -= 1
        return item

    results = in_order_concurrently(work, range(10), 2, name="t")
    assert next(results) == 0
    time.sleep(0.05)
    assert len(started) <= 3  # the one given and the two read ahead of it
    assert list(results) == list(range(1, 10))
    assert most <= 2


def test_a_failure_is_raised_in_its_turn_after_the_results_before_it() -> None:
    def fail_on_two(item: int) -> int:
        if item == 2:
            raise ValueError("two")
        return item

    given: list[int] = []
    with pytest.raises(ValueError, match="two"):
        for result in in_order_concurrently(fail_on_two, range(5), 2, name="t"):
            given.append(result)
    assert given == [0, 1]
