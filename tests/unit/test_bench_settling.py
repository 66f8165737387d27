"""sync_bench settles Keycloak before each size: imports until one is no longer clearly faster than the last."""

from __future__ import annotations

import pytest

from benchmarks.sync_bench import _steady


@pytest.mark.parametrize(
    ("seconds", "steady"),
    [
        ([], False),
        ([9.0], False),  # one round says nothing about the trend
        ([17.3, 14.6], False),  # 16 % faster: still warming up
        ([10.8, 10.8], True),
        ([9.4, 8.6], True),  # 8.5 % faster: within the 10 % allowed
        ([7.0, 7.6], True),  # slower: noise, not warming
        ([14.6, 10.8, 10.8], True),
    ],
)
def test_settled_once_a_round_is_no_more_than_a_tenth_faster_than_the_one_before(
    seconds: list[float], steady: bool
) -> None:
    assert _steady(seconds) is steady
