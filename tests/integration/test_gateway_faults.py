"""Faults between the agent and a real Keycloak, injected by a loopback proxy (never a fake Keycloak).

Safe calls are retried; a POST whose answer is lost is verified by lookup, never replayed blindly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from agent.errors import Unavailable
from agent.keycloak import KeycloakGateway, RetryPolicy, UserDraft
from agent.settings import KeycloakConnection
from tests.harness.fault_proxy import Fault, FaultKind, FaultProxy

FAST_RETRY = RetryPolicy(max_attempts=4, base_seconds=0.01, cap_seconds=0.05)
USERS_PATH = r"^/admin/realms/[^/]+/users(\?|$)"


class SleepLog:
    """Stands in for time.sleep so tests see the waits the retry policy chose, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def proxy(keycloak_connection: KeycloakConnection) -> Iterator[FaultProxy]:
    with FaultProxy(keycloak_connection.url) as running:
        yield running


@pytest.fixture
def sleeps() -> SleepLog:
    return SleepLog()


@pytest.fixture
def proxied(proxy: FaultProxy, keycloak_connection: KeycloakConnection, sleeps: SleepLog) -> Iterator[KeycloakGateway]:
    gateway = KeycloakGateway.connect(replace(keycloak_connection, url=proxy.url), retry=FAST_RETRY, sleep=sleeps)
    yield gateway
    gateway.close()


def test_reset_get_is_retried(
    proxied: KeycloakGateway, gateway: KeycloakGateway, proxy: FaultProxy, realm: str
) -> None:
    gateway.create_user(realm, UserDraft("visible"))
    proxy.add(Fault("reset_before", USERS_PATH, method="GET"))

    users = list(proxied.list_users(realm))

    assert [user.username for user in users] == ["visible"]
    assert [entry.forwarded for entry in proxy.seen("GET", USERS_PATH)] == [False, True]
    assert proxied.stats.retries == 1


def test_truncated_get_is_retried(
    proxied: KeycloakGateway, gateway: KeycloakGateway, proxy: FaultProxy, realm: str
) -> None:
    for index in range(30):
        gateway.create_user(realm, UserDraft(f"u{index:02d}"))
    proxy.add(Fault("truncate", USERS_PATH, method="GET"))

    users = list(proxied.list_users(realm))

    assert len(users) == 30
    assert len(proxy.seen("GET", USERS_PATH)) == 2


def test_post_whose_answer_is_lost_is_adopted_not_replayed(
    proxied: KeycloakGateway, gateway: KeycloakGateway, proxy: FaultProxy, realm: str
) -> None:
    # Keycloak commits the user, then the connection is reset before the answer arrives.
    proxy.add(Fault("reset_after", USERS_PATH, method="POST"))

    user_id = proxied.create_user(realm, UserDraft("lost-answer", email="lost@example.org"))

    posts = proxy.seen("POST", USERS_PATH)
    assert len(posts) == 1  # never sent twice
    [user] = list(gateway.list_users(realm))
    assert (user.id, user.username) == (user_id, "lost-answer")


def test_post_reset_before_forwarding_is_sent_again_after_lookup(
    proxied: KeycloakGateway, gateway: KeycloakGateway, proxy: FaultProxy, realm: str
) -> None:
    proxy.add(Fault("reset_before", USERS_PATH, method="POST"))

    user_id = proxied.create_user(realm, UserDraft("second-try"))

    assert [entry.forwarded for entry in proxy.seen("POST", USERS_PATH)] == [False, True]
    # The resend happened only after an exact lookup found nothing.
    lookups = proxy.seen("GET", r"/users\?.*username=second-try")
    assert len(lookups) == 1
    assert [user.id for user in gateway.list_users(realm)] == [user_id]


def test_503_on_post_is_not_retried(
    proxied: KeycloakGateway, gateway: KeycloakGateway, proxy: FaultProxy, realm: str
) -> None:
    proxy.add(Fault("status", USERS_PATH, method="POST", status=503))

    with pytest.raises(Unavailable) as raised:
        proxied.create_user(realm, UserDraft("not-retried"))

    assert raised.value.status == 503
    assert len(proxy.seen("POST", USERS_PATH)) == 1
    assert gateway.find_user_by_username(realm, "not-retried") is None


def test_429_honours_retry_after_even_for_post(
    proxied: KeycloakGateway, gateway: KeycloakGateway, proxy: FaultProxy, sleeps: SleepLog, realm: str
) -> None:
    proxy.add(Fault("status", USERS_PATH, method="POST", status=429, retry_after="2", times=2))

    user_id = proxied.create_user(realm, UserDraft("patient"))

    assert sleeps.waits == [2.0, 2.0]
    assert [entry.forwarded for entry in proxy.seen("POST", USERS_PATH)] == [False, False, True]
    found = gateway.find_user_by_username(realm, "patient")
    assert found is not None and found.id == user_id


def test_503_storm_on_get_gives_up_after_bounded_attempts(
    proxied: KeycloakGateway, proxy: FaultProxy, sleeps: SleepLog, realm: str
) -> None:
    proxy.add(Fault("status", USERS_PATH, method="GET", status=503, times=100))

    with pytest.raises(Unavailable):
        list(proxied.list_users(realm))

    assert len(proxy.seen("GET", USERS_PATH)) == FAST_RETRY.max_attempts
    assert len(sleeps.waits) == FAST_RETRY.max_attempts - 1
    assert all(0 <= wait <= FAST_RETRY.cap_seconds for wait in sleeps.waits)


@pytest.mark.parametrize("fault", ["status", "reset_after"])
def test_a_post_that_only_reads_is_resent_like_a_get(
    proxied: KeycloakGateway, gateway: KeycloakGateway, proxy: FaultProxy, realm: str, fault: FaultKind
) -> None:
    """A realm's partial export is a POST that changes nothing: a 503 or a lost answer during the sync's read
    phase is retried, not taken for a write of unknown outcome that stops the run."""
    gateway.create_group(realm, "staff")
    proxy.add(Fault(fault, r"/partial-export", method="POST", status=503))

    groups = proxied.list_groups(realm)

    assert [group.path for group in groups] == ["/staff"]
    assert [entry.forwarded for entry in proxy.seen("POST", r"/partial-export")] == [fault == "reset_after", True]
