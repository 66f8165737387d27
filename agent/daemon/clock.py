"""The daemon's wall clock, and clock jumps.

APScheduler 3 reads `datetime.now()` itself; a test can give the daemon another clock (`use_clock`), so a
clock jump is played without changing the machine's time. IDP_AGENT_DAEMON_CLOCK_FILE (tests only) names a
file holding an offset in seconds added to the system time; rewriting it makes the clock jump.

A jump is seen by comparing the wall clock with the monotonic one; the daemon then reschedules every job
from its last run, so a forward jump causes one catch-up run and a backward jump no run days late.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

Clock = Callable[[], datetime]
CLOCK_FILE_VARIABLE = "IDP_AGENT_DAEMON_CLOCK_FILE"
JUMP_THRESHOLD_SECONDS = 30.0


def system_clock() -> datetime:
    return datetime.now(UTC)


class FileOffsetClock:
    """System time plus the offset (seconds, may be negative) written in a file; a missing file is 0."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> float:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return 0.0
        try:
            return float(text) if text else 0.0
        except ValueError:
            return 0.0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset())


def clock_from_env(env: Mapping[str, str]) -> Clock:
    path = env.get(CLOCK_FILE_VARIABLE)
    return FileOffsetClock(Path(path)) if path else system_clock


def use_clock(clock: Clock) -> None:
    """Make APScheduler's scheduler and executors read `clock` (a no-op for the system clock)."""
    if clock is system_clock:
        return
    import apscheduler.executors.base as executor_module
    import apscheduler.schedulers.base as scheduler_module

    class ClockedDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> ClockedDatetime:
            moment = clock().astimezone(tz or UTC)
            return cls.fromtimestamp(moment.timestamp(), moment.tzinfo)

    scheduler_module.datetime = ClockedDatetime
    executor_module.datetime = ClockedDatetime


def wall_minus_monotonic(clock: Clock) -> float:
    """Wall time minus monotonic time: constant while the clock runs normally, moved by a jump."""
    return clock().timestamp() - time.monotonic()


def detect_jump(previous: float, current: float, threshold: float = JUMP_THRESHOLD_SECONDS) -> float | None:
    """The size of a wall-clock jump (seconds, negative = backwards) between two readings of
    wall_minus_monotonic, or None when the difference is drift within the threshold."""
    moved = current - previous
    return moved if abs(moved) >= threshold else None
