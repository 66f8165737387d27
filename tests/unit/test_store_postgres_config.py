"""The PostgreSQL store's configuration, without a server: URLs, where the password comes from, lock keys."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from agent.errors import ConfigError
from agent.stack.processes import free_port
from agent.store import StoreError, open_store
from agent.store.db import open_database
from agent.store.postgres import (
    PostgresDatabase,
    advisory_key,
    check_url,
    connect_arguments,
    describe_url,
    open_connection,
    primary_message,
)

PASSWORD = "hunter2-canary"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://agent:{PASSWORD}@db.example.org:5433/idp", "postgresql://db.example.org:5433/idp"),
        (f"postgres://agent:{PASSWORD}@db/idp?sslmode=require&password={PASSWORD}", "postgres://db/idp"),
        ("postgresql://agent@[::1]/idp", "postgresql://::1/idp"),
        ("postgresql:///idp", "postgresql://localhost/idp"),
    ],
)
def test_messages_name_the_server_and_database_never_the_user_info_or_query(url: str, shown: str) -> None:
    assert describe_url(url) == shown
    assert PostgresDatabase(url, env={}).name == shown


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresql:agent:{PASSWORD}@db/idp", "not a PostgreSQL URL"),
        (f"postgresql://agent:{PASSWORD}@db:port/idp", "invalid port"),
        (f"mysql://agent:{PASSWORD}@db/idp", "scheme 'mysql'"),
    ],
)
def test_bad_urls_are_config_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        check_url(url)
    assert PASSWORD not in str(caught.value) and PASSWORD not in caught.value.hint


@pytest.mark.parametrize(
    "url",
    [
        # A '/', '?' or '#' in the password ends the netloc early: the rest of the password lands in the path,
        # query or fragment, and its first part in the port (or the port parses: digits before the '/').
        "postgresql://svc:Tr0ub4dor/Xyz9@db.example:5432/idp",
        "postgresql://svc:1234/5678@db.example:5432/idp",
        "postgresql://svc:1234?5678@db.example/idp",
        "postgresql://svc:1234#5678@db.example/idp",
        "postgresql://svc:x@[::1/idp",
    ],
)
def test_a_url_that_does_not_split_cleanly_is_never_shown(url: str) -> None:
    assert describe_url(url) == "postgresql://(URL not shown: it does not parse)"
    with pytest.raises(ConfigError, match="does not parse") as caught:
        check_url(url)
    for piece in ("Tr0ub4dor", "Xyz9", "1234", "5678", "svc"):
        assert piece not in str(caught.value) and piece not in caught.value.hint


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://svc:sec {PASSWORD}@db/idp",
        f"postgresql://svc:Tr0ub%zz{PASSWORD}@db/idp",
        f"postgresql://svc:{PASSWORD}%00@db/idp",
        f"postgresql://svc@db/idp?password=sec%20{PASSWORD}%zz",
    ],
)
def test_a_url_libpq_cannot_parse_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ConfigError, match="cannot be parsed by libpq") as caught:
        check_url(url)
    assert PASSWORD not in str(caught.value) and PASSWORD not in caught.value.hint

    # Connecting anyway (check_url skipped) gives the same fixed text, as a store error would show it.
    with pytest.raises(psycopg.ProgrammingError) as refused:
        open_connection(url, {"connect_timeout": 1})
    assert primary_message(refused.value) == (
        "the store URL cannot be parsed by libpq (its text is not shown: it may hold the password)"
    )


def test_open_database_picks_the_backend_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_database("postgresql://agent@db/idp"), PostgresDatabase)
    sqlite = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    assert sqlite.dialect.name == "sqlite" and sqlite.path == tmp_path / "store.db"


def test_the_password_comes_from_the_url_then_pgpassword_then_its_file(tmp_path: Path) -> None:
    assert "password" not in connect_arguments(f"postgresql://agent:{PASSWORD}@db/idp", {"PGPASSWORD": "other"})
    assert connect_arguments("postgresql://agent@db/idp", {"PGPASSWORD": PASSWORD})["password"] == PASSWORD
    secret_file = tmp_path / "pg-password"
    secret_file.write_text(PASSWORD + "\n")
    from_file = connect_arguments("postgresql://agent@db/idp", {"PGPASSWORD_FILE": str(secret_file)})
    assert from_file["password"] == PASSWORD
    assert "password" not in connect_arguments("postgresql://agent@db/idp", {})
    with pytest.raises(ConfigError, match="both PGPASSWORD and PGPASSWORD_FILE"):
        connect_arguments("postgresql://agent@db/idp", {"PGPASSWORD": "x", "PGPASSWORD_FILE": str(secret_file)})


def test_connections_begin_no_transaction_by_themselves_and_wait_bounded_for_the_writer_lock() -> None:
    arguments = connect_arguments("postgresql://agent@db/idp", {})
    assert arguments["autocommit"] is True
    assert arguments["options"] == "-c lock_timeout=10000"


def test_a_store_that_cannot_be_reached_is_a_store_error_without_the_password() -> None:
    url = f"postgresql://agent:{PASSWORD}@127.0.0.1:{free_port()}/idp"
    with pytest.raises(StoreError, match=r"store postgresql://127\.0\.0\.1:\d+/idp: .*") as caught:
        open_store(url)
    assert PASSWORD not in str(caught.value)


def test_advisory_keys_are_stable_signed_64_bit_numbers() -> None:
    keys = {advisory_key(name) for name in ("store-writer", "sync-workforce", "daemon")}
    assert len(keys) == 3
    assert all(-(2**63) <= key < 2**63 for key in keys)
    # Fixed forever: daemons of different versions sharing one store must compute the same key.
    assert advisory_key("sync-workforce") == -8566688141279165123
