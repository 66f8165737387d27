"""S11 of RELIABILITY.md: Keycloak killed in the middle of a sync, restarted later.

    .venv/bin/python -m benchmarks.outage_bench [--users N] [--keycloak-db dev-file|postgres] [--out FILE.json]

A Keycloak of its own (the stack in .state/outage on H2 files, or with `--keycloak-db postgres` a throwaway one on
a PostgreSQL with durable commits; the builds are the cached ones), an HR CSV of N people (default 2,000) and a
sync run as an operator runs it (`idp-agent sync run`, a process of its own). Four rounds:

1. **down at the start**: Keycloak stopped before the run. The run must end with an error, decide nothing (no run
   journalled as succeeded, no baseline of the source recorded) and touch nothing.
2. **killed mid-sync**: the same run with Keycloak up; once a quarter of the people exist in Keycloak, Keycloak
   is killed (SIGKILL of its process group). The run must stop as incomplete (exit 1, its run `failed`) within a
   deadline (RUN_DEADLINE_SECONDS after the kill), without creating anyone twice.
3. **restarted**: Keycloak started again on the same data; one run must converge (every person exactly once,
   enabled, in /staff, the department groups as the rules grant) and a `sync plan` after it find nothing to do;
   the journal's hash chain must verify.
4. **killed mid-sanction**: suspensions issued one after another (as `idp-agent sanction issue` does: recorded,
   then enforced at once); once half of SANCTIONED are recorded, Keycloak is killed, and the issuing stops at
   its first error. After a restart, one `idp-agent sanctions enforce` must leave every recorded sanction active
   and verified with its user disabled, none pending, nobody else disabled; a sync run after it must leave the
   sanctioned users disabled (precedence: sanction over source data).

Printed and written: the seconds from the kill to the run's exit, the restart, the converging run, the counts
found in Keycloak after the kill and after the converging run, and every check. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml

from agent import stack
from agent.errors import AgentError
from agent.keycloak import KeycloakGateway
from agent.realm.spec import RealmSpec
from agent.sanctions.service import issue_sanction
from agent.sanctions.wiring import build_sanction_context
from agent.settings import KeycloakConnection
from agent.stack.keycloak import KeycloakInstance
from agent.store.clock import system_clock
from agent.store.db import open_store
from agent.store.sanctions import Sanction
from agent.sync.agent_config import AgentConfig, load_agent_config
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, SOURCE_ATTRIBUTE
from benchmarks.common import KEYCLOAK_DBS, machine, write_results
from benchmarks.keycloak_postgres import kill_process_group, restartable_keycloak_on_postgres
from benchmarks.sync_bench import prepare_realm

STATE_DIR = Path(__file__).resolve().parent.parent / ".state" / "outage"
REALM = "outage"
SYNC_NAME = "people"
DEPARTMENTS = ("Engineering", "Support", "Sales", "Finance")
GROUPS = ("/staff", "/staff/engineering", "/staff/support")
KILL_AT_SHARE = 0.25
SANCTIONED = 200
POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "sanctions.yaml"
RUN_DEADLINE_SECONDS = 60.0
COMMAND_TIMEOUT_SECONDS = 900.0
POLL_SECONDS = 0.05
IDP_AGENT = [sys.executable, "-m", "agent"]


def person(index: int) -> dict[str, str]:
    return {
        "EmployeeID": str(100000 + index),
        "Username": f"p{index:06d}",
        "FirstName": "Per",
        "LastName": f"Son{index}",
        "Email": f"p{index:06d}@outage.example",
        "Department": DEPARTMENTS[index % len(DEPARTMENTS)],
    }


def write_workspace(folder: Path, people: int) -> Path:
    """The HR export, the mapper and the agent config (store in SQLite beside them)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "hr.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, list(person(0)))
        writer.writeheader()
        writer.writerows(person(index) for index in range(people))
    fields = ["employee_id", "username", "first_name", "last_name", "email", "department"]
    mapper = {
        "name": SYNC_NAME,
        "realm": REALM,
        "id": "employee_id",
        "sources": {"hr": {"priority": 10, "fields": fields}},
        "fields": {
            "hr": {
                "employee_id": {"from": "EmployeeID"},
                "username": {"from": "Username", "transform": ["lower"]},
                "first_name": {"from": "FirstName"},
                "last_name": {"from": "LastName"},
                "email": {"from": "Email", "transform": ["lower"]},
                "department": {"from": "Department"},
            }
        },
        "attributes": ["department"],
        "rules": [
            {"name": "everyone", "grant": {"groups": ["/staff"]}},
            {"name": "engineering", "when": {"department": "Engineering"}, "grant": {"groups": ["/staff/engineering"]}},
            {"name": "support", "when": {"department": "Support"}, "grant": {"groups": ["/staff/support"]}},
        ],
    }
    (folder / "mapper.yaml").write_text(yaml.safe_dump(mapper, sort_keys=False), encoding="utf-8")
    agent = {
        "store": f"sqlite:///{(folder / 'store.db').resolve()}",
        "sources": [
            {"name": "hr", "type": "csv", "path": str((folder / "hr.csv").resolve()), "id_field": "EmployeeID"}
        ],
        "syncs": [{"name": SYNC_NAME, "mapper": "mapper.yaml", "sources": ["hr"]}],
    }
    path = folder / "idp-agent.yaml"
    path.write_text(yaml.safe_dump(agent, sort_keys=False), encoding="utf-8")
    (folder / "policies").mkdir(exist_ok=True)
    shutil.copy(POLICY_FILE, folder / "policies" / "sanctions.yaml")
    return path


def cli_env(connection: KeycloakConnection) -> dict[str, str]:
    assert connection.password is not None
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEYCLOAK_")}
    env.update(
        KEYCLOAK_URL=connection.url,
        KEYCLOAK_ADMIN_USER=connection.username or "",
        KEYCLOAK_ADMIN_PASSWORD=connection.password.reveal(),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    return env


def start_sync(config: Path, env: dict[str, str], *arguments: str) -> subprocess.Popen[str]:
    command = [*IDP_AGENT, "sync", *arguments, "--config", str(config)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
    return process.returncode, output


def agent_cli(config: Path, env: dict[str, str], *arguments: str) -> tuple[int, str]:
    command = [*IDP_AGENT, *arguments, "--config", str(config)]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
    )
    return done.returncode, done.stdout + done.stderr


def managed_by_person(gateway: KeycloakGateway) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for user in gateway.list_users_with_attribute(REALM, SOURCE_ATTRIBUTE, SYNC_NAME):
        found.setdefault(user.attributes[EXTERNAL_ID_ATTRIBUTE][0], []).append(user)
    return found


class RestartableKeycloak(Protocol):
    @property
    def connection(self) -> KeycloakConnection: ...

    def start(self) -> None: ...

    def kill(self) -> None: ...


class StackKeycloak:
    """The outage stack's Keycloak, on H2 files in .state/outage."""

    @property
    def connection(self) -> KeycloakConnection:
        connection = stack.running_keycloak_connection(STATE_DIR)
        if connection is None:
            raise RuntimeError("the outage stack's Keycloak is not running")
        return connection

    def start(self) -> None:
        stack.up(STATE_DIR, components=("keycloak",), echo=lambda line: print(f"[stack] {line}", flush=True))

    def kill(self) -> None:
        """SIGKILL of the process group of the stack's kc.sh: Keycloak dies as a crashed server does."""
        kill_process_group(KeycloakInstance(STATE_DIR / "keycloak"))


@contextmanager
def keycloak_to_kill(database: str) -> Iterator[RestartableKeycloak]:
    if database == "postgres":
        with restartable_keycloak_on_postgres(lambda line: print(f"[postgres] {line}", flush=True)) as on_postgres:
            yield on_postgres
        return
    server = StackKeycloak()
    server.start()
    try:
        yield server
    finally:
        stack.down(STATE_DIR, echo=lambda line: print(f"[stack] {line}", flush=True))


def runs(config: Path) -> list[dict[str, Any]]:
    """The sync's runs, newest first, as the store holds them."""
    with open_store(load_agent_config(config, {}).store) as store:
        return [
            {"id": run.id, "status": run.status, "counts": dict(run.counts), "summary": run.summary}
            for run in store.runs.list_runs("sync")
        ]


def check(checks: list[dict[str, Any]], name: str, passed: bool, detail: str = "") -> None:
    checks.append({"check": name, "passed": passed, "detail": detail})
    print(f"  {'ok  ' if passed else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


def down_at_the_start(config: Path, server: RestartableKeycloak, checks: list[dict[str, Any]]) -> dict[str, Any]:
    print("\n1. Keycloak down when the run starts", flush=True)
    connection = server.connection
    server.kill()
    env = cli_env(connection)
    began = time.perf_counter()
    code, output = finish(start_sync(config, env, "run"))
    seconds = round(time.perf_counter() - began, 3)
    listed = runs(config)
    check(checks, "down: the run exits 1", code == 1, f"exit {code} after {seconds} s")
    check(checks, "down: no run succeeded", not any(run["status"] == "succeeded" for run in listed))
    with open_store(load_agent_config(config, {}).store) as store:
        baselines = store.baselines.last_good_counts()
    check(checks, "down: no good read of the source recorded", not baselines, str(baselines))
    return {"seconds_to_exit": seconds, "exit": code, "output_tail": output.strip().splitlines()[-3:]}


def killed_mid_sync(
    config: Path, server: RestartableKeycloak, people: int, checks: list[dict[str, Any]]
) -> dict[str, Any]:
    print(f"\n2. Keycloak killed once {KILL_AT_SHARE:.0%} of {people} people exist", flush=True)
    connection = server.connection
    env = cli_env(connection)
    gateway = KeycloakGateway.connect(connection)
    try:
        began = time.perf_counter()
        process = start_sync(config, env, "run")
        at_kill = 0
        while at_kill < people * KILL_AT_SHARE and process.poll() is None:
            time.sleep(POLL_SECONDS)
            at_kill = gateway.count_users(REALM)
    finally:
        gateway.close()
    if process.poll() is not None:
        raise RuntimeError(f"the run ended before the kill: {finish(process)[1]}")
    server.kill()
    killed = time.perf_counter()
    code, output = finish(process)
    to_exit = round(time.perf_counter() - killed, 3)
    check(checks, "killed: the run exits 1", code == 1, f"exit {code}")
    within = f"killed: the run ends within {RUN_DEADLINE_SECONDS:g} s of the kill"
    check(checks, within, to_exit <= RUN_DEADLINE_SECONDS, f"{to_exit} s")
    last = runs(config)[0]
    check(checks, "killed: its run is journalled as failed", last["status"] == "failed", last["status"])
    return {
        "seconds_before_kill": round(killed - began, 3),
        "seconds_kill_to_exit": to_exit,
        "users_counted_before_kill": at_kill,
        "exit": code,
        "run": last,
        "output_tail": output.strip().splitlines()[-3:],
    }


def restarted(config: Path, server: RestartableKeycloak, people: int, checks: list[dict[str, Any]]) -> dict[str, Any]:
    print("\n3. Keycloak restarted on the same data; one run converges", flush=True)
    began = time.perf_counter()
    server.start()
    connection = server.connection
    restart_seconds = round(time.perf_counter() - began, 3)
    env = cli_env(connection)
    gateway = KeycloakGateway.connect(connection)
    try:
        before = managed_by_person(gateway)
        twice = sorted(person for person, users in before.items() if len(users) > 1)
        check(checks, "after the kill: nobody exists twice", not twice, f"{len(before)} people in Keycloak")
        began = time.perf_counter()
        code, output = finish(start_sync(config, env, "run"))
        converge_seconds = round(time.perf_counter() - began, 3)
        check(checks, "restarted: one run succeeds", code == 0, f"exit {code} in {converge_seconds} s")
        after = managed_by_person(gateway)
        expected = {str(100000 + index) for index in range(people)}
        check(checks, "restarted: every person exactly once", set(after) == expected
              and all(len(users) == 1 for users in after.values()), f"{len(after)} of {people}")  # fmt: skip
        check(checks, "restarted: everyone enabled", all(users[0].enabled for users in after.values()))
        wrong = wrong_groups(gateway, after)
        check(checks, "restarted: everyone in the groups the rules grant", not wrong, f"{len(wrong)} not")
        plan_code, plan_output = agent_cli(config, env, "sync", "plan")
        check(checks, "restarted: a plan after it has nothing to do", plan_code == 0, plan_output.strip()[-200:])
        verify_code, verify_output = agent_cli(config, env, "audit", "verify")
        check(checks, "the journal's chain verifies", verify_code == 0, verify_output.strip()[-200:])
    finally:
        gateway.close()
    return {
        "restart_seconds": restart_seconds,
        "people_after_kill": len(before),
        "converge_seconds": converge_seconds,
        "converge_exit": code,
        "output_tail": output.strip().splitlines()[-3:],
    }


def killed_mid_sanctions(config: Path, server: RestartableKeycloak, checks: list[dict[str, Any]]) -> dict[str, Any]:
    print(f"\n4. Keycloak killed once {SANCTIONED // 2} of {SANCTIONED} suspensions are recorded", flush=True)
    agent_config = load_agent_config(config, {})
    usernames = [person(index)["Username"] for index in range(SANCTIONED)]
    stopped_by: list[str] = []
    connection = server.connection
    gateway = KeycloakGateway.connect(connection)

    def issue_all() -> None:
        with open_store(agent_config.store) as store:
            context = build_sanction_context(agent_config, gateway, store, REALM, env={}, clock=system_clock)
            for username in usernames:
                try:
                    issue_sanction(
                        context, username, level="suspension", reason_code="spam", duration=timedelta(days=7)
                    )
                except AgentError as error:
                    stopped_by.append(f"{username}: {type(error).__name__}")
                    return

    issuing = threading.Thread(target=issue_all, name="issue-sanctions")
    began = time.perf_counter()
    issuing.start()
    while sanctions_recorded(agent_config) < SANCTIONED // 2 and issuing.is_alive():
        time.sleep(POLL_SECONDS)
    server.kill()
    killed = time.perf_counter()
    issuing.join(COMMAND_TIMEOUT_SECONDS)
    gateway.close()
    to_stop = round(time.perf_counter() - killed, 3)
    check(checks, "mid-sanction: the issuing stopped at an error", bool(stopped_by), "; ".join(stopped_by))
    recorded = sanctions_by_username(agent_config)
    server.start()
    env = cli_env(server.connection)
    code, output = agent_cli(config, env, "sanctions", "enforce", "--realm", REALM)
    check(
        checks, "mid-sanction: one enforce pass after the restart puts all in force", code == 0, output.strip()[-300:]
    )
    after = sanctions_by_username(agent_config)
    states = sorted({sanction.state for sanction in after.values()})
    unverified = [name for name, sanction in after.items() if sanction.verified_at is None]
    check(checks, "mid-sanction: every recorded sanction active and verified", states == ["active"] and not unverified,
          f"{len(after)} recorded; states {states}; {len(unverified)} unverified")  # fmt: skip
    sync_code, _ = finish(start_sync(config, env, "run"))
    gateway = KeycloakGateway.connect(connection)
    try:
        enabled = {users[0].username: users[0].enabled for users in managed_by_person(gateway).values()}
    finally:
        gateway.close()
    wrongly_enabled = sorted(name for name in after if enabled.get(name, True))
    wrongly_disabled = sorted(name for name, on in enabled.items() if not on and name not in after)
    check(checks, "mid-sanction: a sync run after it succeeds", sync_code == 0, f"exit {sync_code}")
    check(checks, "mid-sanction: every sanctioned user disabled", not wrongly_enabled, ", ".join(wrongly_enabled[:5]))
    check(checks, "mid-sanction: nobody else disabled", not wrongly_disabled, ", ".join(wrongly_disabled[:5]))
    return {
        "seconds_before_kill": round(killed - began, 3),
        "seconds_kill_to_stop": to_stop,
        "recorded_at_kill": len(recorded),
        "pending_at_kill": sum(1 for sanction in recorded.values() if sanction.state == "pending"),
        "enforce_exit": code,
    }


def sanctions_recorded(config: AgentConfig) -> int:
    return len(sanctions_by_username(config))


def sanctions_by_username(config: AgentConfig) -> dict[str, Sanction]:
    with open_store(config.store) as store:
        return {sanction.username: sanction for sanction in store.sanctions.list(realm=REALM)}


def wrong_groups(gateway: KeycloakGateway, users: dict[str, list[Any]]) -> list[str]:
    """People whose groups are not what the rules grant (read per group: members of each of the three)."""
    members = {}
    for path in GROUPS:
        group = gateway.find_group_by_path(REALM, path)
        assert group is not None
        members[path] = set(gateway.group_member_ids(REALM, group.id))
    wrong = []
    for person_id, (user,) in users.items():
        department = DEPARTMENTS[(int(person_id) - 100000) % len(DEPARTMENTS)]
        wanted = {"/staff"} | ({f"/staff/{department.lower()}"} & set(GROUPS))
        held = {path for path, ids in members.items() if user.id in ids}
        if held != wanted:
            wrong.append(person_id)
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000, help="people in the HR export (default 2,000)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument(
        "--keycloak-db", choices=KEYCLOAK_DBS, default="dev-file",
        help="the outage stack's Keycloak (H2 files), or a throwaway Keycloak on PostgreSQL (durable commits)",
    )  # fmt: skip
    options = parser.parse_args()
    workspace = STATE_DIR / "workspace"
    if workspace.exists():
        for path in sorted(workspace.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    config = write_workspace(workspace, options.users)
    checks: list[dict[str, Any]] = []
    results: dict[str, Any] = {
        "machine": machine(), "users": options.users, "keycloak_db": options.keycloak_db, "checks": checks,
    }  # fmt: skip
    with keycloak_to_kill(options.keycloak_db) as server:
        gateway = KeycloakGateway.connect(server.connection)
        try:
            if gateway.get_realm(REALM) is not None:
                gateway.delete_realm(REALM)
            spec = {"realm": REALM, "groups": [{"path": path} for path in GROUPS],
                    "user_profile": {"unmanaged_attributes": "admin_edit"}}  # fmt: skip
            prepare_realm(gateway, RealmSpec.model_validate(spec))
            results["keycloak_version"] = gateway.server_version()
        finally:
            gateway.close()
        results["down_at_the_start"] = down_at_the_start(config, server, checks)
        server.start()
        results["killed_mid_sync"] = killed_mid_sync(config, server, options.users, checks)
        results["restarted"] = restarted(config, server, options.users, checks)
        results["killed_mid_sanction"] = killed_mid_sanctions(config, server, checks)
    failed = [item["check"] for item in checks if not item["passed"]]
    results["failed_checks"] = failed
    write_results(options.out, results)
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
