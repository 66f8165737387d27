"""`idp-agent daemon`: run the configured jobs on their schedules until SIGTERM."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from agent.daemon.clock import clock_from_env
from agent.daemon.config import parse_listen
from agent.daemon.logs import setup_logging
from agent.daemon.service import Daemon
from agent.sync.agent_config import DEFAULT_CONFIG_FILE


def _checked_listen(_context: click.Context, _parameter: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            parse_listen(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return value


@click.command("daemon")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CONFIG_FILE,
    show_default=True, help="the agent config file (its daemon: section holds the jobs)",
)  # fmt: skip
@click.option(
    "--listen", default=None, callback=_checked_listen,
    help="HOST:PORT for /healthz, /readyz, /metrics [default: daemon.listen, else 127.0.0.1:9464]",
)  # fmt: skip
def daemon_command(config_path: Path, listen: str | None) -> None:
    """Run sync, drift checks and the other jobs on their schedules (UTC), one writer per job.

    SIGTERM finishes the current item and exits 0; SIGHUP or an edited config reloads the schedules.
    Logs go to stderr: JSON lines unless stderr is a terminal.
    """
    setup_logging()
    daemon = Daemon(config_path, env=os.environ, clock=clock_from_env(os.environ), listen=listen)
    daemon.start()
    code = daemon.run_forever()
    sys.stderr.flush()
    if code != 0:
        # A run stuck past the shutdown timeout keeps a worker thread busy: leave without joining it.
        os._exit(code)
    sys.exit(0)
