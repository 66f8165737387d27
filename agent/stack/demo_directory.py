"""The demo directory loaded into the local slapd: people, groups and departments of a small company.

Pure and deterministic: the same suffix always gives the same LDIF text.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.stack.slapd import DEFAULT_SUFFIX


@dataclass(frozen=True)
class Department:
    code: str
    name: str


@dataclass(frozen=True)
class Person:
    uid: str
    given_name: str
    surname: str
    title: str
    department: str  # a Department code
    employee_type: str = "employee"
    manager: str | None = None  # uid of the manager


DEPARTMENTS = (
    Department("ENG", "Engineering"),
    Department("FIN", "Finance"),
    Department("SUP", "Support"),
    Department("HR", "Human Resources"),
    Department("SAL", "Sales"),
)

PEOPLE = (
    Person("acarter", "Alice", "Carter", "Chief Technology Officer", "ENG"),
    Person("bnguyen", "Bao", "Nguyen", "Engineering Manager", "ENG", manager="acarter"),
    Person("cmendes", "Carla", "Mendes", "Senior Software Engineer", "ENG", manager="bnguyen"),
    Person("dokafor", "David", "Okafor", "Software Engineer", "ENG", manager="bnguyen"),
    Person("eschmidt", "Eva", "Schmidt", "Site Reliability Engineer", "ENG", manager="bnguyen"),
    Person("fkowalski", "Filip", "Kowalski", "Software Engineer", "ENG", "contractor", "bnguyen"),
    Person("jnunez", "José", "Núñez", "Security Engineer", "ENG", manager="acarter"),
    Person("gharris", "Grace", "Harris", "Chief Financial Officer", "FIN"),
    Person("hsato", "Hiro", "Sato", "Accountant", "FIN", manager="gharris"),
    Person("iwilliams", "Isla", "Williams", "Payroll Specialist", "FIN", manager="gharris"),
    Person("jbrown", "Jamal", "Brown", "Financial Controller", "FIN", manager="gharris"),
    Person("kmuller", "Karin", "Müller", "Support Lead", "SUP"),
    Person("lrossi", "Luca", "Rossi", "Support Agent", "SUP", manager="kmuller"),
    Person("mkhan", "Maryam", "Khan", "Support Agent", "SUP", manager="kmuller"),
    Person("nlarsen", "Nils", "Larsen", "Support Agent", "SUP", "contractor", "kmuller"),
    Person("opetrova", "Olga", "Petrova", "HR Director", "HR"),
    Person("pdubois", "Pierre", "Dubois", "HR Generalist", "HR", manager="opetrova"),
    Person("qlee", "Quinn", "Lee", "Sales Director", "SAL"),
    Person("rgarcia", "Rosa", "Garcia", "Account Executive", "SAL", manager="qlee"),
    Person("sobrien", "Sean", "O'Brien", "Account Executive", "SAL", manager="qlee"),
)

# Group name -> member uids. Membership beyond departments (admins, approvers) is what reviews look at.
GROUPS: dict[str, tuple[str, ...]] = {
    "engineering": tuple(person.uid for person in PEOPLE if person.department == "ENG"),
    "finance": tuple(person.uid for person in PEOPLE if person.department == "FIN"),
    "support": tuple(person.uid for person in PEOPLE if person.department == "SUP"),
    "admins": ("acarter", "eschmidt", "jnunez"),
    "invoice-approvers": ("gharris", "jbrown"),
}

FIRST_EMPLOYEE_NUMBER = 1001


def mail_domain(suffix: str) -> str:
    """dc=example,dc=org -> example.org (other RDNs are ignored)."""
    return ".".join(rdn.split("=", 1)[1] for rdn in suffix.split(",") if rdn.strip().lower().startswith("dc="))


def person_dn(uid: str, suffix: str = DEFAULT_SUFFIX) -> str:
    return f"uid={uid},ou=people,{suffix}"


def group_dn(name: str, suffix: str = DEFAULT_SUFFIX) -> str:
    return f"cn={name},ou=groups,{suffix}"


def department_dn(department: Department, suffix: str = DEFAULT_SUFFIX) -> str:
    return f"ou={department.name},ou=departments,{suffix}"


def ldif_line(attribute: str, value: str) -> str:
    """One `attr: value` line; base64 (`attr:: ...`) when the value is not safe as plain LDIF text."""
    safe = value.isascii() and value.isprintable() and not value.startswith((" ", ":", "<")) and not value.endswith(" ")
    if safe:
        return f"{attribute}: {value}"
    return f"{attribute}:: {base64.b64encode(value.encode()).decode('ascii')}"


def ldif_entry(dn: str, attributes: Iterable[tuple[str, str]]) -> str:
    """One LDIF record: the dn line, then one line per (attribute, value)."""
    return "\n".join([ldif_line("dn", dn), *(ldif_line(name, value) for name, value in attributes)])


def _base_entries(suffix: str) -> list[str]:
    first_dc = suffix.split(",", maxsplit=1)[0].split("=", 1)[1]
    entries = [
        ldif_entry(
            suffix,
            [
                ("objectClass", "top"),
                ("objectClass", "dcObject"),
                ("objectClass", "organization"),
                ("dc", first_dc),
                ("o", "Example Organisation"),
            ],
        ),
    ]
    for unit in ("people", "groups", "departments"):
        entries.append(ldif_entry(f"ou={unit},{suffix}", [("objectClass", "organizationalUnit"), ("ou", unit)]))
    return entries


def _department_entry(department: Department, suffix: str) -> str:
    return ldif_entry(
        department_dn(department, suffix),
        [
            ("objectClass", "organizationalUnit"),
            ("ou", department.name),
            ("businessCategory", department.code),
            ("description", f"{department.name} department ({department.code})"),
        ],
    )


def _person_entry(person: Person, employee_number: int, suffix: str) -> str:
    attributes = [
        ("objectClass", "inetOrgPerson"),
        ("uid", person.uid),
        ("cn", f"{person.given_name} {person.surname}"),
        ("sn", person.surname),
        ("givenName", person.given_name),
        ("displayName", f"{person.given_name} {person.surname}"),
        ("mail", f"{person.uid}@{mail_domain(suffix)}"),
        ("employeeNumber", str(employee_number)),
        ("employeeType", person.employee_type),
        ("departmentNumber", person.department),
        ("title", person.title),
    ]
    if person.manager:
        attributes.append(("manager", person_dn(person.manager, suffix)))
    return ldif_entry(person_dn(person.uid, suffix), attributes)


def _group_entry(name: str, members: Sequence[str], suffix: str) -> str:
    attributes = [("objectClass", "groupOfNames"), ("cn", name)]
    attributes += [("member", person_dn(uid, suffix)) for uid in members]
    return ldif_entry(group_dn(name, suffix), attributes)


def demo_ldif(suffix: str = DEFAULT_SUFFIX) -> str:
    """The whole demo directory as LDIF, parents before children, for `slapadd`."""
    entries = _base_entries(suffix)
    entries += [_department_entry(department, suffix) for department in DEPARTMENTS]
    entries += [_person_entry(person, FIRST_EMPLOYEE_NUMBER + index, suffix) for index, person in enumerate(PEOPLE)]
    entries += [_group_entry(name, members, suffix) for name, members in GROUPS.items()]
    return "\n\n".join(entries) + "\n"
