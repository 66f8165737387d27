"""The access-review snapshot: one consistent, read-only picture of a realm (users, roles, groups, who holds
what and how, last logins, sanctions and appeals), and the `Finding`s drawn from it.

Everything here is plain frozen data: reports, campaigns and findings read it; only `snapshot.py` builds it.
Fields are only ever added (other modules build on this shape).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

Attributes = Mapping[str, tuple[str, ...]]
GrantKind = Literal["role", "group"]
# How one route reaches a grant: mapped on the user, through a group (the group itself or an ancestor of one
# the user is in), or as part of a composite role (whichever way the composite itself was reached).
How = Literal["direct", "group", "composite"]
Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")  # most severe first

# Keycloak's client that holds the realm's admin roles: any of its roles counts as privileged.
REALM_MANAGEMENT_CLIENT = "realm-management"
WEBAUTHN_CREDENTIAL_TYPES = frozenset({"webauthn", "webauthn-passwordless"})
OTP_CREDENTIAL_TYPE = "otp"


def _empty() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, order=True)
class RoleRef:
    """A role by name: a realm role when `client` is None, else a role of the client with that clientId."""

    name: str
    client: str | None = None

    @property
    def label(self) -> str:
        """`name` for a realm role, `clientId/name` for a client role (group paths start with '/')."""
        return self.name if self.client is None else f"{self.client}/{self.name}"

    @property
    def is_realm_management(self) -> bool:
        return self.client == REALM_MANAGEMENT_CLIENT

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class UserRecord:
    """One account as the full user listing shows it. `created` is None when Keycloak gave no timestamp."""

    id: str
    username: str
    enabled: bool
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    created: datetime | None = None
    totp: bool = False
    attributes: Attributes = field(default_factory=_empty)
    service_account_client: str | None = None  # the clientId whose service account this is
    federation_link: str | None = None  # the user-storage component id (LDAP federation), if federated
    required_actions: tuple[str, ...] = ()
    # Credential types the user has (otp, webauthn, password ...). None: not read (only privileged accounts
    # are read one by one, so the snapshot stays R + G + N/page requests).
    credential_types: frozenset[str] | None = None

    @property
    def is_service_account(self) -> bool:
        return self.service_account_client is not None

    @property
    def has_webauthn(self) -> bool | None:
        """True/False when credentials were read, None when not."""
        if self.credential_types is None:
            return None
        return bool(self.credential_types & WEBAUTHN_CREDENTIAL_TYPES)

    @property
    def has_mfa(self) -> bool:
        """OTP configured (the listing's `totp`, or an otp credential) or a WebAuthn credential."""
        types = self.credential_types or frozenset()
        return self.totp or OTP_CREDENTIAL_TYPE in types or bool(types & WEBAUTHN_CREDENTIAL_TYPES)

    def attribute(self, name: str) -> str | None:
        """The first value of an attribute, or None."""
        values = self.attributes.get(name) or ()
        return values[0] if values else None


@dataclass(frozen=True)
class RoleRecord:
    """A realm or client role with its composites: `composites` direct, `expanded` transitively (not itself)."""

    ref: RoleRef
    id: str
    description: str | None = None
    composites: frozenset[RoleRef] = frozenset()
    expanded: frozenset[RoleRef] = frozenset()
    attributes: Attributes = field(default_factory=_empty)

    @property
    def composite(self) -> bool:
        return bool(self.composites)


@dataclass(frozen=True)
class GroupRecord:
    """A group with its place in the tree, its direct role grants and its direct members (user ids)."""

    id: str
    name: str
    path: str
    parent_id: str | None = None
    parent_path: str | None = None
    attributes: Attributes = field(default_factory=_empty)
    roles: frozenset[RoleRef] = frozenset()
    member_ids: frozenset[str] = frozenset()

    @property
    def ancestors(self) -> tuple[str, ...]:
        """Paths of the parent, grandparent ... up to the top-level group (nearest first)."""
        parts = self.path.strip("/").split("/")
        return tuple("/" + "/".join(parts[:end]) for end in range(len(parts) - 1, 0, -1))


@dataclass(frozen=True)
class Route:
    """One way a user holds a grant.

    `group`: the group whose membership (for a group grant) or role mapping (for a role) gives it; None when
    it is mapped on the user itself. `member_of`: the group the user is a direct member of, when that differs
    from `group` (a child group inheriting from `group`). `composites`: the chain of composite roles from the
    role actually mapped down to the one held (outermost first); empty when the role is mapped as it is.
    """

    group: str | None = None
    member_of: str | None = None
    composites: tuple[RoleRef, ...] = ()

    @property
    def how(self) -> How:
        if self.composites:
            return "composite"
        return "group" if self.group is not None else "direct"

    def describe(self) -> str:
        """A short human text: 'direct', 'via group /a (member of /a/b)', 'via composite admin via group /x'."""
        parts: list[str] = []
        if self.composites:
            parts.append("via composite " + " > ".join(role.label for role in self.composites))
        if self.group is not None:
            text = f"via group {self.group}"
            if self.member_of is not None and self.member_of != self.group:
                text += f" (member of {self.member_of})"
            parts.append(text)
        return " ".join(parts) if parts else "direct"


@dataclass(frozen=True)
class Grant:
    """One entitlement a user effectively holds (a role, or a group membership) and every route to it."""

    kind: GrantKind
    name: str  # the role's label or the group's path
    routes: tuple[Route, ...]
    role: RoleRef | None = None  # set when kind == "role"

    @property
    def direct(self) -> bool:
        """Mapped on the user itself (a role) or a direct membership (a group)."""
        return any(route.how == "direct" for route in self.routes)

    @property
    def hows(self) -> frozenset[How]:
        return frozenset(route.how for route in self.routes)


@dataclass(frozen=True)
class UserAccess:
    """A user's effective access: direct group memberships, and every grant with its routes (sorted)."""

    user_id: str
    groups: frozenset[str] = frozenset()  # paths of direct memberships
    grants: tuple[Grant, ...] = ()

    def roles(self) -> Iterator[Grant]:
        return (grant for grant in self.grants if grant.kind == "role")

    def role_refs(self) -> frozenset[RoleRef]:
        return frozenset(grant.role for grant in self.grants if grant.role is not None)

    def group_paths(self) -> frozenset[str]:
        """Direct memberships and the groups they inherit from (ancestors)."""
        return frozenset(grant.name for grant in self.grants if grant.kind == "group")

    def grant(self, kind: GrantKind, name: str) -> Grant | None:
        return next((grant for grant in self.grants if grant.kind == kind and grant.name == name), None)


@dataclass(frozen=True)
class SanctionSummary:
    """A sanction from the ledger, as much as reviews need (states: pending|active|lifted|expired|overturned)."""

    id: str
    user_id: str
    level: str
    state: str
    started_at: datetime | None = None
    until: datetime | None = None
    reason_code: str | None = None

    @property
    def in_force(self) -> bool:
        return self.state in ("pending", "active")


@dataclass(frozen=True)
class AppealSummary:
    """An appeal from the ledger. `acknowledged_at`/`decided_at` are None until that step happened."""

    id: str
    sanction_id: str
    user_id: str
    state: str
    opened_at: datetime
    acknowledged_at: datetime | None = None
    decided_at: datetime | None = None
    # Deadlines fixed when the appeal was opened (None: the ledger has none; the review policy's apply).
    acknowledge_due: datetime | None = None
    decide_due: datetime | None = None


@dataclass(frozen=True)
class SnapshotStats:
    """What taking the snapshot cost: Keycloak requests and seconds, and the counts read."""

    requests: int = 0
    seconds: float = 0.0
    user_pages: int = 0
    credential_reads: int = 0  # per-user credential reads (privileged accounts only)
    via_plugin: bool = False  # users and members came from the idp-agent plugin in one request


@dataclass(frozen=True)
class Snapshot:
    """A realm at `taken_at`. Maps are keyed by Keycloak user id (last_login, access) or group path."""

    taken_at: datetime
    realm: str
    users: tuple[UserRecord, ...]
    roles: tuple[RoleRecord, ...] = ()
    groups: tuple[GroupRecord, ...] = ()
    access: Mapping[str, UserAccess] = field(default_factory=lambda: MappingProxyType({}))
    last_login: Mapping[str, datetime] = field(default_factory=lambda: MappingProxyType({}))
    # The oldest LOGIN event the store holds for this realm: "never logged in" means "not since this"
    # (None: no events were ever harvested, so last-login findings cannot be trusted).
    logins_known_since: datetime | None = None
    sanctions: tuple[SanctionSummary, ...] = ()
    appeals: tuple[AppealSummary, ...] = ()
    # False when the store has no sanctions/appeals ledger yet (the findings then say nothing about them).
    ledger_read: bool = False
    # External ids present in the sources of truth, when the caller read them; None: not known.
    source_external_ids: frozenset[str] | None = None
    # External ids the sources mark as leavers (employment ended), when read; None: not known.
    source_leaver_ids: frozenset[str] | None = None
    stats: SnapshotStats = SnapshotStats()
    # The realm's default role (Keycloak gives it to every user it creates) and whether its members were read.
    # When it grants only the baseline (offline_access, uma_authorization, the account client's roles) they
    # are not (at 10k users that listing costs twice a brief listing of everyone), and no user shows it.
    default_role: RoleRef | None = None
    default_role_members_read: bool = True

    def user(self, user_id: str) -> UserRecord | None:
        return self._users_by_id.get(user_id)

    def access_of(self, user_id: str) -> UserAccess:
        return self.access.get(user_id) or UserAccess(user_id)

    def role(self, ref: RoleRef) -> RoleRecord | None:
        return next((role for role in self.roles if role.ref == ref), None)

    def group(self, path: str) -> GroupRecord | None:
        return next((group for group in self.groups if group.path == path), None)

    @property
    def _users_by_id(self) -> Mapping[str, UserRecord]:
        cached: Mapping[str, UserRecord] | None = self.__dict__.get("_by_id")
        if cached is None:
            cached = MappingProxyType({user.id: user for user in self.users})
            object.__setattr__(self, "_by_id", cached)  # a cache, not state: frozen semantics are kept
        return cached


@dataclass(frozen=True)
class Finding:
    """One problem found in a snapshot. `id` is stable across runs (rule + subject), so reports and campaigns
    can compare runs; `subject` is the username (or role/group) it concerns; `details` are plain JSON values."""

    id: str
    rule: str
    severity: Severity
    subject: str
    explanation: str
    details: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
