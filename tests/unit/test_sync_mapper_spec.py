"""Mapper files: the example loads, and every mistake is reported at the file:line:col where it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.config.source import parse_document
from agent.sync.mapper_file import load_mapper, load_sync_mapper, mapper_from_document
from agent.sync.mapper_spec import MapperSpec

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
NAME = "mappers/test.yaml"

BASE = """\
name: test
realm: workforce
id: eid
sources:
  hr: {priority: 20, fields: [eid, email, department, status, end_date, title]}
  ldap: {priority: 10, fields: [username, groups]}
fields:
  hr:
    eid: {from: ID, transform: [strip]}
    email: {from: Mail, transform: [strip, lower]}
    department: {from: Dept}
    title: {from: Title}
    status: {from: Status, map: {A: active, T: inactive}, default: active}
    end_date: {from: End, date: "%Y-%m-%d", end_of_day: true}
    timezone: {from: TZ, default: UTC}
    first_name: {from: First}
    last_name: {from: Last}
    username: {template: "{first_name}.{last_name}", transform: [ascii, lower]}
  ldap:
    eid: {from: employeeNumber}
    username: {from: uid}
    groups: {from: memberOf, transform: [first_rdn]}
attributes: [department, title]
lookahead: 7d
rules:
  - name: finance
    when: {department: Finance}
    grant: {groups: [/finance], realm_roles: [finance-approver]}
  - name: admins
    when: {groups: {contains: admins}}
    grant: {realm_roles: [admin]}
mfa_roles: [admin]
"""


def parse(text: str) -> MapperSpec:
    return mapper_from_document(parse_document(text, NAME))


def position_of(text: str, anchor: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column of the n-th occurrence of `anchor` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(anchor, index + 1)
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def test_base_text_is_valid() -> None:
    spec = parse(BASE)
    assert spec.id == "eid"
    assert spec.lookahead == 7 * 86400
    assert spec.creates_users("hr")
    assert not spec.creates_users("ldap")


def test_the_example_workforce_mapper_loads() -> None:
    spec = load_mapper(REPO / "mappers" / "workforce.yaml", {})
    assert spec.name == "workforce"
    assert spec.realm == "workforce"
    assert spec.merge_order("username") == ("ldap", "hr")  # LDAP decides, HR's template is the fallback
    assert spec.merge_order("email") == ("hr",)
    assert spec.is_end_of_day("end_date")


@pytest.mark.parametrize(
    ("old", "new", "anchor", "message"),
    [
        pytest.param("name: test\n", "nmae: test\n", "nmae", "unknown field 'nmae'", id="unknown-top-level-key"),
        pytest.param(
            "transform: [strip, lower]}", "transform: [strip, lowr]}", "lowr", "input should be", id="unknown-transform"
        ),
        pytest.param(
            "{department: Finance}",
            '{department: {matches: "Fin(ance"}}',
            '"Fin(ance"',
            "not a regular expression",
            id="bad-regex",
        ),
        pytest.param(
            '"{first_name}.{last_name}"',
            '"{first_name}.{surname}"',
            '"{first_name}.{surname}"',
            "template of 'username' names 'surname', which this source does not map",
            id="template-unknown-field",
        ),
        pytest.param(
            '"{first_name}.{last_name}"',
            '"{first_name!r}"',
            '"{first_name!r}"',
            "format spec or conversion",
            id="template-conversion",
        ),
        pytest.param(
            "    eid: {from: employeeNumber}\n",
            "",
            "ldap:\n    username",
            "source 'ldap' does not map the id field 'eid'",
            id="id-not-mapped-by-a-source",
        ),
        pytest.param(
            "{department: Finance}",
            "{division: Finance}",
            "division",
            "rule 'finance' tests 'division', which no source maps",
            id="rule-on-unknown-field",
        ),
        pytest.param(
            "{from: Dept}",
            "{from: Dept, template: x}",
            "{from: Dept, template: x}",
            "write exactly one of `from`",
            id="from-and-template",
        ),
        pytest.param(
            "{priority: 10, fields: [username",
            "{priority: 20, fields: [username",
            "20, fields: [username",
            "priority 20 is also the priority of source 'hr'",
            id="same-priority",
        ),
        pytest.param(
            "{department: Finance}",
            "{department: {older_than: 365d}}",
            "department: {older",
            "compares 'department' as a date; it is not one",
            id="date-operator-on-text-field",
        ),
        pytest.param(
            "T: inactive}", "T: gone}", "gone", "status maps 'T' to 'gone'", id="status-mapped-to-unknown-value"
        ),
        pytest.param(
            "{from: TZ, default: UTC}",
            "{from: TZ, default: Mars/Olympus}",
            "Mars/Olympus",
            "unknown time zone 'Mars/Olympus'",
            id="unknown-default-zone",
        ),
        pytest.param('date: "%Y-%m-%d"', 'date: "%Y-%m-%Q"', '"%Y-%m-%Q"', "cannot be read back", id="bad-date-format"),
        pytest.param(
            "[department, title]", "[department, salary]", "salary", "attribute 'salary' is not a mapped", id="attr"
        ),
        pytest.param(
            "[username, groups]",
            "[username, groups, location]",
            "location",
            "source 'ldap' decides 'location' but does not map it",
            id="decides-unmapped-field",
        ),
        pytest.param(
            "  ldap:\n    eid",
            "  scim:\n    eid: {from: id}\n  ldap:\n    eid",
            "scim",
            "unknown source 'scim'",
            id="fields-of-unknown-source",
        ),
        pytest.param(
            'date: "%Y-%m-%d", end_of_day',
            'date: "%Y-%m-%dT%H:%M", end_of_day',
            '{from: End, date: "%Y-%m-%dT%H:%M"',
            "end_of_day needs date formats without a time of day",
            id="end-of-day-with-time",
        ),
        pytest.param(
            "{from: Mail, transform: [strip, lower]}",
            "{from: Mail, values: all}",
            "all}",
            "'email' holds one value",
            id="several-emails",
        ),
        pytest.param(
            "  - name: admins\n",
            "  - name: finance\n",
            "finance\n    when: {groups",
            "rule name 'finance'",
            id="dup-rule",
        ),
        pytest.param(
            "{priority: 20, fields",
            "{priority: 20, creates_users: false, fields",
            "sources",
            "no source creates users",
            id="nobody-creates-users",
        ),
        pytest.param("lookahead: 7d", "lookahead: 7 days", "7 days", "is not a duration", id="bad-duration"),
        pytest.param(
            "{groups: {contains: admins}}",
            "{groups: {contain: admins}}",
            "contain:",
            "unknown field 'contain'",
            id="op",
        ),
        pytest.param(
            "{groups: {contains: admins}}", "{groups: {}}", "{}}", "write at least one operator", id="empty-condition"
        ),
        pytest.param(
            "{from: End, date:",
            "{from: End, default: 2026-01-01, date:",
            "{from: End, default",
            "a date field has no default",
            id="date-with-default",
        ),
        pytest.param(
            "    department: {from: Dept}\n", "", "department, title]", "attribute 'department'", id="attr-unmapped"
        ),
        pytest.param("[department, title]", "[department, email]", "email]", "is a Keycloak user field", id="reserved"),
        pytest.param(
            "{from: End, date:",
            "{from: End, values: first, date:",
            "",
            "",
            id="values-first-on-a-date-is-fine",
        ),
        pytest.param(
            "{department: Finance}",
            "{department: 0100}",
            "0100",
            "YAML 1.1 reads '0100' as the number 64, not as written",  # the loader's check, first
            id="unquoted-octal",
        ),
        pytest.param(
            "{department: Finance}", "{department: 12:30}", "12:30", "as the number 750", id="unquoted-sexagesimal"
        ),
        pytest.param("{department: Finance}", "{department: 1.10}", "1.10", "as a number (1.1)", id="unquoted-float"),
        pytest.param(
            "{department: Finance}",
            "{department: yes}",
            "yes",
            "YAML 1.1 reads 'yes' as the boolean true",  # the loader's check, first
            id="unquoted-bool",
        ),
        pytest.param(
            'date: "%Y-%m-%d", end_of_day',
            'date: "%d/%m", end_of_day',
            '"%d/%m"',
            "date format '%d/%m' loses information: it writes 2001-12-24 as '24/12', read back as 1900-12-24",
            id="date-format-without-year",
        ),
        pytest.param(
            'date: "%Y-%m-%d", end_of_day: true}',
            'date: "%Y-%m-%d %I:%M"}',
            '"%Y-%m-%d %I:%M"',
            "loses information",
            id="date-format-12-hour-without-am-pm",
        ),
        pytest.param(
            "eid: {from: ID, transform: [strip]}",
            "eid: {from: ID, transform: [strip], default: unknown}",
            "unknown}",
            "the id field has a default ('unknown'): every record without an id would be that one user",
            id="id-with-default",
        ),
        pytest.param(
            "eid: {from: employeeNumber}",
            "eid: {from: employeeNumber, split: ';'}",
            "';'",
            "the id field is split",
            id="id-split",
        ),
        pytest.param(
            "{from: Status, map: {A: active",
            "{from: Status, transform: [lower], map: {A: active",
            "A: active",
            "map key 'A' can never match: values reach the map after `transform`, as 'a'",
            id="map-key-changed-by-transform",
        ),
    ],
)
def test_mistakes_are_reported_where_they_are_written(old: str, new: str, anchor: str, message: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    if not message:
        parse(text)
        return
    with pytest.raises(ConfigErrors) as caught:
        parse(text)
    line, col = position_of(text, anchor)
    found = [f"{d.line}:{d.col}: {d.message}" for d in caught.value.diagnostics]
    assert any(
        d.file == NAME and (d.line, d.col) == (line, col) and message in d.message for d in caught.value.diagnostics
    ), f"expected {line}:{col}: ...{message}..., got {found}"


def test_every_problem_is_reported_at_once() -> None:
    text = BASE.replace("{department: Finance}", "{division: Finance}").replace("strip, lower]}", "strip, lowr]}")
    with pytest.raises(ConfigErrors) as caught:
        parse(text)
    # The model error stops validation before cross-checks; the unknown transform is what is reported.
    assert [d.line for d in caught.value.diagnostics] == [position_of(text, "lowr")[0]]
    fixed = text.replace("strip, lowr]}", "strip, lower]}")
    with pytest.raises(ConfigErrors) as caught:
        parse(fixed.replace("[department, title]", "[department, salary]"))
    assert len(caught.value.diagnostics) == 2


def test_formatted_diagnostic_reads_like_a_compiler() -> None:
    text = BASE.replace("{department: Finance}", "{division: Finance}")
    with pytest.raises(ConfigErrors) as caught:
        parse(text)
    line, col = position_of(text, "division")
    assert str(caught.value).startswith(f"{NAME}:{line}:{col}: rule 'finance' tests 'division'")
    assert "hint: mapped fields: department, eid, email" in str(caught.value)


def test_a_file_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse("- a\n- b\n")
    assert caught.value.diagnostics[0].format().startswith(f"{NAME}:1:1: a mapper file is a mapping")


def test_load_mapper_reports_the_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("id: eid", "id: eid\nid: other"), encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_mapper(path, {})
    (problem,) = caught.value.diagnostics
    assert (problem.file, problem.line, problem.col) == (str(path), 4, 1)
    assert "duplicate key 'id'" in problem.message


def test_a_source_the_mapper_maps_but_the_sync_does_not_read_is_an_error_at_it(tmp_path: Path) -> None:
    """Otherwise nobody would be listed by it, and everyone only it lists taken for a leaver."""
    path = tmp_path / "mapper.yaml"
    path.write_text(BASE, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_sync_mapper(path, {}, "workforce", ("ldap", "extra"))
    (problem,) = caught.value.diagnostics
    assert (problem.file, problem.line, problem.col) == (str(path), *position_of(BASE, "hr: {priority"))
    assert problem.message == "source 'hr' is not read by sync 'workforce' (it reads: ldap, extra)"
    assert load_sync_mapper(path, {}, "workforce", ("hr", "ldap")).realm == "workforce"


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({"hr": (20, None), "ldap": (10, None)}, {"hr": True, "ldap": False}),
        ({"hr": (20, None), "ldap": (10, True)}, {"hr": True, "ldap": True}),
        ({"hr": (20, False), "ldap": (10, True)}, {"hr": False, "ldap": True}),
        ({"a": (1, None), "b": (5, None), "c": (3, None)}, {"a": False, "b": True, "c": False}),
    ],
)
def test_which_sources_create_users(sources: dict[str, tuple[int, bool | None]], expected: dict[str, bool]) -> None:
    spec = MapperSpec.model_validate(
        {
            "name": "t",
            "realm": "r",
            "id": "eid",
            "sources": {
                name: {"priority": priority, "fields": ["eid"], "creates_users": creates}
                for name, (priority, creates) in sources.items()
            },
            "fields": {name: {"eid": {"from": "id"}} for name in sources},
        }
    )
    assert {name: spec.creates_users(name) for name in sources} == expected


def test_merge_order_puts_deciding_sources_first_then_fallbacks_by_priority() -> None:
    spec = parse(BASE)
    assert spec.merge_order("username") == ("ldap", "hr")
    assert spec.merge_order("eid") == ("hr", "ldap")  # both map it, only hr lists it: hr, then ldap
    assert spec.merge_order("first_name") == ("hr",)
    assert spec.merge_order("unknown") == ()


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("Finance", {"equals": "Finance"}),
        ("[Finance, HR]", {"in_": ("Finance", "HR")}),
        ("'0100'", {"equals": "0100"}),  # quoted: the text as written
        ("4711", {"equals": "4711"}),  # a plain number is read as written (the loader refuses the forms YAML changes)
        ("{exists: false}", {"exists": False}),
    ],
)
def test_condition_shorthands(condition: str, expected: dict[str, object]) -> None:
    spec = parse(BASE.replace("{department: Finance}", f"{{department: {condition}}}"))
    written = spec.rules[0].when["department"]
    assert {name: getattr(written, name) for name in expected} == expected
