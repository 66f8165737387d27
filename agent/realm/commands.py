"""`idp-agent validate | plan | apply | export`: realm as code, from YAML in Git to a live Keycloak realm."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import yaml

from agent.errors import ConfigError
from agent.keycloak import KeycloakGateway
from agent.paths import state_dir
from agent.realm.backups import save_backup
from agent.realm.engine import plan_realm
from agent.realm.journal import apply_journalled
from agent.realm.loader import SourcedRealm, load_realms
from agent.realm.native import friendly_from_representation
from agent.realm.plan import Change, Plan
from agent.realm.render import render_json, render_text
from agent.realm.schema import realm_config_schema_text
from agent.settings import resolve_keycloak_connection
from agent.store.db import Store, open_store
from agent.sync.agent_config import load_agent_config

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES_PENDING = 2
DEFAULT_CONFIG_DIR = Path("realm-config")
PAST_TENSE = {"create": "created", "update": "updated", "delete": "deleted"}

paths_argument = click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
policies_option = click.option(
    "--policies",
    "policies_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("policies"),
    show_default=True,
    help="folder of presets (password.yaml, lockout.yaml)",
)
realm_option = click.option("--realm", "only_realms", multiple=True, help="only this realm (repeatable)")


def _load(paths: tuple[Path, ...], policies_dir: Path, only_realms: tuple[str, ...] = ()) -> list[SourcedRealm]:
    chosen = list(paths) or [DEFAULT_CONFIG_DIR]
    missing = [path for path in chosen if not path.exists()]
    if missing:
        raise ConfigError(f"no such config path: {missing[0]}", hint="pass realm-config folders or files")
    realms = load_realms(chosen, policies_dir=policies_dir, env=os.environ)
    if only_realms:
        realms = [realm for realm in realms if realm.spec.realm in only_realms]
        if not realms:
            raise ConfigError(f"no realm named {', '.join(only_realms)} in {', '.join(map(str, chosen))}")
    return realms


def _gateway(*, read_only: bool) -> KeycloakGateway:
    gateway = KeycloakGateway.connect(resolve_keycloak_connection())
    return gateway.read_only() if read_only else gateway


@click.command("validate")
@paths_argument
@policies_option
def validate_command(paths: tuple[Path, ...], policies_dir: Path) -> None:
    """Check every file and cross-reference; print all errors as file:line:col. Never calls Keycloak."""
    realms = _load(paths, policies_dir)
    click.echo(f"ok: {len(realms)} realm(s) valid: {', '.join(r.spec.realm for r in realms)}")


@click.command("plan")
@paths_argument
@policies_option
@realm_option
@click.option("--json", "as_json", is_flag=True, help="print the plan as stable JSON")
def plan_command(paths: tuple[Path, ...], policies_dir: Path, only_realms: tuple[str, ...], as_json: bool) -> None:
    """Show what apply would change. Exit 0 nothing to do, 2 changes pending, 1 error."""
    realms = _load(paths, policies_dir, only_realms)
    gateway = _gateway(read_only=True)
    plans = [plan_realm(gateway, realm.spec) for realm in realms]
    click.echo(render_json(plans) if as_json else render_text(plans))
    sys.exit(EXIT_OK if all(plan.is_empty for plan in plans) else EXIT_CHANGES_PENDING)


def _report_applied(change: Change) -> None:
    click.echo(f"  {PAST_TENSE[change.action]} {change.kind} {change.key}")


def _report_failed(change: Change, why: str) -> None:
    click.echo(f"  FAILED {change.action} {change.kind} {change.key}: {why}", err=True)


def _apply_one(gateway: KeycloakGateway, plan: Plan, backups_dir: Path, store: Store, actor: str) -> bool:
    if plan.is_empty:
        click.echo(f"realm {plan.realm}: no changes")
        return True
    if plan.realm_exists:
        backup = save_backup(gateway, plan.realm, backups_dir)
        click.echo(f"realm {plan.realm}: backup saved to {backup}")
    else:
        click.echo(f"realm {plan.realm}: creating")
    result, run = apply_journalled(
        gateway, plan, store, run_kind="apply", actor=actor, reason="realm-config applied",
        on_applied=_report_applied, on_failed=_report_failed,
    )  # fmt: skip
    counts = plan.counts()
    click.echo(
        f"realm {plan.realm}: {len(result.applied)} change(s) applied ({counts['create']} create, "
        f"{counts['update']} update, {counts['delete']} delete), {len(result.failed)} failed"
    )
    click.echo(f"realm {plan.realm}: journalled as run {run.id} in {store.db.name}")
    return result.ok


@click.command("apply")
@paths_argument
@policies_option
@realm_option
@click.option("--dry-run", is_flag=True, help="plan through a read-only gateway; nothing can be written")
@click.option(
    "--backups",
    "backups_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="where realm exports are saved before changes [default: <state dir>/backups]",
)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="an agent config whose `store:` keeps the journal of the changes [default: the store in the state dir]",
)  # fmt: skip
@click.option("--store", "store_url", default=None, help="the store URL (overrides the config's)")
@click.option("--actor", default=lambda: os.environ.get("USER", "operator"), help="who applies (journalled)")
def apply_command(  # noqa: PLR0917  # click passes options positionally
    paths: tuple[Path, ...], policies_dir: Path, only_realms: tuple[str, ...], dry_run: bool, backups_dir: Path | None,
    config_path: Path | None, store_url: str | None, actor: str,
) -> None:  # fmt: skip
    """Apply the plan in dependency order, each change journalled in the store (a run of kind `apply`; see
    `idp-agent audit show`). Exit 0 done (or nothing to do), 1 on any error."""
    realms = _load(paths, policies_dir, only_realms)
    # The agent config is read only when named: a CI job that applies realm-config need not have the secrets
    # of the sync's sources. A bad one fails here, before any call to Keycloak.
    if store_url is None and config_path is not None:
        store_url = load_agent_config(config_path, os.environ).store
    gateway = _gateway(read_only=dry_run)
    plans = [plan_realm(gateway, realm.spec) for realm in realms]
    if dry_run:
        click.echo(render_text(plans))
        click.echo("dry run: nothing was written")
        return
    backups = backups_dir or state_dir() / "backups"
    with open_store(store_url) as store:
        results = [_apply_one(gateway, plan, backups, store, actor) for plan in plans]
    sys.exit(EXIT_OK if all(results) else EXIT_ERROR)


@click.command("export")
@click.option("--realm", "realm_name", required=True, help="the realm to adopt")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def export_command(realm_name: str, out_dir: Path) -> None:
    """Write a running realm as idp-agent YAML (non-default values only), ready to be planned and applied."""
    gateway = _gateway(read_only=True)
    representation = gateway.export_realm(realm_name)
    live = gateway.get_realm(realm_name)
    if live is None:
        raise ConfigError(f"realm '{realm_name}' does not exist on {gateway.server_url}")
    friendly = friendly_from_representation({**live.representation, **representation})
    folder = out_dir / realm_name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "realm.yaml"
    target.write_text(yaml.safe_dump(friendly, sort_keys=False, allow_unicode=True), encoding="utf-8")
    click.echo(f"wrote {target}")


@click.command("schema")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None)
def schema_command(out_file: Path | None) -> None:
    """Print (or write) the JSON Schema of realm-config files, for editors and CI."""
    text = realm_config_schema_text()
    if out_file is None:
        click.echo(text, nl=False)
        return
    out_file.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out_file}")
