"""The MFA flow compiler and its comparisons: parsing Keycloak's flattened rows, compiling, hashing, planning."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import Rejected
from agent.keycloak import Role
from agent.keycloak.models import FlowExecution
from agent.realm.kinds.flows import (
    LiveFlows,
    Step,
    Structure,
    choose_alias,
    compile_mfa_flow,
    config_of,
    diff_outline,
    execution_tree,
    mfa_roles,
    outline,
    owned_aliases,
    parse_structure,
    plan_flows,
    roles_in,
    structure_digest,
)
from agent.realm.kinds.mfa_groups import GROUP_ROLE_ATTRIBUTE, LiveMfaGroups, plan_mfa_groups
from agent.realm.references import check_references
from agent.realm.spec import MfaSpec, RealmSpec

_ids = iter(range(10_000))


def row(
    level: int, requirement: str, *, provider: str = "", flow: str = "", config: str | None = None
) -> FlowExecution:
    raw: dict[str, Any] = {"id": f"e{next(_ids)}", "level": level, "requirement": requirement, "priority": 10}
    if flow:
        raw.update(authenticationFlow=True, flowId=f"f{next(_ids)}", displayName=flow)
    else:
        raw.update(providerId=provider, displayName=provider)
    if config:
        raw["authenticationConfig"] = config
    return FlowExecution.from_json(raw)


def browser_rows(prefix: str = "") -> list[FlowExecution]:
    """Keycloak 26.7's built-in browser flow as `flows/{alias}/executions` lists it (a copy: with `prefix`)."""
    return [
        row(0, "ALTERNATIVE", provider="auth-cookie"),
        row(0, "DISABLED", provider="auth-spnego"),
        row(0, "ALTERNATIVE", provider="identity-provider-redirector"),
        row(0, "ALTERNATIVE", flow=f"{prefix}Organization"),
        row(1, "CONDITIONAL", flow=f"{prefix}Browser - Conditional Organization"),
        row(2, "REQUIRED", provider="conditional-user-configured"),
        row(2, "ALTERNATIVE", provider="organization"),
        row(0, "ALTERNATIVE", flow=f"{prefix}forms"),
        row(1, "REQUIRED", provider="auth-username-password-form"),
        row(1, "CONDITIONAL", flow=f"{prefix}Browser - Conditional 2FA"),
        row(2, "REQUIRED", provider="conditional-user-configured"),
        row(2, "REQUIRED", provider="conditional-credential", config="c1"),
        row(2, "ALTERNATIVE", provider="auth-otp-form"),
        row(2, "DISABLED", provider="webauthn-authenticator"),
        row(2, "DISABLED", provider="auth-recovery-authn-code-form"),
    ]


CONFIGS = {"c1": {"credentials": "webauthn-passwordless"}}
TWO_FA = Step(
    "CONDITIONAL",
    name="Browser - Conditional 2FA",
    steps=(
        Step("REQUIRED", "conditional-user-configured"),
        Step("REQUIRED", "conditional-credential", config=(("credentials", "webauthn-passwordless"),)),
        Step("ALTERNATIVE", "auth-otp-form"),
        Step("DISABLED", "webauthn-authenticator"),
        Step("DISABLED", "auth-recovery-authn-code-form"),
    ),
)
FORMS = Step("ALTERNATIVE", name="forms", steps=(Step("REQUIRED", "auth-username-password-form"), TWO_FA))
BROWSER: Structure = (
    Step("ALTERNATIVE", "auth-cookie"),
    Step("DISABLED", "auth-spnego"),
    Step("ALTERNATIVE", "identity-provider-redirector"),
    Step(
        "ALTERNATIVE",
        name="Organization",
        steps=(
            Step(
                "CONDITIONAL",
                name="Browser - Conditional Organization",
                steps=(Step("REQUIRED", "conditional-user-configured"), Step("ALTERNATIVE", "organization")),
            ),
        ),
    ),
    FORMS,
)


def role_condition(role: str) -> Step:
    return Step("REQUIRED", "conditional-user-role", config=config_of({"condUserRole": role, "negate": "false"}))


def not_executed(name: str) -> Step:
    config = config_of({"flow_to_check": name, "check_result": "not-executed"})
    return Step("REQUIRED", "conditional-sub-flow-executed", config=config)


OTP = Step("REQUIRED", "auth-otp-form")


@pytest.mark.parametrize(("alias", "prefix"), [("browser", ""), ("idp-agent browser 1a2b", "idp-agent browser 1a2b ")])
def test_parse_structure_gives_copies_and_originals_the_same_steps(alias: str, prefix: str) -> None:
    assert parse_structure(browser_rows(prefix), CONFIGS, alias) == BROWSER


def test_parse_structure_keeps_flow_references_relative() -> None:
    rows = [
        row(0, "CONDITIONAL", flow="x y MFA a"),
        row(1, "REQUIRED", provider="conditional-sub-flow-executed", config="c"),
    ]
    configs = {"c": {"flow_to_check": "x y forms", "check_result": "not-executed"}}

    (flow,) = parse_structure(rows, configs, "x y")

    assert flow.name == "MFA a"
    assert dict(flow.steps[0].config) == {"flow_to_check": "forms", "check_result": "not-executed"}


@pytest.mark.parametrize(
    "levels",
    [
        [1],  # a child before any parent
        [0, 2],  # a grandchild under an authenticator
    ],
)
def test_rows_that_are_no_tree_are_refused(levels: list[int]) -> None:
    rows = [row(level, "REQUIRED", provider="auth-cookie") for level in levels]

    with pytest.raises(ValueError, match="not a tree"):
        execution_tree(rows)


@pytest.mark.parametrize(
    ("roles", "expected_forms_tail"),
    [
        ((), ()),
        (
            ("admin",),
            (Step("CONDITIONAL", name="MFA admin", steps=(role_condition("admin"), not_executed(TWO_FA.name), OTP)),),
        ),
        (
            ("admin", "auditor"),
            (
                Step("CONDITIONAL", name="MFA admin", steps=(role_condition("admin"), not_executed(TWO_FA.name), OTP)),
                Step(
                    "CONDITIONAL",
                    name="MFA auditor",
                    steps=(role_condition("auditor"), not_executed(TWO_FA.name), not_executed("MFA admin"), OTP),
                ),
            ),
        ),
    ],
)
def test_compile_appends_one_otp_subflow_per_role_to_forms(
    roles: tuple[str, ...], expected_forms_tail: Structure
) -> None:
    compiled = compile_mfa_flow(BROWSER, roles)

    assert compiled[:4] == BROWSER[:4]
    assert compiled[4].steps == (*FORMS.steps, *expected_forms_tail)
    assert compiled[4].requirement == "ALTERNATIVE"


def test_compile_without_a_2fa_subflow_checks_only_earlier_roles() -> None:
    base = (Step("ALTERNATIVE", name="forms", steps=(Step("REQUIRED", "auth-username-password-form"),)),)

    compiled = compile_mfa_flow(base, ("a", "b"))

    assert compiled[0].steps[1].steps == (role_condition("a"), OTP)
    assert compiled[0].steps[2].steps == (role_condition("b"), not_executed("MFA a"), OTP)


def test_compile_refuses_a_browser_flow_without_a_password_form() -> None:
    with pytest.raises(Rejected, match="no sub-flow with auth-username-password-form"):
        compile_mfa_flow((Step("ALTERNATIVE", "auth-cookie"),), ("admin",))


@pytest.mark.parametrize(
    ("mfa", "expected"),
    [
        ({"otp_for_roles": ["b", "a"]}, ("a", "b")),
        ({"otp_for_roles": ["a"], "otp_for_groups": ["/ops"]}, ("a", "idp-agent-mfa-required")),
        ({"otp_for_groups": ["/ops"], "group_role": "mfa-groups"}, ("mfa-groups",)),
        ({}, ()),
    ],
)
def test_mfa_roles_are_sorted_and_include_the_group_role_only_for_groups(
    mfa: dict[str, Any], expected: tuple[str, ...]
) -> None:
    assert mfa_roles(MfaSpec.model_validate(mfa)) == expected


def with_last_otp(structure: Structure, requirement: str) -> Structure:
    """`structure` with the OTP form of the last sub-flow of forms (index 4) set to `requirement`."""
    forms = structure[4]
    last = forms.steps[-1]
    edited = Step(last.requirement, name=last.name, steps=(*last.steps[:-1], Step(requirement, "auth-otp-form")))
    return (*structure[:4], Step(forms.requirement, name=forms.name, steps=(*forms.steps[:-1], edited)))


def test_digest_is_stable_and_follows_every_step() -> None:
    compiled = compile_mfa_flow(BROWSER, ("admin",))
    disabled_otp = with_last_otp(compiled, "DISABLED")

    assert structure_digest(compiled) == structure_digest(compile_mfa_flow(BROWSER, ("admin",)))
    assert len(structure_digest(compiled)) == 8
    assert structure_digest(compiled) != structure_digest(disabled_otp)
    assert structure_digest(compiled) != structure_digest(compile_mfa_flow(BROWSER, ("auditor",)))


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ((), "mfa 1a2b3c4d"),
        (("browser", "mfa 0000"), "mfa 1a2b3c4d"),
        (("mfa 1a2b3c4d",), "mfa 1a2b3c4d-2"),
        (("mfa 1a2b3c4d", "mfa 1a2b3c4d-2"), "mfa 1a2b3c4d-3"),
    ],
)
def test_choose_alias_skips_taken_names(taken: tuple[str, ...], expected: str) -> None:
    assert choose_alias("mfa", "1a2b3c4d", taken) == expected


def test_outline_names_each_step_with_its_path() -> None:
    lines = outline(compile_mfa_flow(BROWSER, ("admin",)))

    assert lines[0] == "auth-cookie ALTERNATIVE"
    assert "forms > MFA admin CONDITIONAL" in lines
    assert "forms > MFA admin > conditional-user-role REQUIRED (condUserRole=admin, negate=false)" in lines
    assert lines[-1] == "forms > MFA admin > auth-otp-form REQUIRED"


@pytest.mark.parametrize(
    ("live", "desired", "expected"),
    [
        (BROWSER, BROWSER, ([], [])),
        ((), (Step("REQUIRED", "a"),), ([], ["a REQUIRED"])),
        ((Step("REQUIRED", "a"), Step("REQUIRED", "a")), (Step("REQUIRED", "a"),), (["a REQUIRED"], [])),
        ((Step("DISABLED", "a"),), (Step("REQUIRED", "a"),), (["a DISABLED"], ["a REQUIRED"])),
    ],
)
def test_diff_outline_lists_only_differing_lines(
    live: Structure, desired: Structure, expected: tuple[list[str], list[str]]
) -> None:
    assert diff_outline(live, desired) == expected


def test_roles_in_finds_role_conditions_at_any_depth() -> None:
    assert roles_in(compile_mfa_flow(BROWSER, ("b", "a"))) == ["a", "b"]
    assert roles_in(BROWSER) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, ()), ("", ()), ('["a", "b"]', ("a", "b")), ("not json", ()), ('{"a": 1}', ())],
)
def test_owned_aliases_read_back_from_the_realm_attribute(raw: str | None, expected: tuple[str, ...]) -> None:
    attributes = {} if raw is None else {"idp-agent.flows": raw}
    assert owned_aliases(attributes) == expected


# -- plan_flows -------------------------------------------------------------------------------------------

ADMIN = compile_mfa_flow(BROWSER, ("admin",))
BOTH = compile_mfa_flow(BROWSER, ("admin", "auditor"))


def spec(mfa: dict[str, Any] | None, **extra: Any) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "r", **({"mfa": mfa} if mfa is not None else {}), **extra})


def live_flows(bound: str, owned: dict[str, Structure], *, ghosts: tuple[str, ...] = (), **extra: Any) -> LiveFlows:
    flows = {"browser": "id-browser", **{alias: f"id-{alias}" for alias in owned}}
    structures = {"browser": BROWSER, **owned}
    return LiveFlows(bound, flows, (*owned, *ghosts), structures, **extra)


def summary(changes: list[Any]) -> list[tuple[str, str]]:
    return [(change.action, change.key) for change in changes]


def test_first_mfa_builds_a_copy_named_by_its_digest_and_binds_it() -> None:
    changes = plan_flows(spec({"otp_for_roles": ["admin"]}), live_flows("browser", {}))

    alias = f"idp-agent browser {structure_digest(ADMIN)}"
    assert summary(changes) == [("create", alias)]
    fields = {field.field: (field.live, field.desired) for field in changes[0].fields}
    assert fields == {"otp for roles": ([], ["admin"]), "browserFlow": ("browser", alias)}
    assert changes[0].desired.steps == ADMIN


def test_unchanged_structure_plans_nothing() -> None:
    assert plan_flows(spec({"otp_for_roles": ["admin"]}), live_flows("ours", {"ours": ADMIN})) == []


def test_changed_roles_build_a_new_flow_then_delete_the_old_one() -> None:
    changes = plan_flows(spec({"otp_for_roles": ["admin", "auditor"]}), live_flows("ours", {"ours": ADMIN}))

    new_alias = f"idp-agent browser {structure_digest(BOTH)}"
    assert summary(changes) == [("create", new_alias), ("delete", "ours")]
    assert changes[0].fields[0].live == ["admin"] and changes[0].fields[0].desired == ["admin", "auditor"]


def test_hand_edited_bound_flow_is_rebuilt_under_a_free_alias_and_the_edit_is_shown() -> None:
    edited = with_last_otp(ADMIN, "DISABLED")
    alias = f"idp-agent browser {structure_digest(ADMIN)}"

    changes = plan_flows(spec({"otp_for_roles": ["admin"]}), live_flows(alias, {alias: edited}))

    assert summary(changes) == [("create", f"{alias}-2"), ("delete", alias)]
    other = next(field for field in changes[0].fields if field.field == "other steps")
    assert other.live == ["forms > MFA admin > auth-otp-form DISABLED"]
    assert other.desired == ["forms > MFA admin > auth-otp-form REQUIRED"]


def test_rebinding_by_hand_is_drift_fixed_by_rebinding_the_owned_flow() -> None:
    changes = plan_flows(spec({"otp_for_roles": ["admin"]}), live_flows("browser", {"ours": ADMIN}))

    assert summary(changes) == [("update", "browserFlow")]
    assert (changes[0].fields[0].live, changes[0].fields[0].desired) == ("browser", "ours")


def test_removing_mfa_rebinds_browser_then_deletes_the_owned_flow() -> None:
    changes = plan_flows(spec(None), live_flows("ours", {"ours": ADMIN}))

    assert summary(changes) == [("update", "browserFlow"), ("delete", "ours")]
    assert changes[0].desired.alias == "browser"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("owned", [("update", "browserFlow"), ("delete", "ours")]), ("no-delete", [("update", "browserFlow")])],
)
def test_no_delete_keeps_old_owned_flows(mode: str, expected: list[tuple[str, str]]) -> None:
    changes = plan_flows(spec(None, managed={"flows": mode}), live_flows("ours", {"ours": ADMIN}))

    assert summary(changes) == expected


def test_flows_bound_elsewhere_are_never_deleted() -> None:
    live = live_flows("browser", {"ours": ADMIN}, bound_elsewhere=frozenset({"ours"}))

    assert plan_flows(spec(None), live) == []


def test_unowned_flows_are_left_alone_without_mfa() -> None:
    live = LiveFlows("custom", {"browser": "1", "custom": "2"}, (), {"browser": BROWSER, "custom": BROWSER})

    assert plan_flows(spec(None), live) == []


def test_a_recorded_flow_that_no_longer_exists_is_dropped_from_the_record() -> None:
    changes = plan_flows(spec({"otp_for_roles": ["admin"]}), live_flows("ours", {"ours": ADMIN}, ghosts=("gone",)))

    assert summary(changes) == [("update", "ownership")]
    assert changes[0].desired.aliases == ("ours",)


def test_a_realm_created_by_this_run_builds_with_the_alias_chosen_at_apply() -> None:
    changes = plan_flows(spec({"otp_for_roles": ["admin"]}), LiveFlows(None, {}, (), {}))

    assert summary(changes) == [("create", "idp-agent browser")]
    assert changes[0].desired.alias is None and changes[0].desired.roles == ("admin",)


# -- plan_mfa_groups --------------------------------------------------------------------------------------

OURS = Role("r1", "idp-agent-mfa-required", attributes={GROUP_ROLE_ATTRIBUTE: ("true",)})
THEIRS = Role("r2", "idp-agent-mfa-required")


@pytest.mark.parametrize(
    ("mfa", "roles", "groups_of", "expected"),
    [
        ({"otp_for_groups": ["/a"]}, [], {}, [("create", OURS.name, ["/a"], [])]),
        ({"otp_for_groups": ["/a"]}, [OURS], {OURS.name: {"/a"}}, []),
        ({"otp_for_groups": ["/b"]}, [OURS], {OURS.name: {"/a"}}, [("update", OURS.name, ["/b"], ["/a"])]),
        ({"otp_for_roles": ["x"]}, [OURS], {OURS.name: {"/a"}}, [("delete", OURS.name, None, None)]),
        (None, [OURS], {}, [("delete", OURS.name, None, None)]),
        (None, [Role("r3", "plain")], {}, []),
        # A role of that name the agent did not create is never taken over: planned, refused at apply.
        ({"otp_for_groups": ["/a"]}, [THEIRS], {}, [("update", THEIRS.name, None, None)]),
    ],
)
def test_plan_mfa_groups(
    mfa: dict[str, Any] | None, roles: list[Role], groups_of: dict[str, set[str]], expected: list[tuple[Any, ...]]
) -> None:
    live = LiveMfaGroups({r.name: r for r in roles}, {name: frozenset(paths) for name, paths in groups_of.items()})

    changes = plan_mfa_groups(spec(mfa), live)

    got = [
        (c.action, c.key, sorted(c.desired.add), sorted(c.desired.remove))
        if c.desired
        else (c.action, c.key, None, None)
        for c in changes
    ]
    assert got == expected


# -- cross-references ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"mfa": {"otp_for_groups": ["/ops"]}, "groups": [{"path": "/ops"}]}, []),
        # Group grants leave the MFA marker role alone, so an MFA group may grant roles of its own.
        ({"mfa": {"otp_for_groups": ["/ops"]}, "groups": [{"path": "/ops", "realm_roles": []}]}, []),
        (
            {"mfa": {"otp_for_groups": ["/ops"]}, "roles": [{"name": "idp-agent-mfa-required"}]},
            [(("mfa", "group_role"), "is created by the agent")],
        ),
        (
            {"mfa": {"otp_for_groups": ["/ops"]}, "roles": [], "managed": {"realm_roles": "full"}},
            [(("mfa", "otp_for_groups"), "would be deleted on every run")],
        ),
        ({"terms": {"version": 1}, "required_actions": [{"alias": "TERMS_AND_CONDITIONS", "priority": 3}]}, []),
        (
            {"terms": {"version": 1}, "required_actions": [{"alias": "TERMS_AND_CONDITIONS", "enabled": False}]},
            [(("required_actions", 0, "enabled"), "TERMS_AND_CONDITIONS enabled is false here")],
        ),
    ],
)
def test_references_of_mfa_groups_and_terms(extra: dict[str, Any], expected: list[tuple[Any, str]]) -> None:
    problems = check_references(RealmSpec.model_validate({"realm": "r", **extra}))

    assert [path for path, _, _ in problems] == [path for path, _ in expected]
    assert all(fragment in message for (_, message, _), (_, fragment) in zip(problems, expected, strict=True))
