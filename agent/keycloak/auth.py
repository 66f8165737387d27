"""Admin tokens: obtained with python-keycloak's OpenID client, refreshed before they expire."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keycloak import KeycloakOpenID
from keycloak.exceptions import KeycloakAuthenticationError, KeycloakConnectionError, KeycloakError

from agent.errors import AuthError, Unavailable
from agent.settings import KeycloakConnection

# Refresh when less than this share of a token's life is left, so a slow request never carries an
# expired token. Short-lived tokens (tests use a few seconds) still get a usable margin.
REFRESH_WHEN_LIFE_LEFT_RATIO = 0.3
MAX_REFRESH_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float
    refresh_token: str | None
    refresh_expires_at: float
    lifespan_seconds: float

    def needs_refresh(self, now: float) -> bool:
        margin = min(MAX_REFRESH_MARGIN_SECONDS, self.lifespan_seconds * REFRESH_WHEN_LIFE_LEFT_RATIO)
        return now >= self.expires_at - margin

    def can_refresh(self, now: float) -> bool:
        return self.refresh_token is not None and now < self.refresh_expires_at - 1.0


def token_from_response(response: dict[str, Any], now: float) -> Token:
    """Our token value from a token-endpoint answer; lifetimes are counted from `now` (monotonic)."""
    lifespan = float(response.get("expires_in", 60))
    refresh = response.get("refresh_token")
    refresh_lifespan = float(response.get("refresh_expires_in", 0) or 0)
    return Token(
        access_token=str(response["access_token"]),
        expires_at=now + lifespan,
        refresh_token=str(refresh) if refresh else None,
        refresh_expires_at=now + refresh_lifespan if refresh else now,
        lifespan_seconds=lifespan,
    )


class TokenSource:
    """Hands out a valid admin access token; thread-safe, logs in again when refreshing fails."""

    def __init__(self, connection: KeycloakConnection, clock: Callable[[], float] = time.monotonic) -> None:
        self._connection = connection
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self.logins = 0
        self.refreshes = 0
        self._openid = KeycloakOpenID(
            server_url=connection.url + "/",
            realm_name=connection.auth_realm,
            client_id=connection.client_id,
            client_secret_key=connection.client_secret.reveal() if connection.client_secret else None,
            verify=connection.verify,
            timeout=int(connection.timeout_seconds),
            max_retries=0,
        )

    def access_token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or self._token.needs_refresh(now):
                self._token = self._renew(self._token, now)
            return self._token.access_token

    def invalidate(self, rejected_token: str) -> None:
        """Drop the token Keycloak just rejected (401), unless another thread already replaced it."""
        with self._lock:
            if self._token is not None and self._token.access_token == rejected_token:
                self._token = None

    def _renew(self, current: Token | None, now: float) -> Token:
        if current is not None and current.can_refresh(now):
            try:
                answer = self._call(lambda: self._openid.refresh_token(current.refresh_token or ""))
                self.refreshes += 1
                return token_from_response(answer, now)
            except AuthError:
                pass  # the session behind the refresh token ended: log in afresh
        answer = self._call(self._login)
        self.logins += 1
        return token_from_response(answer, now)

    def _login(self) -> dict[str, Any]:
        connection = self._connection
        if connection.uses_service_account:
            result: dict[str, Any] = self._openid.token(grant_type="client_credentials")
            return result
        password = connection.password.reveal() if connection.password else ""
        result = self._openid.token(username=connection.username, password=password)
        return result

    def _call(self, request: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        where = f"realm '{self._connection.auth_realm}' at {self._connection.url}"
        try:
            return request()
        except KeycloakAuthenticationError:
            raise AuthError(
                f"login to {where} as '{self._connection.username or self._connection.client_id}' failed",
                status=401,
                hint="check the credentials (KEYCLOAK_ADMIN_USER/PASSWORD or KEYCLOAK_CLIENT_ID/SECRET)",
            ) from None
        except KeycloakConnectionError:
            raise Unavailable(f"cannot reach the token endpoint of {where}") from None
        except KeycloakError as error:
            status = getattr(error, "response_code", None)
            reason = _oauth_error_code(getattr(error, "response_body", None))
            if status is not None and status >= 500:
                raise Unavailable(f"token endpoint of {where} answered {status}", status=status) from None
            raise AuthError(f"token endpoint of {where} refused the login ({status} {reason})", status=status) from None


def _oauth_error_code(body: object) -> str:
    """The OAuth `error` code of a token-endpoint answer (never its other fields, which may echo input)."""
    try:
        parsed = json.loads(body) if isinstance(body, bytes | str) else {}
    except ValueError:
        return ""
    code = parsed.get("error", "") if isinstance(parsed, dict) else ""
    return str(code)[:60]
