"""Check `idp-agent ...` command lines written in files (CI workflows, hooks, Dockerfiles) against the CLI:
parsed as click would parse them, without running anything."""

from __future__ import annotations

import re
import shlex

import click

from agent.cli import cli

SHELL_BREAKS = {"|", "||", "&&", ";", ">", ">>", "2>", "<"}


def agent_commands(script: str) -> list[list[str]]:
    """Each `idp-agent ...` invocation in a shell script, cut at pipes, redirections and separators."""
    found = []
    for line in script.splitlines():
        for match in re.finditer(r"(?:^|[\s;&|(])idp-agent\s+([^\n]*)", line):
            words = []
            for word in shlex.split(match.group(1), comments=True):
                if word in SHELL_BREAKS or word.startswith((">", "2>")):
                    break
                words.append(word)
            found.append(words)
    return found


def resolve(words: list[str]) -> click.Context:
    """Parse `words` (after `idp-agent`) as the CLI would: an unknown command or option raises."""
    command: click.Command = cli
    context = click.Context(cli, info_name="idp-agent")
    remaining = list(words)
    while isinstance(command, click.Group):
        assert remaining, f"`idp-agent {' '.join(words)}` names no command"
        name = remaining.pop(0)
        sub = command.get_command(context, name)
        assert sub is not None, f"`idp-agent {' '.join(words)}`: no command '{name}'"
        command = sub
    return command.make_context(command.name or "", remaining, parent=context)
