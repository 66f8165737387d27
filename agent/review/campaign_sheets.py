"""Reviewers' sheets (pure): the CSV a reviewer fills in, and the decisions read back from it, every bad line
named so that nothing is recorded from a sheet with any problem."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from agent.config.diagnostics import ConfigErrors, Diagnostic
from agent.review.reports.csv_cells import csv_text, restore
from agent.store.campaigns import DECISIONS, RecordedDecision, ReviewItem

SHEET_HEADERS = (
    "item", "user", "kind", "entitlement", "confers", "recommendation", "reason", "reviewer", "decision",
    "justification",
)  # fmt: skip
# user and entitlement too: they tie a row to its item, so that a sheet of another campaign (numbered alike,
# as a recurring campaign over a stable realm is) or a shifted row is refused, not recorded on other access.
REQUIRED_SHEET_HEADERS = ("item", "user", "entitlement", "reviewer", "decision", "justification")
FINAL_OUTCOMES = frozenset({"applied", "skipped", "kept"})  # what a close did: no later sheet may change it


# -- reviewers' sheets (pure) ----------------------------------------------------------------------------


def sheet_csv(items: Sequence[ReviewItem]) -> str:
    """A reviewer's sheet: one row per item, decision and justification to fill in (keep or revoke)."""
    rows = [
        (
            item.number, item.username, item.kind, item.entitlement, item.confers, item.recommendation, item.reason,
            item.reviewer, item.decision or "", item.justification,
        )
        for item in items
    ]  # fmt: skip
    return csv_text(SHEET_HEADERS, rows)


@dataclass(frozen=True)
class SheetRow:
    line: int
    cells: dict[str, str]


def sheet_rows(text: str) -> tuple[list[str], list[SheetRow]]:
    """Header and rows of a CSV sheet, each row with the line it starts on (quoted newlines span lines)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = [restore(cell).strip().lower() for cell in next(reader, [])]
    rows: list[SheetRow] = []
    previous_end = reader.line_num
    for cells in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        values = {
            name: restore(cells[index]).strip() if index < len(cells) else "" for index, name in enumerate(header)
        }
        rows.append(SheetRow(start, values))
    return header, rows


def check_sheet_row(row: SheetRow, items: dict[int, ReviewItem], reviewers: frozenset[str]) -> list[str]:
    """Problems with one row (empty when it is good)."""
    cells = row.cells
    raw_number = cells.get("item", "")
    if not raw_number.isdecimal() or int(raw_number) not in items:  # isdigit() takes '²', which int() refuses
        return [f"unknown item '{raw_number}'"]
    item = items[int(raw_number)]
    if item.outcome in FINAL_OUTCOMES:
        return [f"item {item.number} was acted on by a close ({item.outcome}); its decision is final"]
    problems = []
    reviewer = cells.get("reviewer", "")
    if reviewer not in reviewers:
        problems.append(f"unknown reviewer '{reviewer}'")
    elif reviewer != item.reviewer:
        problems.append(f"item {item.number} is assigned to {item.reviewer}, not {reviewer}")
    for column, expected in (("user", item.username), ("entitlement", item.entitlement)):
        if column in cells and cells[column] != expected:
            problems.append(f"item {item.number} is {item.username} x {item.entitlement}; the sheet says {column} "
                            f"'{cells[column]}'")  # fmt: skip
    decision = cells.get("decision", "").lower()
    if decision and decision not in DECISIONS:
        problems.append(f"decision '{cells.get('decision')}' is neither keep nor revoke")
    if decision == "revoke" and not cells.get("justification"):
        problems.append(f"item {item.number}: a revoke needs a justification")
    return problems


def parse_sheet(text: str, source: str, items: Sequence[ReviewItem]) -> list[RecordedDecision]:
    """The decisions of a filled sheet; every problem of every line raised at once (ConfigErrors with
    file:line), so that nothing is recorded from a sheet with any bad line. Rows left undecided are skipped."""
    header, rows = sheet_rows(text)
    missing = [name for name in REQUIRED_SHEET_HEADERS if name not in header]
    if missing:
        raise ConfigErrors([Diagnostic(source, 1, 1, f"the sheet lacks the column(s) {', '.join(missing)}")])
    by_number = {item.number: item for item in items}
    reviewers = frozenset(item.reviewer for item in items)
    problems: list[Diagnostic] = []
    decisions: list[RecordedDecision] = []
    seen: dict[int, int] = {}
    for row in rows:
        found = check_sheet_row(row, by_number, reviewers)
        number = int(row.cells["item"]) if not found or row.cells.get("item", "").isdecimal() else -1
        if number in seen:
            found.append(f"item {number} is also on line {seen[number]}")
        seen.setdefault(number, row.line)
        problems += [Diagnostic(source, row.line, 1, problem) for problem in found]
        decision = row.cells.get("decision", "").lower()
        if not found and decision:
            decisions.append(
                RecordedDecision(number, decision, row.cells.get("justification", ""), row.cells["reviewer"])  # type: ignore[arg-type]
            )
    if problems:
        raise ConfigErrors(problems)
    return decisions
