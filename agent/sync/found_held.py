"""Grants a rule wants that the person already holds by other means (an admin gave them by hand, before or since
the sync took the person over). The sync removes only grants it gave itself; one it merely "granted" again and
recorded as its own would be removed when the rule stops wanting it, taking the admin's grant away. So before
granting, the plan reads what each person it would grant something to holds directly, and records what they
already hold as found held: not written, never revoked, forgotten (and left in place) once no rule wants it.

A grant the sync made through the admin API just before a crash (recorded in the journal as an intent with no
outcome, the record on the user not yet written) is held too, but it is the sync's: such users are left to
the grant as planned, which records it as the sync's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from agent.keycloak import KeycloakGateway
from agent.keycloak.models import DirectAccess
from agent.keycloak.sync_calls import MAX_DIRECT_GRANT_IDS
from agent.store.journal import JournalEntry
from agent.sync.grants import Grants
from agent.sync.people_changes import Targets
from agent.sync.plan import SyncPlan

# Concurrent reads of what the people the plan would grant something to hold.
READERS = 4
FOUND_HELD = "already held by other means, so recorded as not the sync's (never removed by it)"


def grant_candidates(plan: SyncPlan) -> dict[str, Grants]:
    """User id -> what the plan would grant that existing user (joiners are created with theirs: all the sync's)."""
    return {item.user_id: item.grants for item in plan.of("grant") if item.user_id}


def as_grants(access: DirectAccess) -> Grants:
    return Grants(access.groups, access.realm_roles, access.client_roles)


def with_found_held(plan: SyncPlan, held_now: Mapping[str, Grants]) -> SyncPlan:
    """`plan` with what each person already holds (`held_now`: user id -> the part of their grants they hold)
    taken out of their grant and recorded as found held by their update (which a grant always comes with: the
    record changes)."""
    items = []
    for item in plan.items:
        found = held_now.get(item.user_id or "")
        if not found or item.action not in {"grant", "update"}:
            items.append(item)
        elif item.action == "grant":
            rest = item.grants - found
            if rest:
                items.append(replace(item, grants=rest))
        else:
            note = f"{FOUND_HELD}: {', '.join(found.describe())}"
            reason = note if not item.fields else f"{item.reason}; {note}"
            items.append(replace(item, found_held=item.found_held | found, reason=reason))
    return replace(plan, items=tuple(items))


def grant_cut_short(entries: Sequence[JournalEntry], actor: str, user_id: str) -> bool:
    """Whether the last grant `actor` set out to make for the user has an intent in the journal and no outcome:
    a run stopped between the write and its record, so what the user holds may be that grant."""
    for entry in reversed(entries):
        if entry.actor == actor and entry.action == "user.grant" and entry.details.get("id") == user_id:
            return entry.details.get("outcome") == "intent"
    return False


def grants_of_ids(role_ids: frozenset[str], group_ids: frozenset[str], targets: Targets) -> Grants:
    """Role and group ids as the grants they are (`targets`: the realm's, as the plan saw them); ids of anything
    else (a role or group no rule names) are not among what a plan grants, and are left out."""
    groups = {path for path, group_id in targets.group_ids.items() if group_id in group_ids}
    realm_roles = {name for name, role in targets.realm_roles.items() if role.id in role_ids}
    client_roles = {pair for pair, (_, role) in targets.client_roles.items() if role.id in role_ids}
    return Grants(frozenset(groups), frozenset(realm_roles), frozenset(client_roles))


def held_by_plugin(
    gateway: KeycloakGateway, realm: str, candidates: Mapping[str, Grants], targets: Targets
) -> dict[str, Grants] | None:
    """The part of each candidate's grants they hold directly, read from the idp-agent plugin a few dozen people a
    request; None where it does not answer."""
    user_ids = list(candidates)
    chunks = [user_ids[start : start + MAX_DIRECT_GRANT_IDS] for start in range(0, len(user_ids), MAX_DIRECT_GRANT_IDS)]
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="direct-grants") as pool:
        answers = list(pool.map(lambda chunk: gateway.direct_grant_ids(realm, chunk), chunks))
    held: dict[str, Grants] = {}
    for chunk, answer in zip(chunks, answers, strict=True):
        if answer is None:
            return None
        roles, groups = answer
        for user_id in chunk:
            ids = roles.get(user_id, frozenset()), groups.get(user_id, frozenset())
            held[user_id] = candidates[user_id] & grants_of_ids(*ids, targets)
    return held


def held_by_admin_api(gateway: KeycloakGateway, realm: str, candidates: Mapping[str, Grants]) -> dict[str, Grants]:
    """As `held_by_plugin`, through the admin API: one or two reads a person (groups, role mappings)."""

    def held_of(user_id: str) -> Grants:
        wanted = candidates[user_id]
        roles = bool(wanted.realm_roles or wanted.client_roles)
        return wanted & as_grants(gateway.direct_access(realm, user_id, groups=bool(wanted.groups), roles=roles))

    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="direct-access") as pool:
        return dict(zip(candidates, pool.map(held_of, candidates), strict=True))


def settle_found_held(
    gateway: KeycloakGateway,
    plan: SyncPlan,
    *,
    sync: str,
    journal_of: Callable[[str], Sequence[JournalEntry]],
    targets: Targets | None = None,
) -> SyncPlan:
    """Read what the people the plan grants something to hold directly, and record what they hold as found held
    (see the module's docstring). `journal_of(username)`: the journal's entries about that user, in order.
    `targets`: the realm's groups and roles as the plan saw them, to read through the plugin (else the admin API)."""
    candidates = grant_candidates(plan)
    if not candidates:
        return plan
    found = held_by_plugin(gateway, plan.realm, candidates, targets) if targets is not None else None
    held_now = found if found is not None else held_by_admin_api(gateway, plan.realm, candidates)
    usernames = {item.user_id: item.username for item in plan.of("grant") if item.user_id}
    actor = f"sync:{sync}"
    held_now = {
        user_id: held for user_id, held in held_now.items()
        if held and not grant_cut_short(journal_of(usernames[user_id]), actor, user_id)
    }  # fmt: skip
    return with_found_held(plan, held_now) if held_now else plan
