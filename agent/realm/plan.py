"""Plans: what would change in one realm, as values a person can read and a machine can compare.

A plan is computed by pure functions from the desired spec and a live snapshot; only the executor writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "delete"]
ACTION_SYMBOL: Mapping[Action, str] = {"create": "+", "update": "~", "delete": "-"}
HIDDEN = "(value hidden)"


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: its live value and the value the config asks for."""

    field: str
    live: Any
    desired: Any
    secret: bool = False

    def shown(self) -> tuple[Any, Any]:
        """The pair as a plan may print it: secrets never appear, only the fact that they change."""
        if self.secret:
            return (HIDDEN if self.live is not None else None, HIDDEN)
        return (self.live, self.desired)


@dataclass(frozen=True)
class Change:
    """Create, update or delete one object of one kind. `desired`/`live` are kind-specific values."""

    kind: str
    action: Action
    key: str
    fields: tuple[FieldChange, ...] = ()
    desired: Any = field(default=None, compare=False, repr=False)
    live: Any = field(default=None, compare=False, repr=False)
    note: str = ""


@dataclass(frozen=True)
class Plan:
    realm: str
    changes: tuple[Change, ...] = ()
    realm_exists: bool = True

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[Action, int]:
        totals: dict[Action, int] = {"create": 0, "update": 0, "delete": 0}
        for change in self.changes:
            totals[change.action] += 1
        return totals

    def of_kind(self, kind: str) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.kind == kind)


def diff_fields(
    live: Mapping[str, Any], desired: Mapping[str, Any], secrets: Iterable[str] = (), whole: Iterable[str] = ()
) -> tuple[FieldChange, ...]:
    """Fields of `desired` whose value differs from `live`; fields not in `desired` are not managed. A map named
    in `whole` is managed whole (Keycloak replaces it whole): a key it lacks is a difference too."""
    secret_fields, whole_maps = set(secrets), set(whole)
    changes = []
    for name, wanted in desired.items():
        current = live.get(name)
        same_keys = name not in whole_maps or set(current or {}) == set(wanted or {})
        if not (same_keys and values_equal(current, wanted)):
            changes.append(FieldChange(name, current, wanted, secret=name in secret_fields))
    return tuple(changes)


def values_equal(live: Any, desired: Any) -> bool:
    """Equality as Keycloak stores values: lists compare as sets where order carries no meaning,
    numbers and booleans may come back as strings in attribute maps."""
    if isinstance(desired, bool) or isinstance(live, bool):
        return _as_bool(live) == _as_bool(desired)
    if isinstance(desired, int | float) and isinstance(live, str | int | float):
        try:
            return float(live) == float(desired)
        except ValueError:
            return False
    if isinstance(desired, list | tuple) and isinstance(live, list | tuple):
        return sorted(map(_canonical, live)) == sorted(map(_canonical, desired))
    if isinstance(desired, Mapping) and isinstance(live, Mapping):
        keys = set(desired)
        return all(values_equal(live.get(key), desired[key]) for key in keys)
    if desired is None:
        return live is None
    return bool(live == desired)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _canonical(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else value
