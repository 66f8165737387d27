"""The one gateway to Keycloak: only this package speaks HTTP to Keycloak (admin API, token endpoint, plugin pack)."""

from agent.keycloak.gateway import PAGE_SIZE, KeycloakGateway
from agent.keycloak.models import Client, Group, Realm, Role, User, UserDraft
from agent.keycloak.transport import RequestStats, RetryPolicy

__all__ = [
    "PAGE_SIZE",
    "Client",
    "Group",
    "KeycloakGateway",
    "Realm",
    "RequestStats",
    "RetryPolicy",
    "Role",
    "User",
    "UserDraft",
]
