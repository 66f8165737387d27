"""The gateway against a real Keycloak: realms, lookups, conflicts, paging, read-only mode, write counting."""

from __future__ import annotations

import pytest

from agent.errors import Conflict, ReadOnlyViolation
from agent.keycloak import Group, KeycloakGateway, UserDraft
from agent.keycloak.models import DirectAccess
from agent.settings import KeycloakConnection
from tests.conftest import realm_name_for


def test_realm_is_created_and_removed(gateway: KeycloakGateway) -> None:
    name = realm_name_for("create-remove")
    gateway.create_realm(name, {"displayName": "Created by a test"})
    live = gateway.get_realm(name)
    assert live is not None
    assert live.representation["displayName"] == "Created by a test"
    assert name in gateway.list_realm_names()

    gateway.delete_realm(name)

    assert gateway.get_realm(name) is None
    assert name not in gateway.list_realm_names()


def test_missing_lookups_return_none(gateway: KeycloakGateway, realm: str) -> None:
    assert gateway.get_realm("no-such-realm-" + realm) is None
    assert gateway.get_user(realm, "00000000-0000-0000-0000-000000000000") is None
    assert gateway.find_user_by_username(realm, "nobody") is None
    assert gateway.get_realm_role(realm, "no-such-role") is None
    assert gateway.find_group_by_path(realm, "/no/such/group") is None
    assert gateway.find_client(realm, "no-such-client") is None


def test_duplicate_create_raises_conflict(gateway: KeycloakGateway, realm: str) -> None:
    gateway.create_user(realm, UserDraft("dup"))
    with pytest.raises(Conflict) as raised:
        gateway.create_user(realm, UserDraft("dup"))
    assert raised.value.status == 409
    with pytest.raises(Conflict):
        gateway.create_realm(realm)


def test_lists_are_paged_over_more_users_than_one_page(gateway: KeycloakGateway, realm: str) -> None:
    usernames = {f"user{index:03d}" for index in range(260)}
    for username in sorted(usernames):
        gateway.create_user(realm, UserDraft(username))
    gets_before = gateway.stats.by_method["GET"]

    listed = list(gateway.list_users(realm, page_size=100))

    # 100 + 100 + 60: three pages, the last one short, so no fourth request.
    assert gateway.stats.by_method["GET"] - gets_before == 3
    assert {user.username for user in listed} == usernames
    assert len(listed) == len(usernames) == gateway.count_users(realm)


def test_full_listing_carries_attributes_and_otp_flag(gateway: KeycloakGateway, realm: str) -> None:
    gateway.update_realm(realm, {"attributes": {"userProfileEnabled": "true"}})
    gateway.create_user(realm, UserDraft("fully", email="fully@example.org", first_name="Fu", last_name="Lly"))

    [brief] = list(gateway.list_users(realm))
    [full] = list(gateway.list_users(realm, brief=False))

    assert brief.username == full.username == "fully"
    assert full.totp is False
    assert full.email == "fully@example.org"


def test_read_only_twin_refuses_every_write_and_sends_nothing(gateway: KeycloakGateway, realm: str) -> None:
    read_only = gateway.read_only()
    writes_before = gateway.stats.writes

    with pytest.raises(ReadOnlyViolation):
        read_only.create_user(realm, UserDraft("never"))
    with pytest.raises(ReadOnlyViolation):
        read_only.update_realm(realm, {"displayName": "changed"})
    with pytest.raises(ReadOnlyViolation):
        read_only.delete_realm(realm)

    assert gateway.stats.writes == writes_before
    assert read_only.find_user_by_username(realm, "never") is None  # reads still work
    live = gateway.get_realm(realm)
    assert live is not None and live.representation.get("displayName") != "changed"


def test_write_counter_counts_each_write_once(keycloak_connection: KeycloakConnection, realm: str) -> None:
    fresh = KeycloakGateway.connect(keycloak_connection)
    try:
        user_id = fresh.create_user(realm, UserDraft("counted"))
        fresh.update_user(realm, user_id, {"firstName": "Counted"})
        fresh.delete_user(realm, user_id)
        list(fresh.list_users(realm))

        assert fresh.stats.writes == 3
        assert fresh.stats.by_method["POST"] == 1
        assert fresh.stats.by_method["PUT"] == 1
        assert fresh.stats.by_method["DELETE"] == 1
    finally:
        fresh.close()


def test_update_user_keeps_fields_not_mentioned(gateway: KeycloakGateway, realm: str) -> None:
    user_id = gateway.create_user(realm, UserDraft("keep", email="keep@example.org", first_name="Kee"))

    gateway.update_user(realm, user_id, {"lastName": "Per"})

    user = gateway.get_user(realm, user_id)
    assert user is not None
    assert (user.email, user.first_name, user.last_name) == ("keep@example.org", "Kee", "Per")


def test_groups_read_the_same_by_export_and_by_paging(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str
) -> None:
    from tests.harness.accounts import service_account

    top = gateway.create_group_with(realm, "dept", None, {"attributes": {"cost-centre": ["42"]}})
    team = gateway.create_group_with(realm, "team", top)
    gateway.create_group_with(realm, "night", team)
    gateway.create_group_with(realm, "other", None)
    gateway.create_realm_role(realm, "clerk")
    clerk = gateway.get_realm_role(realm, "clerk")
    assert clerk is not None
    gateway.change_group_realm_roles(realm, team, [clerk], [])

    by_export = gateway.list_groups(realm)
    viewer_connection = service_account(gateway, keycloak_connection, realm, "svc-groups", ["view-users", "view-realm"])
    viewer = KeycloakGateway.connect(viewer_connection)
    try:
        by_paging = viewer.list_groups(realm)  # no manage-realm: may not export, so it pages
    finally:
        viewer.close()

    def shape(groups: list[Group]) -> set[tuple[object, ...]]:
        return {
            (
                g.id,
                g.path,
                g.parent_id,
                g.sub_group_count,
                tuple(sorted(g.realm_roles)),
                dict(g.attributes).get("cost-centre"),
            )
            for g in groups
        }

    assert shape(by_export) == shape(by_paging)
    assert [g.path for g in by_export].index("/dept") < [g.path for g in by_export].index("/dept/team/night")
    assert ("/dept/team", ("clerk",)) in {(g.path, g.realm_roles) for g in by_export}


def test_the_realm_outline_is_what_the_five_reads_give_by_plugin_export_or_listings(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str
) -> None:
    """One request to the plugin; the export and the user profile without it; the five reads without manage-realm."""
    from tests.harness.accounts import service_account

    top = gateway.create_group_with(realm, "dept", None, {"attributes": {"cost-centre": ["42"]}})
    gateway.create_group_with(realm, "team", top)
    gateway.create_realm_role(realm, "clerk", {"description": "Files", "attributes": {"tier": ["2"]}})
    gateway.update_required_action(realm, "VERIFY_EMAIL", {"enabled": True, "defaultAction": True})
    viewer = KeycloakGateway.connect(
        service_account(gateway, keycloak_connection, realm, "svc-outline", ["view-users", "view-realm"])
    )
    try:
        outlines = {}
        for name, reader, use_plugin, requests in (
            ("plugin", gateway, True, 1),
            ("export", gateway, False, 2),
            ("plugin, viewer", viewer, True, 1),
            # The export refused; the realm, its groups (top level, then children), roles, actions and user profile.
            ("listings, viewer", viewer, False, 7),
        ):
            before = reader.stats.requests
            outlines[name] = reader.read_realm_outline(realm, use_plugin=use_plugin)
            assert (name, reader.stats.requests - before) == (name, requests)
    finally:
        viewer.close()

    live = gateway.get_realm(realm)
    assert live is not None
    expected_roles = sorted(gateway.list_realm_roles(realm), key=lambda role: role.id)
    expected_actions = sorted(gateway.list_required_actions(realm), key=lambda action: action.alias)
    for name, outline in outlines.items():
        for key in ("id", "realm", "editUsernameAllowed", "bruteForceProtected", "defaultRole"):
            assert (name, key, outline.settings[key]) == (name, key, live.representation[key])
        assert [(g.id, g.path, g.parent_id) for g in outline.groups] == [
            (g.id, g.path, g.parent_id) for g in gateway.list_groups(realm)
        ], name
        assert sorted(outline.realm_roles, key=lambda role: role.id) == expected_roles, name
        assert sorted(outline.required_actions, key=lambda action: action.alias) == expected_actions, name
        assert outline.user_profile == gateway.get_user_profile(realm), name
    clerk = next(role for role in outlines["plugin"].realm_roles if role.name == "clerk")
    assert (clerk.description, dict(clerk.attributes)) == ("Files", {"tier": ("2",)})


def test_direct_access_is_what_the_user_holds_themselves_and_nothing_of_a_user_gone(
    gateway: KeycloakGateway, realm: str
) -> None:
    """Direct memberships and role mappings only: a role held through a group is not the user's own grant."""
    user_id = gateway.create_user(realm, UserDraft("held"))
    parent = gateway.create_group(realm, "parent")
    child = gateway.create_group(realm, "child", parent)
    gateway.create_realm_role(realm, "own")
    gateway.create_realm_role(realm, "through-group")
    app = gateway.create_client(realm, {"clientId": "app", "publicClient": False})
    gateway.create_client_role(realm, app, "viewer")
    gateway.add_user_to_group(realm, user_id, child)
    own, through_group = gateway.get_realm_role(realm, "own"), gateway.get_realm_role(realm, "through-group")
    assert own is not None and through_group is not None
    gateway.change_group_realm_roles(realm, child, add=[through_group], remove=[])
    gateway.add_realm_roles_to_user(realm, user_id, [own])
    gateway.add_client_roles_to_user(realm, user_id, app, gateway.list_client_roles(realm, app))

    access = gateway.direct_access(realm, user_id)

    assert access.groups == {"/parent/child"}
    assert "own" in access.realm_roles and "through-group" not in access.realm_roles
    assert access.client_roles == {("app", "viewer")}
    assert gateway.direct_access(realm, user_id, roles=False).realm_roles == frozenset()
    # The plugin's answer for many users at once: the same, by id.
    other = gateway.create_user(realm, UserDraft("holds-nothing-directly"))
    answer = gateway.direct_grant_ids(realm, [user_id, other, "no-such-user"])
    assert answer is not None
    roles, groups = answer
    role_ids = {own.id, gateway.list_client_roles(realm, app)[0].id}
    assert groups == {user_id: {child}}
    assert role_ids <= roles[user_id] and through_group.id not in roles[user_id]
    assert not role_ids & roles[other]  # the realm's default role only
    with pytest.raises(ValueError, match="at most 80"):
        gateway.direct_grant_ids(realm, [user_id] * 81)
    gateway.delete_user(realm, user_id)
    assert gateway.direct_access(realm, user_id) == DirectAccess()
