"""The access report's content, computed once from a Snapshot and its findings (pure): the summary counts and
chart series, and the rows of its tables. Renderers (render_access.py) only lay these out.

Only an allow-listed part of each account reaches a report (username, email, state, MFA, dates, grants): never
attributes, which may hold anything an HR feed sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.review.model import SEVERITIES, Finding, Grant, RoleRef, Snapshot, UserAccess, UserRecord

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


@dataclass(frozen=True)
class ShownAccess:
    """What the report shows of one user's access, all derived from the user's grants and the context."""

    privileged_roles: frozenset[RoleRef]  # held roles that are privileged
    privileged: bool  # a privileged role, or a privileged group
    levels: tuple[str, ...]  # realm roles that say something about the user (see is_level_role)
    roles: tuple[str, ...]  # roles shown for the user, sorted: not those every account holds
    grants: tuple[tuple[str, str, str, str], ...]  # (kind, name, how, routes) of each grant shown


def show_access(access: UserAccess, context: ReportContext) -> ShownAccess:
    held = access.role_refs()
    privileged_roles = frozenset(ref for ref in held if ref in context.privileged_roles or ref.is_realm_management)
    # A privileged role is shown however it is held: one added to the default role is everyone's, and that
    # is exactly what a reviewer must see.
    shown = [grant for grant in access.grants if grant.role in privileged_roles or not only_by_default(grant)]
    return ShownAccess(
        privileged_roles=privileged_roles,
        privileged=bool(privileged_roles) or bool(access.group_paths() & context.privileged_groups),
        levels=tuple(ref.name for ref in held if is_level_role(ref)),
        roles=tuple(sorted(grant.name for grant in shown if grant.kind == "role")),
        grants=tuple(
            (grant.kind, grant.name, ", ".join(sorted(grant.hows)), "; ".join(r.describe() for r in grant.routes))
            for grant in shown
        ),
    )


def shown_access(snapshot: Snapshot, context: ReportContext) -> Callable[[str], ShownAccess]:
    """user id -> ShownAccess. Users of one access shape share one grants tuple (see expand_access), so each
    shape is described once: keyed by the tuple's identity, with the tuple kept in the cache so that the
    identity cannot be reused while the cache lives."""
    cache: dict[int, tuple[tuple[Grant, ...], ShownAccess]] = {}

    def of(user_id: str) -> ShownAccess:
        access = snapshot.access_of(user_id)
        cached = cache.get(id(access.grants))
        if cached is None:
            cached = cache[id(access.grants)] = (access.grants, show_access(access, context))
        return cached[1]

    return of


def users_by_level(snapshot: Snapshot, shown: Callable[[str], ShownAccess]) -> tuple[tuple[str, int], ...]:
    """Users holding each realm role (effectively), most held first; users with none count as `(no role)`."""
    counts: Counter[str] = Counter()
    for user in snapshot.users:
        counts.update(shown(user.id).levels or ["(no role)"])
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def mfa_coverage(snapshot: Snapshot, shown: Callable[[str], ShownAccess]) -> tuple[RoleCoverage, ...]:
    """For each privileged role held by someone: holders with and without MFA (service accounts left out)."""
    holders: dict[str, list[bool]] = {}
    for user in snapshot.users:
        if user.is_service_account:
            continue
        for ref in shown(user.id).privileged_roles:
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


def user_rows(
    snapshot: Snapshot, findings: Sequence[Finding], shown: Callable[[str], ShownAccess]
) -> tuple[UserRow, ...]:
    per_subject = Counter(finding.subject for finding in findings)
    rows = []
    for user in sorted(snapshot.users, key=lambda u: u.username):
        access = shown(user.id)
        rows.append(
            UserRow(
                username=user.username,
                email=user.email or "",
                enabled=user.enabled,
                kind=user_kind(user),
                mfa=user.has_mfa,
                privileged=access.privileged,
                last_login=last_login_text(snapshot, user.id),
                created=user.created.date().isoformat() if user.created else "",
                roles=access.roles,
                groups=tuple(sorted(snapshot.access_of(user.id).groups)),
                findings=per_subject.get(user.username, 0),
            )
        )
    return tuple(rows)


def grant_rows(snapshot: Snapshot, shown: Callable[[str], ShownAccess]) -> tuple[GrantRow, ...]:
    names = {user.id: user.username for user in snapshot.users}
    rows = [
        GrantRow(names.get(user_id, user_id), *grant) for user_id in snapshot.access for grant in shown(user_id).grants
    ]
    return tuple(sorted(rows, key=lambda row: (row.username, row.kind, row.name)))


def summarise(
    snapshot: Snapshot, findings: Sequence[Finding], context: ReportContext, shown: Callable[[str], ShownAccess]
) -> AccessSummary:
    users = snapshot.users
    privileged = [user for user in users if not user.is_service_account and shown(user.id).privileged]
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
        users_by_level=users_by_level(snapshot, shown),
        mfa_by_privileged_role=mfa_coverage(snapshot, shown),
        logins_per_day=last_days(context.logins_per_day, snapshot.taken_at),
    )


def build_access_report(snapshot: Snapshot, findings: Sequence[Finding], context: ReportContext) -> AccessReport:
    shown = shown_access(snapshot, context)
    notes = []
    if snapshot.logins_known_since is None:
        notes.append(
            "No LOGIN events were harvested for this realm: last logins are unknown (idp-agent events harvest)."
        )
    else:
        notes.append(f"Last logins are known since {snapshot.logins_known_since.date().isoformat()}.")
    return AccessReport(
        summary=summarise(snapshot, findings, context, shown),
        findings=tuple(findings),
        users=user_rows(snapshot, findings, shown),
        grants=grant_rows(snapshot, shown),
        notes=tuple(notes),
    )
