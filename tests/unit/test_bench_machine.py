"""What a benchmark result records of the machine that ran it."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import cpu_model


def test_the_cpu_model_is_the_first_model_name(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n\nmodel name\t: other\n")
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) Processor"


def test_no_cpu_model_where_cpuinfo_has_none_or_is_missing(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nCPU implementer\t: 0x41\n")
    assert cpu_model(cpuinfo) is None
    assert cpu_model(tmp_path / "missing") is None
