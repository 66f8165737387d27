"""Access-review campaigns: start (items planned by `campaign_items`), reviewers' sheets out and decisions in
(read by `campaign_sheets`), and close (default decisions, revocations applied through the gateway behind the
safety threshold, journalled, then the evidence bundle).

The close's decisions and threshold are pure; `start_campaign`, `record_sheet` and `close_campaign` do the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from agent.errors import ConfigError, Rejected, SafetyStop
from agent.keycloak import KeycloakGateway
from agent.review.campaign_items import Scope, default_dormant_days, plan_items, role_ref_of
from agent.review.campaign_sheets import FINAL_OUTCOMES, parse_sheet, sheet_csv
from agent.review.model import RoleRef, Snapshot
from agent.review.policy import ReviewPolicy
from agent.store.campaigns import (
    Campaign,
    Decision,
    ItemOutcome,
    NewCampaign,
    RecordedDecision,
    ReviewItem,
)
from agent.store.db import Store
from agent.store.journal import NewEntry
from agent.store.runs import ItemOutcome as RunItemOutcome
from agent.store.runs import NewItem
from agent.sync.guard import SafetyLimits, removal_threshold

CAMPAIGN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
CLOSE_RUN_KIND = "review-close"
DEFAULT_LIMITS = SafetyLimits()  # the sync's brakes: min(500, 20 % of the realm's users)


# -- closing (pure parts) ----------------------------------------------------------------------------------


def default_decisions(items: Iterable[ReviewItem], campaign: Campaign, actor: str) -> list[RecordedDecision]:
    """The campaign's default decision for every item nobody answered."""
    text = f"no answer by the close of the campaign: default decision '{campaign.default_decision}'"
    return [
        RecordedDecision(item.number, campaign.default_decision, text, actor, "default")
        for item in items
        if item.decision is None
    ]


def with_defaults(items: Sequence[ReviewItem], defaults: Sequence[RecordedDecision]) -> list[ReviewItem]:
    chosen = {decision.number: decision for decision in defaults}
    return [item if item.number not in chosen else _decided(item, chosen[item.number]) for item in items]


def _decided(item: ReviewItem, decision: RecordedDecision) -> ReviewItem:
    return replace(
        item, decision=decision.decision, justification=decision.justification, decided_by=decision.decided_by,
        decided_how=decision.decided_how,
    )  # fmt: skip


def pending_revocations(items: Iterable[ReviewItem]) -> list[ReviewItem]:
    """Items decided revoke and not revoked yet (a close cut short resumes with these)."""
    return [item for item in items if item.decision == "revoke" and item.outcome not in ("applied", "skipped")]


def check_threshold(revocations: int, realm_users: int, limits: SafetyLimits, confirmed: int | None) -> None:
    """Revocations at or above the threshold stop the close before any write, unless the operator confirmed
    exactly that number (after reviewing them)."""
    threshold = removal_threshold(realm_users, limits)
    if revocations and revocations >= threshold and confirmed != revocations:
        raise SafetyStop(
            f"{revocations} revocations reach the threshold of {threshold} (min of {limits.max_removals} and "
            f"{limits.max_removal_ratio:.0%} of {realm_users} users); nothing was applied",
            hint=f"check the decisions (review export), then close with --confirm-revocations {revocations}",
        )


# -- I/O: start, export, decide, close ------------------------------------------------------------------------


def check_campaign_name(name: str) -> str:
    """Campaign names become file and lock names: letters, digits, '.', '_' and '-' only."""
    if not CAMPAIGN_NAME.fullmatch(name):
        raise ConfigError(
            f"campaign name '{name}' is not allowed", hint="use letters, digits, '.', '_' and '-' (e.g. q4-2026)"
        )
    return name


def start_campaign(
    store: Store,
    snapshot: Snapshot,
    policy: ReviewPolicy,
    *,
    name: str,
    scope: Scope,
    actor: str,
    due: datetime | None = None,
    default_decision: Decision = "keep",
    dormant_days: int | None = None,
) -> Campaign:
    """Create campaign `name` over `snapshot` (see `plan_items`). Refused when an item would have no reviewer."""
    check_campaign_name(name)
    days = dormant_days if dormant_days is not None else default_dormant_days(policy)
    planned = plan_items(snapshot, policy, scope, days)
    if planned.unassigned:
        shown = "; ".join(planned.unassigned[:5]) + (" ..." if len(planned.unassigned) > 5 else "")
        raise ConfigError(
            f"{len(planned.unassigned)} item(s) have no reviewer (no manager, no owner): {shown}",
            hint="set fallback_reviewer (or owners) in policies/review.yaml",
        )
    new = NewCampaign(name, snapshot.realm, str(scope), actor, default_decision, days, snapshot.taken_at, due)
    return store.campaigns.create(new, planned.items)


def open_campaign(store: Store, name: str) -> Campaign:
    campaign = store.campaigns.get(name)
    if campaign is None:
        raise ConfigError(f"no campaign named '{name}'", hint="`idp-agent review list` shows the campaigns")
    return campaign


def reviewer_sheet(store: Store, name: str, reviewer: str) -> str:
    campaign = open_campaign(store, name)
    items = store.campaigns.items(campaign.name, reviewer)
    if not items:
        known = sorted({item.reviewer for item in store.campaigns.items(campaign.name)})
        raise ConfigError(
            f"'{reviewer}' reviews nothing in campaign '{name}'", hint=f"reviewers: {', '.join(known) or 'none'}"
        )
    return sheet_csv(items)


def record_sheet(store: Store, name: str, text: str, source: str) -> int:
    """Check the whole sheet, then record its decisions and journal who decided what, in one transaction."""
    campaign = open_campaign(store, name)
    if not campaign.is_open:
        raise ConfigError(f"campaign '{name}' is closed; its decisions are final")
    decisions = parse_sheet(text, source, store.campaigns.items(name))
    with store.atomic():  # the decisions and the entries saying who made them, together
        count = store.campaigns.record_decisions(name, decisions)
        for reviewer in sorted({decision.decided_by for decision in decisions}):
            mine = [d for d in decisions if d.decided_by == reviewer]
            revoked = sum(1 for d in mine if d.decision == "revoke")
            store.journal.append(
                actor=reviewer, action="review.decide", subject=name, realm=campaign.realm,
                reason=f"{len(mine)} decision(s) from {source}",
                details={"campaign": name, "count": len(mine), "revoked": revoked},
            )  # fmt: skip
    return count


@dataclass(frozen=True)
class ItemResult:
    item: ReviewItem
    outcome: ItemOutcome
    detail: str


@dataclass(frozen=True)
class CloseReport:
    campaign: Campaign
    defaulted: int
    results: tuple[ItemResult, ...]
    run_id: str | None

    @property
    def failed(self) -> list[ItemResult]:
        return [result for result in self.results if result.outcome == "failed"]


def revoke_item(gateway: KeycloakGateway, realm: str, item: ReviewItem) -> tuple[ItemOutcome, str]:
    """Remove one direct grant, after checking it is still there (a grant already gone is `skipped`)."""
    if gateway.get_user(realm, item.user_id) is None:
        return "skipped", "the user no longer exists"
    if item.kind == "group":
        group = gateway.find_group_by_path(realm, item.entitlement)
        if group is None or item.entitlement not in gateway.user_group_paths(realm, item.user_id):
            return "skipped", f"not a member of {item.entitlement} any more"
        gateway.remove_user_from_group(realm, item.user_id, group.id)
        return "applied", f"removed from group {item.entitlement}"
    ref = role_ref_of(item.entitlement) if item.client_id else RoleRef(item.entitlement)
    mapped = [role for role in gateway.user_role_mappings(realm, item.user_id) if role.name == ref.name]
    if ref.client is None:
        roles = [role for role in mapped if not role.client_role]
        if not roles:
            return "skipped", f"role {item.entitlement} is not mapped directly any more"
        gateway.remove_realm_roles_from_user(realm, item.user_id, roles)
        return "applied", f"role {item.entitlement} removed"
    client = gateway.find_client(realm, ref.client)
    roles = [role for role in mapped if client is not None and role.client_role and role.container_id == client.id]
    if client is None or not roles:
        return "skipped", f"role {item.entitlement} is not mapped directly any more"
    gateway.remove_client_roles_from_user(realm, item.user_id, client.id, roles)
    return "applied", f"role {item.entitlement} removed"


def _journal_revoke(
    item: ReviewItem, realm: str, run_id: str, outcome: ItemOutcome | Literal["intent"], detail: str
) -> NewEntry:
    details: dict[str, str | int] = {
        "id": item.user_id, "kind": item.kind, "campaign": item.campaign, "item": item.number,
        "decision": "revoke", "outcome": outcome, "reviewer": item.decided_by or item.reviewer,
    }  # fmt: skip
    details["group" if item.kind == "group" else "role"] = item.entitlement
    if outcome == "failed":
        details["error"] = detail
    return NewEntry(
        actor=f"review:{item.campaign}", action="user.revoke", subject=item.username, realm=realm, run_id=run_id,
        reason=item.justification or item.reason,  details=details,
    )  # fmt: skip


def apply_revocations(
    gateway: KeycloakGateway, store: Store, campaign: Campaign, revocations: Sequence[ReviewItem]
) -> tuple[str, list[ItemResult]]:
    """Revoke each item, recording its outcome, a run item and a journal entry as it happens (a close cut short
    resumes where it stopped). Keycloak refusing one item is recorded; Keycloak unavailable stops the close.
    The journal has the intent before the write and the outcome before the item is marked done: a close killed
    in between leaves a write the journal tells of (the resumed close finds the grant gone: `skipped`)."""
    run = store.runs.start_run(CLOSE_RUN_KIND, campaign.realm, summary=f"closes campaign {campaign.name}")
    results: list[ItemResult] = []
    try:
        for item in revocations:
            store.journal.append_many([_journal_revoke(item, campaign.realm, run.id, "intent", "")])
            try:
                outcome, detail = revoke_item(gateway, campaign.realm, item)
            except Rejected as error:
                outcome, detail = "failed", str(error)
            if outcome != "skipped":
                store.journal.append_many([_journal_revoke(item, campaign.realm, run.id, outcome, detail)])
            store.campaigns.record_outcome(campaign.name, item.number, outcome, detail)
            run_outcome: RunItemOutcome = "applied" if outcome in ("applied", "failed") else "skipped"
            run_outcome = "failed" if outcome == "failed" else run_outcome
            store.runs.add_items(run.id, [
                NewItem(item.username, "revoke", run_outcome, revoked=(item.grant,),
                        error="" if outcome == "applied" else detail)
            ])  # fmt: skip
            results.append(ItemResult(item, outcome, detail))
    except Exception:
        store.runs.finish_run(run.id, "failed", summary="stopped by an error; close the campaign again to resume")
        raise
    failed = any(result.outcome == "failed" for result in results)
    store.runs.finish_run(run.id, "failed" if failed else "succeeded")
    return run.id, results


@dataclass(frozen=True)
class ClosePlan:
    """What a close would do: default decisions to record, and revocations (defaults included) to apply."""

    campaign: Campaign
    defaults: tuple[RecordedDecision, ...]
    revocations: tuple[ReviewItem, ...]


def plan_close(store: Store, name: str, actor: str) -> ClosePlan:
    """The close's plan, from the store only (nothing is written)."""
    campaign = open_campaign(store, name)
    if not campaign.is_open:
        raise ConfigError(f"campaign '{name}' was closed at {campaign.closed_at}", hint="its evidence is final")
    items = store.campaigns.items(name)
    defaults = default_decisions(items, campaign, actor)
    return ClosePlan(campaign, tuple(defaults), tuple(pending_revocations(with_defaults(items, defaults))))


def close_campaign(
    gateway: KeycloakGateway,
    store: Store,
    name: str,
    *,
    actor: str,
    limits: SafetyLimits = DEFAULT_LIMITS,
    confirmed_revocations: int | None = None,
) -> CloseReport:
    """Apply defaults, check the threshold, revoke, and close (only when no revocation failed)."""
    plan = plan_close(store, name, actor)
    campaign, defaults, revocations = plan.campaign, plan.defaults, plan.revocations
    check_threshold(len(revocations), gateway.count_users(campaign.realm), limits, confirmed_revocations)
    if defaults:
        store.campaigns.record_decisions(name, defaults)
    fresh = {item.number: item for item in store.campaigns.items(name)}
    for item in fresh.values():
        if item.decision == "keep" and item.outcome not in FINAL_OUTCOMES:  # a failed revoke reconsidered: kept
            store.campaigns.record_outcome(name, item.number, "kept")
    run_id, results = apply_revocations(gateway, store, campaign, [fresh[item.number] for item in revocations])
    if any(result.outcome == "failed" for result in results):
        return CloseReport(campaign, len(defaults), tuple(results), run_id)
    closed = store.campaigns.mark_closed(name, actor, run_id)
    store.journal.append(
        actor=actor, action="review.close", subject=name, realm=campaign.realm, run_id=run_id,
        reason=f"{len(results)} revocation(s) processed, {len(defaults)} default decision(s)",
        details={"campaign": name, "count": len(fresh), "revoked": sum(1 for r in results if r.outcome == "applied")},
    )  # fmt: skip
    return CloseReport(closed, len(defaults), tuple(results), run_id)
