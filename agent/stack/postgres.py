"""A local PostgreSQL server from Debian's packages (initdb + postgres), for the store's tests and for a
Keycloak on PostgreSQL in the benchmarks.

initdb and postgres refuse to run as root, so under root the server runs as the `postgres` system user
(its data directory is made for that user); otherwise as the current user. The server listens on 127.0.0.1
on a free port and on a unix socket in its own temporary directory, asks TCP clients for a password
(scram-sha-256, a random one per server), and is stopped by its own pid.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from agent.errors import StackError
from agent.stack.processes import free_port

PG_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SUPERUSER = "postgres"
INITDB_OPTIONS = ("--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
# PostgreSQL's own defaults for durability (fsync, synchronous commit): what a production Keycloak runs on.
DURABLE_SETTINGS = ("max_connections=200",)
# Throwaway data: no fsync, so creating a database per test stays cheap.
THROWAWAY_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200")


def pg_binary(name: str) -> Path | None:
    """`initdb`/`postgres` from Debian's versioned directory, else from PATH."""
    for folder in sorted(PG_ROOT.glob("*/bin"), reverse=True):  # newest version first
        if (folder / name).is_file():
            return folder / name
    found = shutil.which(name)
    return Path(found) if found else None


@dataclass(frozen=True)
class RunAs:
    """Whom the server's processes run as: the `postgres` user under root, else ourselves."""

    uid: int
    gid: int

    @classmethod
    def for_server(cls) -> RunAs:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid())
        try:
            account = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise StackError(
                f"running as root, and there is no '{SERVICE_USER}' user to run PostgreSQL as",
                hint="apt-get install -y postgresql (it creates the user)",
            ) from None
        return cls(account.pw_uid, account.pw_gid)

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()


@dataclass
class PostgresServer:
    """One server: `start()`, `create_database()` as often as needed, `stop()`."""

    settings: tuple[str, ...] = DURABLE_SETTINGS
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="idp-agent-pg-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres", *, with_password: bool = True) -> str:
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{database}"

    def jdbc_url(self, database: str) -> str:
        """The database's JDBC URL, without credentials (for Keycloak's --db-url)."""
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        initdb, postgres = pg_binary("initdb"), pg_binary("postgres")
        if initdb is None or postgres is None:
            raise StackError("PostgreSQL is not installed", hint="apt-get install -y postgresql")
        run_as = RunAs.for_server()
        for folder in (self.root, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chown(folder, run_as.uid, run_as.gid)
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        os.chown(password_file, run_as.uid, run_as.gid)
        subprocess.run(
            [str(initdb), "-D", str(self.data_dir), "-U", SUPERUSER, f"--pwfile={password_file}", *INITDB_OPTIONS],
            check=True,
            capture_output=True,
            cwd=self.root,
            user=run_as.uid if run_as.switches else None,
            group=run_as.gid if run_as.switches else None,
            extra_groups=[] if run_as.switches else None,
        )
        with self.log_file.open("wb") as log:
            os.chown(self.log_file, run_as.uid, run_as.gid)
            self.process = subprocess.Popen(
                [str(postgres), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port)]
                + ["-k", str(self.socket_dir)]
                + [argument for setting in self.settings for argument in ("-c", setting)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                user=run_as.uid if run_as.switches else None,
                group=run_as.gid if run_as.switches else None,
                extra_groups=[] if run_as.switches else None,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """Bounded polling: connect until the server answers, it exits, or the timeout passes."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise StackError(f"postgres exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise StackError(f"postgres did not answer within {START_TIMEOUT_S}s: {self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            # FILE_COPY: cheaper than WAL-logging the template for a throwaway database.
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by create_database, ending sessions left open (WITH FORCE)."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnects clients, then exits), killed only if it hangs; by our own pid."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
