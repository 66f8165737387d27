"""The daemon's jobs: each calls the same library function as its CLI command, under the writer lock.

Jobs whose module is not part of this build (sanctions, events, reviews are written separately) are kept
as named registry entries that say so on every run: they never pretend to have run.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from agent.daemon.config import JobKind, JobSpec
from agent.errors import AgentError, ConfigError, Interrupted
from agent.keycloak import KeycloakGateway
from agent.keycloak.transport import Response, Transport
from agent.paths import state_dir
from agent.settings import resolve_keycloak_connection
from agent.store.db import Store, open_store
from agent.sync.agent_config import AgentConfig

# How a job stops on SIGTERM: "own" (it asks `stopping` before each item and stops between items),
# "after_item" (it calls checkpoint() after each item; the gateway then refuses the next write),
# "before_write" (the gateway refuses its next write at once; for jobs that converge on the next run).
StopPolicy = Literal["own", "after_item", "before_write"]
STOP_POLICIES: dict[JobKind, StopPolicy] = {"sync": "own", "drift": "after_item", "retention": "own"}
JobOutcome = Literal["succeeded", "failed", "staged", "drift", "unavailable", "interrupted"]


class JobNotAvailable(AgentError):
    """The job's module is not part of this build: the run is reported, never faked."""


class ShutdownRequested(Interrupted):
    """A write refused because the daemon is stopping (jobs that do not stop between items themselves)."""


@dataclass(frozen=True)
class JobResult:
    outcome: JobOutcome
    summary: str = ""
    changes: int = 0
    failures: int = 0
    staged_removals: int = 0
    drift_changes: int | None = None
    store_run_id: str | None = None


@dataclass(frozen=True)
class JobRun:
    """Everything a job needs for one run."""

    spec: JobSpec
    job_id: str
    sync_name: str | None
    config: AgentConfig
    env: Mapping[str, str]
    clock: Callable[[], datetime]
    stopping: threading.Event
    run_id: str
    stop_policy: StopPolicy = "before_write"
    # Set once an item was finished and journalled after the stop request: the next write is refused.
    item_boundary: threading.Event = field(default_factory=threading.Event)

    def checkpoint(self, done: int = 0, total: int = 0) -> None:
        """Called after each finished (and journalled) item of an `after_item` job."""
        if self.stopping.is_set():
            self.item_boundary.set()

    def must_stop_before_write(self) -> bool:
        """Whether the gateway refuses the next write: never for a job that stops between items itself, after
        the current item for one that reports its items, else as soon as the daemon stops."""
        if not self.stopping.is_set() or self.stop_policy == "own":
            return False
        return self.stop_policy == "before_write" or self.item_boundary.is_set()

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.config.base_dir / path


class StoppingGateway(KeycloakGateway):
    """The gateway of a daemon run: once the daemon is stopping, it refuses to start the next write."""

    def __init__(self, transport: Transport, *, must_stop: Callable[[], bool]) -> None:
        super().__init__(transport)
        self._must_stop = must_stop

    def _write(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Response:
        if self._must_stop():
            raise ShutdownRequested("the daemon is stopping: no further write in this run")
        return super()._write(method, path, body, params)


@contextmanager
def session(run: JobRun) -> Iterator[tuple[KeycloakGateway, Store]]:
    """A gateway and a store for one run (one Keycloak client per job: token refresh is not shared)."""
    gateway = StoppingGateway(Transport(resolve_keycloak_connection()), must_stop=run.must_stop_before_write)
    try:
        with open_store(run.config.store) as store:
            yield gateway, store
    finally:
        gateway.close()


def lock_name(job_id: str) -> str:
    """The lock a job takes: a sync job the same lock as `idp-agent sync run` (sync-<name>)."""
    kind, _, rest = job_id.partition(":")
    if kind == "sync":
        return f"sync-{rest}"
    return kind if not rest else f"{kind}-{rest}"


def _optional(module: str, attribute: str, job: str) -> Any:
    """A function of a module that may be missing from this build."""
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is not None and module.startswith(error.name):
            raise JobNotAvailable(f"not available in this build: {job} needs {module}") from None
        raise
    if not hasattr(loaded, attribute):
        raise JobNotAvailable(f"not available in this build: {job} needs {module}.{attribute}")
    return getattr(loaded, attribute)


# -- sync -------------------------------------------------------------------------------------------


def sync_job(run: JobRun) -> JobResult:
    """`idp-agent sync run`: the same runner (sanction holds included), one run of one configured sync."""
    from agent.sync.runner import run_sync, staged_removals

    config = run.config
    sync = config.sync(run.sync_name)
    with session(run) as (gateway, store):
        finished, prepared, outcome = run_sync(
            config, sync, gateway, store, now=run.clock(), env=run.env, should_stop=run.stopping.is_set
        )
    failures = len(outcome.failed) if outcome is not None else 0
    changes = len(outcome.results) - failures if outcome is not None else 0
    summary = f"run {finished.id}: {finished.status}" + (f"; {finished.summary}" if finished.summary else "")
    if finished.status == "staged":
        removals = len(staged_removals(prepared.plan))
        return JobResult("staged", summary, staged_removals=removals, store_run_id=finished.id)
    status: JobOutcome = "succeeded" if finished.status == "succeeded" else "failed"
    return JobResult(status, summary, changes=changes, failures=failures, store_run_id=finished.id)


# -- drift ------------------------------------------------------------------------------------------


def drift_job(run: JobRun) -> JobResult:
    """Plan every realm in realm-config against Keycloak; drift is alerted, or applied when `apply: true`."""
    from agent.realm.backups import save_backup
    from agent.realm.engine import plan_realm
    from agent.realm.journal import apply_journalled
    from agent.realm.loader import load_realms

    spec = run.spec
    paths = drift_paths(spec, run.config.base_dir)
    realms = load_realms(paths, policies_dir=run.resolve(spec.policies), env=run.env)
    with session(run) as (gateway, store):
        plans = [plan_realm(gateway.read_only(), realm.spec) for realm in realms]
        drifted = [plan for plan in plans if not plan.is_empty]
        found = sum(len(plan.changes) for plan in drifted)
        described = ", ".join(f"{plan.realm} ({len(plan.changes)})" for plan in drifted)
        if not drifted:
            return JobResult("succeeded", f"no drift in {len(plans)} realm(s)", drift_changes=0)
        if not spec.apply:
            return JobResult("drift", f"drift: {found} change(s) pending in {described}", drift_changes=found)
        applied = failed = 0
        for plan in drifted:
            if plan.realm_exists:  # as `idp-agent apply` does: a realm export first
                save_backup(gateway, plan.realm, state_dir() / "backups")
            result, _ = apply_journalled(
                gateway, plan, store, run_kind="drift-apply", actor=f"daemon:{run.job_id}",
                reason="drift from realm-config", summary=f"daemon run {run.run_id}", checkpoint=run.checkpoint,
            )  # fmt: skip
            applied += len(result.applied)
            failed += len(result.failed)
    outcome: JobOutcome = "failed" if failed else "drift"
    summary = f"drift in {described}: {applied} change(s) applied, {failed} failed"
    return JobResult(outcome, summary, changes=applied, failures=failed, drift_changes=found)


# -- jobs of other packages (lazily imported) ------------------------------------------------------


def drift_paths(spec: JobSpec, base_dir: Path) -> list[Path]:
    """The drift job's realm-config paths (relative ones from the agent config's folder); all must exist."""
    paths = [path if path.is_absolute() else base_dir / path for path in spec.paths]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise ConfigError(f"drift: no such config path: {', '.join(missing)}", hint="check daemon.jobs[].paths")
    return paths


def _realm_of(run: JobRun) -> str:
    if run.spec.realm is None:
        raise AgentError(f"job '{run.job_id}' needs `realm:` in its daemon config")
    return run.spec.realm


def sanctions_job(run: JobRun) -> JobResult:
    """`idp-agent sanctions enforce`: apply pending sanctions, re-assert active ones, lift expired ones."""
    build_context = _optional("agent.sanctions.wiring", "build_sanction_context", "sanctions enforce")
    enforce = _optional("agent.appeals.service", "enforce_with_appeals", "sanctions enforce")
    realm = _realm_of(run)
    with session(run) as (gateway, store):
        context = build_context(
            run.config, gateway, store, realm, env=run.env, clock=run.clock, actor=f"daemon:{run.job_id}"
        )
        finished, report = enforce(context)
    changes = len(finished) + len(report.applied) + len(report.reasserted) + len(report.lifted)
    pending = len(report.pending)
    summary = (
        f"sanctions in {realm}: {len(report.applied)} applied, {len(report.reasserted)} re-asserted, "
        f"{len(report.lifted)} ended, {pending} still pending, {report.unchanged} unchanged (run {report.run_id})"
    )
    # A sanction not yet in force is retried next pass, and it is also what an operator must hear about.
    return JobResult("failed" if pending else "succeeded", summary, changes=changes, failures=pending)


def events_job(run: JobRun) -> JobResult:
    """`idp-agent events harvest`: copy the realm's login events into the store (for last-login reviews)."""
    harvest = _optional("agent.review.events", "harvest_events", "events harvest")
    with session(run) as (gateway, store):
        report = harvest(gateway, store, _realm_of(run))
    summary = str(report.describe()).replace("\n", "; ")
    return JobResult("succeeded", summary, changes=int(report.stored))


def campaign_name(realm: str, now: datetime) -> str:
    """One scheduled campaign per realm and day: a catch-up run on the same day finds it made already."""
    return f"{realm}-{now:%Y-%m-%d}"


def reviews_job(run: JobRun) -> JobResult:
    """`idp-agent review start`: snapshot the realm and open its periodic access-review campaign."""
    start = _optional("agent.review.campaigns", "start_campaign", "review campaigns")
    parse_scope = _optional("agent.review.campaign_items", "parse_scope", "review campaigns")
    take_snapshot = _optional("agent.review.snapshot", "take_snapshot", "review campaigns")
    policies = _optional("agent.review.policy", "load_review_policy", "review campaigns")
    policy_file = _optional("agent.review.policy", "REVIEW_POLICY_FILE", "review campaigns")
    realm, now = _realm_of(run), run.clock()
    name = campaign_name(realm, now)
    policy = policies(run.resolve(policy_file), run.env)
    with session(run) as (gateway, store):
        if store.campaigns.get(name) is not None:
            return JobResult("succeeded", f"campaign {name} exists already")
        snapshot = take_snapshot(gateway.read_only(), store, realm, policy=policy, clock=run.clock)
        campaign = start(
            store, snapshot, policy, name=name, scope=parse_scope(run.spec.scope), actor=f"daemon:{run.job_id}",
            due=now + timedelta(seconds=run.spec.due_in),
        )  # fmt: skip
    return JobResult(
        "succeeded", f"campaign {campaign.name}: {campaign.item_count} item(s) in realm {realm}", changes=1
    )


def retention_job(run: JobRun) -> JobResult:
    """`idp-agent store prune`: delete old finished runs, decided staged sets and login events from the store
    (never the journal). Leaver retention of Keycloak users stays inside each sync run (syncs[].retention)."""
    from agent.store.commands import retention_policy
    from agent.store.retention import prune_store

    with open_store(run.config.store) as store:
        report = prune_store(
            store,
            retention_policy(run.config),
            run.clock(),
            actor=f"daemon:{run.job_id}",
            should_stop=run.stopping.is_set,  # SIGTERM: stop between batches; the next run finishes the pass
        )
    return JobResult("succeeded", report.describe(), changes=report.total)


JOBS: dict[JobKind, Callable[[JobRun], JobResult]] = {
    "sync": sync_job,
    "drift": drift_job,
    "sanctions": sanctions_job,
    "events": events_job,
    "reviews": reviews_job,
    "retention": retention_job,
}
