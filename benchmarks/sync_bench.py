"""Arms A1, B1, C1, A3, A4: the agent's LDAP sync vs Keycloak's own LDAP federation vs raw partialImport.

    python -m benchmarks.sync_bench [--users 1000 --users 10000] [--out FILE.json] [--profile DIR]
        [--import-batch N (what-if)] [--agent-only (skip C1, B1, B3: for 100k)] [--repeats K (odd)]

Per size N: a throwaway slapd loaded with N generated people, and one fresh realm per approach, all in one
run. Agent arms run in a child process each (`--arm A1 --config ...`, internal) so each peak RSS is its own.
With `--repeats K` each size runs K times over, in fresh realms and a fresh directory each time; each arm's
median counts.
Goals: A1/B1 <= 0.5 (at 10k), A1/C1 <= 1.5, A3 makes 0 writes and A3/A1 <= 0.10, A4/A1 <= 0.15 with every
deletion detected, peak RSS <= 500 MB at 100k.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import dataclasses
import functools
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import ldap3
import yaml

from agent.errors import KeycloakError
from agent.keycloak import KeycloakGateway
from agent.keycloak.models import USER_STORAGE_PROVIDER, ImportedUser, UserChange, default_role_name
from agent.keycloak.transport import RequestStats
from agent.realm.engine import apply_plan, plan_realm
from agent.realm.spec import RealmSpec
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.stack.processes import free_port
from agent.stack.slapd import SlapdInstance
from agent.store.db import open_store
from agent.sync import executor, people_changes, runner
from agent.sync.agent_config import load_agent_config
from agent.sync.guard import MAX_REMOVALS
from agent.sync.mapper_file import load_mapper
from agent.sync.mapping import map_sources
from agent.sync.model import BatchLookup, Found, NotFound, Source, SourceRead
from agent.sync.quick_read import read_live_directory
from agent.sync.representations import default_action_aliases, import_representation
from agent.sync.sources import build_source
from benchmarks.common import (
    BENCH_STATE_DIR,
    add_keycloak_db_option,
    cpu_times,
    keycloak_description,
    keycloak_for_benchmark,
    machine,
    machine_cpu_during,
    median_of,
    peak_rss_mib,
    print_table,
    ratio,
    settle_database,
    with_disk,
    write_results,
)

SUFFIX = "dc=bench,dc=example"
ID_ATTRIBUTE = "employeeNumber"  # the sync's immutable id
ID_INDEX = f"{ID_ATTRIBUTE} eq"
PEOPLE_DN = f"ou=people,{SUFFIX}"
ROOT_DN = f"cn=admin,{SUFFIX}"
PASSWORD_ENV = "BENCH_LDAP_PASSWORD"
SYNC_NAME = "bench"
FEDERATION = "bench-ldap"
DEPARTMENTS = ("Engineering", "Support", "Sales", "Finance", "Marketing", "Operations")
GIVEN_NAMES = ("Ada", "Björn", "Chloé", "Dmitri", "Emeka", "Fatima", "Grace", "Hiro", "Ines", "José")
GROUPS = ("/staff", "/staff/engineering", "/staff/support")
RESULT_MARK = "SYNC-BENCH-RESULT "
WARM_UP_USERS = 1000
# settle_imports: rounds of this many users until one is no more than STEADY_GAIN faster than the last.
STEADY_USERS = 5000
STEADY_ROUNDS = 6
STEADY_GAIN = 0.10
WARM_UP_BATCH = 100
# Keycloak's full LDAP sync is one synchronous request, and deleting a realm of 100k users takes minutes.
LONG_TIMEOUT_SECONDS = 3 * 3600.0
GOALS = {
    "a1_over_b1_max": 0.5,
    "a1_over_c1_max": 1.5,
    "a3_writes": 0,
    "a3_over_a1_max": 0.10,
    "a4_over_a1_max": 0.15,
    "peak_rss_mib_max_at_100k": 500,
}


# -- the directory --------------------------------------------------------------------------------


def uid_of(index: int) -> str:
    return f"u{index:06d}"


def employee_number(index: int) -> str:
    return str(1_000_000 + index)


def department_of(index: int) -> str:
    return DEPARTMENTS[index % len(DEPARTMENTS)]


def person_attributes(index: int) -> dict[str, str]:
    given = GIVEN_NAMES[index % len(GIVEN_NAMES)]
    surname = f"Person{index}"
    return {
        "uid": uid_of(index),
        "cn": f"{given} {surname}",
        "givenName": given,
        "sn": surname,
        "mail": f"{uid_of(index)}@bench.example.org",
        "employeeNumber": employee_number(index),
        "departmentNumber": department_of(index),
    }


def person_dn(index: int) -> str:
    return f"uid={uid_of(index)},{PEOPLE_DN}"


def ldif_entry(dn: str, object_classes: tuple[str, ...], attributes: dict[str, str]) -> str:
    lines = [f"dn: {dn}", *(f"objectClass: {name}" for name in object_classes)]
    for name, value in attributes.items():
        # Non-ASCII values (Björn) must be base64 in LDIF.
        if value.isascii():
            lines.append(f"{name}: {value}")
        else:
            lines.append(f"{name}:: {base64.b64encode(value.encode()).decode()}")
    return "\n".join(lines) + "\n"


def directory_ldif(people: int) -> str:
    top = SUFFIX.split(",", maxsplit=1)[0].split("=")[1]
    header = [
        ldif_entry(SUFFIX, ("dcObject", "organization"), {"dc": top, "o": "Bench"}),
        ldif_entry(PEOPLE_DN, ("organizationalUnit",), {"ou": "people"}),
    ]
    entries = (ldif_entry(person_dn(i), ("inetOrgPerson",), person_attributes(i)) for i in range(people))
    return "\n".join([*header, *entries])


def start_directory(folder: Path, people: int) -> SlapdInstance:
    """A slapd on a free port, bulk-loaded with `people` generated inetOrgPerson entries."""
    # The sync's id attribute indexed for equality, as the README tells operators to: the leavers' lookups
    # search by it.
    instance = SlapdInstance(
        folder / "slapd", password=Secret(secrets.token_urlsafe(18)), suffix=SUFFIX, extra_indexes=(ID_INDEX,)
    )
    ldif = folder / "people.ldif"
    folder.mkdir(parents=True, exist_ok=True)
    ldif.write_text(directory_ldif(people), encoding="utf-8")
    instance.load(ldif)
    instance.start(free_port())
    return instance


@dataclass(frozen=True)
class Delta:
    """What A4 changed in the directory, by index: new people, changed ones (mail or department), deleted."""

    new: tuple[int, ...]
    changed: tuple[int, ...]
    deleted: tuple[int, ...]

    def changed_mail(self, index: int) -> bool:
        return self.changed.index(index) % 2 == 0

    def counts(self) -> str:
        return f"{len(self.new)} new, {len(self.changed)} changed, {len(self.deleted)} deleted"


def plan_delta(people: int) -> Delta:
    """1 % new, 5 % changed, 1 % deleted; the changed and deleted sets do not overlap (7 mod 100 vs 3 mod 20)."""
    return Delta(
        new=tuple(range(people, people + people // 100)),
        changed=tuple(i for i in range(people) if i % 20 == 3),
        deleted=tuple(i for i in range(people) if i % 100 == 7),
    )


def new_mail(index: int) -> str:
    return f"{uid_of(index)}.moved@bench.example.org"


def new_department(index: int) -> str:
    return DEPARTMENTS[(index + 1) % len(DEPARTMENTS)]


def change_directory(slapd: SlapdInstance, delta: Delta) -> None:
    """Apply the delta with ldap3 as the root DN on the running slapd."""
    settings = slapd.connection()
    connection = ldap3.Connection(
        ldap3.Server(settings.url),
        user=settings.bind_dn,
        password=settings.bind_password.reveal(),
        auto_bind=True,
        raise_exceptions=True,
    )
    try:
        for index in delta.deleted:
            connection.delete(person_dn(index))
        for index in delta.changed:
            name, value = (
                ("mail", new_mail(index)) if delta.changed_mail(index) else ("departmentNumber", new_department(index))
            )
            connection.modify(person_dn(index), {name: [(ldap3.MODIFY_REPLACE, [value])]})
        for index in delta.new:
            attributes = person_attributes(index)
            connection.add(person_dn(index), ["inetOrgPerson"], attributes)
    finally:
        connection.unbind()


# -- realms and agent configs ---------------------------------------------------------------------


def realm_spec(name: str, federation: dict[str, Any] | None = None) -> RealmSpec:
    data: dict[str, Any] = {
        "realm": name,
        "groups": [{"path": path} for path in GROUPS],
        # Keycloak drops unmanaged attributes (the sync's bookkeeping, department) unless admins may edit them.
        "user_profile": {"unmanaged_attributes": "admin_edit"},
    }
    if federation is not None:
        data["ldap"] = [federation]
    return RealmSpec.model_validate(data)


def attribute_mapper(name: str, ldap_attribute: str, user_attribute: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "user-attribute-ldap-mapper",
        "config": {
            "ldap.attribute": ldap_attribute,
            "user.model.attribute": user_attribute,
            "read.only": True,
            "always.read.value.from.ldap": False,
            "is.mandatory.in.ldap": False,
        },
    }


def federation_spec(slapd: SlapdInstance) -> dict[str, Any]:
    """Keycloak's LDAP provider over the same directory: import on, no periodic sync, the same attributes."""
    return {
        "name": FEDERATION,
        "connection_url": slapd.connection().url,
        "bind_dn": ROOT_DN,
        "bind_credential": slapd.password,
        "users_dn": PEOPLE_DN,
        "edit_mode": "READ_ONLY",
        "import_users": True,
        "pagination": True,
        "full_sync_period": "off",
        "changed_sync_period": "off",
        "mappers": [
            attribute_mapper("department", "departmentNumber", "department"),
            attribute_mapper("employee-id", "employeeNumber", "employee_id"),
        ],
    }


def prepare_realm(gateway: KeycloakGateway, spec: RealmSpec) -> None:
    result = apply_plan(gateway, plan_realm(gateway, spec))
    if not result.ok:
        raise RuntimeError(f"realm {spec.realm} could not be prepared: {result.failed}")


def mapper_document(realm: str) -> dict[str, Any]:
    fields = ["employee_id", "username", "email", "first_name", "last_name", "department"]
    return {
        "name": SYNC_NAME,
        "realm": realm,
        "id": "employee_id",
        "sources": {"ldap": {"priority": 10, "fields": fields}},
        "fields": {
            "ldap": {
                "employee_id": {"from": "employeeNumber", "transform": ["strip"]},
                "username": {"from": "uid", "transform": ["lower"]},
                "email": {"from": "mail", "transform": ["strip", "lower"]},
                "first_name": {"from": "givenName", "transform": ["strip"]},
                "last_name": {"from": "sn", "transform": ["strip"]},
                "department": {"from": "departmentNumber", "transform": ["strip"]},
            }
        },
        "attributes": ["department"],
        "rules": [
            {"name": "everyone", "grant": {"groups": ["/staff"]}},
            {"name": "engineering", "when": {"department": "Engineering"}, "grant": {"groups": ["/staff/engineering"]}},
            {"name": "support", "when": {"department": "Support"}, "grant": {"groups": ["/staff/support"]}},
        ],
    }


def removal_limit(people: int) -> int:
    """The default count limit (500) up to 25k users; above, 2 % of them, so that A4's 1 % of deletions at
    100k (1,000 disables) is applied rather than staged. The brakes themselves are tested elsewhere."""
    return max(MAX_REMOVALS, math.ceil(people * 0.02))


def write_agent_config(folder: Path, realm: str, slapd: SlapdInstance, people: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mapper.yaml").write_text(yaml.safe_dump(mapper_document(realm), sort_keys=False), encoding="utf-8")
    source = {
        "name": "ldap",
        "type": "ldap",
        "url": slapd.connection().url,
        "bind_dn": ROOT_DN,
        "bind_password": f"${{env:{PASSWORD_ENV}}}",
        "base_dn": PEOPLE_DN,
        "scope": "one",
        "filter": "(objectClass=inetOrgPerson)",
        "attributes": ["uid", "givenName", "sn", "mail", "departmentNumber"],
        # The immutable id is the employee number, so a leaver's exact lookup searches for it.
        "id_attribute": ID_ATTRIBUTE,
        "tls": "none",
    }
    agent = {
        "store": f"sqlite:///{(folder / 'store.db').resolve()}",
        "sources": [source],
        "syncs": [
            {
                "name": SYNC_NAME,
                "mapper": "mapper.yaml",
                "sources": ["ldap"],
                "safety": {"max_removals": removal_limit(people)},
            }
        ],
    }
    path = folder / "idp-agent.yaml"
    path.write_text(yaml.safe_dump(agent, sort_keys=False), encoding="utf-8")
    return path


# -- phase timing (child side) --------------------------------------------------------------------


@dataclass
class Phase:
    seconds: float = 0.0
    calls: int = 0
    requests: int | None = 0
    writes: int | None = 0


@dataclass
class Phases:
    """Wall time, calls, Keycloak requests and writes per named phase; nested phases overlap their parent.

    A part called on the executor's worker threads adds up its seconds over the threads (thread-seconds,
    more than the wall time it spans); its requests and writes are not counted (None), since the counters
    are shared by the threads running at the same time.
    """

    stats: RequestStats
    by_name: dict[str, Phase] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            requests, writes = self.stats.requests, self.stats.writes
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                with self._lock:
                    phase = self.by_name.setdefault(name, Phase())
                    phase.seconds += seconds
                    phase.calls += 1
                    if threading.current_thread() is not threading.main_thread():
                        phase.requests = phase.writes = None
                    elif phase.requests is not None and phase.writes is not None:
                        phase.requests += self.stats.requests - requests
                        phase.writes += self.stats.writes - writes

        return timed_call

    def report(self, total_seconds: float) -> dict[str, dict[str, Any]]:
        """Top-level phases in run order, the rest of run_sync as `other`, then the parts (`· ...`) by time. A
        phase that ran off the main thread (the Keycloak read, alongside the source read) overlaps the others:
        it is listed with the parts, marked `· `, and left out of `other`'s sum."""
        alongside = {name: f"{PART}{name}" for name in TOP_LEVEL_PHASES if self._off_main_thread(name)}
        named = {alongside.get(name, name): phase for name, phase in self.by_name.items()}
        top = [name for name in TOP_LEVEL_PHASES if name in named]
        parts = sorted((name for name in named if name not in top), key=lambda n: -named[n].seconds)
        other = total_seconds - sum(named[name].seconds for name in top)
        report = {name: {**dataclasses.asdict(named[name]), "seconds": round(named[name].seconds, 3)}
                  for name in [*top, *parts]}  # fmt: skip
        report[OTHER] = {"seconds": round(other, 3), "calls": 1, "requests": 0, "writes": 0}
        return {name: report[name] for name in [*top, OTHER, *parts]}

    def _off_main_thread(self, name: str) -> bool:
        phase = self.by_name.get(name)
        return phase is not None and phase.requests is None


class TimedSource:
    """A source whose reads and exact lookups (one by one and in batches) are timed as phases."""

    def __init__(self, inner: Source, phases: Phases) -> None:
        self.name = inner.name
        self._read = phases.wrap("source read", inner.read)
        self._lookup = phases.wrap(f"{PART}source lookup (leavers)", inner.lookup)
        many = inner.lookup_many if isinstance(inner, BatchLookup) else lambda external_ids: {}
        self._lookup_many = phases.wrap(f"{PART}source lookup (leavers, in batches)", many)

    def lookup_many(self, external_ids: Sequence[str]) -> Mapping[str, Found | NotFound]:
        answers: Mapping[str, Found | NotFound] = self._lookup_many(external_ids)
        return answers

    def read(self) -> SourceRead:
        read: SourceRead = self._read()
        return read

    def lookup(self, external_id: str) -> Found | NotFound:
        answer: Found | NotFound = self._lookup(external_id)
        return answer


# What run_sync does, by phase; the parts (`· `: gateway and store calls, leaver lookups) are mostly in `apply`.
PART = "· "
OTHER = "other (run start and finish, baselines)"
RUNNER_PHASES = {
    "map_sources": "map",
    "read_full": "keycloak read: users (full listing)",
    "read_quick": "keycloak read: users (brief listing + records)",
    "read_by_plugin": "keycloak read: users (plugin)",
    "refresh": "keycloak read: users to change, afresh",
    "known_targets": "keycloak read: client roles",
    "plan_sync": "plan",
    "settle_found_held": "keycloak read: what people to grant hold",
    "check_safety": "brakes",
    "execute": "apply",
    "remember_reads": "store: records for the next run",
}
# Gateway calls the runner makes itself, timed as phases of their own.
GATEWAY_READ_PHASES = {"read_realm_outline": "keycloak read: realm (settings, groups, roles, actions, profile)"}
TOP_LEVEL_PHASES = ("source read", *RUNNER_PHASES.values(), *GATEWAY_READ_PHASES.values())
GATEWAY_PHASES = (
    "import_users",
    "change_users",
    "update_user",
    "replace_user",
    "get_user",
    "get_raw_user",
    "add_user_to_group",
    "remove_user_from_group",
    "add_realm_roles_to_user",
    "remove_realm_roles_from_user",
    "logout_user",
    "list_consents",
    "list_required_actions",
)


@contextmanager
def phase_timing(gateway: KeycloakGateway, store: Any) -> Iterator[Phases]:
    phases = Phases(gateway.stats)
    with ExitStack() as patches:
        for attribute, name in RUNNER_PHASES.items():
            patches.enter_context(mock.patch.object(runner, attribute, phases.wrap(name, getattr(runner, attribute))))

        def timed_source(config: Any) -> Source:
            return TimedSource(build_source(config), phases)

        patches.enter_context(mock.patch.object(runner, "build_source", timed_source))
        for method in GATEWAY_PHASES:
            wrapped = phases.wrap(f"{PART}kc.{method}", getattr(gateway, method))
            patches.enter_context(mock.patch.object(gateway, method, wrapped))
        for method, name in GATEWAY_READ_PHASES.items():
            patches.enter_context(mock.patch.object(gateway, method, phases.wrap(name, getattr(gateway, method))))
        patches.enter_context(
            mock.patch.object(store.runs, "add_items", phases.wrap(f"{PART}store: run items", store.runs.add_items))
        )
        patches.enter_context(
            mock.patch.object(
                store.journal, "append_many", phases.wrap(f"{PART}store: journal", store.journal.append_many)
            )
        )
        yield phases


# -- arms run in a child process ------------------------------------------------------------------


@dataclass(frozen=True)
class ChildOptions:
    """`import_batch`: a what-if that overrides the executor's partialImport batch size (None: the agent's own)."""

    profile: Path | None = None
    import_batch: int | None = None

    def arguments(self) -> list[str]:
        found = [] if self.profile is None else ["--profile", str(self.profile)]
        return found + ([] if self.import_batch is None else ["--import-batch", str(self.import_batch)])


def _counter_delta(stats: RequestStats, requests: int, writes: int) -> dict[str, int]:
    return {"requests": stats.requests - requests, "writes": stats.writes - writes}


def agent_arm(config_path: Path, profile: Path | None) -> dict[str, Any]:
    """A1, A3 or A4: one whole `run_sync`, timed, with its phases, Keycloak requests and writes."""
    env = dict(os.environ)
    config = load_agent_config(config_path, env)
    sync = config.sync(SYNC_NAME)
    with keycloak_for_benchmark() as connection, open_store(config.store) as store:
        gateway = KeycloakGateway.connect(connection)
        try:
            gateway.get_realm(load_mapper(config.mapper_path(sync), env).realm)  # the token, outside the timing
            requests, writes = gateway.stats.requests, gateway.stats.writes
            with phase_timing(gateway, store) as phases:
                profiler = cProfile.Profile() if profile else None
                machine_start = cpu_times()
                cpu_start = time.process_time()
                start = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                run, prepared, outcome = runner.run_sync(config, sync, gateway, store, now=datetime.now(UTC), env=env)
                if profiler is not None:
                    profiler.disable()
                seconds = time.perf_counter() - start
                cpu_seconds = time.process_time() - cpu_start
                machine_cpu = machine_cpu_during(machine_start, cpu_times(), seconds, os.sysconf("SC_CLK_TCK"))
            if profiler is not None and profile is not None:
                profile.parent.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(str(profile))
            return {
                "seconds": round(seconds, 3),
                # The agent's own CPU (all threads): on 2 shared CPUs it is taken from Keycloak.
                "cpu_seconds": round(cpu_seconds, 3),
                # Every process's (Keycloak, its database, slapd, the agent): whether the CPUs were the bottleneck.
                "machine_cpu": machine_cpu,
                **_counter_delta(gateway.stats, requests, writes),
                "status": run.status,
                "keycloak_read": {
                    "full": prepared.live_read.full if prepared.live_read else None,
                    "single_reads": prepared.live_read.single_reads if prepared.live_read else None,
                    "via_plugin": prepared.live_read.via_plugin if prepared.live_read else None,
                },
                "summary": run.summary,
                "plan": prepared.plan.counts(),
                "outcome": outcome.counts() if outcome is not None else {},
                "read": {name: len(read.records) for name, read in prepared.reads.items()},
                "phases": phases.report(seconds),
                "peak_rss_mib": peak_rss_mib(),
                "profiled": profile is not None,
            }
        finally:
            gateway.close()


def floor_arm(config_path: Path) -> dict[str, Any]:
    """C1: the users the agent would create, as the same representations, posted with raw partialImport
    (SKIP) in the executor's batch size and number of concurrent requests (its floor is the same transport
    strategy without the agent's logic). Only the posts are timed."""
    env = dict(os.environ)
    config = load_agent_config(config_path, env)
    sync = config.sync(SYNC_NAME)
    mapper = load_mapper(config.mapper_path(sync), env)
    now = datetime.now(UTC)
    reads = [build_source(source).read() for source in config.sources]
    users = map_sources(reads, mapper, now).users
    with keycloak_for_benchmark() as connection:
        gateway = KeycloakGateway.connect(connection)
        try:
            default_actions = default_action_aliases(gateway.list_required_actions(mapper.realm))
            representations = [
                import_representation(
                    user,
                    source=sync.name,
                    default_role=default_role_name(mapper.realm),
                    enabled=True,
                    now=now,
                    attribute_names=tuple(mapper.attributes),
                    default_actions=default_actions,
                )
                for user in users
            ]
            requests, writes = gateway.stats.requests, gateway.stats.writes
            cpu_start = time.process_time()
            start = time.perf_counter()
            answers = import_as_the_executor(gateway, mapper.realm, representations)
            added = sum(1 for imported in answers for user in imported if user.action == "ADDED")
            seconds = time.perf_counter() - start
            return {
                "seconds": round(seconds, 3),
                "cpu_seconds": round(time.process_time() - cpu_start, 3),
                **_counter_delta(gateway.stats, requests, writes),
                "added": added,
                "peak_rss_mib": peak_rss_mib(),
            }
        finally:
            gateway.close()


def child_main(arm: str, config_path: Path, options: ChildOptions) -> None:
    with ExitStack() as patches:
        if options.import_batch is not None:
            patches.enter_context(mock.patch.object(executor, "IMPORT_BATCH_SIZE", options.import_batch))
        result = floor_arm(config_path) if arm == "C1" else agent_arm(config_path, options.profile)
        result["import_batch_size"] = executor.IMPORT_BATCH_SIZE
        result["workers"] = executor.WORKERS
    print(RESULT_MARK + json.dumps(result), flush=True)


def run_child(arm: str, config_path: Path, password: Secret, options: ChildOptions) -> dict[str, Any]:
    """Run one arm in a fresh interpreter (its own peak RSS); the LDAP password goes by environment only."""
    command = [sys.executable, "-m", "benchmarks.sync_bench", "--arm", arm, "--config", str(config_path)]
    command += options.arguments()
    env = {**os.environ, PASSWORD_ENV: password.reveal()}
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"arm {arm} failed (exit {done.returncode}); its output:\n{done.stdout[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARK) :])
    return result


# -- arms run in the parent -----------------------------------------------------------------------


def federation_arm(gateway: KeycloakGateway, realm: str, people: int, arm: str) -> dict[str, Any]:
    """B1 (and B3): Keycloak's own full sync (one synchronous request), timed until it returns; then the
    imported count and the attributes of one user are checked (the same attribute work as the agent's)."""
    settle_database()
    live = gateway.get_realm(realm)
    assert live is not None
    components = gateway.list_components(realm, provider_type=USER_STORAGE_PROVIDER, parent_id=live.id)
    component = next(component for component in components if component.name == FEDERATION)
    requests, writes = gateway.stats.requests, gateway.stats.writes
    start = time.perf_counter()
    result = gateway.sync_user_storage(realm, component.id, full=True)
    seconds = time.perf_counter() - start
    timing = _counter_delta(gateway.stats, requests, writes)
    imported = gateway.count_users(realm)
    checks = [] if imported == people and result.failed == 0 else [f"{arm} imported {imported} of {people}"]
    found = gateway.find_user_by_username(realm, uid_of(0))
    sample = gateway.get_user(realm, found.id) if found is not None else None
    wanted = {"department": (department_of(0),), "employee_id": (employee_number(0),)}
    if sample is None or any(sample.attributes.get(name) != value for name, value in wanted.items()):
        checks.append(f"{arm}: user {uid_of(0)} lacks the department or employee_id attribute")
    return {
        "seconds": round(seconds, 3),
        **timing,
        "keycloak_counts": dataclasses.asdict(result),
        "imported_users": imported,
        "checks": checks,
    }


def managed_users(gateway: KeycloakGateway, realm: str) -> dict[str, Any]:
    """The sync's users by external id, read the way the sync reads them (a `q=` search of 100k users takes
    about a quarter of an hour: its pages get slower the further they are)."""
    return {live.external_id: live.user for live in read_live_directory(gateway, realm, SYNC_NAME).managed}


def check_full_sync(gateway: KeycloakGateway, realm: str, people: int, result: dict[str, Any]) -> list[str]:
    """A1 really made everyone, enabled, with the department and the rule's groups."""
    problems = []
    if result["status"] != "succeeded":
        problems.append(f"A1 status {result['status']}: {result['summary']}")
    live = managed_users(gateway, realm)
    if len(live) != people or not all(user.enabled for user in live.values()):
        problems.append(f"A1 made {len(live)} managed users of {people} (or some are disabled)")
    sample = live.get(employee_number(0))  # index 0 is in Engineering
    if sample is None or sample.attributes.get("department") != ("Engineering",):
        problems.append("A1: the first person lacks department Engineering")
    elif set(gateway.user_group_paths(realm, sample.id)) != {"/staff", "/staff/engineering"}:
        problems.append("A1: the first person lacks the groups /staff and /staff/engineering")
    return problems


def check_delta(gateway: KeycloakGateway, realm: str, people: int, delta: Delta, result: dict[str, Any]) -> list[str]:
    """Every deleted person disabled, every new one created, every change applied, nobody else disabled."""
    problems = []
    if result["status"] != "succeeded":
        problems.append(f"A4 status {result['status']}: {result['summary']}")
    live = managed_users(gateway, realm)
    deleted = {employee_number(index) for index in delta.deleted}
    missed = sorted(key for key in deleted if key not in live or live[key].enabled)
    if missed:
        problems.append(f"A4: {len(missed)} of {len(deleted)} deletions not detected (e.g. {missed[0]})")
    wrongly = sorted(key for key, user in live.items() if key not in deleted and not user.enabled)
    if wrongly:
        problems.append(f"A4: {len(wrongly)} people still in the directory were disabled")
    absent = [index for index in delta.new if employee_number(index) not in live]
    if absent:
        problems.append(f"A4: {len(absent)} of {len(delta.new)} new people not created")
    for index in delta.changed:
        user = live.get(employee_number(index))
        if user is None:
            problems.append(f"A4: changed person {index} missing")
            continue
        if delta.changed_mail(index) and user.email != new_mail(index):
            problems.append(f"A4: mail of person {index} not updated")
        if not delta.changed_mail(index) and user.attributes.get("department") != (new_department(index),):
            problems.append(f"A4: department of person {index} not updated")
    if len(live) != people + len(delta.new):
        problems.append(f"A4: {len(live)} managed users, expected {people + len(delta.new)}")
    return problems


def warm_up(gateway: KeycloakGateway) -> None:
    """Keycloak's JIT and caches warmed on each path the agent arms and C1 take, in a throwaway realm: a
    partialImport of 1,000 users, the plugin pack's reads of them, and their changes through the plugin (an
    attribute and a group join each, then a group leave, and a disable with sessions ended for every fifth). B1's
    path is warmed by its own run at the sizes before (1k before 10k)."""
    name = f"bench-sync-warmup-{uuid.uuid4().hex[:6]}"
    gateway.create_realm(name)
    try:
        users = [{"username": f"warm{index}", "enabled": True} for index in range(WARM_UP_USERS)]
        ids = [
            imported.id
            for offset in range(0, len(users), WARM_UP_BATCH)
            for imported in gateway.import_users(name, users[offset : offset + WARM_UP_BATCH])
        ]
        list(gateway.plugin_raw_users(name) or ())
        group = gateway.create_group(name, "warm")
        rounds = [
            [UserChange(user_id, attributes={"warm": ["1"]}, join_groups=(group,)) for user_id in ids],
            [UserChange(user_id, leave_groups=(group,)) for user_id in ids[::2]],
            [UserChange(user_id, fields={"enabled": False}, end_sessions=True) for user_id in ids[::5]],
        ]
        size = people_changes.PEOPLE_PER_REQUEST
        for changes in rounds:
            for offset in range(0, len(changes), size):
                gateway.change_users(name, changes[offset : offset + size])
    finally:
        gateway.delete_realm(name)


def import_as_the_executor(
    gateway: KeycloakGateway, realm: str, users: Sequence[Mapping[str, Any]]
) -> list[list[ImportedUser]]:
    """`users` posted with partialImport in the executor's batch size and number of concurrent requests."""
    batch = executor.IMPORT_BATCH_SIZE
    batches = [users[offset : offset + batch] for offset in range(0, len(users), batch)]
    with ThreadPoolExecutor(max_workers=executor.WORKERS) as pool:
        return list(pool.map(functools.partial(gateway.import_users, realm), batches))


def settle_imports(gateway: KeycloakGateway, kept: list[str]) -> list[float]:
    """Untimed imports of STEADY_USERS users like the agent's (attributes, a group, the default role), in the
    executor's batches and number of concurrent requests, each into a realm of its own, until one is no more
    than STEADY_GAIN faster than the one before (at least 2, at most STEADY_ROUNDS): returns their seconds. The
    realms are added to `kept`, for the caller to delete when the size is done.

    Keycloak kept getting faster over the first tens of thousands of users it imported, well beyond warm_up's
    1,000 (10k users in a fresh realm, on H2: 17.3, 14.6, 10.8, 10.8, 9.4, 9.4 s, then 6.5-7.4 s; ad hoc runs,
    2026-11-30), so the first arms of a size (C1, then B1) met a colder Keycloak than A1. The realms stay while
    the arms run, so that every arm writes into a database that already holds (and has statistics of) at least
    10,000 users: on PostgreSQL, C1 at 10k took 21.3 s after settled rounds whose realms were deleted, when the
    rounds took 4.4-4.6 s per 5,000 and A1 11.3 s (likely, not proven: its tables had been analysed while nearly
    empty); 12.5 and 13.0 s with the realms kept."""
    print("settling Keycloak: untimed imports until one is no faster than the last ...", flush=True)
    seconds: list[float] = []
    while len(seconds) < STEADY_ROUNDS and not _steady(seconds):
        name = f"bench-sync-settle-{uuid.uuid4().hex[:6]}"
        kept.append(name)
        prepare_realm(gateway, realm_spec(name))
        users = [
            {
                "username": f"settle{index}",
                "email": f"settle{index}@example.org",
                "enabled": True,
                "attributes": {"department": [department_of(index)], "employee_id": [employee_number(index)]},
                "groups": ["/staff"],
                "realmRoles": [f"default-roles-{name}"],
            }
            for index in range(STEADY_USERS)
        ]
        start = time.perf_counter()
        import_as_the_executor(gateway, name, users)
        seconds.append(round(time.perf_counter() - start, 3))
    print(f"  {STEADY_USERS} users each: {', '.join(f'{taken:.2f}' for taken in seconds)} s", flush=True)
    return seconds


def _steady(seconds: list[float]) -> bool:
    return len(seconds) >= 2 and seconds[-1] >= seconds[-2] * (1 - STEADY_GAIN)


@dataclass(frozen=True)
class RunOptions:
    """`agent_only`: skip C1, B1 and B3 (for 100k, where only the agent-side arms are asked for)."""

    profile_dir: Path | None = None
    import_batch: int | None = None
    agent_only: bool = False

    def child(self, arm: str, people: int) -> ChildOptions:
        profile = self.profile_dir / f"{arm}-{people}.pstats" if self.profile_dir and arm != "C1" else None
        return ChildOptions(profile, self.import_batch)


def run_size(connection: KeycloakConnection, people: int, work: Path, options: RunOptions) -> dict[str, Any]:
    """Every arm at one size, in the order C1, B1, A1, A3, B3, A4 (A1 meets the fuller database)."""
    tag = uuid.uuid4().hex[:6]
    realms = {"agent": f"bench-sync-{tag}-agent"}
    if not options.agent_only:
        realms |= {"floor": f"bench-sync-{tag}-raw", "federation": f"bench-sync-{tag}-kc"}
    folder = work / f"n{people}-{tag}"
    print(f"\n== {people} users: generating and loading the directory ...", flush=True)
    slapd = start_directory(folder, people)
    gateway = KeycloakGateway.connect(dataclasses.replace(connection, timeout_seconds=LONG_TIMEOUT_SECONDS))
    arms: dict[str, dict[str, Any]] = {}
    checks: list[str] = []
    settled: list[str] = []

    def child(arm: str, realm: str) -> dict[str, Any]:
        config = write_agent_config(folder / realm, realm, slapd, people)
        settle_database()
        return with_disk(lambda: run_child(arm, config, slapd.password, options.child(arm, people)))

    try:
        settling = settle_imports(gateway, settled)
        prepare_realm(gateway, realm_spec(realms["agent"]))
        if not options.agent_only:
            prepare_realm(gateway, realm_spec(realms["floor"]))
            prepare_realm(gateway, realm_spec(realms["federation"], federation_spec(slapd)))
            print(f"C1 raw partialImport of {people} ...", flush=True)
            arms["C1"] = child("C1", realms["floor"])
            if arms["C1"]["added"] != people or gateway.count_users(realms["floor"]) != people:
                checks.append(f"C1 added {arms['C1']['added']} of {people}")
            print(f"B1 Keycloak LDAP full sync of {people} ...", flush=True)
            arms["B1"] = with_disk(lambda: federation_arm(gateway, realms["federation"], people, "B1"))
            checks += arms["B1"].pop("checks")
        print(f"A1 agent full sync of {people} ...", flush=True)
        arms["A1"] = child("A1", realms["agent"])
        checks += check_full_sync(gateway, realms["agent"], people, arms["A1"])
        print("A3 agent re-sync, directory unchanged ...", flush=True)
        arms["A3"] = child("A3", realms["agent"])
        if arms["A3"]["writes"] != 0:
            checks.append(f"A3 made {arms['A3']['writes']} Keycloak writes")
        if not options.agent_only:
            print("B3 (for comparison) Keycloak LDAP full sync again, directory unchanged ...", flush=True)
            arms["B3"] = with_disk(lambda: federation_arm(gateway, realms["federation"], people, "B3"))
            checks += arms["B3"].pop("checks")
        delta = plan_delta(people)
        change_directory(slapd, delta)
        print(f"A4 agent delta run: {delta.counts()} ...", flush=True)
        arms["A4"] = child("A4", realms["agent"])
        arms["A4"]["delta"] = {"new": len(delta.new), "changed": len(delta.changed), "deleted": len(delta.deleted)}
        checks += check_delta(gateway, realms["agent"], people, delta, arms["A4"])
    finally:
        slapd.stop()
        delete_realms(gateway, [*realms.values(), *settled])
        gateway.close()
    return {"users": people, "settling_seconds": settling, "arms": arms, "ratios": ratios(arms), "checks": checks}


def combined_size(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeated runs of one size as one: each arm is its run with the median seconds (every run's seconds
    beside it), the ratios are those of the medians. The writes of A3 and the peak RSS are the highest of any
    run, and the checks are all runs' checks: a goal met in one run and missed in another is missed."""
    arms: dict[str, dict[str, Any]] = {}
    for arm in runs[0]["arms"]:
        results = [run["arms"][arm] for run in runs]
        arms[arm] = median_of(results)
        if "peak_rss_mib" in arms[arm]:
            arms[arm]["peak_rss_mib"] = max(result["peak_rss_mib"] for result in results)
    combined_ratios = ratios(arms)
    combined_ratios["a3_writes"] = max(run["ratios"]["a3_writes"] for run in runs)
    return {
        "users": runs[0]["users"],
        "repeats": len(runs),
        "settling_seconds": [run["settling_seconds"] for run in runs],
        "arms": arms,
        "ratios": combined_ratios,
        "ratios_of_each_run": [run["ratios"] for run in runs],
        "checks": [problem for run in runs for problem in run["checks"]],
    }


def delete_realms(gateway: KeycloakGateway, realms: Iterable[str]) -> None:
    for realm in realms:
        try:
            if gateway.get_realm(realm) is not None:
                gateway.delete_realm(realm)
        except KeycloakError as error:  # cleanup must not hide the arm's own failure
            print(f"could not delete realm {realm}: {error}", file=sys.stderr)


def arm_ratio(arms: dict[str, dict[str, Any]], numerator: str, denominator: str) -> float | None:
    """seconds(numerator) / seconds(denominator); None when either arm was not run (--agent-only)."""
    if numerator not in arms or denominator not in arms:
        return None
    return ratio(arms[numerator]["seconds"], arms[denominator]["seconds"])


def ratios(arms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "a1_over_b1": arm_ratio(arms, "A1", "B1"),
        "a1_over_c1": arm_ratio(arms, "A1", "C1"),
        "a3_writes": arms["A3"]["writes"],
        "a3_over_a1": arm_ratio(arms, "A3", "A1"),
        "a4_over_a1": arm_ratio(arms, "A4", "A1"),
        # For comparison only: what Keycloak's own sync does with an unchanged directory.
        "a3_over_b3": arm_ratio(arms, "A3", "B3"),
        "b3_users_rewritten": arms["B3"]["keycloak_counts"]["updated"] if "B3" in arms else None,
    }


def at_most(value: float | None, limit: float) -> bool | None:
    """None when the ratio was not measured (an arm not run)."""
    return None if value is None else value <= limit


def goals_met(size: dict[str, Any]) -> dict[str, bool | None]:
    """Each goal at this size; None where the goal is not defined for it (A1/B1 at 10k, RSS at 100k)."""
    r = size["ratios"]
    people = size["users"]
    peak = max(size["arms"][arm]["peak_rss_mib"] for arm in ("A1", "A3", "A4"))
    return {
        "a1_over_b1": at_most(r["a1_over_b1"], GOALS["a1_over_b1_max"]) if people == 10_000 else None,
        "a1_over_c1": at_most(r["a1_over_c1"], GOALS["a1_over_c1_max"]),
        "a3_writes": r["a3_writes"] == GOALS["a3_writes"],
        "a3_over_a1": at_most(r["a3_over_a1"], GOALS["a3_over_a1_max"]),
        "a4_over_a1": bool(at_most(r["a4_over_a1"], GOALS["a4_over_a1_max"])) and not size["checks"],
        "peak_rss": peak <= GOALS["peak_rss_mib_max_at_100k"] if people == 100_000 else None,
    }


ARM_NAMES = {
    "A1": "agent full sync",
    "B1": "Keycloak LDAP full sync",
    "C1": "raw partialImport floor",
    "A3": "agent re-sync, unchanged",
    "A4": "agent delta run",
    "B3": "Keycloak LDAP re-sync, unchanged (info)",
}


def print_size(size: dict[str, Any]) -> None:
    people = size["users"]
    rows = []
    for arm in [arm for arm in ("A1", "B1", "C1", "A3", "A4", "B3") if arm in size["arms"]]:
        result = size["arms"][arm]
        rows.append(
            {
                "arm": f"{arm} {ARM_NAMES[arm]}",
                "users": people,
                "seconds": result["seconds"],
                "N/s": round(people / result["seconds"]) if result["seconds"] else "",
                "writes": result["writes"],
                "requests": result["requests"],
                "cpu_s": result.get("cpu_seconds", ""),
                "peak_rss_mib": result.get("peak_rss_mib", ""),
                # The disk's mean write time meanwhile: hundreds of ms say the VM's storage stalled.
                "disk_ms/write": (result.get("disk") or {}).get("ms_per_write", ""),
                # The share of all CPUs busy meanwhile (agent arms only): near 1, the machine was CPU-bound.
                "machine_busy": (result.get("machine_cpu") or {}).get("busy_share", ""),
                "each_run_s": " ".join(str(seconds) for seconds in result.get("all_seconds", ())),
            }
        )
    repeats = size.get("repeats", 1)
    print(f"\n{people} users, {repeats} runs: each arm's run with the median seconds" if repeats > 1 else "")
    columns = ["arm", "users", "seconds", "N/s", "writes", "requests", "cpu_s", "machine_busy", "peak_rss_mib"]
    columns += ["disk_ms/write"]
    print_table(rows, columns + (["each_run_s"] if repeats > 1 else []))
    for arm in ("A1", "A3", "A4"):
        phases = size["arms"][arm]["phases"]
        read = size["arms"][arm].get("keycloak_read") or {}
        how = (
            "the plugin's pages"
            if read.get("via_plugin")
            else "full listing"
            if read.get("full")
            else f"brief listing + records, {read.get('single_reads')} read one by one"
        )
        print(f"\n{arm} phases ({people} users; Keycloak read: {how}):")
        print_table(
            [{"phase": name, **values} for name, values in phases.items()],
            ["phase", "seconds", "calls", "requests", "writes"],
        )
    r = size["ratios"]
    met = size["goals_met"]
    print(f"\nratios at {people}:")
    print(f"  A1/B1 = {r['a1_over_b1']}  (goal <= 0.5 at 10k){_verdict(met['a1_over_b1'])}")
    print(f"  A1/C1 = {r['a1_over_c1']}  (goal <= 1.5){_verdict(met['a1_over_c1'])}")
    print(f"  A3 writes = {r['a3_writes']}  (goal 0){_verdict(met['a3_writes'])}")
    print(f"  A3/A1 = {r['a3_over_a1']}  (goal <= 0.10){_verdict(met['a3_over_a1'])}")
    print(f"  A4/A1 = {r['a4_over_a1']}  (goal <= 0.15, every deletion detected){_verdict(met['a4_over_a1'])}")
    if r["a3_over_b3"] is not None:
        rewritten = r["b3_users_rewritten"]
        print(f"  (info) A3/B3 = {r['a3_over_b3']}; Keycloak's re-sync rewrote {rewritten} unchanged users")
    if met["peak_rss"] is not None:
        print(f"  peak RSS of the agent arms <= 500 MiB at 100k{_verdict(met['peak_rss'])}")
    for number, each in enumerate(size.get("ratios_of_each_run", ()), start=1):
        shown = ", ".join(f"{name} {each[name]}" for name in ("a1_over_b1", "a1_over_c1", "a3_over_a1", "a4_over_a1"))
        print(f"  run {number}: {shown}")
    for problem in size["checks"]:
        print(f"  CHECK FAILED: {problem}")


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("  met" if met else "  MISSED")


def odd_count(text: str) -> int:
    """A positive odd number: the median of an odd count is one of the runs, not a pick between two."""
    count = int(text)
    if count < 1 or count % 2 == 0:
        raise argparse.ArgumentTypeError(f"an odd number of runs (1, 3, 5, ...), not {text}")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, action="append", help="a size N (repeatable; default 1000)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON result file")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the agent arms into this folder")
    parser.add_argument(
        "--import-batch",
        type=int,
        default=None,
        help="what-if: override the executor's partialImport batch size in the agent arms and C1",
    )
    parser.add_argument("--agent-only", action="store_true", help="skip C1, B1 and B3 (e.g. for --users 100000)")
    parser.add_argument(
        "--repeats", type=odd_count, default=1, help="runs of each size, each in fresh realms (odd); the median counts"
    )
    add_keycloak_db_option(parser)
    parser.add_argument("--arm", choices=("A1", "A3", "A4", "C1"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm is not None:
        child_main(args.arm, args.config, ChildOptions(args.profile, args.import_batch))
        return
    sizes = args.users or [1000]
    work = BENCH_STATE_DIR / "sync" / uuid.uuid4().hex[:8]
    sizes_done: list[dict[str, Any]] = []
    where = keycloak_description(args.keycloak_db)
    with keycloak_for_benchmark(args.keycloak_db) as connection:
        admin = KeycloakGateway.connect(dataclasses.replace(connection, timeout_seconds=LONG_TIMEOUT_SECONDS))
        try:
            version = admin.server_version()
            print(f"Keycloak {version} at {connection.url} ({where}); warming up ...", flush=True)
            warm_up(admin)
            for people in sizes:
                options = RunOptions(args.profile, args.import_batch, args.agent_only)
                runs = [run_size(connection, people, work, options) for _ in range(args.repeats)]
                size = runs[0] if args.repeats == 1 else combined_size(runs)
                size["goals_met"] = goals_met(size)
                print_size(size)
                sizes_done.append(size)
        finally:
            admin.close()
            shutil.rmtree(work, ignore_errors=True)
    write_results(
        args.out,
        {
            "benchmark": "sync_bench",
            "keycloak_version": version,
            "keycloak": where,
            "machine": machine(),
            "order": ["C1", "B1", "A1", "A3", "B3", "A4"],
            "import_batch_override": args.import_batch,
            "settling": {"users": STEADY_USERS, "max_rounds": STEADY_ROUNDS, "gain_below": STEADY_GAIN},
            "agent_only": args.agent_only,
            "repeats": args.repeats,
            "goals": GOALS,
            "sizes": sizes_done,
            "checks_passed": all(not size["checks"] for size in sizes_done),
        },
    )
    if any(size["checks"] for size in sizes_done):
        sys.exit(1)


if __name__ == "__main__":
    main()
