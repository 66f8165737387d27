"""The hash-chained journal: appends, filters, no secrets, concurrent writers, and tampering with the store
(on SQLite, and on PostgreSQL as integration tests)."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.secrets import Secret
from agent.store import (
    ForbiddenValue,
    JournalHead,
    ManualClock,
    NewEntry,
    Store,
    StoreError,
    VerifyResult,
    open_store,
)
from agent.store.journal import DETAIL_KEYS, GENESIS_HASH, entry_hash
from agent.store.postgres import STREAM_BATCH_ROWS
from tests.harness.store_backends import Statement, StoreBackend

T0 = datetime(2026, 11, 29, 16, 55, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(store_backend: StoreBackend, clock: ManualClock) -> Iterator[Store]:
    with open_store(store_backend.url, now=clock) as opened:
        yield opened


def fill(store: Store, clock: ManualClock, count: int = 5) -> None:
    for n in range(1, count + 1):
        store.journal.append(
            actor="idp-agent sync",
            action="user.update",
            subject=f"user{n}",
            realm="acme",
            run_id="20261129T165501Z-3f9a" if n % 2 else None,
            reason="source data changed",
            details={"fields": ["email"], "external_id": f"hr-{n}"},
        )
        clock.advance(timedelta(seconds=1))


def tamper(backend: StoreBackend, *statements: Statement, url: str | None = None) -> None:
    """Change the store as someone with write access would: around the triggers, outside the agent."""
    backend.execute(*statements, url=url, around_triggers=True)


def row(backend: StoreBackend, seq: int) -> dict[str, Any]:
    (found,) = backend.rows("SELECT * FROM journal WHERE seq = ?", (seq,))
    return found


def test_appends_chain_and_round_trip(store: Store, clock: ManualClock, store_backend: StoreBackend) -> None:
    assert store.journal.head() == JournalHead(0, GENESIS_HASH)
    assert store.journal.verify().ok
    first = store.journal.append(
        actor="ops-alice",
        action="sanction.issue",
        subject="bob",
        realm="acme",
        reason="spam",
        details={"level": "warning", "until": "2026-12-06", "sessions_ended": 2},
    )
    clock.advance(timedelta(minutes=1))
    second = store.journal.append(actor="idp-agent sync", action="user.disable", subject="carol", realm="acme")
    assert (first.seq, first.prev_hash, first.at) == (1, GENESIS_HASH, T0)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert store.journal.head() == JournalHead(2, second.hash)
    with open_store(store_backend.url) as reopened:
        assert reopened.journal.entries() == [first, second]
        assert reopened.journal.verify().ok
    assert entry_hash(row(store_backend, 1)) == first.hash


def test_entries_filter_by_subject_time_and_run(store: Store, clock: ManualClock) -> None:
    fill(store, clock)
    assert [e.seq for e in store.journal.entries(subject="user3")] == [3]
    assert [e.seq for e in store.journal.entries(since=T0 + timedelta(seconds=3))] == [4, 5]
    assert [e.seq for e in store.journal.entries(run_id="20261129T165501Z-3f9a")] == [1, 3, 5]
    assert store.journal.entries(subject="user3", since=T0 + timedelta(seconds=3)) == []


def test_append_many_is_one_consecutive_batch(store: Store) -> None:
    batch = [
        NewEntry("idp-agent apply", "client.create", f"app{n}", "acme", details={"client_id": f"app{n}"})
        for n in range(3)
    ]
    stored = store.journal.append_many(batch)
    assert [e.seq for e in stored] == [1, 2, 3]
    assert [e.prev_hash for e in stored[1:]] == [e.hash for e in stored[:-1]]
    assert store.journal.verify() == store.journal.verify() and store.journal.verify().checked == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"details": {"password": "canary-7"}}, r"'password' not in the allow-list"),
        ({"details": {"note": Secret("canary-7")}}, "is a Secret"),
        ({"details": {"before": {"client_secret": "canary-7"}}}, "names a credential"),
        ({"details": {"phone": "canary-7"}}, r"'phone' not in the allow-list"),
        ({"reason": Secret("canary-7")}, "journal reason is a Secret"),
        ({"subject": Secret("canary-7")}, "journal subject is a Secret"),
        ({"actor": ""}, "journal actor must not be empty"),
        ({"run_id": ""}, "journal run id must not be empty"),
    ],
)
def test_no_secret_and_nothing_off_the_allow_list_is_journalled(
    store: Store, arguments: dict[str, Any], message: str
) -> None:
    entry: dict[str, Any] = {"actor": "ops", "action": "user.update", "subject": "bob", "realm": "acme", **arguments}
    with pytest.raises(ForbiddenValue, match=message) as caught:
        store.journal.append(**entry)
    assert "canary-7" not in str(caught.value)
    assert store.journal.head().seq == 0


def test_the_agent_itself_cannot_update_or_delete_entries(
    store: Store, clock: ManualClock, store_backend: StoreBackend
) -> None:
    fill(store, clock, 2)
    for statement in ("UPDATE journal SET actor = 'x' WHERE seq = 1", "DELETE FROM journal WHERE seq = 2"):
        with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError), match="append-only"):
            store_backend.execute(statement)
        with pytest.raises(StoreError, match="append-only"), store.db.transaction(write=True) as tx:
            tx.execute(statement)
    assert store.journal.verify().ok


@pytest.mark.parametrize(
    ("statements", "first_bad", "problem"),
    [
        (["UPDATE journal SET actor = 'someone else' WHERE seq = 3"], 3, "entry 3 was changed after it was written"),
        (['UPDATE journal SET details = \'{"external_id":"hr-9","fields":["email"]}\' WHERE seq = 2'], 2, "changed"),
        (["UPDATE journal SET at = '2026-11-29T16:55:00.000000Z' WHERE seq = 4"], 4, "changed"),
        (["UPDATE journal SET run_id = NULL WHERE seq = 1"], 1, "changed"),
        (["UPDATE journal SET seq = 6 WHERE seq = 5"], 5, "entry 5 is missing"),
        (["DELETE FROM journal WHERE seq = 3"], 3, "entry 3 is missing \\(the next is 4\\)"),
        (["DELETE FROM journal WHERE seq = 1"], 1, "entry 1 is missing"),
        (
            [
                "UPDATE journal SET seq = -2 WHERE seq = 2",
                "UPDATE journal SET seq = 2 WHERE seq = 3",
                "UPDATE journal SET seq = 3 WHERE seq = -2",
            ],
            2,
            "entry 2 does not follow entry 1",
        ),
        (["DELETE FROM journal WHERE seq >= 4"], 4, "entries 4 to 5 are missing from the end"),
        (["DELETE FROM journal_head"], None, "head record is missing"),
        (["UPDATE journal_head SET seq = 4"], 5, "entries after 4 are not covered by the head record"),
        (["UPDATE journal_head SET hash = 'ff'"], 5, "the head record's hash does not match entry 5"),
    ],
)
def test_verify_finds_the_first_tampered_entry(
    store: Store,
    clock: ManualClock,
    store_backend: StoreBackend,
    statements: list[str],
    first_bad: int | None,
    problem: str,
) -> None:
    fill(store, clock)
    assert store.journal.verify().ok
    tamper(store_backend, *statements)
    result = store.journal.verify()
    assert (result.ok, result.first_bad_seq) == (False, first_bad)
    assert re.search(problem, result.problem), result.problem


def test_an_edit_with_its_own_hash_recomputed_breaks_the_next_link(
    store: Store, clock: ManualClock, store_backend: StoreBackend
) -> None:
    fill(store, clock)
    edited = {**row(store_backend, 3), "actor": "someone else"}
    tamper(
        store_backend, ("UPDATE journal SET actor = ?, hash = ? WHERE seq = 3", (edited["actor"], entry_hash(edited)))
    )
    result = store.journal.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "entry 4 does not follow entry 3" in result.problem


def test_a_forged_entry_appended_around_the_agent_is_not_covered_by_the_head(
    store: Store, clock: ManualClock, store_backend: StoreBackend
) -> None:
    fill(store, clock)
    forged = {**row(store_backend, 5), "seq": 6, "subject": "mallory", "prev_hash": row(store_backend, 5)["hash"]}
    forged["hash"] = entry_hash(forged)
    insert = f"INSERT INTO journal ({', '.join(forged)}) VALUES ({', '.join('?' * len(forged))})"  # noqa: S608
    tamper(store_backend, (insert, tuple(forged.values())))
    result = store.journal.verify()
    assert (result.ok, result.first_bad_seq) == (False, 6)


def test_a_cut_tail_with_the_head_rewritten_needs_an_anchor_kept_outside(
    store: Store, clock: ManualClock, store_backend: StoreBackend
) -> None:
    """Without a key, a journal cut short and given a matching head is consistent; `verify` says what it can
    prove, and the head kept outside (a log line, an alert) proves the rest."""
    fill(store, clock)
    anchor = store.journal.head()
    entry3 = row(store_backend, 3)
    tamper(
        store_backend,
        "DELETE FROM journal WHERE seq > 3",
        ("UPDATE journal_head SET seq = 3, hash = ?", (entry3["hash"],)),
    )
    assert store.journal.verify().ok
    result = store.journal.verify(anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "ends at 3, before the anchor entry 5" in result.problem


def test_a_rewritten_chain_differs_from_the_anchor(
    store: Store, clock: ManualClock, store_backend: StoreBackend
) -> None:
    fill(store, clock)
    anchor = JournalHead(2, row(store_backend, 2)["hash"])
    previous = row(store_backend, 1)["hash"]
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for seq in range(2, 6):  # rewrite entry 2 and re-chain everything after it, head included
        changed = {**row(store_backend, seq), "prev_hash": previous}
        if seq == 2:
            changed["reason"] = "covered up"
        changed["hash"] = entry_hash(changed)
        statements.append(
            (
                "UPDATE journal SET reason = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (changed["reason"], previous, changed["hash"], seq),
            )
        )
        previous = changed["hash"]
    statements.append(("UPDATE journal_head SET hash = ?", (previous,)))
    tamper(store_backend, *statements)
    assert store.journal.verify().ok  # consistent again: only the anchor can tell
    result = store.journal.verify(anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "differs from the anchor" in result.problem
    assert store.journal.verify(anchor=JournalHead(1, row(store_backend, 1)["hash"])).ok


def test_appending_to_a_journal_without_head_is_refused(
    store: Store, clock: ManualClock, store_backend: StoreBackend
) -> None:
    fill(store, clock, 1)
    tamper(store_backend, "DELETE FROM journal_head")
    with pytest.raises(StoreError, match="head record is missing"):
        store.journal.append(actor="ops", action="user.update", subject="bob", realm="acme")


def test_verify_reads_a_journal_longer_than_one_streamed_batch(store: Store) -> None:
    count = STREAM_BATCH_ROWS * 2 + 1
    store.journal.append_many([NewEntry("ops", "user.update", f"u{n}", "acme") for n in range(count)])
    assert store.journal.verify() == VerifyResult(True, None, "", count)


def test_concurrent_appends_from_threads_and_stores_keep_one_chain(store_backend: StoreBackend) -> None:
    """Two threads on one store and two more stores on the same file or database (as other processes would)."""
    url = store_backend.url
    shared = open_store(url)
    writers = [shared, shared, open_store(url), open_store(url)]
    per_writer = 60
    barrier = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def write(index: int) -> None:
        barrier.wait()
        try:
            for n in range(per_writer):
                writers[index].journal.append(
                    actor=f"writer{index}", action="user.update", subject=f"u{n}", realm="acme"
                )
        except BaseException as error:  # noqa: BLE001  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(index,)) for index in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = shared.journal.verify()
    assert result.ok and result.checked == len(writers) * per_writer
    entries = shared.journal.entries()
    assert [e.seq for e in entries] == list(range(1, len(writers) * per_writer + 1))
    assert {e.actor for e in entries} == {f"writer{index}" for index in range(len(writers))}
    for opened in {id(w): w for w in writers}.values():
        opened.close()


# Values as the journal gets them: text (any Unicode but NUL, which the store refuses), numbers, flags, lists
# and small maps.
def texts(min_size: int = 0, max_size: int = 16) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=min_size, max_size=max_size)


json_leaf = st.one_of(st.text(max_size=12), st.integers(-(2**53), 2**53), st.booleans(), st.none())
detail_value = st.one_of(
    json_leaf, st.lists(json_leaf, max_size=3), st.dictionaries(st.sampled_from(["a", "b"]), json_leaf, max_size=2)
)
new_entries = st.lists(
    st.builds(
        NewEntry,
        actor=st.sampled_from(["idp-agent sync", "ops-alice", "idp-agent apply"]),
        action=texts(1, 16),
        subject=texts(max_size=16),
        realm=st.sampled_from(["acme", "édu"]),
        run_id=st.one_of(st.none(), texts(1, 8)),
        reason=texts(max_size=20),
        details=st.dictionaries(st.sampled_from(sorted(DETAIL_KEYS)), detail_value, max_size=3),
    ),
    min_size=1,
    max_size=8,
)
TAMPERED_COLUMNS = ("actor", "action", "subject", "realm", "reason", "details", "at", "prev_hash", "hash")


# One fresh store per example (made by the backend fixture, which is why function_scoped_fixture is silenced).
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(entries=new_entries, data=st.data())
def test_any_chain_verifies_and_any_single_edit_is_found(
    store_backend: StoreBackend, entries: list[NewEntry], data: st.DataObject
) -> None:
    url = store_backend.fresh_url()
    clock = ManualClock(T0)
    with open_store(url, now=clock) as store:
        split = data.draw(st.integers(0, len(entries)), label="batch split")
        stored = store.journal.append_many(entries[:split])
        for e in entries[split:]:
            stored.append(
                store.journal.append(
                    actor=e.actor,
                    action=e.action,
                    subject=e.subject,
                    realm=e.realm,
                    run_id=e.run_id,
                    reason=e.reason,
                    details=e.details,
                )
            )
        assert store.journal.verify().ok
        assert store.journal.entries() == stored
        assert [(e.actor, e.subject, dict(e.details)) for e in stored] == [
            (e.actor, e.subject, dict(e.details)) for e in entries
        ]

        seq = data.draw(st.integers(1, len(entries)), label="tampered seq")
        column = data.draw(st.sampled_from(TAMPERED_COLUMNS), label="tampered column")
        tamper(store_backend, f"UPDATE journal SET {column} = {column} || ' ' WHERE seq = {seq}", url=url)  # noqa: S608
        result = store.journal.verify()
        assert not result.ok
        assert result.first_bad_seq == seq, result.problem
