"""The real slapd the suite relies on: paged searches return everything beyond the size limit."""

from __future__ import annotations

import ldap3

from agent.settings import LdapConnection
from agent.stack.slapd import SizeLimits
from tests.harness.ldap_directory import SUFFIX, DirectoryFactory, numbered_people

PEOPLE = 1200
SOFT_LIMIT = 500
PAGE_SIZE = 200


def _bind(connection: LdapConnection) -> ldap3.Connection:
    server = ldap3.Server(connection.url, connect_timeout=5)
    return ldap3.Connection(
        server,
        user=connection.bind_dn,
        password=connection.bind_password.reveal(),
        auto_bind=True,
        raise_exceptions=True,
        receive_timeout=30,
    )


def test_paged_search_returns_more_entries_than_the_size_limit(ldap_directory: DirectoryFactory) -> None:
    directory = ldap_directory(numbered_people(PEOPLE), limits=SizeLimits(soft=SOFT_LIMIT, hard=SOFT_LIMIT))
    reader = _bind(directory.reader)

    # An unpaged search stops at the limit, and ldap3 only says so in the result, not by raising.
    reader.search(f"ou=people,{SUFFIX}", "(objectClass=inetOrgPerson)", attributes=["uid"])
    assert len(reader.entries) == SOFT_LIMIT
    assert reader.result["description"] == "sizeLimitExceeded"

    entries = reader.extend.standard.paged_search(
        f"ou=people,{SUFFIX}",
        "(objectClass=inetOrgPerson)",
        attributes=["uid", "entryUUID"],
        paged_size=PAGE_SIZE,
        generator=True,
    )
    uids = {str(entry["attributes"]["uid"][0]) for entry in entries if entry.get("type") == "searchResEntry"}
    assert uids == {person.uid for person in directory.people}
    assert len(uids) == PEOPLE


def test_demo_directory_is_served(demo_ldap: LdapConnection) -> None:
    connection = _bind(demo_ldap)
    connection.search(demo_ldap.base_dn, "(objectClass=inetOrgPerson)", attributes=["uid", "mail", "entryUUID"])
    assert len(connection.entries) >= 20
    assert all(entry.entryUUID.value for entry in connection.entries)
    connection.search(demo_ldap.base_dn, "(objectClass=groupOfNames)", attributes=["cn", "member"])
    assert {str(entry.cn) for entry in connection.entries} >= {"finance", "admins"}
