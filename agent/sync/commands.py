"""`idp-agent sync plan | run | approve | explain | runs | show`: the identity sync from the command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from agent.keycloak import KeycloakGateway
from agent.locks import Locked
from agent.settings import resolve_keycloak_connection
from agent.store.db import Store, open_store
from agent.store.locks import store_lock
from agent.store.staging import StagedSet
from agent.sync.agent_config import DEFAULT_CONFIG_FILE, AgentConfig, SyncSpec, load_agent_config
from agent.sync.config_files import load_sync_files
from agent.sync.mapper_file import load_sync_mapper
from agent.sync.mapping import LeftOut, MappingResult, map_sources
from agent.sync.plan import SyncItem, SyncPlan
from agent.sync.runner import Prepared, approve_staged, prepare_sync, run_sync
from agent.sync.sources import build_source

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PENDING = 2  # plan: changes pending; run: removals staged for approval
# People named on one line of the plan before the rest are counted (`--json` lists them all).
NAMED_IN_PLAN = 10
SYMBOLS = {
    "create": "+",
    "update": "~",
    "grant": "+",
    "revoke": "-",
    "enable": "+",
    "disable": "-",
    "confirm-leaver": "?",
    "mark-left": "~",
    "delete": "-",
    "anonymise": "-",
}

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG_FILE,
    show_default=True, help="the agent config file",
)  # fmt: skip
sync_option = click.option("--sync", "sync_name", default=None, help="which sync (needed when several are configured)")
full_read_option = click.option(
    "--full-read",
    is_flag=True,
    help="read every user in full, not only those whose names, email or state changed since the last run "
    "(catches attributes changed by hand; runs do this every full_read_every anyway)",
)


@contextmanager
def _session(config_path: Path, *, read_only: bool) -> Iterator[tuple[AgentConfig, KeycloakGateway, Store]]:
    config = load_agent_config(config_path, os.environ)
    gateway = KeycloakGateway.connect(resolve_keycloak_connection())
    store = open_store(config.store)
    try:
        yield config, gateway.read_only() if read_only else gateway, store
    finally:
        store.close()
        gateway.close()


def _checked_sync(config: AgentConfig, sync_name: str | None) -> SyncSpec:
    """The sync, its mapper read and checked against its sources before the store is opened (or made) or
    Keycloak asked anything: config errors first, all of them, nothing touched."""
    sync = config.sync(sync_name)
    load_sync_files(config, sync, os.environ)
    return sync


@contextmanager
def _one_writer(config_path: Path, sync_name: str | None) -> Iterator[None]:
    """Hold the sync's lock; when another run (CLI or daemon) holds it, say so and exit 0."""
    config = load_agent_config(config_path, os.environ)
    sync = _checked_sync(config, sync_name)
    name = sync.name
    try:
        with open_store(config.store) as store, store_lock(store, f"sync-{name}"):
            yield
    except Locked as locked:
        click.echo(str(locked))
        sys.exit(EXIT_OK)


def render_item(item: SyncItem) -> str:
    line = f"  {SYMBOLS[item.action]} {item.action} {item.username} ({item.external_id})"
    if item.fields:
        line += ": " + ", ".join(f"{name}: {old} -> {new}" for name, old, new in item.fields)
    if item.grants:
        line += ": " + ", ".join(item.grants.describe())
    if item.reason and not item.fields:
        line += f"  [{item.reason}]"
    return line


def render_plan(prepared: Prepared) -> str:
    plan = prepared.plan
    lines = [f"sync {plan.source} -> realm {plan.realm}"]
    for name, read in sorted(prepared.reads.items()):
        state = "complete" if read.complete else f"INCOMPLETE: {read.problem}"
        lines.append(f"  source {name}: {len(read.records)} records, {state}")
    if not plan.leaver_phase:
        lines.append("  leaver phase skipped: a source read was incomplete")
    lines += [render_item(item) for item in plan.items]
    lines += [f"  ! rejected {r.external_id or r.where}: {r.reason}" for r in plan.rejected]
    lines += [f"  = held {h.username} ({h.external_id}): {h.reason}" for h in plan.held]
    lines += no_account_lines(prepared.mapping, plan)
    counts = ", ".join(f"{count} {action}" for action, count in sorted(plan.counts().items()) if count)
    lines.append(f"Plan: {counts}." if counts else "Plan: nothing to do.")
    for reason in prepared.verdict.reasons:
        lines.append(f"SAFETY: {reason}")
    return "\n".join(lines)


def no_account_lines(mapping: MappingResult, plan: SyncPlan) -> list[str]:
    """People the sources list who get no account this run, on purpose (not errors): hires not started yet, each
    with when they become users, then the others counted by why."""
    hires = _one_per_person(item for item in mapping.left_out if item.kind == "future-start")
    lines = [f"  . not yet {item.external_id}: {item.reason}" for item in hires[:NAMED_IN_PLAN]]
    if len(hires) > NAMED_IN_PLAN:
        lines.append(f"  . and {len(hires) - NAMED_IN_PLAN} more hires not started yet")
    groups = [
        ("left as they are: not in an incomplete read", _ids_of(mapping.left_out, "incomplete-source")),
        ("only in sources that do not create users", _ids_of(mapping.left_out, "no-creating-source")),
        ("inactive in the sources and never created: nothing to do", list(plan.never_created)),
    ]
    lines += [f"  . {len(ids)} {why}: {_named(ids)}" for why, ids in groups if ids]
    return lines


def _one_per_person(items: Iterable[LeftOut]) -> list[LeftOut]:
    """The first entry of each person (a person left out has one entry per record)."""
    first: dict[str, LeftOut] = {}
    for item in items:
        first.setdefault(item.external_id, item)
    return list(first.values())


def _ids_of(left_out: Sequence[LeftOut], kind: str) -> list[str]:
    return sorted({item.external_id for item in left_out if item.kind == kind})


def _named(ids: Sequence[str]) -> str:
    named = ", ".join(ids[:NAMED_IN_PLAN])
    return named if len(ids) <= NAMED_IN_PLAN else f"{named} and {len(ids) - NAMED_IN_PLAN} more"


def plan_as_json(prepared: Prepared) -> dict[str, Any]:
    plan: SyncPlan = prepared.plan
    return {
        "sync": plan.source,
        "realm": plan.realm,
        "leaver_phase": plan.leaver_phase,
        "reads": {
            name: {"records": len(read.records), "complete": read.complete, "problem": read.problem}
            for name, read in prepared.reads.items()
        },
        "items": [
            {
                "action": item.action, "external_id": item.external_id, "username": item.username,
                "fields": [list(f) for f in item.fields], "grants": item.grants.describe(), "reason": item.reason,
            }
            for item in plan.items
        ],
        "rejected": [{"external_id": r.external_id, "where": r.where, "reason": r.reason} for r in plan.rejected],
        "held": [{"external_id": h.external_id, "username": h.username, "reason": h.reason} for h in plan.held],
        "left_out": [
            {"external_id": item.external_id, "source": item.source, "where": item.where, "kind": item.kind,
             "reason": item.reason}
            for item in prepared.mapping.left_out
        ],
        "never_created": list(plan.never_created),
        "counts": plan.counts(),
        "safety": {
            "stop": prepared.verdict.stop, "stage": prepared.verdict.stage, "reasons": list(prepared.verdict.reasons),
        },
    }  # fmt: skip


@click.group("sync")
def sync_group() -> None:
    """Keep Keycloak in step with HR feeds and LDAP: joiners, movers, leavers, with safety brakes."""


@sync_group.command("plan")
@config_option
@sync_option
@click.option("--json", "as_json", is_flag=True)
@full_read_option
def plan_command(config_path: Path, sync_name: str | None, as_json: bool, full_read: bool) -> None:
    """Show what a run would do. Exit 0 nothing to do, 2 changes pending, 1 error (or a safety brake)."""
    _checked_sync(load_agent_config(config_path, os.environ), sync_name)
    with _session(config_path, read_only=True) as (config, gateway, store):
        prepared = prepare_sync(
            config, config.sync(sync_name), gateway, store, now=datetime.now(UTC), env=os.environ, full_read=full_read
        )
    click.echo(json.dumps(plan_as_json(prepared), indent=2, sort_keys=True) if as_json else render_plan(prepared))
    if prepared.verdict.stop:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if prepared.plan.is_empty else EXIT_PENDING)


def _terminal_progress(done: int, total: int) -> None:
    """A one-line progress bar on stderr, redrawn in place (only when stderr is a terminal)."""
    width = 30
    filled = width * done // max(total, 1)
    click.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} steps", err=True, nl=done == total)


@sync_group.command("run")
@config_option
@sync_option
@click.option("--json", "as_json", is_flag=True, help="print the run as JSON (also the default off a terminal: no bar)")
@full_read_option
def run_command(config_path: Path, sync_name: str | None, as_json: bool, full_read: bool) -> None:
    """Run the sync once. Exit 0 done (or skipped: another run holds the lock), 2 removals staged, 1 failed."""
    progress = _terminal_progress if sys.stderr.isatty() and not as_json else None
    with _one_writer(config_path, sync_name), _session(config_path, read_only=False) as (config, gateway, store):
        run, prepared, _ = run_sync(
            config, config.sync(sync_name), gateway, store, now=datetime.now(UTC), env=os.environ, progress=progress,
            full_read=full_read,
        )  # fmt: skip
    if as_json:
        summary = {"run": run.id, "status": run.status, "counts": dict(run.counts), "summary": run.summary}
        click.echo(json.dumps({**summary, "plan": plan_as_json(prepared)}, indent=2, sort_keys=True))
    else:
        click.echo(render_plan(prepared))
        counts = ", ".join(f"{key}={value}" for key, value in sorted(run.counts.items())) or "nothing to do"
        click.echo(f"run {run.id}: {run.status} ({counts})")
        if run.summary:
            click.echo(run.summary)
    sys.exit({"succeeded": EXIT_OK, "staged": EXIT_PENDING}.get(run.status, EXIT_ERROR))


@sync_group.command("approve")
@click.argument("run_id")
@config_option
@sync_option
@click.option("--approver", default=lambda: os.environ.get("USER", "operator"), help="who approves (journalled)")
def approve_command(run_id: str, config_path: Path, sync_name: str | None, approver: str) -> None:
    """Apply exactly the removal set a run staged."""
    with _one_writer(config_path, sync_name), _session(config_path, read_only=False) as (config, gateway, store):
        run, outcome = approve_staged(
            run_id, approver=approver, config=config, sync=config.sync(sync_name), gateway=gateway, store=store,
            now=datetime.now(UTC), env=os.environ,
        )  # fmt: skip
    click.echo(f"run {run.id}: {run.status}; {len(outcome.results)} staged removal(s) processed")
    sys.exit(EXIT_OK if run.status == "succeeded" else EXIT_ERROR)


@sync_group.command("explain")
@click.argument("user")
@config_option
@sync_option
def explain_command(user: str, config_path: Path, sync_name: str | None) -> None:
    """Why a person has each field and grant: every rule that granted, or did not grant, something."""
    config = load_agent_config(config_path, os.environ)
    sync = config.sync(sync_name)
    mapper = load_sync_mapper(config.mapper_path(sync), os.environ, sync.name, sync.sources)
    reads = [build_source(cfg).read() for cfg in config.sources if cfg.name in sync.sources]
    mapping = map_sources(reads, mapper, datetime.now(UTC))
    wanted = user.lower()
    for person in mapping.users:
        if wanted in {person.external_id.lower(), person.username.lower(), (person.email or "").lower()}:
            click.echo(f"{person.username} ({person.external_id}), status {person.status}")
            for step in person.trace:
                click.echo(f"  {'+' if step.granted else ' '} {step.what}: {step.because}")
            return
    for rejected in mapping.rejected:
        if rejected.external_id and rejected.external_id.lower() == wanted:
            click.echo(f"{user}: rejected at {rejected.where}: {rejected.reason}")
            return
    for item in mapping.left_out:
        if item.external_id.lower() == wanted:
            where = f"record {item.source} at {item.where}"
            click.echo(f"{user}: no account this run ({item.kind}), {where}: {item.reason}")
            return
    click.echo(f"{user}: not found in the sources of sync '{sync.name}'", err=True)
    sys.exit(EXIT_ERROR)


@sync_group.command("runs")
@config_option
@click.option("--limit", default=20, show_default=True)
def runs_command(config_path: Path, limit: int) -> None:
    """The latest runs, newest first."""
    config = load_agent_config(config_path, os.environ)
    with open_store(config.store) as store:
        for run in store.runs.list_runs(limit=limit):
            counts = ", ".join(f"{k}={v}" for k, v in sorted(run.counts.items()))
            click.echo(f"{run.id}  {run.kind:12} {run.realm:16} {run.status:9} {counts}")


@sync_group.command("show")
@click.argument("run_id")
@config_option
def show_command(run_id: str, config_path: Path) -> None:
    """One run's journal: each person's action, the fields before and after, the grants, with counts."""
    config = load_agent_config(config_path, os.environ)
    with open_store(config.store) as store:
        run = store.runs.get_run(run_id)
        if run is None:
            click.echo(f"no run {run_id}", err=True)
            sys.exit(EXIT_ERROR)
        click.echo(f"run {run.id}: {run.kind} on {run.realm}, {run.status}, started {run.started_at.isoformat()}")
        if run.summary:
            click.echo(f"  {run.summary}")
        staged = store.staging.staged(run_id)
        if staged is not None:
            click.echo(f"  {staged_set_state(staged, datetime.now(UTC))}")
        for item in store.runs.run_items(run_id):
            changes = ", ".join(
                f"{k}: {item.before.get(k)} -> {v}" for k, v in item.after.items() if k != "external_id"
            )
            grants = ", ".join([f"+{g}" for g in item.granted] + [f"-{g}" for g in item.revoked])
            detail = "; ".join(part for part in (changes, grants, item.error) if part)
            click.echo(f"  {item.seq:4} {item.action:8} {item.outcome:8} {item.subject}  {detail}")
        click.echo("counts: " + ", ".join(f"{k}={v}" for k, v in sorted(run.counts.items())))


def staged_set_state(staged: StagedSet, now: datetime) -> str:
    """Where a run's staged removal set stands: approved, expired (superseded), or awaiting approval."""
    size = f"staged set of {len(staged.items)} removal(s)"
    if staged.approved_at is not None:
        return f"{size}: approved by {staged.approved_by} at {staged.approved_at.isoformat()}"
    if staged.superseded_by is not None:
        return f"{size}: superseded by run {staged.superseded_by}, which computed the removals again"
    if staged.expires_at is not None and staged.expired(now):
        return f"{size}: expired at {staged.expires_at.isoformat()}"
    return f"{size}: awaiting approval (idp-agent sync approve {staged.run_id})"
