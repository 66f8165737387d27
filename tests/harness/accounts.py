"""Set-up helpers for tests: least-privilege accounts inside a test realm, made through the gateway."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

import requests

from agent.keycloak import KeycloakGateway, UserDraft
from agent.secrets import Secret
from agent.settings import KeycloakConnection


def grant_realm_management(gateway: KeycloakGateway, realm: str, user_id: str, roles: list[str]) -> None:
    """Give a user the named roles of the realm's `realm-management` client."""
    management = gateway.find_client(realm, "realm-management")
    assert management is not None
    wanted = [role for role in gateway.list_client_roles(realm, management.id) if role.name in roles]
    assert len(wanted) == len(roles), f"unknown realm-management roles in {roles}"
    gateway.add_client_roles_to_user(realm, user_id, management.id, wanted)


def realm_admin_user(
    gateway: KeycloakGateway, admin: KeycloakConnection, realm: str, roles: list[str]
) -> KeycloakConnection:
    """A user of `realm` holding `roles` of realm-management, and a password-grant connection as it."""
    password = Secret(secrets.token_urlsafe(18))
    user_id = gateway.create_user(
        realm, UserDraft("operator", email="operator@example.org", first_name="Op", last_name="Erator")
    )
    gateway.set_password(realm, user_id, password)
    grant_realm_management(gateway, realm, user_id, roles)
    return replace(
        admin, auth_realm=realm, client_id="admin-cli", username="operator", password=password, client_secret=None
    )


def service_account(
    gateway: KeycloakGateway, admin: KeycloakConnection, realm: str, client_id: str, roles: list[str]
) -> KeycloakConnection:
    """A confidential client with a service account holding `roles`, and a client-credentials connection."""
    secret = Secret(secrets.token_urlsafe(24))
    client_uuid = gateway.create_client(
        realm,
        {
            "clientId": client_id,
            "publicClient": False,
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "secret": secret.reveal(),
        },
    )
    account = gateway.service_account_user(realm, client_uuid)
    assert account is not None
    grant_realm_management(gateway, realm, account.id, roles)
    return replace(admin, auth_realm=realm, client_id=client_id, username=None, password=None, client_secret=secret)


def lock_out_by_failed_logins(
    connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, username: str, user_id: str
) -> bool:
    """Fail password logins until brute-force detection locks the user; True once the lock shows.

    Keycloak 26 records a failure on an executor after the 401 is sent, and its brute-force protector
    refuses a login while another one is in progress: quick failures may count as fewer than were
    sent, and the lock may show only a moment after the last one.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = requests.post(
            f"{connection.url}/realms/{realm}/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli", "username": username, "password": "wrong"},
            timeout=30,
        )
        assert response.status_code != 200, "a wrong password was accepted"
        settle = time.monotonic() + 2
        while time.monotonic() < settle:
            if gateway.is_locked_out(realm, user_id):
                return True
            time.sleep(0.1)
    return False
