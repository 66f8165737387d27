"""What may go into the store: JSON values under allow-listed keys, never a Secret; canonical JSON and UTC text.

Everything the store keeps may end up in a report or an audit export, so values are checked on the way in
(N7: no secret, no personal data beyond an allow-list), not scrubbed on the way out.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from agent.secrets import Secret
from agent.store.errors import ForbiddenValue

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
# What callers may hand in: tuples and any Mapping are accepted and stored as lists and dicts.
JsonInput = str | int | float | bool | None | list["JsonInput"] | tuple["JsonInput", ...] | Mapping[str, "JsonInput"]

# A key that names a credential is refused at any depth, whatever the allow-list says.
SECRET_LIKE_KEY = re.compile(r"password|passwd|secret|token|credential|private.?key|api.?key", re.IGNORECASE)


def to_json_value(value: object, where: str) -> JsonValue:
    """`value` as plain JSON (tuples become lists); a Secret, a secret-like key or any other type is refused,
    naming where in `value` it is."""
    try:
        return _plain_json(value)
    except _NotPlain:
        _refuse(value, where)
        raise  # _refuse raises first; kept for the type checker


class _NotPlain(Exception):
    """Something `to_json_value` refuses, somewhere in the value: `_refuse` finds it and says where."""


def _plain_json(value: object) -> JsonValue:
    # The happy path of every store write (a 10k-user sync journals 20k entries): no path text is built per
    # item, as `_refuse` does once something is refused.
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list | tuple):
        return [item if type(item) is str else _plain_json(item) for item in value]
    if isinstance(value, Mapping):
        result: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str) or _secret_like(key):
                raise _NotPlain
            # Text, the commonest value, without a call (`type(...) is str`: a str subclass takes the call).
            result[key] = item if type(item) is str else _plain_json(item)
        return result
    raise _NotPlain


def _refuse(value: object, where: str) -> None:
    """Raise ForbiddenValue for the first thing in `value` that `_plain_json` refuses, with its path."""
    if isinstance(value, Secret):
        raise ForbiddenValue(f"{where} is a Secret: secrets never go into the store")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ForbiddenValue(f"{where} is {value}: only finite numbers can be stored")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse(item, f"{where}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ForbiddenValue(f"{where} has a key of type {type(key).__name__}: keys must be strings")
            check_not_secret_key(key, where)
            _refuse(item, f"{where}[{key!r}]")
        return
    raise ForbiddenValue(
        f"{where} is a {type(value).__name__}: only JSON values (text, numbers, lists, maps) are stored"
    )


@functools.lru_cache(maxsize=4096)
def _secret_like(key: str) -> bool:
    # The same few dozen keys come again and again: a cached answer, not a regular expression search each time.
    return SECRET_LIKE_KEY.search(key) is not None


def check_not_secret_key(key: str, where: str) -> None:
    if _secret_like(key):
        raise ForbiddenValue(f"{where} has the key {key!r}, which names a credential: secrets never go into the store")


def allowed_mapping(
    value: Mapping[str, object], allowed: Collection[str], where: str, prefixes: tuple[str, ...] = ()
) -> Mapping[str, JsonValue]:
    """A read-only copy of `value` whose top-level keys are all in `allowed` (or start with one of `prefixes`)."""
    unknown = sorted(key for key in value if key not in allowed and not key.startswith(prefixes))
    if unknown:
        known = ", ".join(sorted(allowed)) + "".join(f", {prefix}<name>" for prefix in prefixes)
        raise ForbiddenValue(f"{where}: {', '.join(map(repr, unknown))} not in the allow-list ({known})")
    converted = to_json_value(value, where)
    assert isinstance(converted, dict)
    return MappingProxyType(converted)


def check_text(value: object, where: str, *, empty: bool = True) -> str:
    """`value` if it is a str (a Secret is not) without NUL characters; `empty=False` also refuses ''."""
    if isinstance(value, Secret):
        raise ForbiddenValue(f"{where} is a Secret: secrets never go into the store")
    if not isinstance(value, str):
        raise ForbiddenValue(f"{where} must be text, not {type(value).__name__}")
    if not empty and not value:
        raise ForbiddenValue(f"{where} must not be empty")
    if "\x00" in value:
        # PostgreSQL's text cannot hold NUL; refused on every backend so that a store can move between them.
        raise ForbiddenValue(f"{where} contains a NUL character, which the store cannot keep")
    return value


_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: object) -> str:
    """One text per value: sorted keys, no spaces, UTF-8 as is; what hashes are computed over. `value` is
    checked like everything stored (JSON only, no Secret)."""
    return _CANONICAL_ENCODER.encode(to_json_value(value, "value"))


def canonical_json_of_checked(value: JsonValue) -> str:
    """`canonical_json` of a value that `to_json_value` has already given: not checked a second time."""
    return _CANONICAL_ENCODER.encode(value)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def utc_text(moment: datetime) -> str:
    """`moment` in UTC as fixed-width ISO 8601 text ending in Z; a naive datetime is refused (its zone is a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the store needs timezone-aware times")
    # isoformat, not strftime: strftime('%Y') does not pad years before 1000, and fixed width is what makes
    # text order time order (`since` filters compare text).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_utc(text: str) -> datetime:
    if not text.endswith("Z"):
        raise ValueError(f"'{text}' is not a UTC time as the store writes them")
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)
