"""The sync planner and the safety brakes: pure functions, table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import cast, get_args

import pytest

from agent.keycloak import User
from agent.store.staging import StagedRemoval
from agent.sync.agent_config import SyncSpec
from agent.sync.commands import render_item
from agent.sync.grants import Grants
from agent.sync.guard import SafetyLimits, check_safety, removal_threshold, suspect_reads
from agent.sync.model import (
    DISABLED_BY_SYNC_ATTRIBUTE,
    EXTERNAL_ID_ATTRIBUTE,
    GRANTS_ATTRIBUTE,
    SOURCE_ATTRIBUTE,
    DesiredUser,
    SourceRead,
    SourceRecord,
)
from agent.sync.plan import (
    ABSENT_BEFORE_START,
    ABSENT_FOUND_DISABLED,
    ABSENT_SANCTIONED,
    LEFT_BEFORE_START,
    LEFT_FOUND_DISABLED,
    LEFT_SANCTIONED,
    Retention,
    SyncAction,
    SyncContext,
    SyncItem,
    SyncPlan,
    managed_live_users,
    plan_sync,
)
from agent.sync.runner import ApprovalHolds, changed_since_staged, staged_grant, staged_grant_names

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SOURCE = "workforce"


def desired(external_id: str, username: str, **extra: object) -> DesiredUser:
    values: dict[str, object] = {"email": f"{username}@example.org", "first_name": username.title(), "last_name": "X"}
    values.update(extra)
    return DesiredUser(external_id=external_id, source=SOURCE, username=username, **values)  # type: ignore[arg-type]


def live(
    external_id: str,
    username: str,
    *,
    enabled: bool = True,
    grants: Grants | None = None,
    user_id: str = "",
    source: str = SOURCE,
    disabled_by_sync: str | None = None,
    email: str | None = None,
    **attributes: str,
) -> User:
    attrs: dict[str, tuple[str, ...]] = {EXTERNAL_ID_ATTRIBUTE: (external_id,), SOURCE_ATTRIBUTE: (source,)}
    if grants is not None:
        attrs[GRANTS_ATTRIBUTE] = (grants.to_json(),)
    if disabled_by_sync:
        attrs[DISABLED_BY_SYNC_ATTRIBUTE] = (disabled_by_sync,)
    attrs.update({key: (value,) for key, value in attributes.items()})
    return User(
        id=user_id or f"kc-{external_id}", username=username, enabled=enabled,
        email=email if email is not None else f"{username}@example.org", first_name=username.title(), last_name="X",
        attributes=MappingProxyType(attrs),
    )  # fmt: skip


def plan(desired_users: list[DesiredUser], users: list[User], **context: object) -> object:
    settings: dict[str, object] = {"realm": "r", "source": SOURCE, "now": NOW}
    settings.update(context)
    return plan_sync(desired_users, [], managed_live_users(users, SOURCE), users, SyncContext(**settings))  # type: ignore[arg-type]


def actions(result: object) -> list[tuple[str, str]]:
    return [(item.action, item.external_id) for item in result.items]  # type: ignore[attr-defined]


def test_joiner_is_created() -> None:
    assert actions(plan([desired("1", "ann")], [])) == [("create", "1")]


def test_unchanged_user_plans_nothing() -> None:
    result = plan([desired("1", "ann")], [live("1", "ann", grants=Grants())])
    assert actions(result) == []


def test_rename_keeps_the_same_keycloak_user() -> None:
    result = plan([desired("1", "ann.smith", email="ann.smith@example.org")], [live("1", "ann", grants=Grants())])
    [update] = result.items  # type: ignore[attr-defined]
    assert (update.action, update.user_id) == ("update", "kc-1")
    assert ("username", "ann", "ann.smith") in update.fields
    assert ("email", "ann@example.org", "ann.smith@example.org") in update.fields


def test_mover_gets_new_grants_and_loses_only_what_the_sync_gave() -> None:
    before = Grants(groups=frozenset({"/sales", "/staff"}))
    result = plan([desired("1", "ann", groups=frozenset({"/finance", "/staff"}))], [live("1", "ann", grants=before)])
    by_action = {item.action: item for item in result.items}  # type: ignore[attr-defined]
    assert by_action["grant"].grants.groups == {"/finance"}
    assert by_action["revoke"].grants.groups == {"/sales"}
    assert "update" in by_action  # records the new grant set


@pytest.mark.parametrize(
    ("extra", "reason"),
    [({"status": "inactive"}, "employment ended"), ({"end": NOW - timedelta(minutes=1)}, "employment ended")],
)
def test_leaver_in_the_source_is_disabled(extra: dict[str, object], reason: str) -> None:
    result = plan([desired("1", "ann", **extra)], [live("1", "ann", grants=Grants())])
    [disable] = result.items  # type: ignore[attr-defined]
    assert (disable.action, disable.reason) == ("disable", reason)


def test_termination_instant_not_yet_reached_keeps_access() -> None:
    result = plan([desired("1", "ann", end=NOW + timedelta(minutes=1))], [live("1", "ann", grants=Grants())])
    assert actions(result) == []


def test_absent_user_is_a_leaver_candidate_to_confirm() -> None:
    result = plan([desired("1", "ann")], [live("1", "ann", grants=Grants()), live("2", "bob", grants=Grants())])
    assert actions(result) == [("confirm-leaver", "2")]


def test_incomplete_read_plans_no_leaver() -> None:
    result = plan([desired("1", "ann")], [live("1", "ann"), live("2", "bob")], complete=False)
    assert actions(result) == []  # bob is absent, but an incomplete read never feeds the leaver phase
    assert result.leaver_phase is False  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("context", "held_reason"),
    [({"sanctioned": frozenset({"kc-1"})}, "active sanction"), ({"locked": frozenset({"kc-1"})}, "brute-force")],
)
def test_sanctioned_or_locked_user_active_in_hr_stays_disabled(context: dict[str, object], held_reason: str) -> None:
    result = plan(
        [desired("1", "ann")], [live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync="x")], **context
    )
    assert actions(result) == []
    assert held_reason in result.held[0].reason  # type: ignore[attr-defined]


def test_sanctioned_leaver_is_not_touched_either() -> None:
    result = plan([], [live("1", "ann", grants=Grants())], sanctioned=frozenset({"kc-1"}))
    assert actions(result) == []


def test_leaver_whose_account_someone_else_disabled_is_marked_as_left_once() -> None:
    """Marked, not disabled again: the sanction's end keeps the account disabled (S19), and the retention
    period applies to an account an admin disabled; a marked account needs nothing more."""
    suspended = live("1", "ann", enabled=False, grants=Grants())
    terminated = desired("1", "ann", status="inactive")
    marking = plan([terminated], [suspended], sanctioned=frozenset({"kc-1"}))
    assert [(i.action, i.reason) for i in marking.items] == [("mark-left", LEFT_SANCTIONED)]  # type: ignore[attr-defined]
    assert marking.removals == ()  # type: ignore[attr-defined]  # no change of access: not counted by the brakes
    by_admin = plan([terminated], [suspended])
    assert [(i.action, i.reason) for i in by_admin.items] == [("mark-left", LEFT_FOUND_DISABLED)]  # type: ignore[attr-defined]
    ended = desired("1", "ann", end=NOW - timedelta(hours=1))
    assert actions(plan([ended], [suspended])) == [("mark-left", "1")]
    marked = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync="left 2026-11-01: x")
    assert actions(plan([terminated], [marked])) == []
    assert actions(plan([desired("1", "ann")], [suspended], sanctioned=frozenset({"kc-1"}))) == []  # still employed
    not_started = desired("1", "ann", status="inactive", start=NOW + timedelta(days=3))
    assert actions(plan([not_started], [suspended])) == [("mark-left", "1")]  # inactive in HR is gone


def test_absent_person_whose_account_someone_else_disabled_is_marked_once_a_lookup_confirms() -> None:
    absent = plan([], [live("1", "ann", enabled=False, grants=Grants())], sanctioned=frozenset({"kc-1"}))
    assert [(i.action, i.reason) for i in absent.items] == [("mark-left", ABSENT_SANCTIONED)]  # type: ignore[attr-defined]
    assert [i.external_id for i in absent.to_confirm] == ["1"]  # type: ignore[attr-defined]
    by_admin = plan([], [live("1", "ann", enabled=False, grants=Grants())])
    assert [(i.action, i.reason) for i in by_admin.items] == [("mark-left", ABSENT_FOUND_DISABLED)]  # type: ignore[attr-defined]
    marked = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync="left 2026-11-01: x")
    assert actions(plan([], [marked])) == []
    assert actions(plan([], [live("1", "ann", enabled=False, grants=Grants())], complete=False)) == []


def test_a_hire_called_off_before_the_start_is_marked_as_left_so_retention_applies() -> None:
    waiting = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync="not started: created 2026-11-01")
    called_off = desired("1", "ann", status="inactive", start=NOW + timedelta(days=10))
    result = plan([called_off], [waiting])
    assert [(i.action, i.reason) for i in result.items] == [("mark-left", LEFT_BEFORE_START)]  # type: ignore[attr-defined]
    absent = plan([], [waiting])
    assert [(i.action, i.reason) for i in absent.items] == [("mark-left", ABSENT_BEFORE_START)]  # type: ignore[attr-defined]
    still_coming = desired("1", "ann", start=NOW + timedelta(days=10))
    assert actions(plan([still_coming], [waiting])) == []


def test_a_rehire_does_not_enable_an_account_someone_else_had_disabled() -> None:
    marker = f"left 2026-11-01T00:00:00+00:00: {LEFT_FOUND_DISABLED}"
    result = plan([desired("1", "ann")], [live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync=marker)])
    assert actions(result) == []
    assert "a rehire leaves it disabled" in result.held[0].reason  # type: ignore[attr-defined]
    sanctioned_marker = f"left 2026-11-01T00:00:00+00:00: {LEFT_SANCTIONED}"
    result = plan(
        [desired("1", "ann")], [live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync=sanctioned_marker)]
    )
    assert actions(result) == [("enable", "1")]  # the sanction's end is past: the sync enables a rehire


def test_rehire_of_a_user_the_sync_disabled_is_enabled() -> None:
    result = plan(
        [desired("1", "ann")], [live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync="2026-01-01 left")]
    )
    assert actions(result) == [("enable", "1")]


def test_user_disabled_by_an_admin_is_left_disabled() -> None:
    result = plan([desired("1", "ann")], [live("1", "ann", enabled=False, grants=Grants())])
    assert actions(result) == []
    assert "disabled outside the sync" in result.held[0].reason  # type: ignore[attr-defined]


def test_reused_email_never_links_a_new_hire_to_the_leavers_account() -> None:
    leaver = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync="left", email="team-lead@example.org")
    hire = desired("2", "bea", email="team-lead@example.org")
    result = plan([desired("1", "ann", status="inactive", email="team-lead@example.org"), hire], [leaver])
    assert ("create", "2") not in actions(result)
    [reject] = result.rejected  # type: ignore[attr-defined]
    assert reject.external_id == "2" and "email 'team-lead@example.org' belongs to another account" in reject.reason


def test_a_leaver_who_never_had_an_account_is_nothing_to_do_not_a_reject() -> None:
    """HR exports keep years of leavers: each is listed as never created, not rejected at every run, even when
    their email was reissued since or their old grants are gone from the realm."""
    colleague = live("7", "bea", grants=Grants(), email="team-lead@example.org")
    gone = desired("1", "ann", status="inactive", email="team-lead@example.org", realm_roles=frozenset({"retired"}))
    ended = desired("2", "cy", end=NOW - timedelta(days=1))
    still = desired("7", "bea", email="team-lead@example.org")
    result = plan([gone, ended, still], [colleague], known_realm_roles=frozenset({"employee"}))
    assert actions(result) == [] and result.rejected == ()  # type: ignore[attr-defined]
    assert result.never_created == ("1", "2")  # type: ignore[attr-defined]
    assert result.counts() == {"rejected": 0, "held": 0}  # type: ignore[attr-defined]


def test_username_of_an_unmanaged_account_is_refused() -> None:
    admin = User(id="kc-admin", username="root", enabled=True)
    result = plan([desired("1", "root")], [admin])
    assert actions(result) == [] and "belongs to another account" in result.rejected[0].reason  # type: ignore[attr-defined]


def test_deny_listed_and_service_accounts_are_never_touched() -> None:
    robot = replace(live("9", "service-account-x"), service_account_client_id="x")
    result = plan([], [live("1", "breakglass"), robot], deny_usernames=frozenset({"breakglass"}))
    assert actions(result) == []
    assert len(result.held) == 2  # type: ignore[attr-defined]


def test_future_hire_is_created_disabled_until_start() -> None:
    result = plan([desired("1", "ann", start=NOW + timedelta(days=3))], [])
    assert actions(result) == [("create", "1")]


def test_start_date_reached_enables_the_user_the_sync_created_disabled() -> None:
    user = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync="not started: starts 2026-11-29")
    result = plan([desired("1", "ann", start=NOW - timedelta(hours=1))], [user])
    [enable] = result.items  # type: ignore[attr-defined]
    assert (enable.action, enable.reason) == ("enable", "start date reached")


def test_an_employee_whose_start_moves_ahead_is_disabled_until_then_and_enabled_again() -> None:
    """Fail closed: a start date moved ahead (a correction, a rehire entered early) disables the account in use
    until the new start; then it is enabled again, not as a rehire, and its old sessions are ended."""
    later = desired("1", "ann", start=NOW + timedelta(days=3))
    [disable] = plan([later], [live("1", "ann", grants=Grants())]).items  # type: ignore[attr-defined]
    assert (disable.action, disable.reason) == ("disable", "not started yet")
    marker = f"left {NOW.isoformat()}: {disable.reason}"  # what the executor writes
    disabled = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync=marker)
    assert actions(plan([later], [disabled])) == []
    started = desired("1", "ann", start=NOW - timedelta(hours=1))
    [enable] = plan([started], [disabled]).items  # type: ignore[attr-defined]
    assert (enable.action, enable.reason) == ("enable", "start date reached again (it had moved ahead)")


def read(name: str, count: int) -> SourceRead:
    return SourceRead(name, tuple(SourceRecord(name, {"id": str(i)}) for i in range(count)), complete=True)


@pytest.mark.parametrize(("managed", "expected"), [(0, 1), (4, 1), (10, 2), (100, 20), (5000, 500), (2501, 500)])
def test_removal_threshold_is_min_of_count_and_share(managed: int, expected: int) -> None:
    assert removal_threshold(managed, SafetyLimits()) == expected


@pytest.mark.parametrize(("removals", "staged"), [(19, False), (20, True), (21, True)])
def test_removals_at_or_above_the_threshold_are_staged(removals: int, staged: bool) -> None:
    users = [live(str(i), f"u{i}", grants=Grants()) for i in range(100)]
    keep = [desired(str(i), f"u{i}") for i in range(removals, 100)]
    result = plan(keep, users)
    verdict = check_safety(result, {"hr": read("hr", 100 - removals)}, {}, SafetyLimits(max_shrink_ratio=1.0))  # type: ignore[arg-type]
    assert verdict.stage is staged and not verdict.stop


def test_the_removal_share_is_of_the_enabled_accounts_not_of_leavers_kept_disabled() -> None:
    """300 staff and 1,200 leavers kept for retention: 60 disables (20 % of the staff) are staged."""
    staff = [live(str(i), f"u{i}", grants=Grants()) for i in range(300)]
    kept = [live(f"x{i}", f"x{i}", enabled=False, grants=Grants(), disabled_by_sync="left") for i in range(1200)]
    keep = [desired(str(i), f"u{i}") for i in range(60, 300)]
    result = cast(SyncPlan, plan(keep, staff + kept))
    assert (result.managed_users, result.enabled_users, len(result.removals)) == (1500, 300, 60)
    verdict = check_safety(result, {"hr": read("hr", 240)}, {}, SafetyLimits(max_shrink_ratio=1.0))
    assert verdict.stage and "of 300 enabled managed users" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("count", "baseline", "suspect"),
    [(0, None, True), (0, 10, True), (79, 100, True), (80, 100, False), (5, None, False)],
)
def test_empty_or_shrunken_source_is_suspect(count: int, baseline: int | None, suspect: bool) -> None:
    baselines = {} if baseline is None else {"hr": baseline}
    assert bool(suspect_reads({"hr": read("hr", count)}, baselines, managed_users=10, limits=SafetyLimits())) is suspect


def test_rejected_or_not_yet_started_people_are_not_leavers() -> None:
    result = plan([], [live("1", "ann", grants=Grants())], still_listed=frozenset({"1"}))
    assert actions(result) == []


def test_grant_of_an_unknown_group_or_role_rejects_that_person_only() -> None:
    good = desired("1", "ann", groups=frozenset({"/staff"}))
    bad = desired("2", "bob", realm_roles=frozenset({"invoice-approver"}))
    result = plan([good, bad], [], known_groups=frozenset({"/staff"}), known_realm_roles=frozenset({"employee"}))
    assert actions(result) == [("create", "1")]
    [reject] = result.rejected  # type: ignore[attr-defined]
    assert reject.external_id == "2" and "unknown realm role(s) invoice-approver" in reject.reason


RETAIN = Retention(timedelta(days=90), "delete")


@pytest.mark.parametrize(
    ("left_days_ago", "in_source", "expected"),
    [(91, False, [("delete", "1")]), (89, False, []), (91, True, [("enable", "1")]), (200, False, [("delete", "1")])],
)
def test_leavers_past_retention_are_deleted_unless_back(
    left_days_ago: int, in_source: bool, expected: list[tuple[str, str]]
) -> None:
    left = (NOW - timedelta(days=left_days_ago)).isoformat()
    user = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync=f"left {left}: employment ended")
    result = plan([desired("1", "ann")] if in_source else [], [user], retention=RETAIN)
    assert actions(result) == expected


def test_retention_needs_a_complete_read_and_spares_sanctioned_and_not_started() -> None:
    old = (NOW - timedelta(days=400)).isoformat()
    leaver = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync=f"left {old}: x")
    assert actions(plan([], [leaver], retention=RETAIN, complete=False)) == []
    assert actions(plan([], [leaver], retention=RETAIN, sanctioned=frozenset({"kc-1"}))) == []
    waiting = live("2", "bob", enabled=False, grants=Grants(), disabled_by_sync=f"not started: created {old}")
    coming = desired("2", "bob", start=NOW + timedelta(days=3))
    assert actions(plan([coming], [waiting], retention=RETAIN)) == []
    # Gone before the start: marked as left first (the retention period starts then), never deleted at once.
    assert actions(plan([], [waiting], retention=RETAIN)) == [("mark-left", "2")]


# Two accounts carrying one person's external id (a copied attribute, an account restored beside its
# successor): which one is the person's cannot be told, so neither is changed while the person is listed, and
# neither may outlive the person.


def two_accounts(**extra: object) -> list[User]:
    return [
        live("1", "ann", user_id="kc-a", grants=Grants(), **extra),  # type: ignore[arg-type]
        live("1", "ann.smith", user_id="kc-b", grants=Grants(), **extra),  # type: ignore[arg-type]
    ]


def test_accounts_sharing_an_id_are_held_not_changed_while_the_person_is_listed() -> None:
    result = plan([desired("1", "ann", email="ann.new@example.org", groups=frozenset({"/staff"}))], two_accounts())
    assert actions(result) == []
    holds = sorted((held.username, held.reason) for held in result.held)  # type: ignore[attr-defined]
    assert [username for username, _ in holds] == ["ann", "ann.smith"]
    assert all("2 accounts carry external id 1 (ann, ann.smith)" in reason for _, reason in holds)


def test_every_account_sharing_a_leavers_id_is_a_leaver_candidate() -> None:
    result = plan([], two_accounts())
    assert sorted((item.action, item.user_id) for item in result.items) == [  # type: ignore[attr-defined]
        ("confirm-leaver", "kc-a"),
        ("confirm-leaver", "kc-b"),
    ]
    assert result.managed_users == 2  # type: ignore[attr-defined]


def test_accounts_sharing_an_id_are_not_deleted_after_retention() -> None:
    left = (NOW - timedelta(days=200)).isoformat()
    accounts = [
        replace(user, enabled=False) for user in two_accounts(disabled_by_sync=f"left {left}: employment ended")
    ]
    result = plan([], accounts, retention=RETAIN)
    assert actions(result) == []
    assert all("not deleted" in held.reason for held in result.held)  # type: ignore[attr-defined]
    assert len(result.held) == 2  # type: ignore[attr-defined]


def test_accounts_sharing_an_id_keep_precedence_of_sanctions_as_leavers() -> None:
    result = plan([], two_accounts(), sanctioned=frozenset({"kc-a"}))
    assert [(item.action, item.user_id) for item in result.items] == [("confirm-leaver", "kc-b")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("action", get_args(SyncAction))
def test_the_plan_renders_every_action(action: SyncAction) -> None:
    line = render_item(SyncItem(action, "1", "ann", "kc-1", reason="past retention"))
    assert line.startswith("  ") and f" {action} ann (1)" in line


@pytest.mark.parametrize(
    ("text", "realm_roles", "expected"),
    [
        ("group /staff", set(), Grants(groups=frozenset({"/staff"}))),
        ("role employee", {"employee"}, Grants(realm_roles=frozenset({"employee"}))),
        (
            'client-role ["https://sp.example.org/saml", "admin"]',
            set(),
            Grants(client_roles=frozenset({("https://sp.example.org/saml", "admin")})),
        ),
        # Sets staged before client roles were kept apart wrote both kinds as "role ...".
        ("role ledger/auditor", set(), Grants(client_roles=frozenset({("ledger", "auditor")}))),
        (
            "role https://sp.example.org/saml/admin",
            set(),
            Grants(client_roles=frozenset({("https://sp.example.org/saml", "admin")})),
        ),
        ("role team/lead", {"team/lead"}, Grants(realm_roles=frozenset({"team/lead"}))),
    ],
)
def test_a_staged_grant_reads_back_as_the_grant_it_was(text: str, realm_roles: set[str], expected: Grants) -> None:
    assert staged_grant(text, realm_roles.__contains__) == expected
    if not text.startswith("role "):  # what is staged now reads back whole
        assert staged_grant_names(expected) == [text]


def test_an_approval_deletes_no_one_under_a_sanction_since_it_was_staged() -> None:
    user = live("1", "ann", enabled=False, grants=Grants(), disabled_by_sync="left 2026-01-01")
    holds = ApprovalHolds(SyncSpec.model_validate({"name": SOURCE, "mapper": "m.yaml", "sources": ["hr"]}), frozenset())
    for action in ("delete", "anonymise", "disable", "confirm-leaver"):
        removal = StagedRemoval(user.id, "1", action, "retention")
        sanctioned = replace(holds, sanctioned=frozenset({user.id}))
        assert "under a sanction" in (changed_since_staged(removal, user, sanctioned) or ""), action
    assert changed_since_staged(StagedRemoval(user.id, "1", "delete", "retention"), user, holds) is None


LEFT = "left 2026-01-01T00:00:00+00:00: employment ended"


@pytest.mark.parametrize(
    ("holders", "hire_status", "released"),
    [
        ([("9", False, LEFT)], "active", True),  # a leaver the sync disabled: the email goes to the new hire
        ([("9", False, None)], "active", False),  # disabled by someone else, never marked as left
        ([("9", True, None)], "active", False),  # still working here
        ([("9", False, LEFT), ("8", False, LEFT)], "active", False),  # two accounts hold it
        ([("9", False, LEFT)], "inactive", False),  # the hire left too: no account, nothing to release
    ],
)
def test_a_reissued_email_is_released_only_from_the_one_account_of_a_person_who_left(
    holders: list[tuple[str, bool, str | None]], hire_status: str, released: bool
) -> None:
    users = [
        live(eid, f"old{eid}", enabled=on, disabled_by_sync=marker, email="lead@example.org", user_id=f"id-{eid}")
        for eid, on, marker in holders
    ]
    result = plan([desired("1", "fay", email="lead@example.org", status=hire_status)], users)
    if released:
        assert actions(result) == [("update", "9")]
        assert result.items[0].fields == (("email", "lead@example.org", None),)  # type: ignore[attr-defined]
        assert [h.username for h in result.held] == ["fay"]  # type: ignore[attr-defined]
    else:
        assert not {("update", "9"), ("create", "1")} & set(actions(result))
