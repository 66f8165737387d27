"""`idp-agent review start | export | decide | close | list`: access-review campaigns from the command line."""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import click

from agent.errors import ConfigError, SafetyStop
from agent.keycloak import KeycloakGateway
from agent.locks import Locked
from agent.paths import state_dir
from agent.review.campaign_items import parse_scope
from agent.review.campaigns import (
    CloseReport,
    check_campaign_name,
    check_threshold,
    close_campaign,
    open_campaign,
    plan_close,
    record_sheet,
    reviewer_sheet,
    start_campaign,
)
from agent.review.evidence import sha256_of, write_evidence
from agent.review.policy import REVIEW_POLICY_FILE, load_review_policy
from agent.review.report_commands import DEFAULT_POLICIES, config_option, open_agent_store, require_realm
from agent.review.snapshot import take_snapshot
from agent.settings import resolve_keycloak_connection
from agent.store.campaigns import Campaign
from agent.store.db import Store
from agent.store.locks import store_lock
from agent.sync.guard import MAX_REMOVAL_RATIO, MAX_REMOVALS, SafetyLimits

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PENDING = 2

campaign_option = click.option("--campaign", "name", required=True, help="the campaign's name")
actor_option = click.option(
    "--actor", default=lambda: os.environ.get("USER", "operator"), help="who does this (journalled)"
)


def parse_due(text: str | None) -> datetime | None:
    """`2026-12-31` (the end of that day, UTC) or an ISO time with its zone."""
    if text is None:
        return None
    try:
        if len(text) == len("YYYY-MM-DD"):
            return datetime.combine(date.fromisoformat(text), time.max, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a date (YYYY-MM-DD) or an ISO time") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"'{text}' has no time zone; add Z or +HH:MM")
    return moment


@click.group("review")
def review_group() -> None:
    """Access-review campaigns: reviewers keep or revoke each grant; revocations are applied and evidenced."""


@review_group.command("start")
@campaign_option
@click.option("--realm", required=True, help="the realm to review")
@click.option("--scope", default="privileged", show_default=True, help="privileged, all, role:NAME or group:/PATH")
@click.option("--due", default=None, help="due date, YYYY-MM-DD (end of day, UTC) or an ISO time")
@click.option("--default", "default_decision", type=click.Choice(["keep", "revoke"]), default="keep", show_default=True,
              help="the decision for items nobody answers by the close")  # fmt: skip
@click.option("--dormant-days", type=click.IntRange(min=1), default=None,
              help="recommend revoking after this many days without a login [default: review.yaml]")  # fmt: skip
@click.option(
    "--policies", "policies_dir", type=click.Path(path_type=Path), default=DEFAULT_POLICIES, show_default=True
)
@config_option
@actor_option
def start_command(  # noqa: PLR0917  # click passes options positionally
    name: str, realm: str, scope: str, due: str | None, default_decision: str, dormant_days: int | None,
    policies_dir: Path, config_path: Path, actor: str,
) -> None:  # fmt: skip
    """Snapshot the realm and create one item per user x removable grant in scope, each with a reviewer."""
    chosen_scope = parse_scope(scope)
    due_at = parse_due(due)
    policy = load_review_policy(policies_dir / REVIEW_POLICY_FILE.name, os.environ)
    check_campaign_name(name)
    gateway = KeycloakGateway.connect(resolve_keycloak_connection()).read_only()
    try:
        require_realm(gateway, realm)
        with open_agent_store(config_path) as store:
            snapshot = take_snapshot(gateway, store, realm, policy=policy)
            campaign = start_campaign(
                store, snapshot, policy, name=name, scope=chosen_scope, actor=actor, due=due_at,
                default_decision="revoke" if default_decision == "revoke" else "keep", dormant_days=dormant_days,
            )  # fmt: skip
            items = store.campaigns.items(campaign.name)
    finally:
        gateway.close()
    reviewers = sorted({item.reviewer for item in items})
    revoke = sum(1 for item in items if item.recommendation == "revoke")
    click.echo(
        f"campaign {campaign.name}: {campaign.item_count} item(s) in realm {realm} (scope {campaign.scope}), "
        f"{revoke} recommended for revocation; reviewers: {', '.join(reviewers) or 'none'}"
    )


@review_group.command("export")
@campaign_option
@click.option("--reviewer", required=True, help="whose items")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@config_option
def export_command(name: str, reviewer: str, out_file: Path, config_path: Path) -> None:
    """Write a reviewer's sheet: fill in decision (keep/revoke) and justification, then `review decide`."""
    with open_agent_store(config_path) as store:
        text = reviewer_sheet(store, name, reviewer)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text, encoding="utf-8", newline="")
    click.echo(f"wrote {out_file} ({text.count(chr(10)) - 1} item(s) for {reviewer})")


@review_group.command("decide")
@campaign_option
@click.option("--file", "sheet", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
def decide_command(name: str, sheet: Path, config_path: Path) -> None:
    """Record a filled sheet: every line is checked first; one bad line and nothing is recorded."""
    check_campaign_name(name)  # it names the lock
    text = sheet.read_text(encoding="utf-8")
    # The close's lock: a close works from the decisions it read first, so none may change under it.
    with open_agent_store(config_path) as store, store_lock(store, f"review-{name}"):
        count = record_sheet(store, name, text, str(sheet))
    click.echo(f"campaign {name}: {count} decision(s) recorded from {sheet}")


def _print_close(report: CloseReport) -> None:
    for result in report.results:
        item = result.item
        click.echo(f"  {result.outcome:8} {item.username}: {item.grant}  {result.detail}")
    applied = sum(1 for result in report.results if result.outcome == "applied")
    click.echo(
        f"campaign {report.campaign.name}: {report.defaulted} default decision(s), {applied} revocation(s) applied, "
        f"{len(report.failed)} failed (run {report.run_id})"
    )


def show_close_plan(name: str, actor: str, limits: SafetyLimits, confirmed: int | None, config_path: Path) -> int:
    """Print the close's plan and whether the safety threshold would stop it; EXIT_PENDING when it has work."""
    gateway = KeycloakGateway.connect(resolve_keycloak_connection()).read_only()
    try:
        with open_agent_store(config_path) as store:
            plan = plan_close(store, name, actor)
        users = gateway.count_users(plan.campaign.realm)
    finally:
        gateway.close()
    click.echo(f"campaign {name}: would record {len(plan.defaults)} default decision(s) "
               f"('{plan.campaign.default_decision}') and apply {len(plan.revocations)} revocation(s)")  # fmt: skip
    for item in plan.revocations:
        why = item.justification or item.reason
        click.echo(f"  - revoke {item.grant} from {item.username} (decided by {item.decided_by or 'default'}: {why})")
    try:
        check_threshold(len(plan.revocations), users, limits, confirmed)
    except SafetyStop as stop:
        click.echo(f"SAFETY: {stop}")
        click.echo(f"hint: {stop.hint}")
    click.echo("dry run: nothing was written")
    return EXIT_PENDING if plan.defaults or plan.revocations else EXIT_OK


@review_group.command("close")
@campaign_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="evidence folder [default: <state dir>/evidence/<campaign>]")  # fmt: skip
@click.option("--confirm-revocations", type=click.IntRange(min=0), default=None,
              help="apply this many revocations even at or above the safety threshold")  # fmt: skip
@click.option("--max-revocations", type=click.IntRange(min=1), default=MAX_REMOVALS, show_default=True)
@click.option("--max-revocation-ratio", type=click.FloatRange(0, 1, min_open=True), default=MAX_REMOVAL_RATIO,
              show_default=True)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="show what the close would do; write nothing (exit 2: changes pending)")
@config_option
@actor_option
def close_command(  # noqa: PLR0917  # click passes options positionally
    name: str, out: Path | None, confirm_revocations: int | None, max_revocations: int, max_revocation_ratio: float,
    dry_run: bool, config_path: Path, actor: str,
) -> None:  # fmt: skip
    """Apply default decisions, revoke what reviewers revoked (journalled), close, and write the evidence."""
    check_campaign_name(name)  # it names the lock and the evidence folder
    limits = SafetyLimits(max_removals=max_revocations, max_removal_ratio=max_revocation_ratio)
    if dry_run:
        sys.exit(show_close_plan(name, actor, limits, confirm_revocations, config_path))
    folder = out or state_dir() / "evidence" / name
    gateway = KeycloakGateway.connect(resolve_keycloak_connection())
    try:
        with open_agent_store(config_path) as store, store_lock(store, f"review-{name}"):
            closed = store.campaigns.get(name)
            if closed is not None and not closed.is_open and not evidence_written(store, name):
                # Closed by a close that stopped before its evidence was written: write it now, once.
                click.echo(f"campaign {name} was closed at {closed.closed_at}; its evidence was not written yet")
                manifest = _write_evidence(store, closed, folder, actor)
                click.echo(f"evidence: {folder} (manifest {manifest.name})")
                return
            report = close_campaign(
                gateway, store, name, actor=actor, limits=limits, confirmed_revocations=confirm_revocations
            )
            _print_close(report)
            if report.failed:
                click.echo("the campaign stays open: close it again to retry the failed revocations", err=True)
                sys.exit(EXIT_ERROR)
            manifest = _write_evidence(store, report.campaign, folder, actor)
    except Locked as locked:
        raise ConfigError(str(locked), hint="another close of this campaign is running") from None
    finally:
        gateway.close()
    click.echo(f"evidence: {folder} (manifest {manifest.name})")


EVIDENCE_ACTION = "review.evidence"


def evidence_written(store: Store, name: str) -> bool:
    """Whether the campaign's evidence bundle was written (journalled when it was)."""
    return any(entry.action == EVIDENCE_ACTION for entry in store.journal.entries(subject=name))


def _write_evidence(store: Store, campaign: Campaign, folder: Path, actor: str) -> Path:
    """The bundle, then a journal entry naming its folder and the manifest's sha256 (so a close cut off between
    closing and this is finished by the next `review close`, and a bundle is never written twice)."""
    manifest = write_evidence(folder, campaign, store.campaigns.items(campaign.name), store.journal.head())
    store.journal.append(
        actor=actor, action=EVIDENCE_ACTION, subject=campaign.name, realm=campaign.realm, run_id=campaign.run_id,
        reason=f"evidence bundle written to {folder}",
        details={"campaign": campaign.name, "evidence": f"{manifest.name} sha256:{sha256_of(manifest.read_bytes())}"},
    )  # fmt: skip
    return manifest


@review_group.command("list")
@config_option
def list_command(config_path: Path) -> None:
    """Every campaign, newest first, with its progress (open campaigns past their due date are flagged)."""
    now = datetime.now(UTC)
    with open_agent_store(config_path) as store:
        for campaign in store.campaigns.all():
            items = store.campaigns.items(campaign.name)
            decided = sum(1 for item in items if item.decision is not None)
            due = campaign.due_at.date().isoformat() if campaign.due_at else "-"
            overdue = "  OVERDUE" if campaign.is_open and campaign.due_at and campaign.due_at < now else ""
            click.echo(
                f"{campaign.name}  {campaign.realm}  {campaign.scope}  {campaign.status}  due {due}  "
                f"{decided}/{len(items)} decided{overdue}"
            )


@review_group.command("show")
@campaign_option
@config_option
def show_command(name: str, config_path: Path) -> None:
    """Every item of a campaign: reviewer, recommendation, decision and outcome."""
    with open_agent_store(config_path) as store:
        campaign = open_campaign(store, name)
        click.echo(f"campaign {campaign.name}: realm {campaign.realm}, scope {campaign.scope}, {campaign.status}")
        for item in store.campaigns.items(name):
            decision = item.decision or "-"
            click.echo(
                f"  {item.number:4} {item.username} {item.grant}  reviewer {item.reviewer}  "
                f"recommends {item.recommendation} ({item.reason})  decided {decision}  {item.outcome}"
            )
