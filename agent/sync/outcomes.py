"""What a sync run's writes produced: each plan item's outcome, and the units of work the executor's workers
send (an import batch, a group of people's changes, one person's steps) with what each gave back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from agent.errors import Interrupted, OutcomeUnknown
from agent.store.sync_records import UserRecord
from agent.sync.plan import SyncItem

Outcome = Literal["applied", "failed", "skipped", "unknown"]


@dataclass(frozen=True)
class ItemResult:
    item: SyncItem
    outcome: Outcome
    detail: str = ""
    user_id: str | None = None
    # A user created now: the sync's record of it (see agent/sync/quick_read.py), from what Keycloak accepted.
    created: UserRecord | None = None


@dataclass
class SyncOutcome:
    results: list[ItemResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for result in self.results:
            key = f"{result.item.action}:{result.outcome}"
            totals[key] = totals.get(key, 0) + 1
        return totals

    @property
    def failed(self) -> list[ItemResult]:
        return [result for result in self.results if result.outcome == "failed"]


@dataclass(frozen=True)
class Work:
    """One unit for the workers (an import batch, a group of people's changes, one person's steps): the call
    that makes it, and the plan items it covers (recorded as intents before it is sent)."""

    send: Callable[[], Done]
    items: list[SyncItem]


@dataclass
class Done:
    """What one unit of work (an import batch, one person's steps) produced; `error` stops the run."""

    results: list[ItemResult] = field(default_factory=list)
    error: Exception | None = None


def with_every_outcome(unit: Work, done: Done) -> Done:
    """A unit an error stopped, with an outcome for each of its items left without one, as each has an intent in
    the journal: `unknown` where a write went out and no answer came back, `skipped` where the agent was
    stopping before sending it, else `failed` (Keycloak answered no, or could not be reached)."""
    if done.error is None:
        return done
    answered = {id(result.item) for result in done.results}
    missing = [item for item in unit.items if id(item) not in answered]
    outcome: Outcome = "failed"
    if isinstance(done.error, OutcomeUnknown):
        outcome = "unknown"
    elif isinstance(done.error, Interrupted):
        outcome = "skipped"
    detail = f"not finished: {done.error}"
    return Done([*done.results, *(ItemResult(item, outcome, detail, item.user_id) for item in missing)], done.error)


def settled(results: list[ItemResult], refused: Mapping[str, str]) -> list[ItemResult]:
    """A person's step results once their change was sent: as they were, or, for a person whose change
    Keycloak refused, every applied step failed with its reason (nothing of the change was made)."""
    reason = {user_id: f"refused by Keycloak: {why}" for user_id, why in refused.items()}
    return [
        replace(result, outcome="failed", detail=reason[result.user_id])
        if result.outcome == "applied" and result.user_id in reason
        else result
        for result in results
    ]
