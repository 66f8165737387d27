"""review.yaml and sod.yaml: defaults, the shipped files, owners, and positioned errors from both files at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.review.model import RoleRef
from agent.review.policy import ReviewPolicy, load_review_policy, load_sod_policy, sod_errors

REPO = Path(__file__).resolve().parents[2]


def test_shipped_policies_load() -> None:
    policy = load_review_policy(REPO / "policies" / "review.yaml", {})
    assert policy.dormant.after == 90 * 86_400
    assert policy.privileged.role_refs() == {RoleRef("admin")}
    assert policy.training is not None and policy.training.attribute == "training_date"
    assert policy.sod.rules == ()


def test_missing_files_mean_defaults(tmp_path: Path) -> None:
    policy = load_review_policy(tmp_path / "review.yaml", {})
    assert policy == ReviewPolicy()
    assert policy.training is None


def test_owners_fall_back_to_the_nearest_configured_parent_group() -> None:
    policy = ReviewPolicy.model_validate(
        {"owners": {"roles": {"billing/approve": "carol"}, "groups": {"/finance": "bob"}}, "fallback_reviewer": "sec"}
    )
    assert policy.owner_of("group", "/finance/approvers/eu") == "bob"
    assert policy.owner_of("group", "/it") is None
    assert policy.owner_of("role", "billing/approve") == "carol"
    assert policy.fallback_reviewer == "sec"


def test_errors_of_both_files_are_reported_together_with_positions(tmp_path: Path) -> None:
    (tmp_path / "review.yaml").write_text("dormant:\n  after: soon\nprivileged:\n  groups: [admins]\n")
    (tmp_path / "sod.yaml").write_text(
        "rules:\n  - name: r1\n    realm_roles: [a]\n  - name: r2\n    realm_roles: [a, b]\n    colour: red\n"
    )
    with pytest.raises(ConfigErrors) as raised:
        load_review_policy(tmp_path / "review.yaml", {})
    lines = [f"{Path(d.file).name}:{d.line}:{d.col}" for d in raised.value.diagnostics]
    text = str(raised.value)
    assert "review.yaml:2:10" in lines  # 'soon' is not a duration
    assert "review.yaml:4:12" in lines  # a group path starts with '/'
    assert any(line.startswith("sod.yaml:2:") for line in lines)  # r1 lists one role: nothing can conflict
    assert "sod.yaml:6:5" in lines  # unknown key
    assert "needs more than max_held" in text


def test_duplicate_sod_rule_names(tmp_path: Path) -> None:
    path = tmp_path / "sod.yaml"
    path.write_text("rules:\n  - {name: r, realm_roles: [a, b]}\n  - {name: r, groups: [/x, /y]}\n")
    with pytest.raises(ConfigErrors, match="rule names must be unique: r"):
        load_sod_policy(path, {})


def test_sod_rules_naming_missing_roles_or_groups(tmp_path: Path) -> None:
    path = tmp_path / "sod.yaml"
    path.write_text(
        "rules:\n  - name: r\n    realm_roles: [pay]\n    client_roles: {billing: [approve]}\n    groups: [/x]\n"
    )
    policy = load_sod_policy(path, {})
    assert sod_errors(policy, frozenset({RoleRef("pay")}), frozenset()) == [
        "SoD rule 'r' names what the realm lacks: billing/approve, /x"
    ]
    assert sod_errors(policy, frozenset({RoleRef("pay"), RoleRef("approve", "billing")}), frozenset({"/x"})) == []
