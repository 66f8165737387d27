"""store_lock: one holder per name and store, across threads and processes, released when the holder dies
(SQLite: flock beside the file; PostgreSQL: an advisory lock on a session of its own, as integration tests)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.locks import Locked
from agent.store import Store, StoreError, open_store
from agent.store.locks import advisory_lock, lock_directory, lock_file_name, store_lock
from tests.harness.store_backends import StoreBackend

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0  # upper bound for the child to report and for the server to notice it died


@pytest.fixture
def store(store_backend: StoreBackend) -> Iterator[Store]:
    with open_store(store_backend.url) as opened:
        yield opened


def test_a_second_holder_is_refused_until_the_first_lets_go(store: Store, store_backend: StoreBackend) -> None:
    holder = f"skipped: locked by another run of 'sync-acme' \\(.*pid {os.getpid()}"
    with open_store(store_backend.url) as other, store_lock(store, "sync-acme"):
        with pytest.raises(Locked, match=holder), store_lock(other, "sync-acme"):
            pytest.fail("two holders at once")
        with store_lock(other, "sync-other"):  # another name is another lock
            pass
    with store_lock(store, "sync-acme"):  # free again once the block ended
        pass


def test_two_threads_racing_for_a_lock_one_gets_it(store: Store, store_backend: StoreBackend) -> None:
    stores = [store, open_store(store_backend.url), open_store(store_backend.url), open_store(store_backend.url)]
    barrier = threading.Barrier(len(stores))
    release = threading.Event()
    outcomes: list[str] = []

    def contend(opened: Store) -> None:
        barrier.wait()
        try:
            with store_lock(opened, "daemon"):
                outcomes.append("held")
                release.wait(WAIT_S)
        except Locked:
            outcomes.append("locked")
            if outcomes.count("locked") == len(stores) - 1:
                release.set()

    threads = [threading.Thread(target=contend, args=(opened,)) for opened in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for opened in stores[1:]:
        opened.close()
    assert sorted(outcomes) == ["held"] + ["locked"] * (len(stores) - 1)


def test_stores_do_not_share_locks(store: Store, store_backend: StoreBackend) -> None:
    with (
        open_store(store_backend.fresh_url()) as elsewhere,
        store_lock(store, "daemon"),
        store_lock(elsewhere, "daemon"),
    ):
        pass


@contextmanager
def child_holding_the_lock(url: str, *under_the_lock: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A process that takes 'sync-acme', runs `under_the_lock` (which prints one line), then sleeps; yields it
    and that line, and SIGKILLs it at the end."""
    script = "\n".join(
        [
            "import sys, time",
            "from agent.store import open_store",
            "from agent.store.locks import store_lock",
            "from agent.store.runs import NewItem",
            "with open_store(sys.argv[1]) as store, store_lock(store, 'sync-acme'):",
            *(f"    {line}" for line in under_the_lock),
            "    time.sleep(600)",
        ]
    )
    child = subprocess.Popen([sys.executable, "-c", script, url], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], WAIT_S)
        assert ready, "the child did not take the lock"
        yield child, child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def test_a_holder_killed_by_sigkill_frees_the_lock(store: Store, store_backend: StoreBackend) -> None:
    with child_holding_the_lock(store_backend.url, "print('held', flush=True)") as (child, said):
        assert said == "held"
        with pytest.raises(Locked, match=f"pid {child.pid}"), store_lock(store, "sync-acme"):
            pytest.fail("held by the child")
    assert wait_until_free(store, "sync-acme"), f"the lock was not freed within {WAIT_S}s of the holder's death"


def test_a_run_whose_holder_was_killed_ends_as_interrupted_when_the_lock_is_next_taken(
    store: Store, store_backend: StoreBackend
) -> None:
    starts_a_run = (
        "run = store.runs.start_run('sync', 'acme')",
        "store.runs.add_items(run.id, [NewItem('ann', 'update', 'applied')])",
        "print(run.id, flush=True)",
    )
    with child_holding_the_lock(store_backend.url, *starts_a_run) as (_, run_id):
        with pytest.raises(Locked), store_lock(store, "sync-acme"):
            pytest.fail("held by the child")
        running = store.runs.get_run(run_id)
        assert running is not None and running.status == "running"  # its holder is alive: left alone
    assert wait_until_free(store, "sync-acme")
    ended = store.runs.get_run(run_id)
    assert ended is not None and ended.status == "failed" and ended.finished_at is not None
    assert ended.summary.startswith("interrupted: its process ended before it finished")
    assert dict(ended.counts) == {"update.applied": 1}


def test_only_runs_of_the_lock_taken_are_ended(store: Store) -> None:
    unlocked = store.runs.start_run("sync", "acme")  # a run under no lock (a test, a plan): never ended by one
    with store_lock(store, "sync-other"):
        other = store.runs.start_run("sync", "acme")
    finished = threading.Event()

    def start_on_another_thread() -> None:
        # The lock is this test thread's: a run another thread starts meanwhile is not the lock's.
        store.runs.start_run("sync", "acme", summary="other thread")
        finished.set()

    with store_lock(store, "sync-acme"):
        thread = threading.Thread(target=start_on_another_thread)
        thread.start()
        thread.join()
        mine = store.runs.start_run("sync", "acme")
    with store_lock(store, "sync-acme"):
        pass
    states = {run.id: run.status for run in store.runs.list_runs()}
    assert finished.is_set()
    assert states[unlocked.id] == states[other.id] == "running" and states[mine.id] == "failed"
    assert sorted(states.values()) == ["failed", "running", "running", "running"]


def wait_until_free(store: Store, name: str) -> bool:
    """Bounded polling: PostgreSQL ends the dead holder's session asynchronously, soon after its socket closed."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with store_lock(store, name):
                return True
        except Locked:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("name", "file_name"),
    [("sync-acme", "sync-acme"), ("daemon.job_1", "daemon.job_1"), ("sync-Ré al/../x", "sync-R__al_.._x-")],
)
def test_lock_names_become_plain_file_names(name: str, file_name: str) -> None:
    made = lock_file_name(name)
    assert made.startswith(file_name) and "/" not in made
    if made != name:
        assert len(made) == len(file_name) + 12 and made != lock_file_name(name + "!")


def test_the_sqlite_lock_file_lives_beside_the_database(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store, store_lock(store, "sync-acme"):
        assert (lock_directory(tmp_path / "store.db") / "sync-acme.lock").is_file()
    assert lock_directory(tmp_path / "store.db") == tmp_path / "store.db.locks"


def test_a_store_reached_through_a_symlink_shares_its_locks(tmp_path: Path) -> None:
    """The CLI and the daemon may name one store file by two paths: they must still take turns."""
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        (tmp_path / "alias.db").symlink_to(tmp_path / "store.db")
        with (
            open_store(f"sqlite:///{tmp_path / 'alias.db'}") as same,
            store_lock(store, "sync-acme"),
            pytest.raises(Locked),
            store_lock(same, "sync-acme"),
        ):
            pass


def test_a_lock_name_is_required(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        for name in ("", "a\x00b"):
            with pytest.raises(StoreError, match="needs a name"), store_lock(store, name):
                pass


class OpenedLockSession:
    """Stands in for the PostgreSQL store and the lock's session: the lock is free; records how it connected."""

    name = "postgresql://db/idp_agent"

    def __init__(self) -> None:
        self.arguments: dict[str, Any] = {}

    def connect_dedicated(self, **arguments: Any) -> OpenedLockSession:
        self.arguments = arguments
        return self

    def execute(self, *_query: Any) -> OpenedLockSession:
        return self

    def fetchone(self) -> tuple[bool]:
        return (True,)

    def close(self) -> None:
        pass


def session_settings(options: str) -> dict[str, str]:
    """libpq `options` ("-c name=value ...") as name -> value."""
    words = options.split()
    return dict(value.split("=", 1) for flag, value in zip(words[::2], words[1::2], strict=True) if flag == "-c")


def test_the_postgresql_lock_session_is_never_ended_for_being_idle() -> None:
    """It is idle for the whole run it locks: a server's idle_session_timeout would free the lock under it."""
    session = OpenedLockSession()
    with advisory_lock(session, "sync-acme"):  # type: ignore[arg-type]
        pass
    settings = session_settings(session.arguments["options"])
    assert settings["idle_session_timeout"] == "0"
    assert settings["tcp_keepalives_idle"] == "30", "the keepalives are kept"
