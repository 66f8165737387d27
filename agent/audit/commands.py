"""`idp-agent audit show | verify`: read the journal and check its hash chain."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from agent.audit.view import (
    count_entries,
    entry_json,
    entry_line,
    parse_anchor,
    parse_since,
    select_entries,
    verify_message,
)
from agent.store import JournalHead, Store, StoreError
from agent.store.db import open_store
from agent.sync.agent_config import DEFAULT_CONFIG_FILE, optional_agent_config

EXIT_OK = 0
EXIT_BROKEN = 1

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG_FILE,
    show_default=True, help="the agent config file (its `store:`)",
)  # fmt: skip
store_option = click.option("--store", "store_url", default=None, help="the store URL (overrides the config's)")


def resolve_store_url(config_path: Path, store_url: str | None) -> str | None:
    """--store, else the config's `store:` (when the file exists), else None (the default store)."""
    if store_url:
        return store_url
    config = optional_agent_config(config_path, os.environ)
    return None if config is None else config.store


@click.group("audit")
def audit_group() -> None:
    """Read the journal of every write idp-agent made, and check that nobody changed it."""


@audit_group.command("show")
@config_option
@store_option
@click.option("--user", default=None, help="only entries about this user (username, id or e-mail)")
@click.option("--since", default=None, help="from this date or time (2026-11-01, ISO time, or 7d)")
@click.option("--json", "as_json", is_flag=True)
def show_command(config_path: Path, store_url: str | None, user: str | None, since: str | None, as_json: bool) -> None:
    """Journal entries in order, oldest first."""
    start = None if since is None else parse_since(since, datetime.now(UTC))
    with open_store(resolve_store_url(config_path, store_url)) as store:
        entries = select_entries(store.journal.entries(since=start), user)
    if as_json:
        click.echo(json.dumps([entry_json(entry) for entry in entries], indent=2, sort_keys=True))
        return
    for entry in entries:
        click.echo(entry_line(entry))
    click.echo(count_entries(len(entries)))


@audit_group.command("verify")
@config_option
@store_option
@click.option("--anchor", default=None, help="SEQ:HASH printed by an earlier verify and kept outside the store")
def verify_command(config_path: Path, store_url: str | None, anchor: str | None) -> None:
    """Check the hash chain. Exit 0 intact, 1 with the first removed, moved or changed entry named."""
    outside = None if anchor is None else parse_anchor(anchor)
    with open_store(resolve_store_url(config_path, store_url)) as store:
        head = _head_or_none(store)  # read first: entries appended meanwhile do not make it unverified
        result = store.journal.verify(outside)
    click.echo(verify_message(result, head))
    sys.exit(EXIT_OK if result.ok else EXIT_BROKEN)


def _head_or_none(store: Store) -> JournalHead | None:
    try:
        return store.journal.head()
    except StoreError:
        return None  # verify names the missing head record
