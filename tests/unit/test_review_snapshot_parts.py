"""The pure parts of taking a snapshot: Keycloak's export and users turned into snapshot values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from agent.keycloak.models import Group, Role, User
from agent.keycloak.review_models import AccessExport, ExportedRole, ExportedUser, PluginAccess
from agent.review.model import RoleRef
from agent.review.snapshot import (
    add_service_account_roles,
    created_at,
    group_records,
    needs_credential_read,
    plugin_read,
    reading_is_whole,
    role_ids,
    role_records,
    settled_members,
    user_record,
)

EXPORTED = AccessExport(
    roles=(
        ExportedRole.from_json(
            {"id": "r1", "name": "admin", "composites": {"realm": ["ops"], "client": {"app": ["x"]}}}, None
        ),
        ExportedRole.from_json({"id": "r2", "name": "ops"}, None),
        ExportedRole.from_json({"id": "r3", "name": "x", "clientRole": True}, "app"),
    ),
    groups=(
        Group.from_json({"id": "g1", "name": "it", "path": "/it", "realmRoles": ["admin"]}),
        Group.from_json(
            {"id": "g2", "name": "ops", "path": "/it/ops", "parentId": "g1", "clientRoles": {"app": ["x"]}}
        ),
    ),
    clients=(),
    service_accounts=(
        ExportedUser.from_json(
            {
                "id": "sa",
                "username": "service-account-robot",
                "enabled": True,
                "serviceAccountClientId": "robot",
                "realmRoles": ["ops"],
                "clientRoles": {"realm-management": ["view-users"]},
            }
        ),
    ),
)


def test_roles_keep_realm_and_client_composites() -> None:
    records = {record.ref: record for record in role_records(EXPORTED)}
    assert records[RoleRef("admin")].composites == {RoleRef("ops"), RoleRef("x", "app")}
    assert records[RoleRef("x", "app")].id == "r3"
    assert not records[RoleRef("ops")].composite


def test_groups_know_their_parent_path_and_grants() -> None:
    records = {record.path: record for record in group_records(EXPORTED)}
    assert records["/it"].roles == {RoleRef("admin")} and records["/it"].parent_path is None
    assert records["/it/ops"].parent_path == "/it"
    assert records["/it/ops"].roles == {RoleRef("x", "app")}


def test_service_account_roles_come_from_the_export() -> None:
    mapped = add_service_account_roles({"u1": {RoleRef("ops")}}, EXPORTED)
    assert mapped == {"u1": {RoleRef("ops")}, "sa": {RoleRef("ops"), RoleRef("view-users", "realm-management")}}


def test_user_records() -> None:
    raw = {
        "id": "u1",
        "username": "alice",
        "enabled": True,
        "createdTimestamp": 1_600_000_000_000,
        "totp": True,
        "attributes": {"idp-agent.external-id": ["e-1"]},
        "requiredActions": ["CONFIGURE_TOTP"],
        "federationLink": "ldap-1",
    }
    record = user_record(User.from_json(raw))
    assert record.created == datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC)
    assert record.totp and record.has_mfa and record.attribute("idp-agent.external-id") == "e-1"
    assert record.federation_link == "ldap-1" and record.required_actions == ("CONFIGURE_TOTP",)
    assert not needs_credential_read(record)  # OTP already shows MFA
    assert needs_credential_read(user_record(User.from_json({**raw, "totp": False})))
    robot = user_record(EXPORTED.service_accounts[0].user)
    assert robot.is_service_account and robot.service_account_client == "robot"
    assert not needs_credential_read(robot)
    assert user_record(User.from_json({"id": "u2", "username": "b"})).created is None
    assert Role.from_json({"id": "r", "name": "n"}).name == "n"


PLUGIN_ANSWER = {
    "users": [
        {"id": "u1", "username": "alice", "enabled": True, "credentialTypes": ["password", "otp"]},
        {"id": "u2", "username": "bob", "enabled": True, "attributes": {"dept": ["ops"]}, "credentialTypes": []},
    ],
    "roles": {"r1": ["u1"], "r3": ["u1", "u2"], "made-after-the-export": ["u2"]},
    "groups": {"g2": ["u2"]},
}


def test_the_plugins_answer_parses_with_totp_from_the_credential_types() -> None:
    found = PluginAccess.from_json(PLUGIN_ANSWER)
    alice, bob = found.users
    assert alice.totp and not bob.totp
    assert found.credential_types == {"u1": frozenset({"password", "otp"}), "u2": frozenset()}
    assert bob.attributes == {"dept": ("ops",)}
    assert found.role_members["r3"] == ("u1", "u2") and found.group_members == {"g2": ("u2",)}
    assert PluginAccess.from_json({}).users == ()


def test_the_plugins_answer_becomes_snapshot_values() -> None:
    read = plugin_read(PluginAccess.from_json(PLUGIN_ANSWER), EXPORTED)
    by_id = {user.id: user for user in read.users}
    assert set(by_id) == {"u1", "u2", "sa"}  # people from the plugin, service accounts from the export
    assert by_id["u1"].credential_types == frozenset({"password", "otp"}) and by_id["u1"].has_mfa
    assert by_id["u2"].credential_types == frozenset()
    assert not any(map(needs_credential_read, read.users))  # everyone's credentials are known already
    # Role ids become the export's references; a role the export did not list is left out.
    assert read.user_roles == {"u1": {RoleRef("admin"), RoleRef("x", "app")}, "u2": {RoleRef("x", "app")}}
    assert read.group_members == {"g2": frozenset({"u2"})}
    assert read.user_pages == 0


def test_only_the_skipped_roles_ids_are_named() -> None:
    assert role_ids(EXPORTED, frozenset({RoleRef("ops"), RoleRef("x", "app")})) == ["r2", "r3"]
    assert role_ids(EXPORTED, frozenset()) == []


def readings_of(*readings: list[str]) -> tuple[list[int], Callable[[], list[str]]]:
    """A reader that gives `readings` in turn, and the count of reads made."""
    made = [0]

    def read() -> list[str]:
        made[0] += 1
        return readings[made[0] - 1]

    return made, read


def test_a_member_listing_of_one_page_is_read_once() -> None:
    made, read = readings_of(["a", "b"])
    assert settled_members(read, page_size=3) == ["a", "b"]
    assert made == [1]


def test_a_longer_member_listing_is_read_until_two_readings_agree() -> None:
    made, read = readings_of(["a", "b", "c", "e"], ["b", "c", "d", "e"], ["e", "d", "c", "b"])
    assert settled_members(read, page_size=3) == ["e", "d", "c", "b"]
    assert made == [3]


def test_a_member_listing_changing_through_every_reading_is_their_union() -> None:
    made, read = readings_of(["a", "c", "d"], ["b", "d", "e"], ["c", "e", "f"])
    assert settled_members(read, page_size=3) == ["a", "c", "d", "b", "e", "f"]
    assert made == [3]


def users_named(*names: str) -> list[User]:
    return [User.from_json({"id": f"id-{name}", "username": name}) for name in names]


def test_a_reading_is_whole_when_keycloak_counted_it_all_before_and_after() -> None:
    assert reading_is_whole(users_named("a", "b"), None, counted=2, after=2)
    assert not reading_is_whole(users_named("a", "b"), None, counted=2, after=3)  # someone joined meanwhile
    assert not reading_is_whole(users_named("a", "b"), None, counted=3, after=3)  # a shift hid someone


def test_a_reading_the_count_does_not_cover_is_whole_once_two_readings_agree_while_the_count_held() -> None:
    # An LDAP federation with import off: Keycloak counts 0, the listing holds the directory's people.
    assert not reading_is_whole(users_named("a", "b"), None, counted=0, after=0)
    assert reading_is_whole(users_named("b", "a"), users_named("a", "b"), counted=0, after=0)
    assert not reading_is_whole(users_named("a", "c"), users_named("a", "b"), counted=0, after=0)
    assert not reading_is_whole(users_named("a", "b"), users_named("a", "b"), counted=0, after=1)


def test_a_stored_users_creation_is_keycloaks_and_a_federated_ones_the_directorys() -> None:
    stored = User.from_json({"id": "u1", "username": "ann", "createdTimestamp": 1767225600000})
    assert created_at(stored) == datetime(2026, 1, 1, tzinfo=UTC)

    def unimported(*stamp: str) -> User:
        raw = {"id": "f:ldap-1:bob", "username": "bob", "createdTimestamp": 1796097600000}
        return User.from_json({**raw, "attributes": {"createTimestamp": list(stamp)}} if stamp else raw)

    assert created_at(unimported("20200101120000Z")) == datetime(2020, 1, 1, 12, tzinfo=UTC)
    assert created_at(unimported("20200101120000.0Z")) == datetime(2020, 1, 1, 12, tzinfo=UTC)  # Active Directory
    # Not Keycloak's made-up time of reading, when the directory does not say (or says it without a zone).
    assert created_at(unimported()) is None
    assert created_at(unimported("20200101120000")) is None
