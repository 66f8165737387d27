"""The quick read against the real Keycloak: after a run, the next one lists users briefly and reads in full
only those whose brief fields changed; it sees exactly what a full read sees of the users it created; a write
never rests on a record; attribute drift made by hand is corrected at the next full read.

These syncs read through the admin API (`keycloak_read: admin-api`), which is what runs where the idp-agent
plugin is not installed; the last tests show what the plugin's read changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.keycloak import KeycloakGateway, User
from agent.settings import KeycloakConnection
from agent.store import open_store
from agent.sync import quick_read
from agent.sync.agent_config import AgentConfig
from agent.sync.quick_read import read_full, read_quick
from agent.sync.runner import Prepared, prepare_sync, run_sync
from tests.harness.sync_setup import NOW, SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed

PEOPLE = 12


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path, keycloak_read="admin-api")


def run(setup: SyncSetup, config: AgentConfig, gateway: KeycloakGateway, **options: Any) -> tuple[Any, Prepared, Any]:
    with open_store(config.store) as store:
        return run_sync(config, config.sync(SYNC), gateway, store, env={}, **{"now": NOW, **options})


def synced(setup: SyncSetup, gateway: KeycloakGateway) -> AgentConfig:
    """The HR config of PEOPLE people, after a first run has synced them."""
    config = hr_config(setup, [hr_row(i) for i in range(PEOPLE)])
    run(setup, config, gateway)
    return config


def comparable(user: User) -> tuple[Any, ...]:
    return (
        user.id, user.username, user.email, user.first_name, user.last_name, user.enabled, user.email_verified,
        dict(user.attributes), frozenset(user.required_actions),
    )  # fmt: skip


def set_attribute_by_hand(gateway: KeycloakGateway, realm: str, external_id: str, name: str, value: str) -> User:
    """As an admin would in the console: one attribute of a managed user changed, the others kept."""
    user: User = managed(gateway, realm)[external_id]
    attributes = {key: list(values) for key, values in user.attributes.items()}
    gateway.update_user(realm, user.id, {"attributes": {**attributes, name: [value]}})
    return user


def test_after_creating_users_the_next_run_reads_them_briefly_and_sees_what_a_full_read_sees(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    config = hr_config(setup, [hr_row(i) for i in range(PEOPLE)])
    first, prepared, _ = run(setup, config, gateway)
    assert first.status == "succeeded" and prepared.live_read is not None and prepared.live_read.full

    requests_before = gateway.stats.requests
    second, prepared, outcome = run(setup, config, gateway)
    assert second.status == "succeeded"
    read = prepared.live_read
    assert read is not None and not read.full
    assert read.single_reads == 0, "every created user has a record: none is read one by one"
    assert prepared.plan.is_empty and outcome is not None and not outcome.results
    assert gateway.stats.requests - requests_before < PEOPLE, "no request per user"

    with open_store(config.store) as store:
        quick = read_quick(gateway, setup.realm, SYNC, store.sync_records).directory
    full = read_full(gateway, setup.realm, SYNC).directory
    assert len(quick.managed) == PEOPLE
    assert sorted(comparable(live.user) for live in quick.managed) == sorted(
        comparable(live.user) for live in full.managed
    ), "a record made at creation differs from Keycloak's own representation"
    assert sorted(u.username for u in quick.all_users) == sorted(u.username for u in full.all_users)


def test_a_brief_field_changed_by_hand_is_read_in_full_and_corrected(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    config = synced(setup, gateway)
    target = managed(gateway, setup.realm)["5003"]
    gateway.update_user(setup.realm, target.id, {"email": "someone-else@example.org", "lastName": "Changed"})

    _, prepared, _ = run(setup, config, gateway)
    assert prepared.live_read is not None and prepared.live_read.single_reads == 1
    assert [(item.action, item.user_id) for item in prepared.plan.items] == [("update", target.id)]
    after = gateway.get_user(setup.realm, target.id)
    assert after is not None and (after.email, after.last_name) == ("person003@example.org", "Son3")

    # The user written is forgotten and read afresh once; then the run is quiet again.
    _, third, _ = run(setup, config, gateway)
    assert third.live_read is not None and third.live_read.single_reads == 1 and third.plan.is_empty
    _, fourth, _ = run(setup, config, gateway)
    assert fourth.live_read is not None and fourth.live_read.single_reads == 0 and fourth.plan.is_empty


def test_a_write_is_based_on_keycloaks_current_copy_not_on_the_record(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    """An attribute set by hand (or by a sanction) since the last run is invisible to the brief listing; the
    update the source then asks for must keep it."""
    rows = [hr_row(i) for i in range(PEOPLE)]
    run(setup, hr_config(setup, rows), gateway)
    target = set_attribute_by_hand(gateway, setup.realm, "5004", "sanction_level", "warning")

    rows[4] = hr_row(4, Department="Finance")
    _, prepared, outcome = run(setup, hr_config(setup, rows), gateway)
    assert outcome is not None and not outcome.failed
    assert {(item.action, item.user_id) for item in prepared.plan.items} >= {("update", target.id)}
    after = gateway.get_user(setup.realm, target.id)
    assert after is not None
    assert after.attributes.get("department") == ("Finance",)
    assert after.attributes.get("sanction_level") == ("warning",), "the write went out from a stale record"


def test_attribute_drift_waits_for_the_next_full_read_which_corrects_it(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    config = synced(setup, gateway)
    target = set_attribute_by_hand(gateway, setup.realm, "5005", "department", "Edited by hand")

    with open_store(config.store) as store:
        quick = prepare_sync(config, config.sync(SYNC), gateway, store, now=NOW + timedelta(hours=1), env={})
        asked = prepare_sync(config, config.sync(SYNC), gateway, store, now=NOW, env={}, full_read=True)
    assert quick.live_read is not None and not quick.live_read.full
    assert quick.plan.is_empty, "a brief listing cannot see an attribute: the record stands until a full read"
    assert asked.live_read is not None and asked.live_read.full
    assert [(item.action, item.user_id) for item in asked.plan.items] == [("update", target.id)]

    # A day after the last full read, a run reads everything in full by itself and puts the value back.
    _, prepared, _ = run(setup, config, gateway, now=NOW + timedelta(days=1))
    assert prepared.live_read is not None and prepared.live_read.full
    after = gateway.get_user(setup.realm, target.id)
    assert after is not None and after.attributes.get("department") == ("Sales",)


def test_a_user_deleted_by_hand_is_created_again_and_its_record_dropped(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    config = synced(setup, gateway)
    target = managed(gateway, setup.realm)["5006"]
    gateway.delete_user(setup.realm, target.id)

    _, prepared, outcome = run(setup, config, gateway)
    assert [item.action for item in prepared.plan.items] == ["create"]
    assert outcome is not None and not outcome.failed
    with open_store(config.store) as store:
        records = store.sync_records.load(SYNC, setup.realm)
    assert target.id not in records
    recreated = managed(gateway, setup.realm)["5006"]
    assert recreated.id in records and recreated.id != target.id


def test_full_read_every_zero_always_reads_in_full(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    config = hr_config(setup, [hr_row(i) for i in range(3)])
    config = config.model_copy(
        update={"syncs": tuple(sync.model_copy(update={"full_read_every": 0}) for sync in config.syncs)}
    )
    run(setup, config, gateway)
    _, prepared, _ = run(setup, config, gateway)
    assert prepared.live_read is not None and prepared.live_read.full and prepared.plan.is_empty


def test_the_concurrent_listing_gives_every_user_once(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    run(setup, hr_config(setup, [hr_row(i) for i in range(PEOPLE)]), gateway)
    sequential = [raw["id"] for raw in gateway.list_raw_users(setup.realm, page_size=5)]
    for brief in (False, True):
        concurrent = [raw["id"] for raw in gateway.list_raw_users(setup.realm, page_size=5, brief=brief, workers=3)]
        assert concurrent == sequential
    assert len(sequential) == PEOPLE


class DroppingOne:
    """The store's records, one of whose representations is gone by the time it is streamed (another run of
    the same sync forgot it between the two queries)."""

    def __init__(self, records: Any, dropped: str) -> None:
        self.records = records
        self.dropped = dropped

    def load_keys(self, sync: str, realm: str) -> Any:
        return self.records.load_keys(sync, realm)

    def representations(self, sync: str, realm: str) -> Iterator[tuple[str, str]]:
        return (row for row in self.records.representations(sync, realm) if row[0] != self.dropped)


def test_a_record_gone_between_key_and_representation_is_read_from_keycloak(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    config = synced(setup, gateway)
    target = managed(gateway, setup.realm)["5007"]
    with open_store(config.store) as store:
        read = read_quick(gateway, setup.realm, SYNC, DroppingOne(store.sync_records, target.id))
    assert read.single_reads == 1
    assert sorted(live.external_id for live in read.directory.managed) == [str(5000 + i) for i in range(PEOPLE)]
    assert [user.id for user in read.directory.all_users].count(target.id) == 1
    assert target.id not in read.from_records


def test_the_brief_listing_takes_pages_sized_to_the_realm(
    setup: SyncSetup, gateway: KeycloakGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page costs Keycloak a sort of the whole realm, so a big realm is listed in fewer, bigger pages:
    here 2 pages' worth (15 users a page for 30 users) rather than pages of the minimum 5."""
    config = hr_config(setup, [hr_row(i) for i in range(30)])
    run(setup, config, gateway)
    monkeypatch.setattr(quick_read, "BRIEF_PAGE_SIZE", 5)
    monkeypatch.setattr(quick_read, "BRIEF_PAGES", 2)
    with open_store(config.store) as store:
        before = gateway.stats.requests
        read = read_quick(gateway, setup.realm, SYNC, store.sync_records)
    # Two counts (one to size the pages, one to plan them) and pages at 0, 15 and 30; no user read alone.
    assert gateway.stats.requests - before == 2 + 3
    assert read.single_reads == 0 and len(read.directory.managed) == 30
