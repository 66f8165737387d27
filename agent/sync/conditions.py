"""Rule conditions of the identity sync's mapper (`when:` in mappers/*.yaml): whether a person's value meets a
condition, and the phrase that says why, for the trace `sync explain` shows. Pure: `now` and the zone are arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from agent.sync.mapper_spec import OPERATORS, ConditionSpec
from agent.sync.transforms import ISO, format_duration, parse_date


@dataclass(frozen=True)
class DateValue:
    """A date or date-time field, placed in the worker's time zone."""

    instant: datetime
    text: str  # as shown in attributes: YYYY-MM-DD for a date, ISO 8601 with offset for a date-time


Value = str | tuple[str, ...] | DateValue


def texts_of(value: Value | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, DateValue):
        return (value.text,)
    return value


def condition_holds(
    name: str, condition: ConditionSpec, value: Value | None, zone: tzinfo, now: datetime
) -> tuple[bool, str]:
    phrases: list[str] = []
    for operator in OPERATORS:
        operand = getattr(condition, "in_" if operator == "in" else operator)
        if operand is None:
            continue
        held, yes, no = _operator(operator, operand, name, value, zone=zone, now=now)
        if not held:
            return False, no
        phrases.append(yes)
    return True, " and ".join(phrases)


# operator -> (phrase when it holds, phrase when it does not)
_PHRASES: Mapping[str, tuple[str, str]] = {
    "equals": ("==", "!="),
    "not_equals": ("!=", "=="),
    "in": ("in", "not in"),
    "not_in": ("not in", "in"),
    "contains": ("contains", "does not contain"),
    "matches": ("matches", "does not match"),
}
_NEGATED = frozenset({"not_equals", "not_in"})


def _operator(
    operator: str, operand: object, name: str, value: Value | None, *, zone: tzinfo, now: datetime
) -> tuple[bool, str, str]:
    """(holds, the phrase when it holds, the phrase when it does not)."""
    texts = texts_of(value)
    empty = f"{name} is empty"
    if operator == "exists":
        is_set = f"{name} is set"
        return bool(texts) == operand, (is_set if operand else empty), (empty if operand else is_set)
    if operator not in _PHRASES:
        return _date_operator(operator, operand, name, value, zone=zone, now=now)
    named = tuple(str(item) for item in operand) if isinstance(operand, tuple) else (str(operand),)
    shown = f"[{', '.join(named)}]" if isinstance(operand, tuple) else str(operand)
    if operator == "matches":
        shown = f"/{shown}/"
    yes, no = _PHRASES[operator]
    if not texts and operator not in _NEGATED:
        return False, f"{name} {yes} {shown}", empty
    if operator == "matches":
        hit = any(re.fullmatch(named[0], text) for text in texts)
    else:
        hit = bool(set(texts) & set(named))
    return hit != (operator in _NEGATED), f"{name} {yes} {shown}", f"{name} {no} {shown}"


def _date_operator(
    operator: str, operand: object, name: str, value: Value | None, *, zone: tzinfo, now: datetime
) -> tuple[bool, str, str]:
    if not isinstance(value, DateValue):
        return False, "", f"{name} is empty"
    if operator in ("older_than", "newer_than"):
        assert isinstance(operand, int)
        age = format_duration(operand)
        cutoff = now - timedelta(seconds=operand)
        older = value.instant <= cutoff
        if operator == "older_than":
            return older, f"{name} older than {age}", f"{name} not older than {age}"
        return not older, f"{name} newer than {age}", f"{name} not newer than {age}"
    written = parse_date(str(operand), (ISO,))
    assert written is not None  # checked when the mapper file was loaded
    if written.date_only and _is_date(value):
        # Day against day: an end date read as the end of its day is still that day, not the next one.
        ours, limit_text = value.text, written.value.date().isoformat()
        held = ours < limit_text if operator == "before" else ours > limit_text
    else:
        limit = written.instant(zone)
        held = value.instant < limit if operator == "before" else value.instant > limit
    return held, f"{name} {operator} {operand}", f"{name} not {operator} {operand}"


def _is_date(value: DateValue) -> bool:
    """A date without a time of day (shown as YYYY-MM-DD)."""
    return len(value.text) == len("YYYY-MM-DD")
