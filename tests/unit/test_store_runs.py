"""Runs and their items: round trips on a real store (SQLite, and PostgreSQL as integration tests), counts
derived from the items, run ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.secrets import Secret
from agent.store import ForbiddenValue, ManualClock, NewItem, Store, StoreError, count_items, open_store
from agent.store.runs import merge_counts, new_run_id
from tests.harness.store_backends import StoreBackend

T0 = datetime(2026, 11, 29, 16, 55, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(store_backend: StoreBackend, clock: ManualClock) -> Iterator[Store]:
    with open_store(store_backend.url, now=clock) as opened:
        yield opened


def item(subject: str, action: Any = "update", outcome: Any = "applied", **fields: Any) -> NewItem:
    return NewItem(subject, action, outcome, **fields)


def test_a_run_round_trips_with_its_items(store: Store, clock: ManualClock, store_backend: StoreBackend) -> None:
    run = store.runs.start_run("sync", "acme", ("hr", "ldap"), summary="nightly")
    assert (run.status, run.started_at, run.finished_at, run.counts) == ("running", T0, None, {})
    items = [
        item(
            "alice",
            "create",
            after={"username": "alice", "email": "alice@example.org", "attributes.department": "Finance"},
            granted=("group /finance", "role app/viewer"),
        ),
        item("bob", "update", before={"lastName": "Smith"}, after={"lastName": "Jones"}),
        item(
            "carol", "disable", "failed", before={"enabled": True}, after={"enabled": False}, error="409 from Keycloak"
        ),
    ]
    first = store.runs.add_items(run.id, items[:2])
    second = store.runs.add_items(run.id, items[2:])
    assert [(i.seq, i.subject) for i in first + second] == [(1, "alice"), (2, "bob"), (3, "carol")]
    clock.advance(timedelta(seconds=42))
    finished = store.runs.finish_run(run.id, "succeeded", {"read": 120, "unchanged": 117}, summary="3 changes")
    assert finished.finished_at == T0 + timedelta(seconds=42)

    with open_store(store_backend.url) as reopened:
        assert reopened.runs.get_run(run.id) == finished
        stored = reopened.runs.run_items(run.id)
    assert stored == first + second
    assert [(i.subject, i.action, i.outcome) for i in stored] == [(i.subject, i.action, i.outcome) for i in items]
    assert stored[0].after["attributes.department"] == "Finance"
    assert stored[0].granted == ("group /finance", "role app/viewer")
    assert stored[2].error == "409 from Keycloak"
    assert dict(finished.counts) == {
        "create.applied": 1,
        "disable.failed": 1,
        "read": 120,
        "unchanged": 117,
        "update.applied": 1,
    }
    assert (finished.status, finished.summary, finished.sources) == ("succeeded", "3 changes", ("hr", "ldap"))


@pytest.mark.parametrize(
    ("pairs", "counts"),
    [
        ([], {}),
        ([("create", "applied")] * 3, {"create.applied": 3}),
        (
            [("disable", "staged"), ("revoke", "staged"), ("disable", "staged"), ("create", "failed")],
            {"create.failed": 1, "disable.staged": 2, "revoke.staged": 1},
        ),
        ([("reject", "skipped"), ("skip", "skipped")], {"reject.skipped": 1, "skip.skipped": 1}),
    ],
)
def test_counts_are_derived_from_items(pairs: list[tuple[str, str]], counts: dict[str, int]) -> None:
    assert count_items(item(f"u{n}", action, outcome) for n, (action, outcome) in enumerate(pairs)) == counts


@pytest.mark.parametrize(
    ("given", "merged"),
    [
        ({}, {"create.applied": 2}),
        ({"create.applied": 2, "read": 10}, {"create.applied": 2, "read": 10}),
        ({"update.applied": 0, "rejected": 1}, {"create.applied": 2, "rejected": 1}),
    ],
)
def test_extra_counts_are_kept_and_item_counts_must_agree(given: dict[str, int], merged: dict[str, int]) -> None:
    assert merge_counts({"create.applied": 2}, given) == merged


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"create.applied": 3}, "'create.applied' is 3 but the run's items give 2"),
        ({"disable.applied": 1}, "'disable.applied' is 1 but the run's items give 0"),
        ({"read": -1}, "whole number"),
        ({"read": True}, "whole number"),
    ],
)
def test_counts_that_disagree_with_items_are_refused(given: dict[str, int], message: str) -> None:
    with pytest.raises(StoreError, match=message):
        merge_counts({"create.applied": 2}, given)


def test_finish_refuses_wrong_counts_and_keeps_the_run_running(store: Store) -> None:
    run = store.runs.start_run("sync", "acme")
    store.runs.add_items(run.id, [item("alice", "create")])
    with pytest.raises(StoreError, match="is 5 but the run's items give 1"):
        store.runs.finish_run(run.id, "succeeded", {"create.applied": 5})
    assert store.runs.get_run(run.id) == run
    assert dict(store.runs.finish_run(run.id, "succeeded").counts) == {"create.applied": 1}


@pytest.mark.parametrize("status", ["running", "approved", "done"])
def test_a_run_finishes_only_in_a_final_status(store: Store, status: Any) -> None:
    run = store.runs.start_run("sync", "acme")
    with pytest.raises(StoreError, match="a run finishes as one of failed, staged, stopped, succeeded"):
        store.runs.finish_run(run.id, status)


def test_a_finished_run_takes_no_items_and_no_second_finish(store: Store) -> None:
    run = store.runs.start_run("sync", "acme")
    store.runs.finish_run(run.id, "stopped", summary="source hr shrank by 60%")
    with pytest.raises(StoreError, match=f"run {run.id} has finished \\(stopped\\)"):
        store.runs.add_items(run.id, [item("alice")])
    with pytest.raises(StoreError, match="has finished"):
        store.runs.finish_run(run.id, "succeeded")
    with pytest.raises(StoreError, match="no run nope"):
        store.runs.add_items("nope", [item("alice")])
    assert store.runs.run_items(run.id) == []


def test_list_runs_newest_first_by_kind_and_limit(store: Store, clock: ManualClock) -> None:
    started = []
    for kind in ("sync", "apply", "sync", "sync"):
        started.append(store.runs.start_run(kind, "acme"))
        clock.advance(timedelta(minutes=5))
    assert [r.id for r in store.runs.list_runs()] == [r.id for r in reversed(started)]
    assert [r.id for r in store.runs.list_runs(kind="sync", limit=2)] == [started[3].id, started[2].id]
    assert [r.id for r in store.runs.list_runs(kind="apply")] == [started[1].id]
    assert store.runs.get_run("20260101T000000Z-0000") is None


def test_run_ids_are_short_sortable_and_unique_within_a_second(store: Store) -> None:
    assert new_run_id(T0, "3f9a") == "20261129T165501Z-3f9a"
    ids = [store.runs.start_run("sync", "acme").id for _ in range(200)]  # the clock stands still
    assert len(set(ids)) == 200
    assert all(re.fullmatch(r"20261129T165501Z-[0-9a-f]{4}", run_id) for run_id in ids)
    assert new_run_id(T0, "ffff") < new_run_id(T0 + timedelta(seconds=1), "0000")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"after": {"phone": "+1 555"}}, r"'phone' not in the allow-list"),
        ({"before": {"password": "canary-1"}}, r"'password' not in the allow-list"),
        ({"after": {"attributes.api_token": "canary-1"}}, "names a credential"),
        ({"after": {"email": Secret("canary-1")}}, "is a Secret"),
        ({"granted": (Secret("canary-1"),)}, "is a Secret"),
        ({"error": Secret("canary-1")}, "is a Secret"),
        ({"action": "explode"}, "item action 'explode' is not one of"),
        ({"outcome": "maybe"}, "item outcome 'maybe' is not one of"),
        ({"subject": ""}, "must not be empty"),
    ],
)
def test_items_refuse_fields_off_the_allow_list_and_secrets(fields: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"subject": "alice", "action": "update", "outcome": "applied", **fields}
    with pytest.raises(
        ForbiddenValue if "allow-list" in message or "Secret" in message else StoreError, match=message
    ) as caught:
        NewItem(**arguments)
    assert "canary-1" not in str(caught.value)


@pytest.mark.parametrize(
    ("argument", "value"), [("kind", ""), ("realm", ""), ("sources", ("",)), ("summary", Secret("x"))]
)
def test_start_run_checks_its_arguments(store: Store, argument: str, value: Any) -> None:
    arguments: dict[str, Any] = {"kind": "sync", "realm": "acme", argument: value}
    with pytest.raises(StoreError):
        store.runs.start_run(**arguments)
    assert store.runs.list_runs() == []
