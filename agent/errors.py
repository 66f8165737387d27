"""The exception tree, grouped by what the operator should do.

    AgentError
    ├── ConfigError          fix the config; collected and reported before any call (exit 1)
    ├── SourceUnavailable    a source could not be read completely; skip it this run
    ├── KeycloakError        something went wrong talking to Keycloak
    │   ├── Unavailable      connection failed, timed out or 5xx: retry later
    │   │   └── OutcomeUnknown   a write was sent but its answer was lost: verify before retrying
    │   ├── AuthError        401/403 or a failed login: stop, fix credentials or roles
    │   ├── Conflict         409: the object exists already
    │   └── Rejected         400/422 and other 4xx: this object was refused; record and continue
    ├── ReadOnlyViolation    a write reached a read-only (dry-run) gateway: a bug, stop
    ├── SafetyStop           a safety brake tripped; nothing was applied
    └── StackError           the local Keycloak/OpenLDAP stack could not be set up

Messages never carry secrets or request bodies: callers put names and realms in them, not payloads.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error idp-agent raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class ConfigError(AgentError):
    """The configuration is wrong; nothing was sent to Keycloak."""


class SourceUnavailable(AgentError):
    """A source of identities could not be read completely."""


class KeycloakError(AgentError):
    """Talking to Keycloak failed."""

    def __init__(self, message: str, *, status: int | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status


class Unavailable(KeycloakError):
    """Keycloak could not be reached or answered 5xx/429 after the retries allowed."""


class OutcomeUnknown(Unavailable):
    """A write was sent but no answer came back: it may or may not have been applied."""


class AuthError(KeycloakError):
    """Login failed, or the account lacks the roles for this call."""


class Conflict(KeycloakError):
    """The object exists already (HTTP 409)."""


class Rejected(KeycloakError):
    """Keycloak refused this object or request (HTTP 4xx other than 401/403/404/409)."""


class ReadOnlyViolation(AgentError):
    """A write was attempted through a read-only gateway."""


class SafetyStop(AgentError):
    """A safety brake stopped the run before any write."""


class StackError(AgentError):
    """The local Keycloak/OpenLDAP stack could not be set up or reached."""


class Interrupted(AgentError):
    """The run was asked to stop (the daemon's SIGTERM): what was finished is recorded; the next run converges."""
