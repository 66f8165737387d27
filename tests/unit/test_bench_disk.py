"""What a benchmark arm records of the disks while it ran (a stalled VM disk must show in the result), and of the
machine's CPUs while an agent arm ran (whether they were the bottleneck)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.common import (
    CpuTimes,
    DiskCounters,
    cpu_times,
    disk_counters,
    disk_during,
    machine_cpu_during,
    parse_cpu_line,
    sum_diskstats,
)

# Kernel 5.5+ lines: major, minor, name, then 17 counters (writes completed 5th, their ms 8th, flushes 16th and
# their ms 17th). vda1 is a partition of vda, loop0 no disk.
DISKSTATS = """\
 254 0 vda 313219 26495 18383554 5235936 3754127 135691 103090424 5848369 2 897960 11137362 0 0 0 32169 311117 20887
 254 1 vda1 313000 26000 18300000 5235000 3754000 135000 103090000 5848000 0 897000 11137000 0 0 0 32000 0 0
   7 0 loop0 10 0 80 1 5 0 40 3 0 4 4 0 0 0 0 0 0
 259 0 nvme0n1 100 0 800 10 200 0 1600 40 0 50 50 0 0 0 0 7 3
"""
OLD_KERNEL = " 8 0 sda 100 0 800 10 200 0 1600 40 0 50 50\n"


def test_whole_disks_are_summed_and_partitions_and_loop_devices_left_out() -> None:
    counters = sum_diskstats(DISKSTATS, {"vda", "nvme0n1"})
    assert counters == DiskCounters(writes=3754127 + 200, write_ms=5848369 + 40, flushes=311117 + 7, flush_ms=20887 + 3)


def test_a_kernel_without_flush_fields_counts_no_flushes() -> None:
    assert sum_diskstats(OLD_KERNEL, {"sda"}) == DiskCounters(writes=200, write_ms=40, flushes=0, flush_ms=0)


def test_the_disks_are_those_the_block_folder_lists(tmp_path: Path) -> None:
    (tmp_path / "diskstats").write_text(DISKSTATS)
    for name in ("vda", "loop0", "ram0"):
        (tmp_path / "block" / name).mkdir(parents=True)
    counters = disk_counters(tmp_path / "diskstats", tmp_path / "block")
    assert counters == DiskCounters(writes=3754127, write_ms=5848369, flushes=311117, flush_ms=20887)


def test_no_counters_where_the_kernel_gives_none(tmp_path: Path) -> None:
    assert disk_counters(tmp_path / "missing", tmp_path) is None
    assert disk_during(None, DiskCounters(1, 1, 1, 1)) is None


def test_a_stall_shows_as_a_long_mean_write() -> None:
    before = DiskCounters(writes=1000, write_ms=5000, flushes=10, flush_ms=20)
    after = DiskCounters(writes=1154, write_ms=378538, flushes=16, flush_ms=20)
    assert disk_during(before, after) == {
        "writes": 154,
        "write_ms": 373538,
        "ms_per_write": 2425.6,
        "flushes": 6,
        "flush_ms": 0,
    }


def test_no_mean_when_nothing_was_written() -> None:
    quiet = DiskCounters(writes=5, write_ms=9, flushes=0, flush_ms=0)
    assert disk_during(quiet, quiet) == {"writes": 0, "write_ms": 0, "ms_per_write": None, "flushes": 0, "flush_ms": 0}


# -- the machine's CPU while an agent arm ran ---------------------------------------------------------

# /proc/stat's first line: user nice system idle iowait irq softirq steal guest guest_nice, in clock ticks.
CPU_LINE = "cpu  2285945 575 219949 1671952 89603 0 49054 48727 0 0"


def test_the_busy_time_is_user_nice_system_irq_and_softirq() -> None:
    assert parse_cpu_line(CPU_LINE) == CpuTimes(busy=2285945 + 575 + 219949 + 0 + 49054, iowait=89603, steal=48727)


def test_the_busy_share_is_of_every_cpu_over_the_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    before = CpuTimes(busy=1000, iowait=50, steal=10)
    after = CpuTimes(busy=1060, iowait=52, steal=13)
    # 0.6 CPU-seconds busy in 0.4 s of two CPUs (0.8 CPU-seconds): 75 %.
    assert machine_cpu_during(before, after, 0.4) == {
        "busy_cpu_s": 0.6,
        "iowait_cpu_s": 0.02,
        "steal_cpu_s": 0.03,
        "busy_share": 0.75,
    }


def test_without_a_reading_nothing_is_said(tmp_path: Path) -> None:
    assert cpu_times(tmp_path / "no-such-stat") is None
    assert machine_cpu_during(None, CpuTimes(1, 0, 0), 1.0) is None


def test_the_first_line_of_the_stat_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text(CPU_LINE + "\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    assert cpu_times(tmp_path / "stat") == parse_cpu_line(CPU_LINE)
