"""The store on a real PostgreSQL: what differs from SQLite (constraints, triggers, errors, reconnecting).
The behaviour both backends share is tested by the store's unit tests, run on PostgreSQL too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agent.store import ManualClock, Store, StoreConflict, StoreError, open_store
from agent.store.connection import POSTGRESQL
from tests.harness.postgres import PostgresServer
from tests.unit.test_store_journal import T0, fill

CANARY = "canary-5f3e"


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with open_store(url, now=ManualClock(T0)) as opened:
        yield opened


def test_a_fresh_store_has_every_table_and_enforces_foreign_keys(store: Store, url: str) -> None:
    assert store.path is None
    with psycopg.connect(url) as raw:
        found = {row[0] for row in raw.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "run_items", "staged_sets", "staged_items", "baselines", "journal", "journal_head"} <= found
    with pytest.raises(StoreConflict, match="foreign key"), store.db.transaction(write=True) as tx:
        tx.execute("INSERT INTO staged_sets VALUES ('no-such-run', 'r', 'h', 0, 't', NULL, NULL, NULL)")


def test_the_journal_refuses_update_delete_and_truncate(store: Store) -> None:
    fill(store, ManualClock(T0), 2)
    for statement in ("UPDATE journal SET actor = 'x'", "DELETE FROM journal", "TRUNCATE journal"):
        with pytest.raises(StoreConflict, match="the journal is append-only"), store.db.transaction(write=True) as tx:
            tx.execute(statement)
    assert store.journal.verify().ok and store.journal.head().seq == 2


def test_errors_name_the_constraint_never_the_values_of_the_row(store: Store) -> None:
    store.baselines.record_good_read(CANARY, 1)
    with pytest.raises(StoreConflict, match="baselines_pkey") as caught, store.db.transaction(write=True) as tx:
        tx.execute("INSERT INTO baselines VALUES (?, 2, 'x')", (CANARY,))
    assert CANARY not in str(caught.value)  # PostgreSQL's DETAIL line would quote the key


def test_a_literal_percent_sign_in_sql_is_kept(store: Store) -> None:
    store.baselines.record_good_read("100%-feed", 7)
    with store.db.transaction() as tx:
        assert tx.query("SELECT source FROM baselines WHERE source LIKE '%\\%%' ESCAPE '\\'") == [
            {"source": "100%-feed"}
        ]
    assert POSTGRESQL.sql("a LIKE '1%' AND b = ?") == "a LIKE '1%%' AND b = %s"


def test_a_connection_the_server_ended_is_replaced_by_the_next_transaction(store: Store, url: str) -> None:
    store.baselines.record_good_read("hr", 1)
    with store.db.transaction() as tx:
        row = tx.query_one("SELECT pg_backend_pid() AS pid")
    assert row is not None
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (row["pid"],))  # returns once it has ended
    with pytest.raises(StoreError, match="store postgresql://"):
        store.baselines.last_good("hr")  # the transaction in flight when the server went away fails
    assert store.baselines.last_good_counts() == {"hr": 1}  # the next one reconnects


def test_the_password_comes_from_pgpassword_or_its_file_and_is_never_shown(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_database()
    bare = url.replace(f":{postgres_server.password}@", "@")
    assert postgres_server.password not in bare
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))  # libpq must not find one elsewhere
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(StoreError, match="password") as caught:
        open_store(bare)
    monkeypatch.setenv("PGPASSWORD", CANARY)
    with pytest.raises(StoreError, match="password authentication failed") as wrong:
        open_store(bare)
    assert CANARY not in str(wrong.value) and postgres_server.password not in str(caught.value)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    with open_store(bare) as store:
        store.baselines.record_good_read("hr", 1)
    monkeypatch.delenv("PGPASSWORD")
    secret_file = tmp_path / "store-password"
    secret_file.write_text(postgres_server.password + "\n")
    monkeypatch.setenv("PGPASSWORD_FILE", str(secret_file))
    with open_store(bare) as store:
        assert store.baselines.last_good_counts() == {"hr": 1}
