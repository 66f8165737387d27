"""Reading a mapper file: the models of agent/sync/mapper_spec.py validated, then what they cannot see alone
(references between sources, fields, templates, attributes and rules), every problem at its file:line:col, and
a sync's mapper checked against the sources that sync reads."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic

from agent.config.diagnostics import ConfigErrors, Diagnostic, diagnostics_from_validation_error
from agent.config.source import ConfigPath, Document, load_document
from agent.sync.mapper_spec import (
    CORE_FIELDS,
    DATE_FIELDS,
    MULTI_VALUED_FIELDS,
    RESERVED_ATTRIBUTES,
    STATUS_VALUES,
    FieldSpec,
    MapperSpec,
)
from agent.sync.transforms import apply_transforms, template_fields


def load_mapper(path: Path, env: Mapping[str, str]) -> MapperSpec:
    """Read and validate one mapper file; raises ConfigErrors with every problem at its file:line:col."""
    return mapper_from_document(load_document(path, env=env, base_dir=path.parent))


def load_sync_mapper(path: Path, env: Mapping[str, str], sync: str, read_sources: Collection[str]) -> MapperSpec:
    """A sync's mapper, also checked against the sources the sync reads: a source the mapper maps but the sync
    does not read lists nobody, so everyone it alone lists would be taken for a leaver (and no leaver lookup
    would ask it)."""
    document = load_document(path, env=env, base_dir=path.parent)
    spec = mapper_from_document(document)
    at = _Locator(document)
    problems = [
        at.key(
            ("sources", name),
            f"source '{name}' is not read by sync '{sync}' (it reads: {', '.join(read_sources) or 'nothing'})",
            "list it under the sync's sources in the agent config, or leave it out of this mapper",
        )
        for name in spec.sources
        if name not in read_sources
    ]
    if problems:
        raise ConfigErrors(problems)
    return spec


def mapper_from_document(document: Document) -> MapperSpec:
    """Validate a parsed mapper file: the models, then the cross-checks (ids, fields, templates, rules)."""
    if not isinstance(document.data, dict):
        raise ConfigErrors([Diagnostic(document.name, 1, 1, "a mapper file is a mapping of keys (name, id, ...)")])
    try:
        spec = MapperSpec.model_validate(document.data)
    except pydantic.ValidationError as error:
        raise ConfigErrors(diagnostics_from_validation_error(error, document, model=MapperSpec)) from None
    problems = check_mapper(spec, document)
    if problems:
        raise ConfigErrors(problems)
    return spec


def check_mapper(spec: MapperSpec, document: Document) -> list[Diagnostic]:
    """What the models cannot see alone: references between sources, fields, templates and rules."""
    at = _Locator(document)
    problems = [
        *_check_sources(spec, at),
        *_check_fields(spec, at),
        *_check_templates(spec, at),
        *_check_attributes(spec, at),
        *_check_rules(spec, at),
    ]
    return problems


class _Locator:
    """Diagnostics at the YAML position of a path (a value, or the key naming it)."""

    def __init__(self, document: Document) -> None:
        self.document = document

    def value(self, path: ConfigPath, message: str, hint: str = "") -> Diagnostic:
        position = self.document.position_of(path)
        return Diagnostic(self.document.name, position.line, position.col, message, hint)

    def key(self, path: ConfigPath, message: str, hint: str = "") -> Diagnostic:
        position = self.document.key_position_of(path)
        return Diagnostic(self.document.name, position.line, position.col, message, hint)


def _check_sources(spec: MapperSpec, at: _Locator) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    seen: dict[int, str] = {}
    for source, source_spec in spec.sources.items():
        if source not in spec.fields:
            problems.append(at.key(("sources", source), f"source '{source}' has no mapping under `fields`"))
        first = seen.setdefault(source_spec.priority, source)
        if first != source:
            problems.append(
                at.value(
                    ("sources", source, "priority"),
                    f"priority {source_spec.priority} is also the priority of source '{first}'",
                    "give each source its own priority, so that it is clear which one wins",
                )
            )
        mapped = spec.fields.get(source, {})
        for index, name in enumerate(source_spec.fields):
            if name not in mapped:
                problems.append(
                    at.value(
                        ("sources", source, "fields", index),
                        f"source '{source}' decides '{name}' but does not map it",
                        f"add `{name}: {{from: ...}}` under fields.{source}",
                    )
                )
    for source in spec.fields:
        if source not in spec.sources:
            names = ", ".join(spec.sources)
            problems.append(at.key(("fields", source), f"unknown source '{source}'", f"sources: {names}"))
    if not any(spec.creates_users(source) for source in spec.sources):
        problems.append(
            at.key(("sources",), "no source creates users", "set `creates_users: true` on the source of truth")
        )
    return problems


def _check_fields(spec: MapperSpec, at: _Locator) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    date_fields = {name for name in spec.canonical_fields if spec.is_date_field(name)}
    for source, fields in spec.fields.items():
        if spec.id not in fields and source in spec.sources:
            problems.append(
                at.key(
                    ("fields", source),
                    f"source '{source}' does not map the id field '{spec.id}'",
                    f"records join on the id: add `{spec.id}: {{from: ...}}`",
                )
            )
        for name, field in fields.items():
            problems.extend(_check_field(spec, source, name, field, at, date_elsewhere=name in date_fields))
    return problems


def _check_field(
    spec: MapperSpec, source: str, name: str, field: FieldSpec, at: _Locator, *, date_elsewhere: bool
) -> list[Diagnostic]:
    path: ConfigPath = ("fields", source, name)
    problems: list[Diagnostic] = []
    if field.values == "all" and (name in CORE_FIELDS or name == spec.id) and name not in MULTI_VALUED_FIELDS:
        problems.append(at.value((*path, "values"), f"'{name}' holds one value; use `one` or `first`"))
    if name in DATE_FIELDS and not field.date:
        problems.append(at.key(path, f"'{name}' is a date: add `date: <format>` (e.g. '%Y-%m-%d' or iso)"))
    elif date_elsewhere and not field.date:
        problems.append(at.key(path, f"'{name}' is a date in another source: add `date:` here too"))
    if field.date and (name in CORE_FIELDS or name == spec.id) and name not in DATE_FIELDS:
        problems.append(at.value((*path, "date"), f"'{name}' is not a date field"))
    if name == spec.id:
        problems.extend(_check_id_field(field, path, at))
    if name == "status":
        problems.extend(_check_status(field, path, at))
    problems.extend(_check_map_keys(field, path, at))
    if name == "timezone" and field.default is not None and not _is_zone(field.default):
        problems.append(at.value((*path, "default"), f"unknown time zone '{field.default}'", "use an IANA name"))
    return problems


def _check_map_keys(field: FieldSpec, path: ConfigPath, at: _Locator) -> list[Diagnostic]:
    """Value-map keys the field's transforms change: a value reaches the map transformed, so such a key never
    matches and every record with that value would be rejected (or kept unmapped)."""
    problems: list[Diagnostic] = []
    for key in field.map or {}:
        reached = apply_transforms(key, field.transform)
        if reached != key:
            message = f"map key '{key}' can never match: values reach the map after `transform`, as '{reached}'"
            problems.append(at.key((*path, "map", key), message, f"write the key as '{reached}'"))
    return problems


def _check_id_field(field: FieldSpec, path: ConfigPath, at: _Locator) -> list[Diagnostic]:
    # A default would make every record without an id one user with that id; a split, several ids per record.
    problems: list[Diagnostic] = []
    if field.default is not None:
        problems.append(
            at.value(
                (*path, "default"),
                f"the id field has a default ('{field.default}'): every record without an id would be that one user",
                "remove the default: a record without an id is rejected",
            )
        )
    if field.split is not None:
        problems.append(at.value((*path, "split"), "the id field is split: a record has one id", "remove the split"))
    return problems


def _check_status(field: FieldSpec, path: ConfigPath, at: _Locator) -> list[Diagnostic]:
    hint = f"status is one of {', '.join(STATUS_VALUES)}; map the source's words onto them"
    problems = [
        at.value((*path, "map", key), f"status maps '{key}' to '{value}'", hint)
        for key, value in (field.map or {}).items()
        if value not in STATUS_VALUES
    ]
    if field.default is not None and field.default not in STATUS_VALUES:
        problems.append(at.value((*path, "default"), f"status default '{field.default}'", hint))
    return problems


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_templates(spec: MapperSpec, at: _Locator) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    for source, fields in spec.fields.items():
        for name, field in fields.items():
            if field.template is None:
                continue
            for used in template_fields(field.template):
                reason = _template_input_problem(fields.get(used), used, name)
                if reason:
                    problems.append(at.value(("fields", source, name, "template"), reason))
    return problems


def _template_input_problem(used_spec: FieldSpec | None, used: str, name: str) -> str:
    if used_spec is None:
        return f"template of '{name}' names '{used}', which this source does not map"
    if used_spec.template is not None:
        return f"template of '{name}' names '{used}', itself a template; name fields with `from`"
    if used_spec.date:
        return f"template of '{name}' names '{used}', a date"
    if used_spec.arity(used) == "all":
        return f"template of '{name}' names '{used}', which holds several values"
    return ""


def _check_attributes(spec: MapperSpec, at: _Locator) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    known = spec.canonical_fields
    for index, name in enumerate(spec.attributes):
        if name in RESERVED_ATTRIBUTES:
            problems.append(at.value(("attributes", index), f"'{name}' is a Keycloak user field, not an attribute"))
        elif name not in known:
            problems.append(at.value(("attributes", index), f"attribute '{name}' is not a mapped field", _known(known)))
    return problems


def _check_rules(spec: MapperSpec, at: _Locator) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    known = spec.canonical_fields
    names: dict[str, int] = {}
    for index, rule in enumerate(spec.rules):
        first = names.setdefault(rule.name, index)
        if first != index:
            problems.append(at.value(("rules", index, "name"), f"rule name '{rule.name}' is also rule {first + 1}'s"))
        for name, condition in rule.when.items():
            path: ConfigPath = ("rules", index, "when", name)
            if name not in known:
                problems.append(at.key(path, f"rule '{rule.name}' tests '{name}', which no source maps", _known(known)))
            elif condition.uses_dates and not spec.is_date_field(name):
                problems.append(at.key(path, f"rule '{rule.name}' compares '{name}' as a date; it is not one"))
    return problems


def _known(names: frozenset[str]) -> str:
    return f"mapped fields: {', '.join(sorted(names))}"
