"""sync_bench --repeats: each arm's median run counts, and no run's failure is hidden by the others."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from benchmarks.common import median_of
from benchmarks.sync_bench import combined_size, goals_met, odd_count, ratios


def arm(seconds: float, *, writes: int = 0, rss: float = 80.0) -> dict[str, Any]:
    return {"seconds": seconds, "writes": writes, "peak_rss_mib": rss}


def size_run(
    a1: float, a3: float, a4: float, *, a3_writes: int = 0, rss: float = 80.0, checks: tuple[str, ...] = ()
) -> dict[str, Any]:
    arms = {"A1": arm(a1, rss=rss), "A3": arm(a3, writes=a3_writes), "A4": arm(a4)}
    return {"users": 1000, "settling_seconds": [9.0, 8.8], "arms": arms, "ratios": ratios(arms), "checks": list(checks)}


def test_the_median_run_is_the_middle_one_by_seconds_with_every_runs_seconds() -> None:
    chosen = median_of([{"seconds": 3.0, "n": 1}, {"seconds": 1.0, "n": 2}, {"seconds": 2.0, "n": 3}])
    assert chosen == {"seconds": 2.0, "n": 3, "all_seconds": [3.0, 1.0, 2.0]}


def test_of_an_even_count_the_slower_middle_run_counts() -> None:
    assert median_of([{"seconds": 1.0}, {"seconds": 2.0}])["seconds"] == 2.0


def test_the_ratios_are_those_of_each_arms_median() -> None:
    size = combined_size([size_run(2.0, 0.30, 0.40), size_run(3.0, 0.20, 0.50), size_run(2.5, 0.25, 0.35)])
    assert [size["arms"][name]["seconds"] for name in ("A1", "A3", "A4")] == [2.5, 0.25, 0.40]
    assert size["ratios"]["a3_over_a1"] == 0.1
    assert size["ratios"]["a4_over_a1"] == 0.16
    assert [each["a3_over_a1"] for each in size["ratios_of_each_run"]] == [0.15, 0.0667, 0.1]
    assert size["repeats"] == 3


def test_a_write_in_any_runs_a3_misses_the_goal() -> None:
    size = combined_size([size_run(2.0, 0.1, 0.2), size_run(2.0, 0.3, 0.2, a3_writes=1), size_run(2.0, 0.2, 0.2)])
    assert size["arms"]["A3"]["writes"] == 0  # the median run (0.2 s) wrote nothing
    assert goals_met(size)["a3_writes"] is False


def test_the_peak_memory_is_the_highest_of_any_run() -> None:
    size = combined_size(
        [size_run(2.0, 0.1, 0.2, rss=90.0), size_run(2.1, 0.1, 0.2, rss=400.0), size_run(2.2, 0.1, 0.2)]
    )
    assert size["arms"]["A1"]["peak_rss_mib"] == 400.0


def test_every_runs_failed_checks_are_kept_and_miss_the_delta_goal() -> None:
    size = combined_size(
        [size_run(2.0, 0.1, 0.2), size_run(2.0, 0.1, 0.2, checks=("A4 missed a deletion",)), size_run(2.0, 0.1, 0.2)]
    )
    assert size["checks"] == ["A4 missed a deletion"]
    assert goals_met(size)["a4_over_a1"] is False


@pytest.mark.parametrize("text", ["0", "2", "-1", "4"])
def test_repeats_must_be_an_odd_count(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        odd_count(text)


@pytest.mark.parametrize(("text", "count"), [("1", 1), ("3", 3), ("5", 5)])
def test_odd_counts_are_taken(text: str, count: int) -> None:
    assert odd_count(text) == count
