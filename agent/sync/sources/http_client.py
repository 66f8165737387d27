"""GET of JSON from an HR system, with bounded retries: the one place the HTTP sources meet the network.

Retried: connection errors, timeouts, 429 (honouring Retry-After) and 5xx, with exponential backoff and
full jitter, at most `max_attempts` tries. Not retried: TLS failures, other 4xx, bodies that are not JSON,
redirects to another server. `timeout_seconds` bounds a whole try (redirects and body included), not just
each socket read. Problems name the URL without its query or credentials, never a header value or token.
"""

from __future__ import annotations

import json
import random
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from urllib3.exceptions import DecodeError, HTTPError, ReadTimeoutError
from urllib3.exceptions import SSLError as Urllib3SSLError

from agent.retry_after import parse_retry_after
from agent.secrets import Secret
from agent.sync.sources.config import BasicAuth, BearerAuth, HttpSourceOptions

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 8.0
NOT_FOUND = 404
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}

QueryParams = Sequence[tuple[str, str]]


# requests encodes header values (basic auth too) as Latin-1; its UnicodeEncodeError quotes a character of the
# secret and its position, so it is never shown. The config refuses such values; this is the last guard.
UNSENDABLE_VALUE = "a credential or header value cannot be sent: it has characters HTTP headers cannot carry"


class FetchFailed(Exception):
    """A GET that did not produce a usable JSON answer; the message is safe to show (no secret, no query)."""


class RedirectRefused(Exception):
    """A redirect that is not followed; the message is safe to show."""


@dataclass(frozen=True)
class JsonAnswer:
    status: int
    body: Any  # None for a 404 (and for a 2xx whose JSON is null: tell them apart by status)
    headers: Mapping[str, str]
    links: Mapping[str, str]  # rel -> URL, from the Link header
    url: str


def safe_url(url: str) -> str:
    """scheme://host[:port]/path: no user info, query or fragment (they may carry keys or personal data)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def same_origin(url: str, other: str) -> bool:
    """Same scheme, host and port (the default port written out or not): the server that gets the credentials."""
    origin = _origin(url)
    return origin is not None and origin == _origin(other)


def _origin(url: str) -> tuple[str, str, int | None] | None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # an out-of-range port: no origin we would send credentials to
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", port or DEFAULT_PORTS.get(scheme)


def backoff_seconds(attempt: int, base: float, retry_after: float | None, rng: random.Random) -> float | None:
    """Seconds before the next try after try number `attempt` (1-based): full jitter, or Retry-After when it asks
    for longer; the jitter stays the least wait, so a "0" or a past date does not bring every try back at once.
    None, give up, when Retry-After asks for more than MAX_RETRY_AFTER_SECONDS: coming back sooner than asked
    would only earn another refusal, and waiting would stall the run (the Keycloak client does the same)."""
    jitter = rng.uniform(0, min(BACKOFF_CAP_SECONDS, base * 2 ** (attempt - 1)))
    if retry_after is None:
        return jitter
    if retry_after > MAX_RETRY_AFTER_SECONDS:
        return None
    return max(retry_after, jitter)


def _tls_reason(error: BaseException) -> str:
    """The certificate check's own words (e.g. 'self-signed certificate'), found in requests' wrapping."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message or ''}".removesuffix(": ")
        pending += [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
    return "TLS handshake failed"


def _describe(error: requests.RequestException, timeout_seconds: float) -> str:
    # requests' own messages repeat the full URL (query included): describe the failure in our words.
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS: {_tls_reason(error)}"
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout_seconds:g} s"
    if isinstance(error, requests.ConnectionError):
        return "connection failed or was reset"
    return f"request failed ({type(error).__name__})"


class JsonClient:
    """A requests session with the source's auth, headers and TLS settings; use as a context manager."""

    def __init__(
        self,
        options: HttpSourceOptions,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._options = options
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = requests.Session()
        self._session.headers.update(_headers(options))
        if isinstance(options.auth, BasicAuth):
            self._session.auth = (options.auth.username, options.auth.password.reveal())
        self.requests_sent = 0

    def __enter__(self) -> JsonClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._session.close()

    def get(self, url: str, params: QueryParams = (), *, not_found_ok: bool = False) -> JsonAnswer:
        """The JSON answer of a 2xx (or of a 404 when `not_found_ok`, with its JSON body, None when it has
        none); FetchFailed otherwise."""
        where = f"GET {safe_url(url)}"
        attempts = self._options.max_attempts
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                sent = self._send(url, params)
            except requests.exceptions.SSLError as error:
                raise FetchFailed(f"{where}: {_describe(error, self._options.timeout_seconds)}") from None
            except RedirectRefused as refused:
                raise FetchFailed(f"{where}: {refused}") from None
            except UnicodeError:
                raise FetchFailed(f"{where}: {UNSENDABLE_VALUE}") from None
            except requests.RequestException as error:
                problem = _describe(error, self._options.timeout_seconds)
            else:
                raw, content = sent
                if raw.status_code == NOT_FOUND and not_found_ok:
                    return JsonAnswer(raw.status_code, _json_or_none(content), raw.headers, _links(raw), raw.url)
                if 200 <= raw.status_code < 300:
                    body = _json_body(content, raw.status_code, where)
                    return JsonAnswer(raw.status_code, body, raw.headers, _links(raw), raw.url)
                problem = f"HTTP {raw.status_code}{_status_hint(raw.status_code)}"
                if raw.status_code not in RETRYABLE_STATUSES:
                    raise FetchFailed(f"{where}: {problem}")
                retry_after = parse_retry_after(raw.headers.get("Retry-After"))
            if attempt < attempts:
                delay = backoff_seconds(attempt, self._options.backoff_seconds, retry_after, self._rng)
                if delay is None:
                    asked = f"Retry-After {retry_after:.0f} s, more than the {MAX_RETRY_AFTER_SECONDS:.0f} s waited for"
                    raise FetchFailed(f"{where}: {problem} ({asked}, after {attempt} attempt(s))")
                self._sleep(delay)
        raise FetchFailed(f"{where}: {problem} (after {attempts} attempts)")

    def _send(self, url: str, params: QueryParams) -> tuple[requests.Response, bytes]:
        """The final answer and its body, all within `timeout_seconds`; same-origin redirects are followed."""
        deadline = time.monotonic() + self._options.timeout_seconds
        raw = self._request(url, params, deadline)
        for _ in range(MAX_REDIRECTS):
            if not raw.is_redirect:
                break
            raw.close()
            raw = self._request(_redirect_target(raw, url), (), deadline)
        if raw.is_redirect:
            raw.close()
            raise RedirectRefused(f"more than {MAX_REDIRECTS} redirects")
        return raw, _body_before(raw, deadline)

    def _request(self, url: str, params: QueryParams, deadline: float) -> requests.Response:
        self.requests_sent += 1
        # Redirects are followed in _send: requests would follow one to another server with our API key headers
        # (it strips only Authorization). Streamed, so the body is read against the deadline.
        # `verify` per request: requests lets REQUESTS_CA_BUNDLE override a session's verify (psf/requests#3829).
        return self._session.get(
            url,
            params=list(params),
            timeout=_seconds_left(deadline),
            verify=self._options.verify,
            allow_redirects=False,
            stream=True,
        )


def _redirect_target(raw: requests.Response, first_url: str) -> str:
    """Where a redirect leads; RedirectRefused when that is another server (it would receive the credentials)."""
    target = urljoin(raw.url, raw.headers["Location"])
    if not same_origin(target, first_url):
        raise RedirectRefused(f"redirected to another server ({safe_url(target)}), which would receive the credentials")
    return target


def _seconds_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise requests.exceptions.Timeout("deadline passed")
    return left


def _body_before(raw: requests.Response, deadline: float) -> bytes:
    """The whole body, or Timeout once the deadline passes: a server dripping bytes restarts the socket's read
    timeout with each one, so only a deadline bounds the answer."""
    chunks = []
    with raw:
        while chunk := _some_bytes(raw):
            chunks.append(chunk)
            _seconds_left(deadline)
    return b"".join(chunks)


def _some_bytes(raw: requests.Response) -> bytes:
    """What has arrived (read1 returns as soon as there is any), in requests' exception types."""
    try:
        return raw.raw.read1(CHUNK_BYTES, decode_content=True)
    except ReadTimeoutError:
        raise requests.exceptions.ReadTimeout("read timed out") from None
    except Urllib3SSLError:
        raise requests.exceptions.SSLError("TLS failed while reading the body") from None
    except DecodeError:
        raise requests.exceptions.ContentDecodingError("the body does not match its Content-Encoding") from None
    except HTTPError:  # ProtocolError and kin: the connection was cut mid-body
        raise requests.exceptions.ConnectionError("connection reset mid-body") from None


def _headers(options: HttpSourceOptions) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    headers.update(
        {name: value.reveal() if isinstance(value, Secret) else value for name, value in options.headers.items()}
    )
    if isinstance(options.auth, BearerAuth):
        headers["Authorization"] = f"Bearer {options.auth.token.reveal()}"
    return headers


def _status_hint(status: int) -> str:
    if status in {401, 403}:
        return ": check the source's credentials and their rights"
    return ""


def _json_body(content: bytes, status: int, where: str) -> Any:
    try:
        return json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FetchFailed(f"{where}: the answer is not JSON (HTTP {status})") from None


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _links(raw: requests.Response) -> dict[str, str]:
    return {rel: link["url"] for rel, link in raw.links.items() if "url" in link}
