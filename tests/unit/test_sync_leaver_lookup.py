"""Confirming leavers: every creating source must say "not found"; a source that cannot answer is not asked
again in the same run, so a source that is down holds the remaining leavers at once."""

from __future__ import annotations

import threading

import pytest

from agent.config.source import parse_document
from agent.errors import SourceUnavailable
from agent.sync.mapper_spec import MapperSpec, mapper_from_document
from agent.sync.model import Found, NotFound, SourceRead, SourceRecord
from agent.sync.runner import leaver_lookup

pytestmark = pytest.mark.unit

MAPPER = """\
name: test
realm: workforce
id: eid
sources:
  hr: {priority: 20, fields: [eid, email], creates_users: true}
  ldap: {priority: 10, fields: [username], creates_users: true}
fields:
  hr:
    eid: {from: ID}
    email: {from: Mail}
  ldap:
    eid: {from: employeeNumber}
    username: {from: uid}
"""


class FakeSource:
    def __init__(self, name: str, present: frozenset[str] = frozenset(), down: bool = False) -> None:
        self.name = name
        self.present = present
        self.down = down
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def read(self) -> SourceRead:
        return SourceRead(self.name, (), complete=True)

    def lookup(self, external_id: str) -> Found | NotFound:
        with self._lock:
            self.asked.append(external_id)
        if self.down:
            raise SourceUnavailable(f"source {self.name}: connection refused")
        if external_id in self.present:
            return Found(SourceRecord(self.name, {"ID": external_id}))
        return NotFound()


def mapper() -> MapperSpec:
    return mapper_from_document(parse_document(MAPPER, "mappers/test.yaml"))


def test_gone_only_when_every_creating_source_says_so() -> None:
    hr, ldap = FakeSource("hr", frozenset({"e1"})), FakeSource("ldap", frozenset({"e2"}))
    lookup = leaver_lookup({"hr": hr, "ldap": ldap}, mapper())
    assert isinstance(lookup("e1"), Found)
    assert isinstance(lookup("e2"), Found)
    assert lookup("e3") == NotFound()
    assert hr.asked == ["e1", "e2", "e3"]
    assert ldap.asked == ["e2", "e3"]  # e1 was found in hr: ldap is not asked


def test_a_source_that_cannot_answer_is_not_asked_again_in_the_run() -> None:
    hr, ldap = FakeSource("hr", down=True), FakeSource("ldap")
    lookup = leaver_lookup({"hr": hr, "ldap": ldap}, mapper())
    with pytest.raises(SourceUnavailable, match=r"connection refused$"):
        lookup("e1")
    for external_id in ("e2", "e3", "e4"):
        with pytest.raises(SourceUnavailable, match=r"connection refused \(not asked again in this run\)"):
            lookup(external_id)
    assert hr.asked == ["e1"]
    assert ldap.asked == []  # never "not found" on the word of the other source alone


def test_a_new_run_asks_a_source_that_failed_before() -> None:
    hr = FakeSource("hr", down=True)
    with pytest.raises(SourceUnavailable):
        leaver_lookup({"hr": hr, "ldap": FakeSource("ldap")}, mapper())("e1")
    hr.down = False
    assert leaver_lookup({"hr": hr, "ldap": FakeSource("ldap")}, mapper())("e1") == NotFound()
    assert hr.asked == ["e1", "e1"]
