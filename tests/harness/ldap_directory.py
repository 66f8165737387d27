"""Throwaway LDAP directories for tests: generated LDIF, loaded with slapadd into a real slapd."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from agent.secrets import Secret
from agent.settings import LdapConnection
from agent.stack.processes import free_port
from agent.stack.slapd import SizeLimits, SlapdInstance, ssha

SUFFIX = "dc=test,dc=example"
READER_PASSWORD_BYTES = 18


@dataclass(frozen=True)
class Person:
    uid: str
    given_name: str
    surname: str
    mail: str | None = None
    employee_number: str | None = None
    department: str | None = None
    title: str | None = None


def person_ldif(person: Person, suffix: str = SUFFIX) -> str:
    lines = [
        f"dn: uid={person.uid},ou=people,{suffix}",
        "objectClass: inetOrgPerson",
        f"uid: {person.uid}",
        f"cn: {person.given_name} {person.surname}",
        f"givenName: {person.given_name}",
        f"sn: {person.surname}",
    ]
    optional = {
        "mail": person.mail,
        "employeeNumber": person.employee_number,
        "departmentNumber": person.department,
        "title": person.title,
    }
    lines += [f"{name}: {value}" for name, value in optional.items() if value is not None]
    return "\n".join(lines) + "\n"


def numbered_people(count: int, prefix: str = "user") -> list[Person]:
    return [
        Person(f"{prefix}{index:05d}", "Test", f"Person{index}", f"{prefix}{index:05d}@example.org", str(10000 + index))
        for index in range(count)
    ]


def directory_ldif(people: list[Person], reader_password: Secret, suffix: str = SUFFIX) -> str:
    """Base entries, a `cn=reader` account (size limits apply to it, unlike the root DN), and the people."""
    top = suffix.split(",", maxsplit=1)[0].split("=")[1]
    header = (
        f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: {top}\no: Test\n\n"
        f"dn: ou=people,{suffix}\nobjectClass: organizationalUnit\nou: people\n\n"
        f"dn: ou=groups,{suffix}\nobjectClass: organizationalUnit\nou: groups\n\n"
        f"dn: cn=reader,{suffix}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: reader\nuserPassword: {ssha(reader_password.reveal())}\n\n"
    )
    return header + "\n".join(person_ldif(person, suffix) for person in people)


@dataclass
class TestDirectory:
    """A running slapd loaded with generated entries; `reader` is bound by size limits, `admin` is not."""

    instance: SlapdInstance
    reader_password: Secret
    people: list[Person] = field(default_factory=list)

    @property
    def admin(self) -> LdapConnection:
        return self.instance.connection()

    @property
    def reader(self) -> LdapConnection:
        admin = self.admin
        return LdapConnection(admin.url, f"cn=reader,{SUFFIX}", self.reader_password, admin.base_dn)


class DirectoryFactory:
    """Creates directories under a test's tmp path and stops every slapd it started."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._started: list[SlapdInstance] = []

    def __call__(self, people: list[Person], *, limits: SizeLimits | None = None) -> TestDirectory:
        folder = self._root / f"slapd-{len(self._started)}"
        instance = SlapdInstance(folder, password=Secret(secrets.token_urlsafe(18)), suffix=SUFFIX, limits=limits)
        reader_password = Secret(secrets.token_urlsafe(READER_PASSWORD_BYTES))
        ldif = folder.parent / f"{folder.name}.ldif"
        folder.parent.mkdir(parents=True, exist_ok=True)
        ldif.write_text(directory_ldif(people, reader_password), encoding="utf-8")
        instance.load(ldif)
        instance.start(free_port())
        self._started.append(instance)
        return TestDirectory(instance, reader_password, people)

    def stop_all(self) -> None:
        for instance in self._started:
            instance.stop()
