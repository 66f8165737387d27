"""Self-contained HTML pieces for reports: one page with inline CSS and a few lines of inline JS (no CDN, works
offline; a Content-Security-Policy forbids loading anything), SVG bar and column charts, and filterable tables.

Every text that reaches the page goes through `escape`: names and attributes come from users and HR feeds.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Nothing may be fetched: styles and the script are inline, images only data: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'"
)
CHART_WIDTH = 420
BAR_HEIGHT = 22
LABEL_WIDTH = 150
COLUMN_CHART_HEIGHT = 160
PALETTE = ("#3558a5", "#c2410c", "#15803d", "#a16207", "#7e22ce", "#0e7490", "#be123c")

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2937;max-width:1200px}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #e5e7eb}
.meta{color:#6b7280;font-size:.9rem}
.cards{display:flex;flex-wrap:wrap;gap:.75rem;margin:1rem 0}
.card{border:1px solid #e5e7eb;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
.card .value{font-size:1.4rem;font-weight:600}.card .label{color:#6b7280;font-size:.8rem}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}
figure{margin:0}figcaption{font-weight:600;font-size:.9rem;margin-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin-top:.5rem}
th,td{border-bottom:1px solid #e5e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f9fafb;position:sticky;top:0}
.filter{margin-top:.5rem;padding:.3rem;width:20rem}
.status-pass{color:#15803d;font-weight:600}.status-fail{color:#b91c1c;font-weight:600}
.status-manual{color:#a16207}.status-not-configured{color:#6b7280}
.sev-critical{color:#7f1d1d;font-weight:700}.sev-high{color:#b91c1c;font-weight:600}
.sev-medium{color:#c2410c}.sev-low{color:#a16207}.sev-info{color:#6b7280}
.count{color:#6b7280;font-size:.8rem;margin-left:.5rem}
"""

# Filters every table that has a search box: a row stays when its text contains every word typed.
SCRIPT = """
document.querySelectorAll('input[data-filter]').forEach(function (box) {
  var table = document.getElementById(box.getAttribute('data-filter'));
  var counter = document.getElementById(box.getAttribute('data-filter') + '-count');
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  box.addEventListener('input', function () {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.textContent.toLowerCase();
      var keep = words.every(function (word) { return text.indexOf(word) !== -1; });
      row.style.display = keep ? '' : 'none';
      if (keep) { shown += 1; }
    });
    if (counter) { counter.textContent = shown + ' of ' + rows.length + ' rows'; }
  });
});
"""


def escape(value: object) -> str:
    """Text safe inside HTML elements and quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, subtitle: str, body: Iterable[str]) -> str:
    """A whole HTML document: inline style and script, nothing loaded from anywhere."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{escape(CONTENT_SECURITY_POLICY)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<link rel="icon" href="data:,">',
            f"<title>{escape(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="meta">{escape(subtitle)}</p>',
            *body,
            f"<script>{SCRIPT}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


@dataclass(frozen=True)
class Card:
    label: str
    value: str


def cards(items: Sequence[Card], element_id: str = "summary-cards") -> str:
    parts = [
        f'<div class="card"><div class="value">{escape(card.value)}</div>'
        f'<div class="label">{escape(card.label)}</div></div>'
        for card in items
    ]
    return f'<div class="cards" id="{escape(element_id)}">' + "".join(parts) + "</div>"


def bar_chart(caption: str, bars: Sequence[tuple[str, int]], element_id: str) -> str:
    """Horizontal bars, one per (label, value), scaled to the largest value; values printed at the bar's end."""
    largest = max((value for _, value in bars), default=0) or 1
    height = max(len(bars), 1) * BAR_HEIGHT + 4
    room = CHART_WIDTH - LABEL_WIDTH - 40
    shapes = []
    for index, (label, value) in enumerate(bars):
        y = index * BAR_HEIGHT + 2
        width = round(room * value / largest)
        colour = PALETTE[index % len(PALETTE)]
        shapes.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end" font-size="12">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{width}" height="{BAR_HEIGHT - 6}" fill="{colour}">'
            f"<title>{escape(label)}: {value}</title></rect>"
            f'<text x="{LABEL_WIDTH + width + 4}" y="{y + 15}" font-size="12">{value}</text>'
        )
    if not bars:
        shapes.append('<text x="4" y="16" font-size="12">nothing to show</text>')
    return _figure(caption, element_id, CHART_WIDTH, height, shapes)


def column_chart(caption: str, columns: Sequence[tuple[str, int]], element_id: str) -> str:
    """Vertical columns over time (label under the first, middle and last column)."""
    largest = max((value for _, value in columns), default=0) or 1
    plot = COLUMN_CHART_HEIGHT - 30
    step = (CHART_WIDTH - 20) / max(len(columns), 1)
    shapes = [f'<line x1="10" y1="{plot + 2}" x2="{CHART_WIDTH - 10}" y2="{plot + 2}" stroke="#9ca3af"/>']
    labelled = {0, len(columns) // 2, len(columns) - 1}
    for index, (label, value) in enumerate(columns):
        height = round(plot * value / largest)
        x = 10 + index * step
        shapes.append(
            f'<rect x="{x:.1f}" y="{plot + 2 - height}" width="{max(step - 2, 1):.1f}" height="{height}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {value}</title></rect>'
        )
        if index in labelled:
            # The last label ends at its column, so it stays inside the chart.
            anchor, at = ("end", x + step) if index == len(columns) - 1 and index else ("start", x)
            shapes.append(
                f'<text x="{at:.1f}" y="{plot + 18}" font-size="10" text-anchor="{anchor}">{escape(label)}</text>'
            )
    if not columns:
        shapes.append('<text x="10" y="20" font-size="12">nothing to show</text>')
    return _figure(caption, element_id, CHART_WIDTH, COLUMN_CHART_HEIGHT, shapes)


def _figure(caption: str, element_id: str, width: int, height: int, shapes: Sequence[str]) -> str:
    return (
        f'<figure id="{escape(element_id)}"><figcaption>{escape(caption)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(caption)}">{"".join(shapes)}</svg></figure>'
    )


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, and an optional CSS class (e.g. `status-fail`)."""

    text: str
    css: str = ""


def table(element_id: str, headers: Sequence[str], rows: Sequence[Sequence[Cell | str]]) -> str:
    """A table with a search box above it that filters its rows (inline script, see SCRIPT)."""
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join(map(_row, rows))
    element = escape(element_id)
    return (
        f'<input class="filter" type="search" placeholder="Filter rows" data-filter="{element}" '
        f'aria-label="Filter {element}">'
        f'<span class="count" id="{element}-count">{len(rows)} rows</span>'
        f'<table id="{element}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _row(row: Sequence[Cell | str]) -> str:
    texts = [cell for cell in row if isinstance(cell, str)]
    if len(texts) == len(row):
        # Plain text cells (most rows of big tables): html.escape mapped in C, one join a row.
        return "<tr><td>" + "</td><td>".join(map(html.escape, texts)) + "</td></tr>"
    return "<tr>" + "".join(map(_cell, row)) + "</tr>"


def _cell(cell: Cell | str) -> str:
    if isinstance(cell, str):
        return f"<td>{escape(cell)}</td>"
    css = f' class="{escape(cell.css)}"' if cell.css else ""
    return f"<td{css}>{escape(cell.text)}</td>"
