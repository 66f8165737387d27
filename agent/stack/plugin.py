"""The Keycloak plugin pack (`plugins/keycloak/`): compiled against the distribution it goes into, then packed.

javac compiles the sources against the jars of that very Keycloak home (`lib/lib/main`), so the pack always
matches the server's API and needs no Maven dependency resolution. The jar is written in a fixed order with
fixed times, so the same sources give the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from agent.errors import StackError
from agent.stack import processes
from agent.stack.java import JVM_ROOT, JavaRuntime, candidate_homes, probe_java

PLUGIN_SOURCE = Path(__file__).resolve().parents[2] / "plugins" / "keycloak"
JAR_NAME = "idp-agent-keycloak.jar"
JAVA_RELEASE = "17"
COMPILE_TIMEOUT_SECONDS = 300.0
# Zip entries carry this time (the earliest a zip can hold), so the jar's bytes depend on the sources only.
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
LOG_TAIL_LINES = 20


def source_files(source: Path = PLUGIN_SOURCE) -> list[Path]:
    """The pack's Java sources and resources, in a stable order; a StackError when the sources are not there."""
    main = source / "src" / "main"
    files = sorted(path for path in main.rglob("*") if path.is_file()) if main.is_dir() else []
    if not any(path.suffix == ".java" for path in files):
        raise StackError(
            f"the Keycloak plugin pack's sources are not in {main}",
            hint="run idp-agent from a checkout of its repository (installed editable: `make venv`)",
        )
    return files


def source_digest(source: Path = PLUGIN_SOURCE) -> str:
    """A hash of every source file's path and bytes: a new digest means a new build."""
    digest = hashlib.sha256()
    for path in source_files(source):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def find_javac(java: JavaRuntime, env: Mapping[str, str] | None = None, jvm_root: Path = JVM_ROOT) -> Path:
    """javac of a JDK 17+: the runtime's own when it is a JDK, else the first JDK among the known homes."""
    known = candidate_homes(os.environ if env is None else env, jvm_root)
    homes = [java.home, *(home for home in known if home != java.home)]
    for home in homes:
        javac = home / "bin" / "javac"
        if not javac.is_file():
            continue
        runtime = java if home == java.home else probe_java(home)
        if runtime is not None and runtime.major >= int(JAVA_RELEASE):
            return javac
    raise StackError(
        "no JDK found to compile the Keycloak plugin pack (javac of Java 17+)",
        hint="install one (`apt-get install -y openjdk-17-jdk-headless`) or set JAVA_HOME to a JDK 17+",
    )


def build_jar(keycloak_home: Path, target: Path, javac: Path, source: Path = PLUGIN_SOURCE) -> Path:
    """Compile the pack against `keycloak_home` and write the jar to `target` (a file path)."""
    files = source_files(source)
    java_files = [path for path in files if path.suffix == ".java"]
    resources_root = source / "src" / "main" / "resources"
    with tempfile.TemporaryDirectory(prefix="idp-agent-plugin-") as scratch:
        classes = Path(scratch) / "classes"
        log_path = Path(scratch) / "javac.log"
        command = [
            str(javac),
            # Warnings are errors: a deprecated Keycloak API shows up when the pinned version moves.
            "-Xlint:all",
            "-Werror",
            "--release",
            JAVA_RELEASE,
            "-encoding",
            "UTF-8",
            "-classpath",
            str(keycloak_home / "lib" / "lib" / "main" / "*"),
            "-d",
            str(classes),
            *map(str, java_files),
        ]
        with log_path.open("wb") as log:
            exit_code = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, timeout=COMPILE_TIMEOUT_SECONDS, check=False
            ).returncode
        if exit_code != 0:
            raise StackError(
                f"compiling the Keycloak plugin pack failed (javac exit {exit_code}):\n"
                + processes.tail(log_path, LOG_TAIL_LINES),
                hint=f"fix the sources under {source}",
            )
        entries = {path.relative_to(classes).as_posix(): path for path in classes.rglob("*.class")}
        if resources_root.is_dir():
            entries.update(
                (path.relative_to(resources_root).as_posix(), path) for path in files if resources_root in path.parents
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        write_jar(target, entries)
    return target


def write_jar(target: Path, entries: dict[str, Path]) -> None:
    """A jar (a zip with a manifest first) of `entries` (name in the jar -> file), names sorted, times fixed."""
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
        jar.writestr(zipfile.ZipInfo("META-INF/MANIFEST.MF", FIXED_ZIP_TIME), "Manifest-Version: 1.0\r\n\r\n")
        for name in sorted(entries):
            jar.writestr(zipfile.ZipInfo(name, FIXED_ZIP_TIME), entries[name].read_bytes(), zipfile.ZIP_DEFLATED)
    partial.replace(target)
