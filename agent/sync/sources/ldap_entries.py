"""Search result entries decoded straight from the bytes the server sent (RFC 4511 4.5.2), for RawEntries.

ldap3's own decoder walks every element generically (a tuple of class, form, tag and value for each one, by
table lookups) before its strategy picks the DN and values out again: about two thirds of the CPU a paged
read of 10k entries still cost. An entry has one shape, so it is read here in one pass. Anything that is not a
well-formed entry in definite-length BER (a result, a reference, an entry with ranged values, a message cut
short) gives None and is left to ldap3.
"""

from __future__ import annotations

from dataclasses import dataclass

INTEGER = 0x02
OCTET_STRING = 0x04
SEQUENCE = 0x30
SET = 0x31
SEARCH_RESULT_ENTRY = 0x64  # [APPLICATION 4], constructed
LONGEST_LENGTH = 4  # length octets: 4 GiB is beyond any entry; more is malformed


class _Malformed(Exception):
    """The bytes are not an entry of the expected shape."""


@dataclass(frozen=True)
class SearchEntry:
    message_id: int
    raw_dn: bytes
    raw_attributes: dict[bytes, list[bytes]]


def search_entry(message: bytes) -> SearchEntry | None:
    """The entry `message` holds; None for any other message, or one not in the shape an entry has."""
    try:
        return _search_entry(message)
    except (_Malformed, IndexError):
        return None


def _search_entry(message: bytes) -> SearchEntry | None:
    start, end = _element(message, 0, SEQUENCE, len(message))
    id_start, id_end = _element(message, start, INTEGER, end)
    if message[id_end] != SEARCH_RESULT_ENTRY:
        return None
    message_id = int.from_bytes(message[id_start:id_end], "big", signed=True)
    entry_start, entry_end = _element(message, id_end, SEARCH_RESULT_ENTRY, end)
    dn_start, dn_end = _element(message, entry_start, OCTET_STRING, entry_end)
    at, attributes_end = _element(message, dn_end, SEQUENCE, entry_end)
    attributes: dict[bytes, list[bytes]] = {}
    while at < attributes_end:
        part_start, part_end = _element(message, at, SEQUENCE, attributes_end)
        name_start, name_end = _element(message, part_start, OCTET_STRING, part_end)
        value_at, values_end = _element(message, name_end, SET, part_end)
        if values_end != part_end:
            raise _Malformed
        name = message[name_start:name_end]
        if b";range=" in name:
            return None  # Active Directory's ranged values: ldap3 fetches the rest itself (auto_range)
        values: list[bytes] = []
        while value_at < values_end:
            value_start, value_at = _element(message, value_at, OCTET_STRING, values_end)
            values.append(message[value_start:value_at])
        attributes[name] = values
        at = part_end
    return SearchEntry(message_id, message[dn_start:dn_end], attributes)


def _element(data: bytes, at: int, tag: int, limit: int) -> tuple[int, int]:
    """Where the value of the element at `at` starts and ends; it must carry `tag` and end by `limit`."""
    if data[at] != tag:
        raise _Malformed
    size = data[at + 1]
    if size < 0x80:
        start = at + 2
        end = start + size
    else:
        count = size & 0x7F
        if not 0 < count <= LONGEST_LENGTH:
            raise _Malformed  # the indefinite form (0x80) is not allowed in LDAP (RFC 4511 5.1)
        start = at + 2 + count
        end = start + int.from_bytes(data[at + 2 : start], "big")
    if end > limit:
        raise _Malformed
    return start, end
