"""`audit show` and `audit verify` through the CLI on a real store file, and the pure helpers behind them.
Tampering is done as an attacker would: switch the append-only triggers off, then edit, remove or reorder rows.
Runs on SQLite, and on PostgreSQL as an integration variant (the `store_backend` fixture)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.audit.view import concerns_user, parse_anchor, parse_since, verify_message
from agent.cli import cli
from agent.errors import ConfigError
from agent.store import JournalEntry, ManualClock, NewEntry, VerifyResult, open_store
from agent.store.journal import entry_hash
from tests.harness.store_backends import StoreBackend

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store_url(store_backend: StoreBackend) -> str:
    """A store with five entries, one a day from START: alice, bob, a sanction on alice, alice, carol."""
    clock = ManualClock(START)
    entries = [
        NewEntry("sync:workforce", "user.create", "alice", "workforce", details={"id": "u-1"}),
        NewEntry("sync:workforce", "user.create", "bob", "workforce", details={"id": "u-2"}),
        NewEntry("ops", "sanction.issue", "S-1", "workforce", reason="spam", details={"username": "alice"}),
        NewEntry("sync:workforce", "user.update", "alice", "workforce"),
        NewEntry("sync:workforce", "user.create", "carol", "workforce"),
    ]
    with open_store(store_backend.url, now=clock) as store:
        for entry in entries:
            store.journal.append_many([entry])
            clock.advance(timedelta(days=1))
    return store_backend.url


def audit(*args: str) -> Result:
    return CliRunner().invoke(cli, ["audit", *args], catch_exceptions=False)


def rehash(backend: StoreBackend, seq: int) -> str:
    """Recompute one entry's hash after changing it, as a careful attacker would; the new hash."""
    [row] = backend.rows("SELECT * FROM journal WHERE seq = ?", (seq,))
    new_hash = entry_hash(row)
    backend.execute(("UPDATE journal SET hash = ? WHERE seq = ?", (new_hash, seq)), around_triggers=True)
    return new_hash


def test_an_untouched_journal_verifies_and_prints_its_anchor(store_url: str) -> None:
    result = audit("verify", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "journal intact: 5 entries" in result.output
    anchor = result.output.strip().rsplit(" ", 1)[-1]
    assert audit("verify", "--store", store_url, "--anchor", anchor).exit_code == 0


def test_an_empty_store_is_intact(store_backend: StoreBackend) -> None:
    result = audit("verify", "--store", store_backend.fresh_url())
    assert result.exit_code == 0
    assert "journal intact: 0 entries" in result.output


def tamper(backend: StoreBackend, *statements: str) -> None:
    """Change the journal from outside, its append-only triggers switched off first as an attacker would."""
    backend.execute(*statements, around_triggers=True)


def edit_and_rehash(backend: StoreBackend, seq: int) -> None:
    tamper(backend, f"UPDATE journal SET subject = 'mallory' WHERE seq = {seq}")  # noqa: S608  # a test's own int
    rehash(backend, seq)


TAMPERING: list[tuple[str, Callable[[StoreBackend], object], str]] = [
    ("edited", lambda b: tamper(b, "UPDATE journal SET reason = 'nothing' WHERE seq = 3"), "entry 3 was changed"),
    ("edited actor", lambda b: tamper(b, "UPDATE journal SET actor = 'someone' WHERE seq = 1"), "entry 1 was changed"),
    ("removed", lambda b: tamper(b, "DELETE FROM journal WHERE seq = 2"), "entry 2 is missing"),
    ("cut off the end", lambda b: tamper(b, "DELETE FROM journal WHERE seq = 5"), "entries 5 to 5 are missing"),
    (
        "reordered",
        lambda b: tamper(
            b,
            "UPDATE journal SET seq = 100 WHERE seq = 2",
            "UPDATE journal SET seq = 2 WHERE seq = 3",
            "UPDATE journal SET seq = 3 WHERE seq = 100",
        ),
        "entry 2 does not follow entry 1",
    ),
    ("edited and rehashed", lambda b: edit_and_rehash(b, 2), "entry 3 does not follow entry 2"),
]


@pytest.mark.parametrize(("how", "damage", "named"), TAMPERING, ids=[case[0] for case in TAMPERING])
def test_verify_names_the_first_broken_entry(
    store_url: str, store_backend: StoreBackend, how: str, damage: Callable[[StoreBackend], object], named: str
) -> None:
    damage(store_backend)
    result = audit("verify", "--store", store_url)
    assert result.exit_code == 1, how
    assert "journal BROKEN at entry" in result.output
    assert named in result.output


def test_a_rewritten_tail_is_caught_by_the_anchor_kept_outside(store_url: str, store_backend: StoreBackend) -> None:
    anchor = audit("verify", "--store", store_url).output.strip().rsplit(" ", 1)[-1]
    # Rewrite entry 5 and everything after it, head included, so the chain alone looks intact.
    tamper(store_backend, "UPDATE journal SET subject = 'mallory' WHERE seq = 5")
    new_hash = rehash(store_backend, 5)
    store_backend.execute(("UPDATE journal_head SET hash = ? WHERE id = 1", (new_hash,)))
    assert audit("verify", "--store", store_url).exit_code == 0
    result = audit("verify", "--store", store_url, "--anchor", anchor)
    assert result.exit_code == 1
    assert "entry 5 differs from the anchor" in result.output


def test_show_filters_by_user_and_since(store_url: str) -> None:
    result = audit("show", "--store", store_url, "--user", "alice")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["1", "3", "4"]
    assert lines[-1] == "3 entries"
    result = audit("show", "--store", store_url, "--user", "ALICE", "--since", "2026-11-03", "--json")
    shown = json.loads(result.output)
    assert [(entry["seq"], entry["action"]) for entry in shown] == [(3, "sanction.issue"), (4, "user.update")]
    assert shown[0]["reason"] == "spam"


def test_show_uses_the_store_of_the_config_file(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"store: {store_url}\n")
    result = audit("show", "--config", str(config), "--user", "u-2")
    assert result.output.strip().splitlines()[-1] == "1 entry"


def entry(subject: str, **details: str) -> JournalEntry:
    return JournalEntry(
        actor="a", action="x", subject=subject, realm="r", details=details, seq=1, at=START, prev_hash="", hash=""
    )


@pytest.mark.parametrize(
    ("subject", "details", "user", "expected"),
    [
        ("alice", {}, "alice", True),
        ("Alice", {}, "alice", True),
        ("S-1", {"username": "alice"}, "alice", True),
        ("S-1", {"id": "u-1"}, "u-1", True),
        ("S-1", {"email": "a@example.org"}, "A@example.org", True),
        ("alicia", {}, "alice", False),
        ("S-1", {"note": "alice"}, "alice", False),
    ],
)
def test_concerns_user(subject: str, details: dict[str, str], user: str, expected: bool) -> None:
    assert concerns_user(entry(subject, **details), user) is expected


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:00:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00:00+01:00", datetime(2026, 11, 1, 7, tzinfo=UTC)),
        ("7d", NOW - timedelta(days=7)),
        ("12h", NOW - timedelta(hours=12)),
    ],
)
def test_parse_since(value: str, expected: datetime) -> None:
    assert parse_since(value, NOW) == expected


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "7x"])
def test_parse_since_refuses_what_is_not_a_date(value: str) -> None:
    with pytest.raises(ConfigError, match="is not a date"):
        parse_since(value, NOW)


def test_parse_anchor() -> None:
    assert parse_anchor(f"12:{'a' * 64}") == (12, "a" * 64)
    with pytest.raises(ConfigError, match="SEQ:HASH"):
        parse_anchor("12:abc")


def test_verify_message_without_a_head_record() -> None:
    broken = VerifyResult(False, None, "the journal's head record is missing", 4)
    assert verify_message(broken, None) == (
        "journal BROKEN at the head record: the journal's head record is missing (4 entries before it intact)"
    )
