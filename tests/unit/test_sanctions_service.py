"""Pure parts of the sanction service and CLI: end dates, which users the sync must hold, rendering."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

from agent.errors import ConfigError
from agent.sanctions.commands import parse_for, parse_until, report_text, resolve_realm, sanction_json, sanction_line
from agent.sanctions.executor import StepResult
from agent.sanctions.plan import Step
from agent.sanctions.policy import load_sanction_policy
from agent.sanctions.service import EnforceReport, SanctionError, pending_problem, sanction_end, sanctioned_user_ids
from agent.store import ManualClock, open_store
from agent.store.db import Store
from agent.store.sanctions import NewSanction
from agent.sync.agent_config import AgentConfig

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
POLICY = load_sanction_policy(Path(__file__).resolve().parents[2] / "policies" / "sanctions.yaml", {})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'store.db'}", now=ManualClock(NOW))


def record(store: Store, user_id: str, level: str, realm: str = "acme") -> str:
    new = NewSanction(realm, user_id, user_id, level, level, "spam", "mod", None)
    return store.sanctions.add(new).id


@pytest.mark.parametrize(
    ("default", "duration", "until", "expected"),
    [
        (timedelta(days=30), None, None, NOW + timedelta(days=30)),
        (timedelta(days=30), timedelta(days=7), None, NOW + timedelta(days=7)),
        (None, None, None, None),
        (timedelta(days=30), None, NOW + timedelta(days=1), NOW + timedelta(days=1)),
    ],
)
def test_sanction_end(
    default: timedelta | None, duration: timedelta | None, until: datetime | None, expected: datetime | None
) -> None:
    assert sanction_end(NOW, default, duration=duration, until=until) == expected


def test_an_end_in_the_past_is_refused() -> None:
    with pytest.raises(SanctionError, match="not in the future"):
        sanction_end(NOW, None, duration=None, until=NOW - timedelta(days=1))


def test_the_sync_holds_only_users_under_an_access_holding_open_sanction(store: Store) -> None:
    record(store, "kc-warned", "warning")
    banned = record(store, "kc-banned", "ban")
    record(store, "kc-elsewhere", "ban", realm="other")
    lifted = record(store, "kc-lifted", "suspension")
    sanction = store.sanctions.get(lifted)
    assert sanction is not None
    store.sanctions.save(replace(sanction, state="lifted"))
    ending = store.sanctions.get(banned)
    assert ending is not None

    assert sanctioned_user_ids(store, "acme", POLICY) == {"kc-banned"}
    assert sanctioned_user_ids(store, "acme") == {"kc-warned", "kc-banned"}  # no policy: every open one
    store.sanctions.save(replace(ending, ending="lifted"))
    assert sanctioned_user_ids(store, "acme", POLICY) == {"kc-banned"}  # held until the restore is verified


def test_until_and_for_parse_like_an_operator_writes_them() -> None:
    assert parse_until("2026-12-31") == datetime(2026, 12, 31, tzinfo=UTC)
    assert parse_until("2026-12-31T12:00:00+01:00").utcoffset() == timedelta(hours=1)
    assert parse_for("7d") == timedelta(days=7)
    with pytest.raises(click.BadParameter):
        parse_until("next tuesday")
    with pytest.raises(click.BadParameter):
        parse_for("a while")


def test_the_realm_comes_from_the_option_or_fails_with_a_hint() -> None:
    assert resolve_realm(AgentConfig(), "acme") == "acme"
    with pytest.raises(ConfigError, match="which realm"):
        resolve_realm(AgentConfig(), None)


def test_lines_and_json_name_the_escalation_and_the_changes(store: Store) -> None:
    sanction_id = record(store, "kc-1", "restriction")
    sanction = store.sanctions.get(sanction_id)
    assert sanction is not None
    escalated = replace(sanction, requested_level="warning")
    line = sanction_line(escalated)
    assert sanction_id in line and "restriction (asked: warning)" in line and "until lifted" in line
    body = sanction_json(escalated)
    assert body["changes"]["enabled_before"] is None and body["state"] == "pending"
    report = EnforceReport("run-1", applied=["s-a"], pending={"s-b": "still enabled"})
    assert "PENDING s-b: still enabled" in report_text(report) and "1 applied" in report_text(report)


def test_a_pending_sanction_says_what_is_missing_and_why_each_failed_write_failed_once() -> None:
    read_only = "The user is read-only. Not possible to write 'enabled' when updating user 'ann'."
    results = [
        StepResult(Step("disable"), f"PUT /admin/realms/acme/users/f%3Ax%3Aann answered 400: {read_only}"),
        StepResult(Step("logout")),
        StepResult(Step("join-group", "/restricted"), "group /restricted does not exist in realm 'acme'"),
        StepResult(Step("enable"), f"PUT /admin/realms/acme/users/f%3Ax%3Aann answered 400: {read_only}"),
    ]
    assert pending_problem(["still enabled", "not in group /restricted"], results) == (
        f"still enabled; not in group /restricted; writes failed: {read_only} / group /restricted does not exist "
        "in realm 'acme'"
    )
    # Every write went through: only what the check found.
    assert pending_problem(["still enabled"], [StepResult(Step("disable"))]) == "still enabled"
