"""The executor's plumbing: units of work in windows, and a map over a few worker threads that yields in input
order, keeps them busy without a pause and starts nothing new after an error."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

Input = TypeVar("Input")


class Finished(Protocol):
    """What a unit of work gives back: an error stops the map."""

    @property
    def error(self) -> Exception | None: ...


Result = TypeVar("Result", bound=Finished)


def windows(units: Iterable[Input], items_of: Callable[[Input], Sized], size: int) -> Iterator[list[Input]]:
    """`units` in consecutive windows of whole units holding at least `size` items each (the last may hold
    fewer); taken lazily, so import representations are built only as their window comes up."""
    window: list[Input] = []
    count = 0
    for unit in units:
        window.append(unit)
        count += len(items_of(unit))
        if count >= size:
            yield window
            window, count = [], 0
    if window:
        yield window


def ordered_map(function: Callable[[Input], Result], inputs: Iterable[Input], *, workers: int) -> Iterator[Result]:
    """`function` over `inputs` on `workers` threads, yielded in input order, a bounded number in flight.

    After a result with an error nothing new is started; the units already running finish and are yielded
    too (their writes were made and must be recorded). `function` reports failures in the result's `error`.
    """
    if workers <= 1:
        for value in inputs:
            done = function(value)
            yield done
            if done.error is not None:
                return
        return
    pending: deque[Future[Result]] = deque()
    remaining = iter(inputs)
    stopped = False
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync") as pool:
        try:
            while True:
                if not stopped:
                    for value in itertools.islice(remaining, 2 * workers - len(pending)):
                        pending.append(pool.submit(function, value))
                if not pending:
                    return
                done = pending.popleft().result()
                stopped = stopped or done.error is not None
                yield done
        finally:
            for future in pending:
                future.cancel()
