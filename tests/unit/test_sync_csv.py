"""The csv source on real files: encodings, delimiters, quoted newlines, header mapping, what makes a read
incomplete (S01 inputs, S21's quoted newlines), and when a lookup reads the file again."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from agent.errors import SourceUnavailable
from agent.sync.model import Found, NotFound, SourceRead
from agent.sync.sources import build_source, csv_source, parse_source_config
from agent.sync.sources.config import CsvSourceConfig
from agent.sync.sources.csv_source import CsvSource


def _source(path: Path, **settings: Any) -> CsvSource:
    config = parse_source_config({"type": "csv", "name": "hr", "path": str(path), **settings})
    assert isinstance(config, CsvSourceConfig)
    source = build_source(config)
    assert isinstance(source, CsvSource)
    return source


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "hr.csv"
    path.write_bytes(content)
    return path


COMPLETE_CASES = [
    pytest.param(b"id,email\n1,a@example.org\n2,b@example.org\n", {}, [{"id": "1", "email": "a@example.org"},
                 {"id": "2", "email": "b@example.org"}], id="plain"),
    pytest.param(b"\xef\xbb\xbfid,email\n1,a@example.org\n", {}, [{"id": "1", "email": "a@example.org"}],
                 id="utf8-bom-stripped"),
    pytest.param(b"id;name\n1;M\xc3\xbcller, Anna\n", {"delimiter": ";"}, [{"id": "1", "name": "Müller, Anna"}],
                 id="semicolon-delimiter"),
    pytest.param(b"id\tname\n1\tAnna\n", {"delimiter": "\t"}, [{"id": "1", "name": "Anna"}], id="tab-delimiter"),
    pytest.param(b"id,note\n1,'say ''hi'', then go'\n", {"quote_char": "'"}, [{"id": "1", "note": "say 'hi', then go"}],
                 id="quote-char"),
    pytest.param(b'id,note\n1,"line one\nline two"\n2,plain\n', {},
                 [{"id": "1", "note": "line one\nline two"}, {"id": "2", "note": "plain"}], id="quoted-newline"),
    pytest.param(b'id,note\r\n1,"line one\r\nline two"\r\n2,plain\r\n', {},
                 [{"id": "1", "note": "line one\r\nline two"}, {"id": "2", "note": "plain"}], id="quoted-crlf"),
    pytest.param(b"Employee ID,E-mail,Dept\n7,g@example.org,Finance\n",
                 {"columns": {"Employee ID": "id", "E-mail": "email"}},
                 [{"id": "7", "email": "g@example.org", "Dept": "Finance"}], id="header-mapping"),
    pytest.param(b"id,name,\n1,Anna,\n", {}, [{"id": "1", "name": "Anna"}], id="trailing-delimiter-ignored"),
    pytest.param(b"id,name\n\n1,Anna\n\n", {}, [{"id": "1", "name": "Anna"}], id="blank-lines-skipped"),
    pytest.param(b"id,name\n1,Jos\xe9\n", {"encoding": "latin-1"}, [{"id": "1", "name": "José"}], id="latin-1"),
    pytest.param("id,name\n1,Zoë\n".encode("utf-16"), {"encoding": "utf-16"}, [{"id": "1", "name": "Zoë"}],
                 id="utf-16-with-its-bom"),
    pytest.param("\ufeffid,name\n1,Zoë\n".encode("utf-16-le"), {"encoding": "utf-16-le"},
                 [{"id": "1", "name": "Zoë"}], id="utf-16-le-bom-stripped"),
    pytest.param("\ufeffid,name\n1,Zoë\n".encode("utf-16-be"), {"encoding": "utf-16-be"},
                 [{"id": "1", "name": "Zoë"}], id="utf-16-be-bom-stripped"),
    pytest.param("\ufeff\"id\",name\n1,Zoë\n".encode("utf-16-le"), {"encoding": "utf-16-le"},
                 [{"id": "1", "name": "Zoë"}], id="utf-16-le-bom-before-a-quoted-header"),
    pytest.param(b"", {}, [], id="empty-file-is-complete"),
    pytest.param(b"id,email\n", {}, [], id="header-only-is-complete"),
    pytest.param(b"\xef\xbb\xbfid,email\r\n", {}, [], id="bom-header-only-is-complete"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "settings", "expected"), COMPLETE_CASES)
def test_complete_reads(
    tmp_path: Path, content: bytes, settings: dict[str, Any], expected: list[dict[str, str]]
) -> None:
    read = _source(_write(tmp_path, content), **settings).read()

    assert read.complete, read.problem
    assert read.problem == ""
    assert [dict(record.fields) for record in read.records] == expected
    assert all(record.source == "hr" for record in read.records)


INCOMPLETE_CASES = [
    pytest.param(b"name,email\nAnna,a@example.org\n", {}, "hr.csv:1: the header has no column 'id'", 0,
                 id="missing-id-column"),
    pytest.param(b"ID,email\n1,a@example.org\n", {"columns": {"Employee ID": "id"}},
                 "the header has no column 'Employee ID' (field id)", 0, id="missing-mapped-column"),
    pytest.param(b"id,email\n1,a@example.org\n", {"required_fields": ["email", "department"]},
                 "the header has no column 'department'", 0, id="missing-required-field"),
    pytest.param(b"id,email,id\n1,a,2\n", {}, "two columns give the field 'id'", 0, id="duplicate-header"),
    pytest.param(b"id,email\n1,a@example.org\n2,b@example.org,extra\n3,c@example.org\n", {},
                 "hr.csv:3: 3 fields where the header has 2", 2, id="too-many-fields"),
    pytest.param(b"id,email\n1\n2,b@example.org\n", {}, "hr.csv:2: 1 fields where the header has 2", 1,
                 id="too-few-fields"),
    pytest.param(b"id,name\n1,Anna\n2,Jos\xe9\n", {}, "not valid utf-8", None, id="undecodable-bytes"),
    pytest.param(b'id,note\n1,ok\n2,"never closed\n3,x\n', {}, "hr.csv:3: malformed CSV", 1, id="unterminated-quote"),
    pytest.param(b'id,note\n1,"a"b\n', {}, "hr.csv:2: malformed CSV", 0, id="junk-after-quote"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "settings", "problem", "good_rows"), INCOMPLETE_CASES)
def test_incomplete_reads_say_why_and_keep_the_good_rows(
    tmp_path: Path, content: bytes, settings: dict[str, Any], problem: str, good_rows: int | None
) -> None:
    read = _source(_write(tmp_path, content), **settings).read()

    assert not read.complete
    assert problem in read.problem
    if good_rows is not None:
        assert len(read.records) == good_rows


def test_several_bad_rows_are_counted_in_the_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, b"id,email\n1\n2\n3,c@example.org\n4\n")

    read = _source(path).read()

    assert not read.complete
    assert read.problem == "hr.csv:2: 1 fields where the header has 2 (and 2 more problems)"
    assert [record.get("id") for record in read.records] == ["3"]


@pytest.mark.parametrize(
    ("make_path", "problem"),
    [
        pytest.param(lambda tmp: tmp / "absent.csv", "absent.csv: no such file", id="missing-file"),
        pytest.param(lambda tmp: tmp, "cannot read it", id="a-directory"),
    ],
)
def test_a_file_that_cannot_be_read_is_incomplete_not_an_exception(
    tmp_path: Path, make_path: Any, problem: str
) -> None:
    read = _source(make_path(tmp_path)).read()

    assert not read.complete
    assert problem in read.problem
    assert read.records == ()


def test_where_is_the_first_line_of_each_row_even_after_quoted_newlines(tmp_path: Path) -> None:
    path = _write(tmp_path, b'id,note\n1,"a\nb\nc"\n\n2,x\n3,"d\ne"\n4,y\n')

    read = _source(path).read()

    assert read.complete
    assert [record.where for record in read.records] == ["hr.csv:2", "hr.csv:6", "hr.csv:7", "hr.csv:9"]


def test_values_are_kept_as_written(tmp_path: Path) -> None:
    # Stripping, lowercasing and dates are the mapping's business; the source hands over the text as it is.
    path = _write(tmp_path, b'id,name,empty\n 1 ," Anna ",\n')

    (record,) = _source(path).read().records

    assert dict(record.fields) == {"id": " 1 ", "name": " Anna ", "empty": ""}


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        pytest.param("E2", "b@example.org", id="found"),
        pytest.param("e2", None, id="case-matters"),
        pytest.param("E9", None, id="not-found"),
    ],
)
def test_lookup_rereads_the_file_and_finds_the_id_column(tmp_path: Path, wanted: str, expected: str | None) -> None:
    path = _write(tmp_path, b"Personalnummer,email\nE1,a@example.org\nE2,b@example.org\n")
    source = _source(path, columns={"Personalnummer": "id"})

    result = source.lookup(wanted)

    if expected is None:
        assert result == NotFound()
    else:
        assert isinstance(result, Found)
        assert result.record.get("email") == expected
        assert result.record.where == "hr.csv:3"


def test_lookup_sees_a_change_made_after_the_source_was_built(tmp_path: Path) -> None:
    path = _write(tmp_path, b"id\nE1\n")
    source = _source(path)
    assert isinstance(source.lookup("E1"), Found)

    path.write_bytes(b"id\nE2\n")

    assert source.lookup("E1") == NotFound()


@pytest.mark.parametrize(
    "content",
    [pytest.param(b"id,email\n1,a\n2\n", id="bad-row"), pytest.param(b"id,x\n1,\xff\n", id="bad-bytes")],
)
def test_lookup_in_a_broken_file_raises_unavailable_never_not_found(tmp_path: Path, content: bytes) -> None:
    source = _source(_write(tmp_path, content))

    with pytest.raises(SourceUnavailable, match=r"hr\.csv"):
        source.lookup("1")


def test_lookup_of_a_missing_file_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no such file"):
        _source(tmp_path / "gone.csv").lookup("1")


def test_lookup_of_an_empty_id_is_refused(tmp_path: Path) -> None:
    source = _source(_write(tmp_path, b"id\n\n"))

    with pytest.raises(ValueError, match="empty id"):
        source.lookup("")


# --- lookups answer from an index of the file while the file stays as it was --------------------------------


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[CsvSourceConfig]:
    """Every read_csv call from now on, in order (each one is a full parse of the file)."""
    calls: list[CsvSourceConfig] = []
    real = csv_source.read_csv

    def counting(config: CsvSourceConfig) -> SourceRead:
        calls.append(config)
        return real(config)

    monkeypatch.setattr(csv_source, "read_csv", counting)
    return calls


def _backdate(path: Path, seconds: int = 60, *, ns: int | None = None) -> int:
    """Sets the file's mtime `seconds` ago (or to `ns`), as for an export written well before the run."""
    when = ns if ns is not None else time.time_ns() - seconds * 1_000_000_000
    os.utime(path, ns=(when, when))
    return when


def test_many_lookups_in_an_unchanged_file_parse_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, b"id,email\n" + b"".join(b"E%d,p%d@example.org\n" % (i, i) for i in range(100)))
    _backdate(path)
    source = _source(path)
    reads = _count_reads(monkeypatch)

    answers = [source.lookup(f"E{i}") for i in range(100)]

    assert len(reads) == 1
    assert [a.record.get("email") for a in answers if isinstance(a, Found)] == [f"p{i}@example.org" for i in range(100)]
    assert source.lookup("E100") == NotFound()
    assert len(reads) == 1


@pytest.mark.parametrize(
    ("before", "after", "same_mtime"),
    [
        pytest.param(b"id,email\nE1,a@example.org\n", b"id,email\nE2,a@example.org\n", False, id="same-size-new-mtime"),
        pytest.param(b"id\nE1\n", b"id\nE22\n", True, id="new-size-same-mtime"),
    ],
)
def test_lookups_after_a_change_see_it_and_parse_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: bytes, after: bytes, same_mtime: bool
) -> None:
    path = _write(tmp_path, before)
    mtime = _backdate(path, 60)
    source = _source(path)
    reads = _count_reads(monkeypatch)
    assert all(isinstance(source.lookup("E1"), Found) for _ in range(5))

    path.write_bytes(after)
    if same_mtime:
        _backdate(path, ns=mtime)
    else:
        _backdate(path, 30)

    new_id = after.split(b"\n")[1].split(b",")[0].decode()
    for _ in range(100):
        assert source.lookup("E1") == NotFound()
        assert isinstance(source.lookup(new_id), Found)
    assert len(reads) == 2


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        pytest.param(b"id,email\nE1,a\nE2\n", r"hr\.csv:3: 1 fields", id="bad-row"),
        pytest.param(b"id,email\nE1,\xff\n", "not valid utf-8", id="bad-bytes"),
        pytest.param(None, "no such file", id="deleted"),
    ],
)
def test_a_file_broken_between_lookups_raises_unavailable(tmp_path: Path, broken: bytes | None, problem: str) -> None:
    path = _write(tmp_path, b"id,email\nE1,a@example.org\n")
    mtime = _backdate(path)
    source = _source(path)
    assert isinstance(source.lookup("E1"), Found)

    if broken is None:
        path.unlink()
    else:
        path.write_bytes(broken)
        _backdate(path, ns=mtime)  # even with the old mtime

    for _ in range(2):  # and again: a failed read is never remembered as an answer
        with pytest.raises(SourceUnavailable, match=problem):
            source.lookup("E1")


def test_a_file_written_just_now_is_reread_on_every_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A second write within the same timestamp tick could keep size and mtime: only a settled file is trusted.
    source = _source(_write(tmp_path, b"id\nE1\n"))
    reads = _count_reads(monkeypatch)

    for _ in range(3):
        assert isinstance(source.lookup("E1"), Found)

    assert len(reads) == 3


def test_the_first_lookup_after_a_read_reads_the_file_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, b"id\nE1\n")
    _backdate(path)
    source = _source(path)
    reads = _count_reads(monkeypatch)
    source.lookup("E1")

    source.read()
    source.lookup("E1")
    source.lookup("E1")

    assert len(reads) == 3  # lookup, read, the lookup after it; the last one answers from the index


def test_a_failed_reread_leaves_no_older_answers_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, b"id\nE1\n")
    states = iter([(1, 1, 6, 1, 1), (1, 1, 6, 2, 2), (1, 1, 6, 1, 1)])  # the file seems to come back as it was
    monkeypatch.setattr(csv_source, "settled_state", lambda _path, _now: next(states))
    source = _source(path)
    assert isinstance(source.lookup("E1"), Found)
    path.write_bytes(b"id,x\nE1\n")

    for _ in range(2):
        with pytest.raises(SourceUnavailable):
            source.lookup("E1")


def test_a_duplicate_id_finds_its_first_row_on_every_lookup(tmp_path: Path) -> None:
    path = _write(tmp_path, b"id,email\nE1,first@example.org\nE2,b@example.org\nE1,second@example.org\n")
    _backdate(path)
    source = _source(path)

    for _ in range(3):
        found = source.lookup("E1")
        assert isinstance(found, Found)
        assert (found.record.get("email"), found.record.where) == ("first@example.org", "hr.csv:2")
