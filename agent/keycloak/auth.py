"""Admin tokens from the realm's OpenID token endpoint (password or client-credentials grant), refreshed before they
expire."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from agent.errors import AuthError, Unavailable
from agent.retry_after import parse_retry_after
from agent.settings import KeycloakConnection

# Refresh when less than this share of a token's life is left, so a slow request never carries an
# expired token. Short-lived tokens (tests use a few seconds) still get a usable margin.
REFRESH_WHEN_LIFE_LEFT_RATIO = 0.3
MAX_REFRESH_MARGIN_SECONDS = 30.0


class TokenUnavailable(Unavailable):
    """The token endpoint could not be reached, was busy (429) or failed (5xx): worth asking again, not before
    `retry_after` seconds when it said so. The transport retries the login as it retries an admin call."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


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

    def __init__(
        self,
        connection: KeycloakConnection,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        """`session`: the admin transport's, so the login reuses its connections (default: one of its own)."""
        self._connection = connection
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self.logins = 0
        self.refreshes = 0
        self._session = session or requests.Session()
        realm = quote(connection.auth_realm, safe="")
        self._token_url = f"{connection.url}/realms/{realm}/protocol/openid-connect/token"

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
                answer = self._grant({"grant_type": "refresh_token", "refresh_token": current.refresh_token or ""})
                self.refreshes += 1
                return token_from_response(answer, now)
            except AuthError:
                pass  # the session behind the refresh token ended: log in afresh
        answer = self._grant(self._login_form())
        self.logins += 1
        return token_from_response(answer, now)

    def _login_form(self) -> dict[str, str]:
        connection = self._connection
        if connection.uses_service_account:
            return {"grant_type": "client_credentials"}
        password = connection.password.reveal() if connection.password else ""
        return {"grant_type": "password", "username": connection.username or "", "password": password}

    def _grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        """One call of the OpenID token endpoint. Neither the form (it holds the password or the client secret)
        nor the answer's description (it may echo input) goes into an error."""
        connection = self._connection
        fields = {**form, "client_id": connection.client_id}
        if connection.client_secret is not None:
            fields["client_secret"] = connection.client_secret.reveal()
        where = f"realm '{connection.auth_realm}' at {connection.url}"
        try:
            raw = self._session.post(
                self._token_url,
                data=fields,
                headers={"Accept": "application/json"},
                timeout=connection.timeout_seconds,
                allow_redirects=False,
                verify=connection.verify,  # per request, as the transport does (psf/requests#3829)
            )
        except requests.RequestException:
            raise TokenUnavailable(f"cannot reach the token endpoint of {where}") from None
        status = raw.status_code
        if status == 429 or status >= 500:
            # Busy or failing, not a verdict on the credentials: a later login may well succeed.
            retry_after = parse_retry_after(raw.headers.get("Retry-After"))
            raise TokenUnavailable(
                f"token endpoint of {where} answered {status}", status=status, retry_after=retry_after
            )
        if status == 401:
            raise AuthError(
                f"login to {where} as '{connection.username or connection.client_id}' failed",
                status=401,
                hint="check the credentials (KEYCLOAK_ADMIN_USER/PASSWORD or KEYCLOAK_CLIENT_ID/SECRET)",
            )
        if status >= 400:
            reason = _oauth_error_code(raw.content)
            raise AuthError(f"token endpoint of {where} refused the login ({status} {reason})", status=status)
        answer = _json_object(raw)
        if "access_token" not in answer:
            raise TokenUnavailable(
                f"token endpoint of {where} answered {status} without an access token", status=status
            )
        return answer


def _json_object(raw: requests.Response) -> dict[str, Any]:
    try:
        parsed = raw.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _oauth_error_code(body: object) -> str:
    """The OAuth `error` code of a token-endpoint answer (never its other fields, which may echo input)."""
    try:
        parsed = json.loads(body) if isinstance(body, bytes | str) else {}
    except ValueError:
        return ""
    code = parsed.get("error", "") if isinstance(parsed, dict) else ""
    return str(code)[:60]
