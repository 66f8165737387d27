"""The vocabulary every config file's models share (realm-config/, policies/, mappers/, idp-agent.yaml): the
strict, frozen `Spec` base, durations, secrets from ${env:}/${file:}, per-deployment values and group paths."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from agent.secrets import Secret

DURATION_PATTERN = r"^\s*(\d+)\s*([smhdw]?)\s*$"
SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> int:
    """Seconds from an int or a string such as `90s`, `30m`, `8h`, `90d`, `2w`."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 30m, 8h, 90d")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        match = re.match(DURATION_PATTERN, value)
        if match:
            return int(match.group(1)) * SECONDS_PER_UNIT[match.group(2)]
    raise ValueError(f"'{value}' is not a duration: write seconds or a string such as 30m, 8h, 90d")


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]}),
]


def _secret_reference(value: object) -> object:
    """The loader turns ${env:...}/${file:...} into a Secret; anything else is a secret written in the file."""
    if isinstance(value, Secret):
        return value
    raise ValueError("a secret must come from ${env:NAME} or ${file:path}, never be written in the file")


# Written in YAML as ${env:NAME} or ${file:path}; the loader turns the reference into a Secret.
SecretValue = Annotated[
    Secret,
    BeforeValidator(_secret_reference),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\$\{(env|file):.+\}$", "description": "${env:NAME} or ${file:path}"}
    ),
]


def _plain_reference(value: object) -> object:
    """A value that is not secret but differs per deployment (an LDAP URL) may come from ${env:...}."""
    return value.reveal() if isinstance(value, Secret) else value


# A plain setting that may be written as ${env:NAME} or ${file:path}; it is shown in plans like any value.
FromEnv = Annotated[
    str,
    BeforeValidator(_plain_reference),
    Field(min_length=1, description="a value, or ${env:NAME} / ${file:path} for one that differs per deployment"),
]
GroupPath = Annotated[str, Field(pattern=r"^(/[^/]+)+$", description="a group path such as /staff/finance")]
NonEmpty = Annotated[str, Field(min_length=1)]


class Spec(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, populate_by_name=True)
