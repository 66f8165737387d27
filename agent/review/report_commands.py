"""`idp-agent report controls | access`: reports for auditors, written as Markdown, JSON, HTML or CSV files."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from agent.collector import fewer_collections
from agent.errors import ConfigError
from agent.keycloak import KeycloakGateway
from agent.review.findings import findings
from agent.review.policy import REVIEW_POLICY_FILE, ReviewPolicy, load_review_policy
from agent.review.reports.access import AccessReport, ReportContext, build_access_report
from agent.review.reports.controls import ConfiguredControls, ControlResult, evaluate_controls
from agent.review.reports.controls_live import configured_realms, policy_facts, read_live_controls, retention_by_realm
from agent.review.reports.render_access import access_csv, access_html, access_json, access_markdown
from agent.review.reports.render_controls import RENDERERS as CONTROL_RENDERERS
from agent.review.reports.review_facts import review_policy_facts
from agent.review.snapshot import take_snapshot
from agent.review.sources import SourceIds, read_source_ids, targets_realm
from agent.settings import resolve_keycloak_connection
from agent.store.db import Store, open_store
from agent.sync.agent_config import DEFAULT_CONFIG_FILE, optional_agent_config

EXIT_OK = 0
EXIT_FAILED_CONTROLS = 2
DEFAULT_REALM_CONFIG = Path("realm-config")
DEFAULT_POLICIES = Path("policies")


def parse_formats(text: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """`md,json` -> ("md", "json"); unknown or empty lists are a usage error naming the allowed ones."""
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in allowed]
    if unknown or not chosen:
        raise click.BadParameter(f"formats are {', '.join(allowed)} (comma-separated); got '{text}'")
    return chosen


def write_outputs(out: Path | None, stem: str, formats: Sequence[str], render: Callable[[str], str]) -> list[Path]:
    """Write `<out>/<stem>.<format>` for each format, or print to stdout when `out` is None."""
    written: list[Path] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for name in formats:
        text = render(name)
        if out is None:
            click.echo(text, nl=False)
            continue
        path = out / f"{stem}.{name}"
        path.write_text(text, encoding="utf-8", newline="")
        written.append(path)
    return written


def open_agent_store(config_path: Path) -> Store:
    """The store idp-agent.yaml names (the default store without a config file)."""
    config = optional_agent_config(config_path, os.environ)
    return open_store(None if config is None else config.store)


SOURCES_INCOMPLETE = "sources not read completely: orphan and leaver findings from source data skipped"


def read_sources(config_path: Path, realm: str, now: datetime) -> SourceIds | None:
    """What the sources of the syncs into `realm` say about its people, read as a sync reads them. None
    without a config file or a sync into the realm, and when a read was incomplete (said on stderr): absence
    from a broken feed proves nothing."""
    config = optional_agent_config(config_path, os.environ)
    if config is None or not targets_realm(config, realm, os.environ):
        return None
    ids = read_source_ids(config, realm, os.environ, now)
    if ids is None:
        click.echo(SOURCES_INCOMPLETE, err=True)
    return ids


def connect_read_only() -> KeycloakGateway:
    return KeycloakGateway.connect(resolve_keycloak_connection()).read_only()


def require_realm(gateway: KeycloakGateway, realm: str) -> None:
    if gateway.get_realm(realm) is None:
        raise ConfigError(
            f"realm '{realm}' does not exist on {gateway.server_url}", hint="check --realm (realm names are exact)"
        )


format_option = click.option("--format", "formats", default="md", show_default=True, help="comma-separated formats")
out_option = click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="folder to write (default: stdout)"
)
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG_FILE,
    show_default=True, help="the agent config file (store, syncs)",
)  # fmt: skip
no_sources_option = click.option(
    "--no-sources", is_flag=True,
    help="do not read the syncs' sources (no 'no source record' and source-leaver findings)",
)  # fmt: skip


@click.group("report")
def report_group() -> None:
    """Reports for auditors: the controls matrix and the access report."""


def controls_for(
    realms: Sequence[str], configured: Mapping[str, ConfiguredControls], gateway: KeycloakGateway, facts_of: Callable[
        [ConfiguredControls], ConfiguredControls]
) -> list[ControlResult]:  # fmt: skip
    results: list[ControlResult] = []
    for realm in realms:
        config = configured.get(realm) or ConfiguredControls(realm, None, "not in realm-config/")
        results.extend(evaluate_controls(facts_of(config), read_live_controls(gateway, realm)))
    return results


@report_group.command("controls")
@click.option("--realm", "realms", multiple=True, help="realm to check (repeatable; default: every realm configured)")
@format_option
@out_option
@click.option("--realm-config", "config_dir", type=click.Path(path_type=Path), default=DEFAULT_REALM_CONFIG,
              show_default=True)  # fmt: skip
@click.option(
    "--policies", "policies_dir", type=click.Path(path_type=Path), default=DEFAULT_POLICIES, show_default=True
)
@config_option
@click.option("--check", is_flag=True, help="exit 2 when any control fails")
def controls_command(  # noqa: PLR0917  # click passes options positionally
    realms: tuple[str, ...], formats: str, out: Path | None, config_dir: Path, policies_dir: Path, config_path: Path,
    check: bool,
) -> None:  # fmt: skip
    """The compliance matrix: each rule family, its configured control, the live value, pass/fail and evidence."""
    chosen_formats = parse_formats(formats, tuple(CONTROL_RENDERERS))
    configured = configured_realms(config_dir, policies_dir, os.environ)
    names = list(realms) or sorted(configured)
    if not names:
        raise ConfigError(f"no realm to check: {config_dir} defines none", hint="pass --realm NAME")
    training_attribute, review_policy = review_policy_facts(policies_dir, os.environ)
    gateway = connect_read_only()
    try:
        with open_agent_store(config_path) as store:
            facts = policy_facts(
                policies_dir, os.environ, store=store, training_attribute=training_attribute,
                review_policy=review_policy,
            )  # fmt: skip
            retention = retention_by_realm(config_path, os.environ)

            def with_facts(config: ConfiguredControls) -> ConfiguredControls:
                realm_facts = replace(facts, retention=retention.get(config.realm, ()))
                return ConfiguredControls(config.realm, config.spec, config.source, realm_facts)

            results = controls_for(names, configured, gateway, with_facts)
    finally:
        gateway.close()
    taken_at = datetime.now(UTC)
    written = write_outputs(out, "controls", chosen_formats, lambda name: CONTROL_RENDERERS[name](results, taken_at))
    for path in written:
        click.echo(str(path))
    failed = [result for result in results if result.status == "fail"]
    if out is not None:
        click.echo(f"{len(results)} controls, {len(failed)} failed", err=True)
    sys.exit(EXIT_FAILED_CONTROLS if check and failed else EXIT_OK)


ACCESS_FORMATS = ("html", "csv", "json", "md")
LOGIN_HISTORY_DAYS = 30


def logins_per_day(store: Store, realm: str, now: datetime) -> tuple[tuple[str, int], ...]:
    """Successful logins per day over the chart's window, from the harvested LOGIN events."""
    since = now - timedelta(days=LOGIN_HISTORY_DAYS)
    return tuple((day, logins) for day, logins, _failed in store.logins.logins_per_day(realm, since))


def report_context(policy: ReviewPolicy, store: Store, realm: str, now: datetime) -> ReportContext:
    return ReportContext(
        privileged_roles=policy.privileged.role_refs(),
        privileged_groups=frozenset(policy.privileged.groups),
        logins_per_day=logins_per_day(store, realm, now),
    )


def render_access_files(report: AccessReport, formats: Sequence[str]) -> dict[str, str]:
    """File name -> text for each format; CSV gives one file per table (access-users.csv, ...)."""
    files: dict[str, str] = {}
    for name in formats:
        if name == "csv":
            files.update({f"access-{table}.csv": text for table, text in access_csv(report).items()})
        else:
            files[f"access.{name}"] = {"html": access_html, "json": access_json, "md": access_markdown}[name](report)
    return files


def write_files(out: Path, files: Mapping[str, str]) -> list[Path]:
    """Write each file into `out`, created readable by its owner only: the access report names people."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8", newline="")
        written.append(path)
    return written


@report_group.command("access")
@click.option("--realm", required=True, help="the realm to report on")
@click.option("--format", "formats", default="html", show_default=True, help="comma-separated: html,csv,json,md")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="folder to write")
@click.option(
    "--policies", "policies_dir", type=click.Path(path_type=Path), default=DEFAULT_POLICIES, show_default=True
)
@config_option
@no_sources_option
@fewer_collections()
def access_command(  # noqa: PLR0917  # click passes options positionally
    realm: str, formats: str, out: Path, policies_dir: Path, config_path: Path, no_sources: bool
) -> None:
    """Who holds what, how, and what is wrong with it: summary and charts first, then filterable tables. The
    syncs' sources (idp-agent.yaml) are read too, for accounts they no longer list or mark as leavers."""
    chosen = parse_formats(formats, ACCESS_FORMATS)
    policy = load_review_policy(policies_dir / REVIEW_POLICY_FILE.name, os.environ)
    sources = None if no_sources else read_sources(config_path, realm, datetime.now(UTC))
    gateway = connect_read_only()
    try:
        require_realm(gateway, realm)
        with open_agent_store(config_path) as store:
            snapshot = take_snapshot(
                gateway, store, realm, policy=policy,
                source_external_ids=sources.listed if sources is not None else None,
                source_leaver_ids=sources.leavers if sources is not None else None,
            )  # fmt: skip
            context = report_context(policy, store, realm, snapshot.taken_at)
    finally:
        gateway.close()
    report = build_access_report(snapshot, findings(snapshot, policy), context)
    for path in write_files(out, render_access_files(report, chosen)):
        click.echo(str(path))
    summary = report.summary
    click.echo(f"{summary.users} users, {summary.findings} findings, realm {realm}", err=True)
