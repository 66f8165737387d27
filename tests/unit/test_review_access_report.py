"""The access report from a hand-made snapshot: summary counts, charts, escaping, CSV formula neutralising (S21)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from agent.review.model import Finding, Grant, Route, Snapshot, UserAccess, UserRecord
from agent.review.model import RoleRef as Ref
from agent.review.reports.access import ReportContext, build_access_report, last_days
from agent.review.reports.csv_cells import csv_text, neutralise, restore
from agent.review.reports.render_access import (
    access_csv,
    access_html,
    access_json,
    access_markdown,
    json_one_item_per_line,
)

TAKEN_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HOSTILE = '<img src=x onerror="alert(1)">'


def role(name: str, *routes: Route, client: str | None = None) -> Grant:
    ref = Ref(name, client)
    return Grant("role", ref.label, routes or (Route(),), ref)


def snapshot() -> Snapshot:
    users = (
        UserRecord("u1", "alice", True, "alice@example.org", totp=True, created=TAKEN_AT - timedelta(days=400)),
        UserRecord("u2", "bob", True, "bob@example.org", created=TAKEN_AT - timedelta(days=10)),
        UserRecord("u3", HOSTILE, False, '=HYPERLINK("http://evil")'),
        UserRecord("u4", "service-account-ci", True, service_account_client="ci"),
    )
    it = Route(group="/it-admins")
    access = {
        "u1": UserAccess(
            "u1", frozenset({"/it-admins"}), (role("admin", it), role("employee", it), role("default-roles-acme"))
        ),
        "u2": UserAccess("u2", frozenset({"/it-admins"}), (role("admin", it),)),
        "u3": UserAccess("u3", frozenset(), (role("employee"),)),
        "u4": UserAccess("u4", frozenset(), (role("manage-users", client="realm-management"),)),
    }  # fmt: skip
    return Snapshot(
        taken_at=TAKEN_AT,
        realm="acme",
        users=users,
        access=MappingProxyType(access),
        last_login=MappingProxyType({"u1": TAKEN_AT - timedelta(days=1)}),
        logins_known_since=TAKEN_AT - timedelta(days=200),
    )


FINDINGS = [
    Finding("privileged-without-mfa:u2", "privileged-without-mfa", "critical", "bob", "bob holds admin without MFA"),
    Finding("never-logged-in:u3", "never-logged-in", "medium", HOSTILE, "never logged in"),
    Finding("service-account-admin:u4", "service-account-admin", "high", "service-account-ci", "=1+1"),
]
CONTEXT = ReportContext(privileged_roles=frozenset({Ref("admin")}), logins_per_day=(("2026-11-28", 3),))


def test_summary_counts_users_privilege_mfa_and_findings() -> None:
    summary = build_access_report(snapshot(), FINDINGS, CONTEXT).summary
    assert (summary.users, summary.enabled, summary.disabled, summary.service_accounts) == (4, 3, 1, 1)
    # Service accounts are not people: privileged counts and MFA coverage leave them out.
    assert (summary.privileged, summary.privileged_with_mfa) == (2, 1)
    assert dict(summary.findings_by_severity) == {"critical": 1, "high": 1, "medium": 1, "low": 0, "info": 0}
    assert dict(summary.users_by_level) == {"admin": 2, "employee": 2, "(no role)": 1}
    assert [(c.role, c.with_mfa, c.without_mfa) for c in summary.mfa_by_privileged_role] == [("admin", 1, 1)]
    assert summary.logins_per_day[-2:] == (("2026-11-28", 3), ("2026-11-29", 0))


def test_the_login_series_has_every_day_of_the_window() -> None:
    series = last_days([("2026-11-01", 5), ("2026-10-01", 9)], TAKEN_AT, days=30)
    assert len(series) == 30
    assert series[0] == ("2026-10-31", 0)
    assert ("2026-11-01", 5) in series
    assert sum(count for _, count in series) == 5  # outside the window: not shown


def test_html_is_self_contained_escaped_and_starts_with_the_summary() -> None:
    page = access_html(build_access_report(snapshot(), FINDINGS, CONTEXT))
    assert HOSTILE not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "nothing may be loaded from elsewhere"
    assert "Content-Security-Policy" in page
    assert page.index('id="summary"') < page.index('id="findings"') < page.index('id="users"')
    for chart in ("chart-users-by-level", "chart-findings-by-severity", "chart-mfa-coverage", "chart-logins"):
        assert f'<figure id="{chart}"><figcaption>' in page
        assert "<svg" in page.split(f'id="{chart}"', 1)[1].split("</figure>", 1)[0]
    assert 'data-filter="users-table"' in page
    assert page.count("<script>") == 1


def test_json_and_markdown_carry_the_same_counts() -> None:
    report = build_access_report(snapshot(), FINDINGS, CONTEXT)
    document = json.loads(access_json(report))
    assert document["summary"]["users"] == 4
    assert [row["Username"] for row in document["users"]] == sorted(u.username for u in snapshot().users)
    assert {row["Entitlement"] for row in document["grants"]} == {"admin", "employee", "realm-management/manage-users"}
    markdown = access_markdown(report)
    assert "- users: 4" in markdown
    assert "&lt;img" in markdown


def test_json_puts_each_record_on_its_own_line_and_parses_back_equal() -> None:
    report = build_access_report(snapshot(), FINDINGS, CONTEXT)
    text = access_json(report)
    document = json.loads(text)
    lines = text.splitlines()
    start = lines.index('  "users": [') + 1
    user_lines = [line.strip().rstrip(",") for line in lines[start : start + len(document["users"])]]
    assert user_lines == [json.dumps(row, ensure_ascii=False) for row in document["users"]]
    odd = {"empty": [], "nested": {"a": [1, {"b": "\u00fc\n"}]}, "rows": [{"x": '<"y">'}, None, "z"]}
    assert json.loads(json_one_item_per_line(odd)) == odd
    assert len(json_one_item_per_line(odd).splitlines()) == len(odd) + 2 + len(odd["rows"]) + 1


@pytest.mark.parametrize(
    "value",
    [
        "=1+1",
        "+1",
        "-2",
        "@SUM(A1)",
        "\tx",
        "\rx",
        '=HYPERLINK("http://evil")',
        "=cmd|' /C calc'!A0",
        ' =HYPERLINK("http://evil")',
        "\u00a0=1+1",
        "\n=1+1",
        "\uff1d1+1",
    ],
)
def test_csv_neutralises_every_cell_that_a_spreadsheet_would_evaluate(value: str) -> None:
    assert neutralise(value) == "'" + value
    assert restore(neutralise(value)) == value
    text = csv_text(["h"], [[value]])
    (cell,) = list(csv.reader(io.StringIO(text)))[1]
    assert cell == "'" + value


@pytest.mark.parametrize("value", ["alice", "a=b", "1-2", "", "'quoted", "x@example.org"])
def test_csv_leaves_ordinary_cells_as_they_are(value: str) -> None:
    assert neutralise(value) == value
    assert restore(value) == value


def test_every_report_csv_cell_is_safe() -> None:
    tables = access_csv(build_access_report(snapshot(), FINDINGS, CONTEXT))
    assert set(tables) == {"users", "findings", "grants"}
    cells = [cell for text in tables.values() for row in csv.reader(io.StringIO(text)) for cell in row]
    assert '\'=HYPERLINK("http://evil")' in cells
    assert "'=1+1" in cells
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]


def test_a_privileged_role_held_through_the_default_role_is_shown() -> None:
    """An admin role added to the realm's default role is everyone's: the report must say so, not hide it as
    the default roles' noise."""
    default, admin = Ref("default-roles-acme"), Ref("admin")
    through_default = Route(composites=(default,))
    access = UserAccess("u1", frozenset(), (role("default-roles-acme"), role("admin", through_default)))
    users = (UserRecord("u1", "alice", True, "alice@example.org", totp=True),)
    report_of = replace(snapshot(), users=users, access=MappingProxyType({"u1": access}))

    report = build_access_report(report_of, [], ReportContext(privileged_roles=frozenset({admin})))

    assert report.users[0].privileged and report.users[0].roles == ("admin",)
    assert [grant.name for grant in report.grants] == ["admin"]


def test_users_sharing_one_grants_tuple_each_get_their_own_rows() -> None:
    # expand_access gives users of one access shape the same grants tuple; the report describes it once but
    # still writes each user's own name, MFA and finding count.
    shared = (role("admin", Route(group="/it-admins")),)
    base = snapshot()
    access = {
        "u1": UserAccess("u1", frozenset({"/it-admins"}), shared),
        "u2": UserAccess("u2", frozenset({"/it-admins"}), shared),
    }
    shared_snapshot = Snapshot(
        taken_at=TAKEN_AT, realm="acme", users=base.users[:2], access=MappingProxyType(access),
        last_login=base.last_login, logins_known_since=base.logins_known_since,
    )  # fmt: skip
    report = build_access_report(shared_snapshot, FINDINGS[:1], CONTEXT)
    assert [(row.username, row.mfa, row.privileged, row.roles, row.findings) for row in report.users] == [
        ("alice", True, True, ("admin",), 0),
        ("bob", False, True, ("admin",), 1),
    ]
    assert [(row.username, row.name, row.how) for row in report.grants] == [
        ("alice", "admin", "group"),
        ("bob", "admin", "group"),
    ]
    assert [(c.role, c.with_mfa, c.without_mfa) for c in report.summary.mfa_by_privileged_role] == [("admin", 1, 1)]
