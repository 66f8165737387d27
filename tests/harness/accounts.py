"""Set-up helpers for tests: least-privilege accounts inside a test realm, made through the gateway."""

from __future__ import annotations

import secrets
from dataclasses import replace

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
