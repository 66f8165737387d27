"""The snapshot's plain values: role labels, routes, MFA presence, group ancestors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.review.model import Grant, GroupRecord, RoleRef, Route, Snapshot, UserAccess, UserRecord


def test_role_labels_tell_realm_and_client_roles_apart() -> None:
    assert RoleRef("admin").label == "admin"
    assert RoleRef("manage-users", "realm-management").label == "realm-management/manage-users"
    assert RoleRef("manage-users", "realm-management").is_realm_management
    assert not RoleRef("admin").is_realm_management


@pytest.mark.parametrize(
    ("route", "how", "text"),
    [
        (Route(), "direct", "direct"),
        (Route(group="/a"), "group", "via group /a"),
        (Route(group="/a", member_of="/a/b"), "group", "via group /a (member of /a/b)"),
        (Route(composites=(RoleRef("admin"),)), "composite", "via composite admin"),
        (
            Route(group="/x", composites=(RoleRef("admin"), RoleRef("ops"))),
            "composite",
            "via composite admin > ops via group /x",
        ),
    ],
)
def test_routes_say_how_a_grant_is_held(route: Route, how: str, text: str) -> None:
    assert route.how == how
    assert route.describe() == text


def test_grant_is_direct_when_any_route_is_direct() -> None:
    both = Grant("role", "admin", (Route(group="/a"), Route()), RoleRef("admin"))
    only_group = Grant("role", "admin", (Route(group="/a"),), RoleRef("admin"))
    assert both.direct and both.hows == {"direct", "group"}
    assert not only_group.direct


@pytest.mark.parametrize(
    ("totp", "types", "mfa", "webauthn"),
    [
        (False, None, False, None),
        (True, None, True, None),
        (False, frozenset({"password"}), False, False),
        (False, frozenset({"password", "webauthn"}), True, True),
        (False, frozenset({"webauthn-passwordless"}), True, True),
        (False, frozenset({"otp"}), True, False),
    ],
)
def test_mfa_is_otp_or_webauthn(totp: bool, types: frozenset[str] | None, mfa: bool, webauthn: bool | None) -> None:
    user = UserRecord("u1", "alice", True, totp=totp, credential_types=types)
    assert user.has_mfa is mfa
    assert user.has_webauthn is webauthn


def test_group_ancestors_nearest_first() -> None:
    assert GroupRecord("g", "c", "/a/b/c").ancestors == ("/a/b", "/a")
    assert GroupRecord("g", "a", "/a").ancestors == ()


def test_snapshot_lookups() -> None:
    alice = UserRecord("u1", "alice", True)
    access = UserAccess("u1", frozenset({"/a"}), (Grant("group", "/a", (Route(),)),))
    snapshot = Snapshot(datetime(2026, 1, 1, tzinfo=UTC), "acme", (alice,), access={"u1": access})
    assert snapshot.user("u1") is alice
    assert snapshot.user("nobody") is None
    assert snapshot.access_of("u1").group_paths() == {"/a"}
    assert snapshot.access_of("nobody").grants == ()
