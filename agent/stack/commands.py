"""`idp-agent stack up | down | status | env | plugin`: a thin shell over agent.stack.api (and the plugin build)."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click

from agent import paths
from agent.errors import StackError
from agent.secrets import HIDDEN
from agent.stack import api, plugin
from agent.stack.java import find_java
from agent.stack.keycloak import READY_TIMEOUT_SECONDS

EXIT_NOT_RUNNING = 3  # like `systemctl status`: scripts can run `status || up`


def describe(status: api.StackStatus) -> list[str]:
    """Human-readable status lines, with what to do for each part that does not run."""
    lines = [f"state dir: {status.state_dir}"]
    lines += _describe_keycloak(status.keycloak)
    lines += _describe_ldap(status.ldap)
    if status.all_running:
        lines.append('Export the settings with: eval "$(idp-agent stack env)"')
    return lines


def _describe_keycloak(info: api.KeycloakInfo | None) -> list[str]:
    if info is None:
        return ["Keycloak: never started here; run `idp-agent stack up`"]
    if not info.running:
        return [
            f"Keycloak {info.version}: not running; start it with `idp-agent stack up --only keycloak`",
            f"  last log:      {info.log_path}",
        ]
    return [
        f"Keycloak {info.version}: running (pid {info.pid})",
        f"  URL:           {info.url}",
        f"  admin console: {info.admin_console_url}",
        f"  health:        {info.health_url}",
        f"  admin user:    {info.admin_user} (password {HIDDEN}; `idp-agent stack env` prints it)",
        f"  log:           {info.log_path}",
    ]


def _describe_ldap(info: api.LdapInfo | None) -> list[str]:
    if info is None:
        return ["LDAP (slapd): never started here; run `idp-agent stack up`"]
    if not info.running:
        return [f"LDAP (slapd): not running; start it with `idp-agent stack up --only ldap` (data: {info.directory})"]
    return [
        f"LDAP (slapd): running (pid {info.pid})",
        f"  URL:           {info.url}",
        f"  base DN:       {info.base_dn}",
        f"  bind DN:       {info.bind_dn} (password {HIDDEN})",
    ]


def _exit(code: int) -> NoReturn:
    # SystemExit rather than context.exit: click returns (not raises) that code under standalone_mode=False.
    raise SystemExit(code)


def _state_dir(context: click.Context) -> Path:
    state: Path = context.obj
    return state


@click.group("stack")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where pid files, ports, passwords and data live [default: IDP_AGENT_STATE_DIR or ~/.local/state/idp-agent].",
)
@click.pass_context
def stack_group(context: click.Context, state_dir: Path | None) -> None:
    """A local Keycloak and OpenLDAP (slapd) on 127.0.0.1, for trying idp-agent and for tests."""
    context.obj = (state_dir or paths.state_dir()).expanduser().resolve()


@stack_group.command("up")
@click.option("--keycloak-port", type=click.IntRange(1, 65535), help="Keycloak HTTP port [default: a free one].")
@click.option("--ldap-port", type=click.IntRange(1, 65535), help="slapd port [default: a free one].")
@click.option("--only", type=click.Choice(api.COMPONENTS), help="Start only this component.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=READY_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds to wait for Keycloak to be ready.",
)
@click.pass_context
def up_command(
    context: click.Context, keycloak_port: int | None, ldap_port: int | None, only: str | None, timeout: float
) -> None:
    """Start Keycloak and slapd (what already runs is left alone); fetches and builds Keycloak once."""
    status = api.up(
        _state_dir(context),
        keycloak_port=keycloak_port,
        ldap_port=ldap_port,
        components=(only,) if only else api.COMPONENTS,
        timeout_seconds=timeout,
        echo=click.echo,
    )
    click.echo("\n".join(describe(status)))


@stack_group.command("down")
@click.pass_context
def down_command(context: click.Context) -> None:
    """Stop the processes `stack up` started from this state dir; data, ports and passwords are kept."""
    api.down(_state_dir(context), echo=click.echo)


@stack_group.command("status")
@click.pass_context
def status_command(context: click.Context) -> None:
    """Show what runs, with URLs; exit status 3 when something is not running."""
    status = api.status(_state_dir(context))
    click.echo("\n".join(describe(status)))
    if not status.all_running:
        _exit(EXIT_NOT_RUNNING)


@stack_group.command("env")
@click.pass_context
def env_command(context: click.Context) -> None:
    """Print `export` lines (passwords included) for the running parts: eval "$(idp-agent stack env)"."""
    state = _state_dir(context)
    keycloak_connection = api.running_keycloak_connection(state)
    ldap = api.running_ldap_connection(state)
    if keycloak_connection is None and ldap is None:
        click.echo("error: the local stack is not running", err=True)
        click.echo("hint: run `idp-agent stack up`", err=True)
        _exit(EXIT_NOT_RUNNING)
    for name, connection in (("Keycloak", keycloak_connection), ("LDAP", ldap)):
        if connection is None:
            click.echo(f"# {name} is not running; its variables are left out", err=True)
    click.echo("\n".join(api.export_lines(keycloak_connection, ldap)))


@stack_group.command("plugin")
@click.option(
    "--keycloak-home",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The Keycloak distribution to compile against (the one the jar goes into).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(plugin.JAR_NAME),
    show_default=True,
    help="Where to write the jar.",
)
def plugin_command(keycloak_home: Path, out: Path) -> None:
    """Build the Keycloak plugin pack for your own server: copy the jar to its providers/ and run `kc.sh build`.
    The local stack's Keycloak has it built in already."""
    if not (keycloak_home / "lib" / "lib" / "main").is_dir():
        raise StackError(f"{keycloak_home} is not a Keycloak distribution (no lib/lib/main)", hint="pass its home")
    jar = plugin.build_jar(keycloak_home, out, plugin.find_javac(find_java()))
    click.echo(f"wrote {jar}")
