"""Each finding rule on a small snapshot: produced when its cause is there, absent once the cause is fixed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from agent.review import findings as rules
from agent.review.access import expand_access
from agent.review.findings import findings, parse_day, privileged_user_ids
from agent.review.model import (
    AppealSummary,
    GroupRecord,
    RoleRecord,
    RoleRef,
    SanctionSummary,
    Snapshot,
    UserRecord,
)
from agent.review.policy import (
    LeaverSpec,
    OrphansSpec,
    PrivilegedSpec,
    ReviewPolicy,
    SodPolicy,
    SodRule,
    TrainingSpec,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ADMIN, PAY, APPROVE = RoleRef("admin"), RoleRef("pay"), RoleRef("approve")
FINANCE = RoleRef("finance")  # composite: pay
MANAGE = RoleRef("manage-users", "realm-management")
EXTERNAL = {"idp-agent.external-id": ("e-1",), "training_date": ("2026-06-01",)}


def person(username: str = "alice", **changes: object) -> UserRecord:
    base = UserRecord(
        id=f"id-{username}",
        username=username,
        enabled=True,
        created=NOW - 400 * DAY,
        attributes=MappingProxyType(EXTERNAL),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def snapshot(
    users: Sequence[UserRecord],
    *,
    mapped: Mapping[str, Sequence[RoleRef]] | None = None,
    groups: Sequence[GroupRecord] = (),
    last_login: Mapping[str, datetime] | None = None,
    known_since: datetime | None = NOW - 365 * DAY,
    **extra: object,
) -> Snapshot:
    roles = [
        RoleRecord(ADMIN, "1"),
        RoleRecord(PAY, "2"),
        RoleRecord(APPROVE, "3"),
        RoleRecord(FINANCE, "4", composites=frozenset({PAY})),
        RoleRecord(MANAGE, "5"),
    ]
    access = expand_access([user.id for user in users], roles, groups, mapped or {})
    logins = {user.id: NOW - DAY for user in users} if last_login is None else last_login
    return Snapshot(
        taken_at=NOW,
        realm="acme",
        users=tuple(users),
        roles=tuple(roles),
        groups=tuple(groups),
        access=access,
        last_login=logins,
        logins_known_since=known_since,
        **extra,  # type: ignore[arg-type]
    )


def rule_ids(found: Sequence[object], rule: str) -> list[str]:
    return [finding.id for finding in found if finding.rule == rule]  # type: ignore[attr-defined]


ADMINS = GroupRecord("g1", "admins", "/admins", roles=frozenset({ADMIN}), member_ids=frozenset({"id-alice"}))


def test_a_clean_realm_has_no_findings() -> None:
    alice = person(totp=True)
    assert findings(snapshot([alice], groups=[ADMINS]), ReviewPolicy()) == []


@pytest.mark.parametrize(
    ("alice", "mapped", "groups", "present"),
    [
        (person(), {}, [ADMINS], True),  # admin through a group, no OTP
        (person(), {"id-alice": [MANAGE]}, [], True),  # any realm-management role is privileged
        (person(totp=True), {}, [ADMINS], False),
        (person(credential_types=frozenset({"password", "webauthn"})), {}, [ADMINS], False),
        (person(), {}, [], False),  # not privileged
        (person(enabled=False), {}, [ADMINS], False),
    ],
)
def test_privileged_without_mfa(
    alice: UserRecord, mapped: Mapping[str, Sequence[RoleRef]], groups: list[GroupRecord], present: bool
) -> None:
    found = findings(snapshot([alice], mapped=mapped, groups=groups), ReviewPolicy())
    assert rule_ids(found, rules.PRIVILEGED_WITHOUT_MFA) == (["privileged-without-mfa:id-alice"] if present else [])


def test_configured_privileged_groups_and_client_roles() -> None:
    policy = ReviewPolicy(privileged=PrivilegedSpec(realm_roles=(), client_roles={"billing": ("approve",)}))
    billing = RoleRef("approve", "billing")
    assert privileged_user_ids(snapshot([person()], mapped={"id-alice": [billing]}), policy) == {"id-alice"}
    assert privileged_user_ids(snapshot([person()], groups=[ADMINS]), policy) == frozenset()
    by_group = ReviewPolicy(privileged=PrivilegedSpec(realm_roles=(), groups=("/admins",)))
    assert privileged_user_ids(snapshot([person()], groups=[ADMINS]), by_group) == {"id-alice"}


@pytest.mark.parametrize(
    ("last", "created", "rule"),
    [
        (NOW - 91 * DAY, NOW - 400 * DAY, rules.DORMANT),
        (NOW - 89 * DAY, NOW - 400 * DAY, None),
        (None, NOW - 31 * DAY, rules.NEVER_LOGGED_IN),
        (None, NOW - 29 * DAY, None),  # new account: give it time
    ],
)
def test_dormant_and_never_logged_in(last: datetime | None, created: datetime, rule: str | None) -> None:
    alice = person(created=created)
    logins = {} if last is None else {alice.id: last}
    found = [
        f
        for f in findings(snapshot([alice], last_login=logins), ReviewPolicy())
        if f.rule in (rules.DORMANT, rules.NEVER_LOGGED_IN)
    ]
    assert [f.rule for f in found] == ([] if rule is None else [rule])


def test_never_logged_in_counts_from_when_logins_were_first_known() -> None:
    """An old account, logins harvested since yesterday: not yet one that never logged in."""
    alice = person(created=NOW - 400 * DAY)
    recent = findings(snapshot([alice], last_login={}, known_since=NOW - DAY), ReviewPolicy())
    assert [f.rule for f in recent if f.rule == rules.NEVER_LOGGED_IN] == []
    long_known = findings(snapshot([alice], last_login={}, known_since=NOW - 31 * DAY), ReviewPolicy())
    assert [f.rule for f in long_known if f.rule == rules.NEVER_LOGGED_IN] == [rules.NEVER_LOGGED_IN]


def test_no_harvested_events_give_one_info_finding_instead_of_dormancy() -> None:
    found = findings(snapshot([person()], last_login={}, known_since=None), ReviewPolicy())
    assert [f.id for f in found] == ["last-login-unknown:acme"]
    assert found[0].severity == "info"


def test_exempt_accounts_are_not_dormant() -> None:
    found = findings(snapshot([person()], last_login={}), ReviewPolicy(exempt_usernames=("alice",)))
    assert found == []


@pytest.mark.parametrize(
    ("attributes", "sources", "leaver", "expected"),
    [
        ({}, None, None, [rules.ORPHAN_NO_EXTERNAL_ID]),
        (EXTERNAL, frozenset({"e-2"}), None, [rules.ORPHAN_NO_SOURCE_RECORD]),
        (EXTERNAL, frozenset({"e-1"}), None, []),
        (EXTERNAL, None, None, []),  # sources not read: no claim either way
        (
            {**EXTERNAL, "status": ("leaver",)},
            None,
            LeaverSpec(attribute="status", values=("leaver",)),
            [rules.LEAVER_ENABLED],
        ),
        ({**EXTERNAL, "status": ("active",)}, None, LeaverSpec(attribute="status", values=("leaver",)), []),
    ],
)
def test_orphans(
    attributes: Mapping[str, tuple[str, ...]],
    sources: frozenset[str] | None,
    leaver: LeaverSpec | None,
    expected: list[str],
) -> None:
    alice = person(attributes=MappingProxyType(dict(attributes)))
    policy = ReviewPolicy(orphans=OrphansSpec(leaver=leaver))
    found = findings(snapshot([alice], source_external_ids=sources), policy)
    orphan_rules = {rules.ORPHAN_NO_EXTERNAL_ID, rules.ORPHAN_NO_SOURCE_RECORD, rules.LEAVER_ENABLED}
    assert [f.rule for f in found if f.rule in orphan_rules] == expected


def test_a_user_keycloak_does_not_store_needs_no_source_id_but_one_it_carries_is_checked() -> None:
    orphan_rules = {rules.ORPHAN_NO_EXTERNAL_ID, rules.ORPHAN_NO_SOURCE_RECORD}
    federated = person(id="f:ldap-1:alice", attributes=MappingProxyType({}), federation_link="ldap-1")
    assert [f.rule for f in findings(snapshot([federated]), ReviewPolicy()) if f.rule in orphan_rules] == []
    # Imported (stored by Keycloak): Keycloak keeps it after its entry is deleted, so it needs a source id.
    imported = replace(federated, id="id-alice")
    found = findings(snapshot([imported]), ReviewPolicy())
    assert [f.rule for f in found if f.rule in orphan_rules] == [rules.ORPHAN_NO_EXTERNAL_ID]
    found = findings(snapshot([federated], source_external_ids=frozenset({"e-2"})), ReviewPolicy())
    assert [f.rule for f in found if f.rule in orphan_rules] == []  # no id to look for in the sources
    vouched = replace(federated, attributes=MappingProxyType(EXTERNAL))
    found = findings(snapshot([vouched], source_external_ids=frozenset({"e-2"})), ReviewPolicy())
    assert [f.rule for f in found if f.rule in orphan_rules] == [rules.ORPHAN_NO_SOURCE_RECORD]


def test_leaver_disabled_is_no_finding() -> None:
    alice = person(enabled=False, attributes=MappingProxyType({"status": ("leaver",)}))
    policy = ReviewPolicy(orphans=OrphansSpec(leaver=LeaverSpec(attribute="status", values=("leaver",))))
    assert findings(snapshot([alice]), policy) == []


def test_direct_grants_but_not_default_roles_or_composites_of_them() -> None:
    default = RoleRef("default-roles-acme")
    found = findings(
        snapshot([person()], mapped={"id-alice": [FINANCE, default, RoleRef("offline_access")]}), ReviewPolicy()
    )
    # finance is mapped directly; pay only comes through finance, default roles are allowed.
    assert rule_ids(found, rules.DIRECT_GRANT) == ["direct-grant:id-alice:finance"]
    through_group = GroupRecord("g", "fin", "/fin", roles=frozenset({FINANCE}), member_ids=frozenset({"id-alice"}))
    assert rule_ids(findings(snapshot([person()], groups=[through_group]), ReviewPolicy()), rules.DIRECT_GRANT) == []


SOD = SodPolicy(rules=(SodRule(name="pay-and-approve", realm_roles=("pay", "approve")),))


def test_sod_conflict_on_effective_access_through_composite_and_group() -> None:
    approvers = GroupRecord(
        "g", "approvers", "/approvers", roles=frozenset({APPROVE}), member_ids=frozenset({"id-alice"})
    )
    finance = GroupRecord("f", "finance", "/finance", roles=frozenset({FINANCE}), member_ids=frozenset({"id-alice"}))
    policy = ReviewPolicy(sod=SOD)
    found = findings(snapshot([person()], groups=[approvers, finance]), policy)
    conflicts = [f for f in found if f.rule == rules.SOD_CONFLICT]
    assert [f.id for f in conflicts] == ["sod-conflict:pay-and-approve:id-alice"]
    assert conflicts[0].severity == "high"
    assert conflicts[0].details["held"] == {
        "approve": ["via group /approvers"],
        "pay": ["via composite finance via group /finance"],
    }
    # Fixed: out of /finance, only approve is left.
    fixed = replace(finance, member_ids=frozenset())
    assert rule_ids(findings(snapshot([person()], groups=[approvers, fixed]), policy), rules.SOD_CONFLICT) == []


def test_sod_on_groups_counts_membership_of_sub_groups() -> None:
    rule = SodRule(name="two-hats", groups=("/a", "/b"), severity="critical")
    groups = [
        GroupRecord("a", "a", "/a"),
        GroupRecord("a1", "x", "/a/x", parent_id="a", parent_path="/a", member_ids=frozenset({"id-alice"})),
        GroupRecord("b", "b", "/b", member_ids=frozenset({"id-alice"})),
    ]
    found = findings(snapshot([person()], groups=groups), ReviewPolicy(sod=SodPolicy(rules=(rule,))))
    assert [(f.rule, f.severity) for f in found if f.rule == rules.SOD_CONFLICT] == [(rules.SOD_CONFLICT, "critical")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2025-01-01", "was last trained on 2025-01-01"),
        (None, "has no training_date"),
        ("soon", "has an unreadable training_date"),
        ("2026-06-01", None),
        ("2026-06-01T10:00:00Z", None),
    ],
)
def test_lapsed_training(value: str | None, reason: str | None) -> None:
    attributes = {"idp-agent.external-id": ("e-1",), **({"training_date": (value,)} if value else {})}
    alice = person(attributes=MappingProxyType(attributes))
    found = findings(snapshot([alice]), ReviewPolicy(training=TrainingSpec()))
    lapsed = [f.explanation for f in found if f.rule == rules.TRAINING_LAPSED]
    assert len(lapsed) == (0 if reason is None else 1)
    if reason is not None:
        assert lapsed[0].startswith(f"alice {reason}")


def test_training_can_be_limited_to_privileged_accounts() -> None:
    attributes = MappingProxyType({"idp-agent.external-id": ("e-1",)})
    policy = ReviewPolicy(training=TrainingSpec(only_privileged=True))
    plain = findings(snapshot([person(attributes=attributes, totp=True)]), policy)
    admin = findings(snapshot([person(attributes=attributes, totp=True)], groups=[ADMINS]), policy)
    assert rule_ids(plain, rules.TRAINING_LAPSED) == []
    assert rule_ids(admin, rules.TRAINING_LAPSED) == ["training-lapsed:id-alice"]


def test_parse_day() -> None:
    assert parse_day("2026-01-02") == datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_day("2026-01-02T03:04:05+02:00") == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert parse_day("02/01/2026") is None


@pytest.mark.parametrize(
    ("state", "present"), [("active", True), ("pending", True), ("lifted", False), ("expired", False)]
)
def test_sanctions_in_force(state: str, present: bool) -> None:
    sanction = SanctionSummary("s1", "id-alice", "suspension", state, NOW - DAY, NOW + DAY)
    found = findings(snapshot([person()], sanctions=(sanction,), ledger_read=True), ReviewPolicy())
    assert rule_ids(found, rules.SANCTION_ACTIVE) == (["sanction-active:s1"] if present else [])


@pytest.mark.parametrize(
    ("opened_days_ago", "acknowledged", "decided", "missed"),
    [
        (3, False, False, "acknowledgement"),
        (1, False, False, None),
        (3, True, False, None),
        (16, True, False, "decision"),
        (16, True, True, None),
    ],
)
def test_overdue_appeals(opened_days_ago: int, acknowledged: bool, decided: bool, missed: str | None) -> None:
    opened = NOW - opened_days_ago * DAY
    appeal = AppealSummary(
        "a1", "s1", "id-alice", "open", opened, opened + DAY if acknowledged else None, NOW if decided else None
    )
    found = findings(snapshot([person()], appeals=(appeal,)), ReviewPolicy())
    overdue = [f for f in found if f.rule == rules.APPEAL_OVERDUE]
    assert [f.details["missed"] for f in overdue] == ([] if missed is None else [missed])


def test_appeal_deadlines_from_the_ledger_win() -> None:
    opened = NOW - 3 * DAY
    appeal = AppealSummary("a1", "s1", "id-alice", "open", opened, acknowledge_due=NOW + DAY, decide_due=NOW + 9 * DAY)
    assert rule_ids(findings(snapshot([person()], appeals=(appeal,)), ReviewPolicy()), rules.APPEAL_OVERDUE) == []


@pytest.mark.parametrize(
    ("roles", "exempt", "present"),
    [([MANAGE], (), True), ([ADMIN], (), True), ([PAY], (), False), ([MANAGE], ("service-account-sync",), False)],
)
def test_service_accounts_with_admin_roles(roles: list[RoleRef], exempt: tuple[str, ...], present: bool) -> None:
    robot = person("service-account-sync", service_account_client="sync", attributes=MappingProxyType({}))
    found = findings(snapshot([robot], mapped={robot.id: roles}), ReviewPolicy(exempt_usernames=exempt))
    assert rule_ids(found, rules.SERVICE_ACCOUNT_ADMIN) == ([f"service-account-admin:{robot.id}"] if present else [])
    # Service accounts are never people: no MFA, orphan, dormancy or direct-grant findings.
    assert {f.rule for f in found} <= {rules.SERVICE_ACCOUNT_ADMIN}


def test_findings_are_sorted_most_severe_first() -> None:
    found = findings(
        snapshot([person(attributes=MappingProxyType({}))], groups=[ADMINS], last_login={}), ReviewPolicy()
    )
    assert [f.severity for f in found] == ["high", "medium", "medium"]


def test_sod_rule_naming_a_missing_role_is_an_info_finding() -> None:
    typo = SodRule(name="typo", realm_roles=("pay", "aprove"))
    found = findings(snapshot([person(totp=True)]), ReviewPolicy(sod=SodPolicy(rules=(typo,))))
    assert [(f.id, f.severity, f.details["missing"]) for f in found] == [("sod-rule-unknown:typo", "info", ["aprove"])]
    assert findings(snapshot([person(totp=True)]), ReviewPolicy(sod=SOD)) == []


@pytest.mark.parametrize(
    ("leavers", "present"), [(frozenset({"e-1"}), True), (frozenset({"e-9"}), False), (None, False)]
)
def test_leavers_according_to_the_source(leavers: frozenset[str] | None, present: bool) -> None:
    found = findings(snapshot([person()], source_leaver_ids=leavers), ReviewPolicy())
    assert rule_ids(found, rules.LEAVER_ENABLED) == (["leaver-enabled:id-alice"] if present else [])
    disabled = findings(snapshot([person(enabled=False)], source_leaver_ids=leavers), ReviewPolicy())
    assert rule_ids(disabled, rules.LEAVER_ENABLED) == []


@pytest.mark.parametrize(
    ("grants", "severity"),
    [
        (frozenset({RoleRef("offline_access"), RoleRef("manage-account", "account")}), None),
        (frozenset({RoleRef("offline_access"), PAY}), "medium"),
        (frozenset({MANAGE}), "high"),
        (frozenset({ADMIN}), "high"),
    ],
)
def test_default_role_granting_more_than_the_baseline(grants: frozenset[RoleRef], severity: str | None) -> None:
    default = RoleRef("default-roles-acme")
    base = snapshot([person(totp=True)])
    roles = (*base.roles, RoleRecord(default, "d", composites=grants, expanded=grants))
    found = findings(replace(base, roles=roles, default_role=default), ReviewPolicy())
    expected = [] if severity is None else [("default-role-beyond-baseline:default-roles-acme", severity)]
    assert [(f.id, f.severity) for f in found] == expected


def test_enabled_accounts_sharing_an_external_id_are_each_a_finding() -> None:
    alice, old = person(), person("alice.old")
    bob = person("bob", attributes=MappingProxyType({"idp-agent.external-id": ("e-2",)}))
    found = findings(snapshot([alice, old, bob]), ReviewPolicy())
    assert rule_ids(found, rules.SHARED_EXTERNAL_ID) == [
        "shared-external-id:id-alice",
        "shared-external-id:id-alice.old",
    ]
    [first, _] = [f for f in found if f.rule == rules.SHARED_EXTERNAL_ID]
    assert first.severity == "high" and "as do alice.old" in first.explanation
    assert dict(first.details)["accounts"] == "alice, alice.old"


def test_a_disabled_account_sharing_the_id_is_no_finding() -> None:
    found = findings(snapshot([person(), person("alice.old", enabled=False)]), ReviewPolicy())
    assert rule_ids(found, rules.SHARED_EXTERNAL_ID) == []
