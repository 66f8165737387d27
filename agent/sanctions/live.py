"""Reading an account as the sanction planner needs it: flags, grants, sessions, consents, offline tokens."""

from __future__ import annotations

from collections.abc import Iterable

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway, User
from agent.sanctions.plan import LiveAccount
from agent.store.sanctions import ClientRoleRef

REALM_MANAGEMENT = "realm-management"


def read_account(
    gateway: KeycloakGateway, realm: str, user_id: str, *, offline: bool, clients: Iterable[str] = ()
) -> LiveAccount:
    """The account now. `offline` also counts offline sessions per client (one request per client), which
    only levels that revoke them need; client roles are read for the `clients` named (by clientId)."""
    user = gateway.get_user(realm, user_id)
    if user is None:
        raise UserGone(f"user {user_id} no longer exists in realm '{realm}'")
    offline_clients = _offline_clients(gateway, realm, user_id) if offline else frozenset()
    direct, effective = _client_roles(gateway, realm, user_id, clients)
    return LiveAccount(
        user=user,
        roles=frozenset(role.name for role in gateway.user_realm_roles(realm, user_id)),
        effective_roles=frozenset(role.name for role in gateway.user_realm_roles(realm, user_id, effective=True)),
        groups=frozenset(gateway.user_group_paths(realm, user_id)),
        sessions=gateway.user_session_count(realm, user_id),
        consents=frozenset(gateway.list_consents(realm, user_id)),
        offline_clients=offline_clients,
        client_roles=direct,
        effective_client_roles=effective,
    )


class UserGone(Rejected):
    """The sanctioned account was deleted in Keycloak."""


def _client_roles(
    gateway: KeycloakGateway, realm: str, user_id: str, clients: Iterable[str]
) -> tuple[frozenset[ClientRoleRef], frozenset[ClientRoleRef]]:
    """Direct and effective roles of the named clients; a client the realm lacks grants nothing."""
    direct: set[ClientRoleRef] = set()
    effective: set[ClientRoleRef] = set()
    for client_id in sorted(set(clients)):
        client = gateway.find_client(realm, client_id)
        if client is None:
            continue
        direct |= {ClientRoleRef(client_id, r.name) for r in gateway.user_client_roles(realm, user_id, client.id)}
        effective |= {
            ClientRoleRef(client_id, r.name)
            for r in gateway.user_client_roles(realm, user_id, client.id, effective=True)
        }
    return frozenset(direct), frozenset(effective)


def _offline_clients(gateway: KeycloakGateway, realm: str, user_id: str) -> frozenset[str]:
    return frozenset(
        client.client_id
        for client in gateway.list_clients(realm)
        if gateway.user_offline_session_count(realm, user_id, client.id)
    )


def find_user(gateway: KeycloakGateway, realm: str, reference: str) -> User | None:
    """The user named by id, username or e-mail address (tried in that order)."""
    by_id = gateway.get_user(realm, reference) if _looks_like_id(reference) else None
    if by_id is not None:
        return by_id
    by_name = gateway.find_user_by_username(realm, reference)
    if by_name is not None:
        return gateway.get_user(realm, by_name.id)
    if "@" in reference:
        by_email = gateway.find_user_by_email(realm, reference)
        if by_email is not None:
            return gateway.get_user(realm, by_email.id)
    return None


def _looks_like_id(reference: str) -> bool:
    # Keycloak ids are UUIDs; anything else would only cost a 404.
    return len(reference) == 36 and reference.count("-") == 4


def deny_reason(gateway: KeycloakGateway, realm: str, user: User, break_glass: bool) -> str | None:
    """Why this account must never be sanctioned, or None: break-glass, service account, administrator."""
    if break_glass:
        return "it is a break-glass account (deny.usernames in the sanction policy)"
    if user.service_account_client_id or user.username.startswith("service-account-"):
        return "it is a service account"
    management = gateway.find_client(realm, REALM_MANAGEMENT)
    if management is not None:
        roles = gateway.user_client_roles(realm, user.id, management.id, effective=True)
        if roles:
            names = ", ".join(sorted(role.name for role in roles))
            return f"it holds realm-management roles ({names}): administrators are handled by hand"
    return None
