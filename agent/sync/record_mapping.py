"""One source record in the mapper's canonical fields: values taken `from` the record or rendered by template,
split, transformed, mapped through value maps, defaulted, checked for arity and parsed as dates. Pure; the
engine in mapping.py joins the records it gives by id and merges them into people."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.sync.mapper_spec import FieldSpec, MapperSpec
from agent.sync.model import FieldValue, RejectedRecord, SourceRecord
from agent.sync.transforms import ISO, WrittenDate, apply_transforms, parse_date, render_template

# Values longer than this are cut in reasons: a reason names the problem, it does not carry the data.
SHOWN_VALUE_CHARS = 40


class Refused(Exception):
    """A record or person the mapping cannot use; the message is the reason (short, no secrets)."""


SourceValue = str | tuple[str, ...] | WrittenDate


@dataclass(frozen=True)
class Mapped:
    """One source record in canonical fields (dates not yet placed in the worker's zone)."""

    source: str
    record: SourceRecord
    external_id: str
    values: Mapping[str, SourceValue]
    defaulted: frozenset[str]


@dataclass(frozen=True)
class FieldStep:
    """One field of a source as map_record makes it, worked out once per run."""

    name: str
    spec: FieldSpec
    # Taken `from` the record with no split, map, default or date, and one value kept: a single value needs only
    # its transforms (most fields of most records), not the general steps.
    plain: bool


def field_steps(fields: Mapping[str, FieldSpec]) -> tuple[FieldStep, ...]:
    """A source's fields in the order map_record makes them: `from` fields first, as templates see them."""
    ordered = sorted(fields.items(), key=lambda item: item[1].template is not None)
    return tuple(FieldStep(name, spec, _is_plain(name, spec)) for name, spec in ordered)


def _is_plain(name: str, spec: FieldSpec) -> bool:
    simple = spec.from_ is not None and spec.split is None and spec.map is None and spec.default is None
    return simple and not spec.date and spec.arity(name) != "all"


def map_record(
    record: SourceRecord, source: str, spec: MapperSpec, ordered: tuple[FieldStep, ...]
) -> Mapped | RejectedRecord:
    """The record's canonical values (`ordered`: its source's field steps, see field_steps), or why it is
    rejected: no id, or a field it cannot give."""
    fields = spec.fields[source]
    values, defaulted, problems = _record_values(record, ordered)
    external_id = values.get(spec.id)
    if not isinstance(external_id, str) or not external_id:
        id_field = fields[spec.id]
        origin = id_field.from_ or f"template {id_field.template}"
        reason = (
            problems[0] if problems and problems[0].startswith(f"{spec.id}:") else f"missing id ({origin} is empty)"
        )
        return RejectedRecord(source, record.where, reason)
    if problems:
        return RejectedRecord(source, record.where, "; ".join(problems), external_id)
    return Mapped(source, record, external_id, values, frozenset(defaulted))


def _record_values(
    record: SourceRecord, ordered: tuple[FieldStep, ...]
) -> tuple[dict[str, SourceValue], set[str], list[str]]:
    """Canonical values of one record: `from` fields first, then templates over them."""
    values: dict[str, SourceValue] = {}
    defaulted: set[str] = set()
    problems: list[str] = []
    for step in ordered:
        name, spec = step.name, step.spec
        if step.plain:
            given = record.get(spec.from_ or "")
            if given is None:
                continue
            if isinstance(given, str):
                text = apply_transforms(given, spec.transform)
                if text.strip():
                    values[name] = text
                continue
        if spec.template is None:
            raw = _raw_values(record.get(spec.from_ or ""), spec.split)
        else:
            texts = {key: value for key, value in values.items() if isinstance(value, str)}
            rendered = render_template(spec.template, texts)
            raw = [] if rendered is None else _raw_values(rendered, spec.split)
        try:
            value, used_default = _field_value(raw, name, spec)
        except Refused as refused:
            problems.append(f"{name}: {refused}")
            continue
        if value is not None:
            values[name] = value
        if used_default:
            defaulted.add(name)
    return values, defaulted, problems


def _raw_values(value: FieldValue | None, split: str | None) -> list[str]:
    items = [value] if isinstance(value, str) else list(value or ())
    if split:
        items = [part for item in items for part in item.split(split)]
    return items


def _field_value(raw: list[str], name: str, spec: FieldSpec) -> tuple[SourceValue | None, bool]:
    """Transforms, map, default, arity and date of one field; (value, whether it is the default)."""
    if len(raw) == 1:  # the common case, without the list work
        text = apply_transforms(raw[0], spec.transform)
        texts = [_mapped_value(text, spec)] if text.strip() else []
    else:
        transformed = [apply_transforms(text, spec.transform) for text in raw]
        texts = _distinct([_mapped_value(text, spec) for text in transformed if text.strip()])
    arity = spec.arity(name)
    if not texts:
        if spec.default is None:
            return None, False
        return ((spec.default,) if arity == "all" else spec.default), True
    if arity == "all":
        return tuple(texts), False
    if arity == "one" and len(texts) > 1:
        raise Refused(f"{len(texts)} different values where one is expected")
    if not spec.date:
        return texts[0], False
    written = parse_date(texts[0], spec.date)
    if written is None:
        formats = " or ".join(ISO if fmt == ISO else fmt for fmt in spec.date)
        raise Refused(f"{shown(texts[0])} is not a date ({formats})")
    return written, False


def _mapped_value(text: str, spec: FieldSpec) -> str:
    if spec.map is None:
        return text
    if text in spec.map:
        return spec.map[text]
    if spec.unmapped == "keep":
        return text
    raise Refused(f"{shown(text)} is not in the value map")


def _distinct(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "...")
