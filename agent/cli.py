"""The `idp-agent` command line: one group per capability, each a thin shell over library functions."""

from __future__ import annotations

import sys

import click

from agent import __version__
from agent.appeals.commands import appeal_group
from agent.audit.commands import audit_group
from agent.config.diagnostics import ConfigErrors
from agent.daemon.commands import daemon_command
from agent.errors import AgentError
from agent.realm.commands import apply_command, export_command, plan_command, schema_command, validate_command
from agent.review.event_commands import events_group
from agent.review.report_commands import report_group
from agent.review.review_commands import review_group
from agent.sanctions.commands import sanction_group, sanctions_group
from agent.stack.commands import stack_group
from agent.store.commands import store_group
from agent.sync.commands import sync_group


def print_error(error: AgentError) -> None:
    """Print an agent error as `error: message` plus its hint, on stderr; config errors as file:line:col."""
    if isinstance(error, ConfigErrors):
        click.echo(str(error), err=True)
        click.echo(f"{len(error.diagnostics)} error(s); nothing was sent to Keycloak", err=True)
        return
    click.echo(f"error: {error}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="idp-agent")
def cli() -> None:
    """idp-agent: make user-management rules real on Keycloak (realm as code, sync, sanctions, reviews)."""


cli.add_command(stack_group)
cli.add_command(sync_group)
cli.add_command(report_group)
cli.add_command(review_group)
cli.add_command(events_group)
cli.add_command(daemon_command)
cli.add_command(audit_group)
cli.add_command(appeal_group)
cli.add_command(sanction_group)
cli.add_command(sanctions_group)
cli.add_command(store_group)
for command in (validate_command, plan_command, apply_command, export_command, schema_command):
    cli.add_command(command)


# A usage error (unknown option, missing path) is an error: exit 1 as any other.
USAGE_ERROR_EXIT = 1


def main() -> None:
    """Console entry point: agent errors become a message and exit code 1, never a traceback."""
    try:
        # Without standalone mode click returns (rather than raises) the code given to ctx.exit(n).
        returned = cli.main(standalone_mode=False)
        sys.exit(returned if isinstance(returned, int) else 0)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        # Click's usage errors exit 2, which here means "changes pending" (plan, sync plan, report --check): a
        # misspelt path or option must fail a CI step that accepts 0 and 2, not pass it.
        sys.exit(USAGE_ERROR_EXIT if isinstance(error, click.UsageError) else error.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except AgentError as error:
        print_error(error)
        sys.exit(1)
