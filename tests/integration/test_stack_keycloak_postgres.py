"""A Keycloak on PostgreSQL (what `--keycloak-db postgres` of the benchmarks runs): built for postgres into a
cache directory of its own, started with the database's password by environment only, keeping its data in
PostgreSQL. The build is made here first when no benchmark made it yet (~30 s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agent import paths
from agent.keycloak import KeycloakGateway
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.stack import keycloak, processes
from agent.stack.java import find_java
from agent.stack.keycloak import KeycloakDatabase, KeycloakInstance, KeycloakPorts
from tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.integration

READY_TIMEOUT_SECONDS = 300.0


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[tuple[KeycloakDatabase, str]]:
    url = postgres_server.create_database("keycloak")
    name = url.rsplit("/", 1)[1]
    yield KeycloakDatabase(postgres_server.jdbc_url(name), "postgres", Secret(postgres_server.password)), url
    postgres_server.drop_database(url)


def test_keycloak_runs_on_postgresql_without_its_password_on_any_command_line(
    tmp_path: Path, database: tuple[KeycloakDatabase, str]
) -> None:
    settings, url = database
    java = find_java()
    build = keycloak.ensure_build(paths.cache_dir(), java, echo=lambda _line: None, db_kind=keycloak.POSTGRES)
    assert build.home.name == keycloak.build_key(keycloak.POSTGRES) != keycloak.build_key()
    instance = KeycloakInstance(tmp_path / "keycloak")
    instance.prepare_home(build.home)
    http = processes.free_port()
    ports = KeycloakPorts(http=http, management=processes.free_port(exclude=frozenset({http})))
    admin_password = Secret("pg-admin-" + Path(tmp_path).name)
    pid = instance.start(ports, java, "admin", admin_password, settings)
    try:
        instance.wait_ready(ports, pid, READY_TIMEOUT_SECONDS)
        members = processes.group_members(pid)
        assert members, "kc.sh and its java child"
        assert not [member for member in members if settings.password.reveal() in processes.cmdline(member)]
        connection = KeycloakConnection(
            url=keycloak.urls(ports)[0], auth_realm="master", client_id="admin-cli", username="admin",
            password=admin_password, verify=True,
        )  # fmt: skip
        gateway = KeycloakGateway.connect(connection)
        try:
            gateway.create_realm("on-postgres")
        finally:
            gateway.close()
        with psycopg.connect(url) as check:
            row = check.execute("SELECT count(*) FROM realm WHERE name = 'on-postgres'").fetchone()
        assert row == (1,)  # the realm is in PostgreSQL, not in H2 files
        assert not (instance.db_dir / "keycloakdb.mv.db").exists()
    finally:
        assert instance.stop()
