"""Campaign logic without a server: scope, removable entitlements, reviewers, recommendations, reviewers' sheets
(every bad line named, nothing recorded), the safety threshold, the store area and the evidence bundle."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.errors import ConfigError, SafetyStop
from agent.review.campaign_items import Scope, parse_scope, plan_items, recommend, removable_entitlements
from agent.review.campaign_sheets import parse_sheet, sheet_csv
from agent.review.campaigns import (
    check_campaign_name,
    check_threshold,
    default_decisions,
    pending_revocations,
    with_defaults,
)
from agent.review.evidence import CHECKSUMS, MANIFEST, campaign_html, decisions_csv, write_evidence
from agent.review.model import Grant, RoleRecord, RoleRef, Route, Snapshot, UserAccess, UserRecord
from agent.review.policy import ReviewPolicy
from agent.store import ManualClock, open_store
from agent.store.campaigns import Campaign, NewCampaign, NewReviewItem, RecordedDecision, ReviewItem
from agent.store.errors import StoreConflict, StoreError
from agent.sync.guard import SafetyLimits

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ADMIN, EMPLOYEE, VIEWER = RoleRef("admin"), RoleRef("employee"), RoleRef("view-users", "realm-management")


def user(user_id: str, username: str, **fields: object) -> UserRecord:
    fields.setdefault("created", NOW - timedelta(days=400))
    return UserRecord(user_id, username, bool(fields.pop("enabled", True)), **fields)  # type: ignore[arg-type]


def snapshot(
    last_login: dict[str, datetime] | None = None, known_since: datetime | None = NOW - timedelta(days=365)
) -> Snapshot:
    """alice: /it/ops member (admin via /it, employee via admin's composite); bob: admin mapped directly and
    realm-management/view-users; carol: employee directly; ci: a service account with admin."""
    users = (
        user("u1", "alice", email="alice@example.org", attributes=MappingProxyType({"manager": ("DAVE@example.org",)})),
        user("u2", "bob", attributes=MappingProxyType({"manager": ("E-404",)})),
        user("u3", "carol", attributes=MappingProxyType({"manager": ("carol",)})),
        user(
            "u4", "dave", email="dave@example.org", attributes=MappingProxyType({"idp-agent.external-id": ("E-404",)})
        ),
        user("u5", "service-account-ci", service_account_client="ci"),
    )
    via_it = Route(group="/it", member_of="/it/ops")
    access = {
        "u1": UserAccess("u1", frozenset({"/it/ops"}), (
            Grant("group", "/it", (Route(group="/it", member_of="/it/ops"),)),
            Grant("group", "/it/ops", (Route(),)),
            Grant("role", "admin", (via_it,), ADMIN),
            Grant("role", "employee", (Route(group="/it", member_of="/it/ops", composites=(ADMIN,)),), EMPLOYEE),
            Grant("role", "default-roles-acme", (Route(),), RoleRef("default-roles-acme")),
        )),
        "u2": UserAccess("u2", frozenset(), (
            Grant("role", "admin", (Route(),), ADMIN),
            Grant("role", "employee", (Route(composites=(ADMIN,)),), EMPLOYEE),
            Grant("role", VIEWER.label, (Route(),), VIEWER),
        )),
        "u3": UserAccess("u3", frozenset(), (Grant("role", "employee", (Route(),), EMPLOYEE),)),
        "u5": UserAccess("u5", frozenset(), (Grant("role", "admin", (Route(),), ADMIN),)),
    }  # fmt: skip
    roles = (RoleRecord(ADMIN, "r1", composites=frozenset({EMPLOYEE}), expanded=frozenset({EMPLOYEE})),)
    return Snapshot(
        taken_at=NOW, realm="acme", users=users, roles=roles, access=MappingProxyType(access),
        last_login=MappingProxyType(last_login or {}), logins_known_since=known_since,
    )  # fmt: skip


POLICY = ReviewPolicy.model_validate({"fallback_reviewer": "security", "owners": {"roles": {"employee": "hr-lead"}}})


@pytest.mark.parametrize(
    ("text", "scope"),
    [("privileged", Scope("privileged")), ("all", Scope("all")), ("role:admin", Scope("role", "admin")),
     ("role:app/viewer", Scope("role", "app/viewer")), ("group:/it/", Scope("group", "/it"))],
)  # fmt: skip
def test_scopes_parse(text: str, scope: Scope) -> None:
    assert parse_scope(text) == scope


@pytest.mark.parametrize("text", ["", "privileged:x", "role:", "group:it", "owner:bob"])
def test_unknown_scopes_are_refused_with_the_choices(text: str) -> None:
    with pytest.raises(ConfigError, match="unknown scope"):
        parse_scope(text)


def test_only_direct_mappings_and_memberships_are_removable() -> None:
    found = {(e.kind, e.name): e for e in removable_entitlements(snapshot(), "u1")}
    assert set(found) == {("group", "/it/ops")}  # admin comes through the group; default roles are never reviewed
    assert found[("group", "/it/ops")].roles == {ADMIN, EMPLOYEE}
    assert found[("group", "/it/ops")].groups == {"/it", "/it/ops"}
    bob = {(e.kind, e.name): e for e in removable_entitlements(snapshot(), "u2")}
    assert set(bob) == {("role", "admin"), ("role", VIEWER.label)}
    assert bob[("role", "admin")].roles == {ADMIN, EMPLOYEE}  # composites come with the role mapped
    assert bob[("role", VIEWER.label)].client_id == "realm-management"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("privileged", {("alice", "/it/ops"), ("bob", "admin"), ("bob", "realm-management/view-users")}),
        ("role:employee", {("alice", "/it/ops"), ("bob", "admin"), ("carol", "employee")}),
        ("role:realm-management/view-users", {("bob", "realm-management/view-users")}),
        ("group:/it", {("alice", "/it/ops")}),
        (
            "all",
            {("alice", "/it/ops"), ("bob", "admin"), ("bob", "realm-management/view-users"), ("carol", "employee")},
        ),
    ],
)
def test_scope_selects_items_by_what_the_grant_gives(scope: str, expected: set[tuple[str, str]]) -> None:
    planned = plan_items(snapshot(), POLICY, parse_scope(scope), 90)
    assert {(item.username, item.entitlement) for item in planned.items} == expected
    assert "service-account-ci" not in {item.username for item in planned.items}


def test_reviewer_is_the_manager_by_email_or_external_id_else_owner_else_fallback_never_oneself() -> None:
    planned = plan_items(snapshot(), POLICY, Scope("all"), 90)
    reviewers = {(item.username, item.entitlement): item.reviewer for item in planned.items}
    assert reviewers[("alice", "/it/ops")] == "dave"  # manager named by e-mail, any case
    assert reviewers[("bob", "admin")] == "dave"  # manager named by external id
    assert reviewers[("carol", "employee")] == "hr-lead"  # her manager is herself: the role's owner instead
    nobody = plan_items(snapshot(), ReviewPolicy(), Scope("role", "employee"), 90)
    assert nobody.unassigned == ("carol: role employee",)


@pytest.mark.parametrize(
    ("last_login", "known_since", "created_days", "enabled", "decision", "reason_start"),
    [
        (NOW - timedelta(days=10), NOW - timedelta(days=365), 400, True, "keep", "active"),
        (NOW - timedelta(days=91), NOW - timedelta(days=365), 400, True, "revoke", "dormant: no login for 91 days"),
        (None, NOW - timedelta(days=365), 400, True, "revoke", "dormant: never logged in"),
        (None, NOW - timedelta(days=365), 20, True, "keep", "new"),
        (None, NOW - timedelta(days=5), 400, True, "keep", "new"),  # logins known for 5 days only
        (None, None, 400, True, "keep", "last login unknown"),
        (NOW - timedelta(days=1), NOW - timedelta(days=365), 400, False, "revoke", "account disabled"),
    ],
)
def test_recommendation_revokes_only_dormant_or_disabled_accounts(
    last_login: datetime | None, known_since: datetime | None, created_days: int, enabled: bool, decision: str,
    reason_start: str,
) -> None:  # fmt: skip
    record = user("u9", "zed", created=NOW - timedelta(days=created_days), enabled=enabled)
    logins = {"u9": last_login} if last_login else {}
    found, reason = recommend(snapshot(logins, known_since), record, 90)
    assert (found, reason[: len(reason_start)]) == (decision, reason_start)


def item(number: int, reviewer: str = "dave", username: str = "alice", **fields: object) -> ReviewItem:
    return ReviewItem(
        campaign="q4", number=number, user_id=f"u-{username}", username=username, kind="role",
        entitlement=str(fields.pop("entitlement", "admin")), reviewer=reviewer, recommendation="keep", reason="active",
        **fields,  # type: ignore[arg-type]
    )  # fmt: skip


ITEMS = [item(1), item(2, username="bob"), item(3, reviewer="erin", username="=carol")]


def test_a_sheet_round_trips_through_export_and_decide() -> None:
    sheet = sheet_csv(ITEMS)
    assert "'=carol" in sheet  # a formula-looking username is neutralised in the sheet ...
    filled = sheet.replace(",keep,active,dave,,", ",keep,active,dave,revoke,left the team", 1)
    decisions = parse_sheet(filled, "q4.csv", ITEMS)
    assert [(d.number, d.decision, d.justification, d.decided_by) for d in decisions] == [
        (1, "revoke", "left the team", "dave")
    ]
    # ... and read back as the username it is.
    carol = sheet.splitlines()[3].replace(",erin,,", ",erin,keep,")
    assert parse_sheet(sheet.splitlines()[0] + "\n" + carol, "q4.csv", ITEMS)[0].number == 3


def test_every_bad_line_is_named_and_nothing_is_returned() -> None:
    sheet = (
        "item,user,entitlement,reviewer,decision,justification\n"
        "1,alice,admin,dave,keep,\n"
        "99,alice,admin,dave,keep,\n"
        "2,bob,admin,mallory,keep,\n"
        '2,bob,admin,erin,revoke,"multi\nline"\n'
        "3,=carol,admin,erin,maybe,\n"
        "1,alice,admin,dave,revoke,\n"
        "2,alice,admin,dave,keep,\n"
    )
    with pytest.raises(ConfigErrors) as raised:
        parse_sheet(sheet, "q4.csv", ITEMS)
    lines = sorted((d.line, d.message) for d in raised.value.diagnostics)
    assert lines == [
        (3, "unknown item '99'"),
        (4, "unknown reviewer 'mallory'"),
        (5, "item 2 is also on line 4"),
        (5, "item 2 is assigned to dave, not erin"),
        (7, "decision 'maybe' is neither keep nor revoke"),  # line 7: the quoted newline took two lines
        (8, "item 1 is also on line 2"),
        (8, "item 1: a revoke needs a justification"),
        (9, "item 2 is also on line 4"),
        (9, "item 2 is bob x admin; the sheet says user 'alice'"),  # a shifted row is caught
    ]
    assert all(d.file == "q4.csv" for d in raised.value.diagnostics)


def test_a_sheet_without_the_needed_columns_is_refused() -> None:
    with pytest.raises(ConfigErrors, match="lacks the column"):
        parse_sheet("item,user\n1,alice\n", "q4.csv", ITEMS)
    # Without user and entitlement, a row of another campaign's sheet (numbered alike) would land on this one.
    with pytest.raises(ConfigErrors, match=r"lacks the column\(s\) user, entitlement"):
        parse_sheet("item,reviewer,decision,justification\n1,dave,revoke,left\n", "q4.csv", ITEMS)


def test_an_item_number_in_other_digits_is_an_unknown_item_not_a_crash() -> None:
    with pytest.raises(ConfigErrors, match="unknown item '\u00b2'"):
        parse_sheet(
            "item,user,entitlement,reviewer,decision,justification\n\u00b2,alice,admin,dave,keep,\n", "q4.csv", ITEMS
        )


def test_unanswered_items_get_the_default_and_only_pending_revokes_are_applied() -> None:
    answered = [item(1, decision="keep"), item(2, decision="revoke", outcome="applied"), item(3), item(4)]
    campaign = Campaign(
        name="q4", realm="acme", scope="all", created_by="op", default_decision="revoke", dormant_days=90,
        snapshot_at=NOW, status="open", created_at=NOW, item_count=4,
    )  # fmt: skip
    defaults = default_decisions(answered, campaign, "op")
    assert [(d.number, d.decision, d.decided_how) for d in defaults] == [
        (3, "revoke", "default"),
        (4, "revoke", "default"),
    ]
    assert [i.number for i in pending_revocations(with_defaults(answered, defaults))] == [3, 4]


@pytest.mark.parametrize(
    ("revocations", "users", "confirmed", "stops"),
    [(1, 100, None, False), (19, 100, None, False), (20, 100, None, True), (20, 100, 20, False), (20, 100, 19, True),
     (0, 1, None, False), (600, 10_000, None, True)],
)  # fmt: skip
def test_revocations_at_the_threshold_stop_unless_that_exact_count_is_confirmed(
    revocations: int, users: int, confirmed: int | None, stops: bool
) -> None:
    if stops:
        with pytest.raises(SafetyStop, match="nothing was applied"):
            check_threshold(revocations, users, SafetyLimits(), confirmed)
    else:
        check_threshold(revocations, users, SafetyLimits(), confirmed)


def test_the_store_keeps_campaigns_items_and_decisions_and_a_closed_campaign_is_final(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    with open_store(f"sqlite:///{tmp_path / 'store.db'}", now=clock) as store:
        new = NewCampaign("q4", "acme", "privileged", "op", "keep", 90, NOW, NOW + timedelta(days=14))
        items = [NewReviewItem("u1", "alice", "role", "admin", "dave", "revoke", "dormant"),
                 NewReviewItem("u2", "bob", "group", "/it", "erin", "keep", "active", confers="admin")]  # fmt: skip
        created = store.campaigns.create(new, items)
        assert (created.status, created.item_count, created.due_at) == ("open", 2, NOW + timedelta(days=14))
        with pytest.raises(StoreConflict, match="exists already"):
            store.campaigns.create(new, items)
        assert [i.number for i in store.campaigns.items("q4", "erin")] == [2]
        store.campaigns.record_decisions("q4", [RecordedDecision(1, "revoke", "gone", "dave")])
        with pytest.raises(StoreError, match="no item 7"):
            store.campaigns.record_decisions(
                "q4", [RecordedDecision(2, "keep", "", "erin"), RecordedDecision(7, "keep", "", "x")]
            )
        assert store.campaigns.items("q4")[1].decision is None  # all or nothing
        store.campaigns.record_outcome("q4", 1, "applied", "role admin removed")
        closed = store.campaigns.mark_closed("q4", "op", "run-1")
        assert (closed.status, closed.run_id, closed.closed_at) == ("closed", "run-1", NOW)
        with pytest.raises(StoreError, match="closed"):
            store.campaigns.record_decisions("q4", [RecordedDecision(2, "keep", "", "erin")])
        assert [c.name for c in store.campaigns.all()] == ["q4"]

        manifest = write_evidence(tmp_path / "evidence", closed, store.campaigns.items("q4"), store.journal.head())
    document = json.loads(manifest.read_text())
    names = {entry["name"]: entry["sha256"] for entry in document["files"]}
    assert set(names) == {"report.html", "decisions.csv", "decisions.json"}
    for name, digest in names.items():
        assert hashlib.sha256((tmp_path / "evidence" / name).read_bytes()).hexdigest() == digest
    sums = (tmp_path / "evidence" / CHECKSUMS).read_text().splitlines()
    assert any(line.endswith(f"  {MANIFEST}") for line in sums)
    decisions = json.loads((tmp_path / "evidence" / "decisions.json").read_text())
    assert decisions["summary"]["revoked"] == 1
    assert decisions["summary"]["revocations applied"] == 1


@pytest.mark.parametrize("name", ["q4-2026", "Q4_2026.privileged", "a"])
def test_plain_campaign_names_are_accepted(name: str) -> None:
    assert check_campaign_name(name) == name


@pytest.mark.parametrize("name", ["", "../etc", "q4/2026", "-q4", "q4 2026", "x" * 101])
def test_campaign_names_that_could_name_other_files_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="is not allowed"):
        check_campaign_name(name)


def test_a_sheet_cannot_change_what_a_close_already_did() -> None:
    acted = [item(1, decision="revoke", outcome="applied"), item(2, username="bob", outcome="failed")]
    sheet = "item,user,entitlement,reviewer,decision,justification\n1,alice,admin,dave,keep,\n"
    with pytest.raises(ConfigErrors, match="its decision is final"):
        parse_sheet(sheet, "q4.csv", acted)
    retry = parse_sheet(
        "item,user,entitlement,reviewer,decision,justification\n2,bob,admin,dave,keep,\n", "q4.csv", acted
    )
    assert [(d.number, d.decision) for d in retry] == [(2, "keep")]  # a failed revocation may be reconsidered


def test_the_evidence_page_and_csv_escape_what_users_typed() -> None:
    hostile = item(1, username="<script>alert(1)</script>", decision="revoke", justification="=HYPERLINK(1)")
    campaign = Campaign(
        name="q4", realm="acme", scope="all", created_by="op", default_decision="keep", dormant_days=90,
        snapshot_at=NOW, status="closed", created_at=NOW, item_count=1,
    )  # fmt: skip
    page = campaign_html(campaign, [hostile])
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "'=HYPERLINK(1)" in decisions_csv([hostile])
