"""The local stack: a real Keycloak (from the Maven distribution) and a real slapd, started on 127.0.0.1.

Public contract (used by the CLI, the settings resolver and the test harness):

    up(state_dir=None, *, keycloak_port=None, ldap_port=None, components=("keycloak", "ldap"),
       timeout_seconds=180, echo=print) -> StackStatus
    down(state_dir=None, *, echo=print) -> None
    status(state_dir=None) -> StackStatus
    running_keycloak_connection(state_dir=None) -> KeycloakConnection | None
    running_ldap_connection(state_dir=None) -> LdapConnection | None
"""

from agent.stack.api import (
    KeycloakInfo,
    LdapInfo,
    StackStatus,
    down,
    running_keycloak_connection,
    running_ldap_connection,
    status,
    up,
)

__all__ = [
    "KeycloakInfo",
    "LdapInfo",
    "StackStatus",
    "down",
    "running_keycloak_connection",
    "running_ldap_connection",
    "status",
    "up",
]
