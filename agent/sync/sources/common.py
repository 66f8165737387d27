"""Small helpers every source connector shares: checking an id before a lookup, finding a record by id, settling
the answers of a search for several ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from agent.errors import SourceUnavailable
from agent.sync.model import Found, NotFound, SourceRecord

# Ids a URL path cannot carry: the HTTP stack resolves them as dot segments (RFC 3986), so GET /Users/.. asks for
# another resource, whose 404 would read as NotFound. %2E is no way out: servers may decode and resolve it too.
DOT_SEGMENTS = frozenset({".", ".."})


def check_external_id(external_id: str) -> str:
    """The id itself, or ValueError when it can never name a record (empty, or not encodable as UTF-8)."""
    if not external_id:
        raise ValueError("an empty id names no record; refusing to look it up")
    try:
        external_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the id is not valid Unicode text; refusing to look it up") from None
    return external_id


def check_path_id(source: str, external_id: str) -> None:
    """SourceUnavailable for an id that cannot be asked for in a URL path: the lookup cannot tell."""
    if external_id in DOT_SEGMENTS:
        raise SourceUnavailable(f"source {source}: the id {external_id!r} cannot be looked up in a URL path")


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


def settle_lookups(requested: Sequence[str], returned: Sequence[tuple[str, ...]]) -> dict[str, int | None]:
    """Which entry of one OR search answers each requested id: its index, or None for "not found". An id is
    answered by an entry holding it as written, else ignoring case (the server matched with the attribute's own
    rule). "Not found" is said only when every returned entry is so accounted for and none holds the id but for
    spaces, hyphens or case: otherwise the server may have matched it by a rule not known here, and the id is
    left out, to be looked up alone."""
    settled: dict[str, int | None] = {}
    claimed: set[int] = set()
    for wanted in requested:
        matching = [index for index, values in enumerate(returned) if wanted in values] or [
            index for index, values in enumerate(returned) if wanted.casefold() in {v.casefold() for v in values}
        ]
        if matching:
            settled[wanted] = matching[0]
            claimed.update(matching)
    every_entry_claimed = len(claimed) == len(returned)
    loose_values = {_loose(value) for values in returned for value in values}
    for wanted in requested:
        if wanted not in settled and every_entry_claimed and _loose(wanted) not in loose_values:
            settled[wanted] = None
    return settled


def _loose(value: str) -> str:
    return "".join(character for character in value.casefold() if not character.isspace() and character != "-")
