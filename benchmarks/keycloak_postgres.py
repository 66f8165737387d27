"""A throwaway Keycloak on PostgreSQL for one benchmark run (`--keycloak-db postgres`).

The stack's Keycloak keeps its data in H2 files (dev-file), which Keycloak says is not for production, and
which is cheap exactly where production is not: a commit is not forced to disk. Keycloak's own LDAP sync commits
once per user, partialImport once per batch, so the database decides much of how they compare. Here Keycloak
runs on a PostgreSQL server of its own with PostgreSQL's default durability (fsync and synchronous commit on),
a fresh database each run, from a build for postgres cached next to the stack's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from agent import paths
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.stack import keycloak, processes
from agent.stack.java import JavaRuntime, find_java
from agent.stack.keycloak import KeycloakDatabase, KeycloakInstance, KeycloakPorts
from agent.stack.postgres import DURABLE_SETTINGS, SUPERUSER, PostgresServer

READY_TIMEOUT_SECONDS = 300.0
ADMIN_USER = "bench-admin"


def analyze(database_url: str) -> None:
    """ANALYZE Keycloak's tables. A fresh database has no statistics until autovacuum's next round (a
    minute apart at most), so the first arms of a run would be planned for empty tables: a database in use
    has long had them. Measured: B1 at 1k took 5.2-6.6 s in five runs without it, 2.8-4.8 s in eleven with it.
    It did not change the slowness of the first arm at a size (see sync_bench.settle_imports)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("ANALYZE")


@dataclass
class KeycloakOnPostgres:
    """A Keycloak on a PostgreSQL of its own that can be killed and started again on the same data (S11)."""

    instance: KeycloakInstance
    ports: KeycloakPorts
    java: JavaRuntime
    database: KeycloakDatabase
    database_url: str
    admin_password: Secret
    echo: Callable[[str], None]

    @property
    def connection(self) -> KeycloakConnection:
        return KeycloakConnection(
            url=keycloak.urls(self.ports)[0],
            auth_realm="master",
            client_id="admin-cli",
            username=ADMIN_USER,
            password=self.admin_password,
            verify=True,
        )

    def start(self) -> None:
        self.echo(f"Starting Keycloak {keycloak.KEYCLOAK_VERSION} on PostgreSQL (log: {self.instance.log_path}) ...")
        pid = self.instance.start(self.ports, self.java, ADMIN_USER, self.admin_password, self.database)
        self.instance.wait_ready(self.ports, pid, READY_TIMEOUT_SECONDS)

    def kill(self) -> None:
        """SIGKILL of Keycloak's process group, as a crashed server dies (PostgreSQL keeps running)."""
        kill_process_group(self.instance)


def kill_process_group(instance: KeycloakInstance) -> None:
    pid = instance.pid()
    if pid is None:
        raise RuntimeError(f"no Keycloak running from {instance.directory}")
    os.killpg(pid, signal.SIGKILL)
    if processes.wait_until(lambda: instance.pid() is None, timeout_seconds=60.0) != "ready":
        raise RuntimeError(f"Keycloak from {instance.directory} did not die within 60 s of SIGKILL")


@contextmanager
def restartable_keycloak_on_postgres(echo: Callable[[str], None] = print) -> Iterator[KeycloakOnPostgres]:
    """Start PostgreSQL and a Keycloak on it; stop both at the end (by their own pids)."""
    java = find_java()
    build = keycloak.ensure_build(paths.cache_dir(), java, echo, db_kind=keycloak.POSTGRES)
    root = Path(tempfile.mkdtemp(prefix="idp-agent-bench-kc-"))
    server = PostgresServer(settings=DURABLE_SETTINGS)
    instance = KeycloakInstance(root / "keycloak")
    try:
        server.start()
        database_url = server.create_database("keycloak")
        database = KeycloakDatabase(
            jdbc_url=server.jdbc_url(database_url.rsplit("/", 1)[1]),
            username=SUPERUSER,
            password=Secret(server.password),
        )
        http = processes.free_port()
        ports = KeycloakPorts(http=http, management=processes.free_port(exclude=frozenset({http})))
        instance.prepare_home(build.home)
        admin_password = Secret(secrets.token_urlsafe(18))
        running = KeycloakOnPostgres(instance, ports, java, database, database_url, admin_password, echo)
        running.start()
        yield running
    finally:
        instance.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def keycloak_on_postgres(
    echo: Callable[[str], None] = print,
) -> Iterator[tuple[Callable[[], None], KeycloakConnection]]:
    """Start PostgreSQL and a Keycloak on it, yield a call that runs `analyze` on its database and the admin
    connection, stop both (by their own pids)."""
    with restartable_keycloak_on_postgres(echo) as running:
        yield (lambda: analyze(running.database_url)), running.connection
