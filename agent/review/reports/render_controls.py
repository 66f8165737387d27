"""The controls matrix as Markdown, JSON and HTML: pure functions of (results, when) -> text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from agent.review.reports import html
from agent.review.reports.controls import FAMILY_TITLES, ControlResult, count_statuses

TITLE = "Compliance controls"
HEADERS = ("Rule family", "Control", "Realm", "Configured in", "Live value", "Status", "Evidence")


def _summary_line(results: Sequence[ControlResult]) -> str:
    counts = count_statuses(results)
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def _realms(results: Sequence[ControlResult]) -> str:
    return ", ".join(sorted({result.realm for result in results})) or "none"


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def controls_markdown(results: Sequence[ControlResult], taken_at: datetime) -> str:
    lines = [
        f"# {TITLE}",
        "",
        f"Realms: {_realms(results)}. Read from Keycloak at {taken_at.isoformat()}.",
        "",
        f"Summary: {_summary_line(results)}.",
        "",
        "| " + " | ".join(HEADERS[:-1]) + " |",
        "|" + "---|" * (len(HEADERS) - 1),
    ]
    for result in results:
        cells = (
            FAMILY_TITLES.get(result.family, result.family), result.control, result.realm, result.configured,
            result.live, f"**{result.status}**" if result.status == "fail" else result.status,
        )  # fmt: skip
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |")
    lines += ["", "## Evidence", ""]
    lines += [f"- {_markdown_cell(result.evidence)}" for result in results]
    return "\n".join(lines) + "\n"


def controls_json(results: Sequence[ControlResult], taken_at: datetime) -> str:
    document = {
        "report": "controls",
        "taken_at": taken_at.isoformat(),
        "summary": count_statuses(results),
        "controls": [
            {
                "family": result.family,
                "family_title": FAMILY_TITLES.get(result.family, result.family),
                "control": result.control,
                "realm": result.realm,
                "configured": result.configured,
                "live": result.live,
                "status": result.status,
                "evidence": result.evidence,
            }
            for result in results
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def controls_html(results: Sequence[ControlResult], taken_at: datetime) -> str:
    counts = count_statuses(results)
    summary = html.cards([html.Card(status, str(count)) for status, count in counts.items()])
    chart = html.bar_chart("Controls by status", list(counts.items()), "chart-controls-status")
    rows = [
        (
            FAMILY_TITLES.get(result.family, result.family), result.control, result.realm, result.configured,
            result.live, html.Cell(result.status, f"status-{result.status}"), result.evidence,
        )
        for result in results
    ]  # fmt: skip
    body = [
        '<section id="summary"><h2>Summary</h2>',
        summary,
        f'<div class="charts">{chart}</div></section>',
        '<section id="controls"><h2>Controls</h2>',
        html.table("controls-table", HEADERS, rows),
        "</section>",
    ]
    return html.page(TITLE, f"Realms: {_realms(results)}. Read from Keycloak at {taken_at.isoformat()}.", body)


RENDERERS = {"md": controls_markdown, "json": controls_json, "html": controls_html}
