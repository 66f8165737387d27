"""Rule conditions of the identity sync's mapper (`when:` in mappers/*.yaml): whether a person's value meets a
condition, and the phrase that says why, for the trace `sync explain` shows. Pure: `now` and the zone are arguments.

A condition is worked out once per run into its tests (`condition_tests`): the operands as texts, the regular
expression compiled, the phrases written; each person is then only compared against them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from agent.sync.mapper_spec import DATE_OPERATORS, OPERATORS, ConditionSpec
from agent.sync.transforms import ISO, WrittenDate, format_duration, parse_date


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


@dataclass(frozen=True)
class Test:
    """One operator of a condition with what it compares against, and its phrases: `yes` when it holds, `no`
    when it does not, `empty` when the field has no value (for `exists`, `no` says that already)."""

    operator: str
    operand: object
    texts: frozenset[str]  # the operand of equals, not_equals, in, not_in, contains
    pattern: re.Pattern[str] | None  # matches
    limit: WrittenDate | None  # before, after
    yes: str
    no: str
    empty: str


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


def condition_tests(name: str, condition: ConditionSpec) -> tuple[Test, ...]:
    """The operators written in `condition`, in the order they are tested, for the field `name`."""
    tests: list[Test] = []
    for operator in OPERATORS:
        operand = getattr(condition, "in_" if operator == "in" else operator)
        if operand is not None:
            tests.append(_test(operator, operand, name))
    return tuple(tests)


def _test(operator: str, operand: object, name: str) -> Test:
    empty = f"{name} is empty"
    if operator == "exists":
        is_set = f"{name} is set"
        yes, no = (is_set, empty) if operand else (empty, is_set)
        return Test(operator, operand, frozenset(), None, None, yes, no, empty)
    if operator in DATE_OPERATORS:
        return _date_test(operator, operand, name, empty)
    named = tuple(str(item) for item in operand) if isinstance(operand, tuple) else (str(operand),)
    shown = f"[{', '.join(named)}]" if isinstance(operand, tuple) else str(operand)
    pattern = None
    if operator == "matches":
        shown = f"/{shown}/"
        pattern = re.compile(named[0])
    yes, no = _PHRASES[operator]
    phrases = f"{name} {yes} {shown}", f"{name} {no} {shown}"
    return Test(operator, operand, frozenset(named), pattern, None, *phrases, empty)


def _date_test(operator: str, operand: object, name: str, empty: str) -> Test:
    if operator in ("older_than", "newer_than"):
        assert isinstance(operand, int)
        age = format_duration(operand)
        word = "older" if operator == "older_than" else "newer"
        yes, no = f"{name} {word} than {age}", f"{name} not {word} than {age}"
        return Test(operator, operand, frozenset(), None, None, yes, no, empty)
    limit = parse_date(str(operand), (ISO,))
    assert limit is not None  # checked when the mapper file was loaded
    yes, no = f"{name} {operator} {operand}", f"{name} not {operator} {operand}"
    return Test(operator, operand, frozenset(), None, limit, yes, no, empty)


def tests_hold(tests: tuple[Test, ...], value: Value | None, zone: tzinfo, now: datetime) -> tuple[bool, str]:
    """Whether every test holds, and why: the phrases of all when they do, that of the first that fails else."""
    texts = texts_of(value)
    phrases: list[str] = []
    for test in tests:
        held, phrase = _outcome(test, value, texts, zone, now)
        if not held:
            return False, phrase
        phrases.append(phrase)
    return True, " and ".join(phrases)


def _outcome(test: Test, value: Value | None, texts: tuple[str, ...], zone: tzinfo, now: datetime) -> tuple[bool, str]:
    operator = test.operator
    if operator == "exists":
        held = bool(texts) == test.operand
    elif operator in DATE_OPERATORS:
        if not isinstance(value, DateValue):
            return False, test.empty
        held = _date_holds(test, value, zone, now)
    elif not texts and operator not in _NEGATED:
        return False, test.empty
    elif test.pattern is not None:
        held = any(test.pattern.fullmatch(text) for text in texts)
    else:
        held = test.texts.isdisjoint(texts) == (operator in _NEGATED)
    return held, test.yes if held else test.no


def _date_holds(test: Test, value: DateValue, zone: tzinfo, now: datetime) -> bool:
    if test.limit is None:  # older_than, newer_than
        assert isinstance(test.operand, int)
        older = value.instant <= now - timedelta(seconds=test.operand)
        return older if test.operator == "older_than" else not older
    if test.limit.date_only and _is_date(value):
        # Day against day: an end date read as the end of its day is still that day, not the next one.
        ours, limit_text = value.text, test.limit.value.date().isoformat()
        return ours < limit_text if test.operator == "before" else ours > limit_text
    limit = test.limit.instant(zone)
    return value.instant < limit if test.operator == "before" else value.instant > limit


def _is_date(value: DateValue) -> bool:
    """A date without a time of day (shown as YYYY-MM-DD)."""
    return len(value.text) == len("YYYY-MM-DD")
