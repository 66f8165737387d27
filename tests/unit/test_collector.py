"""agent/collector.py: the cycle collector's first threshold raised inside the block, put back after it, also
when blocks overlap in several threads or end with an error."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from agent.collector import FIRST_THRESHOLD, fewer_collections


@pytest.fixture(autouse=True)
def usual_thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_the_first_threshold_is_raised_inside_and_put_back_after(usual_thresholds: tuple[int, int, int]) -> None:
    with fewer_collections():
        assert gc.get_threshold() == (FIRST_THRESHOLD, 10, 10)
    assert gc.get_threshold() == usual_thresholds


def test_a_higher_threshold_someone_set_is_kept() -> None:
    gc.set_threshold(FIRST_THRESHOLD * 2, 5, 5)
    with fewer_collections():
        assert gc.get_threshold() == (FIRST_THRESHOLD * 2, 5, 5)
    assert gc.get_threshold() == (FIRST_THRESHOLD * 2, 5, 5)


def test_nested_blocks_and_errors_put_the_thresholds_back(usual_thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        with fewer_collections():
            pass
        assert gc.get_threshold()[0] == FIRST_THRESHOLD  # the inner block ended, the outer has not
        raise RuntimeError("boom")
    assert gc.get_threshold() == usual_thresholds


def test_as_a_decorator() -> None:
    @fewer_collections()
    def inside() -> int:
        return gc.get_threshold()[0]

    assert inside() == FIRST_THRESHOLD
    assert gc.get_threshold()[0] == 700


def test_blocks_overlapping_in_threads_put_back_the_thresholds_when_the_last_ends(
    usual_thresholds: tuple[int, int, int],
) -> None:
    """Thread A enters, then B; A leaves first: the threshold stays raised for B, then comes back."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def a() -> None:
        with fewer_collections():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with fewer_collections():
            b_in.set()
            a_out.wait(5)
            seen["b after a left"] = gc.get_threshold()[0]

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert seen == {"b after a left": FIRST_THRESHOLD}
    assert gc.get_threshold() == usual_thresholds
