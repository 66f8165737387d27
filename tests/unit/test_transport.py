"""The Keycloak transport: retry timing, status translation, paths, token renewal, and the retry loop against a
scripted HTTP session (no server)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from agent.errors import AuthError, Conflict, OutcomeUnknown, Rejected, Unavailable
from agent.keycloak.auth import Token, token_from_response
from agent.keycloak.transport import (
    MAX_RETRY_AFTER_SECONDS,
    Response,
    RetryPolicy,
    Transport,
    _never_sent,
    admin_path,
    translate_status,
)
from agent.retry_after import parse_retry_after
from agent.secrets import Secret
from agent.settings import KeycloakConnection


@pytest.mark.parametrize(
    ("header", "expected"),
    [("5", 5.0), (" 12 ", 12.0), ("", None), (None, None), ("soon", None), ("0", 0.0), ("²", None), ("٣", None)],
)
def test_retry_after_in_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_as_http_date_counts_from_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "EST+05")  # POSIX rule: needs no time zone database
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_not_utc")
def test_retry_after_date_in_minus_0000_is_utc_whatever_the_local_zone() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 -0000", now=1445412480.0) == 10.0


def test_backoff_is_capped_full_jitter() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=4.0)
    rng = random.Random(7)
    for attempt in range(8):
        delay = policy.delay(attempt, None, rng)
        assert delay is not None and 0.0 <= delay <= min(4.0, 2**attempt)


def test_retry_after_wins_over_backoff_up_to_a_cap_above_which_it_gives_up() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    assert policy.delay(0, 3.0, rng) == 3.0
    assert policy.delay(0, MAX_RETRY_AFTER_SECONDS, rng) == MAX_RETRY_AFTER_SECONDS
    assert policy.delay(0, MAX_RETRY_AFTER_SECONDS + 1, rng) is None


def test_jitter_stays_the_least_wait_when_retry_after_says_now() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=4.0)
    rng = random.Random(3)
    waits = [policy.delay(2, 0.0, rng) for _ in range(20)]
    assert all(wait is not None and 0 < wait <= 4.0 for wait in waits)
    assert len(set(waits)) == 20  # spread out, not all at once


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


# --- the retry loop, against a scripted HTTP session -------------------------------------------------------------

Answer = requests.Response | requests.RequestException

LOST = requests.ConnectionError(ConnectionResetError("reset by peer"))  # sent; the answer never came
REFUSED = requests.ConnectionError(NewConnectionError(None, "refused"))  # type: ignore[arg-type]


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    raw = requests.Response()
    raw.status_code = status
    raw._content = b"" if body is None else json.dumps(body).encode()
    raw.headers.update(headers or {})
    return raw


def token_ok() -> requests.Response:
    return answer(200, {"access_token": "t", "expires_in": 300})


class ScriptedKeycloak:
    """Stands in for the transport's session: the token endpoint and the admin API each answer from their own
    script, in order, the last answer repeating; an exception in a script is raised instead."""

    def __init__(self, api: list[Answer], token: list[Answer] | None = None) -> None:
        self.scripts = {"token": token or [token_ok()], "api": api}
        self.sent: list[tuple[str, str]] = []

    def __call__(self, method: str, url: str, **_: Any) -> requests.Response:
        where = "token" if url.endswith("/protocol/openid-connect/token") else "api"
        self.sent.append((where, method))
        script = self.scripts[where]
        step = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(step, requests.RequestException):
            raise step
        return step

    def count(self, where: str) -> int:
        return sum(1 for sent_to, _ in self.sent if sent_to == where)


class Waits(list[float]):
    """Stands in for time.sleep: the waits the transport chose, without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def transport_for(keycloak: ScriptedKeycloak, waits: Waits, monkeypatch: pytest.MonkeyPatch) -> Transport:
    connection = KeycloakConnection("http://kc.test", username="admin", password=Secret("pw"))
    transport = Transport(connection, sleep=waits, rng=random.Random(5))
    monkeypatch.setattr(transport._session, "request", keycloak)  # the login shares the session
    return transport


def test_a_briefly_unreachable_token_endpoint_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    keycloak = ScriptedKeycloak(api=[answer(200, [])], token=[REFUSED, LOST, answer(503), token_ok()])
    waits = Waits()

    response = transport_for(keycloak, waits, monkeypatch).request("GET", "/admin/realms/r/users")

    assert response is not None and response.status == 200
    assert keycloak.sent == [("token", "POST")] * 4 + [("api", "GET")]
    assert len(waits) == 3


def test_a_busy_token_endpoint_is_waited_for_as_it_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    keycloak = ScriptedKeycloak(api=[answer(200, [])], token=[answer(429, headers={"Retry-After": "7"}), token_ok()])
    waits = Waits()

    transport_for(keycloak, waits, monkeypatch).request("GET", "/admin/realms/r/users")

    assert waits == [7.0]


def test_a_token_endpoint_busy_for_good_is_unavailable_not_a_credentials_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keycloak = ScriptedKeycloak(api=[answer(200, [])], token=[answer(429)])
    transport = transport_for(keycloak, Waits(), monkeypatch)

    with pytest.raises(Unavailable, match=r"token endpoint .* answered 429") as raised:
        transport.request("GET", "/admin/realms/r/users")

    assert raised.value.status == 429
    assert keycloak.sent == [("token", "POST")] * RetryPolicy().max_attempts


@pytest.mark.parametrize("status", [400, 401])
def test_wrong_credentials_are_not_retried(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    keycloak = ScriptedKeycloak(api=[answer(200, [])], token=[answer(status, {"error": "invalid_grant"})])
    waits = Waits()

    with pytest.raises(AuthError):
        transport_for(keycloak, waits, monkeypatch).request("GET", "/admin/realms/r/users")

    assert keycloak.sent == [("token", "POST")]
    assert waits == []


@pytest.mark.parametrize("status", [502, 504])
def test_a_proxy_giving_up_on_a_post_leaves_its_outcome_unknown(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    keycloak = ScriptedKeycloak(api=[answer(status)])

    with pytest.raises(OutcomeUnknown) as raised:
        transport_for(keycloak, Waits(), monkeypatch).request("POST", "/admin/realms/r/users", body={})

    assert raised.value.status == status
    assert keycloak.count("api") == 1  # verified by the caller, never resent here


def test_a_503_to_a_post_is_certainly_not_done(monkeypatch: pytest.MonkeyPatch) -> None:
    keycloak = ScriptedKeycloak(api=[answer(503)])

    with pytest.raises(Unavailable) as raised:
        transport_for(keycloak, Waits(), monkeypatch).request("POST", "/admin/realms/r/users", body={})

    assert type(raised.value) is Unavailable
    assert keycloak.count("api") == 1


@pytest.mark.parametrize("first", [LOST, answer(502), answer(504)], ids=["lost", "502", "504"])
def test_a_replayed_delete_that_finds_nothing_has_done_its_work(first: Answer, monkeypatch: pytest.MonkeyPatch) -> None:
    keycloak = ScriptedKeycloak(api=[first, answer(404)])

    transport_for(keycloak, Waits(), monkeypatch).request("DELETE", "/admin/realms/r/users/u1")

    assert keycloak.count("api") == 2


@pytest.mark.parametrize(
    "before", [[], [REFUSED], [answer(503)], [answer(429)]], ids=["first", "refused", "503", "429"]
)
def test_a_delete_that_finds_nothing_is_rejected_when_no_earlier_attempt_was_processed(
    before: list[Answer], monkeypatch: pytest.MonkeyPatch
) -> None:
    keycloak = ScriptedKeycloak(api=[*before, answer(404)])

    with pytest.raises(Rejected):
        transport_for(keycloak, Waits(), monkeypatch).request("DELETE", "/admin/realms/r/users/u1")


def test_an_unreadable_retry_after_falls_back_to_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    keycloak = ScriptedKeycloak(api=[answer(429, headers={"Retry-After": "²"}), answer(200, [])])
    waits = Waits()

    transport_for(keycloak, waits, monkeypatch).request("GET", "/admin/realms/r/users")

    assert len(waits) == 1 and 0 <= waits[0] <= RetryPolicy().base_seconds


def test_a_retry_after_above_the_cap_gives_up_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    keycloak = ScriptedKeycloak(api=[answer(503, headers={"Retry-After": "3600"})])
    waits = Waits()

    with pytest.raises(Unavailable):
        transport_for(keycloak, waits, monkeypatch).request("GET", "/admin/realms/r/users")

    assert waits == []
    assert keycloak.count("api") == 1
