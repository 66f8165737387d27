"""The sync's fast paths against a real Keycloak: joiners imported by several workers in small batches,
writes built from the listing (no read first) that keep what admins set, and several steps for one person
in one run that never undo each other."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from agent.sync import executor as executor_module
from agent.sync.executor import SyncExecutor
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, GRANTS_ATTRIBUTE, DesiredUser, NotFound
from agent.sync.outcomes import ItemResult, SyncOutcome
from agent.sync.plan import SyncContext, SyncPlan, plan_sync
from agent.sync.quick_read import read_live_directory
from tests.harness.realm_steps import apply_spec, spec_of

SOURCE = "speed-sync"
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ATTRIBUTES = ("department",)


@pytest.fixture
def speed_realm(keycloak_connection: KeycloakConnection, realm: str) -> str:
    apply_spec(
        keycloak_connection,
        spec_of(
            {
                "realm": realm,
                "groups": [{"path": "/staff"}, {"path": "/finance"}],
                "user_profile": {"unmanaged_attributes": "admin_edit"},
                "registration": {"edit_username": True},
            }
        ),
    )
    return realm


def person(index: int, **extra: Any) -> DesiredUser:
    values: dict[str, Any] = {
        "email": f"p{index:04d}@example.org",
        "first_name": "Per",
        "last_name": f"Son{index}",
        "groups": frozenset({"/staff"}),
        "attributes": {"department": ("Sales",)},
    }
    values.update(extra)
    return DesiredUser(external_id=str(7000 + index), source=SOURCE, username=f"p{index:04d}", **values)


def plan_for(gateway: KeycloakGateway, realm: str, people: list[DesiredUser], now: datetime) -> SyncPlan:
    directory = read_live_directory(gateway, realm, SOURCE)
    context = SyncContext(realm=realm, source=SOURCE, now=now, managed_attributes=ATTRIBUTES)
    return plan_sync(people, [], directory.managed, directory.all_users, context)


def apply(gateway: KeycloakGateway, realm: str, people: list[DesiredUser], now: datetime = NOW) -> SyncOutcome:
    plan = plan_for(gateway, realm, people, now)
    live = read_live_directory(gateway, realm, SOURCE).by_user_id()
    chunks: list[list[ItemResult]] = []
    outcome = SyncExecutor(
        gateway, plan, now=now, attribute_names=ATTRIBUTES, lookup=lambda _: NotFound(), live_users=live,
        on_results=lambda results: chunks.append(list(results)),
    ).run()  # fmt: skip
    assert not outcome.failed, outcome.failed
    # Every item reaches the store callback once, people in plan order (a person's steps in step order).
    recorded = [(result.item.external_id, result.item.action) for chunk in chunks for result in chunk]
    planned = [(item.external_id, item.action) for item in plan.items]
    assert sorted(recorded) == sorted(planned)
    assert list(dict.fromkeys(pair[0] for pair in recorded)) == list(dict.fromkeys(pair[0] for pair in planned))
    return outcome


def assert_converged(gateway: KeycloakGateway, realm: str, people: list[DesiredUser], now: datetime = NOW) -> None:
    writes = gateway.stats.writes
    again = plan_for(gateway, realm, people, now)
    assert [(item.action, item.external_id) for item in again.items] == []
    assert gateway.stats.writes == writes


def managed(gateway: KeycloakGateway, realm: str) -> dict[str, Any]:
    return {live.external_id: live.user for live in read_live_directory(gateway, realm, SOURCE).managed}


def test_joiners_in_concurrent_small_batches_are_all_created_and_recorded_in_order(
    gateway: KeycloakGateway, speed_realm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor_module, "IMPORT_BATCH_SIZE", 7)  # many batches in flight at once
    people = [person(index) for index in range(61)]
    outcome = apply(gateway, speed_realm, people)
    assert outcome.counts() == {"create:applied": 61}
    users = managed(gateway, speed_realm)
    assert sorted(users) == sorted(p.external_id for p in people)
    assert {result.user_id for result in outcome.results} == {user.id for user in users.values()}
    assert_converged(gateway, speed_realm, people)


def test_an_update_written_from_the_listing_keeps_what_an_admin_set(gateway: KeycloakGateway, speed_realm: str) -> None:
    people = [person(1), person(2)]
    apply(gateway, speed_realm, people)
    ann = managed(gateway, speed_realm)[people[0].external_id]
    gateway.update_user(speed_realm, ann.id, {"attributes": {**ann.attributes, "phone": ["+1 555 0100"]}})
    gateway.set_user_required_actions(speed_realm, ann.id, ["CONFIGURE_TOTP"])
    moved = [replace(people[0], email="ann.new@example.org", attributes={"department": ("Finance",)}), people[1]]
    outcome = apply(gateway, speed_realm, moved)
    assert outcome.counts() == {"update:applied": 1}
    after = gateway.get_user(speed_realm, ann.id)
    assert after is not None
    assert after.email == "ann.new@example.org"
    assert after.attributes["department"] == ("Finance",)
    assert after.attributes["phone"] == ("+1 555 0100",)  # not the sync's: kept
    assert after.required_actions == ("CONFIGURE_TOTP",)
    assert_converged(gateway, speed_realm, moved)


def test_a_mover_who_also_leaves_keeps_the_move(gateway: KeycloakGateway, speed_realm: str) -> None:
    """Update and disable in one run: the disable is written on top of the update, not over it."""
    people = [person(3)]
    apply(gateway, speed_realm, people)
    later = NOW + timedelta(days=1)
    leaving = [
        replace(
            people[0],
            email="p0003.moved@example.org",
            attributes={"department": ("Finance",)},
            groups=frozenset({"/staff", "/finance"}),
            end=NOW + timedelta(hours=1),
        )
    ]
    outcome = apply(gateway, speed_realm, leaving, now=later)
    assert {result.item.action for result in outcome.results} == {"update", "grant", "disable"}
    [user] = managed(gateway, speed_realm).values()
    assert not user.enabled
    assert user.email == "p0003.moved@example.org"
    assert user.attributes["department"] == ("Finance",)
    assert '"/finance"' in user.attributes[GRANTS_ATTRIBUTE][0]
    assert user.attributes[EXTERNAL_ID_ATTRIBUTE] == (people[0].external_id,)
    assert_converged(gateway, speed_realm, leaving, now=later)
