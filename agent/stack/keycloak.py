"""The local Keycloak: fetch the pinned distribution with Maven, build it once into the cache, run it.

Each state directory runs its own hard-link copy of the cached build, because Keycloak writes under
its home's data/ at runtime and two stacks must never share it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import StackError
from agent.secrets import Secret
from agent.stack import plugin, processes
from agent.stack.java import JavaRuntime

KEYCLOAK_VERSION = "26.7.3"
MAVEN_GROUP_PATH = "org/keycloak/keycloak-quarkus-dist"
ARTIFACT_NAME = f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
# Build-time options; changing them yields a new cache directory (the hash is part of its name). The database
# kind is one of them: dev-file (H2 files in the state directory) for the stack, postgres for the benchmarks.
DEV_FILE = "dev-file"
POSTGRES = "postgres"
BUILD_OPTIONS = (f"--db={DEV_FILE}", "--health-enabled=true", "--metrics-enabled=true")
# `--cache` is a runtime option in Keycloak 26.7 (`kc.sh build` accepts it but does not persist it):
# without `local` at start, each server joins a JGroups cluster on all interfaces and waits ~15 s for
# members a previous run left in its database.
RUNTIME_OPTIONS = ("--cache=local", "--http-enabled=true", "--hostname-strict=false")
STAMP_NAME = ".idp-agent-build.json"
HOME_SOURCE_NAME = ".idp-agent-source"
READY_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0
BUILD_TIMEOUT_SECONDS = 600.0
HEALTH_TIMEOUT_SECONDS = 2.0
LOG_TAIL_LINES = 20
SHA1_CHUNK_BYTES = 1 << 20

Echo = Callable[[str], None]
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class KeycloakPorts:
    """The HTTP port (API, admin console) and the management port (health, metrics)."""

    http: int
    management: int


@dataclass(frozen=True)
class KeycloakDatabase:
    """A PostgreSQL database for Keycloak (the default is H2 files in the instance's state directory)."""

    jdbc_url: str
    username: str
    password: Secret


def build_options(db_kind: str = DEV_FILE) -> tuple[str, ...]:
    """The build options with this database kind in place of dev-file."""
    return tuple(f"--db={db_kind}" if option.startswith("--db=") else option for option in BUILD_OPTIONS)


@dataclass(frozen=True)
class CachedBuild:
    """A built distribution in the cache, and whether this call built it."""

    home: Path
    built_now: bool
    build_seconds: float


def build_key(db_kind: str = DEV_FILE) -> str:
    """The cache directory name: version plus a short hash of the build options and the plugin pack's sources."""
    options = build_options(db_kind)
    digest = hashlib.sha256("\n".join([*options, plugin.source_digest()]).encode()).hexdigest()[:10]
    return f"{KEYCLOAK_VERSION}-{digest}"


def urls(ports: KeycloakPorts) -> tuple[str, str, str]:
    """Base URL, admin console URL and readiness URL for these ports."""
    base = f"http://{processes.LOCALHOST}:{ports.http}"
    health = f"http://{processes.LOCALHOST}:{ports.management}/health/ready"
    return base, f"{base}/admin/master/console/", health


# --- the distribution zip -------------------------------------------------------------------------


def maven_local_repository() -> Path:
    """Maven's local repository: ~/.m2/repository unless `mvn help:evaluate` says otherwise."""
    default = Path.home() / ".m2" / "repository"
    if (default / MAVEN_GROUP_PATH / KEYCLOAK_VERSION).is_dir():
        return default
    return ask_maven_for_repository() or default


def ask_maven_for_repository() -> Path | None:
    """`settings.localRepository` as Maven resolves it (settings.xml, -Dmaven.repo.local ...), ~3 s."""
    done = subprocess.run(
        ["mvn", "-B", "-q", "help:evaluate", "-Dexpression=settings.localRepository", "-DforceStdout"],
        capture_output=True,
        text=True,
        check=False,
    )
    answer = _ANSI_ESCAPE.sub("", done.stdout).strip()  # -B still leaves colour resets around it
    return Path(answer) if done.returncode == 0 and answer.startswith("/") else None


def published_sha1_path(repository: Path) -> Path:
    """Where Maven keeps the checksum it downloaded with the zip."""
    return repository / MAVEN_GROUP_PATH / KEYCLOAK_VERSION / f"{ARTIFACT_NAME}.sha1"


def file_sha1(path: Path) -> str:
    """The SHA-1 of a file, read in chunks."""
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(SHA1_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha1(zip_path: Path, sha1_path: Path) -> str:
    """Check the zip against Maven's published SHA-1; delete it and raise when they differ."""
    try:
        expected = sha1_path.read_text(encoding="ascii").split()[0].lower()
    except (OSError, IndexError):
        raise StackError(
            f"no published checksum at {sha1_path}",
            hint=f"delete {zip_path} and run `idp-agent stack up` again, so Maven fetches both",
        ) from None
    actual = file_sha1(zip_path)
    if actual != expected:
        zip_path.unlink()
        raise StackError(
            f"{zip_path.name}: SHA-1 {actual} does not match the published {expected}; deleted it",
            hint="run `idp-agent stack up` again to fetch it anew; if it fails the same way, "
            f"delete Maven's copy in {sha1_path.parent} first",
        )
    return actual


def fetch_distribution(downloads: Path, echo: Echo) -> tuple[Path, str]:
    """The verified distribution zip (and its SHA-1), fetched with Maven when not downloaded yet."""
    zip_path = downloads / ARTIFACT_NAME
    if not zip_path.exists():
        _maven_copy(downloads, echo)
    return zip_path, verify_sha1(zip_path, published_sha1_path(maven_local_repository()))


def _maven_copy(downloads: Path, echo: Echo) -> None:
    if shutil.which("mvn") is None:
        raise StackError(
            "Maven (mvn) is needed to fetch the Keycloak distribution",
            hint="apt-get install -y maven",
        )
    downloads.mkdir(parents=True, exist_ok=True)
    echo(f"Fetching Keycloak {KEYCLOAK_VERSION} with Maven (~180 MB) ...")
    artifact = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip"
    command = ["mvn", "-B", "-q", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={downloads}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(
            f"Maven could not fetch {artifact}:\n{(done.stdout + done.stderr)[-2000:]}",
            hint="check network access to Maven Central and your Maven settings, then run again",
        )


# --- the cached build -----------------------------------------------------------------------------


def cached_build(cache: Path, db_kind: str = DEV_FILE) -> Path | None:
    """The completed build in the cache, or None; a directory without its stamp is not complete."""
    home = cache / "keycloak" / build_key(db_kind)
    return home if (home / STAMP_NAME).is_file() else None


def ensure_build(cache: Path, java: JavaRuntime, echo: Echo, db_kind: str = DEV_FILE) -> CachedBuild:
    """The built distribution from the cache, building it first when needed (one builder at a time)."""
    root = cache / "keycloak"
    with processes.file_lock(root / ".lock"):
        done = cached_build(cache, db_kind)
        if done is not None:
            return CachedBuild(done, built_now=False, build_seconds=0.0)
        zip_path, sha1 = fetch_distribution(cache / "downloads", echo)
        started = time.monotonic()
        home = _build_into(root, zip_path, sha1, java, echo, db_kind=db_kind)
        return CachedBuild(home, built_now=True, build_seconds=time.monotonic() - started)


def _build_into(root: Path, zip_path: Path, sha1: str, java: JavaRuntime, echo: Echo, *, db_kind: str) -> Path:
    key, options = build_key(db_kind), build_options(db_kind)
    final = root / key
    work = root / f".building-{key}"
    for leftover in (work, final):  # from an interrupted earlier build
        shutil.rmtree(leftover, ignore_errors=True)
    echo(f"Building Keycloak {KEYCLOAK_VERSION} ({' '.join(options)}), about 25 s, once ...")
    home = _extract(zip_path, work)
    # Providers are picked up by `kc.sh build`, so the plugin pack goes in first.
    plugin.build_jar(home, home / "providers" / plugin.JAR_NAME, plugin.find_javac(java))
    log_path = work / "build.log"
    try:
        with log_path.open("wb") as log:
            exit_code = subprocess.run(
                [str(home / "bin" / "kc.sh"), "build", *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=keycloak_env(java),
                timeout=BUILD_TIMEOUT_SECONDS,
                check=False,
            ).returncode
    except subprocess.TimeoutExpired:
        exit_code = None
    if exit_code != 0:
        what = f"exit {exit_code}" if exit_code is not None else f"timed out after {BUILD_TIMEOUT_SECONDS:.0f} s"
        raise StackError(
            f"`kc.sh build` failed ({what}); last lines of {log_path}:\n" + processes.tail(log_path, LOG_TAIL_LINES),
            hint="fix the cause above and run `idp-agent stack up` again",
        )
    stamp = {
        "version": KEYCLOAK_VERSION,
        "build_options": list(options),
        "zip_sha1": sha1,
        "plugin_sources_sha256": plugin.source_digest(),
    }
    # The stamp is written last: a directory without it is an unfinished build.
    (home / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    home.rename(final)
    shutil.rmtree(work)
    return final


def _extract(zip_path: Path, work: Path) -> Path:
    """Unpack the zip into work/, keeping the Unix modes (zipfile drops them), and return the home."""
    work.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.infolist():
            target = Path(archive.extract(member, work))
            mode = (member.external_attr >> 16) & 0o777
            if mode and not member.is_dir():
                target.chmod(mode)
    homes = [child for child in work.iterdir() if child.is_dir() and (child / "bin" / "kc.sh").is_file()]
    if len(homes) != 1:
        raise StackError(f"{zip_path.name} does not hold one Keycloak home", hint=f"delete {zip_path}")
    return homes[0]


def keycloak_env(java: JavaRuntime, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for kc.sh: ours minus any KC_* settings, which would change the server's config."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KC_")}
    env["JAVA_HOME"] = str(java.home)
    env.update(extra or {})
    return env


# --- a running instance ---------------------------------------------------------------------------


def link_copy(source: Path, target: Path) -> None:
    """Copy a tree as hard links (`cp -al`), falling back to real copies across filesystems."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)


class KeycloakInstance:
    """One Keycloak in a state directory: its own home (hard links to the cached build), H2 files, log, pid."""

    def __init__(self, directory: Path) -> None:
        # kc.sh resolves its own path (readlink -f): resolve ours too, so command lines match.
        self.directory = directory.resolve()
        self.home = self.directory / "home"
        self.db_dir = self.directory / "db"
        self.log_path = self.directory / "keycloak.log"
        self.pid_path = self.directory / "keycloak.pid"

    def pid(self) -> int | None:
        """The recorded kc.sh pid while any process of its group still runs from our home, else None."""
        pid = processes.read_pid(self.pid_path)
        if pid is None:
            return None
        # kc.sh may have died and left its java child running: the group outlives its leader.
        ours = [member for member in processes.group_members(pid) if str(self.home) in processes.cmdline(member)]
        return pid if ours else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def prepare_home(self, build: Path) -> None:
        """Make home a hard-link copy of the build; kept across restarts while the build is the same."""
        marker = self.home / HOME_SOURCE_NAME
        if marker.is_file() and marker.read_text(encoding="utf-8").strip() == str(build):
            return
        shutil.rmtree(self.home, ignore_errors=True)
        processes.make_private_dir(self.directory)
        link_copy(build, self.home)
        # data/ is written at runtime: give this home its own files, never links into the cache.
        data = self.home / "data"
        if data.exists():
            shutil.rmtree(data)
            shutil.copytree(build / "data", data, symlinks=True)
        marker.unlink(missing_ok=True)
        marker.write_text(f"{build}\n", encoding="utf-8")

    def start(
        self,
        ports: KeycloakPorts,
        java: JavaRuntime,
        admin_user: str,
        admin_password: Secret,
        database: KeycloakDatabase | None = None,
    ) -> int:
        """Start kc.sh detached in a new session; its pid is also the process group to stop later. `database`:
        PostgreSQL instead of H2 files (the home must then be a build for postgres)."""
        self.db_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        by_env = {"KC_BOOTSTRAP_ADMIN_USERNAME": admin_user, "KC_BOOTSTRAP_ADMIN_PASSWORD": admin_password.reveal()}
        if database is not None:
            # By environment, so that the password is not in the process list.
            by_env["KC_DB_PASSWORD"] = database.password.reveal()
        with self.log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(self.home / "bin" / "kc.sh"), *self.start_arguments(ports, database)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=keycloak_env(java, by_env),
                start_new_session=True,
            )
        processes.write_pid(self.pid_path, process.pid)
        return process.pid

    def start_arguments(self, ports: KeycloakPorts, database: KeycloakDatabase | None = None) -> list[str]:
        """`kc.sh start` arguments: runtime options only, the build options are baked in."""
        if database is None:
            db = [f"--db-url=jdbc:h2:file:{self.db_dir / 'keycloakdb'};NON_KEYWORDS=VALUE"]
        else:
            db = [f"--db-url={database.jdbc_url}", f"--db-username={database.username}"]
        return [
            "start",
            "--optimized",
            *RUNTIME_OPTIONS,
            f"--http-host={processes.LOCALHOST}",
            f"--http-port={ports.http}",
            f"--http-management-port={ports.management}",
            *db,
        ]

    def wait_ready(self, ports: KeycloakPorts, pid: int, timeout_seconds: float) -> None:
        """Wait for /health/ready; on timeout or exit, stop what is left and raise with the log's tail."""
        health = urls(ports)[2]
        outcome = processes.wait_until(
            lambda: _is_ready(health),
            timeout_seconds=timeout_seconds,
            give_up=lambda: not processes.is_alive(pid),
            interval_seconds=0.5,
        )
        if outcome == "ready":
            return
        self.stop()
        what = "exited" if outcome == "gave_up" else f"was not ready after {timeout_seconds:.0f} s"
        raise StackError(
            f"Keycloak {what}; last lines of {self.log_path}:\n" + processes.tail(self.log_path, LOG_TAIL_LINES),
            hint=f"read {self.log_path}; a slow machine may need `idp-agent stack up --timeout 600`",
        )

    def stop(self) -> bool:
        """Stop kc.sh and its java child (the whole process group); False when none was running."""
        pid = self.pid()
        if pid is not None:
            processes.stop_process_group(pid, timeout_seconds=STOP_TIMEOUT_SECONDS)
        self.pid_path.unlink(missing_ok=True)
        return pid is not None


def _is_ready(health_url: str) -> bool:
    try:
        with urllib.request.urlopen(health_url, timeout=HEALTH_TIMEOUT_SECONDS) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
