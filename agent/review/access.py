"""Effective access, expanded by us: Keycloak's member listings name direct links only, so composites and
group inheritance (a member of /a/b holds what /a grants) are resolved here, with every route kept.
Pure functions over plain values.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace

from agent.review.model import Grant, GrantKind, GroupRecord, RoleRecord, RoleRef, Route, UserAccess

# What a realm's default role grants out of the box: roles every account may hold without review.
BASELINE_REALM_ROLES = frozenset({"offline_access", "uma_authorization"})
BASELINE_CLIENTS = frozenset({"account"})

# role -> (every role it makes its holder hold, including itself) -> composite chain leading there
Reach = Mapping[RoleRef, Mapping[RoleRef, tuple[RoleRef, ...]]]


def beyond_baseline(roles: frozenset[RoleRef]) -> frozenset[RoleRef]:
    """The roles that are more than Keycloak's out-of-the-box default grants."""
    return frozenset(
        ref
        for ref in roles
        if not (ref.client is None and ref.name in BASELINE_REALM_ROLES) and ref.client not in BASELINE_CLIENTS
    )


def expand_composites(roles: Iterable[RoleRecord]) -> tuple[RoleRecord, ...]:
    """The roles with `expanded` filled: every role reachable through composites (cycles are harmless)."""
    listed = tuple(roles)
    reach = composite_reach(listed)
    return tuple(replace(role, expanded=frozenset(reach[role.ref]) - {role.ref}) for role in listed)


def composite_reach(roles: Iterable[RoleRecord]) -> dict[RoleRef, dict[RoleRef, tuple[RoleRef, ...]]]:
    """For each role, what holding it gives: itself (chain ()) and each composite member with the shortest
    chain of composites leading to it (outermost first, the held role itself not included)."""
    children = {role.ref: role.composites for role in roles}
    reach: dict[RoleRef, dict[RoleRef, tuple[RoleRef, ...]]] = {}
    for start in children:
        chains: dict[RoleRef, tuple[RoleRef, ...]] = {start: ()}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            for child in sorted(children.get(current, ())):
                if child not in chains:
                    chains[child] = (*chains[current], current)
                    queue.append(child)
        reach[start] = chains
    return reach


def expand_access(
    user_ids: Iterable[str],
    roles: Iterable[RoleRecord],
    groups: Iterable[GroupRecord],
    user_roles: Mapping[str, Iterable[RoleRef]],
) -> dict[str, UserAccess]:
    """Every user's effective grants: roles mapped on them, groups they are in (and those groups' ancestors),
    roles those groups grant, and everything composites add; each grant with all its routes.

    A role not in `roles` (deleted meanwhile, or from a client the export left out) is still held, without
    composites.
    """
    reach = composite_reach(roles)
    group_list = tuple(groups)
    by_path = {group.path: group for group in group_list}
    memberships: dict[str, set[str]] = {}
    for group in group_list:
        for member in group.member_ids:
            memberships.setdefault(member, set()).add(group.path)
    # Users with the same memberships and mapped roles hold the same grants: most of a realm falls into a few
    # such shapes (a department, a level), so each shape is expanded once and its grants shared.
    shapes: dict[tuple[frozenset[str], frozenset[RoleRef]], tuple[Grant, ...]] = {}
    access: dict[str, UserAccess] = {}
    for user_id in user_ids:
        shape = (frozenset(memberships.get(user_id, ())), frozenset(user_roles.get(user_id, ())))
        grants = shapes.get(shape)
        if grants is None:
            grants = shapes[shape] = _grants_of(*shape, by_path, reach)
        access[user_id] = UserAccess(user_id, shape[0], grants)
    return access


def _grants_of(
    member_of: frozenset[str],
    mapped: frozenset[RoleRef],
    groups: Mapping[str, GroupRecord],
    reach: Reach,
) -> tuple[Grant, ...]:
    routes: dict[tuple[GrantKind, str], set[Route]] = {}
    role_of: dict[str, RoleRef] = {}

    def hold_role(ref: RoleRef, group: str | None, via: str | None) -> None:
        for held, chain in (reach.get(ref) or {ref: ()}).items():
            role_of[held.label] = held
            routes.setdefault(("role", held.label), set()).add(Route(group, via, chain))

    for ref in mapped:
        hold_role(ref, None, None)
    for path in member_of:
        routes.setdefault(("group", path), set()).add(Route())
        group = groups.get(path)
        ancestors = group.ancestors if group is not None else ()
        for ancestor in ancestors:
            routes.setdefault(("group", ancestor), set()).add(Route(group=path))
        for granting in (path, *ancestors):
            granting_group = groups.get(granting)
            for ref in granting_group.roles if granting_group is not None else ():
                hold_role(ref, granting, path if granting != path else None)
    return tuple(
        Grant(kind, name, _ordered_routes(found), role_of.get(name) if kind == "role" else None)
        for (kind, name), found in sorted(routes.items())
    )


_HOW_ORDER = {"direct": "0", "group": "1", "composite": "2"}


def _ordered_routes(found: set[Route]) -> tuple[Route, ...]:
    # Most grants have one route: no key to build (this runs once per grant, 10^5 times in a large realm).
    return tuple(found) if len(found) == 1 else tuple(sorted(found, key=_route_key))


def _route_key(route: Route) -> tuple[str, str, str, tuple[str, ...]]:
    return (_HOW_ORDER[route.how], route.group or "", route.member_of or "", tuple(r.label for r in route.composites))
