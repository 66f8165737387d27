"""The `ldap` source: an ldap3 paged search over LDAPS or StartTLS, the certificate always verified (the
connection: agent/sync/sources/ldap_connection.py).

Every value put into a filter is escaped with `escape_filter_chars` (RFC 4515). The source never builds a
DN from a value: it finds entries by filter (`escape_dn_value` is the way to build one: escape_rdn, NUL fixed);
DN values it reads are unescaped (RFC 4514) before use.
Any result but `success` (sizeLimitExceeded, timeLimitExceeded, adminLimitExceeded, busy, unavailable,
referral ...) and any connection trouble makes a read incomplete; ldap3 does not raise for some of them.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from agent.errors import SourceUnavailable
from agent.sync.model import FieldValue, Found, NotFound, SourceRead, SourceRecord
from agent.sync.sources.common import check_external_id, settle_lookups
from agent.sync.sources.config import LdapGroupsSpec, LdapSourceConfig
from agent.sync.sources.ldap_connection import close_connection, describe_error, open_connection

Answer = TypeVar("Answer")
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
GROUPS_FIELD = "groups"
DN_FIELD = "dn"
SCOPES = {"one": ldap3.LEVEL, "subtree": ldap3.SUBTREE}
_HEX_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)")


class SearchIncomplete(Exception):
    """A search ended with a result other than success, or referred part of the tree elsewhere."""


@dataclass
class ReadProgress:
    """What a read got so far, kept when it fails half way."""

    records: list[SourceRecord] = field(default_factory=list)
    pages: int = 0


class LdapSource:
    def __init__(self, config: LdapSourceConfig) -> None:
        self.config = config
        self.name = config.name

    def read(self) -> SourceRead:
        """Every entry under the base matching the filter; any failure gives an incomplete read, never raises."""
        progress = ReadProgress()
        problem = ""
        try:
            connection = open_connection(self.config)
        except (ldap_errors.LDAPException, OSError) as error:
            return SourceRead(self.name, (), complete=False, problem=describe_error(error, self.config))
        try:
            read_directory(self.config, connection, progress)
        except SearchIncomplete as error:
            problem = str(error)
        except (ldap_errors.LDAPException, OSError) as error:
            problem = describe_error(error, self.config)
        finally:
            close_connection(connection)
        records = tuple(progress.records)
        return SourceRead(self.name, records, complete=not problem, problem=problem, pages=progress.pages)

    def lookup_many(self, external_ids: Sequence[str]) -> dict[str, Found | NotFound]:
        """Many exact lookups on one connection, LOOKUP_BATCH ids a search `(|(<id>=a)(<id>=b)...)`: without an
        index on the id attribute each search scans the directory, so one per leaver costs that many scans.
        Answers only the ids it can settle as `lookup` would (see `settle_lookups`); raises SourceUnavailable."""
        for external_id in external_ids:
            check_external_id(external_id)

        def batches(connection: ldap3.Connection) -> dict[str, Found | NotFound]:
            answers: dict[str, Found | NotFound] = {}
            for start in range(0, len(external_ids), LOOKUP_BATCH):
                answers.update(lookup_entries(self.config, connection, external_ids[start : start + LOOKUP_BATCH]))
            return answers

        return self._looked_up(batches)

    def lookup(self, external_id: str) -> Found | NotFound:
        """An exact search `(<id_attribute>=<escaped id>)`, scope subtree under `lookup_base_dn` (else base_dn).
        NotFound only when the server answered success with no entry; any trouble raises SourceUnavailable."""
        check_external_id(external_id)
        return self._looked_up(lambda connection: lookup_entry(self.config, connection, external_id))

    def _looked_up(self, search: Callable[[ldap3.Connection], Answer]) -> Answer:
        """`search` on a connection of its own; any trouble is SourceUnavailable, never an answer."""
        try:
            connection = open_connection(self.config)
            try:
                return search(connection)
            finally:
                close_connection(connection)
        except SearchIncomplete as error:
            raise SourceUnavailable(f"source {self.name}: lookup: {error}") from None
        except (ldap_errors.LDAPException, OSError) as error:
            raise SourceUnavailable(f"source {self.name}: lookup: {describe_error(error, self.config)}") from None


def read_directory(config: LdapSourceConfig, connection: ldap3.Connection, progress: ReadProgress) -> None:
    """Appends a record per entry to `progress` (so a failure keeps what was read), and counts pages."""
    requested = requested_attributes(config)
    memberships: Mapping[str, tuple[str, ...]] = {}
    if config.groups is not None and config.groups.base_dn is not None:
        memberships = group_memberships(config.groups, connection, config, progress)
    for entry in paged_entries(
        connection,
        base=config.base_dn,
        search_filter=config.filter,
        scope=config.scope,
        attributes=requested,
        config=config,
        progress=progress,
    ):
        groups = _groups_of(config.groups, entry, memberships)
        progress.records.append(entry_record(config, entry, groups))


def requested_attributes(config: LdapSourceConfig) -> list[str]:
    """The configured attributes, the id (operational attributes such as entryUUID are sent only when named)
    and memberOf when groups may come from it."""
    names = [*config.attributes, config.id_attribute]
    if config.groups is not None and config.groups.use_member_of:
        names.append(config.groups.member_of_attribute)
    return list(dict.fromkeys(names))


def paged_entries(
    connection: ldap3.Connection,
    *,
    base: str,
    search_filter: str,
    scope: str,
    attributes: Sequence[str],
    config: LdapSourceConfig,
    progress: ReadProgress,
) -> Iterator[Mapping[str, Any]]:
    """Entries of a paged search, page by page; SearchIncomplete unless every page ends in success."""
    cookie: bytes | None = None
    while True:
        connection.search(
            base,
            search_filter,
            search_scope=SCOPES[scope],
            attributes=list(attributes),
            paged_size=config.paged_size,
            paged_criticality=True,  # a server that cannot page must say so, not return a truncated list
            paged_cookie=cookie,
        )
        progress.pages += 1
        result = connection.result
        description = str(result.get("description", ""))
        for response in connection.response or []:
            if response.get("type") == "searchResEntry":
                yield response
            elif response.get("type") == "searchResRef" and config.referrals == "incomplete":
                raise SearchIncomplete(f"search of {base} was referred to another server (not followed)")
        if description != "success":
            message = str(result.get("message") or "")
            raise SearchIncomplete(f"search of {base} ended with {description}" + (f": {message}" if message else ""))
        cookie = result.get("controls", {}).get(PAGED_RESULTS_OID, {}).get("value", {}).get("cookie")
        if not cookie:
            return


def group_memberships(
    groups: LdapGroupsSpec, connection: ldap3.Connection, config: LdapSourceConfig, progress: ReadProgress
) -> dict[str, tuple[str, ...]]:
    """Member DN key -> group names, from one paged search of every group under the groups base."""
    found: defaultdict[str, list[str]] = defaultdict(list)
    group_filter = exact_filter("objectClass", groups.object_class)
    attributes = [groups.name_attribute, groups.member_attribute]
    base = groups.base_dn or config.base_dn
    for entry in paged_entries(
        connection,
        base=base,
        search_filter=group_filter,
        scope="subtree",
        attributes=attributes,
        config=config,
        progress=progress,
    ):
        names = _values(entry, groups.name_attribute)
        if not names:
            continue
        for member in _values(entry, groups.member_attribute):
            found[dn_key(member)].append(names[0])
    return {member: tuple(sorted(set(names))) for member, names in found.items()}


# Ids per OR search when leavers are confirmed together: a short filter, a few dozen entries an answer.
LOOKUP_BATCH = 50


def exact_filter(attribute: str, value: str) -> str:
    """`(attribute=value)` with the value escaped (RFC 4515): `*`, `(`, `)`, `\\` and NUL lose their meaning."""
    return f"({attribute}={escape_filter_chars(value)})"


def answered_entries(config: LdapSourceConfig, connection: ldap3.Connection, base: str) -> list[Mapping[str, Any]]:
    """The entries a lookup's search found; SearchIncomplete when it did not end in success, or was referred
    elsewhere (unless referrals are ignored): the person may be where it was referred, so "not found" would
    be a guess, and a guess disables a leaver who is still there."""
    description = str(connection.result.get("description", ""))
    if description != "success":
        raise SearchIncomplete(f"search of {base} ended with {description}")
    responses = connection.response or []
    if config.referrals == "incomplete" and any(response.get("type") == "searchResRef" for response in responses):
        raise SearchIncomplete(f"search of {base} was referred to another server (not followed)")
    return [response for response in responses if response.get("type") == "searchResEntry"]


def lookup_entry(config: LdapSourceConfig, connection: ldap3.Connection, external_id: str) -> Found | NotFound:
    base = config.lookup_base_dn or config.base_dn
    search_filter = exact_filter(config.id_attribute, external_id)
    connection.search(base, search_filter, search_scope=ldap3.SUBTREE, attributes=requested_attributes(config))
    entries = answered_entries(config, connection, base)
    if not entries:
        return NotFound()
    # The server matched with the attribute's own rule (uid ignores case); prefer the entry equal as written.
    entry = next((item for item in entries if external_id in _values(item, config.id_attribute)), entries[0])
    groups: tuple[str, ...] | None = None
    if config.groups is not None:
        groups = _groups_of(config.groups, entry, {})
        if not groups and config.groups.base_dn is not None:
            groups = groups_of_member(config.groups, connection, str(entry["dn"]))
    return Found(entry_record(config, entry, groups))


def lookup_entries(
    config: LdapSourceConfig, connection: ldap3.Connection, external_ids: Sequence[str]
) -> dict[str, Found | NotFound]:
    """One search for several ids; the settled ones (see `settle_lookups`). Found records carry no groups: a
    found leaver is only left alone."""
    base = config.lookup_base_dn or config.base_dn
    search_filter = "(|" + "".join(exact_filter(config.id_attribute, value) for value in external_ids) + ")"
    connection.search(base, search_filter, search_scope=ldap3.SUBTREE, attributes=requested_attributes(config))
    entries = answered_entries(config, connection, base)
    settled = settle_lookups(external_ids, [_values(entry, config.id_attribute) for entry in entries])
    return {
        external_id: NotFound() if index is None else Found(entry_record(config, entries[index], None))
        for external_id, index in settled.items()
    }


def groups_of_member(groups: LdapGroupsSpec, connection: ldap3.Connection, member_dn: str) -> tuple[str, ...]:
    """Names of the groups under the groups base whose member attribute holds `member_dn`."""
    search_filter = (
        f"(&{exact_filter('objectClass', groups.object_class)}{exact_filter(groups.member_attribute, member_dn)})"
    )
    connection.search(groups.base_dn, search_filter, search_scope=ldap3.SUBTREE, attributes=[groups.name_attribute])
    description = str(connection.result.get("description", ""))
    if description != "success":
        raise SearchIncomplete(f"search of {groups.base_dn} ended with {description}")
    names = {
        _values(response, groups.name_attribute)[0]
        for response in connection.response or []
        if response.get("type") == "searchResEntry" and _values(response, groups.name_attribute)
    }
    return tuple(sorted(names))


def _groups_of(
    groups: LdapGroupsSpec | None, entry: Mapping[str, Any], memberships: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...] | None:
    if groups is None:
        return None
    if groups.use_member_of:
        member_of = _values(entry, groups.member_of_attribute)
        if member_of:
            return tuple(sorted({first_rdn_value(dn) for dn in member_of}))
    return memberships.get(dn_key(str(entry["dn"])), ())


def entry_record(config: LdapSourceConfig, entry: Mapping[str, Any], groups: tuple[str, ...] | None) -> SourceRecord:
    """Fields named as configured (the server may spell them in another case); one value as a string, several
    as a tuple; values that are not UTF-8 text (photos, binary GUIDs) are left out."""
    dn = str(entry["dn"])
    spelled = _spellings(config.attributes, config.id_attribute)
    fields: dict[str, FieldValue] = {DN_FIELD: dn}
    raw: Mapping[str, list[bytes]] = entry.get("raw_attributes", {})
    for name, raw_values in raw.items():
        field_name = spelled.get(name.lower())
        if field_name is None:
            continue  # memberOf, asked for only to find groups
        values = _texts(raw_values)
        if values:
            fields[field_name] = values[0] if len(values) == 1 else values
    if groups is not None:
        fields[GROUPS_FIELD] = groups
    return SourceRecord(config.name, fields, dn)


@functools.lru_cache(maxsize=64)
def _spellings(attributes: tuple[str, ...], id_attribute: str) -> Mapping[str, str]:
    """Each configured attribute name by its lower case (worked out once, not per entry)."""
    return MappingProxyType({name.lower(): name for name in (*attributes, id_attribute)})


def _values(entry: Mapping[str, Any], name: str) -> tuple[str, ...]:
    raw: Mapping[str, list[bytes]] = entry.get("raw_attributes", {})
    lowered = name.lower()
    return tuple(text for key, values in raw.items() if key.lower() == lowered for text in _texts(values))


def _texts(values: Sequence[bytes]) -> tuple[str, ...]:
    """The values that are UTF-8 text, decoded."""
    try:
        return tuple([value.decode("utf-8") for value in values])  # all of them, almost always
    except UnicodeDecodeError:
        pass
    texts: list[str] = []
    for value in values:
        try:
            texts.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return tuple(texts)


def escape_dn_value(value: str) -> str:
    """An attribute value ready for a DN (RFC 4514): escape_rdn, with NUL written as `\\00`.

    ldap3's escape_rdn puts a backslash before a raw NUL, which slapd rejects as invalidDNSyntax.
    """
    if not value:
        raise ValueError("an empty value cannot name an entry")
    escaped: str = escape_rdn(value)
    return escaped.replace("\\\x00", "\\00")


def unescape_dn_value(value: str) -> str:
    """An RDN value as text: `\\,` -> `,`, `\\2C` -> `,` (hex pairs are UTF-8 bytes, RFC 4514 section 2.4)."""
    out = bytearray()
    position = 0
    for match in _HEX_ESCAPE.finditer(value):
        out += value[position : match.start()].encode("utf-8")
        out += bytes.fromhex(match.group(1)) if match.group(1) else match.group(2).encode("utf-8")
        position = match.end()
    out += value[position:].encode("utf-8")
    return out.decode("utf-8", errors="replace")


def _components(dn: str) -> list[tuple[str, str]] | None:
    # ldap3's strip=True breaks an escaped trailing space (`cn=a\\ `), strip=False a space after a comma.
    for strip in (False, True):
        try:
            return [(attribute, value) for attribute, value, _ in parse_dn(dn, escape=False, strip=strip)]
        except ldap_errors.LDAPInvalidDnError:
            continue
    return None


def first_rdn_value(dn: str) -> str:
    """The value of a DN's first RDN, unescaped (the group name of a memberOf value); the DN when unparsable."""
    components = _components(dn)
    return unescape_dn_value(components[0][1]) if components else dn


def dn_key(dn: str) -> str:
    """A DN in a form where differences of case and escaping do not matter, to compare member values."""
    components = _components(dn)
    if components is None:
        return dn.strip().lower()
    return ",".join(f"{attribute.lower()}={unescape_dn_value(value).lower()}" for attribute, value in components)
