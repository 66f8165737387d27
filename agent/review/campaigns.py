"""Access-review campaigns: start (items = user x removable entitlement, each with a reviewer and a
recommendation), reviewers' sheets out and decisions in, and close (default decisions, revocations applied
through the gateway behind the safety threshold, journalled, then the evidence bundle).

Only what idp-agent can take away is reviewed: a role mapped on the user directly, or a direct group
membership. A role held through a group is reviewed as that group's membership; composites come with the role
mapped. Planning and sheet checking are pure; `start_campaign`, `record_sheet` and `close_campaign` do the I/O.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from agent.config.diagnostics import ConfigErrors, Diagnostic
from agent.errors import ConfigError, Rejected, SafetyStop
from agent.keycloak import KeycloakGateway
from agent.review.model import Grant, RoleRecord, RoleRef, Snapshot, UserRecord
from agent.review.policy import DAY_SECONDS, ReviewPolicy
from agent.review.reports.csv_cells import csv_text, restore
from agent.store.campaigns import (
    DECISIONS,
    Campaign,
    Decision,
    ItemOutcome,
    NewCampaign,
    NewReviewItem,
    RecordedDecision,
    ReviewItem,
)
from agent.store.db import Store
from agent.store.journal import NewEntry
from agent.store.runs import ItemOutcome as RunItemOutcome
from agent.store.runs import NewItem
from agent.sync.guard import SafetyLimits, removal_threshold

DEFAULT_ROLE_PREFIX = "default-roles-"
CAMPAIGN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ScopeKind = Literal["privileged", "all", "role", "group"]
SHEET_HEADERS = (
    "item", "user", "kind", "entitlement", "confers", "recommendation", "reason", "reviewer", "decision",
    "justification",
)  # fmt: skip
REQUIRED_SHEET_HEADERS = ("item", "reviewer", "decision", "justification")
CLOSE_RUN_KIND = "review-close"
FINAL_OUTCOMES = frozenset({"applied", "skipped", "kept"})  # what a close did: no later sheet may change it
DEFAULT_LIMITS = SafetyLimits()  # the sync's brakes: min(500, 20 % of the realm's users)


# -- scope and entitlements (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    value: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}" if self.value else self.kind


def parse_scope(text: str) -> Scope:
    """`privileged`, `all`, `role:NAME` (`role:client/NAME` for a client role) or `group:PATH`."""
    kind, _, value = text.strip().partition(":")
    if kind in ("privileged", "all") and not value:
        return Scope(kind)  # type: ignore[arg-type]  # checked just above
    if kind == "role" and value:
        return Scope("role", value)
    if kind == "group" and value.startswith("/"):
        return Scope("group", value.rstrip("/") or "/")
    raise ConfigError(f"unknown scope '{text}'", hint="use privileged, all, role:NAME or group:/PATH")


def role_ref_of(label: str) -> RoleRef:
    client, slash, name = label.rpartition("/")
    return RoleRef(name, client) if slash else RoleRef(label)


@dataclass(frozen=True)
class Entitlement:
    """A grant idp-agent can remove, and what it gives: its roles (effective) and groups (with ancestors)."""

    kind: Literal["role", "group"]
    name: str  # role label or group path
    role: RoleRef | None
    roles: frozenset[RoleRef]
    groups: frozenset[str]

    @property
    def client_id(self) -> str:
        return self.role.client or "" if self.role is not None else ""

    def describe(self) -> str:
        given = sorted(ref.label for ref in self.roles if not ref.name.startswith(DEFAULT_ROLE_PREFIX))
        return ", ".join(given)


def _through(grant: Grant, path: str) -> bool:
    """Whether a membership of `path` is one route to `grant`."""
    return any((route.member_of or route.group) == path for route in grant.routes)


def removable_entitlements(
    snapshot: Snapshot, user_id: str, roles: Mapping[RoleRef, RoleRecord] | None = None
) -> list[Entitlement]:
    """Direct role mappings (but the realm's default roles) and direct group memberships, sorted. `roles` (the
    snapshot's roles by ref) saves a scan of every role per grant when planning a whole realm."""
    by_ref = roles if roles is not None else {role.ref: role for role in snapshot.roles}
    access = snapshot.access_of(user_id)
    found: list[Entitlement] = []
    for grant in access.roles():
        if grant.role is None or not grant.direct or grant.role.name.startswith(DEFAULT_ROLE_PREFIX):
            continue
        record = by_ref.get(grant.role)
        expanded = record.expanded if record is not None else frozenset()
        found.append(Entitlement("role", grant.name, grant.role, frozenset({grant.role}) | expanded, frozenset()))
    for path in sorted(access.groups):
        given = frozenset(g.role for g in access.roles() if g.role is not None and _through(g, path))
        groups = frozenset(g.name for g in access.grants if g.kind == "group" and _through(g, path)) | {path}
        found.append(Entitlement("group", path, None, given, groups))
    return sorted(found, key=lambda entitlement: (entitlement.kind, entitlement.name))


def is_privileged_entitlement(entitlement: Entitlement, policy: ReviewPolicy) -> bool:
    privileged_roles = policy.privileged.role_refs()
    if any(ref in privileged_roles or ref.is_realm_management for ref in entitlement.roles):
        return True
    return bool(entitlement.groups & set(policy.privileged.groups))


def in_scope(entitlement: Entitlement, scope: Scope, policy: ReviewPolicy) -> bool:
    if scope.kind == "all":
        return True
    if scope.kind == "privileged":
        return is_privileged_entitlement(entitlement, policy)
    if scope.kind == "role":
        return role_ref_of(scope.value) in entitlement.roles
    return scope.value in entitlement.groups


# -- reviewers and recommendations (pure) ------------------------------------------------------------------


def manager_username(user: UserRecord, policy: ReviewPolicy, usernames: dict[str, str]) -> str | None:
    """The user's manager as a username of the realm: the attribute may hold a username, an email or an
    external id (as HR feeds write it); None when it names nobody known."""
    value = user.attribute(policy.manager_attribute)
    if not value:
        return None
    return usernames.get(value.strip().lower())


def people_index(snapshot: Snapshot, policy: ReviewPolicy) -> dict[str, str]:
    """Lower-cased username, email and external id -> username, for finding managers."""
    index: dict[str, str] = {}
    for user in snapshot.users:
        keys = (user.username, user.email, user.attribute(policy.orphans.external_id_attribute))
        for key in keys:
            if key:
                index.setdefault(key.strip().lower(), user.username)
    return index


def choose_reviewer(
    user: UserRecord, entitlement: Entitlement, policy: ReviewPolicy, usernames: dict[str, str]
) -> tuple[str | None, str]:
    """(reviewer, why): the user's manager, else the entitlement's owner, else the fallback reviewer. Nobody
    reviews their own access."""
    manager = manager_username(user, policy, usernames)
    if manager and manager != user.username:
        return manager, "manager"
    owner = policy.owner_of(entitlement.kind, entitlement.name)
    if owner and owner != user.username:
        return owner, "owner"
    fallback = policy.fallback_reviewer
    if fallback and fallback != user.username:
        return fallback, "fallback"
    return None, "nobody"


def recommend(snapshot: Snapshot, user: UserRecord, dormant_days: int) -> tuple[Decision, str]:
    """Revoke when the account is disabled or dormant beyond `dormant_days` (never logged in counts from its
    creation); keep otherwise, saying why."""
    if not user.enabled:
        return "revoke", "account disabled"
    limit = timedelta(days=dormant_days)
    last = snapshot.last_login.get(user.id)
    if last is not None:
        idle = (snapshot.taken_at - last).days
        if snapshot.taken_at - last > limit:
            return "revoke", f"dormant: no login for {idle} days (last {last.date().isoformat()}), over {dormant_days}"
        return "keep", f"active: last login {last.date().isoformat()}, within {dormant_days} days"
    if snapshot.logins_known_since is None:
        return "keep", "last login unknown (no LOGIN events harvested): decide on other grounds"
    since = max(filter(None, (user.created, snapshot.logins_known_since)))
    if snapshot.taken_at - since > limit:
        return "revoke", f"dormant: never logged in since {since.date().isoformat()}, over {dormant_days} days"
    return "keep", f"new: no login yet since {since.date().isoformat()}, within {dormant_days} days"


@dataclass(frozen=True)
class PlannedItems:
    items: tuple[NewReviewItem, ...]
    unassigned: tuple[str, ...]  # "username: entitlement" without any reviewer


def plan_items(snapshot: Snapshot, policy: ReviewPolicy, scope: Scope, dormant_days: int) -> PlannedItems:
    """Every in-scope removable entitlement of every person (service accounts are not reviewed by managers)."""
    usernames = people_index(snapshot, policy)
    roles = {role.ref: role for role in snapshot.roles}
    items: list[NewReviewItem] = []
    unassigned: list[str] = []
    for user in sorted(snapshot.users, key=lambda u: u.username):
        if user.is_service_account:
            continue
        recommendation, reason = recommend(snapshot, user, dormant_days)
        for entitlement in removable_entitlements(snapshot, user.id, roles):
            if not in_scope(entitlement, scope, policy):
                continue
            reviewer, _why = choose_reviewer(user, entitlement, policy, usernames)
            if reviewer is None:
                unassigned.append(f"{user.username}: {entitlement.kind} {entitlement.name}")
                continue
            items.append(
                NewReviewItem(
                    user_id=user.id, username=user.username, kind=entitlement.kind, entitlement=entitlement.name,
                    reviewer=reviewer, recommendation=recommendation, reason=reason,
                    client_id=entitlement.client_id, confers=entitlement.describe(),
                )
            )  # fmt: skip
    return PlannedItems(tuple(items), tuple(unassigned))


def default_dormant_days(policy: ReviewPolicy) -> int:
    return max(1, policy.dormant.after // DAY_SECONDS)


# -- reviewers' sheets (pure) ----------------------------------------------------------------------------


def sheet_csv(items: Sequence[ReviewItem]) -> str:
    """A reviewer's sheet: one row per item, decision and justification to fill in (keep or revoke)."""
    rows = [
        (
            item.number, item.username, item.kind, item.entitlement, item.confers, item.recommendation, item.reason,
            item.reviewer, item.decision or "", item.justification,
        )
        for item in items
    ]  # fmt: skip
    return csv_text(SHEET_HEADERS, rows)


@dataclass(frozen=True)
class SheetRow:
    line: int
    cells: dict[str, str]


def sheet_rows(text: str) -> tuple[list[str], list[SheetRow]]:
    """Header and rows of a CSV sheet, each row with the line it starts on (quoted newlines span lines)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = [restore(cell).strip().lower() for cell in next(reader, [])]
    rows: list[SheetRow] = []
    previous_end = reader.line_num
    for cells in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        values = {
            name: restore(cells[index]).strip() if index < len(cells) else "" for index, name in enumerate(header)
        }
        rows.append(SheetRow(start, values))
    return header, rows


def check_sheet_row(row: SheetRow, items: dict[int, ReviewItem], reviewers: frozenset[str]) -> list[str]:
    """Problems with one row (empty when it is good)."""
    cells = row.cells
    raw_number = cells.get("item", "")
    if not raw_number.isdigit() or int(raw_number) not in items:
        return [f"unknown item '{raw_number}'"]
    item = items[int(raw_number)]
    if item.outcome in FINAL_OUTCOMES:
        return [f"item {item.number} was acted on by a close ({item.outcome}); its decision is final"]
    problems = []
    reviewer = cells.get("reviewer", "")
    if reviewer not in reviewers:
        problems.append(f"unknown reviewer '{reviewer}'")
    elif reviewer != item.reviewer:
        problems.append(f"item {item.number} is assigned to {item.reviewer}, not {reviewer}")
    for column, expected in (("user", item.username), ("entitlement", item.entitlement)):
        if column in cells and cells[column] != expected:
            problems.append(f"item {item.number} is {item.username} x {item.entitlement}; the sheet says {column} "
                            f"'{cells[column]}'")  # fmt: skip
    decision = cells.get("decision", "").lower()
    if decision and decision not in DECISIONS:
        problems.append(f"decision '{cells.get('decision')}' is neither keep nor revoke")
    if decision == "revoke" and not cells.get("justification"):
        problems.append(f"item {item.number}: a revoke needs a justification")
    return problems


def parse_sheet(text: str, source: str, items: Sequence[ReviewItem]) -> list[RecordedDecision]:
    """The decisions of a filled sheet; every problem of every line raised at once (ConfigErrors with
    file:line), so that nothing is recorded from a sheet with any bad line. Rows left undecided are skipped."""
    header, rows = sheet_rows(text)
    missing = [name for name in REQUIRED_SHEET_HEADERS if name not in header]
    if missing:
        raise ConfigErrors([Diagnostic(source, 1, 1, f"the sheet lacks the column(s) {', '.join(missing)}")])
    by_number = {item.number: item for item in items}
    reviewers = frozenset(item.reviewer for item in items)
    problems: list[Diagnostic] = []
    decisions: list[RecordedDecision] = []
    seen: dict[int, int] = {}
    for row in rows:
        found = check_sheet_row(row, by_number, reviewers)
        number = int(row.cells["item"]) if not found or row.cells.get("item", "").isdigit() else -1
        if number in seen:
            found.append(f"item {number} is also on line {seen[number]}")
        seen.setdefault(number, row.line)
        problems += [Diagnostic(source, row.line, 1, problem) for problem in found]
        decision = row.cells.get("decision", "").lower()
        if not found and decision:
            decisions.append(
                RecordedDecision(number, decision, row.cells.get("justification", ""), row.cells["reviewer"])  # type: ignore[arg-type]
            )
    if problems:
        raise ConfigErrors(problems)
    return decisions


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
    """Check the whole sheet, then record its decisions in one transaction, and journal who decided what."""
    campaign = open_campaign(store, name)
    if not campaign.is_open:
        raise ConfigError(f"campaign '{name}' is closed; its decisions are final")
    decisions = parse_sheet(text, source, store.campaigns.items(name))
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


def _journal_revoke(item: ReviewItem, realm: str, run_id: str, outcome: ItemOutcome, detail: str) -> NewEntry:
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
    resumes where it stopped). Keycloak refusing one item is recorded; Keycloak unavailable stops the close."""
    run = store.runs.start_run(CLOSE_RUN_KIND, campaign.realm, summary=f"closes campaign {campaign.name}")
    results: list[ItemResult] = []
    try:
        for item in revocations:
            try:
                outcome, detail = revoke_item(gateway, campaign.realm, item)
            except Rejected as error:
                outcome, detail = "failed", str(error)
            store.campaigns.record_outcome(campaign.name, item.number, outcome, detail)
            run_outcome: RunItemOutcome = "applied" if outcome in ("applied", "failed") else "skipped"
            run_outcome = "failed" if outcome == "failed" else run_outcome
            store.runs.add_items(run.id, [
                NewItem(item.username, "revoke", run_outcome, revoked=(item.grant,),
                        error="" if outcome == "applied" else detail)
            ])  # fmt: skip
            if outcome != "skipped":
                store.journal.append_many([_journal_revoke(item, campaign.realm, run.id, outcome, detail)])
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
