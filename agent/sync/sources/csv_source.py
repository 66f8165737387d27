"""The `csv` source: an HR export file, read with the csv module (quoted newlines, a BOM, any delimiter)."""

from __future__ import annotations

import codecs
import csv
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import SourceUnavailable
from agent.sync.model import FieldValue, Found, NotFound, SourceRead, SourceRecord
from agent.sync.sources.common import check_external_id, index_by_field
from agent.sync.sources.config import CsvSourceConfig

# A file last modified more recently than this is re-read on every lookup: a second write within one
# timestamp tick (a few ms on Linux, 2 s on FAT) can leave size and mtime as they were (git's "racy clean").
SETTLE_TIME_NS = 2_000_000_000

# What identifies one state of the file: st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns.
FileState = tuple[int, int, int, int, int]


class CsvSource:
    """Reads the file afresh on every `read` (which never raises for a bad or missing file), and for a `lookup`
    whenever the file changed since the previous lookup."""

    def __init__(self, config: CsvSourceConfig) -> None:
        self.config = config
        self.name = config.name
        self._index: _Index | None = None

    def read(self) -> SourceRead:
        """Every row as a record, `where` = `file:line` of the row's first line.

        A missing, unreadable or undecodable file, a header without a required column, a row with the wrong
        number of fields or broken quoting make the read incomplete (the good rows are still returned).
        An empty or header-only file is a *complete* read of zero records: whether that is suspicious (a
        wiped export) is for the safety brakes, which compare the read with the last good run.
        """
        # A lookup confirms a leaver that this read missed: it must read the file again, not trust older answers.
        self._index = None
        return read_csv(self.config)

    def lookup(self, external_id: str) -> Found | NotFound:
        """The row whose `id_field` is `external_id` (the first, if several); an incomplete read raises.

        The file is re-read unless it is in the same settled state as at the previous lookup, so confirming
        many leavers parses it once.
        """
        check_external_id(external_id)
        state = settled_state(self.config.path, time.time_ns())
        index = self._index
        if index is None or state is None or index.state != state:
            self._index = None  # a failed re-read must leave no older answers behind
            index = self._index = index_csv(self.config, state)
        record = index.records.get(external_id)
        return NotFound() if record is None else Found(record)


@dataclass(frozen=True)
class _Index:
    state: FileState | None
    records: Mapping[str, SourceRecord]


def settled_state(path: Path, now_ns: int) -> FileState | None:
    """The file's state, or None when it cannot vouch for the content: it cannot be opened, or it changed
    less than SETTLE_TIME_NS before `now_ns`."""
    try:
        # Open rather than stat the path: opening makes an NFS client revalidate its cached attributes.
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
    except OSError:
        return None  # read_csv will say why
    if now_ns - stat.st_mtime_ns < SETTLE_TIME_NS:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def index_csv(config: CsvSourceConfig, state: FileState | None) -> _Index:
    """A complete read of the file indexed by `id_field`, labelled with `state`: taken before the read, so a
    change during the read shows as a new state at the next lookup."""
    result = read_csv(config)
    if not result.complete:
        raise SourceUnavailable(f"source {config.name}: {result.problem}")
    return _Index(state, index_by_field(result.records, config.id_field))


@dataclass
class _Parsed:
    records: list[SourceRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_csv(config: CsvSourceConfig) -> SourceRead:
    """One complete or incomplete read of the configured file (see CsvSource.read)."""
    path = config.path
    pages = 0
    try:
        # newline="" lets the csv module see quoted newlines (and \r\n) exactly as written.
        with path.open(encoding=_python_encoding(config.encoding), newline="") as handle:
            pages = 1
            parsed = parse_rows(config, handle)
    except FileNotFoundError:
        parsed = _Parsed(problems=[f"{path}: no such file"])
    except OSError as error:
        parsed = _Parsed(problems=[f"{path}: cannot read it ({error.strerror or type(error).__name__})"])
    return SourceRead(
        source=config.name,
        records=tuple(parsed.records),
        complete=not parsed.problems,
        problem=_summary(parsed.problems),
        pages=pages,
    )


def _python_encoding(encoding: str) -> str:
    # utf-8-sig reads a file with or without a BOM alike (Excel writes one, most tools do not).
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _summary(problems: Sequence[str]) -> str:
    if len(problems) <= 1:
        return "".join(problems)
    return f"{problems[0]} (and {len(problems) - 1} more problems)"


def parse_rows(config: CsvSourceConfig, lines: Iterator[str]) -> _Parsed:
    """Records from CSV text lines; problems instead of exceptions."""
    label = config.path.name
    reader = csv.reader(_without_bom(lines), delimiter=config.delimiter, quotechar=config.quote_char, strict=True)
    parsed = _Parsed()
    names: tuple[str | None, ...] | None = None
    end = 0  # the last physical line the reader consumed
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if not row:
                continue  # a blank line
            if names is None:
                names, problem = header_fields(config, row)
                if problem:
                    parsed.problems.append(f"{label}:{start}: {problem}")
                    return parsed
                continue
            if len(row) != len(names):
                parsed.problems.append(f"{label}:{start}: {len(row)} fields where the header has {len(names)}")
                continue
            parsed.records.append(SourceRecord(config.name, _fields(names, row), f"{label}:{start}"))
    except UnicodeDecodeError:
        parsed.problems.append(f"{label}: bytes after line {end} are not valid {config.encoding}")
    except csv.Error as error:
        parsed.problems.append(f"{label}:{end + 1}: malformed CSV ({error})")
    return parsed


def _without_bom(lines: Iterator[str]) -> Iterator[str]:
    """The lines, a byte order mark dropped from the first: utf-16-le/-be (unlike utf-8-sig and utf-16) leave
    it in the text, where it would stick to the first column's name."""
    for number, line in enumerate(lines):
        yield line.removeprefix("\ufeff") if number == 0 else line


def header_fields(config: CsvSourceConfig, header: Sequence[str]) -> tuple[tuple[str | None, ...], str]:
    """Field name per column (None: a column without a header, ignored), and a problem or ""."""
    names = tuple(config.columns.get(title.strip(), title.strip()) or None for title in header)
    present = [name for name in names if name is not None]
    twice = sorted({name for name in present if present.count(name) > 1})
    if twice:
        return names, f"two columns give the field '{twice[0]}'"
    required = {config.id_field, *config.required_fields, *config.columns.values()}
    missing = sorted(required - set(present))
    if missing:
        return names, "the header has no " + ", ".join(_column_for(config, name) for name in missing)
    return names, ""


def _column_for(config: CsvSourceConfig, field_name: str) -> str:
    headers = [header for header, target in config.columns.items() if target == field_name]
    return f"column '{headers[0]}' (field {field_name})" if headers else f"column '{field_name}'"


def _fields(names: Sequence[str | None], row: Sequence[str]) -> dict[str, FieldValue]:
    return {name: value for name, value in zip(names, row, strict=True) if name is not None}
