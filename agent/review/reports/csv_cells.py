"""CSV that spreadsheets cannot execute (S21): a cell starting with = + - @ (or a tab or carriage return) is written
with a leading apostrophe, so Excel and LibreOffice show it as text instead of evaluating a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

# The full-width forms too: some spreadsheets read them as the ASCII ones.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
NEUTRALISER = "'"


def is_formula(text: str) -> bool:
    """Whether a spreadsheet may evaluate the cell: a formula start, also after leading spaces (some trim them
    on import, no-break spaces included)."""
    return text.startswith(FORMULA_STARTS) or text.lstrip().startswith(FORMULA_STARTS)


def neutralise(value: object) -> str:
    text = "" if value is None else str(value)
    return NEUTRALISER + text if is_formula(text) else text


def restore(value: str) -> str:
    """The original text of a cell `neutralise` wrote (a reviewer's sheet read back)."""
    if value.startswith(NEUTRALISER) and is_formula(value[1:]):
        return value[1:]
    return value


def csv_text(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """RFC 4180 CSV (quoted where needed, CRLF line ends), every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([neutralise(header) for header in headers])
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
    return buffer.getvalue()
