"""The plugin's bulk user changes (`PUT /realms/{realm}/idp-agent/users/changes`, UserChanges.java) on a real
Keycloak: exactly what a change names is made, a change Keycloak cannot make is refused whole while the rest are
made, leavers' sessions, consents and offline tokens end, and the plugin declines where the admin API must do it."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from agent.keycloak import KeycloakGateway, UserDraft
from agent.keycloak.models import UserChange
from agent.keycloak.transport import admin_path
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from tests.harness.accounts import realm_admin_user
from tests.harness.federation import add_disabled_ldap_federation
from tests.harness.offline_tokens import offline_login, refresh_status
from tests.harness.realm_steps import apply_spec, spec_of

PASSWORD = "Changes-password-1!"


def seed(connection: KeycloakConnection, gateway: KeycloakGateway, realm: str) -> dict[str, str]:
    """Groups /a and /b, realm roles r1 and r2, client `app` with role viewer; users one to four; admin events
    kept with their representations."""
    apply_spec(
        connection,
        spec_of(
            {
                "realm": realm,
                "roles": [{"name": "r1"}, {"name": "r2"}],
                "groups": [{"path": "/a"}, {"path": "/b"}],
                "user_profile": {"unmanaged_attributes": "admin_edit"},
                "events": {"admin_events": True, "admin_events_details": True},
            }
        ),
    )
    app = gateway.create_client(realm, {"clientId": "app", "publicClient": True})
    gateway.create_client_role(realm, app, "viewer")
    ids = {"app": app}
    for name in ("one", "two", "three", "four"):
        draft = UserDraft(
            name, email=f"{name}@example.org", first_name=name.title(), last_name="Person",
            attributes={"keep": ("x",), "drop": ("y",)},
        )  # fmt: skip
        ids[name] = gateway.create_user(realm, draft)
    for path in ("/a", "/b"):
        group = gateway.find_group_by_path(realm, path)
        assert group is not None
        ids[path] = group.id
    gateway.add_user_to_group(realm, ids["one"], ids["/b"])
    r2 = gateway.get_realm_role(realm, "r2")
    assert r2 is not None
    gateway.add_realm_roles_to_user(realm, ids["one"], [r2])
    return ids


def test_a_change_makes_exactly_what_it_names(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    ids = seed(keycloak_connection, gateway, realm)
    change = UserChange(
        ids["one"],
        fields={"firstName": "Renamed", "email": "renamed@example.org"},
        attributes={"department": ["Sales", "EMEA"], "drop": None},
        join_groups=(ids["/a"],),
        leave_groups=(ids["/b"],),
        grant_realm_roles=("r1",),
        revoke_realm_roles=("r2",),
        grant_client_roles=((ids["app"], "viewer"),),
    )

    assert gateway.change_users(realm, [change]) == {}

    one = gateway.get_user(realm, ids["one"])
    assert one is not None
    assert (one.first_name, one.last_name, one.email, one.enabled) == ("Renamed", "Person", "renamed@example.org", True)
    assert dict(one.attributes) == {"keep": ("x",), "department": ("Sales", "EMEA")}
    assert set(gateway.user_group_paths(realm, ids["one"])) == {"/a"}
    realm_roles = {role.name for role in gateway.user_realm_roles(realm, ids["one"])}
    assert "r1" in realm_roles and "r2" not in realm_roles
    assert [role.name for role in gateway.user_client_roles(realm, ids["one"], ids["app"])] == ["viewer"]
    two = gateway.get_user(realm, ids["two"])
    assert two is not None and two.first_name == "Two" and dict(two.attributes) == {"keep": ("x",), "drop": ("y",)}
    # An admin event, as the admin API's own writes leave, with the change as its representation.
    [event] = gateway._get(admin_path(realm, "admin-events"), {"resourceTypes": "USER", "operationTypes": "UPDATE"})
    assert event["resourcePath"] == f"users/{ids['one']}"
    assert json.loads(event["representation"])["fields"] == {"firstName": "Renamed", "email": "renamed@example.org"}


def test_a_change_keycloak_cannot_make_is_refused_whole_and_the_rest_are_made(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    ids = seed(keycloak_connection, gateway, realm)
    changes = [
        # An unknown group: nothing of the change, not even the name, is made.
        UserChange(ids["one"], fields={"firstName": "Never"}, join_groups=("no-such-group",)),
        UserChange(ids["two"], fields={"email": "three@example.org", "lastName": "Never"}),
        UserChange(ids["three"], fields={"username": "four"}),
        UserChange("no-such-user", fields={"firstName": "Ghost"}),
        UserChange(ids["four"], fields={"lastName": "Made"}, grant_realm_roles=("r1",)),
    ]

    refused = gateway.change_users(realm, changes)

    assert refused == {
        ids["one"]: "no group with id no-such-group",
        ids["two"]: "email three@example.org belongs to another user",
        ids["three"]: "username four belongs to another user",
        "no-such-user": "no user with id no-such-user",
    }
    people = {name: gateway.get_user(realm, ids[name]) for name in ("one", "two", "three", "four")}
    assert [(user.username, user.first_name, user.last_name) for user in people.values() if user] == [
        ("one", "One", "Person"), ("two", "Two", "Person"), ("three", "Three", "Person"), ("four", "Four", "Made"),
    ]  # fmt: skip
    assert set(gateway.user_group_paths(realm, ids["one"])) == {"/b"}
    assert "r1" in {role.name for role in gateway.user_realm_roles(realm, ids["four"])}


def test_an_email_is_another_users_in_any_case_of_letters_and_ones_own_in_any_case(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    # The emails a request names are looked up at once, as Keycloak keeps them: lowercased.
    ids = seed(keycloak_connection, gateway, realm)
    changes = [
        UserChange(ids["two"], fields={"email": "THREE@Example.org"}),
        UserChange(ids["three"], fields={"email": "Three@EXAMPLE.org", "lastName": "Kept"}),
        UserChange(ids["four"], fields={"email": "Fresh@Example.org"}),
    ]

    refused = gateway.change_users(realm, changes)

    assert refused == {ids["two"]: "email THREE@Example.org belongs to another user"}
    people = {name: gateway.get_user(realm, ids[name]) for name in ("two", "three", "four")}
    assert {name: (user.email, user.last_name) for name, user in people.items() if user} == {
        "two": ("two@example.org", "Person"),
        "three": ("three@example.org", "Kept"),
        "four": ("fresh@example.org", "Person"),
    }


def test_a_user_manager_changes_people_groups_and_roles_but_grants_no_admin_role(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    # manage-users answers the per-user checks for every user at once; each group and role is still checked.
    ids = seed(keycloak_connection, gateway, realm)
    management = gateway.find_client(realm, "realm-management")
    assert management is not None
    manager = KeycloakGateway.connect(realm_admin_user(gateway, keycloak_connection, realm, ["manage-users"]))
    try:
        allowed = [
            UserChange(ids["two"], fields={"lastName": "Moved"}, join_groups=(ids["/a"],), grant_realm_roles=("r1",)),
            UserChange(ids["three"], join_groups=(ids["/a"],), grant_realm_roles=("r1",)),
        ]
        assert manager.change_users(realm, allowed) == {}
        escalating = [
            UserChange(ids["four"], fields={"lastName": "Never"}),
            UserChange(ids["one"], grant_client_roles=((management.id, "manage-realm"),)),
        ]
        assert manager.change_users(realm, escalating) is None  # the admin API refuses that mapping too: 403
    finally:
        manager.close()
    for name in ("two", "three"):
        assert gateway.user_group_paths(realm, ids[name]) == ["/a"]
        assert "r1" in {role.name for role in gateway.user_realm_roles(realm, ids[name])}
    four = gateway.get_user(realm, ids["four"])
    assert four is not None and four.last_name == "Person"  # a refusal writes nothing of the request
    assert gateway.user_client_roles(realm, ids["one"], management.id) == []


def test_ending_sessions_logs_out_and_revokes_consents_and_offline_tokens(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    ids = seed(keycloak_connection, gateway, realm)
    for name in ("one", "two"):
        gateway.set_password(realm, ids[name], Secret(PASSWORD))
    leaver_offline, leaver_online = (offline_login(keycloak_connection, realm, "one", PASSWORD) for _ in range(2))
    stayer = offline_login(keycloak_connection, realm, "two", PASSWORD)
    assert gateway.list_consents(realm, ids["one"]) == ["admin-cli"]  # the offline token is listed as a grant

    refused = gateway.change_users(
        realm, [UserChange(ids["one"], fields={"enabled": False}, attributes={"left": ["today"]}, end_sessions=True)]
    )

    assert refused == {}
    one = gateway.get_user(realm, ids["one"])
    assert one is not None and not one.enabled and one.attributes["left"] == ("today",)
    assert gateway._get(admin_path(realm, "users", ids["one"], "sessions")) == []
    assert gateway.list_consents(realm, ids["one"]) == []
    assert refresh_status(keycloak_connection, realm, leaver_offline) == 400
    assert refresh_status(keycloak_connection, realm, leaver_online) == 400
    assert refresh_status(keycloak_connection, realm, stayer) == 200  # only the leaver's sessions end


def test_the_plugin_declines_where_the_admin_api_must_make_the_change(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    ids = seed(keycloak_connection, gateway, realm)
    change = [UserChange(ids["one"], fields={"firstName": "Never"})]
    viewer = KeycloakGateway.connect(realm_admin_user(gateway, keycloak_connection, realm, ["view-users"]))
    try:
        assert viewer.change_users(realm, change) is None  # may view users, not manage them: 403
    finally:
        viewer.close()
    add_disabled_ldap_federation(gateway, realm)
    assert gateway.change_users(realm, change) is None  # user federation: 409
    one = gateway.get_user(realm, ids["one"])
    assert one is not None and one.first_name == "One"


def test_a_service_account_is_not_changed_in_bulk(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    seed(keycloak_connection, gateway, realm)
    client = gateway.create_client(realm, {"clientId": "robot", "publicClient": False, "serviceAccountsEnabled": True})
    robot = gateway.service_account_user(realm, client)
    assert robot is not None

    refused = gateway.change_users(realm, [UserChange(robot.id, fields={"enabled": False})])

    assert refused == {robot.id: "a service account is changed through its client"}
    still = gateway.get_user(realm, robot.id)
    assert still is not None and still.enabled


def test_a_member_of_a_subgroup_is_made_a_direct_member_of_its_parent(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    # Keycloak's isMemberOf counts subgroups: /a/sub made "one" look like a member of /a already.
    ids = seed(keycloak_connection, gateway, realm)
    sub = gateway.create_group(realm, "sub", parent_id=ids["/a"])
    for name in ("one", "two"):
        gateway.add_user_to_group(realm, ids[name], sub)

    refused = gateway.change_users(
        realm, [UserChange(ids["one"], join_groups=(ids["/a"],)), UserChange(ids["two"], leave_groups=(ids["/a"],))]
    )

    assert refused == {}
    assert set(gateway.user_group_paths(realm, ids["one"])) == {"/a", "/a/sub", "/b"}
    assert set(gateway.user_group_paths(realm, ids["two"])) == {"/a/sub"}  # not a direct member: nothing to leave


def test_a_user_twice_in_a_request_or_a_change_that_contradicts_itself_is_refused(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    ids = seed(keycloak_connection, gateway, realm)
    changes = [
        UserChange(ids["one"], fields={"lastName": "First"}),
        UserChange(ids["one"], fields={"lastName": "Second"}),
        UserChange(ids["two"], join_groups=(ids["/a"],), leave_groups=(ids["/a"],)),
        UserChange(ids["three"], grant_realm_roles=("r1",), revoke_realm_roles=("r1",)),
    ]

    refused = gateway.change_users(realm, changes)

    assert refused == {
        ids["one"]: f"user {ids['one']} is changed twice in one request",
        ids["two"]: f"group {ids['/a']} is both joined and left",
        ids["three"]: "role r1 is both granted and revoked",
    }
    one = gateway.get_user(realm, ids["one"])
    assert one is not None and one.last_name == "Person"  # neither of its two changes: the answer says refused
    assert gateway.user_group_paths(realm, ids["two"]) == []
    assert "r1" not in {role.name for role in gateway.user_realm_roles(realm, ids["three"])}


def test_many_users_changed_in_one_request_each_end_as_their_change_says(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    # One transaction, written in Keycloak's batch mode (no flush between users): every row must still land.
    ids = seed(keycloak_connection, gateway, realm)
    people = [
        gateway.create_user(realm, UserDraft(f"p{n:02d}", email=f"p{n:02d}@example.org", attributes={"dept": ("old",)}))
        for n in range(40)
    ]
    for user_id in people:
        gateway.add_user_to_group(realm, user_id, ids["/b"])
    changes = [
        UserChange(
            user_id,
            fields={"email": f"moved{n:02d}@example.org", "enabled": n % 3 != 0},
            attributes={"dept": [f"new{n}"], "extra": ["x", "y"]} if n % 2 else {"dept": None},
            join_groups=(ids["/a"],),
            leave_groups=(ids["/b"],),
            grant_realm_roles=("r1",),
        )
        for n, user_id in enumerate(people)
    ]

    assert gateway.change_users(realm, changes) == {}

    for n, user_id in enumerate(people):
        user = gateway.get_user(realm, user_id)
        assert user is not None
        assert (user.email, user.enabled) == (f"moved{n:02d}@example.org", n % 3 != 0)
        assert dict(user.attributes) == ({"dept": (f"new{n}",), "extra": ("x", "y")} if n % 2 else {})
        assert gateway.user_group_paths(realm, user_id) == ["/a"]
        assert "r1" in {role.name for role in gateway.user_realm_roles(realm, user_id)}


def test_an_organizations_group_a_field_written_as_an_attribute_and_a_flag_as_text_are_refused(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    """The admin API keeps an organization's members to the Organizations API (manage-organizations): a user
    manager must not reach around it here. A username written as an attribute would skip the username checks,
    and enabled: "true" (text) must not read as false."""
    ids = seed(keycloak_connection, gateway, realm)
    gateway.update_realm(realm, {"organizationsEnabled": True})
    transport = gateway._transport
    organization = {"name": "acme", "domains": [{"name": "acme.example.org"}]}
    transport.request("POST", admin_path(realm, "organizations"), body=organization)
    [acme] = gateway._get(admin_path(realm, "organizations"), {"search": "acme"})
    transport.request("POST", admin_path(realm, "organizations", acme["id"], "members"), body=ids["four"])
    memberships = gateway._plugin_lookup(realm, "access", "memberships")
    [org_group] = [group for group, members in memberships["groups"].items() if ids["four"] in members]

    refused = gateway.change_users(
        realm,
        [
            UserChange(ids["one"], join_groups=(org_group,)),
            UserChange(ids["four"], leave_groups=(org_group,)),
            UserChange(ids["two"], attributes={"username": ["three"]}),
            UserChange(ids["three"], fields={"enabled": "true"}),
        ],
    )

    assert refused == {
        ids["one"]: f"group {org_group} is an organization's: change its members through the Organizations API",
        ids["four"]: f"group {org_group} is an organization's: change its members through the Organizations API",
        ids["two"]: "'username' is a field, not an attribute: change it under fields",
        ids["three"]: "field 'enabled' must be true or false",
    }
    members = gateway._get(admin_path(realm, "organizations", acme["id"], "members"))
    assert [member["id"] for member in members] == [ids["four"]]
    three = gateway.get_user(realm, ids["three"])
    assert three is not None and three.enabled


def _user_token(connection: KeycloakConnection, realm: str, operator: KeycloakConnection) -> str:
    answer = requests.post(
        f"{connection.url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": "admin-cli", "username": operator.username,
              "password": operator.password.reveal() if operator.password else ""},
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.mark.parametrize("roles", [[], ["query-users"]])
def test_a_caller_who_may_not_manage_the_user_learns_nothing_of_the_realm(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, roles: list[str]
) -> None:
    """A user of the realm without admin roles, or one who may only query users, asks to give user two the
    email of user one: 403, as the admin API answers, not whether that email (or a group, a role) exists."""
    ids = seed(keycloak_connection, gateway, realm)
    operator = realm_admin_user(gateway, keycloak_connection, realm, roles)
    token = _user_token(keycloak_connection, realm, operator)
    probe = {"users": [{"id": ids["two"], "fields": {"email": "one@example.org"}, "joinGroups": ["no-such-group"]}]}

    answer = requests.put(
        f"{keycloak_connection.url}/realms/{realm}/idp-agent/users/changes",
        json=probe, headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )  # fmt: skip

    assert answer.status_code == 403, answer.text
    assert "one@example.org" not in answer.text and "group" not in answer.text
    two = gateway.get_user(realm, ids["two"])
    assert two is not None and two.email == "two@example.org"


def test_users_keycloak_has_cached_are_read_as_changed_by_id_new_username_and_new_email(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    """The plugin reads a request's users from the database, past Keycloak's user cache: the cache's entries for
    them (by id, by the username and email they had) must go, or the admin API would go on showing the old user."""
    ids = seed(keycloak_connection, gateway, realm)
    for name in ("two", "three"):  # into the cache, by id, username and email
        assert gateway.get_user(realm, ids[name]) is not None
        assert gateway.find_user_by_username(realm, name) is not None
        assert gateway.find_user_by_email(realm, f"{name}@example.org") is not None
    changes = [
        UserChange(ids["two"], fields={"username": "two-renamed", "email": "two.renamed@example.org"}),
        UserChange(ids["three"], fields={"lastName": "Moved"}, attributes={"keep": ["z"]}),
    ]

    assert gateway.change_users(realm, changes) == {}

    two = gateway.get_user(realm, ids["two"])
    assert two is not None and (two.username, two.email) == ("two-renamed", "two.renamed@example.org")
    renamed = gateway.find_user_by_username(realm, "two-renamed")
    assert renamed is not None and renamed.id == ids["two"]
    by_email = gateway.find_user_by_email(realm, "two.renamed@example.org")
    assert by_email is not None and by_email.id == ids["two"]
    assert gateway.find_user_by_username(realm, "two") is None
    assert gateway.find_user_by_email(realm, "two@example.org") is None
    three = gateway.get_user(realm, ids["three"])
    assert three is not None and three.last_name == "Moved" and dict(three.attributes)["keep"] == ("z",)


def test_two_changes_taking_one_new_username_or_email_the_second_is_refused(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    """Both pass the checks against the database as it was; together they would fail the request at commit."""
    ids = seed(keycloak_connection, gateway, realm)
    changes = [
        UserChange(ids["two"], fields={"username": "taken", "email": "Shared@example.org"}),
        UserChange(ids["three"], fields={"username": "Taken"}),
        UserChange(ids["four"], fields={"email": "shared@example.org"}),
        UserChange(ids["one"], fields={"lastName": "Unrelated"}),
    ]

    refused = gateway.change_users(realm, changes)

    assert refused == {
        ids["three"]: "username taken is taken by another change in this request",
        ids["four"]: "email shared@example.org is taken by another change in this request",
    }
    users = {name: gateway.get_user(realm, ids[name]) for name in ("one", "two", "three", "four")}
    assert users["two"] is not None and (users["two"].username, users["two"].email) == ("taken", "shared@example.org")
    assert users["three"] is not None and users["three"].username == "three"
    assert users["four"] is not None and users["four"].email == "four@example.org"
    assert users["one"] is not None and users["one"].last_name == "Unrelated"


def test_a_realm_whose_name_is_encoded_in_its_tokens_is_served(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway
) -> None:
    """A realm's own admin of a realm named with a space: the token's issuer carries it percent-encoded."""
    name = f"t space {uuid.uuid4().hex[:6]}"
    gateway.create_realm(name)
    try:
        user_id = gateway.create_user(name, UserDraft("amy", email="amy@example.org", first_name="Amy", last_name="A"))
        operator = KeycloakGateway.connect(realm_admin_user(gateway, keycloak_connection, name, ["manage-users"]))
        try:
            assert operator.change_users(name, [UserChange(user_id, fields={"lastName": "Changed"})]) == {}
        finally:
            operator.close()
        amy = gateway.get_user(name, user_id)
        assert amy is not None and amy.last_name == "Changed"
    finally:
        gateway.delete_realm(name)


def test_attributes_the_user_profile_keeps_from_admins_are_neither_shown_nor_set(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    """As the admin API: an attribute only the user may see (a private phone) is left out of the plugin's reads
    and refused in its writes (removing it stays possible: erasing personal data); unmanaged ones follow the
    realm's policy (admin_edit here)."""
    ids = seed(keycloak_connection, gateway, realm)
    gateway.update_user(realm, ids["one"], {"attributes": {"private_phone": ["+1 555 0100"], "dept": ["ops"]}})
    private = {"name": "private_phone", "display_name": "Private phone", "view": ["user"], "edit": ["user"]}
    apply_spec(
        keycloak_connection,
        spec_of({"realm": realm, "user_profile": {"unmanaged_attributes": "admin_edit", "attributes": [private]}}),
    )

    users = gateway.plugin_raw_users(realm)
    assert users is not None
    one = next(user for user in users if user["id"] == ids["one"])
    assert one["attributes"]["dept"] == ["ops"] and "private_phone" not in one["attributes"]
    by_api = gateway.get_user(realm, ids["one"])
    assert by_api is not None  # the admin API's view: the same attributes
    assert {name: tuple(values) for name, values in one["attributes"].items()} == dict(by_api.attributes)

    refused = gateway.change_users(
        realm,
        [
            UserChange(ids["one"], attributes={"private_phone": ["+1 555 0199"]}),
            UserChange(ids["two"], attributes={"dept": ["sales"]}),
        ],
    )
    assert refused == {
        ids["one"]: "attribute 'private_phone' is not editable by administrators in the realm's user profile"
    }
    assert gateway.change_users(realm, [UserChange(ids["one"], attributes={"private_phone": None})]) == {}
