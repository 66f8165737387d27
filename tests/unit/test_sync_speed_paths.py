"""The sync's fast paths, without a server: one listing split into managed users and names, the PUT body
rebuilt from the listing, and the ordered worker map that stops starting work after an error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import pytest

from agent.keycloak import KeycloakGateway
from agent.sync.executor import SyncExecutor
from agent.sync.grants import Grants
from agent.sync.live import full_representation, split_directory
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, GRANTS_ATTRIBUTE, SOURCE_ATTRIBUTE
from agent.sync.outcomes import Done, ItemResult, Work
from agent.sync.plan import SyncItem, SyncPlan
from agent.sync.worker_map import ordered_map, windows

SOURCE = "workforce"


def raw_user(
    index: int, *, source: str | None = SOURCE, external_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    attributes: dict[str, list[str]] = {"department": ["Sales"], "phone": [f"+1 555 {index:04d}"]}
    if source is not None:
        attributes[SOURCE_ATTRIBUTE] = [source]
    if external_id is not None:
        attributes[EXTERNAL_ID_ATTRIBUTE] = [external_id]
    attributes[GRANTS_ATTRIBUTE] = [Grants(groups=frozenset({"/staff"})).to_json()]
    return {
        "id": f"id-{index}",
        "username": f"user{index}",
        "enabled": True,
        "email": f"user{index}@example.org",
        "firstName": "Per",
        "lastName": f"Son{index}",
        "emailVerified": True,
        "attributes": attributes,
        "requiredActions": ["UPDATE_PASSWORD"],
        "createdTimestamp": 1,
        "totp": False,
        **extra,
    }


def test_split_keeps_managed_users_whole_and_others_by_name() -> None:
    raws = [
        raw_user(1, external_id="1001"),
        raw_user(2, source="another-sync", external_id="1002"),  # another sync's user: not ours
        raw_user(3, external_id=None),  # our source name but no id: not managed
        raw_user(4, source=None, serviceAccountClientId="robot"),
    ]
    managed, everyone = split_directory(raws, SOURCE)
    assert [live.external_id for live in managed] == ["1001"]
    assert managed[0].recorded_grants == Grants(groups=frozenset({"/staff"}))
    assert managed[0].user.attributes["phone"] == ("+1 555 0001",)
    assert [user.username for user in everyone] == ["user1", "user2", "user3", "user4"]
    assert everyone[0] is managed[0].user
    others = everyone[1:]
    assert all(user.attributes == {} for user in others)
    assert [user.email for user in others] == ["user2@example.org", "user3@example.org", "user4@example.org"]
    assert others[2].service_account_client_id == "robot"


def test_split_shares_repeated_values_between_users() -> None:
    managed, _ = split_directory([raw_user(i, external_id=str(1000 + i)) for i in range(3)], SOURCE)
    first, second = managed[0].user.attributes, managed[1].user.attributes
    assert first["department"] is second["department"]
    assert first[GRANTS_ATTRIBUTE] is second[GRANTS_ATTRIBUTE]


def test_split_reads_values_that_are_not_text_as_text_and_shares_them_too() -> None:
    users = [raw_user(i, external_id=str(1000 + i)) for i in range(2)]
    for user in users:
        user["attributes"]["level"] = [3, True]  # what a hand-made attribute could hold in JSON
    managed, _ = split_directory(users, SOURCE)
    first, second = managed[0].user.attributes, managed[1].user.attributes
    assert first["level"] == ("3", "True")
    assert first["level"] is second["level"]


def test_full_representation_carries_every_profile_field_and_attribute() -> None:
    [live], _ = split_directory([raw_user(7, external_id="1007")], SOURCE)
    body = full_representation(live.user)
    raw = raw_user(7, external_id="1007")
    for key in ("id", "username", "enabled", "email", "firstName", "lastName", "emailVerified", "requiredActions"):
        assert body[key] == raw[key], key
    assert body["attributes"] == raw["attributes"]
    assert "createdTimestamp" not in body and "totp" not in body


def test_full_representation_leaves_out_names_the_user_does_not_have() -> None:
    raw = raw_user(8, external_id="1008")
    del raw["firstName"], raw["email"]
    [live], _ = split_directory([raw], SOURCE)
    body = full_representation(live.user)
    assert "firstName" not in body and "email" not in body


def done_of(index: int, error: Exception | None = None) -> Done:
    item = SyncItem("update", str(index), f"user{index}")
    return Done([ItemResult(item, "applied")], error)


@pytest.mark.parametrize("workers", [1, 4])
def test_ordered_map_yields_in_input_order(workers: int) -> None:
    def work(index: int) -> Done:
        time.sleep(0.001 * (index % 3))  # finish out of order
        return done_of(index)

    results = [done.results[0].item.external_id for done in ordered_map(work, range(20), workers=workers)]
    assert results == [str(index) for index in range(20)]


@pytest.mark.parametrize("workers", [1, 3])
def test_ordered_map_starts_nothing_after_an_error_but_yields_what_ran(workers: int) -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(index: int) -> Done:
        with lock:
            started.append(index)
        return done_of(index, RuntimeError("keycloak down") if index == 5 else None)

    yielded = [done for done in ordered_map(work, range(100), workers=workers)]
    errors = [done.error for done in yielded if done.error is not None]
    assert len(errors) == 1
    # Everything that was started is yielded (its writes were made), and little more than the window ran.
    assert sorted(int(done.results[0].item.external_id) for done in yielded) == sorted(started)
    assert max(started) < 5 + 2 * workers + 1
    assert [int(done.results[0].item.external_id) for done in yielded][:6] == [0, 1, 2, 3, 4, 5]


def test_windows_hold_whole_units_of_at_least_the_size_and_keep_the_order() -> None:
    def steps(count: int) -> list[SyncItem]:
        return [SyncItem("update", str(count), f"user{count}-{i}", "id") for i in range(count)]

    units = [steps(n) for n in (3, 1, 2, 5, 1)]
    grouped = list(windows(iter(units), lambda unit: unit, 4))
    assert [[len(unit) for unit in window] for window in grouped] == [[3, 1], [2, 5], [1]]
    assert [unit for window in grouped for unit in window] == units


def test_windows_of_nothing_are_none() -> None:
    assert list(windows(iter([]), lambda unit: unit, 4)) == []


def test_the_workers_are_kept_busy_across_windows_and_each_intent_precedes_its_write() -> None:
    """Windows of 100 items in import batches of 20 hold 5 units: with 4 workers and a pause after each window,
    at most one would run at the end of each; without a pause, 4 run at once across the boundary."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    running = 0
    most = 0
    started_by_window: list[int] = []

    def batch(index: int) -> list[SyncItem]:
        return [SyncItem("create", f"{index}-{n}", f"user{index}-{n}") for n in range(20)]

    def work(unit: list[SyncItem]) -> Done:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            events.extend(("write", item.external_id) for item in unit)
        time.sleep(0.02)
        with lock:
            running -= 1
        return Done([ItemResult(item, "applied") for item in unit])

    def intents(items: Sequence[SyncItem]) -> None:
        with lock:
            events.extend(("intent", item.external_id) for item in items)
            started_by_window.append(sum(1 for kind, _ in events if kind == "write"))

    executor = SyncExecutor(
        cast(KeycloakGateway, object()), SyncPlan("acme", SOURCE, ()), now=datetime(2026, 11, 29, tzinfo=UTC),
        attribute_names=(), lookup=lambda _: None, live_users={}, on_intents=intents, workers=4,
    )  # fmt: skip
    units = [batch(index) for index in range(15)]
    executor._apply_all(Work(partial(work, unit), unit) for unit in units)

    assert [result.item.external_id for result in executor.outcome.results] == [
        item.external_id for unit in units for item in unit
    ]
    order = {event: position for position, event in enumerate(events)}
    assert all(order[("intent", key)] < order[("write", key)] for kind, key in events if kind == "write")
    assert most == 4
    assert any(written % 100 for written in started_by_window[1:]), "a window's intents waited for the last one"
