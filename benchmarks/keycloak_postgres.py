"""A throwaway Keycloak on PostgreSQL for one benchmark run (`--keycloak-db postgres`).

The stack's Keycloak keeps its data in H2 files (dev-file), which Keycloak says is not for production, and
which is cheap exactly where production is not: a commit is not forced to disk. Keycloak's own LDAP sync commits
once per user, partialImport once per batch, so the database decides much of how they compare. Here Keycloak
runs on a PostgreSQL server of its own with PostgreSQL's default durability (fsync and synchronous commit on),
a fresh database each run, from a build for postgres cached next to the stack's.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from agent import paths
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.stack import keycloak, processes
from agent.stack.java import find_java
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


@contextmanager
def keycloak_on_postgres(
    echo: Callable[[str], None] = print,
) -> Iterator[tuple[Callable[[], None], KeycloakConnection]]:
    """Start PostgreSQL and a Keycloak on it, yield a call that runs `analyze` on its database and the admin
    connection, stop both (by their own pids)."""
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
        admin_password = Secret(secrets.token_urlsafe(18))
        instance.prepare_home(build.home)
        echo(f"Starting Keycloak {keycloak.KEYCLOAK_VERSION} on PostgreSQL (log: {instance.log_path}) ...")
        pid = instance.start(ports, java, ADMIN_USER, admin_password, database)
        instance.wait_ready(ports, pid, READY_TIMEOUT_SECONDS)
        yield (
            lambda: analyze(database_url),
            KeycloakConnection(
                url=keycloak.urls(ports)[0],
                auth_realm="master",
                client_id="admin-cli",
                username=ADMIN_USER,
                password=admin_password,
                verify=True,
            ),
        )
    finally:
        instance.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
