"""What the sync records on a user about their groups and roles (the `idp-agent.grants` attribute): the grants
it gave, which are the only ones it ever removes, and the grants a rule wanted that the person already held
when the sync came to give them (an admin's, by hand): those stay the admin's, and the sync never removes them.
Pure: no calls."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.keycloak import User
from agent.sync.model import GRANTS_ATTRIBUTE


@dataclass(frozen=True)
class Grants:
    """Groups and roles; as recorded on a user, exactly those the sync itself gave."""

    groups: frozenset[str] = frozenset()
    realm_roles: frozenset[str] = frozenset()
    client_roles: frozenset[tuple[str, str]] = frozenset()

    def __sub__(self, other: Grants) -> Grants:
        if not other:
            return self  # the common case in a plan: nothing held by other means to take away
        return Grants(
            self.groups - other.groups,
            self.realm_roles - other.realm_roles,
            self.client_roles - other.client_roles,
        )

    def __or__(self, other: Grants) -> Grants:
        return Grants(
            self.groups | other.groups,
            self.realm_roles | other.realm_roles,
            self.client_roles | other.client_roles,
        )

    def __and__(self, other: Grants) -> Grants:
        if not self:
            return self
        return Grants(
            self.groups & other.groups,
            self.realm_roles & other.realm_roles,
            self.client_roles & other.client_roles,
        )

    def __bool__(self) -> bool:
        return bool(self.groups or self.realm_roles or self.client_roles)

    def describe(self) -> list[str]:
        return sorted(
            [f"group {g}" for g in self.groups]
            + [f"role {r}" for r in self.realm_roles]
            + [f"role {c}/{r}" for c, r in self.client_roles]
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict[str, list[Any]]:
        return {
            "groups": sorted(self.groups),
            "realm_roles": sorted(self.realm_roles),
            "client_roles": sorted([list(pair) for pair in self.client_roles]),
        }

    @classmethod
    def from_json(cls, text: str | None) -> Grants:
        return cls.from_dict(_parsed(text))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Grants:
        return cls(
            frozenset(raw.get("groups") or ()),
            frozenset(raw.get("realm_roles") or ()),
            frozenset(tuple(pair) for pair in raw.get("client_roles") or ()),
        )


@dataclass(frozen=True)
class GrantRecord:
    """The record on one user: `given` by the sync, and `held` (found held by other means when a rule first
    wanted them). Without held grants its text is the plain grants' (records written before held grants were
    kept read the same, and are not rewritten)."""

    given: Grants = field(default_factory=Grants)
    held: Grants = field(default_factory=Grants)

    def to_json(self) -> str:
        if not self.held:
            return self.given.to_json()
        return json.dumps({**self.given.to_dict(), "held": self.held.to_dict()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> GrantRecord:
        raw = _parsed(text)
        held = raw.get("held")
        return cls(Grants.from_dict(raw), Grants.from_dict(held) if isinstance(held, Mapping) else Grants())


def grant_record(user: User) -> GrantRecord:
    """The sync's record on the user (an empty one where there is none, or it cannot be read)."""
    values = user.attributes.get(GRANTS_ATTRIBUTE)
    return GrantRecord.from_json(values[0] if values else None)


def _parsed(text: str | None) -> Mapping[str, Any]:
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    return raw if isinstance(raw, Mapping) else {}
