"""Test harness: a real Keycloak and a real slapd for the session, a fresh realm for every test.

Backends: by default the local stack (started through `agent.stack`, in `.state/test` of the repo, and
stopped at the end if this session started it); KEYCLOAK_URL/LDAP_URL to use running servers;
IDP_TEST_BACKEND=containers for testcontainers when a Docker engine exists.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import stack
from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection, LdapConnection, keycloak_connection_from_env, ldap_connection_from_env
from tests.harness.backends import containers_keycloak, local_stack
from tests.harness.ldap_directory import DirectoryFactory
from tests.harness.postgres import PostgresServer, postgres_session
from tests.harness.store_backends import PostgresBackend, SqliteBackend, StoreBackend

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_STATE_DIR = REPO_ROOT / ".state" / "test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/unit are `unit`, tests under tests/integration are `integration`. A unit test's
    variant marked integration (the PostgreSQL param of `store_backend`) is not `unit`: it needs a server."""
    for item in items:
        path = Path(str(item.fspath))
        if "unit" in path.parts and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)
        elif "integration" in path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def keycloak_connection() -> Iterator[KeycloakConnection]:
    """Admin connection to a real Keycloak for the whole session."""
    backend = os.environ.get("IDP_TEST_BACKEND", "local")
    if backend == "containers":
        yield from containers_keycloak()
        return
    configured = keycloak_connection_from_env(os.environ)
    if configured is not None:
        yield configured
        return
    state = test_state_dir()
    for _ in local_stack(state, ("keycloak", "ldap")):
        connection = stack.running_keycloak_connection(state)
        assert connection is not None, f"the test stack in {state} has no running Keycloak"
        yield connection


def test_state_dir() -> Path:
    return Path(os.environ.get("IDP_TEST_STATE_DIR", TEST_STATE_DIR))


@pytest.fixture(scope="session")
def demo_ldap(keycloak_connection: KeycloakConnection) -> Iterator[LdapConnection]:
    """The stack's slapd with the demo directory (people, groups, departments), or LDAP_URL when set."""
    configured = ldap_connection_from_env(os.environ)
    if configured is not None:
        yield configured
        return
    state = test_state_dir()
    for _ in local_stack(state, ("ldap",)):
        connection = stack.running_ldap_connection(state)
        assert connection is not None, f"the test stack in {state} has no running slapd"
        yield connection


@pytest.fixture
def ldap_directory(tmp_path: Path) -> Iterator[DirectoryFactory]:
    """Make throwaway slapd directories: `ldap_directory(people, limits=SizeLimits(soft=100))`."""
    factory = DirectoryFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def gateway(keycloak_connection: KeycloakConnection) -> Iterator[KeycloakGateway]:
    gateway = KeycloakGateway.connect(keycloak_connection)
    yield gateway
    gateway.close()


def realm_name_for(test_name: str) -> str:
    """A unique, readable realm name for one test: `t-<test name>-<random>`."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40]
    return f"t-{slug}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def realm(gateway: KeycloakGateway, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh realm for this test only, removed afterwards."""
    name = realm_name_for(request.node.name)
    gateway.create_realm(name)
    yield name
    if gateway.get_realm(name) is not None:
        gateway.delete_realm(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL (Debian's packages) for the session, started on first use, stopped at the end."""
    yield from postgres_session()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """The store on SQLite, then on PostgreSQL (a fresh database, dropped after the test; that variant is an
    integration test)."""
    backend: StoreBackend = (
        SqliteBackend(tmp_path)
        if request.param == "sqlite"
        else PostgresBackend(request.getfixturevalue("postgres_server"))
    )
    yield backend
    backend.cleanup()
