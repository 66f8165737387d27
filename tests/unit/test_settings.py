"""Connection settings from the environment, and secrets that never show their value."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.secrets import Secret, read_secret
from agent.settings import keycloak_connection_from_env, ldap_connection_from_env


def test_admin_user_connection() -> None:
    connection = keycloak_connection_from_env(
        {"KEYCLOAK_URL": "https://kc.example.org/", "KEYCLOAK_ADMIN_USER": "admin", "KEYCLOAK_ADMIN_PASSWORD": "pw"}
    )
    assert connection is not None
    assert connection.url == "https://kc.example.org"
    assert (connection.client_id, connection.auth_realm, connection.verify) == ("admin-cli", "master", True)
    assert not connection.uses_service_account


def test_service_account_connection_with_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    env = {
        "KEYCLOAK_URL": "https://kc",
        "KEYCLOAK_CLIENT_ID": "idp-agent-sync",
        "KEYCLOAK_CLIENT_SECRET_FILE": str(secret_file),
        "KEYCLOAK_AUTH_REALM": "acme",
        "KEYCLOAK_CA_FILE": "/etc/ca.pem",
    }
    connection = keycloak_connection_from_env(env)
    assert connection is not None and connection.uses_service_account
    assert connection.client_secret == Secret("s3cret")
    assert connection.verify == "/etc/ca.pem"
    assert "s3cret" not in repr(connection)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KEYCLOAK_URL": "https://kc"}, "KEYCLOAK_URL is set but no credentials"),
        ({"KEYCLOAK_URL": "https://kc", "KEYCLOAK_ADMIN_USER": "a"}, "KEYCLOAK_ADMIN_USER is set but no password"),
        ({"KEYCLOAK_URL": "https://kc", "KEYCLOAK_CLIENT_SECRET": "s"}, "KEYCLOAK_CLIENT_ID is not"),
        (
            {
                "KEYCLOAK_URL": "https://kc",
                "KEYCLOAK_ADMIN_USER": "a",
                "KEYCLOAK_ADMIN_PASSWORD": "p",
                "KEYCLOAK_CA_FILE": "/ca",
                "KEYCLOAK_TLS_VERIFY": "false",
            },
            "contradict",
        ),
        ({"LDAP_URL": "ldap://x"}, "LDAP_BIND_DN"),
    ],
)
def test_incomplete_settings_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        keycloak_connection_from_env(env)
        ldap_connection_from_env(env)


def test_no_url_means_not_configured() -> None:
    assert keycloak_connection_from_env({}) is None
    assert ldap_connection_from_env({}) is None


def test_tls_verification_is_on_unless_turned_off() -> None:
    base = {"KEYCLOAK_URL": "https://kc", "KEYCLOAK_ADMIN_USER": "a", "KEYCLOAK_ADMIN_PASSWORD": "p"}
    on = keycloak_connection_from_env(base)
    off = keycloak_connection_from_env({**base, "KEYCLOAK_TLS_VERIFY": "false"})
    assert on is not None and on.verify is True
    assert off is not None and off.verify is False


def test_secret_never_shows_its_value() -> None:
    secret = Secret("canary-123")
    assert "canary-123" not in repr(secret)
    assert "canary-123" not in str(secret)
    assert "canary-123" not in f"{secret} {[secret]} { ({'k': secret}) }"
    assert secret.reveal() == "canary-123"


def test_secret_fingerprint_detects_change_without_keeping_value() -> None:
    salt = b"salt"
    assert Secret("a").fingerprint(salt) == Secret("a").fingerprint(salt)
    assert Secret("a").fingerprint(salt) != Secret("b").fingerprint(salt)
    assert Secret("a").fingerprint(salt) != "a"


def test_read_secret_prefers_nothing_when_both_set(tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_text("x")
    with pytest.raises(ConfigError, match="both X and X_FILE"):
        read_secret({"X": "1", "X_FILE": str(path)}, "X")


def test_unreadable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="X_FILE: cannot read"):
        read_secret({"X_FILE": str(tmp_path / "missing")}, "X")
