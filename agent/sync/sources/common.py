"""Small helpers every source connector shares: checking an id before a lookup, finding a record by id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.sync.model import Found, NotFound, SourceRecord


def check_external_id(external_id: str) -> str:
    """The id itself, or ValueError when it can never name a record (empty, or not encodable as UTF-8)."""
    if not external_id:
        raise ValueError("an empty id names no record; refusing to look it up")
    try:
        external_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the id is not valid Unicode text; refusing to look it up") from None
    return external_id


def find_by_field(records: Iterable[SourceRecord], field: str, external_id: str) -> Found | NotFound:
    """The first record whose `field` is exactly `external_id` (a multi-valued field matches any value)."""
    for record in records:
        value = record.get(field)
        if value == external_id or (isinstance(value, tuple) and external_id in value):
            return Found(record)
    return NotFound()


def index_by_field(records: Iterable[SourceRecord], field: str) -> Mapping[str, SourceRecord]:
    """Value of `field` -> record, answering every id as `find_by_field` would: the first record wins a
    duplicate, each value of a multi-valued field is a key, a record without the field is left out."""
    index: dict[str, SourceRecord] = {}
    for record in records:
        value = record.get(field)
        if value is None:
            continue
        for key in value if isinstance(value, tuple) else (value,):
            index.setdefault(key, record)
    return index
