"""One writer at a time: an exclusive lock per job, released by the kernel if its holder dies.

flock(2) locks belong to the open file, so a crashed or killed run never leaves a stale lock behind.
(Several agents sharing one PostgreSQL store will need the database's advisory lock instead.)
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import AgentError
from agent.paths import state_dir


class Locked(AgentError):
    """Another run holds the lock: this one is skipped, which is not an error."""


def lock_path(name: str, directory: Path | None = None) -> Path:
    folder = directory or state_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"{name}.lock"


@contextmanager
def exclusive(name: str, directory: Path | None = None) -> Iterator[None]:
    """Hold the lock `name` for the block, or raise Locked at once (never wait behind another run)."""
    path = lock_path(name, directory)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = path.read_text(encoding="utf-8").strip() or "unknown"
        os.close(fd)
        raise Locked(f"skipped: locked by another run of '{name}' (pid {holder})") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
