"""`idp-agent sanction issue | lift | list | show` and `idp-agent sanctions enforce`.

The store and the notifier come from the agent config (like `sync`), the ladder from policies/sanctions.yaml
beside it (or --policy), the realm from --realm or else the realm of the config's only sync.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from agent.appeals.service import enforce_with_appeals
from agent.config.values import parse_duration
from agent.errors import ConfigError
from agent.keycloak import KeycloakGateway
from agent.locks import Locked
from agent.sanctions.context import SanctionContext
from agent.sanctions.live import find_user
from agent.sanctions.service import (
    EnforceReport,
    SanctionError,
    issue_sanction,
    lift_sanction,
)
from agent.sanctions.wiring import build_sanction_context
from agent.settings import resolve_keycloak_connection
from agent.store.clock import system_clock
from agent.store.db import Store, open_store
from agent.store.locks import store_lock
from agent.store.sanctions import OPEN_STATES, Sanction
from agent.sync.agent_config import DEFAULT_CONFIG_FILE, AgentConfig, load_agent_config
from agent.sync.mapper_file import load_mapper

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PENDING = 2  # recorded, but not yet verified effective (or restored) in Keycloak

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG_FILE,
    show_default=True, help="the agent config file (store, smtp, syncs)",
)  # fmt: skip
realm_option = click.option("--realm", default=None, help="the realm (default: the realm of the config's only sync)")
policy_option = click.option(
    "--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="the sanction policy (default: policies/sanctions.yaml beside the config)",
)  # fmt: skip
actor_option = click.option("--actor", default=lambda: os.environ.get("USER", "operator"), help="who acts (journalled)")


def resolve_realm(config: AgentConfig, realm: str | None) -> str:
    """--realm, else the realm the config's only sync feeds."""
    if realm:
        return realm
    if len(config.syncs) == 1:
        return load_mapper(config.mapper_path(config.syncs[0]), os.environ).realm
    raise ConfigError("which realm? the config has no single sync to take it from", hint="pass --realm REALM")


@contextmanager
def _context(config_path: Path, realm: str | None, policy_path: Path | None, actor: str) -> Iterator[SanctionContext]:
    config = load_agent_config(config_path, os.environ)
    name = resolve_realm(config, realm)
    gateway = KeycloakGateway.connect(resolve_keycloak_connection())
    store = open_store(config.store)
    try:
        context = build_sanction_context(
            config, gateway, store, name, env=os.environ, clock=system_clock, actor=actor, policy_path=policy_path
        )
        with _one_writer(store, name):
            yield context
    finally:
        store.close()
        gateway.close()


@contextmanager
def _one_writer(store: Store, realm: str) -> Iterator[None]:
    """One sanction writer per realm (CLI or daemon); another one running is reported, exit 0."""
    try:
        with store_lock(store, f"sanctions-{realm}"):
            yield
    except Locked as locked:
        click.echo(str(locked))
        sys.exit(EXIT_OK)


@contextmanager
def _store(config_path: Path) -> Iterator[tuple[AgentConfig, Store]]:
    config = load_agent_config(config_path, os.environ)
    with open_store(config.store) as store:
        yield config, store


def parse_until(text: str) -> datetime:
    """A date (midnight UTC) or an ISO time; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a date (2026-12-31) or an ISO time", param_hint="--until") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_for(text: str) -> timedelta:
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--for") from None


def _until_text(sanction: Sanction) -> str:
    return sanction.until.isoformat(timespec="minutes") if sanction.until else "until lifted"


def sanction_line(sanction: Sanction) -> str:
    escalated = f" (asked: {sanction.requested_level})" if sanction.requested_level != sanction.level else ""
    return (
        f"{sanction.id}  {sanction.display_state:<10} {sanction.level + escalated:<12} {sanction.username:<16} "
        f"{sanction.reason_code:<14} issued {sanction.issued_at.isoformat(timespec='minutes')}  {_until_text(sanction)}"
    )


def sanction_json(sanction: Sanction) -> dict[str, Any]:
    def time(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "id": sanction.id, "realm": sanction.realm, "user_id": sanction.user_id, "username": sanction.username,
        "level": sanction.level, "requested_level": sanction.requested_level, "reason_code": sanction.reason_code,
        "note": sanction.note, "evidence": list(sanction.evidence), "issued_by": sanction.issued_by,
        "issued_at": time(sanction.issued_at), "until": time(sanction.until), "state": sanction.state,
        "ending": sanction.ending, "problem": sanction.problem, "attempts": sanction.attempts,
        "verified_at": time(sanction.verified_at), "ended_at": time(sanction.ended_at), "ended_by": sanction.ended_by,
        "end_note": sanction.end_note, "changes": sanction.changes.to_json(),
    }  # fmt: skip


def _exit_for(sanction: Sanction) -> None:
    if sanction.problem:
        click.echo(f"PENDING: {sanction.problem} (the next `idp-agent sanctions enforce` retries)", err=True)
        sys.exit(EXIT_PENDING)
    sys.exit(EXIT_OK)


@click.group("sanction")
def sanction_group() -> None:
    """Issue, lift and list sanctions (warning, restriction, suspension, ban: see policies/sanctions.yaml)."""


@sanction_group.command("issue")
@click.argument("user")
@click.option("--level", required=True, help="a level of the policy, e.g. warning, restriction, suspension, ban")
@click.option("--reason", "reason_code", required=True, help="a reason code of the policy, e.g. spam")
@click.option("--for", "length", default=None, help="how long, e.g. 7d (default: the level's duration)")
@click.option("--until", default=None, help="until this date or ISO time (instead of --for)")
@click.option("--note", default="", help="what happened (journalled)")
@click.option("--evidence", multiple=True, help="a link to the evidence (repeatable)")
@realm_option
@config_option
@policy_option
@actor_option
def issue_command(
    *, user: str, level: str, reason_code: str, length: str | None, until: str | None, note: str,
    evidence: tuple[str, ...], realm: str | None, config_path: Path, policy_path: Path | None, actor: str,
) -> None:  # fmt: skip
    """Sanction USER (username, e-mail or id) and enforce it at once. Exit 0 in force, 2 recorded but still
    pending in Keycloak, 1 error (nothing recorded)."""
    if length and until:
        raise click.UsageError("give --for or --until, not both")
    duration = parse_for(length) if length else None
    end = parse_until(until) if until else None
    with _context(config_path, realm, policy_path, actor) as context:
        sanction = issue_sanction(
            context, user, level=level, reason_code=reason_code, duration=duration, until=end, note=note,
            evidence=evidence,
        )  # fmt: skip
    click.echo(sanction_line(sanction))
    _exit_for(sanction)


@sanction_group.command("lift")
@click.argument("sanction_id")
@click.option("--note", required=True, help="why it is lifted (journalled)")
@config_option
@policy_option
@actor_option
def lift_command(sanction_id: str, note: str, config_path: Path, policy_path: Path | None, actor: str) -> None:
    """End a sanction now and restore exactly what it changed. Exit 0 restored, 2 restore pending, 1 error."""
    with _store(config_path) as (_, store):
        found = store.sanctions.get(sanction_id)
    if found is None:
        raise SanctionError(f"no sanction {sanction_id}", hint="`idp-agent sanction list` shows them")
    with _context(config_path, found.realm, policy_path, actor) as context:
        sanction = lift_sanction(context, sanction_id, actor=actor, note=note)
    click.echo(sanction_line(sanction))
    _exit_for(sanction)


@sanction_group.command("list")
@click.option("--active", is_flag=True, help="only open sanctions (pending, active, being lifted)")
@click.option("--user", default=None, help="only this user's (username, e-mail or id)")
@click.option("--realm", default=None, help="only this realm's")
@click.option("--json", "as_json", is_flag=True)
@config_option
def list_command(active: bool, user: str | None, realm: str | None, as_json: bool, config_path: Path) -> None:
    """The ledger, oldest first."""
    with _store(config_path) as (config, store):
        sanctions = store.sanctions.list(realm=realm, states=OPEN_STATES if active else None)
        if user is not None:
            sanctions = _of_user(config, sanctions, user, realm)
    if as_json:
        click.echo(json.dumps([sanction_json(s) for s in sanctions], indent=2, sort_keys=True))
        return
    for sanction in sanctions:
        click.echo(sanction_line(sanction))
    click.echo(f"{len(sanctions)} sanction(s)")


def _of_user(config: AgentConfig, sanctions: list[Sanction], user: str, realm: str | None) -> list[Sanction]:
    """Match by the ledger's id and username first; an e-mail address is resolved in Keycloak."""
    wanted = user.lower()
    matched = [s for s in sanctions if wanted in {s.user_id.lower(), s.username.lower()}]
    if matched or "@" not in user:
        return matched
    gateway = KeycloakGateway.connect(resolve_keycloak_connection()).read_only()
    try:
        found = find_user(gateway, resolve_realm(config, realm), user)
    finally:
        gateway.close()
    return [s for s in sanctions if found is not None and s.user_id == found.id]


@sanction_group.command("show")
@click.argument("sanction_id")
@click.option("--json", "as_json", is_flag=True)
@config_option
def show_command(sanction_id: str, as_json: bool, config_path: Path) -> None:
    """One sanction: who, why, until when, its state and the exact changes it made."""
    with _store(config_path) as (_, store):
        sanction = store.sanctions.get(sanction_id)
        entries = [e for e in store.journal.entries() if e.details.get("sanction_id") == sanction_id]
    if sanction is None:
        raise SanctionError(f"no sanction {sanction_id}", hint="`idp-agent sanction list` shows them")
    if as_json:
        click.echo(json.dumps(sanction_json(sanction), indent=2, sort_keys=True))
        return
    body = sanction_json(sanction)
    for key in ("id", "realm", "username", "user_id", "level", "requested_level", "reason_code", "note", "evidence",
                "issued_by", "issued_at", "until", "state", "ending", "problem", "attempts", "verified_at", "ended_at",
                "ended_by", "end_note"):  # fmt: skip
        if body[key] not in (None, "", []):
            click.echo(f"{key:>16}: {body[key]}")
    click.echo("changes made (lifting restores exactly these):")
    for key, value in sanction.changes.to_json().items():
        if value not in (None, []):
            click.echo(f"  {key}: {json.dumps(value, sort_keys=True)}")
    click.echo("journal:")
    for entry in entries:
        outcome = entry.details.get("outcome") or ""  # a write's intent, then its outcome
        at = entry.at.isoformat(timespec="seconds")
        click.echo(f"  {entry.seq:>5} {at} {entry.actor:<12} {entry.action} {outcome}".rstrip())


@click.group("sanctions")
def sanctions_group() -> None:
    """The enforcement pass (the daemon runs it on a schedule)."""


@sanctions_group.command("enforce")
@realm_option
@config_option
@policy_option
@click.option("--json", "as_json", is_flag=True)
def enforce_command(realm: str | None, config_path: Path, policy_path: Path | None, as_json: bool) -> None:
    """Apply pending sanctions, re-assert active ones (undoing changes made by hand), lift expired ones.
    Exit 0 all in force or restored, 2 some still pending (retried next pass), 1 error."""
    with _context(config_path, realm, policy_path, "idp-agent") as context:
        finished, report = enforce_with_appeals(context)
    if as_json:
        click.echo(json.dumps({**report_json(report), "appeal_decisions_finished": [
            done.appeal.id for done in finished]}, indent=2, sort_keys=True))  # fmt: skip
    else:
        for done in finished:
            click.echo(f"  finished appeal {done.appeal.id}: {done.appeal.status} (sanction {done.sanction.id})")
        click.echo(report_text(report))
    sys.exit(EXIT_OK if report.ok else EXIT_PENDING)


def report_json(report: EnforceReport) -> dict[str, Any]:
    return {
        "run": report.run_id, "applied": report.applied, "reasserted": report.reasserted, "lifted": report.lifted,
        "pending": report.pending, "unchanged": report.unchanged,
    }  # fmt: skip


def report_text(report: EnforceReport) -> str:
    lines = [f"  applied {sanction_id}" for sanction_id in report.applied]
    lines += [f"  re-asserted {sanction_id} (changes made by hand undone)" for sanction_id in report.reasserted]
    lines += [f"  ended {sanction_id}" for sanction_id in report.lifted]
    lines += [f"  PENDING {sanction_id}: {problem}" for sanction_id, problem in report.pending.items()]
    counts = (
        f"{len(report.applied)} applied, {len(report.reasserted)} re-asserted, {len(report.lifted)} ended, "
        f"{len(report.pending)} pending, {report.unchanged} unchanged"
    )
    return "\n".join([f"sanctions enforce: run {report.run_id}", *lines, counts])
