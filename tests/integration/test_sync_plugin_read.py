"""The sync's read through the idp-agent Keycloak plugin (`keycloak_read: plugin`, the default) against the real
Keycloak: it sees what a full listing sees, attribute drift made by hand is put right at the next run, its
records serve a later run without the plugin, and a realm with user federation is read through the admin API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.keycloak import KeycloakGateway, User
from agent.keycloak.models import UserDraft
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.store import open_store
from agent.sync.agent_config import AgentConfig
from agent.sync.quick_read import read_by_plugin, read_full
from agent.sync.runner import NO_PLUGIN_READ, Prepared, run_sync
from tests.harness.federation import add_disabled_ldap_federation
from tests.harness.sync_setup import NOW, SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed

PEOPLE = 8


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


def run(config: AgentConfig, gateway: KeycloakGateway, **options: Any) -> tuple[Any, Prepared, Any]:
    with open_store(config.store) as store:
        return run_sync(config, config.sync(SYNC), gateway, store, env={}, **{"now": NOW, **options})


def with_read(config: AgentConfig, keycloak_read: str) -> AgentConfig:
    syncs = tuple(sync.model_copy(update={"keycloak_read": keycloak_read}) for sync in config.syncs)
    return config.model_copy(update={"syncs": syncs})


def comparable(user: User) -> tuple[Any, ...]:
    return (
        user.id, user.username, user.email, user.first_name, user.last_name, user.enabled, user.email_verified,
        dict(user.attributes), frozenset(user.required_actions), user.federation_link,
    )  # fmt: skip


def test_the_plugin_read_sees_what_a_full_listing_sees(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    config = hr_config(setup, [hr_row(i) for i in range(PEOPLE)])
    first, prepared, _ = run(config, gateway)
    assert first.status == "succeeded" and prepared.live_read is not None and prepared.live_read.via_plugin
    # Someone else's account, one with a required action, and a client's service account (never listed).
    gateway.create_user(setup.realm, UserDraft(username="visitor", enabled=False, email="v@example.org"))
    target = managed(gateway, setup.realm)["5003"]
    gateway.update_user(setup.realm, target.id, {"requiredActions": ["UPDATE_PASSWORD"]})
    gateway.create_client(setup.realm, {"clientId": "robot", "publicClient": False, "serviceAccountsEnabled": True})

    by_plugin = read_by_plugin(gateway, setup.realm, SYNC)
    listed = read_full(gateway, setup.realm, SYNC)
    assert by_plugin is not None and by_plugin.full and by_plugin.via_plugin and not listed.via_plugin
    plugin_managed = sorted(map(comparable, (live.user for live in by_plugin.directory.managed)))
    assert plugin_managed == sorted(map(comparable, (live.user for live in listed.directory.managed)))
    assert len(plugin_managed) == PEOPLE
    assert sorted(by_plugin.directory.all_users, key=lambda user: user.id) == sorted(
        listed.directory.all_users, key=lambda user: user.id
    )
    assert "visitor" in {user.username for user in by_plugin.directory.all_users}
    assert not any(user.username.startswith("service-account-") for user in by_plugin.directory.all_users)
    assert by_plugin.fresh == () and len(listed.fresh) == PEOPLE + 1  # the plugin's read makes no records
    # Page by page (3 users a page, each after the last username of the one before): the same users, once each.
    paged = read_by_plugin(gateway, setup.realm, SYNC, page_size=3)
    assert paged is not None
    assert sorted(map(comparable, paged.directory.all_users)) == sorted(map(comparable, listed.directory.all_users))
    assert len(paged.directory.all_users) == PEOPLE + 1


def test_the_realm_read_for_the_plan_gives_the_joiners_their_default_role_and_required_actions(
    setup: SyncSetup, gateway: KeycloakGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The realm is read once a run, in one request to the plugin: its settings (may usernames change), groups and
    roles for the plan also name the default role and the default required actions the joiners are given, so the
    first import does not wait on more reads."""
    gateway.update_required_action(setup.realm, "VERIFY_EMAIL", {"enabled": True, "defaultAction": True})
    config = hr_config(setup, [hr_row(i) for i in range(3)])
    calls: list[str] = []
    names = ("get_realm", "_export", "list_required_actions", "list_realm_roles", "list_groups", "get_user_profile")
    for name in names:
        monkeypatch.setattr(gateway, name, _counted(calls, name, getattr(gateway, name)))
    _, _, outcome = run(config, gateway)
    assert outcome.counts() == {"create:applied": 3}
    assert calls == []
    for user in managed(gateway, setup.realm).values():
        roles = {role.name for role in gateway.user_role_mappings(setup.realm, user.id)}
        assert f"default-roles-{setup.realm}" in roles
        assert "VERIFY_EMAIL" in user.required_actions


def _counted(calls: list[str], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return method(*args, **kwargs)

    return counted


def test_attribute_drift_made_by_hand_is_put_right_at_the_next_run(setup: SyncSetup, gateway: KeycloakGateway) -> None:
    config = hr_config(setup, [hr_row(i) for i in range(PEOPLE)])
    run(config, gateway)
    target = managed(gateway, setup.realm)["5005"]
    attributes = {key: list(values) for key, values in target.attributes.items()}
    gateway.update_user(setup.realm, target.id, {"attributes": {**attributes, "department": ["Edited by hand"]}})

    _, prepared, outcome = run(config, gateway)
    assert prepared.live_read is not None and prepared.live_read.via_plugin
    assert [(item.action, item.user_id) for item in prepared.plan.items] == [("update", target.id)]
    assert outcome is not None and not outcome.failed
    after = gateway.get_user(setup.realm, target.id)
    assert after is not None and after.attributes.get("department") == ("Sales",)
    _, again, _ = run(config, gateway)
    assert again.plan.is_empty


def test_a_later_run_without_the_plugin_reads_in_full_once_then_quickly(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    """Runs through the plugin keep no records and drop older ones, which could hide a change made since: a run
    without the plugin reads everyone in full, and its records serve the quick read of the run after."""
    config = hr_config(setup, [hr_row(i) for i in range(PEOPLE)])
    run(with_read(config, "admin-api"), gateway)  # records of everyone, as they were then
    # An attribute a brief listing does not show, changed through the plugin-read path.
    moved = [hr_row(i, Department="Support") if i == 2 else hr_row(i) for i in range(PEOPLE)]
    changed_run, changed, _ = run(hr_config(setup, moved), gateway)
    assert changed.live_read is not None and changed.live_read.via_plugin and changed_run.summary == ""
    assert "update" in [item.action for item in changed.plan.items]
    # Back to the old department (the file written anew): a stale record would say there is nothing to do.
    config = hr_config(setup, [hr_row(i) for i in range(PEOPLE)])
    full_run, full, _ = run(with_read(config, "admin-api"), gateway)
    assert full.live_read is not None and not full.live_read.via_plugin and full.live_read.full
    assert full_run.summary == ""  # the admin API as configured: nothing to say
    assert "update" in [item.action for item in full.plan.items]

    _, quick, _ = run(with_read(config, "admin-api"), gateway)
    read = quick.live_read
    assert read is not None and not read.via_plugin and not read.full
    # Only the user the full run changed is read (its record is dropped before a write); the rest are records.
    assert read.single_reads == 1 and quick.plan.is_empty


def test_a_realm_with_user_federation_is_synced_through_the_admin_api(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    add_disabled_ldap_federation(gateway, setup.realm)
    config = hr_config(setup, [hr_row(i) for i in range(3)])
    first, prepared, _ = run(config, gateway)
    assert first.status == "succeeded" and prepared.live_read is not None and not prepared.live_read.via_plugin
    assert first.summary == NO_PLUGIN_READ  # said, as the run is slower than the operator asked for
    _, second, _ = run(config, gateway)
    assert second.live_read is not None and not second.live_read.via_plugin and second.plan.is_empty
    assert len(managed(gateway, setup.realm)) == 3


def test_a_realm_that_would_drop_the_attributes_stops_the_run_though_keycloak_is_read_alongside_the_sources(
    setup: SyncSetup, gateway: KeycloakGateway
) -> None:
    """The realm checks run on the Keycloak-read thread, while the sources are read: their error still reaches
    the run, before it starts and before any write."""
    from dataclasses import replace

    from agent.errors import ConfigError

    profile = gateway.get_user_profile(setup.realm)
    gateway.update_user_profile(setup.realm, replace(profile, unmanaged_attribute_policy=None))
    config = hr_config(setup, [hr_row(i) for i in range(PEOPLE)])
    with pytest.raises(ConfigError, match="would silently drop"):
        run(config, gateway)
    assert managed(gateway, setup.realm) == {}
    with open_store(config.store) as store:
        assert store.runs.list_runs() == []


def test_a_page_of_more_users_than_one_in_list_holds_carries_every_users_rows(
    gateway: KeycloakGateway, realm: str
) -> None:
    """A page's attributes, required actions and credential types are read by its users' ids, 1,000 ids a query
    (Oracle's limit): the users past the first thousand of a page get theirs too, and no one gets another's."""
    from dataclasses import replace

    profile = gateway.get_user_profile(realm)
    gateway.update_user_profile(realm, replace(profile, unmanaged_attribute_policy="ADMIN_EDIT"))
    people = 1001
    users = [
        {"username": f"p{index:04d}", "enabled": True, "attributes": {"n": [str(index)]},
         "requiredActions": ["VERIFY_EMAIL"] if index % 2 else []}
        for index in range(people)
    ]  # fmt: skip
    imported = {user.username: user.id for user in gateway.import_users(realm, users)}
    last_in_id_order = max(imported.values())
    gateway.set_password(realm, last_in_id_order, Secret("A-password-1!"))

    raws = gateway.plugin_raw_users(realm, page_size=5000)
    assert raws is not None
    read = {str(raw["username"]): raw for raw in raws}
    assert len(read) == people
    for index in range(people):
        raw = read[f"p{index:04d}"]
        assert raw["attributes"] == {"n": [str(index)]}
        assert raw["requiredActions"] == (["VERIFY_EMAIL"] if index % 2 else [])
        assert raw["credentialTypes"] == (["password"] if raw["id"] == last_in_id_order else [])
