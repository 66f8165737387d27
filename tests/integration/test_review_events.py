"""Login events harvested from a real Keycloak into the store: idempotent, paged, resumable, and read back by the
snapshot as last-login."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from agent.cli import cli
from agent.keycloak import KeycloakGateway, UserDraft
from agent.review.events import harvest_events
from agent.review.snapshot import take_snapshot
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.store import Store, open_store
from tests.harness.cli import keycloak_env

PASSWORD = Secret("Review-Events-2026!")


@pytest.fixture(autouse=True)
def cli_uses_the_test_keycloak(keycloak_connection: KeycloakConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """CliRunner runs the CLI in this process: point it at the test's Keycloak, not a stack that may run."""
    for name, value in keycloak_env(keycloak_connection).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def log_in(connection: KeycloakConnection, realm: str, username: str, password: Secret) -> int:
    """A password-grant login through admin-cli; the HTTP status (200 ok, 400 invalid_grant)."""
    response = requests.post(
        f"{connection.url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": "admin-cli", "username": username, "password": password.reveal()},
        timeout=30,
    )
    return response.status_code


def user_with_password(gateway: KeycloakGateway, realm: str, username: str) -> str:
    user_id = gateway.create_user(
        realm, UserDraft(username, email=f"{username}@example.org", first_name="A", last_name="B", email_verified=True)
    )
    gateway.set_password(realm, user_id, PASSWORD)
    return user_id


def test_harvest_keeps_each_login_once_and_feeds_last_login(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str, store: Store
) -> None:
    gateway.update_realm(realm, {"eventsEnabled": True, "enabledEventTypes": ["LOGIN", "LOGIN_ERROR"]})
    alice = user_with_password(gateway, realm, "alice")
    bob = user_with_password(gateway, realm, "bob")
    assert [log_in(keycloak_connection, realm, name, PASSWORD) for name in ("alice", "alice", "bob")] == [200] * 3
    assert log_in(keycloak_connection, realm, "bob", Secret("wrong")) == 400  # invalid_grant

    first = harvest_events(gateway, store, realm, page_size=2)
    assert (first.fetched, first.stored, first.pages) == (4, 4, 3)  # pages of 2: 2 + 2 + an empty one
    assert first.warning == ""
    again = harvest_events(gateway, store, realm, page_size=2)
    assert again.stored == 0 and again.fetched == 4  # the overlap re-reads, the store keeps each once
    assert store.logins.count(realm) == 4

    logins = store.logins.last_logins(realm)
    assert set(logins) == {alice, bob}
    assert first.high_water is not None and max(logins.values()) <= first.high_water

    # A later login moves alice's last login forward; the snapshot reads it from the store.
    assert log_in(keycloak_connection, realm, "alice", PASSWORD) == 200
    later = harvest_events(gateway, store, realm)
    assert later.stored == 1
    snapshot = take_snapshot(gateway, store, realm)
    assert snapshot.last_login[alice] > logins[alice]
    assert snapshot.last_login[bob] == logins[bob]
    assert snapshot.logins_known_since is not None


def test_a_realm_without_events_says_so(gateway: KeycloakGateway, realm: str, store: Store) -> None:
    report = harvest_events(gateway, store, realm)
    assert report.stored == 0
    assert "eventsEnabled is off" in report.warning
    gateway.update_realm(realm, {"eventsEnabled": True, "enabledEventTypes": ["LOGOUT"]})
    assert "does not store LOGIN, LOGIN_ERROR events" in harvest_events(gateway, store, realm).warning


def test_cli_harvests_into_the_configured_store(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path
) -> None:
    gateway.update_realm(realm, {"eventsEnabled": True, "enabledEventTypes": ["LOGIN", "LOGIN_ERROR"]})
    user_id = user_with_password(gateway, realm, "carol")
    assert log_in(keycloak_connection, realm, "carol", PASSWORD) == 200
    config = tmp_path / "idp-agent.yaml"
    config.write_text(f"store: sqlite:///{tmp_path / 'cli.db'}\n")

    result = CliRunner().invoke(cli, ["events", "harvest", "--realm", realm, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"{realm}: 1 new event(s) of 1 read" in result.output
    with open_store(f"sqlite:///{tmp_path / 'cli.db'}") as store:
        assert set(store.logins.last_logins(realm)) == {user_id}
    repeated = CliRunner().invoke(cli, ["events", "harvest", "--realm", realm, "--config", str(config)])
    assert f"{realm}: 0 new event(s) of 1 read" in repeated.output
