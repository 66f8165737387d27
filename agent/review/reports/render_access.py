"""The access report as HTML (summary with inline SVG charts, then filterable tables), Markdown, JSON and CSV.
Pure: an AccessReport in, text out (CSV: one text per table)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agent.review.reports import html
from agent.review.reports.access import AccessReport, AccessSummary
from agent.review.reports.csv_cells import csv_text

TITLE = "Access review report"
FINDING_HEADERS = ("Severity", "Rule", "Subject", "Explanation", "Finding id")
USER_HEADERS = (
    "Username", "Email", "Enabled", "Kind", "MFA", "Privileged", "Last login", "Created", "Roles", "Groups", "Findings",
)  # fmt: skip
GRANT_HEADERS = ("Username", "Kind", "Entitlement", "How", "Routes")


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _subtitle(summary: AccessSummary) -> str:
    return f"Realm {summary.realm}, snapshot taken at {summary.taken_at.isoformat()}."


def _finding_rows(report: AccessReport) -> list[tuple[str, ...]]:
    return [(f.severity, f.rule, f.subject, f.explanation, f.id) for f in report.findings]


def _user_rows(report: AccessReport) -> list[tuple[str, ...]]:
    return [
        (
            row.username, row.email, yes_no(row.enabled), row.kind, yes_no(row.mfa), yes_no(row.privileged),
            row.last_login, row.created, ", ".join(row.roles), ", ".join(row.groups), str(row.findings),
        )
        for row in report.users
    ]  # fmt: skip


def _grant_rows(report: AccessReport) -> list[tuple[str, ...]]:
    return [(row.username, row.kind, row.name, row.how, row.routes) for row in report.grants]


def summary_cards(summary: AccessSummary) -> list[html.Card]:
    mfa = f"{summary.privileged_with_mfa} of {summary.privileged}"
    return [
        html.Card("users", str(summary.users)),
        html.Card("enabled", str(summary.enabled)),
        html.Card("disabled", str(summary.disabled)),
        html.Card("service accounts", str(summary.service_accounts)),
        html.Card("privileged people", str(summary.privileged)),
        html.Card("privileged with MFA", mfa),
        html.Card("findings", str(summary.findings)),
    ]


def _charts(summary: AccessSummary) -> str:
    coverage = [
        bar
        for role in summary.mfa_by_privileged_role
        for bar in ((f"{role.role}: MFA", role.with_mfa), (f"{role.role}: no MFA", role.without_mfa))
    ]
    charts = [
        html.bar_chart("Users by level (realm role held)", summary.users_by_level, "chart-users-by-level"),
        html.bar_chart("Findings by severity", summary.findings_by_severity, "chart-findings-by-severity"),
        html.bar_chart("MFA coverage of privileged roles", coverage, "chart-mfa-coverage"),
        html.column_chart(
            f"Logins per day (last {len(summary.logins_per_day)} days)", summary.logins_per_day, "chart-logins"
        ),
    ]
    return '<div class="charts">' + "".join(charts) + "</div>"


def access_html(report: AccessReport) -> str:
    summary = report.summary
    finding_rows = [
        (html.Cell(severity, f"sev-{severity}"), rule, subject, explanation, finding_id)
        for severity, rule, subject, explanation, finding_id in _finding_rows(report)
    ]
    body = [
        '<section id="summary"><h2>Summary</h2>',
        html.cards(summary_cards(summary)),
        _charts(summary),
        *(f'<p class="meta">{html.escape(note)}</p>' for note in report.notes),
        "</section>",
        '<section id="findings"><h2>Findings</h2>',
        html.table("findings-table", FINDING_HEADERS, finding_rows),
        "</section>",
        '<section id="users"><h2>Users</h2>',
        html.table("users-table", USER_HEADERS, _user_rows(report)),
        "</section>",
        '<section id="grants"><h2>Effective access</h2>',
        html.table("grants-table", GRANT_HEADERS, _grant_rows(report)),
        "</section>",
    ]
    return html.page(TITLE, _subtitle(summary), body)


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return lines


def access_markdown(report: AccessReport) -> str:
    summary = report.summary
    lines = [f"# {TITLE}", "", _subtitle(summary), "", "## Summary", ""]
    lines += [f"- {card.label}: {card.value}" for card in summary_cards(summary)]
    lines += ["", "Findings by severity: " + ", ".join(f"{sev} {n}" for sev, n in summary.findings_by_severity)]
    lines += ["", "Users by level: " + (", ".join(f"{level} {n}" for level, n in summary.users_by_level) or "none")]
    lines += [""] + [f"_{_md(note)}_" for note in report.notes]
    lines += ["", "## Findings", "", *_md_table(FINDING_HEADERS, _finding_rows(report))]
    lines += ["", "## Users", "", *_md_table(USER_HEADERS, _user_rows(report))]
    return "\n".join(lines) + "\n"


def _summary_json(summary: AccessSummary) -> dict[str, Any]:
    return {
        "realm": summary.realm,
        "taken_at": summary.taken_at.isoformat(),
        "users": summary.users,
        "enabled": summary.enabled,
        "disabled": summary.disabled,
        "service_accounts": summary.service_accounts,
        "federated": summary.federated,
        "privileged": summary.privileged,
        "privileged_with_mfa": summary.privileged_with_mfa,
        "findings": summary.findings,
        "findings_by_severity": dict(summary.findings_by_severity),
        "findings_by_rule": dict(summary.findings_by_rule),
        "users_by_level": dict(summary.users_by_level),
        "mfa_by_privileged_role": [
            {"role": c.role, "with_mfa": c.with_mfa, "without_mfa": c.without_mfa}
            for c in summary.mfa_by_privileged_role
        ],
        "logins_per_day": dict(summary.logins_per_day),
    }


def _json_safe(value: object) -> object:
    """Finding details as JSON: values that JSON cannot hold are written as text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_json_safe(item) for item in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)


def access_json(report: AccessReport) -> str:
    document = {
        "report": "access",
        "summary": _summary_json(report.summary),
        "notes": list(report.notes),
        "findings": [
            {
                "id": f.id, "rule": f.rule, "severity": f.severity, "subject": f.subject,
                "explanation": f.explanation, "details": _json_safe(f.details),
            }
            for f in report.findings
        ],
        "users": [dict(zip(USER_HEADERS, row, strict=True)) for row in _user_rows(report)],
        "grants": [dict(zip(GRANT_HEADERS, row, strict=True)) for row in _grant_rows(report)],
    }  # fmt: skip
    return json_one_item_per_line(document)


# One encoder for every item: json.dumps with any option builds a new encoder per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)


def json_one_item_per_line(document: Mapping[str, Any]) -> str:
    """The document with one top-level key, and one list item, per line: readable and diffable, yet encoded by
    json's C encoder (an `indent` makes json fall back to its pure-Python encoder, 5-10x slower at 10k users)."""
    encode = _JSON_ENCODER.encode
    lines = []
    for key, value in document.items():
        name = encode(key)
        if isinstance(value, list) and value:
            items = ",\n    ".join(map(encode, value))
            lines.append(f"  {name}: [\n    {items}\n  ]")
        else:
            lines.append(f"  {name}: {encode(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def access_csv(report: AccessReport) -> dict[str, str]:
    """One CSV per table, keyed by a file-name suffix: `users`, `findings`, `grants`."""
    return {
        "users": csv_text(USER_HEADERS, _user_rows(report)),
        "findings": csv_text(FINDING_HEADERS, _finding_rows(report)),
        "grants": csv_text(GRANT_HEADERS, _grant_rows(report)),
    }
