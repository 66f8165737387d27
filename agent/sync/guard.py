"""Safety brakes, as pure functions: a broken or shrunken source never means "everyone left", and more
removals than a threshold stop the run before any write and are staged for an explicit approval."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from agent.sync.model import SourceRead
from agent.sync.plan import SyncPlan

MAX_REMOVALS = 500  # Entra Connect's default deletion threshold
MAX_REMOVAL_RATIO = 0.20  # Okta's import safeguard
MAX_SHRINK_RATIO = 0.20


@dataclass(frozen=True)
class SafetyLimits:
    max_removals: int = MAX_REMOVALS
    max_removal_ratio: float = MAX_REMOVAL_RATIO
    max_shrink_ratio: float = MAX_SHRINK_RATIO


@dataclass(frozen=True)
class Verdict:
    """`stop`: apply nothing (a suspect source); `stage`: apply nothing, keep the removal set for approval."""

    stop: bool
    stage: bool
    reasons: tuple[str, ...]

    @property
    def proceed(self) -> bool:
        return not (self.stop or self.stage)


def removal_threshold(enabled_users: int, limits: SafetyLimits) -> int:
    """Removals at or above this stop the run: min(count, share of the enabled managed users), at least 1."""
    by_share = math.ceil(enabled_users * limits.max_removal_ratio)
    return max(1, min(limits.max_removals, by_share))


def suspect_reads(
    reads: Mapping[str, SourceRead], baselines: Mapping[str, int], managed_users: int, limits: SafetyLimits
) -> list[str]:
    """Sources whose read looks broken: empty while users are managed, or shrunk beyond the allowed share
    since the last good read."""
    reasons = []
    for name, read in sorted(reads.items()):
        count = len(read.records)
        last_good = baselines.get(name)
        if count == 0 and managed_users > 0:
            reasons.append(f"source '{name}' returned no records while {managed_users} users are managed")
        elif last_good and count < last_good * (1 - limits.max_shrink_ratio):
            share = 1 - count / last_good
            reasons.append(
                f"source '{name}' shrank by {share:.0%} since the last good run ({last_good} -> {count}), "
                f"more than {limits.max_shrink_ratio:.0%}"
            )
    return reasons


def check_safety(
    plan: SyncPlan, reads: Mapping[str, SourceRead], baselines: Mapping[str, int], limits: SafetyLimits
) -> Verdict:
    suspects = suspect_reads(reads, baselines, plan.managed_users, limits)
    if suspects:
        return Verdict(stop=True, stage=False, reasons=tuple(suspects))
    removals = len(plan.removals)
    threshold = removal_threshold(plan.enabled_users, limits)
    if removals and removals >= threshold:
        reason = (
            f"{removals} removals (disables, deletes and grant removals) reach the threshold of {threshold} (min of "
            f"{limits.max_removals} and {limits.max_removal_ratio:.0%} of {plan.enabled_users} enabled managed users)"
        )
        return Verdict(stop=False, stage=True, reasons=(reason,))
    return Verdict(stop=False, stage=False, reasons=())
