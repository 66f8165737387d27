"""Config diagnostics that read like a compiler's (`file:line:col: message` plus a hint), and their collection.

Also turns a pydantic ValidationError into diagnostics positioned in the YAML document it came from.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, Union, get_args, get_origin

import pydantic
from pydantic_core import ErrorDetails

from agent.errors import ConfigError
from agent.secrets import Secret

if TYPE_CHECKING:
    from agent.config.source import Document

# Values under keys named like this are never echoed, even when they are plain strings in the YAML (HTTP
# headers included: Authorization, Cookie, X-Api-Key).
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|credentials?|private_?key|api[-_]?key|authorization|cookie)$", re.IGNORECASE
)
_SHOWN_CHARS = 40
# Pydantic messages for these already say what is wrong; "found ..." would repeat or leak the input.
_NO_FOUND = frozenset({"value_error", "assertion_error", "missing", "extra_forbidden"})
_MSG_PREFIXES = ("Value error, ", "Assertion failed, ")
_MAX_LISTED_FIELDS = 12
# difflib's default cutoff (0.6) suggests 'client' for 'length'; typos and shortened names score 0.75 and up.
_CLOSE_ENOUGH = 0.7

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in one config file, at a 1-based line and column; sorts by file, line, col."""

    file: str
    line: int
    col: int
    message: str
    hint: str = ""

    def format(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class ConfigErrors(ConfigError):
    """Every problem found in the config, sorted by position; str() prints them one per line."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        # Deduplicated: pydantic can report the same problem twice (e.g. once per union member).
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(set(diagnostics)))
        super().__init__("\n".join(diagnostic.format() for diagnostic in self.diagnostics))


class Diagnostics:
    """Collects diagnostics across files, so that all of them are reported at once."""

    def __init__(self) -> None:
        self._items: list[Diagnostic] = []

    def add(self, diagnostic: Diagnostic) -> None:
        self._items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self._items.extend(diagnostics)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(sorted(self._items))

    def raise_if_any(self) -> None:
        """Raise ConfigErrors with everything collected so far; do nothing when there is nothing."""
        if self._items:
            raise ConfigErrors(self._items)


def collected(load: Callable[[], T]) -> tuple[T | None, list[Diagnostic]]:
    """`load()` and no problems, or None and the problems it raised: so that the next file is read and checked
    too, and every file's problems are reported in one round."""
    try:
        return load(), []
    except ConfigErrors as errors:
        return None, list(errors.diagnostics)


def diagnostics_from_validation_error(
    error: pydantic.ValidationError,
    document: Document,
    prefix: Sequence[str | int] = (),
    model: type[pydantic.BaseModel] | None = None,
) -> list[Diagnostic]:
    """One diagnostic per pydantic error, at the YAML position of `prefix + loc`.

    `prefix` is where the validated value sits in the document; `model` (the class validated) lets an
    unknown field suggest the closest valid names.
    """
    return [_diagnostic_from(detail, document, tuple(prefix), model) for detail in error.errors(include_url=False)]


def _diagnostic_from(
    detail: ErrorDetails,
    document: Document,
    prefix: tuple[str | int, ...],
    model: type[pydantic.BaseModel] | None,
) -> Diagnostic:
    model_loc = _loc_in_document(document, prefix, tuple(detail["loc"]))
    path = (*prefix, *model_loc)
    kind = detail["type"]
    if kind == "extra_forbidden":
        name = str(path[-1]) if model_loc else ""
        position = document.key_position_of(path)
        hint = _unknown_field_hint(name, _valid_names(model, model_loc[:-1]))
        return Diagnostic(document.name, position.line, position.col, f"unknown field '{name}'", hint)
    if kind == "missing":
        # At the key naming the incomplete mapping (or at the list item), where a reader looks for it.
        name = str(path[-1]) if model_loc else ""
        position = document.key_position_of(document.known_prefix(path))
        return Diagnostic(document.name, position.line, position.col, f"missing required field '{name}'")
    position = document.position_of(path)
    message = _readable(detail["msg"])
    if kind not in _NO_FOUND:
        message = f"{message} (found {_describe(detail['input'], path)})"
    where = _render_path(document.known_prefix(path) or path)
    if where:
        message = f"{where}: {message}"
    return Diagnostic(document.name, position.line, position.col, message)


def _loc_in_document(
    document: Document, prefix: tuple[str | int, ...], loc: tuple[str | int, ...]
) -> tuple[str | int, ...]:
    """`loc` without the parts pydantic adds that are not in the YAML (union members, validator names).

    The last part is kept even when absent: it names a missing field. A document without positions
    (not read from YAML) keeps the whole of `loc`.
    """
    if not document.positions:
        return loc
    kept: tuple[str | int, ...] = ()
    for index, part in enumerate(loc):
        if (*prefix, *kept, part) in document.positions or index == len(loc) - 1:
            kept = (*kept, part)
    return kept


def _readable(msg: str) -> str:
    for prefix in _MSG_PREFIXES:
        msg = msg.removeprefix(prefix)
    # Lower-case the first word like a compiler message, but leave acronyms such as "URL" alone.
    if len(msg) > 1 and msg[0].isupper() and msg[1].islower():
        msg = msg[0].lower() + msg[1:]
    return msg


def _describe(value: object, path: Sequence[str | int]) -> str:
    """What was found, for a message; never a secret's value."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Secret) or _names_a_secret(path):
        return "a secret (value hidden)"
    return _describe_scalar(value)


def _describe_scalar(value: object) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= _SHOWN_CHARS else value[: _SHOWN_CHARS - 3] + "...")
    return type(value).__name__


def is_secret_key(name: str) -> bool:
    """Whether a key names a secret (password, bindCredential, client_secret, api_key...)."""
    return _SECRET_KEY.search(name) is not None


def _names_a_secret(path: Sequence[str | int]) -> bool:
    # Any key on the way counts: pydantic appends union member names ("int", "str") after the field.
    return any(isinstance(part, str) and _SECRET_KEY.search(part) is not None for part in path)


def _render_path(path: Sequence[str | int]) -> str:
    """("groups", 3, "name") -> "groups[3].name"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _unknown_field_hint(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=_CLOSE_ENOUGH)
    if close:
        quoted = [f"'{candidate}'" for candidate in close]
        if len(quoted) == 1:
            return f"did you mean {quoted[0]}?"
        return f"did you mean {', '.join(quoted[:-1])} or {quoted[-1]}?"
    if valid and len(valid) <= _MAX_LISTED_FIELDS:
        return f"valid fields: {', '.join(valid)}"
    return ""


def _valid_names(model: type[pydantic.BaseModel] | None, loc: Sequence[str | int]) -> list[str]:
    """The names a YAML mapping may use at `loc` inside `model`; empty when that cannot be worked out."""
    target = _model_at(model, loc)
    if target is None:
        return []
    by_name = bool(target.model_config.get("populate_by_name") or target.model_config.get("validate_by_name"))
    names: set[str] = set()
    for name, info in target.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        names.add(alias or name)
        if alias and by_name:
            names.add(name)
    return sorted(names)


def _model_at(annotation: Any, loc: Sequence[str | int]) -> type[pydantic.BaseModel] | None:
    """Follow `loc` through fields, lists and dicts of `annotation`; best effort, None when lost."""
    current = annotation
    for part in loc:
        model = _as_model(current)
        if model is not None and isinstance(part, str):
            field = _field_for_key(model, part)
            if field is None:
                return None
            current = field.annotation
        else:
            current = _element_type(current)
            if current is None:
                return None
    return _as_model(current)


def _field_for_key(model: type[pydantic.BaseModel], key: str) -> pydantic.fields.FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias, info.validation_alias):
            return info
    return None


def _as_model(annotation: Any) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [model for arg in get_args(annotation) if (model := _as_model(arg)) is not None]
        return models[0] if len(models) == 1 else None
    return None


def _element_type(annotation: Any) -> Any:
    """The type of one item of a list/tuple/set, or of one value of a dict; None otherwise."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        found = [element for arg in args if (element := _element_type(arg)) is not None]
        return found[0] if len(found) == 1 else None
    if not isinstance(origin, type) or not args:
        return None
    if issubclass(origin, Mapping):
        return args[-1]
    if issubclass(origin, Iterable):
        return args[0]
    return None
