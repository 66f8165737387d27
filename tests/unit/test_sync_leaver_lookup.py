"""Confirming leavers: every creating source must say "not found"; a source that cannot answer is not asked
again in the same run, so a source that is down holds the remaining leavers at once."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from agent.config.source import parse_document
from agent.errors import SourceUnavailable
from agent.sync.leavers import LeaverLookup, listed_controls
from agent.sync.mapper_file import mapper_from_document
from agent.sync.mapper_spec import MapperSpec
from agent.sync.model import Found, Left, NotFound, SourceRead, SourceRecord
from agent.sync.sources.common import settle_lookups

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
    lookup = LeaverLookup({"hr": hr, "ldap": ldap}, mapper())
    assert isinstance(lookup("e1"), Found)
    assert isinstance(lookup("e2"), Found)
    assert lookup("e3") == NotFound()
    assert hr.asked == ["e1", "e2", "e3"]
    assert ldap.asked == ["e2", "e3"]  # e1 was found in hr: ldap is not asked


def test_a_source_that_cannot_answer_is_not_asked_again_in_the_run() -> None:
    hr, ldap = FakeSource("hr", down=True), FakeSource("ldap")
    lookup = LeaverLookup({"hr": hr, "ldap": ldap}, mapper())
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
        LeaverLookup({"hr": hr, "ldap": FakeSource("ldap")}, mapper())("e1")
    hr.down = False
    assert LeaverLookup({"hr": hr, "ldap": FakeSource("ldap")}, mapper())("e1") == NotFound()
    assert hr.asked == ["e1", "e1"]


class BatchSource(FakeSource):
    """A source that answers many ids at once, but leaves `unsettled` ones to single lookups."""

    def __init__(self, name: str, present: frozenset[str] = frozenset(), unsettled: frozenset[str] = frozenset(),
                 down: bool = False) -> None:  # fmt: skip
        super().__init__(name, present, down)
        self.unsettled = unsettled
        self.batches: list[list[str]] = []

    def lookup_many(self, external_ids: Sequence[str]) -> dict[str, Found | NotFound]:
        self.batches.append(list(external_ids))
        if self.down:
            raise SourceUnavailable(f"source {self.name}: connection refused")
        return {
            wanted: Found(SourceRecord(self.name, {"ID": wanted})) if wanted in self.present else NotFound()
            for wanted in external_ids
            if wanted not in self.unsettled
        }


def test_prefetched_answers_are_given_from_memory_and_unsettled_ids_are_asked_alone() -> None:
    hr = BatchSource("hr", frozenset({"e1"}), unsettled=frozenset({"e4"}))
    ldap = BatchSource("ldap", frozenset({"e2"}))
    lookup = LeaverLookup({"hr": hr, "ldap": ldap}, mapper())
    lookup.prefetch(["e1", "e2", "e3", "e4", "e3"])
    assert hr.batches == [["e1", "e2", "e3", "e4"]]
    assert ldap.batches == [["e2", "e3"]]  # found in hr (e1) or unsettled there (e4): not asked
    assert isinstance(lookup("e1"), Found) and isinstance(lookup("e2"), Found)
    assert lookup("e3") == NotFound()  # both sources said so in their batch
    assert hr.asked == [] and ldap.asked == []
    assert lookup("e4") == NotFound()  # asked alone, of every source, as without a batch
    assert hr.asked == ["e4"] and ldap.asked == ["e4"]


def test_a_source_down_in_the_batch_holds_every_leaver_and_the_next_source_is_not_asked() -> None:
    hr, ldap = BatchSource("hr", down=True), BatchSource("ldap")
    lookup = LeaverLookup({"hr": hr, "ldap": ldap}, mapper())
    lookup.prefetch(["e1", "e2"])
    for external_id in ("e1", "e2"):
        with pytest.raises(SourceUnavailable, match=r"\(not asked again in this run\)"):
            lookup(external_id)
    assert ldap.batches == [] and ldap.asked == [] and hr.asked == []


def test_a_source_without_batches_leaves_every_leaver_to_single_lookups() -> None:
    hr, ldap = FakeSource("hr"), BatchSource("ldap", frozenset({"e1"}))
    lookup = LeaverLookup({"hr": hr, "ldap": ldap}, mapper())
    lookup.prefetch(["e1", "e2"])
    assert ldap.batches == []  # the sources are asked in order, and hr comes first
    assert isinstance(lookup("e1"), Found) and lookup("e2") == NotFound()
    assert hr.asked == ["e1", "e2"] and ldap.asked == ["e1", "e2"]


class SlowBatchSource(BatchSource):
    """Its batch answers only once the test lets it (`release`)."""

    def __init__(self, name: str, present: frozenset[str] = frozenset(), fails: bool = False) -> None:
        super().__init__(name, present)
        self.release = threading.Event()
        self.fails = fails

    def lookup_many(self, external_ids: Sequence[str]) -> dict[str, Found | NotFound]:
        assert self.release.wait(timeout=10)
        if self.fails:
            raise RuntimeError("an unforeseen failure in the batch")
        return super().lookup_many(external_ids)


def _look_up_on_a_thread(lookup: LeaverLookup, external_id: str) -> tuple[threading.Thread, list[object]]:
    answers: list[object] = []

    def ask() -> None:
        try:
            answers.append(lookup(external_id))
        except Exception as error:  # noqa: BLE001 - kept for the test to inspect
            answers.append(error)

    thread = threading.Thread(target=ask)
    thread.start()
    return thread, answers


def test_a_lookup_during_a_prefetch_on_its_thread_waits_for_it_and_is_answered_from_memory() -> None:
    hr, ldap = SlowBatchSource("hr", frozenset({"e1"})), BatchSource("ldap")
    lookup = LeaverLookup({"hr": hr, "ldap": ldap}, mapper())
    lookup.start_prefetch(["e1", "e2"])
    thread, answers = _look_up_on_a_thread(lookup, "e1")
    thread.join(timeout=0.2)
    assert answers == [] and hr.asked == []  # still waiting for the batch, not asking alone
    hr.release.set()
    thread.join(timeout=10)
    assert len(answers) == 1 and isinstance(answers[0], Found)
    assert lookup("e2") == NotFound()
    assert hr.asked == [] and ldap.asked == [] and ldap.batches == [["e2"]]
    lookup.join_prefetch()


def test_an_unforeseen_failure_of_a_prefetch_on_its_thread_is_raised_by_every_lookup() -> None:
    hr = SlowBatchSource("hr", frozenset({"e1"}), fails=True)
    lookup = LeaverLookup({"hr": hr, "ldap": BatchSource("ldap")}, mapper())
    lookup.start_prefetch(["e1"])
    hr.release.set()
    for external_id in ("e1", "e2"):
        with pytest.raises(RuntimeError, match="unforeseen failure"):
            lookup(external_id)
    assert hr.asked == []


def test_no_leavers_start_no_prefetch_thread() -> None:
    hr = SlowBatchSource("hr")
    lookup = LeaverLookup({"hr": hr, "ldap": BatchSource("ldap")}, mapper())
    before = threading.active_count()
    lookup.start_prefetch([])
    assert threading.active_count() == before
    assert lookup("e9") == NotFound()  # asked alone: nothing was prefetched
    assert hr.batches == [] and hr.asked == ["e9"]


@pytest.mark.parametrize(
    ("requested", "returned", "settled"),
    [
        (["a", "b"], [], {"a": None, "b": None}),
        (["a", "b"], [("a",)], {"a": 0, "b": None}),
        # The attribute's rule may ignore case: the entry answers "A" too, and every entry is accounted for.
        (["A", "b"], [("a",)], {"A": 0, "b": None}),
        # An entry no requested id accounts for: the server matched by a rule not known here; nothing is "not found".
        (["a", "b"], [("a",), ("zzz",)], {"a": 0}),
        # Equal but for spaces or hyphens (numeric or telephone-number rules): "b 1" is left to a single lookup.
        (["b1", "b 1"], [("B1",)], {"b1": 0}),
        (["12-34", "c"], [("1234",), ("c",)], {"c": 1}),
    ],
)
def test_settle_lookups_says_not_found_only_when_sure(
    requested: list[str], returned: list[tuple[str, ...]], settled: dict[str, int | None]
) -> None:
    assert settle_lookups(requested, returned) == settled


def test_a_lookup_that_finds_none_of_the_ids_its_listing_returned_confirms_no_one() -> None:
    """A lookup searching another field than the listing (say entryUUID for an employeeNumber id) finds no one:
    every candidate would be 'confirmed' gone. It is proven on ids the listing returned first."""
    hr = FakeSource("hr", frozenset({"e1", "e2"}))
    broken = FakeSource("ldap")  # its listing returned e1 and e2, its lookup finds neither
    lookup = LeaverLookup({"hr": hr, "ldap": broken}, mapper(), {"hr": ("e1",), "ldap": ("e1", "e2")})
    with pytest.raises(SourceUnavailable, match=r"source 'ldap': its exact lookup found none of 2 id\(s\)"):
        lookup("e9")
    with pytest.raises(SourceUnavailable, match=r"not asked again in this run"):
        lookup("e8")
    assert hr.asked == ["e1", "e9", "e8"]  # proven once, on its first control
    assert broken.asked == ["e1", "e2"]  # the candidates themselves were never asked of it


def test_a_lookup_proven_once_answers_for_the_rest_of_the_run() -> None:
    hr, ldap = FakeSource("hr", frozenset({"e1"})), FakeSource("ldap", frozenset({"e2"}))
    # e0 is no longer in hr (deleted since the listing): one found control is enough.
    lookup = LeaverLookup({"hr": hr, "ldap": ldap}, mapper(), {"hr": ("e0", "e1"), "ldap": ("e2",)})
    assert lookup("e3") == NotFound() and lookup("e4") == NotFound()
    assert hr.asked == ["e0", "e1", "e3", "e4"]
    assert ldap.asked == ["e2", "e3", "e4"]


def test_the_controls_are_ids_the_complete_reads_listed_as_the_mapper_makes_them() -> None:
    records = tuple(SourceRecord("hr", {"ID": f" E{i} ", "Mail": f"p{i}@example.com"}) for i in range(5))
    spec = mapper_from_document(
        parse_document(MAPPER.replace("{from: ID}", "{from: ID, transform: [strip, lower]}"), "m.yaml")
    )
    reads = {
        "hr": SourceRead("hr", (SourceRecord("hr", {"Mail": "no-id@example.com"}), *records), complete=True),
        "ldap": SourceRead("ldap", (SourceRecord("ldap", {"employeeNumber": "e7", "uid": "x"}),), complete=False),
    }
    assert listed_controls(reads, spec) == {"hr": ("e0", "e1", "e2")}  # the record without an id maps to none


STATUS_MAPPER = """\
name: test
realm: workforce
id: eid
sources:
  hr: {priority: 20, fields: [eid, status, end_date, timezone], creates_users: true}
  ldap: {priority: 10, fields: [username], creates_users: true}
fields:
  hr:
    eid: {from: ID}
    status: {from: Status, map: {Active: active, Terminated: inactive}}
    end_date: {from: EndDate, date: "%Y-%m-%d", end_of_day: true}
    timezone: {from: TimeZone, default: UTC}
  ldap:
    eid: {from: employeeNumber}
    username: {from: uid}
"""
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class RecordSource(FakeSource):
    """A source whose lookup finds whole records (as a listing filtered to the active would leave them out)."""

    def __init__(self, name: str, records: dict[str, dict[str, str]]) -> None:
        super().__init__(name, frozenset(records))
        self.records = records

    def lookup(self, external_id: str) -> Found | NotFound:
        found = super().lookup(external_id)
        return Found(SourceRecord(self.name, self.records[external_id])) if isinstance(found, Found) else found


@pytest.mark.parametrize(
    ("fields", "left"),
    [
        ({"Status": "Terminated"}, "hr says inactive"),
        ({"Status": "Active", "EndDate": "2026-11-30"}, "end_date 2026-12-01T00:00:00+00:00 has passed"),
        ({"Status": "Active", "EndDate": "2026-12-01", "TimeZone": "Pacific/Auckland"}, "end_date"),
        ({"Status": "Active", "EndDate": "2026-12-01", "TimeZone": "America/New_York"}, None),
        ({"Status": "Active"}, None),
        ({"Status": "Retired"}, None),  # a value the mapper cannot read: not taken as a leaver
    ],
)
def test_a_record_found_outside_the_listing_that_says_its_person_left_is_answered_left(
    fields: dict[str, str], left: str | None
) -> None:
    spec = mapper_from_document(parse_document(STATUS_MAPPER, "mappers/test.yaml"))
    hr = RecordSource("hr", {"e1": {"ID": "e1", **fields}})
    answer = LeaverLookup({"hr": hr, "ldap": FakeSource("ldap")}, spec, now=NOW)("e1")
    if left is None:
        assert isinstance(answer, Found)
    else:
        assert isinstance(answer, Left) and answer.reason.startswith(left)
    # Without a time to judge it by, a record found is found.
    assert isinstance(LeaverLookup({"hr": hr, "ldap": FakeSource("ldap")}, spec)("e1"), Found)
