"""Shared by the benchmark scripts: where Keycloak is, what machine ran it, and how results are written."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import StackError
from agent.settings import KeycloakConnection, keycloak_connection_from_env
from agent.stack.java import find_java

BENCH_STATE_DIR = Path(__file__).resolve().parent.parent / ".state" / "bench"


KEYCLOAK_DBS = ("dev-file", "postgres")


@contextmanager
def keycloak_for_benchmark(database: str = "dev-file") -> Iterator[KeycloakConnection]:
    """KEYCLOAK_* from the environment, else the local stack in .state/bench (started and stopped here), or
    with database "postgres" a throwaway Keycloak on PostgreSQL (benchmarks/keycloak_postgres.py), whose
    connection is put in KEYCLOAK_* meanwhile so that an arm run in a child process finds it."""
    configured = keycloak_connection_from_env(os.environ)
    if configured is not None:
        yield configured
        return
    if database == "postgres":
        from benchmarks.keycloak_postgres import keycloak_on_postgres

        with keycloak_on_postgres(_echo_postgres) as (analyze, on_postgres), _in_environment(on_postgres):
            _SETTLE.append(analyze)
            try:
                yield on_postgres
            finally:
                _SETTLE.remove(analyze)
        return
    from agent import stack

    started = stack.running_keycloak_connection(BENCH_STATE_DIR) is None
    if started:
        stack.up(BENCH_STATE_DIR, components=("keycloak",), echo=lambda line: print(f"[stack] {line}"))
    connection = stack.running_keycloak_connection(BENCH_STATE_DIR)
    assert connection is not None
    try:
        yield connection
    finally:
        if started:
            stack.down(BENCH_STATE_DIR, echo=lambda line: print(f"[stack] {line}"))


# What settle_database calls: ANALYZE of the throwaway PostgreSQL while one runs.
_SETTLE: list[Callable[[], None]] = []


def settle_database() -> None:
    """Before an arm: on the throwaway PostgreSQL, ANALYZE Keycloak's tables (see keycloak_postgres.analyze);
    nothing on the bench stack's H2 or a Keycloak given by KEYCLOAK_URL."""
    for settle in _SETTLE:
        settle()


def add_keycloak_db_option(parser: argparse.ArgumentParser) -> None:
    """`--keycloak-db`: the bench stack's Keycloak (H2 files) or a throwaway one on PostgreSQL."""
    parser.add_argument(
        "--keycloak-db",
        choices=KEYCLOAK_DBS,
        default="dev-file",
        help="the bench stack's Keycloak (H2 files), or a throwaway Keycloak on PostgreSQL (ignored with KEYCLOAK_URL)",
    )


def _echo_postgres(line: str) -> None:
    print(f"[postgres] {line}", flush=True)


def keycloak_description(database: str) -> str:
    """Which Keycloak a run uses, for its printout and JSON."""
    if os.environ.get("KEYCLOAK_URL"):
        return "KEYCLOAK_URL (its database as configured there)"
    if database == "postgres":
        return "a throwaway Keycloak on PostgreSQL (fsync and synchronous commit on)"
    return "bench stack (.state/bench, H2 dev-file)"


@contextmanager
def _in_environment(connection: KeycloakConnection) -> Iterator[None]:
    """KEYCLOAK_* naming this admin connection while the block runs (children inherit it), then as before."""
    assert connection.username is not None and connection.password is not None
    wanted = {
        "KEYCLOAK_URL": connection.url,
        "KEYCLOAK_ADMIN_USER": connection.username,
        "KEYCLOAK_ADMIN_PASSWORD": connection.password.reveal(),
    }
    before = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def machine() -> dict[str, Any]:
    """What ran the benchmark. The platform names the kernel build, which tells apart hosts of the same size that
    are not as fast (results from two such hosts are not comparable); `java` is what a local stack starts
    Keycloak with."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(Path("/proc/cpuinfo")),
        "memory_gib": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "java": _local_java(),
    }


def cpu_model(cpuinfo: Path) -> str | None:
    """The first `model name` of /proc/cpuinfo; None where there is none (not Linux, another architecture)."""
    try:
        lines = cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return None


def _local_java() -> str | None:
    try:
        return find_java().version
    except StackError:
        return None


@dataclass(frozen=True)
class DiskCounters:
    """The kernel's running totals for the machine's whole disks (/proc/diskstats): writes completed, the
    milliseconds they took, and cache flushes (fsync reaches the disk as one) with their milliseconds."""

    writes: int
    write_ms: int
    flushes: int
    flush_ms: int


def disk_counters(diskstats: Path = Path("/proc/diskstats"), block: Path = Path("/sys/block")) -> DiskCounters | None:
    """Now's totals over the whole disks (partitions would count their writes twice; loop and ram devices are
    not disks); None where there are no such files (not Linux)."""
    try:
        text = diskstats.read_text(encoding="ascii", errors="replace")
        disks = {name for name in os.listdir(block) if not name.startswith(("loop", "ram"))}
    except OSError:
        return None
    return sum_diskstats(text, disks)


def sum_diskstats(text: str, disks: set[str]) -> DiskCounters:
    """The totals of the named devices' lines. After major, minor and name: field 5 is writes completed, 8 the
    ms spent writing, 16 and 17 flushes and their ms (kernels before 5.5 have no flush fields: 0)."""
    writes = write_ms = flushes = flush_ms = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 11 or fields[2] not in disks:
            continue
        counts = [int(value) for value in fields[3:]]
        writes += counts[4]
        write_ms += counts[7]
        if len(counts) >= 17:
            flushes += counts[15]
            flush_ms += counts[16]
    return DiskCounters(writes, write_ms, flushes, flush_ms)


def disk_during(before: DiskCounters | None, after: DiskCounters | None) -> dict[str, Any] | None:
    """What the disks did between two readings, and how long a write took on average: a stalled disk (a VM's
    storage that pauses) shows as a mean of hundreds of milliseconds where tens are usual, and an arm whose
    writes wait on fsync is then slow for reasons none of the code under test has a hand in."""
    if before is None or after is None:
        return None
    writes = after.writes - before.writes
    write_ms = after.write_ms - before.write_ms
    return {
        "writes": writes,
        "write_ms": write_ms,
        "ms_per_write": round(write_ms / writes, 1) if writes else None,
        "flushes": after.flushes - before.flushes,
        "flush_ms": after.flush_ms - before.flush_ms,
    }


def with_disk(action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """An arm's result with what the disks did while it ran (`disk`, see disk_during)."""
    before = disk_counters()
    result = action()
    result["disk"] = disk_during(before, disk_counters())
    return result


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time so far, in clock ticks summed over its CPUs (/proc/stat): busy (user, nice, system,
    irq, softirq), waiting on the disk, and stolen by the host."""

    busy: int
    iowait: int
    steal: int


def cpu_times(stat: Path = Path("/proc/stat")) -> CpuTimes | None:
    """None where there is no such file (not Linux)."""
    try:
        text = stat.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return parse_cpu_line(text.splitlines()[0])


def parse_cpu_line(line: str) -> CpuTimes:
    """The "cpu" line: user nice system idle iowait irq softirq steal (guest time is counted in user already)."""
    user, nice, system, _idle, iowait, irq, softirq, steal = (int(field) for field in line.split()[1:9])
    return CpuTimes(busy=user + nice + system + irq + softirq, iowait=iowait, steal=steal)


def machine_cpu_during(
    before: CpuTimes | None, after: CpuTimes | None, seconds: float, ticks_per_second: int = 100
) -> dict[str, Any] | None:
    """CPU-seconds the whole machine spent busy (every process: Keycloak, its database, slapd, the agent), waiting
    on the disk and stolen by the host over `seconds` of wall time, and the share of all its CPUs that was busy:
    near 1, the CPUs were the bottleneck; well below, something was waited on."""
    if before is None or after is None or seconds <= 0:
        return None
    busy = (after.busy - before.busy) / ticks_per_second
    cpus = os.cpu_count() or 1
    return {
        "busy_cpu_s": round(busy, 3),
        "iowait_cpu_s": round((after.iowait - before.iowait) / ticks_per_second, 3),
        "steal_cpu_s": round((after.steal - before.steal) / ticks_per_second, 3),
        "busy_share": round(busy / (seconds * cpus), 2),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass(frozen=True)
class Timed:
    seconds: float
    value: Any


def timed(action: Callable[[], Any]) -> Timed:
    start = time.perf_counter()
    value = action()
    return Timed(round(time.perf_counter() - start, 3), value)


def write_results(path: Path | None, results: dict[str, Any]) -> None:
    text = json.dumps(results, indent=2, sort_keys=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        print(f"results written to {path}")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {column: max(len(column), *(len(str(row.get(column, ""))) for row in rows)) for column in columns}
    print("  ".join(column.ljust(widths[column]) for column in columns))
    for row in rows:
        print("  ".join(str(row.get(column, "")).ljust(widths[column]) for column in columns))


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median seconds (of an even count, the slower middle one), with every run's seconds."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return {**ordered[len(ordered) // 2], "all_seconds": [run["seconds"] for run in runs]}


def ratio(numerator: float, denominator: float, digits: int = 4) -> float | None:
    """numerator / denominator, rounded; None when the denominator is zero (nothing to compare with)."""
    return round(numerator / denominator, digits) if denominator else None
