"""How to reach Keycloak and LDAP: environment variables first, else the running local stack."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from agent.errors import ConfigError
from agent.secrets import Secret, read_secret

DEFAULT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class KeycloakConnection:
    """Where Keycloak is and how to log in: an admin user (password grant) or a service account."""

    url: str
    auth_realm: str = "master"
    client_id: str = "admin-cli"
    username: str | None = None
    password: Secret | None = None
    client_secret: Secret | None = None
    # True: verify with the system CAs; a path: verify with that CA bundle; False: only when asked for.
    verify: bool | str = True
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def uses_service_account(self) -> bool:
        return self.client_secret is not None and self.username is None


@dataclass(frozen=True)
class LdapConnection:
    """Where an LDAP directory is and how to bind to it."""

    url: str
    bind_dn: str
    bind_password: Secret
    base_dn: str
    ca_file: str | None = None


def _tls_verify(env: Mapping[str, str]) -> bool | str:
    ca_file = env.get("KEYCLOAK_CA_FILE")
    insecure = env.get("KEYCLOAK_TLS_VERIFY", "true").strip().lower() in {"false", "0", "no", "off"}
    if ca_file and insecure:
        raise ConfigError("KEYCLOAK_CA_FILE and KEYCLOAK_TLS_VERIFY=false contradict each other")
    if ca_file:
        return ca_file
    return not insecure


def keycloak_connection_from_env(env: Mapping[str, str]) -> KeycloakConnection | None:
    """The connection described by KEYCLOAK_* variables, or None when KEYCLOAK_URL is unset."""
    url = env.get("KEYCLOAK_URL")
    if not url:
        return None
    username = env.get("KEYCLOAK_ADMIN_USER")
    password = read_secret(env, "KEYCLOAK_ADMIN_PASSWORD")
    client_secret = read_secret(env, "KEYCLOAK_CLIENT_SECRET")
    if username and password is None:
        raise ConfigError(
            "KEYCLOAK_ADMIN_USER is set but no password",
            hint="set KEYCLOAK_ADMIN_PASSWORD or KEYCLOAK_ADMIN_PASSWORD_FILE",
        )
    if not username and client_secret is None:
        raise ConfigError(
            "KEYCLOAK_URL is set but no credentials",
            hint="set KEYCLOAK_ADMIN_USER and KEYCLOAK_ADMIN_PASSWORD, or KEYCLOAK_CLIENT_ID and "
            "KEYCLOAK_CLIENT_SECRET for a service account",
        )
    default_client = "admin-cli" if username else ""
    client_id = env.get("KEYCLOAK_CLIENT_ID", default_client)
    if not client_id:
        raise ConfigError("KEYCLOAK_CLIENT_SECRET is set but KEYCLOAK_CLIENT_ID is not")
    return KeycloakConnection(
        url=url.rstrip("/"),
        auth_realm=env.get("KEYCLOAK_AUTH_REALM", "master"),
        client_id=client_id,
        username=username or None,
        password=password,
        client_secret=client_secret,
        verify=_tls_verify(env),
        timeout_seconds=float(env.get("KEYCLOAK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
    )


def ldap_connection_from_env(env: Mapping[str, str]) -> LdapConnection | None:
    """The connection described by LDAP_* variables, or None when LDAP_URL is unset."""
    url = env.get("LDAP_URL")
    if not url:
        return None
    password = read_secret(env, "LDAP_BIND_PASSWORD")
    bind_dn = env.get("LDAP_BIND_DN")
    base_dn = env.get("LDAP_BASE_DN")
    if not bind_dn or password is None or not base_dn:
        raise ConfigError("LDAP_URL is set but LDAP_BIND_DN, LDAP_BIND_PASSWORD(_FILE) or LDAP_BASE_DN is missing")
    return LdapConnection(url, bind_dn, password, base_dn, env.get("LDAP_CA_FILE"))


def resolve_keycloak_connection(env: Mapping[str, str] | None = None) -> KeycloakConnection:
    """KEYCLOAK_* variables when set, else the running local stack, else a clear error."""
    env = os.environ if env is None else env
    configured = keycloak_connection_from_env(env)
    if configured is not None:
        return configured
    from agent.stack import running_keycloak_connection

    local: KeycloakConnection | None = running_keycloak_connection()
    if local is None:
        raise ConfigError(
            "no Keycloak configured and no local stack running",
            hint="run `idp-agent stack up`, or set KEYCLOAK_URL with credentials (see README)",
        )
    return local


def resolve_ldap_connection(env: Mapping[str, str] | None = None) -> LdapConnection:
    """LDAP_* variables when set, else the running local stack's slapd, else a clear error."""
    env = os.environ if env is None else env
    configured = ldap_connection_from_env(env)
    if configured is not None:
        return configured
    from agent.stack import running_ldap_connection

    local_ldap: LdapConnection | None = running_ldap_connection()
    if local_ldap is None:
        raise ConfigError(
            "no LDAP configured and no local stack running",
            hint="run `idp-agent stack up`, or set LDAP_URL, LDAP_BIND_DN, LDAP_BIND_PASSWORD and LDAP_BASE_DN",
        )
    return local_ldap
