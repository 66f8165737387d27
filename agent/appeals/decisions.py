"""Which appeal decisions are possible for a sanction, checked before anything is written (pure)."""

from __future__ import annotations

from agent.errors import AgentError
from agent.sanctions.policy import SanctionPolicy
from agent.store.appeals import Appeal, Decision
from agent.store.sanctions import Sanction


class AppealError(AgentError):
    """An appeal cannot be opened or decided as asked; nothing was changed."""


def check_can_open(sanction: Sanction) -> None:
    """Only a sanction in force (pending or active, not being lifted) can be appealed."""
    if not sanction.is_open or sanction.ending is not None:
        raise AppealError(
            f"sanction {sanction.id} is {sanction.display_state}: there is nothing left to appeal",
            hint="appeals are against sanctions in force (pending or active)",
        )


def check_decision(
    appeal: Appeal, sanction: Sanction, decision: Decision, reduce_to: str | None, policy: SanctionPolicy
) -> None:
    """Refuse a second decision, a change to a sanction no longer in force, and a reduction that is not to a
    milder level of the policy."""
    if appeal.is_decided:
        raise AppealError(f"appeal {appeal.id} is {appeal.status} already", hint="a decision is final")
    if decision == "uphold":
        return
    if not sanction.is_open or sanction.ending is not None:
        raise AppealError(
            f"sanction {sanction.id} is {sanction.display_state}: it can no longer be {decision}d",
            hint="decide --uphold to close the appeal with a note",
        )
    if decision != "reduce":
        return
    if reduce_to is None or not policy.has_level(reduce_to):
        known = ", ".join(level.name for level in policy.levels)
        raise AppealError(f"'{reduce_to}' is not a level of the sanction policy", hint=f"levels: {known}")
    if policy.rank(reduce_to) >= policy.rank(sanction.level):
        milder = ", ".join(
            level.name for level in policy.levels if policy.rank(level.name) < policy.rank(sanction.level)
        )
        raise AppealError(
            f"a reduction must be to a milder level than {sanction.level}, not {reduce_to}",
            hint=f"milder levels: {milder}" if milder else f"{sanction.level} is the mildest level: uphold or overturn",
        )
