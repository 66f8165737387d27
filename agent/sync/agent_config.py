"""The agent's own config file (`idp-agent.yaml`): its sources, the syncs that read them, the store, and
the safety limits. Loaded strictly, like realm-config: every error as file:line:col before any call."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import click
import pydantic
from click.core import ParameterSource
from pydantic import Field

from agent.config.diagnostics import ConfigErrors, Diagnostic, collected, diagnostics_from_validation_error
from agent.config.source import Document, load_document
from agent.config.values import Duration, NonEmpty, Spec
from agent.daemon.config import DaemonSpec
from agent.notify.config import SmtpConfig
from agent.sync.guard import MAX_REMOVAL_RATIO, MAX_REMOVALS, MAX_SHRINK_RATIO, SafetyLimits
from agent.sync.plan import Retention
from agent.sync.sources.config import SourceConfig

DEFAULT_CONFIG_FILE = Path("idp-agent.yaml")
RETENTION_FILE = Path("policies") / "retention.yaml"
Ratio = Annotated[float, Field(gt=0, le=1)]


class SafetySpec(Spec):
    """Removals (disables, deletes and grant removals) at or above min(max_removals, max_removal_ratio x the
    enabled managed users) stop the run and are staged for approval; a source that shrank by more than
    max_shrink_ratio since its last good read stops the run."""

    max_removals: int = Field(default=MAX_REMOVALS, ge=1)
    max_removal_ratio: Ratio = MAX_REMOVAL_RATIO
    max_shrink_ratio: Ratio = MAX_SHRINK_RATIO

    def limits(self) -> SafetyLimits:
        return SafetyLimits(self.max_removals, self.max_removal_ratio, self.max_shrink_ratio)


class RetentionSpec(Spec):
    keep_for: Duration
    then: Literal["delete", "anonymise"] = "delete"


class SyncSpec(Spec):
    name: NonEmpty = Field(description="the sync's name; users it creates carry it as idp-agent.source")
    mapper: Path = Field(description="the mapping file, relative to this config file")
    sources: tuple[NonEmpty, ...] = Field(min_length=1)
    deny_usernames: tuple[NonEmpty, ...] = Field(
        default=(), description="accounts the sync never touches (break-glass admins), besides service accounts"
    )
    safety: SafetySpec = SafetySpec()
    retention: NonEmpty | None = Field(
        default=None, description="a preset of policies/retention.yaml; absent: leavers stay disabled for good"
    )
    full_read_every: Duration = Field(
        default=86400,
        description="read every user in full at least this often (e.g. 24h); runs in between list users briefly "
        "and read in full only those whose names, email or state changed. 0: always read in full",
    )

    keycloak_read: Literal["plugin", "admin-api"] = Field(
        default="plugin",
        description="plugin: every run reads every user in full and afresh, in pages of thousands from the idp-agent "
        "Keycloak plugin where it answers (not with user federation), else as admin-api; admin-api: brief "
        "listings with the records of the last run, and full reads every full_read_every",
    )
    keycloak_write: Literal["plugin", "admin-api"] = Field(
        default="plugin",
        description="plugin: people's changes (updates, grants, revokes, leavers) go to the idp-agent Keycloak plugin "
        "twenty people a request, one transaction each, where it takes them (not with user federation), else as "
        "admin-api; admin-api: a PUT per person and a request per group, role mapping, logout and consent",
    )

    @property
    def denied(self) -> frozenset[str]:
        """deny_usernames as Keycloak stores usernames (lower case)."""
        return frozenset(name.lower() for name in self.deny_usernames)

    def full_read_interval(self) -> timedelta:
        return timedelta(seconds=self.full_read_every)


class AgentConfig(Spec):
    store: str | None = Field(
        default=None,
        description="sqlite:///path.db or postgresql://user@host:5432/db (password via PGPASSWORD or "
        "PGPASSWORD_FILE; default: idp-agent.db in the state dir)",
    )
    sources: tuple[SourceConfig, ...] = ()
    syncs: tuple[SyncSpec, ...] = ()
    smtp: SmtpConfig | None = Field(default=None, description="the relay for sanction notices (none: no mail)")
    daemon: DaemonSpec | None = Field(default=None, description="`idp-agent daemon`: jobs, schedules, alerts")
    base_dir: Path = Field(default=Path("."), exclude=True)
    retention_presets: dict[str, RetentionSpec] = Field(default_factory=dict, exclude=True)

    path: Path = Field(default=Path(DEFAULT_CONFIG_FILE), exclude=True)  # the file it was read from, for messages

    def sync(self, name: str | None) -> SyncSpec:
        if name is None and len(self.syncs) == 1:
            return self.syncs[0]
        for sync in self.syncs:
            if sync.name == name:
                return sync
        known = ", ".join(sync.name for sync in self.syncs) or "none configured"
        raise ConfigErrors([Diagnostic(str(self.path), 1, 1, f"no sync named '{name}' (syncs: {known})")])

    def retention(self, sync: SyncSpec) -> Retention | None:
        """The sync's retention preset from policies/retention.yaml beside this config (validated at load)."""
        if sync.retention is None:
            return None
        preset = self.retention_presets[sync.retention]
        return Retention(timedelta(seconds=preset.keep_for), preset.then)

    def mapper_path(self, sync: SyncSpec) -> Path:
        return sync.mapper if sync.mapper.is_absolute() else self.base_dir / sync.mapper


def optional_agent_config(path: Path, env: Mapping[str, str]) -> AgentConfig | None:
    """For commands that also work without an agent config (on the default store): the config at `path`, or None
    when there is no file and none was named. A file named with --config (or its environment variable) that is
    not there is an error: a misspelt name must not quietly pick the default store (pruning, auditing or
    appealing in another store than meant)."""
    if path.is_file() or _named_by_the_caller("config_path"):
        return load_agent_config(path, env)
    return None


def _named_by_the_caller(parameter: str) -> bool:
    """Whether the running click command's `parameter` was given rather than left at its default."""
    context = click.get_current_context(silent=True)
    if context is None:
        return False
    source = context.get_parameter_source(parameter)
    return source is not None and source not in {ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP}


def load_agent_config(path: Path, env: Mapping[str, str]) -> AgentConfig:
    """The config at `path`, validated; raises ConfigErrors with every problem."""
    if not path.is_file():
        raise ConfigErrors(
            [Diagnostic(str(path), 1, 1, "no agent config file", "create idp-agent.yaml (see the example in the repo)")]
        )
    # The retention presets beside it are read and checked whatever this file holds: both files' problems at once.
    presets, problems = collected(lambda: load_retention_presets(path.parent / RETENTION_FILE, env))
    document, read_problems = collected(lambda: load_document(path, env=env, base_dir=path.parent))
    if document is None:
        raise ConfigErrors([*read_problems, *problems])
    try:
        config = AgentConfig.model_validate(document.data or {})
    except pydantic.ValidationError as error:
        problems += diagnostics_from_validation_error(error, document, model=AgentConfig)
        raise ConfigErrors(problems) from None
    problems += reference_problems(config, document, presets)
    if problems:
        raise ConfigErrors(problems)
    return config.model_copy(update={"base_dir": path.parent, "retention_presets": presets or {}, "path": path})


def reference_problems(
    config: AgentConfig, document: Document, presets: Mapping[str, object] | None
) -> list[Diagnostic]:
    """Names that must be unique or must refer to something defined, each at its place, all at once. `presets`
    None: the presets file has problems of its own (reported with these), so preset names are not checked."""

    def at(where: tuple[str | int, ...], message: str, hint: str = "") -> Diagnostic:
        position = document.position_of(where)
        return Diagnostic(document.name, position.line, position.col, message, hint)

    problems: list[Diagnostic] = []
    names: list[str] = []
    for index, source in enumerate(config.sources):
        if source.name in names:
            problems.append(at(("sources", index, "name"), f"source '{source.name}' is defined twice"))
        names.append(source.name)
    known_sources = ", ".join(names) or "none defined"
    known_presets = ", ".join(sorted(presets or {})) or "none defined"
    for index, sync in enumerate(config.syncs):
        for position, name in enumerate(sync.sources):
            if name not in names:
                message = f"sync '{sync.name}' reads unknown source '{name}'"
                problems.append(at(("syncs", index, "sources", position), message, f"sources: {known_sources}"))
        if sync.retention is not None and presets is not None and sync.retention not in presets:
            message = f"unknown retention preset '{sync.retention}'"
            hint = f"presets in {RETENTION_FILE}: {known_presets}"
            problems.append(at(("syncs", index, "retention"), message, hint))
    return problems


def load_retention_presets(path: Path, env: Mapping[str, str]) -> dict[str, RetentionSpec]:
    """policies/retention.yaml: `presets: {name: {keep_for, then}}`. No file: no presets. Every problem of the file
    is reported at once, at its place (a typo such as `preset:` would otherwise read as "none defined")."""
    if path.is_dir():
        raise ConfigErrors([Diagnostic(str(path), 1, 1, "a folder, not a retention presets file")])
    if not path.is_file():
        return {}
    document = load_document(path, env=env, base_dir=path.parent)
    problems = _retention_file_shape(document)
    if problems:
        raise ConfigErrors(problems)
    presets = {}
    for name, body in ((document.data or {}).get("presets") or {}).items():
        try:
            presets[str(name)] = RetentionSpec.model_validate(body)
        except pydantic.ValidationError as error:
            problems += diagnostics_from_validation_error(
                error, document, prefix=("presets", name), model=RetentionSpec
            )
    if problems:
        raise ConfigErrors(problems)
    return presets


def _retention_file_shape(document: Document) -> list[Diagnostic]:
    hint = "write presets: {standard: {keep_for: 90d, then: delete}}"
    data = document.data
    if data is None:
        return []
    if not isinstance(data, dict):
        return [Diagnostic(document.name, 1, 1, "a retention presets file is a mapping with `presets:`", hint)]
    problems = []
    for key in sorted(set(data) - {"presets"}, key=str):
        where = document.key_position_of((key,))
        problems.append(Diagnostic(document.name, where.line, where.col, f"unknown key '{key}'", hint))
    presets = data.get("presets")
    if presets is not None and not isinstance(presets, dict):
        where = document.position_of(("presets",))
        problems.append(Diagnostic(document.name, where.line, where.col, "presets is a mapping of names", hint))
    return problems
