"""The controls matrix: each rule family evaluated from configured values and live values (no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from agent.realm.password_policy import PasswordPolicySpec
from agent.realm.spec import RealmSpec
from agent.review.reports.controls import (
    RULE_FAMILIES,
    ConfiguredControls,
    ControlResult,
    LiveControls,
    PolicyFacts,
    count_statuses,
    evaluate_controls,
    stores_login_events,
)
from agent.review.reports.render_controls import controls_html, controls_json, controls_markdown

REALM = "acme"
TAKEN_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def configured(policies: PolicyFacts | None = None, **spec: Any) -> ConfiguredControls:
    return ConfiguredControls(REALM, RealmSpec(realm=REALM, **spec), "realm-config/acme", policies or PolicyFacts())


def live(**fields: Any) -> LiveControls:
    settings = fields.pop("settings", {})
    return LiveControls(REALM, settings=MappingProxyType(settings), **fields)


def rows(results: list[ControlResult], family: str) -> list[ControlResult]:
    return [result for result in results if result.family == family]


def by_control(results: list[ControlResult], control: str) -> ControlResult:
    found = [result for result in results if result.control == control]
    assert len(found) == 1, [result.control for result in results]
    return found[0]


def test_every_rule_family_has_a_row_in_the_design_order() -> None:
    results = evaluate_controls(ConfiguredControls(REALM, None, "not in realm-config/"), live())
    families = list(dict.fromkeys(result.family for result in results))
    assert families == [family.key for family in RULE_FAMILIES]
    unconfigured = [result for result in results if result.status == "not-configured"]
    # Without any config only the baselines (verified email, LOGIN events) are evaluated.
    assert {result.family for result in unconfigured} == {f.key for f in RULE_FAMILIES} - {"registration", "audits"}


def test_the_evidence_line_names_the_requirement_the_realm_the_live_value_and_the_verdict() -> None:
    config = configured(password_policy=PasswordPolicySpec(min_length=12))
    results = evaluate_controls(config, live(settings={"passwordPolicy": "length(14) and digits(1)"}))
    row = by_control(results, "password minimum length >= 12")
    assert row.evidence == "password minimum length >= 12: realm acme, passwordPolicy length(14): pass"


@pytest.mark.parametrize(
    ("live_policy", "status"),
    [
        ("length(14)", "pass"),
        ("length(12)", "pass"),
        ("length(11)", "fail"),
        ("digits(2)", "fail"),  # no length term at all
        ("", "fail"),
    ],
)
def test_minimum_length_passes_only_when_the_live_policy_is_at_least_as_long(live_policy: str, status: str) -> None:
    config = configured(password_policy=PasswordPolicySpec(min_length=12))
    results = evaluate_controls(config, live(settings={"passwordPolicy": live_policy}))
    assert by_control(results, "password minimum length >= 12").status == status


@pytest.mark.parametrize(
    ("live_policy", "status"),
    [("forceExpiredPasswordChange(60)", "pass"), ("forceExpiredPasswordChange(90)", "pass"),
     ("forceExpiredPasswordChange(120)", "fail"), ("length(8)", "fail")],
)  # fmt: skip
def test_rotation_passes_when_passwords_expire_at_least_as_often(live_policy: str, status: str) -> None:
    config = configured(password_policy=PasswordPolicySpec(expire_days=90))
    results = evaluate_controls(config, live(settings={"passwordPolicy": live_policy}))
    assert by_control(results, "password changed at least every 90 days").status == status


def test_flags_history_and_classes_are_each_checked() -> None:
    spec = PasswordPolicySpec(history=5, digits=1, not_username=True)
    results = evaluate_controls(
        configured(password_policy=spec), live(settings={"passwordPolicy": "passwordHistory(3)"})
    )
    assert by_control(results, "previous passwords refused >= 5").status == "fail"
    assert by_control(results, "digits >= 1").status == "fail"
    assert by_control(results, "password differs from username").status == "fail"
    good = "digits(1) and notUsername(undefined) and passwordHistory(5)"
    results = evaluate_controls(configured(password_policy=spec), live(settings={"passwordPolicy": good}))
    assert {row.status for row in rows(results, "passwords")} == {"pass"}


def test_an_unreadable_live_policy_fails_with_the_reason() -> None:
    results = evaluate_controls(
        configured(password_policy=PasswordPolicySpec(min_length=8)), live(settings={"passwordPolicy": "length(x)"})
    )
    (row,) = rows(results, "passwords")
    assert row.status == "fail"
    assert "whole number" in row.live


@pytest.mark.parametrize(
    ("settings", "statuses"),
    [
        ({"bruteForceProtected": True, "failureFactor": 5, "permanentLockout": True, "maxTemporaryLockouts": 3},
         ["pass", "pass", "pass"]),
        ({"bruteForceProtected": True, "failureFactor": 10, "permanentLockout": False}, ["pass", "fail", "fail"]),
        ({"bruteForceProtected": False, "failureFactor": 5, "permanentLockout": True, "maxTemporaryLockouts": 3},
         ["fail", "fail", "fail"]),
    ],
)  # fmt: skip
def test_lockout_requires_protection_few_failures_and_permanent_lockout(
    settings: dict[str, Any], statuses: list[str]
) -> None:
    config = configured(lockout={"max_failures": 5, "permanent_after": 3})
    results = rows(evaluate_controls(config, live(settings=settings)), "passwords")
    assert [row.status for row in results] == statuses


def test_mfa_for_roles_and_groups_reads_the_bound_flow_and_the_group_grant() -> None:
    config = configured(mfa={"otp_for_roles": ["admin"], "otp_for_groups": ["/finance"]})
    role = "idp-agent-mfa-required"
    good = live(
        browser_flow="idp-agent browser 1", otp_roles=frozenset({"admin", role}),
        group_roles=MappingProxyType({"/finance": frozenset({role})}),
    )  # fmt: skip
    results = rows(evaluate_controls(config, good), "mfa")
    assert [(row.control, row.status) for row in results] == [
        ("OTP required for role admin", "pass"),
        ("OTP required for group /finance", "pass"),
    ]
    unbound = live(browser_flow="browser", group_roles=MappingProxyType({"/finance": frozenset({role})}))
    assert {row.status for row in rows(evaluate_controls(config, unbound), "mfa")} == {"fail"}
    assert "browser flow 'browser' asks OTP of no role" in rows(evaluate_controls(config, unbound), "mfa")[0].live


def test_terms_need_the_action_enabled_and_the_version_recorded() -> None:
    config = configured(terms={"version": 3})
    settings = {"attributes": {"idp-agent.terms.version": "3"}}
    ok = live(settings=settings, required_actions=MappingProxyType({"TERMS_AND_CONDITIONS": True}))
    assert {row.status for row in rows(evaluate_controls(config, ok), "terms")} == {"pass"}
    stale = live(settings={"attributes": {"idp-agent.terms.version": "2"}})
    statuses = [(row.live, row.status) for row in rows(evaluate_controls(config, stale), "terms")]
    assert statuses == [("TERMS_AND_CONDITIONS not registered", "fail"), ("recorded version 2", "fail")]


def test_registration_fields_and_the_verified_email_baseline() -> None:
    config = configured(registration={"allowed": True, "verify_email": True})
    results = rows(
        evaluate_controls(config, live(settings={"registrationAllowed": True, "verifyEmail": False})), "registration"
    )
    assert [(row.control, row.status) for row in results] == [
        ("self-registration allowed = true", "pass"),
        ("email verified before first use = true", "fail"),
        ("self-registered accounts verify their email", "fail"),
    ]


def test_levels_report_missing_roles_and_group_grants() -> None:
    config = configured(
        roles=[{"name": "employee"}, {"name": "admin"}], groups=[{"path": "/it", "realm_roles": ["admin"]}]
    )
    results = rows(evaluate_controls(config, live(realm_roles=frozenset({"employee"}))), "levels")
    assert [(row.live, row.status) for row in results] == [("missing admin", "fail"), ("group /it missing", "fail")]
    present = live(
        realm_roles=frozenset({"employee", "admin"}), group_roles=MappingProxyType({"/it": frozenset({"admin"})})
    )
    assert {row.status for row in rows(evaluate_controls(config, present), "levels")} == {"pass"}


@pytest.mark.parametrize(
    ("settings", "stored"),
    [
        ({"eventsEnabled": True, "enabledEventTypes": ["LOGIN", "LOGOUT"]}, True),
        ({"eventsEnabled": True, "enabledEventTypes": []}, True),  # empty: Keycloak stores every type
        ({"eventsEnabled": True, "enabledEventTypes": ["LOGOUT"]}, False),
        ({"eventsEnabled": False, "enabledEventTypes": ["LOGIN"]}, False),
        ({}, False),
    ],
)
def test_login_events_are_stored_only_when_events_are_on_and_login_is_kept(
    settings: dict[str, Any], stored: bool
) -> None:
    assert stores_login_events(settings) is stored


def test_agent_side_families_are_manual_and_the_journal_is_pass_or_fail() -> None:
    facts = PolicyFacts(
        sanction_levels=("warning", "ban"), appeal_deadlines="acknowledge within 2d, decide within 15d",
        retention=("sync workforce: standard (keep 90d, then delete)",), training_attribute="training_date",
        journal="journal broken at entry 4: entry 4 was changed after it was written", journal_ok=False,
    )  # fmt: skip
    results = evaluate_controls(configured(policies=facts), live(profile_attributes=frozenset({"training_date"})))
    assert rows(results, "sanctions")[0].status == "manual"
    assert rows(results, "appeals")[0].status == "manual"
    assert by_control(results, "tamper-evident journal intact").status == "fail"
    assert rows(results, "training")[0].status == "pass"
    dropped = evaluate_controls(configured(policies=facts), live())
    assert rows(dropped, "training")[0].status == "fail"  # Keycloak drops attributes outside the profile


def test_a_missing_realm_fails_every_family() -> None:
    results = evaluate_controls(configured(), LiveControls(REALM, exists=False))
    assert len(results) == len(RULE_FAMILIES)
    assert count_statuses(results)["fail"] == len(RULE_FAMILIES)


def test_renderers_escape_values_and_carry_every_row() -> None:
    hostile = ControlResult("levels", "<script>alert(1)</script>", REALM, "a|b", "x & y", "fail")
    results = [hostile, ControlResult("passwords", "password minimum length >= 12", REALM, "c", "length(14)", "pass")]
    page = controls_html(results, TAKEN_AT)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    markdown = controls_markdown(results, TAKEN_AT)
    assert "a\\|b" in markdown
    assert "- password minimum length >= 12: realm acme, length(14): pass" in markdown
    document = json.loads(controls_json(results, TAKEN_AT))
    assert document["summary"] == {"fail": 1, "pass": 1, "manual": 0, "not-configured": 0}
    assert [row["status"] for row in document["controls"]] == ["fail", "pass"]
