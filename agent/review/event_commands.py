"""`idp-agent events harvest`: copy login events from Keycloak into the store (for last-login)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from agent.keycloak import KeycloakGateway
from agent.review.events import event_settings, harvest_events
from agent.settings import resolve_keycloak_connection
from agent.store.db import open_store
from agent.sync.agent_config import DEFAULT_CONFIG_FILE, optional_agent_config

MASTER_REALM = "master"


@click.group("events")
def events_group() -> None:
    """Keycloak events kept by idp-agent (login history for access reviews)."""


@events_group.command("harvest")
@click.option(
    "--realm", "realms", multiple=True, help="realm to harvest (repeatable; default: every realm storing events)"
)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG_FILE,
    show_default=True, help="the agent config file (for the store)",
)  # fmt: skip
def harvest_command(realms: tuple[str, ...], config_path: Path) -> None:
    """Copy LOGIN and LOGIN_ERROR events into the store, from where the last harvest of each realm stopped."""
    config = optional_agent_config(config_path, os.environ)
    store_url = None if config is None else config.store
    gateway = KeycloakGateway.connect(resolve_keycloak_connection()).read_only()
    try:
        with open_store(store_url) as store:
            names = list(realms) or [
                name
                for name in gateway.list_realm_names()
                if name != MASTER_REALM and event_settings(gateway, name).enabled
            ]
            if not names:
                click.echo("no realm stores events: enable events (realm-config: events: {enabled: true}) first")
            for name in names:
                click.echo(harvest_events(gateway, store, name).describe())
    finally:
        gateway.close()
