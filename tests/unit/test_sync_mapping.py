"""The mapping engine: transforms, merge by priority, rejects (S07), lookahead, end of day across zones
(S14), rules with every operator, the trace, and properties over shuffled feeds."""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.source import parse_document
from agent.errors import ConfigError
from agent.stack.demo_directory import FIRST_EMPLOYEE_NUMBER, GROUPS, PEOPLE, group_dn
from agent.sync.mapper_file import load_mapper, mapper_from_document
from agent.sync.mapper_spec import MapperSpec
from agent.sync.mapping import MappingResult, map_sources
from agent.sync.model import DesiredUser, SourceRead, SourceRecord
from agent.sync.record_mapping import field_steps, map_record
from agent.sync.transforms import (
    TRANSFORMS,
    WrittenDate,
    apply_transforms,
    check_date_format,
    parse_date,
    render_template,
    template_fields,
)

pytestmark = pytest.mark.unit

SPEC_TEXT = """\
name: workforce
realm: workforce
id: employee_id
sources:
  hr:
    priority: 20
    fields: [employee_id, first_name, last_name, email, status, start_date, end_date, timezone,
             department, title, employment_type, training_date, locations]
  ldap: {priority: 10, fields: [employee_id, username, groups]}
fields:
  hr:
    employee_id: {from: EmployeeID, transform: [strip]}
    first_name: {from: FirstName, transform: [strip]}
    last_name: {from: LastName, transform: [strip]}
    email: {from: Email, transform: [strip, lower]}
    status: {from: Status, transform: [strip], map: {Active: active, "On leave": active, Terminated: inactive},
             default: active}
    start_date: {from: StartDate, date: "%Y-%m-%d"}
    end_date: {from: EndDate, date: "%Y-%m-%d", end_of_day: true}
    timezone: {from: TimeZone, default: UTC}
    department: {from: Department}
    title: {from: Title}
    employment_type: {from: Type, transform: [lower]}
    training_date: {from: TrainingDate, date: iso}
    locations: {from: Locations, split: ";", transform: [strip], values: all}
    username: {template: "{first_name}.{last_name}", transform: [ascii, lower]}
  ldap:
    employee_id: {from: employeeNumber}
    username: {from: uid, transform: [lower]}
    groups: {from: memberOf, transform: [first_rdn]}
    email: {from: mail, transform: [lower]}
attributes: [department, title, training_date, locations]
lookahead: 7d
rules:
  - name: everyone
    grant: {groups: [/staff]}
  - name: finance-staff
    when: {department: Finance}
    grant: {groups: [/finance], realm_roles: [finance-approver]}
  - name: it-admins
    when: {groups: {contains: admins}}
    grant: {realm_roles: [admin], client_roles: {realm-management: [view-users]}}
  - name: guards
    when: {title: Guard}
    grant: {groups: [/secure/inner]}
required_actions: [VERIFY_EMAIL]
mfa_roles: [admin, finance-approver]
mfa_groups: [/secure]
"""
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def spec_of(text: str) -> MapperSpec:
    return mapper_from_document(parse_document(text, "mappers/test.yaml"))


SPEC = spec_of(SPEC_TEXT)


def hr(employee_id: str, where: str | None = None, **fields: str | None) -> SourceRecord:
    """An HR row with sensible values; a field given as None is left out of the row."""
    row: dict[str, str | None] = {
        "EmployeeID": employee_id,
        "FirstName": "Ann",
        "LastName": f"Lee{employee_id}",
        "Email": f"p{employee_id}@example.org",
        "Status": "Active",
        "StartDate": "2020-01-01",
        "TimeZone": "Europe/London",
        "Department": "Sales",
        "Title": "Clerk",
        "Type": "Employee",
        **fields,
    }
    kept = {key: value for key, value in row.items() if value is not None}
    return SourceRecord("hr", kept, where or f"line {employee_id}")


def ldap(
    employee_id: str, uid: str | tuple[str, ...] = "", groups: Sequence[str] = (), where: str = ""
) -> SourceRecord:
    fields: dict[str, str | tuple[str, ...]] = {
        "employeeNumber": employee_id,
        "uid": uid or f"u{employee_id}",
        "memberOf": tuple(f"cn={group},ou=groups,dc=example,dc=org" for group in groups),
        "mail": f"u{employee_id}@example.org",
    }
    return SourceRecord("ldap", fields, where or f"uid=u{employee_id}")


def run(
    hr_records: Sequence[SourceRecord] = (),
    ldap_records: Sequence[SourceRecord] = (),
    now: datetime = NOW,
    spec: MapperSpec = SPEC,
    ldap_complete: bool = True,
) -> MappingResult:
    reads = [SourceRead("hr", tuple(hr_records), True), SourceRead("ldap", tuple(ldap_records), ldap_complete)]
    return map_sources(reads, spec, now)


def only_user(result: MappingResult) -> DesiredUser:
    assert not result.rejected, result.rejected
    (user,) = result.users
    return user


def steps(user: DesiredUser, what: str) -> list[tuple[str, bool]]:
    return [(step.because, step.granted) for step in user.trace if step.what == what]


# --- transforms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("strip", "  Ann Lee \t", "Ann Lee"),
        ("lower", "ANN.Lee", "ann.lee"),
        ("upper", "fin", "FIN"),
        ("title", "ann o'neil", "Ann O'Neil"),
        ("ascii", "José Núñez", "Jose Nunez"),
        ("ascii", "Karin Müller-Straße", "Karin Muller-Strasse"),
        ("ascii", "Øre Łódź Æsir", "Ore Lodz AEsir"),
        ("ascii", "李 Wei", " Wei"),
        ("collapse_spaces", "  Senior   Software\tEngineer ", "Senior Software Engineer"),
        ("remove_spaces", "mary ann.van der berg", "maryann.vanderberg"),
        ("first_rdn", "cn=admins,ou=groups,dc=example,dc=org", "admins"),
        ("first_rdn", r"cn=Smith\, John,ou=people", "Smith, John"),
        ("first_rdn", r"cn=a\2Cb+uid=x,ou=groups", "a,b"),
        ("first_rdn", "admins", "admins"),
    ],
)
def test_each_transform(name: str, text: str, expected: str) -> None:
    assert TRANSFORMS[name](text) == expected  # type: ignore[index]


def test_transforms_apply_in_the_order_written() -> None:
    assert apply_transforms(" José ", ("ascii", "upper", "strip")) == "JOSE"
    assert apply_transforms("A B", ("remove_spaces", "lower")) == "ab"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{first_name", "not a valid template"),
        ("first}", "not a valid template"),
        ("{}", "is not a field name"),
        ("{user.name}", "is not a field name"),
        ("{name[0]}", "is not a field name"),
        ("{name:>10}", "format spec"),
        ("{name!r}", "format spec or conversion"),
    ],
)
def test_templates_hold_only_plain_field_names(template: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        template_fields(template)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"a": "x", "b": "y"}, "x.y{}"),
        ({"a": "x", "b": ""}, None),
        ({"a": "x"}, None),
    ],
)
def test_render_template(values: Mapping[str, str], expected: str | None) -> None:
    assert template_fields("{a}.{b}{{}}") == ("a", "b")
    assert render_template("{a}.{b}{{}}", values) == expected


@pytest.mark.parametrize(
    ("text", "formats", "expected"),
    [
        ("2026-03-31", ("%Y-%m-%d",), WrittenDate(datetime(2026, 3, 31), date_only=True)),
        ("31/03/2026", ("%Y-%m-%d", "%d/%m/%Y"), WrittenDate(datetime(2026, 3, 31), date_only=True)),
        (" 2026-03-31 17:30 ", ("%Y-%m-%d %H:%M",), WrittenDate(datetime(2026, 3, 31, 17, 30), date_only=False)),
        ("2026-03-31", ("iso",), WrittenDate(datetime(2026, 3, 31), date_only=True)),
        ("2026-03-31T09:00:00Z", ("iso",), WrittenDate(datetime(2026, 3, 31, 9, tzinfo=UTC), date_only=False)),
        ("31.03.2026", ("%Y-%m-%d", "iso"), None),
        ("2026-02-30", ("%Y-%m-%d",), None),
        ("", ("iso",), None),
    ],
)
def test_parse_date(text: str, formats: tuple[str, ...], expected: WrittenDate | None) -> None:
    assert parse_date(text, formats) == expected


LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("written", "zone", "end_of_day", "utc"),
    [
        pytest.param(datetime(2026, 3, 31), LA, True, datetime(2026, 4, 1, 7, tzinfo=UTC), id="S14-la-end-of-day"),
        pytest.param(datetime(2026, 3, 31), LA, False, datetime(2026, 3, 31, 7, tzinfo=UTC), id="la-start-of-day"),
        pytest.param(datetime(2026, 3, 7), LA, True, datetime(2026, 3, 8, 8, tzinfo=UTC), id="day-before-dst-starts"),
        pytest.param(datetime(2026, 3, 8), LA, True, datetime(2026, 3, 9, 7, tzinfo=UTC), id="dst-starts-that-day"),
        pytest.param(datetime(2026, 11, 1), LA, True, datetime(2026, 11, 2, 8, tzinfo=UTC), id="dst-ends-that-day"),
        pytest.param(
            datetime(2026, 3, 31), ZoneInfo("Pacific/Kiritimati"), True, datetime(2026, 3, 31, 10, tzinfo=UTC), id="+14"
        ),
        pytest.param(
            datetime(2026, 3, 31), ZoneInfo("Asia/Tokyo"), True, datetime(2026, 3, 31, 15, tzinfo=UTC), id="tokyo"
        ),
    ],
)
def test_date_instants_in_the_workers_zone(written: datetime, zone: ZoneInfo, end_of_day: bool, utc: datetime) -> None:
    assert WrittenDate(written, date_only=True).instant(zone, end_of_day=end_of_day) == utc


def test_a_value_with_an_offset_keeps_its_instant() -> None:
    aware = datetime(2026, 3, 31, 9, tzinfo=UTC)
    assert WrittenDate(aware, date_only=False).instant(LA, end_of_day=True) == aware


@pytest.mark.parametrize(
    ("fmt", "fix"),
    [
        pytest.param("%d/%m", "write the year, month and day", id="no-year-reads-1900"),
        pytest.param("%m/%d", "write the year, month and day", id="no-year-us"),
        pytest.param("%Y-%m-%d %I:%M", "write the hour as %H, or %I with %p", id="12-hour-without-am-pm"),
        pytest.param("%Y-%m-%d %M", "write the hour as %H, or %I with %p", id="minutes-without-hours"),
    ],
)
def test_a_date_format_that_loses_what_it_writes_is_refused(fmt: str, fix: str) -> None:
    with pytest.raises(ValueError, match="loses information") as caught:
        check_date_format(fmt)
    assert str(caught.value).endswith(fix)
    # What it can still write to a coarser unit reads back: no seconds is not a loss.
    for fine in ("%Y-%m-%d", "%d/%m/%Y", "%Y-%m-%dT%H:%M", "%Y-%m-%d %I:%M %p", "%Y-%m-%dT%H:%M:%S.%f"):
        check_date_format(fine)


# --- one record's fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        ({"Email": "  Ann.Lee@Example.ORG "}, lambda u: u.email == "ann.lee@example.org"),
        ({"Status": "On leave"}, lambda u: u.status == "active"),
        ({"Status": " Terminated "}, lambda u: u.status == "inactive"),
        ({"Status": ""}, lambda u: u.status == "active"),
        ({"Status": None}, lambda u: u.status == "active"),
        (
            {"Locations": "London; Paris;;Berlin; "},
            lambda u: u.attributes["locations"] == ("London", "Paris", "Berlin"),
        ),
        ({"TrainingDate": "2025-01-31"}, lambda u: u.attributes["training_date"] == ("2025-01-31",)),
        ({"TimeZone": ""}, lambda u: u.start == datetime(2020, 1, 1, tzinfo=UTC)),
        ({"TimeZone": "Asia/Tokyo"}, lambda u: u.start == datetime(2019, 12, 31, 15, tzinfo=UTC)),
        ({"Department": ""}, lambda u: "department" not in u.attributes),
        ({"FirstName": " José ", "LastName": "Núñez"}, lambda u: (u.first_name, u.username) == ("José", "jose.nunez")),
    ],
)
def test_hr_fields(fields: dict[str, str | None], check: object) -> None:
    user = only_user(run([hr("1001", **fields)], [ldap("1001", uid="JNunez")] if "LastName" not in fields else []))
    assert callable(check)
    assert check(user)


def test_template_fallback_transliterates_only_when_asked() -> None:
    text = SPEC_TEXT.replace("transform: [ascii, lower]}", "transform: [lower]}")
    user = only_user(run([hr("1001", FirstName="José", LastName="Núñez")], spec=spec_of(text)))
    assert user.username == "josé.núñez"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param({"Status": "Retired"}, "status: 'Retired' is not in the value map", id="unmapped-status"),
        pytest.param({"StartDate": "31/03/2026"}, "start_date: '31/03/2026' is not a date (%Y-%m-%d)", id="bad-date"),
        pytest.param({"EndDate": "2026-13-01"}, "end_date: '2026-13-01' is not a date", id="bad-end-date"),
        pytest.param({"TrainingDate": "soon"}, "training_date: 'soon' is not a date (iso)", id="bad-iso-date"),
        pytest.param({"TimeZone": "Mars/Base"}, "timezone: unknown time zone 'Mars/Base'", id="unknown-zone"),
        pytest.param({"TimeZone": "../../etc/passwd"}, "timezone: unknown time zone", id="zone-path"),
        pytest.param({"EmployeeID": " "}, "missing id (EmployeeID is empty)", id="blank-id"),
        pytest.param({"EmployeeID": None}, "missing id (EmployeeID is empty)", id="no-id-column"),
        pytest.param({"Email": "not-an-address"}, "email: not an email address", id="bad-email"),
        pytest.param({"LastName": "L" * 260}, "username: longer than Keycloak keeps (264 characters", id="long-name"),
        pytest.param(
            {"Email": "e" * 244 + "@example.org"}, "email: longer than Keycloak keeps (256 characters", id="long-email"
        ),
        pytest.param({"StartDate": "x" * 100}, "start_date: '" + "x" * 37 + "...' is not a date", id="long-value-cut"),
    ],
)
def test_a_bad_record_is_rejected_and_the_rest_is_mapped(fields: dict[str, str | None], reason: str) -> None:
    bad = hr("1002", where="line 3", **fields)
    result = run([hr("1001", where="line 2"), bad, hr("1003", where="line 4")])
    assert [user.external_id for user in result.users] == ["1001", "1003"]
    (rejected,) = result.rejected
    assert (rejected.source, rejected.where) == ("hr", "line 3")
    assert reason in rejected.reason
    assert rejected.external_id == (None if "missing id" in reason else "1002")


def test_several_values_for_a_one_valued_field_reject_the_record() -> None:
    result = run([hr("1001")], [ldap("1001", uid=("ann", "ann2"))])
    assert result.users == ()
    reasons = sorted((item.source, item.reason) for item in result.rejected)
    assert reasons[1] == ("ldap", "username: 2 different values where one is expected")
    assert reasons[0][0] == "hr"
    assert "id '1001' is rejected at ldap uid=u1001" in reasons[0][1]


def test_the_same_value_twice_is_one_value() -> None:
    assert only_user(run([hr("1001")], [ldap("1001", uid=("Ann", "ann"))])).username == "ann"


def test_some_fields_of_the_test_mappers_take_the_plain_path_and_others_do_not() -> None:
    steps = {(source, step.name): step.plain for source, fields in SPEC.fields.items() for step in field_steps(fields)}
    assert steps[("hr", "first_name")] and steps[("ldap", "username")]
    assert not steps[("hr", "start_date")]  # a date
    assert not steps[("ldap", "groups")]  # every value kept


field_texts = st.one_of(
    st.none(),
    st.text(alphabet=" \tAbÉ;x", max_size=6),
    st.lists(st.text(alphabet=" Ab;x", max_size=4), max_size=3).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(uid=field_texts, mail=field_texts, number=field_texts)
def test_the_plain_path_gives_what_the_general_steps_give(
    uid: str | tuple[str, ...] | None, mail: str | tuple[str, ...] | None, number: str | tuple[str, ...] | None
) -> None:
    """A plain field's single value skips the general steps: the values, defaults and rejections are the same."""
    given_fields = {"uid": uid, "mail": mail, "employeeNumber": number}
    record = SourceRecord("ldap", {name: value for name, value in given_fields.items() if value is not None}, "dn")
    plain = field_steps(SPEC.fields["ldap"])
    general = tuple(replace(step, plain=False) for step in plain)
    assert any(step.plain for step in plain)
    assert map_record(record, "ldap", SPEC, plain) == map_record(record, "ldap", SPEC, general)


# --- merge by priority --------------------------------------------------------------------------------------


def test_hr_decides_names_and_status_ldap_decides_username_and_groups() -> None:
    user = only_user(
        run(
            [hr("1001", FirstName="Ann", LastName="Lee", Status="Terminated")],
            [ldap("1001", uid="ALEE", groups=["admins"])],
        )
    )
    assert (user.first_name, user.last_name, user.status) == ("Ann", "Lee", "inactive")
    assert user.email == "p1001@example.org"  # hr decides email; ldap's mail is only a fallback
    assert user.username == "alee"
    assert "admin" in user.realm_roles
    assert steps(user, "field username") == [("from ldap uid; over hr", True)]
    assert steps(user, "field email") == [("from hr Email; over ldap", True)]
    assert steps(user, "record hr") == [("line 1001", True)]
    assert steps(user, "record ldap") == [("uid=u1001", True)]


def test_fallbacks_fill_what_no_deciding_source_gives() -> None:
    user = only_user(run([hr("1001", FirstName="Ann", LastName="Lee", Email="")], [ldap("1001")]))
    assert user.email == "u1001@example.org"
    assert steps(user, "field email") == [("from ldap mail (fallback: no source that decides it has a value)", True)]
    hr_only = only_user(run([hr("1002", FirstName="Ann", LastName="Lee", Status="")]))
    assert hr_only.username == "ann.lee"
    assert steps(hr_only, "field username") == [
        ("from hr template {first_name}.{last_name} (fallback: no source that decides it has a value)", True)
    ]
    assert steps(hr_only, "field status") == [("default of hr (Status empty)", True)]
    assert steps(hr_only, "status active") == [("hr says active", True)]


def test_a_person_only_in_ldap_is_left_out_unless_ldap_creates_users() -> None:
    result = run([hr("1001")], [ldap("1001"), ldap("2002")])
    assert [user.external_id for user in result.users] == ["1001"]
    assert [(item.external_id, item.kind) for item in result.left_out] == [("2002", "no-creating-source")]
    assert "2002" not in result.listed_ids  # not in HR: the planner may treat the account as a leaver
    creating = spec_of(SPEC_TEXT.replace("{priority: 10, fields", "{priority: 10, creates_users: true, fields"))
    result = run([hr("1001")], [ldap("1001"), ldap("2002")], spec=creating)
    assert [user.external_id for user in result.users] == ["1001", "2002"]
    assert result.users[1].username == "u2002"
    assert result.users[1].email == "u2002@example.org"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((hr("1001"), ldap("1001", uid="alee")), (hr("1001"), ldap("1001", uid="asmith"))),
        ((hr("1001", Email="a@x.org"), ldap("1001")), (hr("1001", Email="b@x.org"), ldap("1001"))),
        ((hr("1001", LastName="Lee"),), (hr("1001", LastName="Smith"),)),
    ],
)
def test_renames_keep_the_external_id(before: tuple[SourceRecord, ...], after: tuple[SourceRecord, ...]) -> None:
    def one(records: tuple[SourceRecord, ...]) -> DesiredUser:
        return only_user(run([r for r in records if r.source == "hr"], [r for r in records if r.source == "ldap"]))

    first, second = one(before), one(after)
    assert first.external_id == second.external_id == "1001"
    assert (first.username, first.email) != (second.username, second.email)


# --- S07: bad rows rejected with reasons, the rest mapped ----------------------------------------------------


def test_s07_bad_rows_are_rejected_with_reasons_and_the_rest_is_mapped() -> None:
    hr_records = [
        hr("1001", where="line 2"),
        hr("1002", where="line 3"),
        hr("1002", where="line 9"),  # duplicate id in hr
        hr("1003", where="line 4", Email="shared@example.org"),
        hr("1004", where="line 5", Email="SHARED@example.org"),  # duplicate email, other case
        hr("", where="line 6"),  # missing id
        hr("1006", where="line 7", StartDate="yesterday"),  # bad date
        hr("1007", where="line 8", TimeZone="Europe/Atlantis"),  # unknown zone
        hr("1008", where="line 10"),
        hr("1009", where="line 11"),
        hr("1010", where="line 12"),
    ]
    ldap_records = [
        ldap("1002"),  # its hr records are rejected: so is this one
        ldap("1008", uid="same"),
        ldap("1009", uid="SAME"),  # duplicate username
        ldap("1010"),
    ]
    result = run(hr_records, ldap_records)
    assert [user.external_id for user in result.users] == ["1001", "1010"]
    reasons = {(item.source, item.where): item.reason for item in result.rejected}
    assert reasons == {
        ("hr", "line 3"): "duplicate id '1002' in hr (also at line 9)",
        ("hr", "line 9"): "duplicate id '1002' in hr (also at line 3)",
        ("ldap", "uid=u1002"): "id '1002' is rejected at hr line 3: duplicate id '1002' in hr (also at line 9)",
        ("hr", "line 4"): "duplicate email (also the email of id 1004)",
        ("hr", "line 5"): "duplicate email (also the email of id 1003)",
        ("hr", "line 6"): "missing id (EmployeeID is empty)",
        ("hr", "line 7"): "start_date: 'yesterday' is not a date (%Y-%m-%d)",
        ("hr", "line 8"): "timezone: unknown time zone 'Europe/Atlantis'",
        ("hr", "line 10"): "duplicate username (also the username of id 1009)",
        ("ldap", "uid=u1008"): "duplicate username (also the username of id 1009)",
        ("hr", "line 11"): "duplicate username (also the username of id 1008)",
        ("ldap", "uid=u1009"): "duplicate username (also the username of id 1008)",
    }
    assert result.listed_ids == {"1002", "1003", "1004", "1006", "1007", "1008", "1009"}


def test_a_long_external_id_is_cut_in_reasons() -> None:
    long_id = "E" * 200
    result = run([hr(long_id, where="line 2"), hr(long_id, where="line 3")], [ldap(long_id, where="uid=u")])
    reasons = {(item.source, item.where): item.reason for item in result.rejected}
    cut = "'" + "E" * 37 + "...'"
    assert reasons[("hr", "line 2")] == f"duplicate id {cut} in hr (also at line 3)"
    assert reasons[("ldap", "uid=u")].startswith(f"id {cut} is rejected at hr line 2: duplicate id {cut}")
    assert all(long_id not in reason for reason in reasons.values())
    assert {item.external_id for item in result.rejected} == {long_id}  # the record still carries the whole id


def test_a_leavers_email_reissued_to_a_new_hire_is_not_a_duplicate() -> None:
    result = run([hr("1001", Email="desk@example.org", Status="Terminated"), hr("1002", Email="desk@example.org")])
    assert not result.rejected
    assert [(user.external_id, user.status) for user in result.users] == [("1001", "inactive"), ("1002", "active")]


def test_a_mapper_naming_an_unknown_source_or_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ConfigError, match="source 'scim' is not in mapper 'workforce'"):
        map_sources([SourceRead("scim", (), True)], SPEC, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        map_sources([], SPEC, datetime(2026, 1, 1))  # naive: the point of the test


# --- incomplete reads ----------------------------------------------------------------------------------------


def test_a_person_missing_from_an_incomplete_read_is_left_as_it_is() -> None:
    result = run([hr("1001"), hr("1002")], [ldap("1001")], ldap_complete=False)
    assert [user.external_id for user in result.users] == ["1001"]
    assert [(item.external_id, item.kind) for item in result.left_out] == [("1002", "incomplete-source")]
    assert result.listed_ids == {"1002"}
    # Complete: the same person is a user, with the fallback username.
    assert [user.username for user in run([hr("1002")], []).users] == ["ann.lee1002"]


def test_a_source_without_a_read_counts_as_incomplete() -> None:
    result = map_sources([SourceRead("hr", (hr("1001"),), True)], SPEC, NOW)
    assert result.users == ()
    assert [item.kind for item in result.left_out] == ["incomplete-source"]


# --- start and end dates ----------------------------------------------------------------------------------------

MIDNIGHT = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "is_user"),
    [
        ("2026-06-09", False),  # 8 days ahead: beyond the 7d lookahead
        ("2026-06-08", True),  # exactly start - lookahead == now
        ("2026-06-02", True),
        ("2026-06-01", True),
        ("2020-01-01", True),
    ],
)
def test_future_hires_become_users_from_start_minus_lookahead(start: str, is_user: bool) -> None:
    result = run([hr("1001", StartDate=start, TimeZone="UTC")], [ldap("1001")], now=MIDNIGHT)
    assert not result.rejected
    if not is_user:
        assert result.users == ()
        (left,) = {(item.kind, item.reason) for item in result.left_out}
        assert left == (
            "future-start",
            "starts 2026-06-09T00:00:00+00:00; becomes a user from 2026-06-02T00:00:00+00:00",
        )
        assert result.listed_ids == {"1001"}
        return
    user = only_user(result)
    assert user.status == "active"  # created ahead; the planner keeps it disabled until `start`
    assert user.start == datetime.fromisoformat(start).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "now", "status"),
    [
        pytest.param("America/Los_Angeles", datetime(2026, 4, 1, 6, 59, 59, tzinfo=UTC), "active", id="la-before"),
        pytest.param("America/Los_Angeles", datetime(2026, 4, 1, 7, 0, 0, tzinfo=UTC), "inactive", id="la-at"),
        pytest.param("Asia/Tokyo", datetime(2026, 3, 31, 14, 59, 59, tzinfo=UTC), "active", id="tokyo-before"),
        pytest.param("Asia/Tokyo", datetime(2026, 3, 31, 15, 0, 0, tzinfo=UTC), "inactive", id="tokyo-at"),
        pytest.param("UTC", datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC), "active", id="utc-before"),
        pytest.param("UTC", datetime(2026, 4, 1, tzinfo=UTC), "inactive", id="utc-at"),
    ],
)
def test_s14_termination_at_the_end_of_day_in_the_workers_zone(zone: str, now: datetime, status: str) -> None:
    user = only_user(run([hr("1001", EndDate="2026-03-31", TimeZone=zone)], [ldap("1001")], now=now))
    assert user.status == status
    assert user.end is not None
    assert user.end.utcoffset() == ZoneInfo(zone).utcoffset(user.end.replace(tzinfo=None))
    if status == "inactive":
        assert ("end_date " + user.end.isoformat() + " has passed", True) in steps(user, "status inactive")


@pytest.mark.parametrize(("end", "ahead"), [("2026-06-30", True), ("2026-05-31", False), (None, False)])
def test_terminated_ahead_of_the_end_date_is_inactive_at_once_and_the_trace_says_why(
    end: str | None, ahead: bool
) -> None:
    """Fail closed: HR that enters a termination ahead of time with the status already Terminated ends access
    now, not at the end date; the trace tells the admin who expected otherwise that the status decided."""
    user = only_user(run([hr("1001", Status="Terminated", EndDate=end)], [ldap("1001")]))
    assert user.status == "inactive"
    [(because, _)] = steps(user, "status inactive")
    assert because.startswith("hr says inactive")
    assert ("is still ahead: the status decides" in because) is ahead


def test_an_end_date_before_the_start_is_an_earlier_employment() -> None:
    user = only_user(run([hr("1001", StartDate="2026-05-01", EndDate="2025-12-31")], [ldap("1001")]))
    assert (user.status, user.end) == ("active", None)
    assert steps(user, "end")[0][0].endswith("is before start_date: an earlier employment")


def test_an_end_date_at_the_start_ends_the_employment_at_once() -> None:
    spec = spec_of(SPEC_TEXT.replace(", end_of_day: true", ""))  # the end date is then that day's midnight
    result = run([hr("1001", StartDate="2026-05-31", EndDate="2026-05-31")], [ldap("1001")], spec=spec)
    user = only_user(result)
    assert user.end is not None and user.end == user.start
    assert user.status == "inactive"
    assert steps(user, "end") == []  # not taken for an earlier employment
    assert steps(user, "status inactive") == [(f"end_date {user.end.isoformat()} has passed", True)]


def test_the_lookahead_is_elapsed_time_and_the_reason_names_the_instant_it_ends() -> None:
    # 2026-03-10 in Los Angeles is 07:00Z (PDT); 7 days earlier, across the DST change of 03-08, is 23:00 PST.
    record = hr("1001", StartDate="2026-03-10", TimeZone="America/Los_Angeles")
    (reason,) = {item.reason for item in run([record], [ldap("1001")], now=datetime(2026, 3, 1, tzinfo=UTC)).left_out}
    assert reason == "starts 2026-03-10T00:00:00-07:00; becomes a user from 2026-03-02T23:00:00-08:00"
    created_from = datetime.fromisoformat(reason.rsplit(" ", 1)[1])
    assert run([record], [ldap("1001")], now=created_from - timedelta(seconds=1)).users == ()
    assert only_user(run([record], [ldap("1001")], now=created_from)).start == created_from + timedelta(days=7)


# --- rules, grants, required actions, trace -----------------------------------------------------------------------


def spec_with_rule(when: str) -> MapperSpec:
    rules = f"rules:\n  - name: probe\n    when: {when}\n    grant: {{groups: [/probe]}}\nrequired_actions:"
    return spec_of(SPEC_TEXT[: SPEC_TEXT.index("rules:")] + rules + SPEC_TEXT.split("required_actions:")[1])


TRAINED = "2026-01-15"  # 137 days before NOW
LAPSED = "2025-05-01"  # 396 days before NOW


@pytest.mark.parametrize(
    ("when", "fields", "groups", "matched", "because"),
    [
        ("{department: Finance}", {"Department": "Finance"}, (), True, "department == Finance"),
        ("{department: Finance}", {"Department": "Sales"}, (), False, "department != Finance"),
        ("{department: Finance}", {"Department": ""}, (), False, "department is empty"),
        ("{department: {not_equals: Finance}}", {"Department": "Sales"}, (), True, "department != Finance"),
        ("{department: {not_equals: Finance}}", {"Department": ""}, (), True, "department != Finance"),
        ("{department: {not_equals: Finance}}", {"Department": "Finance"}, (), False, "department == Finance"),
        ("{department: [Finance, HR]}", {"Department": "HR"}, (), True, "department in [Finance, HR]"),
        ("{department: {in: [Finance, HR]}}", {"Department": "Sales"}, (), False, "department not in [Finance, HR]"),
        ("{department: {not_in: [Finance, HR]}}", {"Department": "Sales"}, (), True, "department not in [Finance, HR]"),
        ("{department: {not_in: [Finance, HR]}}", {"Department": "HR"}, (), False, "department in [Finance, HR]"),
        ('{title: {matches: "Senior .*"}}', {"Title": "Senior Clerk"}, (), True, "title matches /Senior .*/"),
        ('{title: {matches: "Senior"}}', {"Title": "Senior Clerk"}, (), False, "title does not match /Senior/"),
        ("{groups: {contains: admins}}", {}, ("staff", "admins"), True, "groups contains admins"),
        ("{groups: {contains: admins}}", {}, ("staff",), False, "groups does not contain admins"),
        ("{groups: {contains: admins}}", {}, (), False, "groups is empty"),
        ("{groups: staff}", {}, ("admins", "staff"), True, "groups == staff"),  # any value
        ("{title: {exists: true}}", {"Title": "Clerk"}, (), True, "title is set"),
        ("{title: {exists: true}}", {"Title": " "}, (), False, "title is empty"),
        ("{title: {exists: false}}", {"Title": ""}, (), True, "title is empty"),
        ("{title: {exists: false}}", {"Title": "Clerk"}, (), False, "title is set"),
        ("{start_date: {before: 2021-01-01}}", {}, (), True, "start_date before 2021-01-01"),
        ("{start_date: {before: 2020-01-01}}", {}, (), False, "start_date not before 2020-01-01"),
        ("{start_date: {after: 2019-12-31}}", {}, (), True, "start_date after 2019-12-31"),
        ("{start_date: {after: 2020-01-01}}", {}, (), False, "start_date not after 2020-01-01"),
        ("{training_date: {older_than: 365d}}", {"TrainingDate": LAPSED}, (), True, "training_date older than 365d"),
        ("{training_date: {older_than: 365d}}", {"TrainingDate": TRAINED}, (), False, "not older than 365d"),
        ("{training_date: {older_than: 365d}}", {}, (), False, "training_date is empty"),
        ("{training_date: {newer_than: 180d}}", {"TrainingDate": TRAINED}, (), True, "training_date newer than 180d"),
        ("{training_date: {newer_than: 180d}}", {"TrainingDate": LAPSED}, (), False, "not newer than 180d"),
        (
            "{department: Finance, title: {exists: true, matches: 'C.*'}}",
            {"Department": "Finance"},
            (),
            True,
            "department == Finance and title is set and title matches /C.*/",
        ),
        (
            "{department: Finance, title: {exists: true, matches: 'X.*'}}",
            {"Department": "Finance"},
            (),
            False,
            "title does not match /X.*/",
        ),
    ],
)
def test_rule_operators(
    when: str, fields: dict[str, str], groups: tuple[str, ...], matched: bool, because: str
) -> None:
    user = only_user(run([hr("1001", **fields)], [ldap("1001", groups=groups)], spec=spec_with_rule(when)))
    assert ("/probe" in user.groups) is matched
    ((written, granted),) = steps(user, "group /probe")
    assert granted is matched
    prefix = "rule probe: " if matched else "rule probe did not match: "
    assert written.startswith(prefix)
    assert written.endswith(because)


def test_older_than_is_exact_to_the_instant() -> None:
    spec = spec_with_rule("{training_date: {older_than: 1d}}")
    trained = {"TrainingDate": "2026-05-31T12:00:00+00:00"}
    assert "/probe" in only_user(run([hr("1001", **trained)], [ldap("1001")], spec=spec)).groups
    a_second_early = NOW - timedelta(seconds=1)
    assert "/probe" not in only_user(run([hr("1001", **trained)], [ldap("1001")], now=a_second_early, spec=spec)).groups


def test_grants_required_actions_and_their_trace() -> None:
    finance = only_user(run([hr("1001", Department="Finance")], [ldap("1001")]))
    assert finance.groups == {"/staff", "/finance"}
    assert finance.realm_roles == {"finance-approver"}
    assert finance.client_roles == frozenset()
    assert finance.required_actions == ("VERIFY_EMAIL", "CONFIGURE_TOTP")
    assert steps(finance, "group /finance") == [("rule finance-staff: department == Finance", True)]
    assert steps(finance, "group /staff") == [("rule everyone: always", True)]
    assert steps(finance, "realm role admin") == [("rule it-admins did not match: groups is empty", False)]
    assert steps(finance, "client role realm-management/view-users") == [
        ("rule it-admins did not match: groups is empty", False)
    ]
    assert steps(finance, "required action CONFIGURE_TOTP") == [("realm role finance-approver is in mfa_roles", True)]

    admin = only_user(run([hr("1002")], [ldap("1002", groups=["admins"])]))
    assert admin.realm_roles == {"admin"}
    assert admin.client_roles == {("realm-management", "view-users")}
    assert steps(admin, "required action CONFIGURE_TOTP") == [("realm role admin is in mfa_roles", True)]

    guard = only_user(run([hr("1003", Title="Guard")], [ldap("1003")]))
    assert steps(guard, "required action CONFIGURE_TOTP") == [("group /secure/inner is in mfa_groups", True)]

    clerk = only_user(run([hr("1004")], [ldap("1004")]))
    assert clerk.required_actions == ("VERIFY_EMAIL",)
    assert steps(clerk, "required action CONFIGURE_TOTP") == []


def test_every_mapped_field_is_traced_without_its_value() -> None:
    user = only_user(run([hr("1001", TrainingDate="2025-01-31")], [ldap("1001", groups=["staff"])]))
    fields = {step.what.removeprefix("field ") for step in user.trace if step.what.startswith("field ")}
    assert fields == {
        "employee_id",
        "first_name",
        "last_name",
        "email",
        "status",
        "start_date",
        "timezone",
        "department",
        "title",
        "employment_type",
        "training_date",
        "username",
        "groups",
    }
    shown = " ".join(step.because for step in user.trace)
    for value in ("p1001@example.org", "Lee1001", "Europe/London", "2025-01-31"):
        assert value not in shown


def test_identical_trace_steps_and_grant_sets_are_shared_between_users() -> None:
    first, second = run([hr("1001"), hr("1002")], [ldap("1001"), ldap("1002")]).users
    assert first.trace[0] != second.trace[0]  # record steps say where each record was
    shared = [a is b for a, b in zip(first.trace[2:], second.trace[2:], strict=True)]
    assert all(shared)
    assert first.groups is second.groups


def test_the_desired_user_is_complete() -> None:
    user = only_user(run([hr("1001", Department="Finance", TrainingDate="2025-01-31")], [ldap("1001", uid="ALee")]))
    assert user.source == "workforce"
    assert user.username == "alee"
    assert dict(user.attributes) == {
        "department": ("Finance",),
        "title": ("Clerk",),
        "training_date": ("2025-01-31",),
    }
    assert user.start == datetime(2020, 1, 1, tzinfo=ZoneInfo("Europe/London"))


# --- properties ---------------------------------------------------------------------------------------------

IDS = st.sampled_from(["1", "2", "3", "4", "5", " ", ""])
HR_ROWS = st.fixed_dictionaries(
    {
        "EmployeeID": IDS,
        "FirstName": st.sampled_from(["Ann", "José", ""]),
        "LastName": st.sampled_from(["Lee", "Núñez", "Smith"]),
        "Email": st.sampled_from(["a@x.org", "b@x.org", "A@X.org", "", "broken"]),
        "Status": st.sampled_from(["Active", "Terminated", "On leave", "Retired", ""]),
        "StartDate": st.sampled_from(["2020-01-01", "2026-06-05", "2026-09-01", "soon", ""]),
        "EndDate": st.sampled_from(["", "2026-03-31", "2026-06-01", "2027-01-01"]),
        "TimeZone": st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Tokyo", "Nowhere/City", ""]),
        "Department": st.sampled_from(["Finance", "Sales", ""]),
    }
)
LDAP_ROWS = st.fixed_dictionaries(
    {
        "employeeNumber": IDS,
        "uid": st.one_of(st.sampled_from(["ann", "bob", "ANN", ""]), st.just(("x", "y"))),
        "memberOf": st.lists(st.sampled_from(["cn=admins,ou=g", "cn=staff,ou=g"]), max_size=2).map(tuple),
    }
)


def feed(hr_rows: list[dict[str, str]], ldap_rows: list[dict[str, str | tuple[str, ...]]]) -> list[SourceRead]:
    return [
        SourceRead("hr", tuple(SourceRecord("hr", row, f"line {i}") for i, row in enumerate(hr_rows)), True),
        SourceRead("ldap", tuple(SourceRecord("ldap", row, f"entry {i}") for i, row in enumerate(ldap_rows)), True),
    ]


@settings(max_examples=200, deadline=None)
@given(hr_rows=st.lists(HR_ROWS, max_size=8), ldap_rows=st.lists(LDAP_ROWS, max_size=8), seed=st.randoms())
def test_mapping_is_deterministic_and_independent_of_record_order(
    hr_rows: list[dict[str, str]], ldap_rows: list[dict[str, str | tuple[str, ...]]], seed: random.Random
) -> None:
    reads = feed(hr_rows, ldap_rows)
    shuffled = [SourceRead(read.source, tuple(seed.sample(read.records, len(read.records))), True) for read in reads]
    assert map_sources(reads[::-1], SPEC, NOW) == map_sources(reads, SPEC, NOW) == map_sources(shuffled, SPEC, NOW)


@settings(max_examples=200, deadline=None)
@given(hr_rows=st.lists(HR_ROWS, max_size=8), ldap_rows=st.lists(LDAP_ROWS, max_size=8))
def test_any_feed_maps_without_traces_as_with_them(
    hr_rows: list[dict[str, str]], ldap_rows: list[dict[str, str | tuple[str, ...]]]
) -> None:
    """People with one record take a shorter path when untraced: the users, rejections and left-out records are
    still those of the traced mapping."""
    reads = feed(hr_rows, ldap_rows)
    traced, untraced = map_sources(reads, SPEC, NOW), map_sources(reads, SPEC, NOW, traced=False)
    assert untraced.users == tuple(replace(user, trace=()) for user in traced.users)
    assert (untraced.rejected, untraced.left_out) == (traced.rejected, traced.left_out)


@settings(max_examples=200, deadline=None)
@given(hr_rows=st.lists(HR_ROWS, max_size=8), ldap_rows=st.lists(LDAP_ROWS, max_size=8))
def test_every_record_makes_exactly_one_user_rejection_or_left_out_entry(
    hr_rows: list[dict[str, str]], ldap_rows: list[dict[str, str | tuple[str, ...]]]
) -> None:
    reads = feed(hr_rows, ldap_rows)
    result = map_sources(reads, SPEC, NOW)
    rejected = [(item.source, item.where) for item in result.rejected]
    left_out = [(item.source, item.where) for item in result.left_out]
    users = {user.external_id: user for user in result.users}
    assert len(users) == len(result.users)  # one user per id
    for read in reads:
        for record in read.records:
            key = (record.source, record.where)
            external_id = str(record.get("EmployeeID" if record.source == "hr" else "employeeNumber")).strip()
            as_user = external_id in users and key not in rejected and key not in left_out
            assert rejected.count(key) + left_out.count(key) + as_user == 1, key
    for user in result.users:
        assert user.username == user.username.lower()
        assert user.status in ("active", "inactive")
        assert user.start is None or user.start <= NOW + timedelta(days=7)
        assert (user.status == "inactive") == (any(step.what == "status inactive" for step in user.trace))


# --- the demo data --------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def demo_reads() -> list[SourceRead]:
    """The demo HR CSV and the demo directory's people as the sources would read them."""
    with (REPO / "mappers" / "demo" / "hr.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = [SourceRecord("hr", row, f"line {index + 2}") for index, row in enumerate(csv.DictReader(file))]
    entries = [
        SourceRecord(
            "ldap",
            {
                "uid": person.uid,
                "employeeNumber": str(FIRST_EMPLOYEE_NUMBER + index),
                "groups": tuple(group_dn(name) for name, members in GROUPS.items() if person.uid in members),
            },
            f"uid={person.uid}",
        )
        for index, person in enumerate(PEOPLE)
    ]
    return [SourceRead("hr", tuple(rows), True), SourceRead("ldap", tuple(entries), True)]


def test_the_demo_hr_feed_matches_the_demo_directory() -> None:
    spec = load_mapper(REPO / "mappers" / "workforce.yaml", {})
    result = map_sources(demo_reads(), spec, datetime(2026, 11, 29, 12, tzinfo=UTC))
    assert result.rejected == ()
    users = {user.external_id: user for user in result.users}
    for index, person in enumerate(PEOPLE):
        user = users[str(FIRST_EMPLOYEE_NUMBER + index)]
        assert (user.username, user.email) == (person.uid, f"{person.uid}@example.org")
        assert (user.first_name, user.last_name) == (person.given_name, person.surname)
    hr_only = sorted(set(users) - {str(FIRST_EMPLOYEE_NUMBER + index) for index in range(len(PEOPLE))})
    assert [users[external_id].username for external_id in hr_only] == ["tomas.ortega", "wei.zhang"]
    assert [(item.external_id, item.kind) for item in result.left_out] == [("1022", "future-start")]
    assert [user.username for user in result.users if user.status == "inactive"] == ["nlarsen"]
    admins = sorted(user.username for user in result.users if "/it-admins" in user.groups)
    assert admins == ["acarter", "eschmidt", "jnunez"]
    approvers = sorted(user.username for user in result.users if "finance-approver" in user.realm_roles)
    assert approvers == ["gharris", "jbrown"]
    assert len({user.start.utcoffset() for user in result.users if user.start}) > 3  # several time zones


def test_without_traces_the_mapping_is_the_same_but_for_the_traces() -> None:
    """The sync maps without traces (they serve `sync explain`): every user, grant, rejection and left-out
    record must be what the traced mapping gives."""
    hr_records = [
        hr("1001", where="line 2"),
        hr("1002", where="line 3", Department="Finance"),
        hr("1003", where="line 4", Email="shared@example.org"),
        hr("1004", where="line 5", Email="SHARED@example.org"),
        hr("1006", where="line 7", StartDate="yesterday"),
        hr("1011", where="line 13", StartDate="2099-01-01"),
        hr("1012", where="line 14", Status="Terminated"),
    ]
    reads = [SourceRead("hr", tuple(hr_records), True), SourceRead("ldap", (ldap("1001"), ldap("1002")), True)]

    traced = map_sources(reads, SPEC, NOW)
    untraced = map_sources(reads, SPEC, NOW, traced=False)

    assert all(user.trace for user in traced.users) and not any(user.trace for user in untraced.users)
    assert untraced.users == tuple(replace(user, trace=()) for user in traced.users)
    assert (untraced.rejected, untraced.left_out) == (traced.rejected, traced.left_out)
    assert any(user.groups or user.realm_roles for user in untraced.users)


def test_rules_and_attributes_see_the_status_and_end_as_decided() -> None:
    """A rule on status sees inactive once the end has passed (HR may still say Active); an end before the
    start belongs to an earlier employment, and neither a rule nor the attributes see it."""
    text = SPEC_TEXT.replace("attributes: [department,", "attributes: [end_date, department,").replace(
        "rules:\n",
        "rules:\n  - name: active-staff\n    when: {status: active}\n    grant: {groups: [/active]}\n"
        "  - name: leaving\n    when: {end_date: {exists: true}}\n    grant: {groups: [/leaving]}\n",
    )
    spec = spec_of(text)

    ended = only_user(run([hr("1", EndDate="2026-01-31")], [ldap("1")], spec=spec))
    rehired = only_user(run([hr("2", StartDate="2026-02-01", EndDate="2025-12-31")], [ldap("2")], spec=spec))

    assert ended.status == "inactive" and "/active" not in ended.groups and "/leaving" in ended.groups
    assert rehired.status == "active" and rehired.end is None
    assert "/active" in rehired.groups and "/leaving" not in rehired.groups
    assert "end_date" not in rehired.attributes


@pytest.mark.parametrize(
    ("condition", "held"),
    [
        ({"before": "2026-07-01"}, True),
        ({"before": "2026-06-30"}, False),
        ({"after": "2026-06-30"}, False),
        ({"after": "2026-06-29"}, True),
        ({"after": "2026-06-30T12:00:00+00:00"}, True),  # a date-time limit: the end of the day is after noon
    ],
)
def test_before_and_after_compare_an_end_date_day_by_day(condition: dict[str, str], held: bool) -> None:
    """end_date is read as the end of its day (end_of_day), yet 2026-06-30 is before 2026-07-01 and not after
    2026-06-30."""
    operator, limit = next(iter(condition.items()))
    text = SPEC_TEXT.replace(
        "rules:\n",
        f"rules:\n  - name: dated\n    when: {{end_date: {{{operator}: '{limit}'}}}}\n"
        "    grant: {groups: [/dated]}\n",
    )
    person = only_user(run([hr("1", EndDate="2026-06-30")], [ldap("1")], spec=spec_of(text)))
    assert ("/dated" in person.groups) is held


@pytest.mark.parametrize("fmt", ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M UTC"])
def test_a_zone_written_as_plain_text_is_refused(fmt: str) -> None:
    """'...Z' as literal text would read 09:00Z as 09:00 in the worker's zone."""
    with pytest.raises(ValueError, match="writes the zone as plain text"):
        check_date_format(fmt)


def test_a_format_with_an_offset_is_accepted_and_keeps_the_instant() -> None:
    check_date_format("%Y-%m-%dT%H:%M:%S%z")
    written = parse_date("2026-01-01T09:00:00Z", ("%Y-%m-%dT%H:%M:%S%z",))
    assert written is not None and written.instant(LA) == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
