"""The real `idp-agent stack` commands against a real Keycloak and slapd, in a throwaway state dir.

Reuses the cached Keycloak build (the first run on a machine builds it, ~25 s more).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
import requests

from agent import paths
from agent.secrets import Secret
from agent.stack import keycloak, plugin, processes
from agent.stack.demo_directory import PEOPLE, demo_ldif
from agent.stack.java import find_java
from agent.stack.slapd import SizeLimits, SlapdInstance

pytestmark = pytest.mark.integration

IDP_AGENT = str(Path(sys.executable).with_name("idp-agent"))
COMMAND_TIMEOUT_SECONDS = 400


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh state dir; whatever the test leaves running is stopped afterwards."""
    state = (tmp_path / "state").resolve()
    yield state
    subprocess.run([IDP_AGENT, "stack", "down"], env=cli_env(state), capture_output=True, check=False)


def cli_env(state: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("IDP_STACK_ADMIN_")}
    env["IDP_AGENT_STATE_DIR"] = str(state)
    return env


def stack(state: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IDP_AGENT, "stack", *arguments],
        env=cli_env(state),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def our_processes(state: Path) -> list[str]:
    """Command lines of every live process that mentions the state dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and processes.is_our_process(int(entry.name), str(state)):
            found.append(processes.cmdline(int(entry.name)))
    return found


def parse_exports(text: str) -> dict[str, str]:
    pairs = (shlex.split(line)[1].split("=", 1) for line in text.splitlines() if line.startswith("export "))
    return dict(pairs)


def cache_snapshot() -> dict[str, tuple[int, int, int]]:
    """Inode, size and mtime of every file in the cached build: a changed file shows here."""
    build = keycloak.cached_build(paths.cache_dir())
    assert build is not None
    return {
        str(path.relative_to(build)): (path.lstat().st_ino, path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in build.rglob("*")
    }


def admin_token(exports: dict[str, str]) -> str:
    answer = requests.post(
        f"{exports['KEYCLOAK_URL']}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": exports["KEYCLOAK_ADMIN_USER"],
            "password": exports["KEYCLOAK_ADMIN_PASSWORD"],
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def count_people(exports: dict[str, str]) -> int:
    connection = ldap3.Connection(
        ldap3.Server(exports["LDAP_URL"]),
        user=exports["LDAP_BIND_DN"],
        password=exports["LDAP_BIND_PASSWORD"],
        auto_bind=True,
        raise_exceptions=True,
    )
    entries = connection.extend.standard.paged_search(
        exports["LDAP_BASE_DN"], "(objectClass=inetOrgPerson)", attributes=["uid"], paged_size=100, generator=False
    )
    connection.unbind()
    return len(entries)


def test_up_status_env_down_and_warm_restart(state_dir: Path) -> None:
    started = stack(state_dir, "up", "--timeout", "300")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "Keycloak ready in" in started.stdout and "LDAP ready in" in started.stdout
    print(started.stdout)  # the start times, visible with `pytest -s`
    snapshot = cache_snapshot()

    shown = stack(state_dir, "status")
    exports = parse_exports(stack(state_dir, "env").stdout)
    assert shown.returncode == 0
    assert "(value hidden)" in shown.stdout
    assert exports["KEYCLOAK_ADMIN_PASSWORD"] not in shown.stdout + started.stdout
    assert exports["LDAP_BASE_DN"] == "dc=example,dc=org"
    assert admin_token(exports)
    assert count_people(exports) == len(PEOPLE)

    pid_files = (state_dir / "keycloak" / "keycloak.pid", state_dir / "ldap" / "slapd.pid")
    pids = [processes.read_pid(path) for path in pid_files]
    again = stack(state_dir, "up")
    assert again.returncode == 0
    assert again.stdout.count("already running") == 2
    assert [processes.read_pid(path) for path in pid_files] == pids

    assert stack(state_dir, "down").returncode == 0
    assert our_processes(state_dir) == []
    assert not any(path.exists() for path in pid_files)
    assert stack(state_dir, "status").returncode == 3

    warm = stack(state_dir, "up")
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert "(build cached)" in warm.stdout
    print(warm.stdout)
    assert parse_exports(stack(state_dir, "env").stdout) == exports  # same ports and passwords
    assert admin_token(exports)  # the bootstrap admin survived in the H2 files
    assert stack(state_dir, "down").returncode == 0
    assert our_processes(state_dir) == []
    assert cache_snapshot() == snapshot


def test_only_ldap_on_a_chosen_port(state_dir: Path) -> None:
    port = processes.free_port()
    started = stack(state_dir, "up", "--only", "ldap", "--ldap-port", str(port))
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"ldap://127.0.0.1:{port}" in started.stdout
    assert "Keycloak: never started here" in started.stdout

    env = stack(state_dir, "env")
    exports = parse_exports(env.stdout)
    assert set(exports) == {"LDAP_URL", "LDAP_BIND_DN", "LDAP_BIND_PASSWORD", "LDAP_BASE_DN"}
    assert "Keycloak is not running" in env.stderr
    assert count_people(exports) == len(PEOPLE)

    moved = stack(state_dir, "up", "--only", "ldap", "--ldap-port", str(processes.free_port()))
    assert moved.returncode == 1
    assert "stack down" in moved.stderr
    assert stack(state_dir, "status").returncode == 3

    assert stack(state_dir, "down").returncode == 0
    assert our_processes(state_dir) == []
    assert stack(state_dir, "env").returncode == 3


def test_slapd_instance_with_a_small_size_limit(tmp_path: Path) -> None:
    instance = SlapdInstance(tmp_path / "ldap", password=Secret("pw"), limits=SizeLimits(soft=5, paged=10))
    ldif = tmp_path / "demo.ldif"
    ldif.write_text(demo_ldif(), encoding="utf-8")
    instance.load(ldif)
    instance.start(processes.free_port())
    try:
        settings = instance.connection()
        # Anonymous (slapd's default ACL lets it read): the root DN is exempt from size limits.
        connection = ldap3.Connection(ldap3.Server(settings.url), auto_bind=True, raise_exceptions=True)
        # ldap3 never raises sizeLimitExceeded, even with raise_exceptions: it returns a truncated list.
        connection.search(settings.base_dn, "(objectClass=inetOrgPerson)")
        assert connection.result["description"] == "sizeLimitExceeded"
        assert len(connection.entries) == 5
        paged = connection.extend.standard.paged_search(
            settings.base_dn, "(objectClass=inetOrgPerson)", paged_size=5, generator=False
        )
        assert len(paged) == len(PEOPLE)
        connection.unbind()
    finally:
        assert instance.stop()
    assert not instance.is_running()
    assert not instance.pid_path.exists()
    assert our_processes(instance.directory) == []


def test_stack_plugin_builds_the_same_jar_the_stacks_keycloak_runs(tmp_path: Path) -> None:
    """`idp-agent stack plugin` is how a server idp-agent did not start gets the pack; compiled against the
    cached build's home it gives byte for byte the jar that home's providers/ holds. The build is the one the
    stack runs (made here first when this test runs before any stack, ~25 s)."""
    built = keycloak.ensure_build(paths.cache_dir(), find_java(), echo=lambda _line: None).home
    out = tmp_path / "pack.jar"
    done = subprocess.run(
        [IDP_AGENT, "stack", "plugin", "--keycloak-home", str(built), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (built / "providers" / plugin.JAR_NAME).read_bytes()
    not_keycloak = subprocess.run(
        [IDP_AGENT, "stack", "plugin", "--keycloak-home", str(tmp_path), "--out", str(tmp_path / "no.jar")],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    assert not_keycloak.returncode != 0 and "not a Keycloak distribution" in not_keycloak.stderr
    assert not (tmp_path / "no.jar").exists()
