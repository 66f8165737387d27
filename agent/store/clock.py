"""Clocks: the store stamps every record with an injected `now`, so tests (and replays) control time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told: `advance(timedelta(days=2))`, or `set(...)` (also backwards, to
    play a wall-clock jump). Safe to read from several threads."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._now = _aware(start)

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: timedelta) -> datetime:
        with self._lock:
            self._now += by
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = _aware(moment)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a clock needs a timezone-aware datetime")
    return moment
