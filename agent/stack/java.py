"""Finding a Java runtime for Keycloak: JAVA_HOME, then `java` on PATH, then JDKs under /usr/lib/jvm."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.errors import StackError

MIN_JAVA_MAJOR = 17
JVM_ROOT = Path("/usr/lib/jvm")
PROBE_TIMEOUT_SECONDS = 30.0

_VERSION = re.compile(r'version "(?P<version>[^"]+)"')
_LEADING_NUMBERS = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True)
class JavaRuntime:
    """A Java installation: its home (what JAVA_HOME should be) and version."""

    home: Path
    version: str
    major: int

    @property
    def executable(self) -> Path:
        return self.home / "bin" / "java"


def parse_java_version(output: str) -> tuple[str, int] | None:
    """The version string and major number from `java -version` output ("1.8.0_402" is major 8)."""
    found = _VERSION.search(output)
    if found is None:
        return None
    version = found["version"]
    numbers = _LEADING_NUMBERS.match(version)
    if numbers is None:
        return None
    parts = [int(part) for part in numbers.group().split(".")]
    legacy = parts[0] == 1 and len(parts) > 1
    return version, parts[1] if legacy else parts[0]


def probe_java(home: Path) -> JavaRuntime | None:
    """Run `<home>/bin/java -version`; None when it is missing or does not answer."""
    executable = home / "bin" / "java"
    if not os.access(executable, os.X_OK):
        return None
    try:
        done = subprocess.run(
            [str(executable), "-version"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parsed = parse_java_version(done.stderr + done.stdout)
    if done.returncode != 0 or parsed is None:
        return None
    return JavaRuntime(home=home, version=parsed[0], major=parsed[1])


def _home_of(executable: Path) -> Path:
    # /usr/bin/java is a chain of symlinks to <home>/bin/java.
    return executable.resolve().parent.parent


def candidate_homes(env: Mapping[str, str], jvm_root: Path = JVM_ROOT) -> list[Path]:
    """Java homes to try, in order: JAVA_HOME, `java` on PATH, then /usr/lib/jvm/* (duplicates dropped)."""
    homes: list[Path] = []
    if env.get("JAVA_HOME"):
        homes.append(Path(env["JAVA_HOME"]))
    on_path = shutil.which("java", path=env.get("PATH", os.defpath))
    if on_path:
        homes.append(_home_of(Path(on_path)))
    if jvm_root.is_dir():
        # Resolved, so the java-1.17.0 -> java-17 symlinks Debian adds collapse into one entry.
        installed = {child.resolve() for child in jvm_root.iterdir() if (child / "bin" / "java").exists()}
        homes.extend(sorted(installed))
    unique: dict[Path, Path] = {}
    for home in homes:
        unique.setdefault(home.resolve(), home)
    return list(unique.values())


def find_java(env: Mapping[str, str] | None = None, jvm_root: Path = JVM_ROOT) -> JavaRuntime:
    """The first Java 17+ runtime in search order, or a StackError listing what was found."""
    env = os.environ if env is None else env
    seen: list[str] = []
    for home in candidate_homes(env, jvm_root):
        runtime = probe_java(home)
        if runtime is not None and runtime.major >= MIN_JAVA_MAJOR:
            return runtime
        seen.append(f"{home} ({runtime.version if runtime else 'not runnable'})")
    found = "; found: " + ", ".join(seen) if seen else ""
    raise StackError(
        f"no Java {MIN_JAVA_MAJOR}+ runtime found for Keycloak{found}",
        hint="install one (`apt-get install -y openjdk-17-jre-headless`) or set JAVA_HOME to a JDK 17+",
    )
