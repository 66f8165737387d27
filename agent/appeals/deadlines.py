"""Appeal deadlines as pure functions of times: when an appeal is due, and whether (and why) it is overdue."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.store.appeals import Appeal


def overdue_reasons(appeal: Appeal, now: datetime) -> tuple[str, ...]:
    """What is late, as of `now`: acknowledging, deciding, or both. Empty when nothing is (a decided appeal is
    never overdue, even if it was decided late)."""
    if appeal.is_decided:
        return ()
    reasons: list[str] = []
    if appeal.acknowledged_at is None and now > appeal.acknowledge_due:
        reasons.append(f"not acknowledged by {_short(appeal.acknowledge_due)}")
    if now > appeal.decide_due:
        reasons.append(f"not decided by {_short(appeal.decide_due)}")
    return tuple(reasons)


def is_overdue(appeal: Appeal, now: datetime) -> bool:
    return bool(overdue_reasons(appeal, now))


def next_deadline(appeal: Appeal) -> datetime | None:
    """The next date the appeal must meet: acknowledging, then deciding; None once decided."""
    if appeal.is_decided:
        return None
    return appeal.acknowledge_due if appeal.acknowledged_at is None else appeal.decide_due


def _short(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
