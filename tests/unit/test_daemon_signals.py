"""The daemon's signal handling: a handler runs between two bytecodes of the main thread, so it must never take
a lock that thread may hold just then. Setting the stop Event from the handler did: a SIGTERM landing while the
main loop was inside `Event.wait` (which holds the Event's condition lock around its wait) deadlocked the daemon
in its own handler, and it never stopped (seen once in `make test`: test_daemon_one_writer's second daemon)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.daemon.clock import system_clock
from agent.daemon.service import Daemon

pytestmark = pytest.mark.unit


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    config = tmp_path / "idp-agent.yaml"
    # Never started: no scheduler here.
    daemon_section = "daemon:\n  jobs:\n    - {job: sanctions, every: 1h, realm: acme}\n"
    config.write_text(f"store: sqlite:///{tmp_path / 'store.db'}\n{daemon_section}", encoding="utf-8")
    made = Daemon(config, env={}, clock=system_clock, listen="127.0.0.1:0")
    yield made
    made.http.stop()


def event_lock(event: threading.Event) -> Any:
    """The condition an Event holds while it waits (CPython's threading.Event keeps it as `_cond`)."""
    return event._cond  # type: ignore[attr-defined]


def signal_while_holding(daemon: Daemon, lock: Any, signum: int) -> bool:
    """Deliver `signum` to the daemon's handler from a thread that holds `lock`, as the main thread does inside
    Event.wait; whether the handler returned (a deadlocked thread is left behind, as a daemon thread)."""

    def delivered() -> None:
        with lock:
            daemon._queue_signal(signum, None)

    worker = threading.Thread(target=delivered, daemon=True)
    worker.start()
    worker.join(5.0)
    return not worker.is_alive()


def test_sigterm_landing_inside_the_stop_events_wait_does_not_deadlock(daemon: Daemon) -> None:
    assert signal_while_holding(daemon, event_lock(daemon.stopping), signal.SIGTERM), "the handler deadlocked"
    assert not daemon.stopping.is_set()  # the main loop acts on it, outside the handler
    assert daemon._next_tick() is True and daemon.stopping.is_set()


def test_sighup_asks_for_a_reload_and_does_not_stop(daemon: Daemon) -> None:
    assert signal_while_holding(daemon, event_lock(daemon.stopping), signal.SIGHUP)
    assert daemon._next_tick() is False and daemon._reload_requested and not daemon.stopping.is_set()


def test_a_quiet_tick_stops_only_when_another_thread_asked(daemon: Daemon) -> None:
    assert daemon._next_tick() is False
    daemon.stopping.set()
    assert daemon._next_tick() is True
