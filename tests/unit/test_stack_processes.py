"""Pid files, process identity, ports and waiting (real processes and sockets, all local and quick)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.stack import processes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "expected"), [("123\n", 123), ("  42 ", 42), ("", None), ("abc", None), ("0", None)])
def test_read_pid(tmp_path: Path, text: str, expected: int | None) -> None:
    path = tmp_path / "x.pid"
    path.write_text(text, encoding="ascii")
    assert processes.read_pid(path) == expected


def test_pid_file_round_trip_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    assert processes.read_pid(path) is None
    processes.write_pid(path, 4321)
    assert processes.read_pid(path) == 4321


def test_our_process_is_recognised_by_markers() -> None:
    me = os.getpid()
    assert processes.is_alive(me)
    assert processes.is_our_process(me, "python")
    assert not processes.is_our_process(me, "python", "no-such-marker-in-cmdline")


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own session with a marker in its command line, like kc.sh."""
    marker = str(tmp_path / "marker")
    child = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", marker], start_new_session=True)
    yield child
    if child.poll() is None:
        child.kill()
        child.wait()


def test_group_members_and_stop_group(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    assert processes.process_group(sleeper.pid) == sleeper.pid
    assert processes.group_members(sleeper.pid) == [sleeper.pid]
    assert processes.is_our_process(sleeper.pid, str(tmp_path / "marker"))
    processes.stop_process_group(sleeper.pid, timeout_seconds=5)
    # Killed but not yet waited for: a zombie, which must count as gone.
    assert not processes.is_alive(sleeper.pid)
    assert processes.group_members(sleeper.pid) == []


def test_stop_process(sleeper: subprocess.Popen[bytes]) -> None:
    processes.stop_process(sleeper.pid, timeout_seconds=5)
    assert not processes.is_alive(sleeper.pid)


def test_dead_pid_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not processes.is_alive(child.pid)
    assert processes.cmdline(child.pid) == ""


def test_port_is_free_sees_listeners() -> None:
    with socket.socket() as listener:
        listener.bind((processes.LOCALHOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not processes.port_is_free(port)
    assert processes.port_is_free(port)


def test_free_port_honours_exclusions() -> None:
    first = processes.free_port()
    assert 0 < first < 65536
    assert processes.free_port(exclude=frozenset({first})) != first


def test_wait_until_outcomes() -> None:
    assert processes.wait_until(lambda: True, timeout_seconds=1) == "ready"
    assert processes.wait_until(lambda: False, timeout_seconds=1, give_up=lambda: True) == "gave_up"
    started = time.monotonic()
    assert processes.wait_until(lambda: False, timeout_seconds=0.2, interval_seconds=0.05) == "timeout"
    assert time.monotonic() - started < 1


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)), encoding="utf-8")
    assert processes.tail(log, 3) == "line 97\nline 98\nline 99"
    assert processes.tail(tmp_path / "missing.log") == ""


def test_private_json(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    processes.write_private_json(path, {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o600
    assert processes.read_json(path) == {"a": 1}
    assert processes.read_json(tmp_path / "missing.json") is None
