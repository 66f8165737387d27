"""The sync plan: joiners, movers, leavers and rehires, computed by pure functions from desired and live users.

Precedence of account state: sanction > brute-force lock > leaver > source data. The plan never flips
`enabled` on a user a sanction or a lock holds, and never touches a user it does not manage (matched only
by the immutable id stored on the user, never by username or email).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from agent.keycloak import User
from agent.sync.grants import GrantRecord, Grants, grant_record
from agent.sync.model import (
    DISABLED_BY_SYNC_ATTRIBUTE,
    EXTERNAL_ID_ATTRIBUTE,
    SOURCE_ATTRIBUTE,
    DesiredUser,
    RejectedRecord,
)

SyncAction = Literal[
    "create", "update", "disable", "enable", "grant", "revoke", "confirm-leaver", "mark-left", "delete", "anonymise"
]
# Why a leaver candidate is one (also how an approval tells one apart in a set staged before candidates were
# staged as `confirm-leaver`).
ABSENT_FROM_SOURCES = "absent from every source; confirmed by an exact lookup before it is disabled"
# A leaver whose account someone else already disabled (a sanction, an admin) is not disabled again but
# `mark-left`: the marker (DISABLED_BY_SYNC_ATTRIBUTE) starts the retention period, and tells the sanction
# engine not to enable the account when the sanction ends. No change of access: not a removal for the brakes
# (the delete after retention is one). One absent from the sources is confirmed by lookup first.
LEFT_SANCTIONED = (
    "employment ended while disabled by a sanction: marked as left, so the sanction's end keeps it disabled"
)
ABSENT_SANCTIONED = "absent from every source while disabled by a sanction: marked as left once a lookup confirms"
# In the marker of an account someone else disabled: a rehire does not enable it (their disable, not ours).
FOUND_DISABLED = "found disabled by someone else"
LEFT_FOUND_DISABLED = f"employment ended; {FOUND_DISABLED}: marked as left (the retention period applies)"
ABSENT_FOUND_DISABLED = f"absent from every source; {FOUND_DISABLED}: marked as left once a lookup confirms"
# The marker of an account created disabled for a future hire (see representations.py); one whose hire is
# called off before the start is a leaver's too, and the retention period must run for it.
NOT_STARTED_MARK = "not started"
LEFT_BEFORE_START = "employment ended before it started: marked as left (the retention period applies)"
ABSENT_BEFORE_START = "absent from every source before the start date: marked as left once a lookup confirms"
REMOVALS: frozenset[SyncAction] = frozenset({"disable", "revoke", "delete", "anonymise"})


@dataclass(frozen=True)
class Retention:
    """How long a leaver's disabled account is kept (a rehire within it gets the same account back), and
    what happens after: `delete` it, or `anonymise` it (personal data wiped, no longer linked to the id)."""

    keep_for: timedelta
    then: Literal["delete", "anonymise"] = "delete"


def left_at(marker: str | None) -> datetime | None:
    """When the sync disabled a leaver, from its marker `left <ISO time>: <reason>`; None for other marks."""
    if not marker or not marker.startswith("left "):
        return None
    try:
        return datetime.fromisoformat(marker.removeprefix("left ").split(": ", 1)[0])
    except ValueError:
        return None


def desired_grants(user: DesiredUser) -> Grants:
    return Grants(user.groups, user.realm_roles, user.client_roles)


@dataclass(frozen=True)
class LiveUser:
    """A Keycloak user the sync manages, with what it recorded on the user: the grants it gave, and those a rule
    wanted that the person already held (see agent/sync/grants.py)."""

    user: User
    external_id: str
    recorded_grants: Grants
    disabled_by_sync: str | None
    found_held: Grants = field(default_factory=Grants)

    @classmethod
    def from_user(cls, user: User) -> LiveUser:
        attributes = user.attributes
        record = grant_record(user)
        return cls(
            user=user,
            external_id=_first(attributes.get(EXTERNAL_ID_ATTRIBUTE)) or "",
            recorded_grants=record.given,
            disabled_by_sync=_first(attributes.get(DISABLED_BY_SYNC_ATTRIBUTE)),
            found_held=record.held,
        )


def _first(values: tuple[str, ...] | None) -> str | None:
    return values[0] if values else None


@dataclass(frozen=True)
class SyncItem:
    """One step for one person. `fields` are (field, live, desired) for updates; `grants` for grant/revoke;
    `found_held` for updates: the desired grants the person holds by other means (an admin's), recorded as not
    the sync's."""

    action: SyncAction
    external_id: str
    username: str
    user_id: str | None = None
    desired: DesiredUser | None = None
    fields: tuple[tuple[str, str | None, str | None], ...] = ()
    grants: Grants = field(default_factory=Grants)
    reason: str = ""
    found_held: Grants = field(default_factory=Grants)


@dataclass(frozen=True)
class Held:
    """A user the plan leaves alone on purpose, with why (sanctioned, locked, deny-listed...)."""

    external_id: str
    username: str
    reason: str


@dataclass(frozen=True)
class SyncPlan:
    realm: str
    source: str
    items: tuple[SyncItem, ...]
    rejected: tuple[RejectedRecord, ...] = ()
    held: tuple[Held, ...] = ()
    leaver_phase: bool = True  # False when a source read was incomplete: no leaver was planned
    managed_users: int = 0
    # Of those, the enabled: the removal brake's share is of the people who hold access now, not of the
    # leavers kept disabled for retention (1,200 of them beside 300 staff would let 299 disables through).
    enabled_users: int = 0
    # Ids of people inactive in the sources who never had an account: nothing to do, and not an error (an HR
    # export keeps years of leavers; reporting each as rejected at every run would bury the real rejects).
    never_created: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.items

    def of(self, *actions: SyncAction) -> tuple[SyncItem, ...]:
        return tuple(item for item in self.items if item.action in actions)

    @property
    def removals(self) -> tuple[SyncItem, ...]:
        """Disables (including leaver candidates still to confirm) and grant removals: what the brakes count."""
        return tuple(item for item in self.items if item.action in REMOVALS or item.action == "confirm-leaver")

    @property
    def to_confirm(self) -> tuple[SyncItem, ...]:
        """The items an exact lookup must confirm first: leaver candidates, and accounts to mark as left that
        the sources no longer list."""
        return tuple(
            item for item in self.items
            if item.action == "confirm-leaver" or (item.action == "mark-left" and item.desired is None)
        )  # fmt: skip

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for item in self.items:
            totals[item.action] = totals.get(item.action, 0) + 1
        totals["rejected"] = len(self.rejected)
        totals["held"] = len(self.held)
        return totals


@dataclass(frozen=True)
class SyncContext:
    """What the planner needs besides users: the time, who is held, and how the sync is set up."""

    realm: str
    source: str
    now: datetime
    sanctioned: frozenset[str] = frozenset()  # Keycloak user ids under an active sanction
    locked: frozenset[str] = frozenset()  # Keycloak user ids locked by brute-force detection
    deny_usernames: frozenset[str] = frozenset()  # break-glass and other accounts the sync never touches
    managed_attributes: tuple[str, ...] = ()  # source attributes copied to users (department, title...)
    complete: bool = True  # every source read was complete: the leaver phase may run
    # Keycloak refuses username changes (even an admin's) unless the realm allows editing usernames.
    usernames_editable: bool = True
    # People the sources still list though they make no user this run (a rejected record, a hire beyond the
    # lookahead): never leavers.
    still_listed: frozenset[str] = frozenset()
    # What the realm has, to refuse grants of groups or roles that do not exist (None: not checked).
    known_groups: frozenset[str] | None = None
    known_realm_roles: frozenset[str] | None = None
    known_client_roles: frozenset[tuple[str, str]] | None = None
    retention: Retention | None = None  # None: leavers stay disabled for good


def unknown_grant(user: DesiredUser, context: SyncContext) -> str | None:
    """Why the user's grants cannot be made (a group or role missing from the realm), or None."""
    checks = (
        ("group", user.groups, context.known_groups, str),
        ("realm role", user.realm_roles, context.known_realm_roles, str),
        ("client role", user.client_roles, context.known_client_roles, "/".join),
    )
    for label, wanted, known, show in checks:
        if known is None or wanted <= known:
            continue
        missing = sorted(show(target) for target in wanted if target not in known)
        if missing:
            return f"grants unknown {label}(s) {', '.join(missing)} in realm '{context.realm}'"
    return None


def _should_be_enabled(user: DesiredUser, now: datetime) -> bool:
    if user.status != "active":
        return False
    if user.start is not None and user.start > now:
        return False
    return user.end is None or user.end > now


def _field_changes(
    desired: DesiredUser, live: User, context: SyncContext
) -> tuple[tuple[str, str | None, str | None], ...]:
    changes: list[tuple[str, str | None, str | None]] = []
    for name, wanted, current in (
        ("username", desired.username.lower() if context.usernames_editable else None, live.username),
        ("email", (desired.email or "").lower() or None, live.email),
        ("firstName", desired.first_name, live.first_name),
        ("lastName", desired.last_name, live.last_name),
    ):
        if wanted is not None and wanted != current:
            changes.append((name, current, wanted))
    for name in context.managed_attributes:
        wanted_values = desired.attributes.get(name, ())
        current_values = live.attributes.get(name, ())
        if tuple(wanted_values) != tuple(current_values):
            changes.append((f"attributes.{name}", ",".join(current_values) or None, ",".join(wanted_values) or None))
    return tuple(changes)


NEVER_TOUCHED = "on the deny-list: never touched by the sync"


def never_touched(user: User, deny_usernames: frozenset[str]) -> bool:
    """A deny-listed account (break-glass) or a service account: the sync changes it in no way."""
    return user.username.lower() in deny_usernames or bool(user.service_account_client_id)


def _mark_left(live: LiveUser, context: SyncContext, desired: DesiredUser | None) -> SyncItem | None:
    """`mark-left` for a leaver's disabled account not marked as a leaver's yet: someone else disabled it, or the
    sync created it disabled for a hire who never started; None for any other. `desired`: the person as the
    sources list them, gone; None: absent, to be confirmed by lookup."""
    user = live.user
    marker = live.disabled_by_sync
    if user.enabled or (marker is not None and not marker.startswith(NOT_STARTED_MARK)):
        return None
    if marker is not None:  # created for a hire who never started: the sync's own account, now a leaver's
        reason = LEFT_BEFORE_START if desired is not None else ABSENT_BEFORE_START
    elif user.id in context.sanctioned:
        reason = LEFT_SANCTIONED if desired is not None else ABSENT_SANCTIONED
    else:
        reason = LEFT_FOUND_DISABLED if desired is not None else ABSENT_FOUND_DISABLED
    return SyncItem("mark-left", live.external_id, user.username, user.id, desired, reason=reason)


def found_disabled(marker: str | None) -> bool:
    """The sync marked an account someone else had disabled: its rehire is not the sync's to enable."""
    return marker is not None and FOUND_DISABLED in marker


def _held_reason(user: User, context: SyncContext) -> str | None:
    """Why the plan must not change this user's `enabled` (precedence: sanction > lock)."""
    if user.id in context.sanctioned:
        return "active sanction: only the sanction engine changes this user's access"
    if user.id in context.locked:
        return "locked by brute-force detection"
    return None


# An update that takes a reissued email off a leaver's disabled account (no desired state: nothing else changes).
RELEASED_EMAIL = "email released"
REHIRED = "rehired"  # an enable's reason for a person back within retention (whose old sessions must not resume)
# An enabled account whose start date moved ahead (a correction, a rehire entered early) is disabled until then,
# failing closed, and enabled again at the new start, its old sessions ended like a rehire's.
NOT_STARTED_YET = "not started yet"
STARTS_AGAIN = "start date reached again (it had moved ahead)"


def _plan_existing(desired: DesiredUser, live: LiveUser, context: SyncContext) -> tuple[list[SyncItem], Held | None]:
    items: list[SyncItem] = []
    held: Held | None = None
    user = live.user
    fields = _field_changes(desired, user, context)
    if not context.usernames_editable and desired.username.lower() != user.username:
        reason = (
            f"renamed to '{desired.username.lower()}' in the source, but the realm does not allow username "
            "changes (set registration.edit_username: true); other changes are applied"
        )
        held = Held(desired.external_id, user.username, reason)
    wanted = desired_grants(desired)
    # Held by other means when a rule first wanted them: never the sync's to remove, forgotten when no rule wants
    # them any more (the grant itself stays).
    still_held = live.found_held & wanted
    record = GrantRecord(wanted - still_held, still_held)
    if fields or record != GrantRecord(live.recorded_grants, live.found_held):
        reason = "source data changed" if fields else "grants changed"
        items.append(
            SyncItem("update", desired.external_id, user.username, user.id, desired, fields, reason=reason,
                     found_held=still_held)
        )  # fmt: skip
    added = wanted - live.recorded_grants - still_held
    removed = live.recorded_grants - wanted
    if added:
        items.append(SyncItem("grant", desired.external_id, user.username, user.id, desired, grants=added))
    if removed:
        reason = "no longer granted by any rule (only grants the sync gave are removed)"
        items.append(
            SyncItem("revoke", desired.external_id, user.username, user.id, desired, grants=removed, reason=reason)
        )
    enable = _should_be_enabled(desired, context.now)
    if enable == user.enabled:
        mark = _mark_left(live, context, desired) if _has_left(desired, context.now) else None
        if mark is not None:
            items.append(mark)
        return items, held
    hold = _held_reason(user, context)
    if hold is not None:
        return items, held or Held(desired.external_id, user.username, hold)
    if enable and found_disabled(live.disabled_by_sync):
        reason = "disabled by someone else before the person left; a rehire leaves it disabled"
        held = Held(desired.external_id, user.username, reason)
    elif enable and live.disabled_by_sync is not None:
        reason = _enable_reason(live.disabled_by_sync)
        items.append(SyncItem("enable", desired.external_id, user.username, user.id, desired, reason=reason))
    elif enable:
        # Disabled by someone other than the sync (an admin, a sanction since lifted): not ours to undo.
        held = Held(desired.external_id, user.username, "disabled outside the sync; left disabled")
    else:
        reason = "employment ended" if desired.status != "active" or desired.end else NOT_STARTED_YET
        items.append(SyncItem("disable", desired.external_id, user.username, user.id, desired, reason=reason))
    return items, held


def _enable_reason(marker: str) -> str:
    """Why the sync enables an account it disabled, by the marker it left: created before the start, disabled
    when the start moved ahead, or a leaver's."""
    if marker.startswith(NOT_STARTED_MARK):
        return "start date reached"
    return STARTS_AGAIN if marker.endswith(f": {NOT_STARTED_YET}") else REHIRED


def _plan_joiner(
    desired: DesiredUser, taken: Mapping[str, str], releasable: dict[str, LiveUser]
) -> tuple[list[SyncItem], Held | None] | RejectedRecord:
    """The create; or, where a leaver's disabled account holds the email, its release (the account is created at
    the next run, once the email is free). `releasable` loses the email it gives."""
    leaver = releasable.pop((desired.email or "").lower(), None)
    if leaver is not None and f"username:{desired.username.lower()}" not in taken:
        return [_release_email(leaver, desired)], Held(desired.external_id, desired.username, _waits_for_email(leaver))
    for key, value in (("username", desired.username.lower()), ("email", (desired.email or "").lower())):
        owner = taken.get(f"{key}:{value}") if value else None
        if owner is not None:
            # Never link a new hire to another account (one the sync does not manage, a person still here...).
            return RejectedRecord(
                desired.source,
                "",
                f"{key} '{value}' belongs to another account ({owner}); not linked",
                desired.external_id,
            )
    return [SyncItem("create", desired.external_id, desired.username.lower(), None, desired, reason="joiner")], None


def _left_emails(accounts: Iterable[LiveUser], active: set[str]) -> dict[str, LiveUser]:
    """Emails a new hire may take from the account that holds them: a leaver's, which the sync disabled when
    they left, and who is not back (S06: HR reissued the address). An email two accounts hold is not among them."""
    holders: dict[str, list[LiveUser]] = {}
    for live in accounts:
        email = (live.user.email or "").lower()
        if email:
            holders.setdefault(email, []).append(live)
    return {
        email: only
        for email, (only, *others) in holders.items()
        if not others and not only.user.enabled and left_at(only.disabled_by_sync) is not None
        and only.external_id not in active
    }  # fmt: skip


def _release_email(leaver: LiveUser, hire: DesiredUser) -> SyncItem:
    """The leaver's account gives up the email reissued to `hire` (the account, its grants and data stay)."""
    reason = f"{RELEASED_EMAIL}: reissued to new hire {hire.external_id}"
    fields = (("email", leaver.user.email, None),)
    return SyncItem("update", leaver.external_id, leaver.user.username, leaver.user.id, fields=fields, reason=reason)


def _waits_for_email(leaver: LiveUser) -> str:
    return (
        f"email held by the disabled account of leaver '{leaver.user.username}': released in this run, the "
        "account is created at the next"
    )


def _has_left(desired: DesiredUser, now: datetime) -> bool:
    """Employment over: inactive in the sources, or an end that has passed."""
    return desired.status != "active" or (desired.end is not None and desired.end <= now)


def _taken_names(all_users: Iterable[User]) -> dict[str, str]:
    """username:/email: keys of every existing account: a joiner never takes over one of them (a leaver's
    account gives up a reissued email first: see `_left_emails`)."""
    taken: dict[str, str] = {}
    for user in all_users:
        taken[f"username:{user.username.lower()}"] = user.username
        if user.email:
            taken[f"email:{user.email.lower()}"] = user.username
    return taken


def plan_sync(
    desired_users: Iterable[DesiredUser],
    rejected: Iterable[RejectedRecord],
    managed: Iterable[LiveUser],
    all_users: Iterable[User],
    context: SyncContext,
) -> SyncPlan:
    """Everything one sync run would do, in a stable order (by external id). Makes no calls."""
    accounts: list[LiveUser] = []
    held: list[Held] = []
    for managed_user in managed:
        user = managed_user.user
        if never_touched(user, context.deny_usernames):
            held.append(Held(managed_user.external_id, user.username, NEVER_TOUCHED))
            continue
        accounts.append(managed_user)
    accounts.sort(key=lambda account: (account.external_id, account.user.username))
    live_by_id, shared = _by_external_id(accounts)
    taken = _taken_names(all_users)
    items: list[SyncItem] = []
    rejects = list(rejected)
    never_created: list[str] = []
    seen: set[str] = set()
    desired_users_list = sorted(desired_users, key=lambda user: user.external_id)
    active = {user.external_id for user in desired_users_list if user.status == "active"}
    releasable = _left_emails(accounts, active)
    for desired in desired_users_list:
        seen.add(desired.external_id)
        if desired.username.lower() in context.deny_usernames:
            held.append(Held(desired.external_id, desired.username, NEVER_TOUCHED))
            continue
        if desired.external_id in shared:
            reason = _shared_id_reason(shared[desired.external_id], "the sync changes none of them")
            held.extend(
                Held(desired.external_id, username, reason) for username in _usernames(shared[desired.external_id])
            )
            continue
        current = live_by_id.get(desired.external_id)
        if current is None and _has_left(desired, context.now):
            # Checked first: for someone who gets no account, a missing grant or a reissued email is no problem.
            never_created.append(desired.external_id)
            continue
        problem = unknown_grant(desired, context)
        if problem is not None:
            rejects.append(RejectedRecord(desired.source, "", problem, desired.external_id))
            continue
        if current is None:
            joiner = _plan_joiner(desired, taken, releasable)
            if isinstance(joiner, RejectedRecord):
                rejects.append(joiner)
                continue
            planned, hold = joiner
        else:
            planned, hold = _plan_existing(desired, current, context)
        items.extend(planned)
        if hold is not None:
            held.append(hold)
    if context.complete:
        items.extend(_leaver_candidates(accounts, seen | context.still_listed, context, held))
        items.extend(_past_retention(accounts, active | context.still_listed, context, held, shared))
    return SyncPlan(
        context.realm,
        context.source,
        tuple(items),
        tuple(rejects),
        tuple(held),
        leaver_phase=context.complete,
        managed_users=len(accounts),
        enabled_users=sum(1 for account in accounts if account.user.enabled),
        never_created=tuple(never_created),
    )


def _by_external_id(accounts: Iterable[LiveUser]) -> tuple[dict[str, LiveUser], dict[str, list[LiveUser]]]:
    """The accounts by the external id they carry: ids carried by one account, and ids carried by several (a
    copied attribute, an account restored beside its successor), which the sync cannot tell apart."""
    by_id: dict[str, list[LiveUser]] = {}
    for account in accounts:
        by_id.setdefault(account.external_id, []).append(account)
    single = {external_id: found[0] for external_id, found in by_id.items() if len(found) == 1}
    shared = {external_id: found for external_id, found in by_id.items() if len(found) > 1}
    return single, shared


def _usernames(accounts: Iterable[LiveUser]) -> list[str]:
    return sorted(account.user.username for account in accounts)


def _shared_id_reason(accounts: Sequence[LiveUser], outcome: str) -> str:
    names = ", ".join(_usernames(accounts))
    return (
        f"{len(accounts)} accounts carry external id {accounts[0].external_id} ({names}): {outcome} until one is "
        "left (remove the id from the others)"
    )


def _leaver_candidates(
    accounts: Iterable[LiveUser], seen: set[str], context: SyncContext, held: list[Held]
) -> list[SyncItem]:
    """Managed, enabled users the complete reads no longer list (`accounts` in plan order): leavers, once an
    exact lookup confirms. Every account carrying a leaver's id is one: whichever was the person's, none may
    outlive them. Disabled ones not marked as left yet are to be marked (`mark-left`), once a lookup confirms."""
    candidates = []
    for live in accounts:
        external_id = live.external_id
        if external_id in seen:
            continue
        if not live.user.enabled:
            mark = _mark_left(live, context, None)
            if mark is not None:
                candidates.append(mark)
            continue
        hold = _held_reason(live.user, context)
        if hold is not None:
            held.append(Held(external_id, live.user.username, hold))
            continue
        item = SyncItem("confirm-leaver", external_id, live.user.username, live.user.id, reason=ABSENT_FROM_SOURCES)
        candidates.append(item)
    return candidates


def _past_retention(
    accounts: Iterable[LiveUser],
    active: set[str],
    context: SyncContext,
    held: list[Held],
    shared: Mapping[str, Sequence[LiveUser]],
) -> list[SyncItem]:
    """Leavers the sync disabled longer ago than the retention period, and not back in the sources. Accounts
    sharing an id are held: a delete cannot be taken back, and one of them may be another person's."""
    retention = context.retention
    if retention is None:
        return []
    items = []
    for live in accounts:
        external_id = live.external_id
        left = left_at(live.disabled_by_sync)
        if live.user.enabled or left is None or external_id in active or context.now - left < retention.keep_for:
            continue
        if external_id in shared:
            outcome = f"past the retention period, not {'deleted' if retention.then == 'delete' else 'anonymised'}"
            held.append(Held(external_id, live.user.username, _shared_id_reason(shared[external_id], outcome)))
            continue
        if live.user.id in context.sanctioned:
            held.append(Held(external_id, live.user.username, "active sanction: kept until the sanction ends"))
            continue
        reason = f"left {left.date().isoformat()}, beyond the retention period of {retention.keep_for.days} days"
        items.append(SyncItem(retention.then, external_id, live.user.username, live.user.id, reason=reason))
    return items


def managed_live_users(users: Iterable[User], source: str) -> list[LiveUser]:
    """The users this sync manages: those carrying its source name and an external id."""
    managed = []
    for user in users:
        if _first(user.attributes.get(SOURCE_ATTRIBUTE)) == source and _first(
            user.attributes.get(EXTERNAL_ID_ATTRIBUTE)
        ):
            managed.append(LiveUser.from_user(user))
    return managed
