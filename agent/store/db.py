"""Opening the store: `open_store(url)` -> a migrated `Store` with runs, staging, baselines and the journal.

URLs follow SQLAlchemy's form: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`; the default is
`<state dir>/idp-agent.db`. `postgresql://user@host:5432/db` opens the store on PostgreSQL (see
agent.store.postgres; the password comes from the URL, PGPASSWORD or PGPASSWORD_FILE).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from agent.errors import ConfigError
from agent.paths import state_dir
from agent.store.appeals import Appeals
from agent.store.baselines import Baselines
from agent.store.campaigns import Campaigns
from agent.store.clock import Clock, system_clock
from agent.store.connection import Database, SqliteDatabase
from agent.store.daemon_jobs import DaemonJobs
from agent.store.journal import Journal
from agent.store.logins import LoginEvents
from agent.store.migrations import MIGRATIONS, Migration, migrate
from agent.store.postgres import POSTGRES_SCHEMES, PostgresDatabase
from agent.store.runs import Runs
from agent.store.sanctions import Sanctions
from agent.store.staging import Staging
from agent.store.sync_records import SyncRecords

DEFAULT_FILE_NAME = "idp-agent.db"
SQLITE_PREFIX = "sqlite:///"


class Store:
    """The agent's durable state. Safe to share between threads (see agent.store.connection); close it when
    done, or use it as a context manager."""

    def __init__(self, db: Database, schema_version: int) -> None:
        self.db = db
        self.schema_version = schema_version
        self.runs = Runs(db)
        self.staging = Staging(db)
        self.baselines = Baselines(db)
        self.journal = Journal(db)
        self.sanctions = Sanctions(db)
        self.logins = LoginEvents(db)
        self.appeals = Appeals(db)
        self.campaigns = Campaigns(db)
        self.daemon_jobs = DaemonJobs(db)
        self.sync_records = SyncRecords(db)

    @property
    def path(self) -> Path | None:
        """The SQLite file; None for a store on PostgreSQL."""
        return self.db.path

    def atomic(self) -> AbstractContextManager[None]:
        """Everything the block writes to the store on this thread, in one transaction (see Database.atomic)."""
        return self.db.atomic()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def default_store_url() -> str:
    return SQLITE_PREFIX + str(state_dir() / DEFAULT_FILE_NAME)


def sqlite_path(url: str) -> Path:
    """The file a `sqlite:///...` URL names. Messages show only the scheme of other URLs: a PostgreSQL URL
    may carry a password."""
    scheme = url.partition(":")[0].lower()
    if scheme != "sqlite" or not url.startswith(SQLITE_PREFIX):
        raise ConfigError(
            f"store URL with scheme '{scheme}' is not supported",
            hint="write sqlite:///path/to/file.db or postgresql://user@host:5432/db",
        )
    raw = url.removeprefix(SQLITE_PREFIX)
    if not raw or raw == ":memory:" or raw.startswith(("file:", "?")) or "?" in raw:
        raise ConfigError(
            "the store needs a file path after sqlite:/// (no :memory:, no query parameters)",
            hint="each thread opens its own connection, so the store must be a file: sqlite:///path/to/file.db",
        )
    return Path(raw)


def open_store(
    url: str | None = None, *, now: Clock = system_clock, migrations: Sequence[Migration] = MIGRATIONS
) -> Store:
    """Open (creating if needed) and migrate the store at `url`, default `<state dir>/idp-agent.db`.
    `now` is the clock every record is stamped with; `migrations` is for tests of older schemas."""
    db = open_database(url or default_store_url(), now=now)
    try:
        version = migrate(db, migrations)
    except BaseException:
        db.close()
        raise
    return Store(db, version)


def open_database(url: str, *, now: Clock = system_clock) -> Database:
    """The backend the URL names, not yet migrated. Nothing connects until the first transaction."""
    if url.partition(":")[0].lower() in POSTGRES_SCHEMES:
        return PostgresDatabase(url, now=now)
    path = sqlite_path(url)
    create_private_file(path)
    return SqliteDatabase(path, now=now)


def create_private_file(path: Path) -> None:
    """Create the store file readable by its owner only (it names people); an existing file keeps its mode."""
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise ConfigError(
            f"cannot create the store {path}: {error.strerror}", hint="check the directory and its permissions"
        ) from None
    os.close(descriptor)
