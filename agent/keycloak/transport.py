"""HTTP to Keycloak's admin API: one place for retries, status translation, write counting and read-only mode.

Retry rules: GET, PUT and DELETE are idempotent and are retried on connection errors, 429 (honouring
Retry-After) and 502/503/504, with exponential backoff and full jitter. A POST is retried only when it
provably was not processed: the connection was never made, or the server answered 429. A POST whose
answer is lost (or a proxy's 502/504 came instead) raises OutcomeUnknown, so the caller verifies by lookup
instead of replaying it. The login at the token endpoint is retried the same way, within the same attempts.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from agent.errors import (
    AuthError,
    Conflict,
    KeycloakError,
    OutcomeUnknown,
    ReadOnlyViolation,
    Rejected,
    Unavailable,
)
from agent.keycloak.auth import TokenSource, TokenUnavailable
from agent.retry_after import parse_retry_after
from agent.settings import KeycloakConnection

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# A proxy gave up waiting for Keycloak: the request may have been processed, as when the connection drops.
# 503 and 429 are refusals before processing.
ANSWER_LOST_STATUSES = frozenset({502, 504})
MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 60.0
POOL_SIZE = 16


@dataclass(frozen=True)
class Response:
    """What the gateway needs of an answer: status, parsed JSON body (or None) and Location."""

    status: int
    body: Any
    location: str | None

    @property
    def created_id(self) -> str | None:
        """The id at the end of the Location header that Keycloak sends after a create."""
        if not self.location:
            return None
        return self.location.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class RequestStats:
    """Counts of what went over the wire; `writes` lets a test assert that a run made zero writes."""

    by_method: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, *, retry: bool) -> None:
        with self._lock:
            self.by_method[method] += 1
            if retry:
                self.retries += 1
            elif method not in {"GET", "HEAD"}:
                self.writes += 1

    @property
    def requests(self) -> int:
        return sum(self.by_method.values())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = MAX_ATTEMPTS
    base_seconds: float = BACKOFF_BASE_SECONDS
    cap_seconds: float = BACKOFF_CAP_SECONDS

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds to wait before attempt `attempt + 1`: full jitter, or longer when Retry-After asks for it.

        The jitter stays the least wait, so clients told "0" or a past date do not all come back at once. A
        Retry-After above MAX_RETRY_AFTER_SECONDS gives None, give up: coming back sooner than asked would only
        earn another refusal, and waiting that long would stall the run; it stops as incomplete instead.
        """
        jitter = rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))
        if retry_after is None:
            return jitter
        if retry_after > MAX_RETRY_AFTER_SECONDS:
            return None
        return max(retry_after, jitter)


def admin_path(realm: str, *parts: str) -> str:
    """`/admin/realms/{realm}/...` with every segment percent-encoded (names may hold spaces or slashes)."""
    encoded = [quote(realm, safe="")] + [quote(part, safe="") for part in parts]
    return "/admin/realms/" + "/".join(encoded)


def realm_path(realm: str, *parts: str) -> str:
    """`/realms/{realm}/...` (a realm's own endpoints, plugins' among them), every segment percent-encoded."""
    return "/realms/" + "/".join(quote(part, safe="") for part in (realm, *parts))


def _never_sent(error: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (connect failed or timed out)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason: object = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError)


def _message_of(body: Any) -> str:
    """Keycloak's own error text (errorMessage/error_description/error), never the request body."""
    if isinstance(body, Mapping):
        for key in ("errorMessage", "error_description", "error"):
            if body.get(key):
                return str(body[key])[:300]
    return ""


def translate_status(method: str, path: str, status: int, body: Any) -> KeycloakError:
    """One place that turns an HTTP status into our error type."""
    detail = _message_of(body)
    what = f"{method} {path} answered {status}" + (f": {detail}" if detail else "")
    if status in {401, 403}:
        return AuthError(what, status=status, hint="the account lacks the realm-management role for this call")
    if status == 409:
        return Conflict(what, status=status)
    if status == 429 or status >= 500:
        return Unavailable(what, status=status, hint="Keycloak is overloaded or restarting; run again later")
    return Rejected(what, status=status)


class Transport:
    """Sends admin API requests with a valid token; shared by a gateway and its read-only twin."""

    def __init__(
        self,
        connection: KeycloakConnection,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.connection = connection
        self.stats = RequestStats()
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        # One session for every thread (the sync's workers): urllib3's connection pool is thread-safe, the admin
        # API sets no cookies, tokens and counters are locked; POOL_SIZE bounds the concurrent connections.
        self._session = requests.Session()
        # urllib3 must not retry on its own: retries are decided here, per method (the login's too).
        adapter = HTTPAdapter(max_retries=0, pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.verify = connection.verify
        self.tokens = TokenSource(connection, session=self._session)

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        read_only: bool = False,
        missing_ok: bool = False,
        reads_only: bool = False,
    ) -> Response | None:
        """Send one logical request; None for a 404 when `missing_ok`, else our error types.

        `reads_only` marks a POST that changes nothing (a realm export): allowed read-only, not a write, and
        resent like a GET (a 503 or a lost answer in the read phase must not stop the run).
        """
        if read_only and method not in {"GET", "HEAD"} and not reads_only:
            raise ReadOnlyViolation(f"read-only gateway refused {method} {path}")
        idempotent = method in IDEMPOTENT_METHODS or reads_only
        attempt = 0
        reauthenticated = False
        # An earlier attempt may have been processed though its answer was lost (only idempotent methods are resent).
        may_have_applied = False
        while True:
            self.stats.record("GET" if reads_only else method, retry=attempt > 0 or reauthenticated)
            try:
                token = self.tokens.access_token()
                raw = self._send(method, path, params, body, token)
            except TokenUnavailable as error:
                # The token endpoint briefly down or busy: the login is retried like the call itself.
                delay = self._retry_delay(attempt, error.retry_after)
                if delay is None:
                    raise
                self._sleep(delay)
                attempt += 1
                continue
            except requests.RequestException as error:
                if not idempotent and not _never_sent(error):
                    raise OutcomeUnknown(
                        f"{method} {path}: connection lost before the answer ({type(error).__name__})",
                        hint="the write may have been applied; it is verified by lookup, never replayed blindly",
                    ) from None
                delay = self._retry_delay(attempt, None)
                may_have_applied = may_have_applied or not _never_sent(error)
                if delay is None and may_have_applied and method in {"PUT", "DELETE"} and not reads_only:
                    # A write sent whose answers were all lost: made or not, nobody can say (its caller journals so).
                    raise OutcomeUnknown(
                        f"{method} {path}: no answer after {attempt + 1} attempts ({type(error).__name__})",
                        hint="the write may have been applied; the next run reads it again",
                    ) from None
                if delay is None:
                    raise Unavailable(
                        f"{method} {path}: Keycloak unreachable after {attempt + 1} attempts ({type(error).__name__})",
                        hint=f"check that Keycloak is running at {self.connection.url}",
                    ) from None
                self._sleep(delay)
                attempt += 1
                continue
            if raw.status_code == 401 and not reauthenticated:
                # The token may have been revoked or expired early: log in again once, then resend.
                self.tokens.invalidate(token)
                reauthenticated = True
                continue
            if raw.status_code in ANSWER_LOST_STATUSES and not idempotent:
                raise OutcomeUnknown(
                    f"{method} {path} answered {raw.status_code}: a proxy stopped waiting for Keycloak",
                    status=raw.status_code,
                    hint="the write may have been applied; it is verified by lookup, never replayed blindly",
                )
            delay = self._resend_delay(idempotent, raw, attempt)
            if delay is not None:
                may_have_applied = may_have_applied or raw.status_code in ANSWER_LOST_STATUSES
                self._sleep(delay)
                attempt += 1
                continue
            if raw.status_code == 404 and method == "DELETE" and may_have_applied:
                # An earlier attempt deleted it: gone is what was asked for.
                return Response(raw.status_code, None, None)
            return self._finish(method, path, raw, missing_ok)

    def _resend_delay(self, idempotent: bool, raw: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before sending again after this answer; None when the answer is final."""
        if raw.status_code not in RETRYABLE_STATUSES:
            return None
        # A 429 means the request was refused before processing, so even a POST may be resent.
        if not idempotent and raw.status_code != 429:
            return None
        return self._retry_delay(attempt, parse_retry_after(raw.headers.get("Retry-After")))

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`; None when the attempts are spent or the wait asked for is
        too long."""
        if attempt + 1 >= self._retry.max_attempts:
            return None
        return self._retry.delay(attempt, retry_after, self._rng)

    def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: Any, token: str
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        return self._session.request(
            method,
            self.connection.url + path,
            params=dict(params) if params else None,
            data=data,
            headers=headers,
            timeout=self.connection.timeout_seconds,
            allow_redirects=False,
            # Per request: requests lets REQUESTS_CA_BUNDLE override a session's verify (psf/requests#3829).
            verify=self.connection.verify,
        )

    def _finish(self, method: str, path: str, raw: requests.Response, missing_ok: bool) -> Response | None:
        body = _json_or_none(raw)
        if raw.status_code == 404 and missing_ok:
            return None
        if raw.status_code >= 400:
            raise translate_status(method, path, raw.status_code, body)
        return Response(raw.status_code, body, raw.headers.get("Location"))


def _json_or_none(raw: requests.Response) -> Any:
    if not raw.content:
        return None
    try:
        return raw.json()
    except ValueError:
        return None
