"""Reading the idp-agent plugin's user listing (a fake of its calls, no server): the bounds it gives (user ids)
cut the listing into ranges read a few at once and given in order, the first page comes with the bounds and is not
read again, a range that grew since is paged on within itself, and a plugin that stops answering half-way fails the read
instead of passing half a listing for all of it. Also the ordered concurrent map the ranges are read with. That a
renamed user stays in its range, and a user added between the first page and the bounds is read, is proved against
Keycloak (tests/integration/test_review_plugin.py)."""

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
        with self.lock:
            self.asked.append(("bounds", None))
        return self.bounds

    def _plugin_first_page(self, realm: str, page_size: int) -> tuple[Page, list[str] | None] | None:
        """As the plugin answers the first page: with the bounds, in one request."""
        first = self._plugin_users_page(realm, None, None, page_size)
        return None if first is None or self.bounds is None else (first, self.bounds)

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


def test_each_range_between_the_bounds_is_read_and_given_in_order_the_first_page_once() -> None:
    fake = FakePlugin(
        ["b", "d"],
        {(None, None): [user("a"), user("b")], ("b", "d"): [user("c"), user("d")], ("d", None): [user("e")]},
    )
    assert ids(fake) == ["a", "b", "c", "d", "e"]
    # The first page, read with the bounds, ends at the first bound: its range is not read again.
    assert sorted(fake.asked, key=str) == sorted([(None, None), ("b", "d"), ("d", None)], key=str)


def test_a_realm_smaller_than_a_page_is_one_page() -> None:
    fake = FakePlugin([], {(None, None): [user("a")]})
    assert ids(fake) == ["a"]
    assert fake.asked == [(None, None)]


def test_a_pack_that_gives_no_bounds_with_the_first_page_is_asked_for_them_apart() -> None:
    class Older(FakePlugin):
        def _plugin_first_page(self, realm: str, page_size: int) -> tuple[Page, list[str] | None] | None:
            answer = super()._plugin_first_page(realm, page_size)
            return None if answer is None else (answer[0], None)

    fake = Older(["b"], {(None, None): [user("a"), user("b")], ("b", None): [user("c")]})
    assert ids(fake) == ["a", "b", "c"]
    assert fake.asked[:2] == [(None, None), ("bounds", None)]


def test_the_ranges_after_the_first_page_are_read_while_it_is_given() -> None:
    """The first page's users go to the caller (who decodes them) while Keycloak builds the next pages, as with
    every later range: nothing waits for the caller to be through with them."""
    second_asked = threading.Event()

    class Watched(FakePlugin):
        def _plugin_users_page(self, realm: str, after: str | None, until: str | None, page_size: int) -> Page | None:
            if (after, until) == ("b", "d"):
                second_asked.set()
            return super()._plugin_users_page(realm, after, until, page_size)

    fake = Watched(
        ["b", "d"],
        {(None, None): [user("a"), user("b")], ("b", "d"): [user("c"), user("d")], ("d", None): [user("e")]},
    )
    listed = fake.plugin_raw_users("r", page_size=2, workers=2)
    assert listed is not None and next(listed)["id"] == "a"
    assert second_asked.wait(5)  # asked for before the caller came back for the first page's second user
    assert [raw["id"] for raw in listed] == ["b", "c", "d", "e"]


def test_users_that_came_between_the_first_page_and_the_bounds_are_read_by_the_bounds() -> None:
    """The first page ended at "b"; then "aa" came, so the first bound is "aa": the first page is read again as the
    bounds cut the realm, and every user is given once."""
    fake = FakePlugin(
        ["aa", "c"],
        {
            (None, None): [user("a"), user("b")],
            (None, "aa"): [user("a"), user("aa")],
            ("aa", "c"): [user("b"), user("c")],
            ("c", None): [user("d")],
        },
    )
    assert ids(fake) == ["a", "aa", "b", "c", "d"]


def test_a_grown_realm_of_one_page_is_paged_on() -> None:
    """No bounds (less than a page when they were read), but the first page came back full: the realm is paged on."""
    fake = FakePlugin([], {(None, None): [user("a"), user("b")], ("b", None): [user("c")]})
    assert ids(fake) == ["a", "b", "c"]


def test_a_range_that_grew_since_its_bounds_is_paged_on_within_itself() -> None:
    fake = FakePlugin(
        ["b"],
        {
            (None, None): [user("a"), user("aa")],  # read beside the bounds; "ab" came before them
            (None, "b"): [user("a"), user("aa")],  # full: "ab" was added after the bounds were read
            ("aa", "b"): [user("ab"), user("b")],  # full too, but ends at the bound: the range is done
            ("b", None): [user("c")],
        },
    )
    assert ids(fake) == ["a", "aa", "ab", "b", "c"]


def test_no_plugin_is_known_before_any_user_is_given() -> None:
    assert FakePlugin(None, {(None, None): None}).plugin_raw_users("r", page_size=2) is None


def test_a_plugin_that_does_not_answer_the_first_page_is_known_before_any_user_is_given() -> None:
    assert FakePlugin([], {(None, None): None}).plugin_raw_users("r", page_size=2) is None


def test_a_plugin_that_stops_answering_half_way_fails_the_read() -> None:
    fake = FakePlugin(["b"], {(None, None): [user("a"), user("b")], ("b", None): None})
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
