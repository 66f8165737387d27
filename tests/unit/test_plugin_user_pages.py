"""Paging the idp-agent plugin's user listing (a fake of the one page call, no server): each page after the last
username of the one before, a short page ends it, a user seen twice is given once, and a plugin that stops
answering half-way fails the read instead of passing half a listing for all of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from agent.errors import Unavailable
from agent.keycloak.base import GatewayBase

pytestmark = pytest.mark.unit


class FakePages(GatewayBase):
    """The plugin's answers by `after`; None: the plugin does not answer (404, 409, 401/403)."""

    def __init__(self, pages: Mapping[str | None, list[Mapping[str, Any]] | None]) -> None:  # no transport
        self.pages = pages
        self.asked: list[str | None] = []

    def _plugin_users_page(self, realm: str, after: str | None, page_size: int) -> list[Mapping[str, Any]] | None:
        self.asked.append(after)
        return self.pages[after]


def user(name: str, user_id: str | None = None) -> dict[str, Any]:
    return {"id": user_id or f"id-{name}", "username": name}


def test_pages_follow_the_last_username_until_a_short_page() -> None:
    fake = FakePages({None: [user("a"), user("b")], "b": [user("c"), user("d")], "d": [user("e")]})
    listed = fake.plugin_raw_users("r", page_size=2)
    assert listed is not None
    assert [raw["username"] for raw in listed] == ["a", "b", "c", "d", "e"]
    assert fake.asked == [None, "b", "d"]


def test_a_full_last_page_costs_one_empty_page_more() -> None:
    fake = FakePages({None: [user("a"), user("b")], "b": []})
    assert [raw["username"] for raw in fake.plugin_raw_users("r", page_size=2) or ()] == ["a", "b"]
    assert fake.asked == [None, "b"]


def test_a_user_renamed_into_a_later_page_is_given_once() -> None:
    fake = FakePages({None: [user("a", "1"), user("b", "2")], "b": [user("z-was-a", "1")]})
    assert [raw["username"] for raw in fake.plugin_raw_users("r", page_size=2) or ()] == ["a", "b"]


def test_no_plugin_is_known_before_any_user_is_given() -> None:
    fake = FakePages({None: None})
    assert fake.plugin_raw_users("r", page_size=2) is None


def test_a_plugin_that_stops_answering_half_way_fails_the_read() -> None:
    fake = FakePages({None: [user("a"), user("b")], "b": None})
    listed = fake.plugin_raw_users("r", page_size=2)
    assert listed is not None
    with pytest.raises(Unavailable, match="stopped answering"):
        list(listed)
