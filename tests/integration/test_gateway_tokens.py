"""Tokens against a real Keycloak: short-lived tokens are renewed mid-run; a revoked one is replaced."""

from __future__ import annotations

import time

import pytest

from agent.errors import AuthError
from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from tests.harness.accounts import realm_admin_user, service_account

TOKEN_LIFESPAN_SECONDS = 3
RUN_SECONDS = 8.0


def _run_for(gateway: KeycloakGateway, realm: str, seconds: float, users: int) -> int:
    """Keep making calls for `seconds`, as a long sync would; returns how many succeeded."""
    calls = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert gateway.count_users(realm) == users
        calls += 1
        time.sleep(0.4)
    return calls


@pytest.fixture
def short_token_realm(gateway: KeycloakGateway, realm: str) -> str:
    gateway.update_realm(realm, {"accessTokenLifespan": TOKEN_LIFESPAN_SECONDS})
    return realm


def test_password_grant_token_is_refreshed_mid_run(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, short_token_realm: str
) -> None:
    connection = realm_admin_user(gateway, keycloak_connection, short_token_realm, ["view-users"])
    operator = KeycloakGateway.connect(connection)
    try:
        calls = _run_for(operator, short_token_realm, RUN_SECONDS, users=1)
        assert calls >= 10
        assert operator.tokens.logins == 1
        assert operator.tokens.refreshes >= 2  # 8 s of calls on 3 s tokens
        assert operator.stats.retries == 0  # renewed before expiry, never after a 401
    finally:
        operator.close()


def test_service_account_logs_in_again_before_expiry(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, short_token_realm: str
) -> None:
    connection = service_account(gateway, keycloak_connection, short_token_realm, "svc-test", ["view-users"])
    robot = KeycloakGateway.connect(connection)
    try:
        # Service-account users are not counted among a realm's users.
        _run_for(robot, short_token_realm, RUN_SECONDS, users=0)
        # Client credentials carry no refresh token: renewal is a fresh login.
        assert robot.tokens.logins >= 3
        assert robot.stats.retries == 0
    finally:
        robot.close()


def test_revoked_session_is_replaced_by_a_new_login(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str
) -> None:
    connection = realm_admin_user(gateway, keycloak_connection, realm, ["view-users"])
    operator = KeycloakGateway.connect(connection)
    try:
        assert operator.count_users(realm) == 1
        me = gateway.find_user_by_username(realm, "operator")
        assert me is not None
        gateway.logout_user(realm, me.id)  # the operator's token now belongs to a dead session

        assert operator.count_users(realm) == 1

        assert operator.tokens.logins == 2
        assert operator.stats.retries == 1  # exactly one resend, after the 401
    finally:
        operator.close()


def test_wrong_password_is_an_auth_error_without_the_password(
    keycloak_connection: KeycloakConnection, realm: str
) -> None:
    from dataclasses import replace

    from agent.secrets import Secret

    canary = "canary-Zq9-not-the-password"
    wrong = replace(keycloak_connection, password=Secret(canary))
    intruder = KeycloakGateway.connect(wrong)
    try:
        with pytest.raises(AuthError) as raised:
            intruder.count_users(realm)
        assert canary not in str(raised.value)
        assert canary not in repr(raised.value.args)
    finally:
        intruder.close()


def test_missing_role_is_an_auth_error(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str
) -> None:
    connection = service_account(gateway, keycloak_connection, realm, "svc-viewer", ["view-users"])
    viewer = KeycloakGateway.connect(connection)
    try:
        with pytest.raises(AuthError) as raised:
            viewer.create_realm_role(realm, "not-allowed")
        assert raised.value.status == 403
        assert gateway.get_realm_role(realm, "not-allowed") is None
    finally:
        viewer.close()


def test_wrong_client_secret_is_an_auth_error_without_the_secret(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str
) -> None:
    from dataclasses import replace

    from agent.secrets import Secret

    connection = service_account(gateway, keycloak_connection, realm, "svc-viewer", ["view-users"])
    canary = "canary-Xy7-not-the-secret"
    impostor = KeycloakGateway.connect(replace(connection, client_secret=Secret(canary)))
    try:
        with pytest.raises(AuthError) as raised:
            impostor.count_users(realm)
        assert raised.value.status == 401 and "svc-viewer" in str(raised.value)
        assert canary not in str(raised.value) and canary not in repr(raised.value.args)
    finally:
        impostor.close()


def test_a_disabled_account_is_refused_with_the_oauth_error_only(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str
) -> None:
    connection = realm_admin_user(gateway, keycloak_connection, realm, ["view-users"])
    me = gateway.find_user_by_username(realm, "operator")
    assert me is not None
    gateway.update_user(realm, me.id, {"enabled": False})
    operator = KeycloakGateway.connect(connection)
    try:
        with pytest.raises(AuthError, match=r"refused the login \(400 invalid_grant\)"):
            operator.count_users(realm)
    finally:
        operator.close()


def test_an_unreachable_token_endpoint_is_unavailable_not_an_auth_error(
    keycloak_connection: KeycloakConnection,
) -> None:
    from dataclasses import replace

    from agent.errors import Unavailable
    from agent.stack.processes import free_port

    nowhere = KeycloakGateway.connect(replace(keycloak_connection, url=f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(Unavailable, match="cannot reach the token endpoint"):
            nowhere.tokens.access_token()
    finally:
        nowhere.close()
