"""Appeals as library functions (the CLI is a thin shell over them): open, acknowledge, decide, list.
Every step is journalled with its actor, the appeal and the sanction; the appellant's text is not (it may
hold personal data and the journal is kept for years: it stays in the appeal's own row)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from agent.appeals.deadlines import overdue_reasons
from agent.appeals.decisions import AppealError, check_can_open, check_decision
from agent.sanctions.context import SanctionContext
from agent.sanctions.plan import REDUCED_FROM_PREFIX, REDUCED_NOTE_PREFIX
from agent.sanctions.policy import AppealsSpec
from agent.sanctions.service import EnforceReport, enforce_sanctions, lift_sanction, reduce_sanction
from agent.store import Store
from agent.store.appeals import Appeal, Decision, NewAppeal
from agent.store.sanctions import Sanction
from agent.store.values import JsonValue


@dataclass(frozen=True)
class ListedAppeal:
    appeal: Appeal
    overdue: tuple[str, ...]  # what is late as of the listing time; empty when nothing is


def require_sanction(store: Store, sanction_id: str) -> Sanction:
    sanction = store.sanctions.get(sanction_id)
    if sanction is None:
        raise AppealError(f"no sanction {sanction_id}", hint="see `idp-agent sanction list`")
    return sanction


def require_appeal(store: Store, appeal_id: str) -> Appeal:
    appeal = store.appeals.get(appeal_id)
    if appeal is None:
        raise AppealError(f"no appeal {appeal_id}", hint="see `idp-agent appeal list`")
    return appeal


def journal_appeal(
    store: Store, appeal: Appeal, *, action: str, actor: str, reason: str, extra: Mapping[str, JsonValue] | None = None
) -> None:
    details: dict[str, JsonValue] = {"appeal_id": appeal.id, "sanction_id": appeal.sanction_id, **(extra or {})}
    store.journal.append(
        actor=actor, action=action, subject=appeal.username, realm=appeal.realm, reason=reason, details=details
    )


def open_appeal(store: Store, deadlines: AppealsSpec, sanction_id: str, *, text: str, actor: str) -> Appeal:
    """Open an appeal against a sanction in force; due dates from the policy's `appeals:` deadlines."""
    sanction = require_sanction(store, sanction_id)
    check_can_open(sanction)
    new = NewAppeal(sanction.id, sanction.realm, sanction.username, text, actor)
    with store.atomic():  # never an appeal without its journal entry
        appeal = store.appeals.open(
            new, acknowledge_within=deadlines.acknowledge_within, decide_within=deadlines.decide_within
        )
        journal_appeal(store, appeal, action="appeal.open", actor=actor, reason="appeal opened",
                       extra={"level": sanction.level})  # fmt: skip
    return appeal


def acknowledge_appeal(store: Store, appeal_id: str, *, actor: str) -> Appeal:
    """Confirm receipt (stops the acknowledge deadline); a second acknowledgement changes nothing."""
    with store.atomic():
        before = require_appeal(store, appeal_id)
        appeal = store.appeals.acknowledge(appeal_id, actor)
        if before.acknowledged_at is None:
            journal_appeal(store, appeal, action="appeal.acknowledge", actor=actor, reason="appeal acknowledged")
    return appeal


def list_appeals(
    store: Store, now: datetime, *, realm: str | None = None, overdue_only: bool = False
) -> list[ListedAppeal]:
    """Appeals in the order opened, each with what is overdue as of `now`."""
    listed = [ListedAppeal(appeal, overdue_reasons(appeal, now)) for appeal in store.appeals.list(realm=realm)]
    return [item for item in listed if item.overdue or not overdue_only]


@dataclass(frozen=True)
class DecidedAppeal:
    appeal: Appeal
    sanction: Sanction  # the appealed sanction as it is now (overturned, lifted, or still being restored)
    replacement: Sanction | None = None  # the milder sanction, when the decision is reduce

    @property
    def restore_pending(self) -> str:
        """Why the sanction's end is not yet verified in Keycloak (empty when it is, or nothing was to end)."""
        if self.sanction.ending is None:
            return ""
        return self.sanction.problem or "not yet verified"


def decide_appeal(
    context: SanctionContext,
    appeal_id: str,
    decision: Decision,
    *,
    note: str,
    actor: str,
    reduce_to: str | None = None,
) -> DecidedAppeal:
    """Decide an appeal: uphold (nothing changes), overturn (the sanction ends as overturned and access is
    restored exactly), or reduce (a milder sanction replaces it). The decision is recorded and journalled
    before the sanction is changed, so the journal reads decision -> sanction writes; the sanctions service
    keeps an unfinished restore visible and the next `sanctions enforce` completes it."""
    store = context.store
    appeal = require_appeal(store, appeal_id)
    if appeal.realm != context.realm:
        raise AppealError(f"appeal {appeal.id} is in realm '{appeal.realm}', not '{context.realm}'")
    sanction = require_sanction(store, appeal.sanction_id)
    check_decision(appeal, sanction, decision, reduce_to, context.policy)
    details: dict[str, JsonValue] = {"decision": decision, "level": reduce_to or sanction.level, "note": note}
    with store.atomic():
        decided = store.appeals.decide(appeal.id, decision, actor=actor, note=note, reduced_to=reduce_to)
        journal_appeal(store, decided, action="appeal.decide", actor=actor, reason=f"appeal {decision}", extra=details)
    return _carry_out(context, decided, sanction)


def _carry_out(context: SanctionContext, decided: Appeal, sanction: Sanction) -> DecidedAppeal:
    """What a decision does to its sanction (nothing for an uphold)."""
    actor = decided.decided_by or context.actor
    why = f"appeal {decided.id}: {decided.note}"
    if decided.decision == "overturn":
        ended = lift_sanction(context, sanction.id, actor=actor, note=why, outcome="overturned")
        return DecidedAppeal(decided, ended)
    if decided.decision == "reduce":
        assert decided.reduced_to is not None  # check_decision refused a reduce without a level
        milder = _replacement_of(context.store, sanction)
        if milder is None:
            milder = reduce_sanction(context, sanction.id, level=decided.reduced_to, actor=actor, note=why)
        else:  # added before the process stopped: only the end of the old one is left to do
            note = f"{REDUCED_NOTE_PREFIX}{milder.level} ({milder.id}): {why}"
            lift_sanction(context, sanction.id, actor=actor, note=note)
        return DecidedAppeal(decided, require_sanction(context.store, sanction.id), milder)
    return DecidedAppeal(decided, sanction)


def _replacement_of(store: Store, sanction: Sanction) -> Sanction | None:
    """The milder sanction a reduction of `sanction` added, if one was added."""
    marker = f"{REDUCED_FROM_PREFIX}{sanction.id}:"
    found = store.sanctions.list(realm=sanction.realm, user_id=sanction.user_id)
    return next((other for other in found if other.note.startswith(marker)), None)


def finish_decisions(context: SanctionContext) -> list[DecidedAppeal]:
    """Decisions recorded whose sanction change did not follow (the process stopped between the two): an
    overturn or a reduction whose sanction is still open and not being ended is carried out now. The enforce
    pass calls this first, so a decision is never lost to a crash (N3), and deciding again is not needed."""
    finished: list[DecidedAppeal] = []
    for appeal in context.store.appeals.list(realm=context.realm):
        if appeal.decision not in {"overturn", "reduce"}:
            continue
        sanction = context.store.sanctions.get(appeal.sanction_id)
        if sanction is None or not sanction.is_open or sanction.ending is not None:
            continue
        finished.append(_carry_out(context, appeal, sanction))
    return finished


def enforce_with_appeals(context: SanctionContext) -> tuple[list[DecidedAppeal], EnforceReport]:
    """The enforcement pass (CLI and daemon): unfinished appeal decisions first, then `enforce_sanctions`."""
    finished = finish_decisions(context)
    return finished, enforce_sanctions(context)
