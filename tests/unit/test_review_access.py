"""Effective access expanded by us: composites (with chains and cycles), group parents, every route kept."""

from __future__ import annotations

from agent.review.access import beyond_baseline, composite_reach, expand_access, expand_composites
from agent.review.model import GroupRecord, RoleRecord, RoleRef, Route

ADMIN, OPS, READ = RoleRef("admin"), RoleRef("ops"), RoleRef("read")
MANAGE = RoleRef("manage-users", "realm-management")


def roles() -> list[RoleRecord]:
    return [
        RoleRecord(ADMIN, "r1", composites=frozenset({OPS, MANAGE})),
        RoleRecord(OPS, "r2", composites=frozenset({READ})),
        RoleRecord(READ, "r3"),
        RoleRecord(MANAGE, "r4"),
    ]


def test_composites_expand_transitively_with_the_shortest_chain() -> None:
    reach = composite_reach(roles())
    assert reach[ADMIN] == {ADMIN: (), OPS: (ADMIN,), MANAGE: (ADMIN,), READ: (ADMIN, OPS)}
    assert reach[READ] == {READ: ()}
    expanded = {role.ref: role.expanded for role in expand_composites(roles())}
    assert expanded[ADMIN] == {OPS, READ, MANAGE}
    assert expanded[READ] == frozenset()


def test_composite_cycles_end() -> None:
    cyclic = [RoleRecord(ADMIN, "1", composites=frozenset({OPS})), RoleRecord(OPS, "2", composites=frozenset({ADMIN}))]
    assert {role.ref: role.expanded for role in expand_composites(cyclic)} == {ADMIN: {OPS}, OPS: {ADMIN}}


def test_nested_group_grants_reach_members_of_children_with_their_routes() -> None:
    groups = [
        GroupRecord("g1", "it", "/it", roles=frozenset({ADMIN})),
        GroupRecord("g2", "ops", "/it/ops", parent_id="g1", parent_path="/it", member_ids=frozenset({"u1"})),
        GroupRecord("g3", "readers", "/readers", roles=frozenset({READ}), member_ids=frozenset({"u1"})),
    ]
    access = expand_access(["u1", "u2"], roles(), groups, {"u1": [READ], "u2": [OPS]})["u1"]
    assert access.groups == {"/it/ops", "/readers"}
    assert access.group_paths() == {"/it", "/it/ops", "/readers"}
    assert access.grant("group", "/it/ops").routes == (Route(),)  # type: ignore[union-attr]
    assert access.grant("group", "/it").routes == (Route(group="/it/ops"),)  # type: ignore[union-attr]
    assert access.grant("role", "admin").routes == (Route("/it", "/it/ops"),)  # type: ignore[union-attr]
    assert access.grant("role", "realm-management/manage-users").routes == (  # type: ignore[union-attr]
        Route("/it", "/it/ops", (ADMIN,)),
    )
    # read: mapped directly, granted by /readers, and reached through admin > ops: three routes.
    read = access.grant("role", "read")
    assert read is not None and read.direct
    assert read.routes == (Route(), Route("/readers"), Route("/it", "/it/ops", (ADMIN, OPS)))
    assert read.hows == {"direct", "group", "composite"}
    assert access.role_refs() == {ADMIN, OPS, READ, MANAGE}


def test_users_without_grants_and_unknown_roles() -> None:
    access = expand_access(["u1", "u2"], [], [], {"u2": [RoleRef("gone")]})
    assert access["u1"].grants == ()
    gone = access["u2"].grant("role", "gone")
    assert gone is not None and gone.routes == (Route(),)


def test_baseline_roles_are_offline_access_uma_and_the_account_clients() -> None:
    baseline = {RoleRef("offline_access"), RoleRef("uma_authorization"), RoleRef("view-profile", "account")}
    assert beyond_baseline(frozenset(baseline)) == frozenset()
    assert beyond_baseline(frozenset({*baseline, ADMIN, MANAGE})) == {ADMIN, MANAGE}


def test_users_of_one_shape_share_their_grants_and_other_shapes_do_not() -> None:
    groups = [GroupRecord("g1", "it", "/it", roles=frozenset({ADMIN}), member_ids=frozenset({"u1", "u2", "u3"}))]
    access = expand_access(["u1", "u2", "u3"], roles(), groups, {"u1": [READ], "u3": [READ]})
    assert access["u1"].grants is access["u3"].grants  # same groups, same mapped roles: expanded once
    assert access["u2"].grants is not access["u1"].grants
    assert [access[user].user_id for user in ("u1", "u2", "u3")] == ["u1", "u2", "u3"]
    assert access["u1"].grant("role", "read").direct  # type: ignore[union-attr]
    assert not access["u2"].grant("role", "read").direct  # type: ignore[union-attr]
