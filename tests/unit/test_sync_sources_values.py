"""Pure helpers of the source connectors: JSON and SCIM flattening, LDAP escaping and DNs, error texts,
URLs without secrets, Retry-After and backoff."""

from __future__ import annotations

import random
from typing import Any

import pytest
from ldap3.core import exceptions as ldap_errors

from agent.retry_after import parse_retry_after
from agent.secrets import Secret
from agent.sync.model import Found, NotFound, SourceRecord
from agent.sync.sources.common import check_external_id, find_by_field, index_by_field
from agent.sync.sources.config import LdapSourceConfig
from agent.sync.sources.http_client import MAX_RETRY_AFTER_SECONDS, backoff_seconds, safe_url
from agent.sync.sources.http_json import MISSING, flatten_json, total_of, value_at
from agent.sync.sources.ldap_connection import describe_error
from agent.sync.sources.ldap_source import (
    dn_key,
    escape_dn_value,
    exact_filter,
    first_rdn_value,
    unescape_dn_value,
)
from agent.sync.sources.scim import ENTERPRISE_SCHEMA, flatten_user, list_response, scim_string

# --- JSON ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"id": "1"}, {"id": "1"}),
        ({"id": 7, "ratio": 0.5, "active": True, "gone": None}, {"id": "7", "ratio": "0.5", "active": "true"}),
        ({"name": {"given": "Ann", "family": None}}, {"name.given": "Ann"}),
        ({"roles": ["a", None, 3, False]}, {"roles": ("a", "3", "false")}),
        ({"roles": []}, {"roles": ()}),
        ({"phones": [{"type": "work", "n": "1"}]}, {"phones": ('{"n":"1","type":"work"}',)}),
        ({"a": {"b": {"c": "deep"}}}, {"a.b.c": "deep"}),
    ],
)
def test_flatten_json(item: dict[str, Any], expected: dict[str, Any]) -> None:
    assert flatten_json(item) == expected


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        ([1], "", [1]),
        ({"data": {"items": [1]}}, "data.items", [1]),
        ({"data": {"items": [1]}}, "data.rows", MISSING),
        ({"data": [1]}, "data.items", MISSING),
        ("text", "data", MISSING),
    ],
)
def test_value_at(body: Any, path: str, expected: Any) -> None:
    assert value_at(body, path) == expected or value_at(body, path) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [({"meta": {"total": 30}}, 30), ({"meta": {"total": "30"}}, 30), ({"meta": {"total": -1}}, None),
     ({"meta": {"total": True}}, None), ({"meta": {"total": "many"}}, None), ({"meta": {}}, None)],
)  # fmt: skip
def test_total_of(body: Any, expected: int | None) -> None:
    assert total_of(body, "meta.total") == expected


# --- SCIM ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        pytest.param({"id": "1", "userName": "ann"}, {"id": "1", "userName": "ann"}, id="minimal"),
        pytest.param(
            {"id": "1", "emails": [{"value": "a@home"}, {"value": "a@work", "primary": True}]},
            {"id": "1", "emails": ("a@home", "a@work"), "email": "a@work"},
            id="primary-email",
        ),
        pytest.param(
            {"id": "1", "emails": [{"value": "a@home"}, {"value": "a@work"}]},
            {"id": "1", "emails": ("a@home", "a@work"), "email": "a@home"},
            id="no-primary-takes-the-first",
        ),
        pytest.param({"id": "1", "active": False, "title": None}, {"id": "1", "active": "false"}, id="inactive"),
        pytest.param(
            {"id": "1", ENTERPRISE_SCHEMA: {"employeeNumber": 42, "department": "IT", "manager": {"value": "9"}}},
            {"id": "1", "employeeNumber": "42", "department": "IT", "manager": "9"},
            id="enterprise",
        ),
        pytest.param(
            {"id": "1", "groups": [{"value": "g1", "display": "Staff"}, {"value": "g2"}], "roles": [{"value": "r"}]},
            {"id": "1", "groups": ("Staff", "g2"), "roles": ("r",)},
            id="multi-valued",
        ),
        pytest.param(
            {"id": "1", "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee"}},
            {"id": "1", "name.givenName": "Ann", "name.familyName": "Lee", "name.formatted": "Ann Lee"},
            id="name",
        ),
    ],
)
def test_flatten_scim_user(user: dict[str, Any], expected: dict[str, Any]) -> None:
    assert flatten_user(user) == expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"totalResults": 0}, ""),
        ({"totalResults": 2, "Resources": [{"id": "1"}]}, ""),
        ({"Resources": []}, "the answer has no totalResults"),
        ({"totalResults": "2", "Resources": []}, "the answer has no totalResults"),
        ({"totalResults": 2, "Resources": ["x"]}, "Resources is not a list of objects"),
        ([], "the answer is not a SCIM ListResponse"),
    ],
)
def test_list_response(body: Any, problem: str) -> None:
    assert list_response(body)[2] == problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [("E1", '"E1"'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("a\nb", '"a\\nb"'), ("é", '"é"')],
)
def test_scim_string_escapes_for_a_filter(value: str, expected: str) -> None:
    assert scim_string(value) == expected


# --- LDAP ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "(uid=alice)"),
        ("*", "(uid=\\2a)"),
        (")(uid=*", "(uid=\\29\\28uid=\\2a)"),
        ("a\\b", "(uid=a\\5cb)"),
        ("nul\x00", "(uid=nul\\00)"),
        ("Ünï", "(uid=Ünï)"),
    ],
)
def test_exact_filter_escapes_the_value(value: str, expected: str) -> None:
    assert exact_filter("uid", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "alice"),
        ("a,b+c", "a\\,b\\+c"),
        ("#lead", "\\#lead"),
        (" both ", "\\ both\\ "),
        ('q"<>;=', 'q\\"\\<\\>\\;\\='),
        ("nul\x00x", "nul\\00x"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_escape_dn_value(value: str, expected: str) -> None:
    assert escape_dn_value(value) == expected


def test_escape_dn_value_refuses_empty() -> None:
    with pytest.raises(ValueError, match="empty value"):
        escape_dn_value("")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("plain", "plain"), ("a\\,b", "a,b"), ("a\\2Cb", "a,b"), ("\\C3\\9Cn", "Ün"), ("x\\\\41", "x\\41"),
     ("\\#lead", "#lead"), ("nul\\00", "nul\x00")],
)  # fmt: skip
def test_unescape_dn_value(value: str, expected: str) -> None:
    assert unescape_dn_value(value) == expected


@pytest.mark.parametrize("value", ["a,b", "#x", " y ", "Ünï=名", 'q"\\<>;', "nul\x00"])
def test_escaping_and_unescaping_round_trip(value: str) -> None:
    assert first_rdn_value(f"cn={escape_dn_value(value)},ou=groups,dc=example,dc=org") == value


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("uid=Ann,ou=People,dc=x", "UID=ann,OU=people,DC=X", True),
        ("cn=a\\,b,dc=x", "cn=a\\2Cb,dc=x", True),
        ("uid=ann,dc=x", "uid=anne,dc=x", False),
        ("uid=ann, ou=people", "uid=ann,ou=people", True),
        ("uid=ann\\ ,ou=people", "uid=ann,ou=people", False),  # an escaped space is part of the value
    ],
)
def test_dn_key(left: str, right: str, same: bool) -> None:
    assert (dn_key(left) == dn_key(right)) is same


LDAP_CONFIG = LdapSourceConfig.model_validate(
    {
        "type": "ldap",
        "name": "corp",
        "url": "ldap://ldap.example.org",
        "bind_dn": "cn=sync,dc=example,dc=org",
        "bind_password": Secret("canary-pw-77"),
        "base_dn": "dc=example,dc=org",
    }
)
ERRORS = [
    pytest.param(
        ldap_errors.LDAPInvalidCredentialsResult(result=49, description="invalidCredentials", response_type="bind"),
        "bind as cn=sync,dc=example,dc=org refused: invalidCredentials (wrong or rotated password?)",
        id="invalid-credentials",
    ),
    pytest.param(
        ldap_errors.LDAPBusyResult(result=51, description="busy", message="try later"),
        "ldap://ldap.example.org:389 answered busy: try later",
        id="busy",
    ),
    pytest.param(
        ldap_errors.LDAPSocketOpenError("socket connection error while opening: [Errno 111] Connection refused"),
        "cannot connect to ldap://ldap.example.org:389: Connection refused",
        id="refused",
    ),
    pytest.param(
        ldap_errors.LDAPSocketReceiveError("error receiving data: timed out"),
        "ldap://ldap.example.org:389 did not answer within 30 s (or the connection broke)",
        id="timeout",
    ),
    pytest.param(
        ldap_errors.LDAPSessionTerminatedByServerError("session terminated by server"),
        "ldap://ldap.example.org:389 closed or reset the connection",
        id="reset",
    ),
    pytest.param(
        ldap_errors.LDAPStartTLSError("startTLS failed - protocolError"),
        "TLS with ldap://ldap.example.org:389 failed, nothing was sent in plain text: "
        "the server refused StartTLS (protocolError)",
        id="starttls-refused",
    ),
    pytest.param(
        ldap_errors.LDAPStartTLSError(
            "wrap socket error: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
            "(_ssl.c:1006)"
        ),
        "TLS with ldap://ldap.example.org:389 failed, nothing was sent in plain text: "
        "certificate verify failed: self-signed certificate",
        id="untrusted",
    ),
    pytest.param(
        ldap_errors.LDAPCertificateError("certificate {'subject': 'x'} doesn't match any name in ['ldap']"),
        "TLS with ldap://ldap.example.org:389 failed, nothing was sent in plain text: "
        "the certificate does not match the server's host name",
        id="wrong-host",
    ),
    pytest.param(
        ldap_errors.LDAPExceptionError("odd failure mentioning canary-pw-77"),
        "ldap://ldap.example.org:389: LDAPExceptionError: odd failure mentioning (value hidden)",
        id="password-hidden",
    ),
]


@pytest.mark.parametrize(("error", "expected"), ERRORS)
def test_describe_error(error: BaseException, expected: str) -> None:
    assert describe_error(error, LDAP_CONFIG) == expected


# --- HTTP ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hr.example.org/api/people?api_key=k&page=2", "https://hr.example.org/api/people"),
        ("https://u:p@hr.example.org:8443/x#frag", "https://hr.example.org:8443/x"),
        ("http://[::1]:8080/p?q", "http://[::1]:8080/p"),
    ],
)
def test_safe_url_drops_credentials_query_and_fragment(url: str, expected: str) -> None:
    assert safe_url(url) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), (" 0 ", 0.0), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
     ("soon", None), ("", None), (None, None)],
)  # fmt: skip
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now=now) == expected


def test_backoff_honours_retry_after_up_to_a_cap_gives_up_beyond_and_jitters_otherwise() -> None:
    rng = random.Random(7)

    assert backoff_seconds(1, 0.5, 2.0, rng) == 2.0
    assert backoff_seconds(1, 0.5, MAX_RETRY_AFTER_SECONDS, rng) == MAX_RETRY_AFTER_SECONDS
    assert backoff_seconds(1, 0.5, MAX_RETRY_AFTER_SECONDS + 1, rng) is None
    # "Retry-After: 0" (or a past date): the jitter is still waited.
    assert backoff_seconds(3, 0.5, 0.0, random.Random(7)) == random.Random(7).uniform(0, 2.0) > 0
    answers = [backoff_seconds(attempt, 0.5, None, rng) for attempt in (1, 2, 3) for _ in range(50)]
    delays = [delay for delay in answers if delay is not None]
    assert len(delays) == len(answers)
    assert all(0 <= delay <= 2.0 for delay in delays)
    assert max(delays[:50]) <= 0.5 < max(delays[100:])


# --- ids -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [("", "empty id"), ("a\ud800", "not valid Unicode")])
def test_check_external_id_refuses_ids_that_name_nothing(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_external_id(value)


def test_find_by_field_matches_exactly_and_any_value_of_a_multi_valued_field() -> None:
    records = [SourceRecord("hr", {"id": "E1"}), SourceRecord("hr", {"id": ("E2", "E3")})]

    assert find_by_field(records, "id", "E3") == Found(records[1])
    assert find_by_field(records, "id", "e1") == NotFound()
    assert find_by_field(records, "missing", "E1") == NotFound()


INDEXED_RECORDS = [
    SourceRecord("hr", {"id": "E1", "n": "1"}),
    SourceRecord("hr", {"id": ("E2", "E3"), "n": "2"}),
    SourceRecord("hr", {"id": "E1", "n": "3"}),  # a duplicate: the first one answers
    SourceRecord("hr", {"id": "E3", "n": "4"}),  # also the second value of record 2
    SourceRecord("hr", {"id": ("E4", "E4"), "n": "5"}),
    SourceRecord("hr", {"n": "6"}),  # no id at all
    SourceRecord("hr", {"id": "", "n": "7"}),
]


@pytest.mark.parametrize("wanted", ["E1", "E2", "E3", "E4", "e1", "E9", "6", "n"])
def test_index_by_field_answers_every_id_as_find_by_field_does(wanted: str) -> None:
    record = index_by_field(INDEXED_RECORDS, "id").get(wanted)

    assert (NotFound() if record is None else Found(record)) == find_by_field(INDEXED_RECORDS, "id", wanted)
