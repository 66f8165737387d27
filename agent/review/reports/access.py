"""The access report's content, computed once from a Snapshot and its findings (pure): the summary counts and
chart series, and the rows of its tables. Renderers (render_access.py) only lay these out.

Only an allow-listed part of each account reaches a report (username, email, state, MFA, dates, grants): never
attributes, which may hold anything an HR feed sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.review.model import SEVERITIES, Finding, Grant, RoleRef, Snapshot, UserRecord

# Roles every account holds by default: they tell nothing about a user's level.
DEFAULT_ROLE_PREFIX = "default-roles-"
BACKGROUND_ROLES = frozenset({"offline_access", "uma_authorization"})
LOGIN_CHART_DAYS = 30


@dataclass(frozen=True)
class ReportContext:
    """What the report needs beyond the snapshot: the privileged roles (realm-management roles always count) and
    logins per day from the store's harvested LOGIN events (oldest first)."""

    privileged_roles: frozenset[RoleRef] = frozenset()
    privileged_groups: frozenset[str] = frozenset()
    logins_per_day: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class RoleCoverage:
    role: str
    with_mfa: int
    without_mfa: int


@dataclass(frozen=True)
class UserRow:
    username: str
    email: str
    enabled: bool
    kind: str  # person | service account | federated
    mfa: bool
    privileged: bool
    last_login: str  # ISO date, "never" or "unknown"
    created: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    findings: int


@dataclass(frozen=True)
class GrantRow:
    username: str
    kind: str  # role | group
    name: str
    how: str  # direct, group, composite (comma-joined when several routes)
    routes: str  # human text of every route


@dataclass(frozen=True)
class AccessSummary:
    realm: str
    taken_at: datetime
    users: int
    enabled: int
    disabled: int
    service_accounts: int
    federated: int
    privileged: int
    privileged_with_mfa: int
    findings: int
    findings_by_severity: tuple[tuple[str, int], ...]
    findings_by_rule: tuple[tuple[str, int], ...]
    users_by_level: tuple[tuple[str, int], ...]
    mfa_by_privileged_role: tuple[RoleCoverage, ...]
    logins_per_day: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class AccessReport:
    summary: AccessSummary
    findings: tuple[Finding, ...]
    users: tuple[UserRow, ...]
    grants: tuple[GrantRow, ...]
    notes: tuple[str, ...] = ()


def is_level_role(ref: RoleRef) -> bool:
    """A realm role that says something about the user (not a default or built-in background role)."""
    return ref.client is None and not ref.name.startswith(DEFAULT_ROLE_PREFIX) and ref.name not in BACKGROUND_ROLES


def only_by_default(grant: Grant) -> bool:
    """Held only because every account gets the realm's default roles (noise in a review)."""
    default = (grant.role is not None and grant.role.name.startswith(DEFAULT_ROLE_PREFIX)) or (
        grant.role is not None and grant.role.name in BACKGROUND_ROLES
    )
    return default or all(
        route.composites and route.composites[0].name.startswith(DEFAULT_ROLE_PREFIX) for route in grant.routes
    )


def privileged_refs(snapshot: Snapshot, context: ReportContext, user_id: str) -> frozenset[RoleRef]:
    held = snapshot.access_of(user_id).role_refs()
    return frozenset(ref for ref in held if ref in context.privileged_roles or ref.is_realm_management)


def is_privileged(snapshot: Snapshot, context: ReportContext, user_id: str) -> bool:
    groups = snapshot.access_of(user_id).group_paths()
    return bool(privileged_refs(snapshot, context, user_id)) or bool(groups & context.privileged_groups)


def users_by_level(snapshot: Snapshot) -> tuple[tuple[str, int], ...]:
    """Users holding each realm role (effectively), most held first; users with none count as `(no role)`."""
    counts: Counter[str] = Counter()
    for user in snapshot.users:
        levels = [ref.name for ref in snapshot.access_of(user.id).role_refs() if is_level_role(ref)]
        counts.update(levels or ["(no role)"])
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def mfa_coverage(snapshot: Snapshot, context: ReportContext) -> tuple[RoleCoverage, ...]:
    """For each privileged role held by someone: holders with and without MFA (service accounts left out)."""
    holders: dict[str, list[bool]] = {}
    for user in snapshot.users:
        if user.is_service_account:
            continue
        for ref in privileged_refs(snapshot, context, user.id):
            holders.setdefault(ref.label, []).append(user.has_mfa)
    return tuple(RoleCoverage(role, sum(flags), len(flags) - sum(flags)) for role, flags in sorted(holders.items()))


def severity_counts(findings: Sequence[Finding]) -> tuple[tuple[str, int], ...]:
    counts = Counter(finding.severity for finding in findings)
    return tuple((severity, counts.get(severity, 0)) for severity in SEVERITIES)


def rule_counts(findings: Sequence[Finding]) -> tuple[tuple[str, int], ...]:
    counts = Counter(finding.rule for finding in findings)
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def last_days(series: Iterable[tuple[str, int]], taken_at: datetime, days: int = LOGIN_CHART_DAYS) -> tuple[
    tuple[str, int], ...
]:  # fmt: skip
    """The last `days` days up to the snapshot, every day present (0 when no login), oldest first."""
    given = dict(series)
    end = taken_at.date()
    window = [(end - timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]
    return tuple((day, given.get(day, 0)) for day in window)


def user_kind(user: UserRecord) -> str:
    if user.is_service_account:
        return "service account"
    return "federated" if user.federation_link else "person"


def last_login_text(snapshot: Snapshot, user_id: str) -> str:
    moment = snapshot.last_login.get(user_id)
    if moment is not None:
        return moment.date().isoformat()
    return "unknown" if snapshot.logins_known_since is None else "never"


def user_rows(snapshot: Snapshot, findings: Sequence[Finding], context: ReportContext) -> tuple[UserRow, ...]:
    per_subject = Counter(finding.subject for finding in findings)
    rows = []
    for user in sorted(snapshot.users, key=lambda u: u.username):
        access = snapshot.access_of(user.id)
        rows.append(
            UserRow(
                username=user.username,
                email=user.email or "",
                enabled=user.enabled,
                kind=user_kind(user),
                mfa=user.has_mfa,
                privileged=is_privileged(snapshot, context, user.id),
                last_login=last_login_text(snapshot, user.id),
                created=user.created.date().isoformat() if user.created else "",
                roles=tuple(sorted(grant.name for grant in access.roles() if not only_by_default(grant))),
                groups=tuple(sorted(access.groups)),
                findings=per_subject.get(user.username, 0),
            )
        )
    return tuple(rows)


def grant_rows(snapshot: Snapshot) -> tuple[GrantRow, ...]:
    names = {user.id: user.username for user in snapshot.users}
    rows = []
    for user_id, access in snapshot.access.items():
        for grant in access.grants:
            if only_by_default(grant):
                continue
            hows = ", ".join(sorted(grant.hows))
            routes = "; ".join(route.describe() for route in grant.routes)
            rows.append(GrantRow(names.get(user_id, user_id), grant.kind, grant.name, hows, routes))
    return tuple(sorted(rows, key=lambda row: (row.username, row.kind, row.name)))


def summarise(snapshot: Snapshot, findings: Sequence[Finding], context: ReportContext) -> AccessSummary:
    users = snapshot.users
    privileged = [user for user in users if not user.is_service_account and is_privileged(snapshot, context, user.id)]
    return AccessSummary(
        realm=snapshot.realm,
        taken_at=snapshot.taken_at,
        users=len(users),
        enabled=sum(1 for user in users if user.enabled),
        disabled=sum(1 for user in users if not user.enabled),
        service_accounts=sum(1 for user in users if user.is_service_account),
        federated=sum(1 for user in users if user.federation_link),
        privileged=len(privileged),
        privileged_with_mfa=sum(1 for user in privileged if user.has_mfa),
        findings=len(findings),
        findings_by_severity=severity_counts(findings),
        findings_by_rule=rule_counts(findings),
        users_by_level=users_by_level(snapshot),
        mfa_by_privileged_role=mfa_coverage(snapshot, context),
        logins_per_day=last_days(context.logins_per_day, snapshot.taken_at),
    )


def build_access_report(snapshot: Snapshot, findings: Sequence[Finding], context: ReportContext) -> AccessReport:
    notes = []
    if snapshot.logins_known_since is None:
        notes.append(
            "No LOGIN events were harvested for this realm: last logins are unknown (idp-agent events harvest)."
        )
    else:
        notes.append(f"Last logins are known since {snapshot.logins_known_since.date().isoformat()}.")
    return AccessReport(
        summary=summarise(snapshot, findings, context),
        findings=tuple(findings),
        users=user_rows(snapshot, findings, context),
        grants=grant_rows(snapshot),
        notes=tuple(notes),
    )
