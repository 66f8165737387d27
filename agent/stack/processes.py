"""Process plumbing for the local stack: pid files, telling our processes from others, ports, waiting.

Linux only: process identity is read from /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from agent.errors import StackError

LOCALHOST = "127.0.0.1"
POLL_INTERVAL_SECONDS = 0.25
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

WaitOutcome = Literal["ready", "timeout", "gave_up"]


def read_pid(path: Path) -> int | None:
    """The pid stored in a pid file, or None when the file is missing or holds no number."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_pid(path: Path, pid: int) -> None:
    """Write a pid file atomically, so a reader never sees half a number."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(path)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces or parentheses)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _reap_if_child(pid: int) -> None:
    # A child we started and killed stays a zombie until waited for; other pids raise and are ignored.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    _reap_if_child(pid)
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def process_group(pid: int) -> int | None:
    """The process group id of a live process, or None."""
    fields = _stat_fields(pid)
    return int(fields[2]) if fields is not None else None


def cmdline(pid: int) -> str:
    """The process's command line with arguments joined by spaces ('' when gone or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip()


def is_our_process(pid: int, *markers: str) -> bool:
    """True when the process is alive and its command line contains every marker (pids get reused)."""
    if not is_alive(pid):
        return False
    line = cmdline(pid)
    return bool(line) and all(marker in line for marker in markers)


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is pgid."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process_group(int(entry.name)) == pgid and is_alive(int(entry.name)):
            members.append(int(entry.name))
    return members


def _wait_gone(is_gone: Callable[[], bool], timeout_seconds: float) -> bool:
    return wait_until(is_gone, timeout_seconds=timeout_seconds) == "ready"


def stop_process(pid: int, *, timeout_seconds: float) -> None:
    """SIGTERM one process, wait for it to exit, SIGKILL it when it does not."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(lambda: not is_alive(pid), timeout_seconds):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(lambda: not is_alive(pid), timeout_seconds)


def stop_process_group(pgid: int, *, timeout_seconds: float) -> None:
    """SIGTERM a whole process group we created, wait, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    if not _wait_gone(lambda: not group_members(pgid), timeout_seconds):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        _wait_gone(lambda: not group_members(pgid), timeout_seconds)


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """True when nothing listens on host:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as servers set it, so a port closed a moment ago is not reported busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOCALHOST, *, exclude: frozenset[int] = frozenset()) -> int:
    """A port the kernel says is free now (someone may still take it before we do)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
        if port not in exclude:
            return port


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_seconds: float,
    give_up: Callable[[], bool] = lambda: False,
    interval_seconds: float = POLL_INTERVAL_SECONDS,
) -> WaitOutcome:
    """Poll check until it holds ("ready"), give_up holds ("gave_up") or the deadline passes ("timeout")."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        if check():
            return "ready"
        if give_up():
            return "gave_up"
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(interval_seconds)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a text file ('' when it is missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def make_private_dir(path: Path) -> Path:
    """Create a directory readable only by us (state holds passwords and databases)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    return path


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON with mode 0600 from the first byte, then move it in place."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, None when missing; a StackError when it is not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise StackError(f"cannot read {path}: {error}", hint=f"fix or delete {path}") from None
    if not isinstance(data, dict):
        raise StackError(f"{path} does not hold a JSON object", hint=f"fix or delete {path}")
    return data


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on path, so two `stack up` runs do not race."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
