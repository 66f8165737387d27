"""The demo LDIF: well-formed, deterministic, and internally consistent (references resolve)."""

from __future__ import annotations

import base64
from collections import Counter

import pytest

from agent.stack.demo_directory import PEOPLE, demo_ldif, ldif_line, mail_domain

pytestmark = pytest.mark.unit

Entry = dict[str, list[str]]


def parse_ldif(text: str) -> dict[str, Entry]:
    """A minimal LDIF reader for what demo_ldif writes: no folded lines, `::` for base64."""
    entries: dict[str, Entry] = {}
    for record in text.strip().split("\n\n"):
        entry: Entry = {}
        for line in record.splitlines():
            name, _, value = line.partition(":")
            encoded = value.startswith(":")
            text = base64.b64decode(value[1:].strip()).decode() if encoded else value.removeprefix(" ")
            entry.setdefault(name, []).append(text)
        dn = entry.pop("dn")[0]
        assert dn not in entries, f"duplicate dn {dn}"
        entries[dn] = entry
    return entries


@pytest.fixture(scope="module")
def entries() -> dict[str, Entry]:
    return parse_ldif(demo_ldif())


def test_is_deterministic() -> None:
    assert demo_ldif() == demo_ldif()


def test_parents_come_before_children(entries: dict[str, Entry]) -> None:
    seen: set[str] = set()
    for dn in entries:
        parent = dn.split(",", 1)[1] if dn != "dc=example,dc=org" else None
        assert parent is None or parent in seen, f"{dn} comes before its parent"
        seen.add(dn)


def test_has_the_expected_containers(entries: dict[str, Entry]) -> None:
    for unit in ("people", "groups", "departments"):
        assert f"ou={unit},dc=example,dc=org" in entries


def test_people_have_the_attributes_mappers_use(entries: dict[str, Entry]) -> None:
    people = {dn: entry for dn, entry in entries.items() if "inetOrgPerson" in entry["objectClass"]}
    assert len(people) == len(PEOPLE) >= 20
    for entry in people.values():
        for attribute in ("uid", "cn", "sn", "givenName", "mail", "employeeNumber", "departmentNumber", "title"):
            assert len(entry.get(attribute, [])) == 1, attribute
    for attribute in ("uid", "mail", "employeeNumber"):
        counts = Counter(entry[attribute][0] for entry in people.values())
        assert max(counts.values()) == 1, f"{attribute} is not unique"


def test_references_resolve(entries: dict[str, Entry]) -> None:
    departments = {entry["businessCategory"][0] for entry in entries.values() if "businessCategory" in entry}
    for dn, entry in entries.items():
        for target in entry.get("member", []) + entry.get("manager", []):
            assert target in entries, f"{dn} points at missing {target}"
        for code in entry.get("departmentNumber", []):
            assert code in departments, f"{dn} has unknown department {code}"


def test_groups_include_the_ones_reviews_need(entries: dict[str, Entry]) -> None:
    groups = {entry["cn"][0]: entry for entry in entries.values() if "groupOfNames" in entry["objectClass"]}
    assert {"engineering", "finance", "admins", "support"} <= set(groups)
    assert all(group["member"] for group in groups.values())


def test_non_ascii_names_survive(entries: dict[str, Entry]) -> None:
    assert entries["uid=jnunez,ou=people,dc=example,dc=org"]["cn"] == ["José Núñez"]


def test_other_suffix() -> None:
    entries = parse_ldif(demo_ldif("dc=acme,dc=test"))
    assert "uid=acarter,ou=people,dc=acme,dc=test" in entries
    assert entries["uid=acarter,ou=people,dc=acme,dc=test"]["mail"] == ["acarter@acme.test"]
    assert entries["dc=acme,dc=test"]["dc"] == ["acme"]


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("plain", "cn: plain"),
        ("O'Brien", "cn: O'Brien"),
        ("Müller", "cn:: TcO8bGxlcg=="),
        (" leading space", "cn:: IGxlYWRpbmcgc3BhY2U="),
        (":colon", "cn:: OmNvbG9u"),
        ("trailing ", "cn:: dHJhaWxpbmcg"),
    ],
)
def test_ldif_line(value: str, line: str) -> None:
    assert ldif_line("cn", value) == line


def test_mail_domain() -> None:
    assert mail_domain("ou=x,dc=example,dc=org") == "example.org"
