"""`idp-agent appeal open | acknowledge | decide | list`: appeals against sanctions from the command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from agent.appeals.deadlines import next_deadline
from agent.appeals.decisions import AppealError
from agent.appeals.service import (
    DecidedAppeal,
    ListedAppeal,
    acknowledge_appeal,
    decide_appeal,
    list_appeals,
    open_appeal,
    require_appeal,
)
from agent.audit.commands import resolve_store_url
from agent.keycloak import KeycloakGateway
from agent.locks import Locked
from agent.notify import build_notifier
from agent.sanctions.context import SanctionContext
from agent.sanctions.policy import DEFAULT_POLICY_FILE, SanctionPolicy, load_sanction_policy
from agent.sanctions.wiring import policy_path_for
from agent.settings import resolve_keycloak_connection
from agent.store import Store, system_clock
from agent.store.appeals import Decision
from agent.store.db import open_store
from agent.store.locks import store_lock
from agent.sync.agent_config import DEFAULT_CONFIG_FILE, AgentConfig, optional_agent_config

EXIT_OK = 0
EXIT_PENDING = 2  # decided, but the sanction's end is not yet verified in Keycloak (enforce retries)

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG_FILE,
    show_default=True, help="the agent config file (its `store:` and `smtp:`)",
)  # fmt: skip
store_option = click.option("--store", "store_url", default=None, help="the store URL (overrides the config's)")
policy_option = click.option(
    "--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="the sanction policy (default: policies/sanctions.yaml beside the config)",
)  # fmt: skip
actor_option = click.option(
    "--actor", default=lambda: os.environ.get("USER", "operator"), help="who acts (journalled)", show_default="$USER"
)


def _agent_config(config_path: Path) -> AgentConfig | None:
    """The agent config when the file exists (for its policy location and smtp:); appeals work without one."""
    return optional_agent_config(config_path, os.environ)


def _policy(config: AgentConfig | None, policy_path: Path | None) -> SanctionPolicy:
    """--policy, else policies/sanctions.yaml beside the config (as `sanction` reads it), else in this folder."""
    path = policy_path or (policy_path_for(config) if config is not None else DEFAULT_POLICY_FILE)
    return load_sanction_policy(path, os.environ)


@contextmanager
def _store(config_path: Path, store_url: str | None) -> Iterator[Store]:
    with open_store(resolve_store_url(config_path, store_url)) as store:
        yield store


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def appeal_line(item: ListedAppeal) -> str:
    appeal = item.appeal
    line = f"{appeal.id} {appeal.sanction_id} {appeal.username}@{appeal.realm} opened {_time(appeal.opened_at)}: "
    line += appeal.status
    due = next_deadline(appeal)
    if due is not None:
        line += f", due {_time(due)}"
    if item.overdue:
        line += "  OVERDUE: " + "; ".join(item.overdue)
    return line


def appeal_json(item: ListedAppeal) -> dict[str, Any]:
    appeal = item.appeal

    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "id": appeal.id, "sanction_id": appeal.sanction_id, "realm": appeal.realm, "username": appeal.username,
        "text": appeal.text, "opened_by": appeal.opened_by, "opened_at": iso(appeal.opened_at),
        "acknowledge_due": iso(appeal.acknowledge_due), "decide_due": iso(appeal.decide_due),
        "acknowledged_at": iso(appeal.acknowledged_at), "acknowledged_by": appeal.acknowledged_by,
        "decided_at": iso(appeal.decided_at), "decided_by": appeal.decided_by, "decision": appeal.decision,
        "reduced_to": appeal.reduced_to, "note": appeal.note, "status": appeal.status,
        "overdue": list(item.overdue),
    }  # fmt: skip


def chosen_decision(uphold: bool, overturn: bool, reduce_to: str | None) -> Decision:
    flags: tuple[tuple[Decision, bool], ...] = (("uphold", uphold), ("overturn", overturn))
    chosen = [name for name, on in flags if on]
    if reduce_to is not None:
        chosen.append("reduce")
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --uphold, --overturn and --reduce LEVEL")
    return chosen[0]


def decided_message(result: DecidedAppeal) -> str:
    appeal, sanction = result.appeal, result.sanction
    message = f"appeal {appeal.id}: {appeal.status}; sanction {sanction.id} is {sanction.display_state}"
    if result.replacement is not None:
        message += f"; replaced by {result.replacement.id} ({result.replacement.level}, {result.replacement.state})"
    if result.restore_pending:
        message += f"\nrestore pending: {result.restore_pending} (the next `idp-agent sanctions enforce` retries)"
    return message


@click.group("appeal")
def appeal_group() -> None:
    """Appeals against sanctions: open, acknowledge, decide (uphold, overturn, reduce), list with deadlines."""


@appeal_group.command("open")
@click.argument("sanction_id")
@click.option("--text", required=True, help="the appellant's words (kept in the appeal, not in the journal)")
@config_option
@store_option
@policy_option
@actor_option
def open_command(
    *, sanction_id: str, text: str, config_path: Path, store_url: str | None, policy_path: Path | None, actor: str
) -> None:
    """Open an appeal against a sanction in force; deadlines come from the policy."""
    policy = _policy(_agent_config(config_path), policy_path)
    with _store(config_path, store_url) as store:
        appeal = open_appeal(store, policy.appeals, sanction_id, text=text, actor=actor)
    click.echo(
        f"appeal {appeal.id} opened against {appeal.sanction_id} ({appeal.username}); "
        f"acknowledge by {_time(appeal.acknowledge_due)}, decide by {_time(appeal.decide_due)}"
    )


@appeal_group.command("acknowledge")
@click.argument("appeal_id")
@config_option
@store_option
@actor_option
def acknowledge_command(appeal_id: str, config_path: Path, store_url: str | None, actor: str) -> None:
    """Confirm that an appeal was received (meets the acknowledge deadline)."""
    with _store(config_path, store_url) as store:
        appeal = acknowledge_appeal(store, appeal_id, actor=actor)
    click.echo(
        f"appeal {appeal.id}: acknowledged {_time(appeal.acknowledged_at)}; decide by {_time(appeal.decide_due)}"
    )


@appeal_group.command("decide")
@click.argument("appeal_id")
@click.option("--uphold", is_flag=True, help="the sanction stands")
@click.option("--overturn", is_flag=True, help="the sanction ends as overturned; access is restored exactly")
@click.option("--reduce", "reduce_to", metavar="LEVEL", default=None, help="replace it by this milder level")
@click.option("--note", required=True, help="the reasons for the decision (journalled)")
@config_option
@store_option
@policy_option
@actor_option
def decide_command(
    *, appeal_id: str, uphold: bool, overturn: bool, reduce_to: str | None, note: str, config_path: Path,
    store_url: str | None, policy_path: Path | None, actor: str,
) -> None:  # fmt: skip
    """Decide an appeal. Exit 0 done, 2 decided but the restore is not yet verified in Keycloak, 1 error."""
    decision = chosen_decision(uphold, overturn, reduce_to)
    if not note.strip():
        raise click.UsageError("--note must say why")
    config = _agent_config(config_path)
    policy = _policy(config, policy_path)
    notifier = build_notifier(config) if config is not None else None
    with _store(config_path, store_url) as store:
        appeal = require_appeal(store, appeal_id)
        with _sanction_writer(store, appeal.realm):
            gateway = KeycloakGateway.connect(resolve_keycloak_connection())
            try:
                context = SanctionContext(gateway, store, appeal.realm, policy, notifier, system_clock, actor=actor)
                result = decide_appeal(context, appeal.id, decision, note=note, actor=actor, reduce_to=reduce_to)
            finally:
                gateway.close()
    click.echo(decided_message(result))
    sys.exit(EXIT_PENDING if result.restore_pending else EXIT_OK)


@contextmanager
def _sanction_writer(store: Store, realm: str) -> Iterator[None]:
    """The realm's sanction lock (the one `sanction` and `sanctions enforce` hold), taken before the decision
    is recorded: a decision never races an enforcement pass over the same sanction."""
    try:
        with store_lock(store, f"sanctions-{realm}"):
            yield
    except Locked as locked:
        raise AppealError(
            f"not decided: {locked}", hint="another sanction writer is busy with this realm; decide again shortly"
        ) from None


@appeal_group.command("list")
@click.option("--overdue", "overdue_only", is_flag=True, help="only appeals past a deadline")
@click.option("--realm", default=None, help="only appeals in this realm")
@click.option("--json", "as_json", is_flag=True)
@config_option
@store_option
def list_command(
    overdue_only: bool, realm: str | None, as_json: bool, config_path: Path, store_url: str | None
) -> None:
    """Appeals in the order opened, with their next deadline; overdue ones flagged."""
    with _store(config_path, store_url) as store:
        listed = list_appeals(store, store.db.now(), realm=realm, overdue_only=overdue_only)
    if as_json:
        click.echo(json.dumps([appeal_json(item) for item in listed], indent=2, sort_keys=True))
        return
    for item in listed:
        click.echo(appeal_line(item))
    overdue = sum(1 for item in listed if item.overdue)
    click.echo(f"{len(listed)} appeal(s), {overdue} overdue")
