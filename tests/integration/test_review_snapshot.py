"""Access-review snapshots against a real Keycloak: every finding on a seeded realm and gone once its cause is
fixed, effective access through nested groups and composites, counts across pages equal to Keycloak's own
count (S24), and a request count that grows with roles and groups, not with users."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap3
import pytest

from agent.keycloak import KeycloakGateway, UserDraft
from agent.keycloak.models import User
from agent.keycloak.review_models import AccessExport
from agent.review import findings as rules
from agent.review.findings import findings
from agent.review.model import RoleRef, Route, Snapshot
from agent.review.policy import LeaverSpec, OrphansSpec, ReviewPolicy, SodPolicy, SodRule, TrainingSpec
from agent.review.snapshot import take_snapshot
from agent.settings import KeycloakConnection, LdapConnection
from agent.stack.demo_directory import PEOPLE
from agent.store import ManualClock, Store, open_store
from agent.store.appeals import NewAppeal
from agent.store.logins import StoredLoginEvent
from agent.store.sanctions import NewSanction
from tests.harness.federation import add_ldap_federation
from tests.harness.ldap_directory import DirectoryFactory, numbered_people

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
OTP = {
    "type": "otp",
    "userLabel": "phone",
    "secretData": json.dumps({"value": "JBSWY3DPEHPK3PXP"}),
    "credentialData": json.dumps({"subType": "totp", "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}),
}
POLICY = ReviewPolicy(
    training=TrainingSpec(attribute="training_date", max_age=365 * 86_400),
    orphans=OrphansSpec(leaver=LeaverSpec(attribute="employment_status", values=("leaver",))),
    sod=SodPolicy(rules=(SodRule(name="pay-and-approve", realm_roles=("pay", "approve")),)),
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}", now=ManualClock(NOW)) as opened:
        yield opened


def enable_attributes(gateway: KeycloakGateway, realm: str) -> None:
    """Keycloak 26 drops attributes the user profile does not declare unless unmanaged ones are enabled."""
    profile = gateway.get_user_profile(realm)
    gateway.update_user_profile(realm, replace(profile, unmanaged_attribute_policy="ENABLED"))


def person(username: str, *, created_days_ago: int = 400, **extra: Any) -> dict[str, Any]:
    attributes = {"idp-agent.external-id": [f"e-{username}"], "training_date": [(NOW - 30 * DAY).date().isoformat()]}
    attributes.update(extra.pop("attributes", {}))
    created = int((NOW - created_days_ago * DAY).timestamp() * 1000)
    return {
        "username": username,
        "enabled": True,
        "createdTimestamp": created,
        "attributes": {k: v for k, v in attributes.items() if v},
        "realmRoles": [f"default-roles-{extra.pop('realm')}"],
        **extra,
    }


def seed(gateway: KeycloakGateway, realm: str) -> dict[str, str]:
    """Roles admin>ops and finance>pay; groups /it (admin) > /it/admins, /finance, /approvers; one user per
    finding and a clean one. Returns username -> id."""
    enable_attributes(gateway, realm)
    for name in ("admin", "ops", "pay", "approve", "finance", "plain"):
        gateway.create_realm_role(realm, name)
    for composite, part in (("admin", "ops"), ("finance", "pay")):
        outer, inner = gateway.get_realm_role(realm, composite), gateway.get_realm_role(realm, part)
        assert outer is not None and inner is not None
        gateway.add_role_composites(realm, outer.id, [inner])
    it = gateway.create_group(realm, "it")
    gateway.create_group(realm, "admins", it)
    for path, role in (("/it", "admin"), ("/finance", "finance"), ("/approvers", "approve")):
        group_id = it if path == "/it" else gateway.create_group(realm, path.strip("/"))
        found = gateway.get_realm_role(realm, role)
        assert found is not None
        gateway.change_group_realm_roles(realm, group_id, [found], [])
    users = [
        person("clean", realm=realm),
        person("root", realm=realm, groups=["/it/admins"]),
        person("secure", realm=realm, groups=["/it/admins"], credentials=[OTP]),
        person("sleeper", realm=realm),
        person("newbie", realm=realm, created_days_ago=60),
        person("orphan", realm=realm, attributes={"idp-agent.external-id": []}),
        person("leaver", realm=realm, attributes={"employment_status": ["leaver"]}),
        person("direct", realm=realm, realmRoles=[f"default-roles-{realm}", "plain"]),
        person("twohats", realm=realm, groups=["/finance", "/approvers"]),
        person("untrained", realm=realm, attributes={"training_date": ["2020-01-01"]}),
        person("sanctioned", realm=realm),
        person("gone", realm=realm),  # the sources no longer list e-gone
    ]
    gateway.import_users(realm, users)
    client_uuid = gateway.create_client(
        realm,
        {"clientId": "robot", "publicClient": False, "serviceAccountsEnabled": True, "standardFlowEnabled": False},
    )
    robot = gateway.service_account_user(realm, client_uuid)
    management = gateway.find_client(realm, "realm-management")
    assert robot is not None and management is not None
    manage = gateway.get_client_role(realm, management.id, "manage-users")
    assert manage is not None
    gateway.add_client_roles_to_user(realm, robot.id, management.id, [manage])
    ids = {user.username: user.id for user in gateway.list_users(realm)}
    ids["robot"] = robot.id
    return ids


def record_logins(store: Store, realm: str, ids: Mapping[str, str], skip: Sequence[str]) -> None:
    events = [
        StoredLoginEvent(f"ev-{name}", NOW - (200 if name == "sleeper" else 1) * DAY, "LOGIN", user_id)
        for name, user_id in ids.items()
        if name not in skip
    ]
    store.logins.record(realm, events, high_water_ms=int(NOW.timestamp() * 1000))


def found_rules(snapshot: Snapshot) -> dict[str, set[str]]:
    """Rule -> usernames it names."""
    result: dict[str, set[str]] = {}
    for finding in findings(snapshot, POLICY):
        result.setdefault(finding.rule, set()).add(finding.subject)
    return result


EXPECTED = {
    rules.PRIVILEGED_WITHOUT_MFA: {"root"},
    rules.DORMANT: {"sleeper"},
    rules.NEVER_LOGGED_IN: {"newbie"},
    rules.ORPHAN_NO_EXTERNAL_ID: {"orphan"},
    rules.LEAVER_ENABLED: {"leaver"},
    rules.DIRECT_GRANT: {"direct"},
    rules.SOD_CONFLICT: {"twohats"},
    rules.TRAINING_LAPSED: {"untrained"},
    rules.SANCTION_ACTIVE: {"sanctioned"},
    rules.APPEAL_OVERDUE: {"sanctioned"},
    rules.SERVICE_ACCOUNT_ADMIN: {"service-account-robot"},
    rules.ORPHAN_NO_SOURCE_RECORD: {"gone"},
}
SEEDED = ("clean", "root", "secure", "sleeper", "newbie", "orphan", "leaver", "direct", "twohats", "untrained")
SOURCE_IDS = frozenset(f"e-{name}" for name in (*SEEDED, "sanctioned"))


def test_every_finding_on_a_seeded_realm_and_gone_once_fixed(
    gateway: KeycloakGateway, realm: str, store: Store, tmp_path: Path
) -> None:
    ids = seed(gateway, realm)
    record_logins(store, realm, ids, skip=("newbie",))
    # The ledger: a sanction in force on 'sanctioned', and an appeal opened 20 days ago, never answered.
    sanction = store.sanctions.add(
        NewSanction(realm, ids["sanctioned"], "sanctioned", "suspension", "suspension", "abuse", "sec", NOW + DAY)
    )
    with open_store(f"sqlite:///{tmp_path / 'store.db'}", now=ManualClock(NOW - 20 * DAY)) as past:
        appeal = past.appeals.open(
            NewAppeal(sanction.id, realm, "sanctioned", "not me", "sanctioned"),
            acknowledge_within=2 * DAY,
            decide_within=15 * DAY,
        )

    before = take_snapshot(gateway, store, realm, policy=POLICY, source_external_ids=SOURCE_IDS)
    assert before.ledger_read
    assert found_rules(before) == EXPECTED

    # Fix every cause, by hand, as an operator would.
    remove_from_group(gateway, realm, ids["root"], "/it/admins")
    remove_from_group(gateway, realm, ids["twohats"], "/approvers")
    # A PUT with attributes replaces them all: send the whole set.
    gateway.update_user(realm, ids["orphan"], {"attributes": person("orphan", realm=realm)["attributes"]})
    gateway.update_user(realm, ids["leaver"], {"enabled": False})
    gateway.update_user(realm, ids["untrained"], {"attributes": person("untrained", realm=realm)["attributes"]})
    gateway.update_user(realm, ids["sleeper"], {"enabled": False})
    gateway.update_user(realm, ids["gone"], {"enabled": False})
    plain = gateway.get_realm_role(realm, "plain")
    assert plain is not None
    gateway.remove_realm_roles_from_user(realm, ids["direct"], [plain])
    management = gateway.find_client(realm, "realm-management")
    assert management is not None
    manage = gateway.get_client_role(realm, management.id, "manage-users")
    assert manage is not None
    gateway.remove_client_roles_from_user(realm, ids["robot"], management.id, [manage])
    store.logins.record(realm, [StoredLoginEvent("ev-newbie-2", NOW - DAY, "LOGIN", ids["newbie"])], 0)
    store.sanctions.save(replace(sanction, state="lifted", ended_at=NOW, ended_by="sec"))
    store.appeals.decide(appeal.id, "uphold", actor="sec", note="checked", reduced_to=None)

    after = take_snapshot(gateway, store, realm, policy=POLICY, source_external_ids=SOURCE_IDS)
    assert found_rules(after) == {}
    assert len(after.users) == len(before.users)


def remove_from_group(gateway: KeycloakGateway, realm: str, user_id: str, path: str) -> None:
    group = gateway.find_group_by_path(realm, path)
    assert group is not None
    gateway.remove_user_from_group(realm, user_id, group.id)


@pytest.mark.parametrize("use_plugin", [False, True], ids=["admin-api", "plugin"])
def test_effective_access_through_nested_groups_and_composites(
    gateway: KeycloakGateway, realm: str, store: Store, use_plugin: bool
) -> None:
    ids = seed(gateway, realm)
    snapshot = take_snapshot(gateway, store, realm, policy=POLICY, default_role_members="always", use_plugin=use_plugin)
    assert snapshot.stats.via_plugin == use_plugin
    assert snapshot.default_role == RoleRef(f"default-roles-{realm}") and snapshot.default_role_members_read
    root = snapshot.access_of(ids["root"])
    assert root.groups == {"/it/admins"}
    assert root.group_paths() == {"/it", "/it/admins"}
    admin, ops = root.grant("role", "admin"), root.grant("role", "ops")
    assert admin is not None and admin.routes == (Route("/it", "/it/admins"),)
    assert ops is not None and ops.routes == (Route("/it", "/it/admins", (RoleRef("admin"),)),)
    # Keycloak agrees: its own effective realm roles of root are exactly ours.
    keycloak_effective = {role.name for role in gateway.user_realm_roles(realm, ids["root"], effective=True)}
    ours = {grant.role.name for grant in root.roles() if grant.role is not None and grant.role.client is None}
    assert ours == keycloak_effective
    twohats = snapshot.access_of(ids["twohats"])
    pay = twohats.grant("role", "pay")
    assert pay is not None and pay.routes == (Route("/finance", None, (RoleRef("finance"),)),)
    assert snapshot.role(RoleRef("admin")).expanded == {RoleRef("ops")}  # type: ignore[union-attr]
    robot = snapshot.access_of(ids["robot"])
    assert robot.grant("role", "realm-management/manage-users") is not None
    secure = next(user for user in snapshot.users if user.username == "secure")
    assert secure.totp and secure.has_mfa
    root_user = next(user for user in snapshot.users if user.username == "root")
    assert root_user.credential_types == frozenset()  # known (privileged, no OTP): no credentials at all
    # The admin API needs one read for it; the plugin's answer carries everyone's credential types.
    assert snapshot.stats.credential_reads == (0 if use_plugin else 1)


def test_the_default_roles_members_are_read_only_when_it_grants_more_than_the_baseline(
    gateway: KeycloakGateway, realm: str, store: Store
) -> None:
    ids = seed(gateway, realm)
    # Through the admin API, where skipping the default role's members saves a listing as long as the realm.
    baseline = take_snapshot(gateway, store, realm, policy=POLICY, use_plugin=False)
    default = RoleRef(f"default-roles-{realm}")
    assert baseline.default_role == default and not baseline.default_role_members_read
    assert baseline.access_of(ids["clean"]).grant("role", default.label) is None  # not read, so not shown
    assert rules.DEFAULT_ROLE_BEYOND_BASELINE not in found_rules(baseline)

    # Someone adds ops to the default role: every new account gets it, so the review reads who holds it.
    default_role, ops = gateway.get_realm_role(realm, default.name), gateway.get_realm_role(realm, "ops")
    assert default_role is not None and ops is not None
    gateway.add_role_composites(realm, default_role.id, [ops])
    widened = take_snapshot(gateway, store, realm, policy=POLICY, use_plugin=False)
    assert widened.default_role_members_read
    assert found_rules(widened)[rules.DEFAULT_ROLE_BEYOND_BASELINE] == {default.label}
    ops_grant = widened.access_of(ids["clean"]).grant("role", "ops")
    assert ops_grant is not None and ops_grant.routes == (Route(composites=(default,)),)
    assert widened.stats.requests == baseline.stats.requests + 1  # the default role's one page of members


def bulk_users(realm: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "username": f"bulk{index:05d}",
            "enabled": True,
            "groups": ["/staff"] if index % 3 == 0 else [],
            "realmRoles": ["reader"] if index % 5 == 0 else [],
        }
        for index in range(start, start + count)
    ]


def seed_bulk(gateway: KeycloakGateway, realm: str, count: int) -> None:
    """The role `reader` and group `/staff` that bulk users hold, and `count` of them."""
    gateway.create_realm_role(realm, "reader")
    gateway.create_group(realm, "staff")
    gateway.import_users(realm, bulk_users(realm, count))


def test_users_across_pages_match_keycloaks_count_and_requests_do_not_grow_per_user(
    gateway: KeycloakGateway, realm: str
) -> None:
    seed_bulk(gateway, realm, 50)
    small = take_snapshot(gateway, None, realm, page_size=100, use_plugin=False)
    gateway.import_users(realm, bulk_users(realm, 250, start=50))
    large = take_snapshot(gateway, None, realm, page_size=100, use_plugin=False)

    # S24: counts equal an independent count, across pages (300 users in pages of 100).
    assert len(large.users) == gateway.count_users(realm) == 300
    assert large.stats.user_pages == 4
    assert len({user.id for user in large.users}) == 300
    staff = large.group("/staff")
    assert staff is not None and len(staff.member_ids) == 100
    readers = [uid for uid, access in large.access.items() if access.grant("role", "reader") is not None]
    assert len(readers) == 60
    # 6x the users: only the extra pages of users and of the two member listings cost more requests.
    extra_pages = (large.stats.user_pages - small.stats.user_pages) + 2 + 2  # users, /staff, reader
    assert large.stats.requests <= small.stats.requests + extra_pages
    # R + G + users/page: the export, the user count before and after the pages, one listing per role and group
    # (+3 for /staff's 100 members: they fill a page, so an empty second page is read, and the listing is read
    # again to see that it held still).
    assert large.stats.requests <= 3 + large.stats.user_pages + len(large.roles) + len(large.groups) + 3
    # The plugin: the same users and members from the export, the members and one page of 300 users (with the
    # pages' bounds).
    by_plugin = take_snapshot(gateway, None, realm)
    assert by_plugin.stats.via_plugin and by_plugin.stats.requests == 3
    # (It knows everyone's credential types; the admin API path reads them for privileged people only.)
    assert tuple(replace(user, credential_types=None) for user in by_plugin.users) == large.users
    assert dict(by_plugin.access) == dict(large.access)


def by_client_unordered(roles: Mapping[str, tuple[str, ...]]) -> frozenset[tuple[str, frozenset[str]]]:
    return frozenset((client, frozenset(names)) for client, names in roles.items())


def export_shape(exported: AccessExport) -> dict[str, Any]:
    """What an access export says, order aside."""
    return {
        "roles": {
            (item.role.id, item.role.name, item.client): (
                frozenset(item.composite_realm_roles),
                frozenset((client, name) for client, names in item.composite_client_roles.items() for name in names),
            )
            for item in exported.roles
        },
        "groups": {
            (g.id, g.path, g.parent_id, frozenset(g.realm_roles), by_client_unordered(g.client_roles))
            for g in exported.groups
        },
        "clients": {(client.id, client.client_id) for client in exported.clients},
        "service_accounts": {
            (
                account.user.id,
                account.user.username,
                account.user.service_account_client_id,
                frozenset(account.realm_roles),
                by_client_unordered(account.client_roles),
                frozenset(account.groups),
            )
            for account in exported.service_accounts
        },
        "default_role": exported.default_role,
    }


def delete_first_listed(
    monkeypatch: pytest.MonkeyPatch, gateway: KeycloakGateway, realm: str, readings: int
) -> list[str]:
    """Wrap the gateway's page reads: in each of the first `readings` readings of the listing, the first user of
    the first page is deleted once that page is read, so the pages after it shift. The deleted usernames."""
    original = gateway.list_users_page
    deleted: list[str] = []

    def deleting(realm_name: str, *, first: int, max_results: int, brief: bool = True) -> list[User]:
        page = original(realm_name, first=first, max_results=max_results, brief=brief)
        if first == 0 and len(deleted) < readings:
            gateway.delete_user(realm, page[0].id)
            deleted.append(page[0].username)
        return page

    monkeypatch.setattr(gateway, "list_users_page", deleting)
    return deleted


def test_a_user_deleted_while_the_listing_is_read_hides_nobody_else(
    monkeypatch: pytest.MonkeyPatch, gateway: KeycloakGateway, realm: str
) -> None:
    # Offset pages of 3 in username order: bulk00000 deleted after the first page moves bulk00003 onto it.
    seed_bulk(gateway, realm, 12)
    # Neither counted nor listed as a user: it must not make every reading look changed.
    gateway.create_client(realm, {"clientId": "robot", "publicClient": False, "serviceAccountsEnabled": True})
    deleted = delete_first_listed(monkeypatch, gateway, realm, readings=1)

    snapshot = take_snapshot(gateway, None, realm, page_size=3, workers=1, use_plugin=False)

    assert deleted == ["bulk00000"]
    # Read again, as Keycloak's count changed during the reading (one reading alone: bulk00003 missing), and
    # no more: the second reading was whole.
    people = sorted(user.username for user in snapshot.users if not user.is_service_account)
    assert people == [f"bulk{index:05d}" for index in range(1, 12)]
    assert snapshot.stats.user_pages == 5 + 4


def test_a_realm_changing_through_every_reading_is_read_as_their_union(
    monkeypatch: pytest.MonkeyPatch, gateway: KeycloakGateway, realm: str
) -> None:
    seed_bulk(gateway, realm, 12)
    deleted = delete_first_listed(monkeypatch, gateway, realm, readings=3)

    snapshot = take_snapshot(gateway, None, realm, page_size=3, workers=1, use_plugin=False)

    assert deleted == ["bulk00000", "bulk00001", "bulk00002"]
    # Everyone present throughout, and those deleted while they were read.
    assert sorted(user.username for user in snapshot.users) == [f"bulk{index:05d}" for index in range(12)]


def test_a_realm_whose_federation_does_not_import_is_read_until_two_readings_agree(
    gateway: KeycloakGateway, realm: str, demo_ldap: LdapConnection
) -> None:
    add_ldap_federation(gateway, realm, demo_ldap, import_users=False)
    # Keycloak counts only the users it stores; the listing holds the directory's people.
    assert gateway.count_users(realm) == 0

    snapshot = take_snapshot(gateway, None, realm, page_size=5)

    assert not snapshot.stats.via_plugin  # the pack steps aside for a realm with federation
    assert sorted(user.username for user in snapshot.users) == sorted(person.uid for person in PEOPLE)
    # 20 people in pages of 5 (the fifth empty), read twice: the count can never match, two agreeing readings
    # show the realm held still (not a third reading and a union, as for a realm that keeps changing).
    assert snapshot.stats.user_pages == 5 + 5
    # Created when the directory says (Keycloak makes up the time it read them).
    for user in snapshot.users:
        stamp = datetime.strptime(user.attributes["createTimestamp"][0], "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
        assert user.created == stamp


def delete_entry(admin: LdapConnection, uid: str) -> None:
    with ldap3.Connection(ldap3.Server(admin.url), admin.bind_dn, admin.bind_password.reveal(), auto_bind=True) as conn:
        assert conn.delete(f"uid={uid},ou=people,{admin.base_dn}"), conn.result


def orphans_without_source_id(gateway: KeycloakGateway, realm: str) -> list[str]:
    found = findings(take_snapshot(gateway, None, realm), ReviewPolicy())
    return sorted(f.subject for f in found if f.rule == rules.ORPHAN_NO_EXTERNAL_ID)


def test_people_keycloak_reads_live_from_the_directory_need_no_source_id(
    gateway: KeycloakGateway, realm: str, ldap_directory: DirectoryFactory
) -> None:
    """Import off: Keycloak lists the directory as it is, so its people are vouched for, and one whose entry is
    deleted is gone from the realm too."""
    directory = ldap_directory(numbered_people(3))
    add_ldap_federation(gateway, realm, directory.admin, import_users=False)
    gateway.create_user(realm, UserDraft("walk-in"))  # made by hand, no source id

    assert orphans_without_source_id(gateway, realm) == ["walk-in"]
    delete_entry(directory.admin, "user00002")
    assert {user.username for user in gateway.list_users(realm, brief=False)} == {"walk-in", "user00000", "user00001"}


def test_imported_people_need_a_source_id_as_keycloak_may_keep_them_after_their_entry_is_gone(
    gateway: KeycloakGateway, realm: str, ldap_directory: DirectoryFactory
) -> None:
    """Import on: an account Keycloak has read (and cached) stays listed, enabled, after its entry is deleted from
    the directory, so imported accounts without a source id stay findings."""
    directory = ldap_directory(numbered_people(3))
    federation_id = add_ldap_federation(gateway, realm, directory.admin, import_users=True)
    assert gateway.sync_user_storage(realm, federation_id).added == 3
    assert len(list(gateway.list_users(realm, brief=False))) == 3

    delete_entry(directory.admin, "user00001")

    listed = {user.username: user for user in gateway.list_users(realm, brief=False)}
    assert listed["user00001"].enabled
    assert orphans_without_source_id(gateway, realm) == ["user00000", "user00001", "user00002"]


def test_a_member_removed_while_a_long_member_listing_is_read_hides_nobody_else(
    monkeypatch: pytest.MonkeyPatch, gateway: KeycloakGateway, realm: str
) -> None:
    # /staff's members in offset pages of 3: bulk00000 leaves once the first page is read, moving bulk00003 onto it.
    seed_bulk(gateway, realm, 7)
    staff = gateway.find_group_by_path(realm, "/staff")
    assert staff is not None
    people = {user.username: user.id for user in gateway.list_users(realm)}
    for user_id in people.values():
        gateway.add_user_to_group(realm, user_id, staff.id)  # every third is a member already: a no-op
    original = gateway._get
    left: list[str] = []

    def leaving(path: str, params: Mapping[str, Any] | None = None) -> Any:
        page = original(path, params)
        if path.endswith(f"/groups/{staff.id}/members") and (params or {}).get("first") == 0 and not left:
            gateway.remove_user_from_group(realm, page[0]["id"], staff.id)
            left.append(page[0]["username"])
        return page

    monkeypatch.setattr(gateway, "_get", leaving)

    snapshot = take_snapshot(gateway, None, realm, page_size=3, workers=1, use_plugin=False)

    assert left == ["bulk00000"]
    members = snapshot.group("/staff")
    assert members is not None
    # Read until two readings agree (one reading alone: bulk00003 missing, bulk00000 there).
    assert members.member_ids == {people[f"bulk{index:05d}"] for index in range(1, 7)}


def test_a_reviewer_that_may_only_view_reads_the_same_snapshot_without_the_export(
    gateway: KeycloakGateway, keycloak_connection: KeycloakConnection, realm: str, store: Store
) -> None:
    from tests.harness.accounts import service_account

    ids = seed(gateway, realm)
    # A client role that is a composite of a realm role and of another client's role, granted by a group.
    app = gateway.create_client(realm, {"clientId": "payroll", "publicClient": True})
    gateway.create_client_role(realm, app, "clerk")
    clerk, pay = gateway.get_client_role(realm, app, "clerk"), gateway.get_realm_role(realm, "pay")
    management = gateway.find_client(realm, "realm-management")
    assert clerk is not None and pay is not None and management is not None
    view = gateway.get_client_role(realm, management.id, "view-users")
    assert view is not None
    gateway.add_role_composites(realm, clerk.id, [pay, view])
    finance = gateway.find_group_by_path(realm, "/finance")
    assert finance is not None
    gateway.change_group_client_roles(realm, finance.id, app, [clerk], [])
    gateway.add_user_to_group(realm, ids["robot"], finance.id)  # a service account in a group
    reviewer = KeycloakGateway.connect(
        service_account(gateway, keycloak_connection, realm, "svc-review", ["view-realm", "view-users", "view-clients"])
    ).read_only()
    try:
        exported = gateway.export_access(realm)
        viewed = reviewer.export_access(realm, use_plugin=False)
        assert reviewer.stats.requests > 2  # the export was refused (manage-realm only), so it read the listings
        assert export_shape(viewed) == export_shape(exported)
        assert ("payroll", "clerk") in {(item.client, item.role.name) for item in viewed.roles}
        before = reviewer.stats.requests
        structure = reviewer.export_access(realm)
        # The refused export, then the plugin's access/structure: the same in one request, without manage-realm.
        assert reviewer.stats.requests - before == 2
        assert export_shape(structure) == export_shape(exported)
        assert structure.default_role == exported.default_role == f"default-roles-{realm}"

        # Member listings through the admin API too (test_review_plugin.py has the plugin's answer to a viewer).
        by_admin = take_snapshot(gateway, store, realm, policy=POLICY, use_plugin=False)
        by_reviewer = take_snapshot(reviewer, store, realm, policy=POLICY, use_plugin=False)
    finally:
        reviewer.close()
    assert by_reviewer.users == by_admin.users
    assert dict(by_reviewer.access) == dict(by_admin.access)
    twohats = by_reviewer.access_of(ids["twohats"]).grant("role", "realm-management/view-users")
    assert twohats is not None and twohats.routes == (Route("/finance", None, (RoleRef("clerk", "payroll"),)),)
    assert found_rules(by_reviewer) == found_rules(by_admin)
