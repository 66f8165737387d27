"""The sanction ledger: who issued what to whom, why, until when, its state, and the exact changes it made.

`changes` is written before the writes it describes (intent first), so a run killed half-way still knows what
to restore; lifting restores exactly what is recorded there, no more. States: pending (recorded, not yet
verified effective), active (verified), and the final lifted, expired, overturned. `ending` holds the final
state while the restore is still being applied and verified.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal, NamedTuple, get_args

from agent.store.connection import Database, Row, integer, optional_text, text
from agent.store.errors import StoreConflict, StoreError
from agent.store.values import canonical_json, check_text, parse_utc, utc_text

SanctionState = Literal["pending", "active", "lifted", "expired", "overturned"]
EndState = Literal["lifted", "expired", "overturned"]
SANCTION_STATES: frozenset[str] = frozenset(get_args(SanctionState))
END_STATES: frozenset[str] = frozenset(get_args(EndState))
OPEN_STATES: frozenset[str] = frozenset({"pending", "active"})
ID_ATTEMPTS = 5


class ClientRoleRef(NamedTuple):
    """One role of one client, by the client's clientId (not its internal id, which a re-import changes)."""

    client_id: str
    role: str

    def describe(self) -> str:
        return f"{self.client_id}:{self.role}"


@dataclass(frozen=True)
class Changes:
    """What a sanction changed on the account, so that lifting undoes exactly that.

    `enabled_before` is None when the sanction did not change `enabled`; `attributes_before` is None when it
    wrote no attributes (an empty tuple for a name means the attribute did not exist).
    """

    removed_roles: tuple[str, ...] = ()
    removed_groups: tuple[str, ...] = ()
    added_groups: tuple[str, ...] = ()
    required_actions_added: tuple[str, ...] = ()
    removed_client_roles: tuple[ClientRoleRef, ...] = ()
    enabled_before: bool | None = None
    attributes_before: Mapping[str, tuple[str, ...]] | None = None

    @property
    def is_empty(self) -> bool:
        return self == Changes()

    def to_json(self) -> dict[str, object]:
        # `removed_client_roles` only when there are some: sanctions recorded before client roles existed keep
        # exactly the JSON they were stored with.
        refs = [{"client_id": ref.client_id, "role": ref.role} for ref in self.removed_client_roles]
        client_roles = {"removed_client_roles": refs} if refs else {}
        return {
            "removed_roles": list(self.removed_roles),
            "removed_groups": list(self.removed_groups),
            "added_groups": list(self.added_groups),
            "required_actions_added": list(self.required_actions_added),
            "enabled_before": self.enabled_before,
            "attributes_before": None
            if self.attributes_before is None
            else {name: list(values) for name, values in sorted(self.attributes_before.items())},
            **client_roles,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Changes:
        def names(key: str) -> tuple[str, ...]:
            value = raw.get(key) or []
            assert isinstance(value, list)
            return tuple(str(item) for item in value)

        before = raw.get("attributes_before")
        enabled = raw.get("enabled_before")
        return cls(
            removed_roles=names("removed_roles"),
            removed_groups=names("removed_groups"),
            added_groups=names("added_groups"),
            required_actions_added=names("required_actions_added"),
            removed_client_roles=_client_roles(raw.get("removed_client_roles")),
            enabled_before=None if enabled is None else bool(enabled),
            attributes_before=None
            if not isinstance(before, dict)
            else MappingProxyType({str(k): tuple(str(v) for v in values) for k, values in before.items()}),
        )


def _client_roles(raw: object) -> tuple[ClientRoleRef, ...]:
    """Stored client-role changes; absent in sanctions recorded before client roles could be removed."""
    if not isinstance(raw, list):
        return ()
    return tuple(ClientRoleRef(str(item["client_id"]), str(item["role"])) for item in raw if isinstance(item, dict))


@dataclass(frozen=True)
class NewSanction:
    realm: str
    user_id: str  # the Keycloak user id: usernames change, ids do not
    username: str  # as it was at issue time, for people reading the ledger
    level: str
    requested_level: str  # what was asked; differs from `level` when escalation raised it
    reason_code: str
    issued_by: str
    until: datetime | None  # None: until lifted
    note: str = ""
    evidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("realm", "user_id", "username", "level", "requested_level", "reason_code", "issued_by"):
            check_text(getattr(self, name), f"sanction {name}", empty=False)
        check_text(self.note, "sanction note")
        for item in self.evidence:
            check_text(item, "sanction evidence", empty=False)


@dataclass(frozen=True, kw_only=True)
class Sanction(NewSanction):
    id: str
    issued_at: datetime
    state: SanctionState
    changes: Changes = field(default_factory=Changes)
    problem: str = ""  # why the last pass could not verify it (shown while pending)
    attempts: int = 0  # enforcement passes that wrote something for it
    verified_at: datetime | None = None  # when it was first verified effective
    ending: EndState | None = None  # being lifted: the final state, set once the restore is verified
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_note: str = ""

    @property
    def is_open(self) -> bool:
        """Pending, active, or still being lifted: the account is (or may still be) under it."""
        return self.state in OPEN_STATES

    @property
    def display_state(self) -> str:
        return f"{self.state} (being {self.ending})" if self.ending else self.state


class Sanctions:
    """The ledger in the store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, new: NewSanction) -> Sanction:
        """Record a new sanction as pending, with a fresh short id (`s-` and 10 hex digits)."""
        issued_at = self._db.now()
        for _ in range(ID_ATTEMPTS):
            sanction = Sanction(**vars(new), id="s-" + secrets.token_hex(5), issued_at=issued_at, state="pending")
            try:
                with self._db.transaction(write=True) as tx:
                    tx.execute(
                        f"INSERT INTO sanctions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",  # noqa: S608  # fixed column names
                        _row(sanction),
                    )
                return sanction
            except StoreConflict:
                continue
        raise StoreError("could not draw a free sanction id; try again")

    def get(self, sanction_id: str) -> Sanction | None:
        with self._db.transaction() as tx:
            row = tx.query_one("SELECT * FROM sanctions WHERE id = ?", (sanction_id,))
        return None if row is None else _from_row(row)

    def list(
        self, *, realm: str | None = None, user_id: str | None = None, states: Iterable[str] | None = None
    ) -> list[Sanction]:
        """Sanctions in issue order, filtered by realm, user and state."""
        conditions: list[str] = []
        params: list[str] = []
        for condition, value in (("realm = ?", realm), ("user_id = ?", user_id)):
            if value is not None:
                conditions.append(condition)
                params.append(value)
        if states is not None:
            wanted = sorted(set(states))
            conditions.append(f"state IN ({', '.join('?' * len(wanted))})" if wanted else "1 = 0")
            params.extend(wanted)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._db.transaction() as tx:
            rows = tx.query(f"SELECT * FROM sanctions{where} ORDER BY issued_at, id", params)  # noqa: S608  # fixed SQL
        return [_from_row(row) for row in rows]

    def save(self, sanction: Sanction) -> Sanction:
        """Write the sanction's changeable columns (level, until, state, changes, progress, end)."""
        if sanction.state not in SANCTION_STATES:
            raise StoreError(f"sanction state '{sanction.state}' is not one of {', '.join(sorted(SANCTION_STATES))}")
        values = dict(zip(COLUMNS, _row(sanction), strict=True))
        changeable = [name for name in COLUMNS if name in MUTABLE_COLUMNS]
        with self._db.transaction(write=True) as tx:
            changed = tx.execute(
                f"UPDATE sanctions SET {', '.join(f'{name} = ?' for name in changeable)} WHERE id = ?",  # noqa: S608  # fixed column names
                [values[name] for name in changeable] + [sanction.id],
            )
        if changed != 1:
            raise StoreError(f"no sanction {sanction.id} to update")
        return sanction


COLUMNS = (
    "id", "realm", "user_id", "username", "level", "requested_level", "reason_code", "note", "evidence",
    "issued_by", "issued_at", "until_at", "state", "changes", "problem", "attempts", "verified_at", "ending",
    "ended_at", "ended_by", "end_note",
)  # fmt: skip
MUTABLE_COLUMNS = frozenset(
    {"level", "until_at", "state", "changes", "problem", "attempts", "verified_at", "ending", "ended_at", "ended_by",
     "end_note"}
)  # fmt: skip


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else utc_text(moment)


def _row(sanction: Sanction) -> list[str | int | None]:
    return [
        sanction.id, sanction.realm, sanction.user_id, sanction.username, sanction.level, sanction.requested_level,
        sanction.reason_code, sanction.note, canonical_json(list(sanction.evidence)), sanction.issued_by,
        utc_text(sanction.issued_at), _time(sanction.until), sanction.state, canonical_json(sanction.changes.to_json()),
        sanction.problem, sanction.attempts, _time(sanction.verified_at), sanction.ending, _time(sanction.ended_at),
        sanction.ended_by, sanction.end_note,
    ]  # fmt: skip


def _optional_time(row: Row, column: str) -> datetime | None:
    value = optional_text(row, column)
    return None if value is None else parse_utc(value)


def _from_row(row: Row) -> Sanction:
    return Sanction(
        id=text(row, "id"),
        realm=text(row, "realm"),
        user_id=text(row, "user_id"),
        username=text(row, "username"),
        level=text(row, "level"),
        requested_level=text(row, "requested_level"),
        reason_code=text(row, "reason_code"),
        note=text(row, "note"),
        evidence=tuple(json.loads(text(row, "evidence"))),
        issued_by=text(row, "issued_by"),
        issued_at=parse_utc(text(row, "issued_at")),
        until=_optional_time(row, "until_at"),
        state=text(row, "state"),  # type: ignore[arg-type]  # checked on save
        changes=Changes.from_json(json.loads(text(row, "changes"))),
        problem=text(row, "problem"),
        attempts=integer(row, "attempts"),
        verified_at=_optional_time(row, "verified_at"),
        ending=optional_text(row, "ending"),  # type: ignore[arg-type]  # written from EndState only
        ended_at=_optional_time(row, "ended_at"),
        ended_by=optional_text(row, "ended_by"),
        end_note=text(row, "end_note"),
    )
