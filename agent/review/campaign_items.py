"""Planning a campaign's review items from a snapshot (pure): its scope, the entitlements idp-agent can remove,
who reviews each one and what to recommend.

Only what idp-agent can take away is reviewed: a role mapped on the user directly, or a direct group
membership. A role held through a group is reviewed as that group's membership; composites come with the role
mapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from agent.errors import ConfigError
from agent.review.model import Grant, RoleRecord, RoleRef, Snapshot, UserRecord
from agent.review.policy import DAY_SECONDS, ReviewPolicy
from agent.store.campaigns import Decision, NewReviewItem

DEFAULT_ROLE_PREFIX = "default-roles-"
ScopeKind = Literal["privileged", "all", "role", "group"]


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
