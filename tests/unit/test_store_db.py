"""Opening the store: URLs, SQLite settings, and versioned migrations on real stores (SQLite files, and
PostgreSQL databases as integration tests)."""

from __future__ import annotations

import sqlite3
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.store import ManualClock, SchemaError, StoreError, default_store_url, open_store
from agent.store.connection import Database, Transaction, switch_to_wal
from agent.store.db import open_database, sqlite_path
from agent.store.migrations import MIGRATIONS, Migration, check_sequence, migrate
from tests.harness.store_backends import StoreBackend

T0 = datetime(2026, 11, 29, 16, 55, 1, tzinfo=UTC)


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as raw:
        return {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def versions(backend: StoreBackend, url: str | None = None) -> list[tuple[int, str]]:
    found = backend.rows("SELECT version, name FROM schema_version ORDER BY version", url=url)
    return [(row["version"], row["name"]) for row in found]


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///state/idp-agent.db", Path("state/idp-agent.db")),
        ("sqlite:////var/lib/idp-agent/store.db", Path("/var/lib/idp-agent/store.db")),
        ("sqlite:///store.db", Path("store.db")),
    ],
)
def test_sqlite_urls_name_a_file(url: str, path: Path) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://agent:hunter2@db/idp", "scheme 'mysql' is not supported"),
        ("sqlite:///:memory:", "needs a file path"),
        ("sqlite:///", "needs a file path"),
        ("sqlite:///x.db?mode=ro", "needs a file path"),
        ("sqlite://x.db", "scheme 'sqlite' is not supported"),
    ],
)
def test_unsupported_urls_are_config_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        sqlite_path(url)
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.hint


def test_default_store_lives_in_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDP_AGENT_STATE_DIR", str(tmp_path / "state"))
    assert default_store_url() == f"sqlite:///{tmp_path}/state/idp-agent.db"
    with open_store() as store:
        assert store.path == tmp_path / "state" / "idp-agent.db"
    assert (tmp_path / "state" / "idp-agent.db").is_file()


def test_fresh_store_is_private_wal_with_foreign_keys(tmp_path: Path) -> None:
    """SQLite's settings; test_store_postgres covers PostgreSQL's."""
    path = tmp_path / "sub" / "store.db"
    with open_store(f"sqlite:///{path}") as store:
        assert store.schema_version == len(MIGRATIONS)
        with store.db.transaction() as tx:
            assert tx.query_one("PRAGMA foreign_keys") == {"foreign_keys": 1}
            assert tx.query_one("PRAGMA busy_timeout") == {"timeout": 10_000}
        with pytest.raises(StoreError, match="FOREIGN KEY"), store.db.transaction(write=True) as tx:
            tx.execute("INSERT INTO staged_sets VALUES ('no-such-run', 'r', 'h', 0, 't', NULL, NULL, NULL, NULL)")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"runs", "run_items", "staged_sets", "staged_items", "baselines", "journal", "journal_head"} <= tables(path)
    with sqlite3.connect(path) as raw:
        found = list(raw.execute("SELECT version, name FROM schema_version ORDER BY version"))
    assert found == [(m.version, m.name) for m in MIGRATIONS]


def test_reopening_applies_nothing_twice(store_backend: StoreBackend) -> None:
    url = store_backend.url
    clock = ManualClock(T0)
    open_store(url, now=clock).close()
    first = store_backend.rows("SELECT * FROM schema_version ORDER BY version")
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    with open_store(url, now=clock) as store:
        assert store.schema_version == len(MIGRATIONS)
    assert store_backend.rows("SELECT * FROM schema_version ORDER BY version") == first  # same rows and times


def test_an_older_store_is_migrated_forward_and_keeps_its_data(store_backend: StoreBackend) -> None:
    url = store_backend.url
    with open_store(url, migrations=MIGRATIONS[:1]) as old:
        assert old.schema_version == 1
        with old.db.transaction(write=True) as tx:  # a run as version 1 wrote it (no column of later versions)
            tx.execute(
                "INSERT INTO runs (id, kind, realm, sources, started_at, finished_at, status, counts, summary)"
                " VALUES ('r-1', 'sync', 'acme', '[\"hr\"]', '2026-11-29T10:00:00.000000Z', NULL, 'running', '{}', '')"
            )
    assert "journal" not in store_backend.tables()
    with open_store(url) as store:
        assert store.schema_version == len(MIGRATIONS)
        run = store.runs.get_run("r-1")
        assert run is not None and (run.kind, run.realm, run.sources, run.status) == (
            "sync",
            "acme",
            ("hr",),
            "running",
        )
        assert store.journal.verify().ok


def test_a_later_migration_can_change_tables_and_data(store_backend: StoreBackend) -> None:
    url = store_backend.url
    with open_store(url) as store:
        store.baselines.record_good_read("hr", 40)

    def double(tx: Transaction) -> None:
        tx.execute("UPDATE baselines SET record_count = record_count * 2")

    extra = Migration(len(MIGRATIONS) + 1, "notes", ("ALTER TABLE baselines ADD COLUMN note TEXT",), double)
    with open_store(url, migrations=(*MIGRATIONS, extra)) as store:
        assert store.schema_version == len(MIGRATIONS) + 1
        last = store.baselines.last_good("hr")
        assert last is not None and last.records == 80
    assert versions(store_backend)[-1] == (extra.version, "notes")


def test_a_store_newer_than_the_code_is_refused(store_backend: StoreBackend) -> None:
    url = store_backend.url
    open_store(url).close()
    store_backend.execute("INSERT INTO schema_version VALUES (99, 'from-the-future', '2030-01-01T00:00:00.000000Z')")
    known = len(MIGRATIONS)
    with pytest.raises(SchemaError, match=rf"schema version 99, newer than this idp-agent knows \({known}\)") as caught:
        open_store(url)
    assert "upgrade idp-agent" in caught.value.hint


def test_a_store_from_another_history_is_refused(store_backend: StoreBackend) -> None:
    url = store_backend.url
    other = (MIGRATIONS[0], Migration(2, "something-else", ("CREATE TABLE other (x TEXT)",)))
    open_store(url, migrations=other).close()
    with pytest.raises(
        SchemaError, match="migration 2 'something-else', but this idp-agent's migration 2 is 'staging'"
    ):
        open_store(url)


def test_a_failing_migration_leaves_no_trace(store_backend: StoreBackend) -> None:
    url = store_backend.url
    broken = Migration(len(MIGRATIONS) + 1, "broken", ("CREATE TABLE half (x TEXT)", "CREATE TABLE half (x TEXT)"))
    with pytest.raises(StoreError, match="already exists"):
        open_store(url, migrations=(*MIGRATIONS, broken))
    assert "half" not in store_backend.tables()
    assert versions(store_backend)[-1][0] == len(MIGRATIONS)
    with open_store(url) as store:  # the store is still usable at its last good version
        assert store.schema_version == len(MIGRATIONS)


@pytest.mark.parametrize("numbers", [(2, 3), (1, 3), (1, 1), (2, 1)])
def test_migrations_are_numbered_from_one_without_gaps(numbers: tuple[int, ...]) -> None:
    with pytest.raises(SchemaError, match="numbered 1, 2, 3"):
        check_sequence([Migration(number, f"m{number}") for number in numbers])


def test_shipped_migrations_are_in_sequence() -> None:
    check_sequence(MIGRATIONS)


def test_processes_opening_one_new_store_together_migrate_it_once(store_backend: StoreBackend) -> None:
    databases = [open_database(store_backend.url) for _ in range(4)]
    barrier = threading.Barrier(len(databases))
    errors: list[BaseException] = []

    def open_one(db: Database) -> None:
        barrier.wait()
        try:
            migrate(db)
        except BaseException as error:  # noqa: BLE001  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=open_one, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for db in databases:
        db.close()
    assert errors == []
    assert versions(store_backend) == [(m.version, m.name) for m in MIGRATIONS]


def test_a_new_store_opens_while_another_process_writes_the_file(tmp_path: Path) -> None:
    # Switching a new file to WAL needs an exclusive lock; while another connection writes, SQLite refuses at
    # once (no busy handler), which once made one of several processes opening a new store together fail.
    path = tmp_path / "store.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # the timer commits
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    released = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    released.start()
    try:
        with open_store(f"sqlite:///{path}") as store:
            assert store.baselines.last_good("hr") is None
    finally:
        released.join()
        writer.close()
    assert "schema_version" in tables(path)


def test_switching_to_wal_gives_up_after_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            switch_to_wal(other, timeout_seconds=0.05)
    finally:
        other.close()
        writer.close()


def test_transactions_do_not_nest_and_roll_back_on_error(store_backend: StoreBackend) -> None:
    with open_store(store_backend.url) as store:
        with store.db.transaction() as _, pytest.raises(StoreError, match="do not nest"), store.db.transaction():
            pass
        with pytest.raises(RuntimeError), store.db.transaction(write=True) as tx:
            tx.execute("INSERT INTO baselines VALUES ('hr', 1, '2026-01-01T00:00:00.000000Z')")
            raise RuntimeError("boom")
        assert store.baselines.last_good("hr") is None


def test_a_read_transaction_sees_one_snapshot_and_a_writer_sees_the_latest_commit(
    store_backend: StoreBackend,
) -> None:
    """Journal verify reads the head, then every entry: they must agree even if an append commits between."""
    with open_store(store_backend.url) as store, open_store(store_backend.url) as other:
        with store.db.transaction() as tx:
            before = tx.query("SELECT seq FROM journal_head")
            other.journal.append(actor="ops", action="user.update", subject="bob", realm="acme")
            assert tx.query("SELECT seq FROM journal_head") == before
            assert tx.query("SELECT seq FROM journal") == []
        with store.db.transaction(write=True) as tx:
            assert tx.query("SELECT seq FROM journal_head") == [{"seq": 1}]


def test_a_read_left_unfinished_does_not_disturb_later_transactions(store_backend: StoreBackend) -> None:
    with open_store(store_backend.url) as store:
        for source in ("a", "b", "c"):
            store.baselines.record_good_read(source, 1)
        with store.db.transaction() as tx:
            unfinished = tx.iterate("SELECT source FROM baselines ORDER BY source")
            assert next(unfinished) == {"source": "a"}
        with store.db.transaction(write=True) as tx:
            del unfinished  # closed in the middle of another transaction, which must go on unharmed
            tx.execute("INSERT INTO baselines VALUES ('d', 2, '2026-01-01T00:00:00.000000Z')")
        assert store.baselines.last_good_counts() == {"a": 1, "b": 1, "c": 1, "d": 2}


def test_flags_are_stored_as_integers_on_every_backend(store_backend: StoreBackend) -> None:
    with open_store(store_backend.url) as store:
        with store.db.transaction(write=True) as tx:
            tx.execute("CREATE TABLE flags (name TEXT PRIMARY KEY, flag INTEGER NOT NULL)")
            tx.execute_many("INSERT INTO flags VALUES (?, ?)", [("on", True), ("off", False)])
        with store.db.transaction() as tx:
            assert tx.query("SELECT name, flag FROM flags ORDER BY name") == [
                {"name": "off", "flag": 0},
                {"name": "on", "flag": 1},
            ]
            assert tx.query("SELECT name FROM flags WHERE flag = ?", (True,)) == [{"name": "on"}]


def test_each_thread_has_its_own_connection_and_close_closes_them_all(store_backend: StoreBackend) -> None:
    store = open_store(store_backend.url)
    seen: list[int] = []

    def read() -> None:
        with store.db.transaction():
            seen.append(id(store.db._connection()))

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read()
    assert len(set(seen)) == 4
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.runs.list_runs()


def test_a_naive_clock_is_refused(store_backend: StoreBackend) -> None:
    with pytest.raises(StoreError, match="naive datetime"):
        open_store(store_backend.url, now=lambda: datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))


class Killed(BaseException):
    """The process cut off between two writes of one atomic block."""


def test_an_atomic_block_commits_all_its_writes_or_none(store_backend: StoreBackend) -> None:
    """A record and the journal entry that tells of it: cut off between them, neither is kept."""
    with open_store(store_backend.url) as store:
        with pytest.raises(Killed), store.atomic():
            run = store.runs.start_run("sanction-issue", "acme")
            store.journal.append(actor="ops", action="sanction.issue", subject="erin", realm="acme", run_id=run.id)
            raise Killed
        assert store.runs.list_runs() == [] and store.journal.entries() == []

        with store.atomic():
            run = store.runs.start_run("sanction-issue", "acme")
            store.journal.append(actor="ops", action="sanction.issue", subject="erin", realm="acme", run_id=run.id)
        assert [r.id for r in store.runs.list_runs()] == [run.id]
        assert [e.run_id for e in store.journal.entries()] == [run.id]
        assert store.journal.verify().ok


def test_transactions_still_do_not_nest_outside_an_atomic_block(store_backend: StoreBackend) -> None:
    with open_store(store_backend.url) as store, store.db.transaction(), pytest.raises(StoreError, match="do not nest"):
        store.runs.list_runs()


def test_a_failed_write_inside_an_atomic_block_is_undone_alone(store_backend: StoreBackend) -> None:
    """Inside a block each store transaction is a savepoint: a unique key drawn twice fails that write only
    (PostgreSQL would otherwise refuse every later statement of the block), so an id retry works as outside."""
    with open_store(store_backend.url) as store:
        with store.atomic():
            run = store.runs.start_run("sync", "acme")
            with pytest.raises(StoreError), store.db.transaction(write=True) as tx:
                tx.execute(
                    "INSERT INTO runs (id, kind, realm, sources, started_at, status, counts, summary)"
                    " VALUES (?, 'sync', 'acme', '[]', 't', 'running', '{}', '')",
                    (run.id,),
                )
            with store.atomic():  # a block inside a block: one more savepoint, and the outer goes on after it
                store.journal.append(actor="ops", action="sync.run", subject=run.id, realm="acme", run_id=run.id)
            store.journal.append(actor="ops", action="sync.note", subject=run.id, realm="acme", run_id=run.id)
        assert [r.id for r in store.runs.list_runs()] == [run.id]
        assert [e.action for e in store.journal.entries()] == ["sync.run", "sync.note"]
