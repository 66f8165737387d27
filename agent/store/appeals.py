"""Appeals against sanctions: who appealed which sanction, when it is due to be acknowledged and decided,
and the decision (uphold, overturn, or reduce to a milder level) with its note and who took it.

Due dates are fixed when the appeal is opened, from the policy then in force: changing the policy later
does not move the deadlines of appeals already open. At most one undecided appeal per sanction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, get_args

from agent.store.connection import Database, Row, optional_text, text
from agent.store.errors import StoreConflict, StoreError
from agent.store.values import check_text, parse_utc, utc_text

Decision = Literal["uphold", "overturn", "reduce"]
DECISIONS: frozenset[str] = frozenset(get_args(Decision))
ID_ATTEMPTS = 5


@dataclass(frozen=True)
class NewAppeal:
    sanction_id: str
    realm: str
    username: str  # whose sanction, for people reading the list
    text: str  # the appellant's words; kept here only, never in the journal (personal data)
    opened_by: str

    def __post_init__(self) -> None:
        for name in ("sanction_id", "realm", "username", "text", "opened_by"):
            check_text(getattr(self, name), f"appeal {name}", empty=False)


@dataclass(frozen=True, kw_only=True)
class Appeal(NewAppeal):
    id: str
    opened_at: datetime
    acknowledge_due: datetime
    decide_due: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision: Decision | None = None
    reduced_to: str | None = None  # the level, when the decision is reduce
    note: str = ""  # the decision's reasons

    @property
    def is_decided(self) -> bool:
        return self.decision is not None

    @property
    def status(self) -> str:
        if self.decision is not None:
            return f"decided: {self.decision}" + (f" to {self.reduced_to}" if self.reduced_to else "")
        return "acknowledged" if self.acknowledged_at is not None else "open"


class Appeals:
    """The appeals in the store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def open(self, new: NewAppeal, *, acknowledge_within: timedelta, decide_within: timedelta) -> Appeal:
        """Record a new appeal (`a-` and 10 hex digits), opened now by the store's clock and due that long
        after; refused while another appeal against the same sanction is undecided."""
        opened_at = self._db.now()
        for _ in range(ID_ATTEMPTS):
            appeal = Appeal(
                **vars(new), id="a-" + secrets.token_hex(5), opened_at=opened_at,
                acknowledge_due=opened_at + acknowledge_within, decide_due=opened_at + decide_within,
            )  # fmt: skip
            try:
                with self._db.transaction(write=True) as tx:
                    pending = tx.query_one(
                        "SELECT id FROM appeals WHERE sanction_id = ? AND decision IS NULL", (new.sanction_id,)
                    )
                    if pending is not None:
                        raise StoreError(
                            f"sanction {new.sanction_id} has an undecided appeal already: {text(pending, 'id')}",
                            hint="decide that one first (`idp-agent appeal decide`)",
                        )
                    tx.execute(
                        f"INSERT INTO appeals ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",  # noqa: S608  # fixed column names
                        _row(appeal),
                    )
                return appeal
            except StoreConflict:
                continue
        raise StoreError("could not draw a free appeal id; try again")

    def get(self, appeal_id: str) -> Appeal | None:
        with self._db.transaction() as tx:
            row = tx.query_one("SELECT * FROM appeals WHERE id = ?", (appeal_id,))
        return None if row is None else _from_row(row)

    def list(self, *, realm: str | None = None, sanction_id: str | None = None) -> list[Appeal]:
        """Appeals in the order they were opened, filtered by realm and sanction."""
        active = [(f"{column} = ?", value) for column, value in (("realm", realm), ("sanction_id", sanction_id))
                  if value is not None]  # fmt: skip
        where = " WHERE " + " AND ".join(condition for condition, _ in active) if active else ""
        with self._db.transaction() as tx:
            rows = tx.query(f"SELECT * FROM appeals{where} ORDER BY opened_at, id", [v for _, v in active])  # noqa: S608  # fixed SQL
        return [_from_row(row) for row in rows]

    def acknowledge(self, appeal_id: str, actor: str) -> Appeal:
        """Mark the appeal acknowledged now (once; acknowledging again changes nothing)."""
        check_text(actor, "appeal actor", empty=False)
        with self._db.transaction(write=True) as tx:
            appeal = _require(tx.query_one("SELECT * FROM appeals WHERE id = ?", (appeal_id,)), appeal_id)
            if appeal.acknowledged_at is not None:
                return appeal
            appeal = replace(appeal, acknowledged_at=self._db.now(), acknowledged_by=actor)
            tx.execute(
                "UPDATE appeals SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
                (_time(appeal.acknowledged_at), actor, appeal_id),
            )
        return appeal

    def decide(self, appeal_id: str, decision: Decision, *, actor: str, note: str, reduced_to: str | None) -> Appeal:
        """Record the decision now; an appeal is decided once. Deciding also acknowledges it, if it was not."""
        if decision not in DECISIONS:
            raise StoreError(f"appeal decision '{decision}' is not one of {', '.join(sorted(DECISIONS))}")
        if (decision == "reduce") != (reduced_to is not None):
            raise StoreError("a reduced level goes with the decision reduce, and only with it")
        check_text(actor, "appeal actor", empty=False)
        check_text(note, "appeal note", empty=False)
        with self._db.transaction(write=True) as tx:
            appeal = _require(tx.query_one("SELECT * FROM appeals WHERE id = ?", (appeal_id,)), appeal_id)
            if appeal.decision is not None:
                raise StoreError(f"appeal {appeal_id} was decided already ({appeal.status})")
            now = self._db.now()
            appeal = replace(
                appeal, decided_at=now, decided_by=actor, decision=decision, reduced_to=reduced_to, note=note,
                acknowledged_at=appeal.acknowledged_at or now, acknowledged_by=appeal.acknowledged_by or actor,
            )  # fmt: skip
            tx.execute(
                "UPDATE appeals SET decided_at = ?, decided_by = ?, decision = ?, reduced_to = ?, note = ?,"
                " acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
                (_time(now), actor, decision, reduced_to, note, _time(appeal.acknowledged_at), appeal.acknowledged_by,
                 appeal_id),
            )  # fmt: skip
        return appeal


COLUMNS = (
    "id", "sanction_id", "realm", "username", "text", "opened_by", "opened_at", "acknowledge_due", "decide_due",
    "acknowledged_at", "acknowledged_by", "decided_at", "decided_by", "decision", "reduced_to", "note",
)  # fmt: skip


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else utc_text(moment)


def _optional_time(row: Row, column: str) -> datetime | None:
    value = optional_text(row, column)
    return None if value is None else parse_utc(value)


def _row(appeal: Appeal) -> list[str | None]:
    return [
        appeal.id, appeal.sanction_id, appeal.realm, appeal.username, appeal.text, appeal.opened_by,
        utc_text(appeal.opened_at), utc_text(appeal.acknowledge_due), utc_text(appeal.decide_due),
        _time(appeal.acknowledged_at), appeal.acknowledged_by, _time(appeal.decided_at), appeal.decided_by,
        appeal.decision, appeal.reduced_to, appeal.note,
    ]  # fmt: skip


def _require(row: Row | None, appeal_id: str) -> Appeal:
    if row is None:
        raise StoreError(f"no appeal {appeal_id}", hint="see `idp-agent appeal list`")
    return _from_row(row)


def _from_row(row: Row) -> Appeal:
    decision = optional_text(row, "decision")
    if decision is not None and decision not in DECISIONS:
        raise StoreError(f"appeal {text(row, 'id')} has an unknown decision '{decision}'")
    return Appeal(
        id=text(row, "id"),
        sanction_id=text(row, "sanction_id"),
        realm=text(row, "realm"),
        username=text(row, "username"),
        text=text(row, "text"),
        opened_by=text(row, "opened_by"),
        opened_at=parse_utc(text(row, "opened_at")),
        acknowledge_due=parse_utc(text(row, "acknowledge_due")),
        decide_due=parse_utc(text(row, "decide_due")),
        acknowledged_at=_optional_time(row, "acknowledged_at"),
        acknowledged_by=optional_text(row, "acknowledged_by"),
        decided_at=_optional_time(row, "decided_at"),
        decided_by=optional_text(row, "decided_by"),
        decision=decision,  # type: ignore[arg-type]  # checked above
        reduced_to=optional_text(row, "reduced_to"),
        note=text(row, "note"),
    )
