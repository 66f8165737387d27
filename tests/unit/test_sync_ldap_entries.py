"""The one-pass decoder of search result entries, checked against ldap3's own decoder on generated BER."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from ldap3.utils.asn1 import decode_message_fast

from agent.sync.sources.ldap_entries import SearchEntry, search_entry


def ber(tag: int, content: bytes) -> bytes:
    """A definite-length BER element: the short length form up to 127 octets, the long form above."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def integer(value: int) -> bytes:
    return ber(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def entry_message(message_id: int, dn: bytes, attributes: dict[bytes, list[bytes]]) -> bytes:
    parts = b"".join(
        ber(0x30, ber(0x04, name) + ber(0x31, b"".join(ber(0x04, value) for value in values)))
        for name, values in attributes.items()
    )
    return ber(0x30, integer(message_id) + ber(0x64, ber(0x04, dn) + ber(0x30, parts)))


def done_message(message_id: int) -> bytes:
    """A SearchResultDone: success, no matched DN, no message."""
    return ber(0x30, integer(message_id) + ber(0x65, ber(0x0A, b"\x00") + ber(0x04, b"") + ber(0x04, b"")))


names = st.binary(min_size=1, max_size=20).filter(lambda name: b";range=" not in name)
# Up to 300 octets: both length forms; some values are empty, some are not text (photos, binary GUIDs).
values = st.lists(st.binary(max_size=300), max_size=4)
Entry = tuple[int, bytes, dict[bytes, list[bytes]]]
entries = st.tuples(
    st.integers(min_value=1, max_value=2**31 - 1),
    st.binary(max_size=200),
    st.dictionaries(names, values, max_size=8),
)


@given(entries)
def test_an_entry_reads_as_ldap3_reads_it(entry: Entry) -> None:
    message_id, dn, attributes = entry
    message = entry_message(message_id, dn, attributes)

    decoded = search_entry(message)

    stock = decode_message_fast(message)
    stock_attributes = {part[3][0][3]: [value[3] for value in part[3][1][3]] for part in stock["payload"][1][3]}
    assert decoded == SearchEntry(stock["messageID"], stock["payload"][0][3], stock_attributes)
    assert decoded == SearchEntry(message_id, dn, attributes)


@given(entries, st.data())
def test_a_message_cut_short_is_not_an_entry(entry: Entry, data: st.DataObject) -> None:
    message = entry_message(*entry)
    cut = data.draw(st.integers(min_value=0, max_value=len(message) - 1))

    assert search_entry(message[:cut]) is None


def test_a_value_of_more_than_64_kib_uses_three_length_octets() -> None:
    photo = bytes(range(256)) * 300  # 76,800 octets
    message = entry_message(7, b"uid=a,dc=example", {b"jpegPhoto": [photo], b"uid": [b"a"]})
    assert message[:2] == b"\x30\x83"

    assert search_entry(message) == SearchEntry(7, b"uid=a,dc=example", {b"jpegPhoto": [photo], b"uid": [b"a"]})


def test_other_messages_are_left_to_ldap3() -> None:
    ranged = entry_message(3, b"cn=staff,dc=example", {b"member;range=0-1499": [b"uid=a,dc=example"]})
    indefinite = b"\x30\x80" + entry_message(3, b"uid=a", {})[2:] + b"\x00\x00"
    wrong_inner_tag = entry_message(3, b"uid=a", {b"uid": [b"a"]}).replace(b"\x31\x03\x04\x01a", b"\x30\x03\x04\x01a")

    assert search_entry(done_message(3)) is None
    assert search_entry(ranged) is None
    assert search_entry(indefinite) is None
    assert search_entry(wrong_inner_tag) is None
    assert search_entry(b"") is None
