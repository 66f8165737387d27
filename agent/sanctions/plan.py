"""The enforcement planner, pure: a sanction, its level's actions and the observed account give the steps to
take, the changes to record, and (after the writes) what is still not effective.

Applying records what it changes only until the sanction is first verified; a listed grant that comes back
later was put back by hand, and removing it again is drift (journalled as such), not a new change. Lifting
undoes exactly the recorded changes, except those another open sanction of the same user still needs: those
are handed over to it, so they are restored when the last sanction needing them ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from agent.keycloak.models import User
from agent.sanctions.policy import ActionsSpec, SanctionPolicy
from agent.store.sanctions import Changes, ClientRoleRef, Sanction
from agent.store.values import utc_text
from agent.sync.model import DISABLED_BY_SYNC_ATTRIBUTE

StepKind = Literal[
    "disable",
    "enable",
    "remove-role",
    "add-role",
    "remove-client-role",
    "add-client-role",
    "leave-group",
    "join-group",
    "set-attributes",
    "add-required-actions",
    "remove-required-actions",
    "logout",
    "revoke-consent",
]
AttributeValues = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class LiveAccount:
    """What Keycloak says about the account now (read by agent.sanctions.live)."""

    user: User
    roles: frozenset[str]  # direct realm role mappings
    effective_roles: frozenset[str]  # with groups and composites expanded
    groups: frozenset[str]  # direct group paths
    sessions: int  # online sessions
    consents: frozenset[str]  # clientIds with a consent or offline token
    offline_clients: frozenset[str]  # clientIds with offline sessions
    # Client roles, read only for the clients the plan concerns (the rest are not needed and cost a request each).
    client_roles: frozenset[ClientRoleRef] = frozenset()  # direct client role mappings
    effective_client_roles: frozenset[ClientRoleRef] = frozenset()  # with groups and composites expanded


@dataclass(frozen=True)
class Step:
    kind: StepKind
    target: str = ""  # role name, group path or clientId
    client_id: str = ""  # the client of a client role (target is then the role's name)
    attributes: AttributeValues = field(default_factory=lambda: MappingProxyType({}))  # empty tuple: remove
    required_actions: tuple[str, ...] = ()  # the user's whole list after the step
    drift: bool = False  # undoes a change made by hand while the sanction was in force

    def describe(self) -> str:
        if self.kind == "set-attributes":
            shown = ", ".join(
                f"{name}={','.join(values) or '(none)'}" for name, values in sorted(self.attributes.items())
            )
            return f"set-attributes {shown}"
        if self.kind.endswith("required-actions"):
            return f"{self.kind} -> [{', '.join(self.required_actions)}]"
        if self.client_id:
            return f"{self.kind} {self.client_id}:{self.target}"
        return f"{self.kind} {self.target}".strip()


@dataclass(frozen=True)
class Enforcement:
    steps: tuple[Step, ...]
    changes: Changes  # to record before the steps are written


def wanted_attributes(open_sanctions: Sequence[Sanction], policy: SanctionPolicy) -> dict[str, tuple[str, ...]] | None:
    """The sanction attributes the user should carry under these open sanctions; None when none sets them.

    The harshest level names the level and the end (the latest end among equals; an open-ended one wins);
    restrictions are the union of all.
    """
    labelled = [s for s in open_sanctions if s.ending is None and policy.level(s.level).actions.set_attributes]
    if not labelled:
        return None
    names = policy.attributes

    def severity(sanction: Sanction) -> tuple[int, bool, datetime]:
        end = sanction.until or sanction.issued_at
        return policy.rank(sanction.level), sanction.until is None, end

    harshest = max(labelled, key=severity)
    restrictions = sorted({r for s in labelled for r in policy.level(s.level).actions.restrictions})
    return {
        names.level: (harshest.level,),
        names.until: () if harshest.until is None else (utc_text(harshest.until),),
        names.restrictions: tuple(restrictions),
    }


def _sessions_matter(actions: ActionsSpec, first: bool) -> bool:
    """Sessions and offline tokens are ended when the sanction first applies, and kept ended while the
    account is disabled; a restricted user may log in again (with the restriction in the new tokens)."""
    return first or actions.disable


def plan_apply(
    sanction: Sanction,
    actions: ActionsSpec,
    live: LiveAccount,
    wanted: AttributeValues | None,
    *,
    others_recorded_attributes: bool = False,
) -> Enforcement:
    """Steps that make the sanction effective on `live`, and the changes to record first."""
    first = sanction.verified_at is None
    grants, changes = _grant_steps(actions, live, sanction.changes, first)
    steps = list(grants)
    if actions.disable and live.user.enabled:
        steps.append(Step("disable", drift=not first))
        if first and changes.enabled_before is None:
            changes = replace(changes, enabled_before=True)
    if wanted is not None and _differs(live.user, wanted):
        steps.append(Step("set-attributes", attributes=MappingProxyType(dict(wanted))))
        if changes.attributes_before is None and not others_recorded_attributes:
            before = {name: tuple(live.user.attributes.get(name, ())) for name in wanted}
            changes = replace(changes, attributes_before=MappingProxyType(before))
    steps += _session_steps(actions, live, first)
    return Enforcement(tuple(steps), changes)


def _grant_steps(actions: ActionsSpec, live: LiveAccount, changes: Changes, first: bool) -> tuple[list[Step], Changes]:
    """Role, group and required-action steps; each change is recorded only while `first`."""
    steps: list[Step] = []
    for kind, listed, present, name in (
        ("remove-role", actions.remove_roles, True, "removed_roles"),
        ("leave-group", actions.remove_groups, True, "removed_groups"),
        ("join-group", actions.add_groups, False, "added_groups"),
    ):
        held = live.roles if kind == "remove-role" else live.groups
        for target in listed:
            if (target in held) == present:
                steps.append(Step(kind, target, drift=not first))  # type: ignore[arg-type]  # kinds above
                changes = _append(changes, name, target) if first else changes
    for ref in actions.client_role_refs:
        if ref in live.client_roles:  # direct mappings only: one from a group goes with the group
            steps.append(Step("remove-client-role", ref.role, client_id=ref.client_id, drift=not first))
            changes = _append(changes, "removed_client_roles", ref) if first else changes
    missing = [action for action in actions.required_actions if action not in live.user.required_actions]
    if missing:
        steps.append(Step("add-required-actions", required_actions=(*live.user.required_actions, *missing)))
        for action in missing:
            changes = _append(changes, "required_actions_added", action) if first else changes
    return steps, changes


def _session_steps(actions: ActionsSpec, live: LiveAccount, first: bool) -> list[Step]:
    if not _sessions_matter(actions, first):
        return []
    steps = [Step("logout", drift=not first)] if actions.logout and live.sessions else []
    if actions.revoke_consents:
        steps += [Step("revoke-consent", client, drift=not first) for client in sorted(_consent_clients(live))]
    return steps


def _append(changes: Changes, name: str, value: str | ClientRoleRef) -> Changes:
    """`changes` with `value` added to its list `name` (once)."""
    current: tuple[str | ClientRoleRef, ...] = getattr(changes, name)
    if value in current:
        return changes
    updated: dict[str, Any] = {name: (*current, value)}
    return replace(changes, **updated)


def _consent_clients(live: LiveAccount) -> frozenset[str]:
    return live.consents | live.offline_clients


def verify_apply(
    sanction: Sanction, actions: ActionsSpec, live: LiveAccount, wanted: AttributeValues | None
) -> list[str]:
    """What is not yet effective on `live` (empty: the sanction is in force)."""
    first = sanction.verified_at is None
    problems = [f"still has role '{role}'" for role in actions.remove_roles if role in live.effective_roles]
    problems += [
        f"still has client role '{ref.describe()}'" for ref in actions.client_role_refs
        if ref in live.effective_client_roles
    ]  # fmt: skip
    problems += [f"still in group {path}" for path in actions.remove_groups if path in live.groups]
    problems += [f"not in group {path}" for path in actions.add_groups if path not in live.groups]
    problems += [
        f"required action {action} missing" for action in actions.required_actions
        if action not in live.user.required_actions
    ]  # fmt: skip
    if actions.disable and live.user.enabled:
        problems.append("still enabled")
    if wanted is not None and _differs(live.user, wanted):
        problems.append("sanction attributes not set")
    if _sessions_matter(actions, first):
        if actions.logout and live.sessions:
            problems.append(f"{live.sessions} session(s) still open")
        if actions.revoke_consents and _consent_clients(live):
            problems.append(f"consents or offline sessions left for {', '.join(sorted(_consent_clients(live)))}")
    return problems


# -- lifting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handover:
    """What lifting a sanction restores, and the recorded changes passed to sanctions that still need them."""

    restore: Changes
    handed: Mapping[str, Changes]  # sanction id -> its changes after the hand-over


def hand_over(ending: Sanction, others: Sequence[Sanction], policy: SanctionPolicy) -> Handover:
    """Split `ending`'s recorded changes between restoring them and handing them to the first other open
    sanction (in issue order) whose level still needs the same change."""
    restore = Changes()
    handed: dict[str, Changes] = {other.id: other.changes for other in others}
    recorded = ending.changes

    def taker(needs: str, value: str | ClientRoleRef = "") -> Sanction | None:
        for other in others:
            actions = policy.level(other.level).actions
            if _needs(actions, needs, value):
                return other
        return None

    for name, needs in (
        ("removed_roles", "remove_roles"),
        ("removed_groups", "remove_groups"),
        ("added_groups", "add_groups"),
        ("required_actions_added", "required_actions"),
        ("removed_client_roles", "remove_client_roles"),
    ):
        for value in getattr(recorded, name):
            other = taker(needs, value)
            if other is None:
                restore = _append(restore, name, value)
            else:
                handed[other.id] = _append(handed[other.id], name, value)
    if recorded.enabled_before is not None:
        other = taker("disable")
        if other is None:
            restore = replace(restore, enabled_before=recorded.enabled_before)
        elif handed[other.id].enabled_before is None:
            handed[other.id] = replace(handed[other.id], enabled_before=recorded.enabled_before)
    if recorded.attributes_before is not None:
        other = taker("set_attributes")
        if other is None:
            restore = replace(restore, attributes_before=recorded.attributes_before)
        else:
            # The older record is the one nearer the account's own values.
            handed[other.id] = replace(handed[other.id], attributes_before=recorded.attributes_before)
    changed = {key: value for key, value in handed.items() if value != next(o for o in others if o.id == key).changes}
    return Handover(restore, MappingProxyType(changed))


def _needs(actions: ActionsSpec, needs: str, value: str | ClientRoleRef) -> bool:
    if needs in {"disable", "set_attributes"}:
        return bool(getattr(actions, needs))
    if isinstance(value, ClientRoleRef):
        return value in actions.client_role_refs
    return value in getattr(actions, needs)


def plan_restore(restore: Changes, live: LiveAccount, wanted_after: AttributeValues | None) -> tuple[Step, ...]:
    """Steps that undo `restore` on `live`; `wanted_after` are the attributes the remaining sanctions set."""
    steps = [Step("add-role", role) for role in restore.removed_roles if role not in live.roles]
    steps += [
        Step("add-client-role", ref.role, client_id=ref.client_id) for ref in restore.removed_client_roles
        if ref not in live.client_roles
    ]  # fmt: skip
    steps += [Step("join-group", path) for path in restore.removed_groups if path not in live.groups]
    steps += [Step("leave-group", path) for path in restore.added_groups if path in live.groups]
    added = set(restore.required_actions_added)
    if added & set(live.user.required_actions):
        kept = tuple(action for action in live.user.required_actions if action not in added)
        steps.append(Step("remove-required-actions", required_actions=kept))
    if _enable_back(restore, live.user):
        steps.append(Step("enable"))
    target = _attributes_after(restore, wanted_after)
    if target is not None and _differs(live.user, target):
        steps.append(Step("set-attributes", attributes=MappingProxyType(dict(target))))
    return tuple(steps)


def _enable_back(restore: Changes, user: User) -> bool:
    """Whether lifting must enable the account again: the sanction disabled it, and the sync has not marked its
    person as left meanwhile (precedence sanction > leaver: a leaver's sanction ends with the account disabled,
    and the sync enables it again if the person comes back)."""
    return bool(restore.enabled_before) and not user.enabled and not left_meanwhile(user)


def left_meanwhile(user: User) -> bool:
    """The sync marked this (disabled) account as a leaver's."""
    return DISABLED_BY_SYNC_ATTRIBUTE in user.attributes


def _attributes_after(restore: Changes, wanted_after: AttributeValues | None) -> AttributeValues | None:
    if wanted_after is not None:
        return wanted_after
    return restore.attributes_before


def _differs(user: User, target: AttributeValues) -> bool:
    return any(tuple(user.attributes.get(name, ())) != tuple(values) for name, values in target.items())


def verify_restore(restore: Changes, live: LiveAccount, wanted_after: AttributeValues | None) -> list[str]:
    """What is not yet restored on `live` (empty: the account is back as the sanction found it)."""
    problems = [f"role '{role}' not given back" for role in restore.removed_roles if role not in live.roles]
    problems += [
        f"client role '{ref.describe()}' not given back" for ref in restore.removed_client_roles
        if ref not in live.client_roles
    ]  # fmt: skip
    problems += [f"not back in group {path}" for path in restore.removed_groups if path not in live.groups]
    problems += [f"still in group {path}" for path in restore.added_groups if path in live.groups]
    problems += [
        f"required action {action} still set" for action in restore.required_actions_added
        if action in live.user.required_actions
    ]  # fmt: skip
    if _enable_back(restore, live.user):
        problems.append("still disabled")
    target = _attributes_after(restore, wanted_after)
    if target is not None and _differs(live.user, target):
        problems.append("sanction attributes not restored")
    return problems


# -- issuing -----------------------------------------------------------------------------------------


# How a sanction replaced by a milder one on review ends (its end note): the offence is counted once, at the
# milder level.
REDUCED_NOTE_PREFIX = "reduced to "
# The milder sanction's note: how an interrupted reduction's replacement is found again.
REDUCED_FROM_PREFIX = "reduced from "
# The whole mark reduce_sanction writes, naming the milder sanction: a note a person types is not taken for it.
_REDUCED_NOTE = re.compile(rf"{REDUCED_NOTE_PREFIX}\S+ \(s-[0-9a-f]+\): ")


def stands(sanction: Sanction) -> bool:
    """Whether a sanction counts as an offence for escalation: not overturned (nor being overturned), not
    replaced by a milder one."""
    overturned = "overturned" in (sanction.state, sanction.ending)
    return not overturned and _REDUCED_NOTE.match(sanction.end_note) is None


def escalated_level(policy: SanctionPolicy, requested: str, history: Sequence[Sanction], now: datetime) -> str:
    """The level to issue: `requested`, raised by every escalation rule whose count the user's earlier
    sanctions (overturned ones excepted) reach within its window. Rules chain, harsher each time."""
    level = requested
    for _ in policy.levels:
        raised = _raise_once(policy, level, history, now)
        if raised is None:
            return level
        level = raised
    return level


def _raise_once(policy: SanctionPolicy, level: str, history: Sequence[Sanction], now: datetime) -> str | None:
    for rule in policy.escalation:
        if rule.level != level:
            continue
        since = now.timestamp() - rule.within
        counted = [
            s for s in history if s.level == rule.level and stands(s) and s.issued_at.timestamp() >= since
        ]  # fmt: skip
        if len(counted) >= rule.count:
            return rule.raise_to
    return None


def is_expired(sanction: Sanction, now: datetime) -> bool:
    return sanction.until is not None and now >= sanction.until
