"""`idp-agent store prune [--dry-run]`: the store retention pass the daemon's retention job runs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from agent.store.db import open_store
from agent.store.retention import RetentionPolicy, prune_store
from agent.sync.agent_config import DEFAULT_CONFIG_FILE, AgentConfig, optional_agent_config


def retention_policy(config: AgentConfig | None) -> RetentionPolicy:
    """The policy of `daemon.retention` in the agent config (defaults without a config or daemon section)."""
    if config is None or config.daemon is None:
        return RetentionPolicy()
    spec = config.daemon.retention
    return RetentionPolicy(
        runs_max_age=timedelta(seconds=spec.runs_older_than),
        logins_max_age=timedelta(seconds=spec.logins_older_than),
        batch_size=spec.batch_size,
    )


@click.group("store")
def store_group() -> None:
    """The agent's own store (runs, staged sets, login events, journal)."""


@store_group.command("prune")
@click.option("--dry-run", is_flag=True, help="count what would be deleted, delete nothing")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG_FILE,
    show_default=True, help="the agent config file (store URL and daemon.retention)",
)  # fmt: skip
def prune_command(dry_run: bool, config_path: Path) -> None:
    """Delete finished runs, decided or expired staged sets and login events older than daemon.retention
    allows (400 days by default). The journal, running runs and sets awaiting approval are kept."""
    config = optional_agent_config(config_path, os.environ)
    with open_store(None if config is None else config.store) as store:
        report = prune_store(store, retention_policy(config), datetime.now(UTC), dry_run=dry_run, actor="cli")
    click.echo(report.describe())
