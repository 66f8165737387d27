"""The pure enforcement planner: steps from a sanction, its level and the observed account; exact restores;
hand-over between overlapping sanctions; escalation."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from agent.keycloak.models import User
from agent.sanctions.plan import (
    LiveAccount,
    escalated_level,
    hand_over,
    is_expired,
    plan_apply,
    plan_restore,
    verify_apply,
    verify_restore,
    wanted_attributes,
)
from agent.sanctions.policy import ActionsSpec, LevelSpec, SanctionPolicy, load_sanction_policy
from agent.store.sanctions import Changes, ClientRoleRef, Sanction
from agent.sync.model import DISABLED_BY_SYNC_ATTRIBUTE

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
POLICY = load_sanction_policy(Path(__file__).resolve().parents[2] / "policies" / "sanctions.yaml", {})


def sanction(level: str, sid: str = "s-1", **changes: object) -> Sanction:
    values: dict[str, object] = {
        "realm": "acme", "user_id": "kc-1", "username": "ann", "level": level, "requested_level": level,
        "reason_code": "spam", "issued_by": "mod", "until": NOW + timedelta(days=7), "id": sid, "issued_at": NOW,
        "state": "pending",
    }  # fmt: skip
    values.update(changes)
    return Sanction(**values)  # type: ignore[arg-type]


def account(
    *,
    enabled: bool = True,
    roles: frozenset[str] = frozenset({"premium", "user"}),
    groups: frozenset[str] = frozenset({"/members", "/premium"}),
    sessions: int = 2,
    consents: frozenset[str] = frozenset({"app"}),
    attributes: dict[str, tuple[str, ...]] | None = None,
    required: tuple[str, ...] = (),
) -> LiveAccount:
    user = User(
        "kc-1", "ann", enabled, attributes=MappingProxyType(attributes or {"locale": ("en",)}),
        required_actions=required,
    )  # fmt: skip
    return LiveAccount(user, roles, roles, groups, sessions, consents, frozenset({"mobile"}))


def kinds(steps: tuple[object, ...]) -> list[str]:
    return [step.describe() for step in steps]  # type: ignore[attr-defined]


def test_a_warning_changes_no_access() -> None:
    plan = plan_apply(sanction("warning"), POLICY.level("warning").actions, account(), None)
    assert plan.steps == () and plan.changes.is_empty


def test_a_suspension_disables_logs_out_revokes_and_records_what_it_changed() -> None:
    first = sanction("suspension")
    wanted = wanted_attributes([first], POLICY)
    plan = plan_apply(first, POLICY.level("suspension").actions, account(), wanted)
    assert kinds(plan.steps) == [
        "disable",
        "set-attributes restrictions=(none), sanction_level=suspension, sanction_until=2026-12-06T09:00:00.000000Z",
        "logout",
        "revoke-consent app",
        "revoke-consent mobile",
    ]
    assert plan.changes.enabled_before is True
    assert plan.changes.attributes_before == {"sanction_level": (), "sanction_until": (), "restrictions": ()}


def test_a_restriction_removes_listed_grants_only_where_held() -> None:
    live = account(groups=frozenset({"/members"}))  # not in /premium
    plan = plan_apply(sanction("restriction"), POLICY.level("restriction").actions, live, None)
    assert kinds(plan.steps)[:2] == ["remove-role premium", "join-group /restricted"]
    assert plan.changes.removed_roles == ("premium",) and plan.changes.removed_groups == ()
    assert plan.changes.added_groups == ("/restricted",) and plan.changes.enabled_before is None


def test_an_account_already_disabled_is_not_recorded_as_enabled_before() -> None:
    plan = plan_apply(sanction("ban"), POLICY.level("ban").actions, account(enabled=False), None)
    assert "disable" not in kinds(plan.steps) and plan.changes.enabled_before is None


def test_after_verification_a_manual_re_enable_is_drift_and_not_recorded_again() -> None:
    verified = sanction("suspension", state="active", verified_at=NOW, changes=Changes(enabled_before=True))
    plan = plan_apply(verified, POLICY.level("suspension").actions, account(sessions=0, consents=frozenset()), None)
    assert plan.steps[0].kind == "disable" and plan.steps[0].drift
    assert plan.changes == verified.changes


def test_a_restricted_user_may_log_in_again_after_verification() -> None:
    verified = sanction("restriction", state="active", verified_at=NOW)
    live = account(roles=frozenset({"user"}), groups=frozenset({"/members", "/restricted"}))
    actions = POLICY.level("restriction").actions
    assert plan_apply(verified, actions, live, None).steps == ()
    assert verify_apply(verified, actions, live, None) == []
    assert "2 session(s) still open" in verify_apply(sanction("restriction"), actions, live, None)


def test_verification_names_what_is_not_effective() -> None:
    actions = POLICY.level("suspension").actions
    problems = verify_apply(sanction("suspension"), actions, account(), None)
    assert problems == ["still enabled", "2 session(s) still open", "consents or offline sessions left for app, mobile"]


def test_restore_undoes_exactly_the_recorded_changes() -> None:
    recorded = Changes(
        removed_roles=("premium",), added_groups=("/restricted",), enabled_before=True,
        attributes_before=MappingProxyType({"sanction_level": (), "restrictions": ("old",)}),
    )  # fmt: skip
    live = account(enabled=False, roles=frozenset({"user"}), groups=frozenset({"/members", "/restricted"}))
    steps = plan_restore(recorded, live, None)
    assert kinds(steps) == [
        "add-role premium",
        "leave-group /restricted",
        "enable",
        "set-attributes restrictions=old, sanction_level=(none)",
    ]
    assert verify_restore(recorded, live, None) == [
        "role 'premium' not given back", "still in group /restricted", "still disabled",
        "sanction attributes not restored",
    ]  # fmt: skip


def test_restore_keeps_disabled_an_account_the_sync_marked_as_a_leavers_meanwhile() -> None:
    recorded = Changes(removed_roles=("premium",), enabled_before=True)
    left = account(enabled=False, roles=frozenset({"user"}), attributes={DISABLED_BY_SYNC_ATTRIBUTE: ("left x",)})
    assert kinds(plan_restore(recorded, left, None)) == ["add-role premium"]
    assert verify_restore(recorded, left, None) == ["role 'premium' not given back"]


def test_restore_leaves_alone_what_the_sanction_did_not_change() -> None:
    live = account(enabled=False)  # disabled by someone else before the sanction
    assert plan_restore(Changes(), live, None) == ()


def test_lifting_hands_over_what_another_open_sanction_still_needs() -> None:
    suspension = sanction("suspension", "s-1", changes=Changes(enabled_before=True, removed_roles=("premium",)))
    ban = sanction("ban", "s-2")
    handover = hand_over(suspension, [ban], POLICY)
    assert handover.restore == Changes(removed_roles=("premium",))
    assert handover.handed["s-2"].enabled_before is True
    alone = hand_over(suspension, [], POLICY)
    assert alone.restore == suspension.changes and alone.handed == {}


def test_attributes_follow_the_harshest_open_sanction() -> None:
    restriction = sanction("restriction", "s-1", until=NOW + timedelta(days=14))
    ban = sanction("ban", "s-2", until=None)
    wanted = wanted_attributes([restriction, ban], POLICY)
    assert wanted == {
        "sanction_level": ("ban",), "sanction_until": (), "restrictions": ("messaging", "posting", "uploads"),
    }  # fmt: skip
    assert wanted_attributes([sanction("warning")], POLICY) is None


@pytest.mark.parametrize(
    ("warnings", "ages_days", "expected"),
    [(2, 10, "warning"), (3, 10, "restriction"), (3, 200, "warning"), (5, 1, "restriction")],
)
def test_repeated_warnings_escalate_within_the_window(warnings: int, ages_days: int, expected: str) -> None:
    history = [sanction("warning", f"s-{i}", issued_at=NOW - timedelta(days=ages_days)) for i in range(warnings)]
    assert escalated_level(POLICY, "warning", history, NOW) == expected


def test_overturned_sanctions_do_not_count_and_rules_chain() -> None:
    overturned = [sanction("warning", f"s-{i}", state="overturned") for i in range(3)]
    assert escalated_level(POLICY, "warning", overturned, NOW) == "warning"
    policy: SanctionPolicy = POLICY.model_copy(
        update={"escalation": (*POLICY.escalation[:1], replace_rule(POLICY, count=1))}
    )
    history = [sanction("warning", f"s-{i}") for i in range(3)] + [sanction("restriction", "s-9")]
    assert escalated_level(policy, "warning", history, NOW) == "suspension"


def test_a_sanction_reduced_or_being_overturned_is_not_counted_again() -> None:
    """A restriction reduced to a warning on appeal is one offence, counted as the warning; one overturned
    whose restore is still pending counts for nothing."""
    policy: SanctionPolicy = POLICY.model_copy(update={"escalation": (replace_rule(POLICY, count=1),)})
    reduced = replace(sanction("restriction", "s-1", state="lifted"), end_note="reduced to warning (s-2): appeal")
    being_overturned = replace(sanction("restriction", "s-3"), ending="overturned")
    assert escalated_level(policy, "restriction", [reduced, being_overturned], NOW) == "restriction"
    assert (
        escalated_level(policy, "restriction", [sanction("restriction", "s-4", state="lifted")], NOW) != "restriction"
    )
    typed = replace(sanction("restriction", "s-5", state="lifted"), end_note="reduced to nothing: served early")
    assert escalated_level(policy, "restriction", [typed], NOW) != "restriction"  # a person's note is no mark


def replace_rule(policy: SanctionPolicy, *, count: int) -> object:
    return policy.escalation[1].model_copy(update={"count": count})


def test_expiry() -> None:
    assert is_expired(sanction("suspension"), NOW + timedelta(days=7))
    assert not is_expired(sanction("suspension"), NOW + timedelta(days=6))
    assert not is_expired(replace(sanction("ban"), until=None), NOW + timedelta(days=9999))


# -- client roles -------------------------------------------------------------------------------------

SHOP_BUYER = ClientRoleRef("shop", "buyer")
SHOP_SELLER = ClientRoleRef("shop", "seller")
FORUM_POSTER = ClientRoleRef("forum", "poster")
CLIENT_ROLES = {
    "remove_roles": ("premium",),
    "remove_client_roles": {"shop": ("buyer", "seller"), "forum": ("poster",)},
}
CLIENT_POLICY = POLICY.model_copy(
    update={
        "levels": (POLICY.level("warning"), LevelSpec(name="demoted", actions=ActionsSpec.model_validate(CLIENT_ROLES)))
    }
)


def with_client_roles(live: LiveAccount, direct: set[ClientRoleRef], inherited: set[ClientRoleRef]) -> LiveAccount:
    return replace(live, client_roles=frozenset(direct), effective_client_roles=frozenset(direct | inherited))


def test_listed_direct_client_roles_are_removed_and_recorded_exactly() -> None:
    actions = CLIENT_POLICY.level("demoted").actions
    # seller comes from a group: not a direct mapping, so not removed (and not recorded); the other client's
    # unlisted role stays.
    live = with_client_roles(account(), {SHOP_BUYER, ClientRoleRef("shop", "viewer")}, {SHOP_SELLER})
    plan = plan_apply(sanction("demoted"), actions, live, None)
    assert kinds(plan.steps) == ["remove-role premium", "remove-client-role shop:buyer"]
    assert plan.changes.removed_client_roles == (SHOP_BUYER,) and plan.changes.removed_roles == ("premium",)
    after = with_client_roles(account(roles=frozenset({"user"})), set(), {SHOP_SELLER})
    assert verify_apply(sanction("demoted"), actions, after, None) == ["still has client role 'shop:seller'"]


def test_a_manual_client_role_re_grant_is_drift_and_not_recorded_again() -> None:
    recorded = Changes(removed_roles=("premium",), removed_client_roles=(SHOP_BUYER,))
    verified = sanction("demoted", state="active", verified_at=NOW, changes=recorded)
    live = with_client_roles(account(roles=frozenset({"user"})), {SHOP_BUYER, FORUM_POSTER}, set())
    plan = plan_apply(verified, CLIENT_POLICY.level("demoted").actions, live, None)
    assert [(step.describe(), step.drift) for step in plan.steps] == [
        ("remove-client-role shop:buyer", True),
        ("remove-client-role forum:poster", True),
    ]
    assert plan.changes == recorded  # a lift gives back buyer only, never poster (not held at issue)


def test_restore_gives_back_exactly_the_recorded_client_roles() -> None:
    recorded = Changes(removed_client_roles=(SHOP_BUYER,))
    live = with_client_roles(account(), {SHOP_SELLER}, set())
    assert kinds(plan_restore(recorded, live, None)) == ["add-client-role shop:buyer"]
    assert verify_restore(recorded, live, None) == ["client role 'shop:buyer' not given back"]
    restored = with_client_roles(account(), {SHOP_SELLER, SHOP_BUYER}, set())
    assert plan_restore(recorded, restored, None) == () and verify_restore(recorded, restored, None) == []


def test_lifting_hands_client_roles_to_a_sanction_still_removing_them() -> None:
    ending = sanction("demoted", "s-1", changes=Changes(removed_client_roles=(SHOP_BUYER, FORUM_POSTER)))
    still = sanction("demoted", "s-2")
    handover = hand_over(ending, [still], CLIENT_POLICY)
    assert handover.restore.is_empty
    assert handover.handed["s-2"].removed_client_roles == (SHOP_BUYER, FORUM_POSTER)
    assert hand_over(ending, [sanction("warning", "s-3")], CLIENT_POLICY).restore == ending.changes


def test_stored_changes_read_back_and_old_records_without_client_roles_still_read() -> None:
    changes = Changes(removed_roles=("premium",), removed_client_roles=(SHOP_BUYER,))
    assert Changes.from_json(json.loads(json.dumps(changes.to_json()))) == changes
    old = {"removed_roles": ["premium"], "removed_groups": [], "added_groups": [], "required_actions_added": [],
           "enabled_before": None, "attributes_before": None}  # fmt: skip
    assert Changes.from_json(old) == Changes(removed_roles=("premium",))
    assert Changes.from_json(old).to_json() == old  # unchanged on re-save
