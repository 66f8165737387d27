"""Pure parts of the Keycloak transport: retry timing, status translation, paths, token renewal."""

from __future__ import annotations

import random

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from agent.errors import AuthError, Conflict, Rejected, Unavailable
from agent.keycloak.auth import Token, token_from_response
from agent.keycloak.transport import (
    Response,
    RetryPolicy,
    _never_sent,
    admin_path,
    translate_status,
)
from agent.retry_after import parse_retry_after


@pytest.mark.parametrize(
    ("header", "expected"),
    [("5", 5.0), (" 12 ", 12.0), ("", None), (None, None), ("soon", None), ("0", 0.0)],
)
def test_retry_after_in_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_as_http_date_counts_from_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


def test_backoff_is_capped_full_jitter() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=4.0)
    rng = random.Random(7)
    for attempt in range(8):
        delay = policy.delay(attempt, None, rng)
        assert 0.0 <= delay <= min(4.0, 2**attempt)


def test_retry_after_wins_over_backoff_but_is_bounded() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    assert policy.delay(0, 3.0, rng) == 3.0
    assert policy.delay(0, 10_000.0, rng) == 60.0


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, AuthError),
        (403, AuthError),
        (409, Conflict),
        (429, Unavailable),
        (500, Unavailable),
        (503, Unavailable),
        (400, Rejected),
        (422, Rejected),
    ],
)
def test_status_translation(status: int, error_type: type[Exception]) -> None:
    error = translate_status("POST", "/admin/realms/acme/users", status, {"errorMessage": "why"})
    assert type(error) is error_type
    assert error.status == status
    assert str(error) == f"POST /admin/realms/acme/users answered {status}: why"


def test_status_translation_never_echoes_unknown_body_fields() -> None:
    body = {"credentials": [{"value": "hunter2"}], "username": "x"}
    assert "hunter2" not in str(translate_status("POST", "/p", 400, body))


def test_admin_path_encodes_each_segment() -> None:
    assert admin_path("acme corp", "roles", "a/b") == "/admin/realms/acme%20corp/roles/a%2Fb"
    assert admin_path("acme", "group-by-path", "x/y") == "/admin/realms/acme/group-by-path/x%2Fy"


def test_created_id_comes_from_location() -> None:
    assert Response(201, None, "http://kc/admin/realms/a/users/abc-123").created_id == "abc-123"
    assert Response(201, None, None).created_id is None


def test_connect_failures_count_as_never_sent() -> None:
    refused = requests.ConnectionError(NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    assert _never_sent(refused)
    assert _never_sent(requests.ConnectTimeout())
    assert not _never_sent(requests.ConnectionError(ConnectionResetError("reset by peer")))
    assert not _never_sent(requests.ReadTimeout())


def _token(lifespan: float, now: float = 100.0, refresh: str | None = "r") -> Token:
    return token_from_response(
        {"access_token": "a", "expires_in": lifespan, "refresh_token": refresh, "refresh_expires_in": 1800},
        now,
    )


@pytest.mark.parametrize(
    ("lifespan", "elapsed", "renew"),
    [
        (60, 10, False),
        (60, 41, False),
        (60, 42.5, True),
        (300, 269, False),
        (300, 271, True),
        (3, 2.0, False),
        (3, 2.2, True),
    ],
)
def test_token_is_renewed_before_it_expires(lifespan: float, elapsed: float, renew: bool) -> None:
    assert _token(lifespan).needs_refresh(100.0 + elapsed) is renew


def test_token_without_refresh_token_cannot_be_refreshed() -> None:
    assert not _token(60, refresh=None).can_refresh(100.0)
    assert _token(60).can_refresh(100.0)
    assert not _token(60).can_refresh(100.0 + 1800)
