"""The sanction policy loader: the shipped ladder loads, and mistakes come back as file:line:col."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.sanctions.policy import load_sanction_policy

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """\
levels:
  - name: warning
    duration: 30d
  - name: ban
    actions: {disable: true}
reasons:
  - code: spam
appeals: {acknowledge_within: 2d, decide_within: 15d}
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "sanctions.yaml"
    path.write_text(text)
    return load_sanction_policy(path, {})


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, text)
    return [diagnostic.format() for diagnostic in caught.value.diagnostics]


def test_the_shipped_ladder_loads_with_its_defaults() -> None:
    policy = load_sanction_policy(REPO / "policies" / "sanctions.yaml", {})
    assert [level.name for level in policy.levels] == ["warning", "restriction", "suspension", "ban"]
    assert policy.appeals.acknowledge_within == timedelta(days=2)
    assert policy.appeals.decide_within == timedelta(days=15)
    assert policy.level("ban").default_duration is None
    assert policy.level("suspension").default_duration == timedelta(days=30)
    assert not policy.level("warning").actions.holds_access
    assert policy.level("restriction").actions.add_groups == ("/restricted",)
    assert {"spam", "harassment", "fraud", "policy-breach", "security"} <= {r.code for r in policy.reasons}
    assert policy.escalation[0].raise_to == "restriction"
    assert policy.is_break_glass("BreakGlass-Admin")
    assert policy.rank("ban") > policy.rank("warning")


def test_a_minimal_policy_loads(tmp_path: Path) -> None:
    policy = load(tmp_path, MINIMAL)
    assert policy.level("ban").actions.disable  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    duration: 30d", "    duratoin: 30d"), ":3:5: unknown field 'duratoin'"),
        (("    duration: 30d", "    duration: soon"), ":3:15: levels[0].duration: 'soon' is not a duration"),
        (("    actions: {disable: true}", "    actions: {add_groups: [jail]}"), "'jail' is not a group path"),
        (("  - name: ban", "  - name: warning"), ":4:11: level 'warning' is defined twice"),
        (("appeals: {acknowledge_within: 2d, decide_within: 15d}", ""), "missing required field 'appeals'"),
    ],
)
def test_mistakes_are_positioned(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    found = errors(tmp_path, MINIMAL.replace(*change))
    assert any(expected in line for line in found), found


def test_escalation_must_name_known_levels_and_go_up(tmp_path: Path) -> None:
    text = MINIMAL + "escalation:\n  - {level: ban, count: 2, within: 10d, raise_to: warning}\n"
    text += "  - {level: warning, count: 2, within: 10d, raise_to: jail}\n"
    found = errors(tmp_path, text)
    assert any(":10:51: escalation from 'ban' must raise to a harsher level" in line for line in found), found
    assert any(":11:55: unknown level 'jail'" in line for line in found), found


def test_duplicate_keys_and_missing_file_are_refused(tmp_path: Path) -> None:
    assert any("duplicate" in line for line in errors(tmp_path, MINIMAL + "reasons: []\n"))
    with pytest.raises(ConfigErrors, match="no sanction policy file"):
        load_sanction_policy(tmp_path / "absent.yaml", {})


def test_client_roles_are_written_as_in_realm_config(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    actions: {disable: true}", "    actions: {remove_client_roles: {shop: [buyer, seller], forum: [poster]}}"
    )
    actions = load(tmp_path, text).level("ban").actions  # type: ignore[attr-defined]
    assert [ref.describe() for ref in actions.client_role_refs] == ["shop:buyer", "shop:seller", "forum:poster"]
    assert actions.holds_access


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ("{remove_client_roles: {shop: []}}", ":5:43: client 'shop' lists no roles"),
        ("{remove_client_roles: {shop: [a, a]}}", ":5:43: client 'shop' lists role 'a' twice"),
        ("{remove_client_roles: [shop:buyer]}", ":5:36: levels[1].actions.remove_client_roles"),
        ("{remove_client_roles: {realm-management: [manage-users]}}", "'realm-management' roles cannot be removed"),
        ("{remove_client_roles: {shop: ['']}}", ":5:"),
    ],
)
def test_client_role_mistakes_are_positioned(tmp_path: Path, actions: str, expected: str) -> None:
    found = errors(tmp_path, MINIMAL.replace("    actions: {disable: true}", f"    actions: {actions}"))
    assert any(expected in line for line in found), found
