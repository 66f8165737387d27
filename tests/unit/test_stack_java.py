"""Finding Java: version parsing and the search order (with small fake `java` scripts, no real JDK)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import StackError
from agent.stack.java import candidate_homes, find_java, parse_java_version

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', ("17.0.15", 17)),
        ('openjdk version "25" 2025-09-16 LTS', ("25", 25)),
        ('openjdk version "25.0.3" 2026-04-21 LTS', ("25.0.3", 25)),
        ('java version "1.8.0_402"\nJava(TM) SE Runtime Environment', ("1.8.0_402", 8)),
        ('openjdk version "21-ea" 2023-09-19', ("21-ea", 21)),
        ('Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version "11.0.2" 2019-01-15', ("11.0.2", 11)),
        ("bash: java: command not found", None),
        ('openjdk version "unknown"', None),
    ],
)
def test_parse_java_version(output: str, expected: tuple[str, int] | None) -> None:
    assert parse_java_version(output) == expected


def fake_jdk(root: Path, name: str, version: str) -> Path:
    """A directory with bin/java printing `version` to stderr, as `java -version` does."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-01-01' >&2\n", encoding="utf-8")
    java.chmod(0o755)
    return home


def test_java_home_comes_first(tmp_path: Path) -> None:
    home = fake_jdk(tmp_path / "custom", "jdk", "21.0.1")
    jvm = tmp_path / "jvm"
    fake_jdk(jvm, "jdk-17", "17.0.9")
    found = find_java({"JAVA_HOME": str(home), "PATH": "/nonexistent"}, jvm_root=jvm)
    assert (found.home, found.major) == (home, 21)


def test_too_old_java_home_falls_through_to_path(tmp_path: Path) -> None:
    old = fake_jdk(tmp_path, "jdk-11", "11.0.2")
    on_path = fake_jdk(tmp_path, "jdk-17", "17.0.9")
    found = find_java({"JAVA_HOME": str(old), "PATH": str(on_path / "bin")}, jvm_root=tmp_path / "none")
    assert found.home == on_path.resolve()
    assert found.executable == on_path.resolve() / "bin" / "java"


def test_jvm_root_is_searched_last(tmp_path: Path) -> None:
    jvm = tmp_path / "jvm"
    fake_jdk(jvm, "a-jdk-8", "1.8.0_402")
    newer = fake_jdk(jvm, "b-jdk-25", "25")
    found = find_java({"PATH": "/nonexistent"}, jvm_root=jvm)
    assert (found.home, found.version) == (newer.resolve(), "25")


def test_symlinked_jvm_dirs_are_tried_once(tmp_path: Path) -> None:
    jvm = tmp_path / "jvm"
    real = fake_jdk(jvm, "java-17-openjdk-amd64", "17.0.15")
    (jvm / "java-1.17.0-openjdk-amd64").symlink_to(real)
    assert candidate_homes({"PATH": "/nonexistent"}, jvm_root=jvm) == [real.resolve()]


def test_no_suitable_java_is_a_clear_error(tmp_path: Path) -> None:
    old = fake_jdk(tmp_path, "jdk-11", "11.0.2")
    with pytest.raises(StackError) as raised:
        find_java({"JAVA_HOME": str(old), "PATH": "/nonexistent"}, jvm_root=tmp_path / "none")
    assert "11.0.2" in str(raised.value)
    assert "JAVA_HOME" in raised.value.hint
