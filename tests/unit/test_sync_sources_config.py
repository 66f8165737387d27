"""Source configs: one model per `type`, strict, secrets only as Secret values, TLS never off by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from agent.config.diagnostics import ConfigErrors
from agent.secrets import Secret
from agent.sync.agent_config import load_agent_config
from agent.sync.sources import CsvSource, HttpJsonSource, LdapSource, ScimSource, build_source, parse_source_config
from agent.sync.sources.config import (
    BasicAuth,
    CsvSourceConfig,
    HttpJsonSourceConfig,
    LdapSourceConfig,
    NoPaging,
    PagePaging,
    ScimSourceConfig,
)

TOKEN = Secret("canary-token-31337")
LDAP: dict[str, Any] = {
    "type": "ldap",
    "name": "corp",
    "url": "ldap://ldap.example.org",
    "bind_dn": "cn=sync,dc=example,dc=org",
    "bind_password": Secret("canary-ldap-pw"),
    "base_dn": "ou=people,dc=example,dc=org",
}
HTTP: dict[str, Any] = {"type": "http-json", "name": "hr-api", "url": "https://hr.example.org/api/people"}
SCIM: dict[str, Any] = {"type": "scim", "name": "hr-scim", "base_url": "https://hr.example.org/scim/v2/"}
CSV: dict[str, Any] = {"type": "csv", "name": "hr", "path": "/data/hr.csv"}


@pytest.mark.parametrize(
    ("data", "model", "connector"),
    [
        (CSV, CsvSourceConfig, CsvSource),
        (HTTP, HttpJsonSourceConfig, HttpJsonSource),
        (SCIM, ScimSourceConfig, ScimSource),
        (LDAP, LdapSourceConfig, LdapSource),
    ],
)
def test_each_type_builds_its_connector(data: dict[str, Any], model: type, connector: type) -> None:
    config = parse_source_config(data)

    source = build_source(config)

    assert isinstance(config, model)
    assert isinstance(source, connector)
    assert source.name == data["name"]


def test_defaults() -> None:
    http = parse_source_config(HTTP)
    scim = parse_source_config(SCIM)
    ldap = parse_source_config(LDAP)
    csv = parse_source_config(CSV)

    assert isinstance(http, HttpJsonSourceConfig) and isinstance(scim, ScimSourceConfig)
    assert isinstance(ldap, LdapSourceConfig) and isinstance(csv, CsvSourceConfig)
    assert http.paging == NoPaging(mode="none")
    assert http.verify is True and http.max_attempts == 3 and http.records_path == ""
    assert scim.base_url == "https://hr.example.org/scim/v2"
    assert ldap.filter == "(objectClass=inetOrgPerson)" and ldap.id_attribute == "entryUUID"
    assert ldap.paged_size == 500 and ldap.scope == "subtree"
    assert csv.encoding == "utf-8" and csv.delimiter == "," and csv.id_field == "id"


@pytest.mark.parametrize(
    ("url", "tls", "expected"),
    [
        ("ldap://ldap.example.org", None, "start-tls"),
        ("ldaps://ldap.example.org", None, "ldaps"),
        ("ldap://ldap.example.org", "none", "none"),
        ("ldap://ldap.example.org:1389", "start-tls", "start-tls"),
    ],
)
def test_ldap_tls_follows_the_url_and_plain_text_must_be_written_out(url: str, tls: str | None, expected: str) -> None:
    config = parse_source_config({**LDAP, "url": url, "tls": tls})

    assert isinstance(config, LdapSourceConfig)
    assert config.tls_mode == expected


def test_page_paging_and_ca_file() -> None:
    config = parse_source_config(
        {**HTTP, "paging": {"mode": "page", "size": 50}, "ca_file": "/etc/hr-ca.pem", "auth": {
            "type": "basic", "username": "sync", "password": Secret("pw")}}
    )  # fmt: skip

    assert isinstance(config, HttpJsonSourceConfig)
    assert config.paging == PagePaging(mode="page", size=50)
    assert config.verify == "/etc/hr-ca.pem"


INVALID = [
    pytest.param({**CSV, "type": "excel"}, "type", id="unknown-type"),
    pytest.param({**CSV, "sheet": "1"}, "Extra inputs are not permitted", id="unknown-field"),
    pytest.param({**CSV, "name": "h r"}, "name", id="name-with-space"),
    pytest.param({**CSV, "delimiter": ";;"}, "delimiter", id="two-char-delimiter"),
    pytest.param({**CSV, "delimiter": '"'}, "delimiter and quote_char must differ", id="delimiter-is-quote"),
    pytest.param({**CSV, "encoding": "utf-9"}, "unknown encoding 'utf-9'", id="unknown-encoding"),
    pytest.param({**CSV, "columns": {"A": "id", "B": "id"}}, "two columns are renamed to 'id'", id="columns-collide"),
    pytest.param({**HTTP, "url": "ftp://hr.example.org/x"}, "is not an http(s) URL", id="not-http"),
    pytest.param({**HTTP, "url": "https://u:p@hr.example.org/x"}, "never in the URL", id="credentials-in-url"),
    pytest.param({**HTTP, "lookup_url": "https://hr.example.org/people"}, "must contain {id}", id="lookup-without-id"),
    pytest.param({**HTTP, "tls_verify": False, "ca_file": "/ca.pem"}, "ca_file is set but tls_verify is false",
                 id="ca-and-no-verify"),
    pytest.param({**HTTP, "auth": {"type": "bearer", "token": "written-in-the-file"}}, "${env:NAME}",
                 id="token-written-in-file"),
    pytest.param({**HTTP, "headers": {"X Key": "v"}}, "not an HTTP header name", id="bad-header-name"),
    pytest.param({**HTTP, "paging": {"mode": "cursor"}}, "next_cursor_path", id="cursor-without-path"),
    pytest.param({**HTTP, "paging": {"mode": "page", "size": 0}}, "size", id="page-size-zero"),
    pytest.param({**HTTP, "records_path": "data..items"}, "records_path", id="bad-path"),
    pytest.param({**SCIM, "max_attempts": 0}, "max_attempts", id="no-attempts"),
    pytest.param({**LDAP, "bind_password": "plain-pw"}, "${env:NAME}", id="password-written-in-file"),
    pytest.param({**LDAP, "url": "http://ldap.example.org"}, "not an ldap:// or ldaps:// URL", id="not-ldap"),
    pytest.param({**LDAP, "url": "ldaps://x", "tls": "start-tls"}, "contradicts", id="ldaps-with-starttls"),
    pytest.param({**LDAP, "tls": "ldaps"}, "needs an ldaps:// URL", id="ldaps-on-ldap-url"),
    pytest.param({**LDAP, "tls": "none", "ca_file": "/ca.pem"}, "tls is none", id="ca-without-tls"),
    pytest.param({**LDAP, "id_attribute": "uid)(uid=*"}, "id_attribute", id="attribute-injection"),
    pytest.param({**LDAP, "attributes": ["mail", "cn*"]}, "attributes", id="bad-attribute"),
    pytest.param({**LDAP, "filter": "objectClass=person"}, "filter", id="filter-without-parentheses"),
    pytest.param({**LDAP, "groups": {"use_member_of": False}}, "set base_dn", id="groups-from-nowhere"),
    pytest.param({**LDAP, "paged_size": 0}, "paged_size", id="paged-size-zero"),
    pytest.param({**LDAP, "receive_timeout_seconds": 1.5}, "receive_timeout_seconds", id="fractional-timeout"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "message"), INVALID)
def test_invalid_configs_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        parse_source_config(data)

    assert message in str(raised.value)


def test_secrets_never_show_in_a_config_or_its_errors() -> None:
    config = parse_source_config({**HTTP, "auth": {"type": "bearer", "token": TOKEN}, "headers": {"X-Key": TOKEN}})
    with pytest.raises(pydantic.ValidationError) as raised:
        parse_source_config({**HTTP, "auth": {"type": "bearer", "token": TOKEN}, "timeout_seconds": -1})
    ldap = parse_source_config(LDAP)

    for text in (repr(config), str(config), str(raised.value), repr(ldap)):
        assert "canary" not in text


@pytest.mark.parametrize(
    "name", ["Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "X-Auth-Token", "X-Client-Secret", "apikey"]
)
@pytest.mark.parametrize("value", ["canary-plain-31337", 123456789012345678])
def test_a_credential_header_written_in_the_file_is_refused_at_its_key_without_showing_it(
    name: str, value: object
) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        parse_source_config({**HTTP, "headers": {"Accept-Language": "en", name: value}})

    [error] = raised.value.errors()
    assert error["loc"][-2:] == ("headers", name)
    assert error["msg"] == "this header carries a credential: write its value as ${env:NAME} or ${file:path}"
    assert "canary" not in str(raised.value) and "123456789012345678" not in str(raised.value)


def test_credential_headers_from_secrets_and_other_headers_as_written_are_accepted() -> None:
    config = parse_source_config({**HTTP, "headers": {"Authorization": TOKEN, "Accept-Language": "en"}})

    assert isinstance(config, HttpJsonSourceConfig)
    assert config.headers == {"Authorization": TOKEN, "Accept-Language": "en"}


def test_a_credential_header_in_the_agent_config_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "idp-agent.yaml"
    path.write_text(
        "sources:\n  - type: http-json\n    name: hr\n    url: https://hr.example.org/api\n    headers:\n"
        "      Accept-Language: en\n      X-Api-Key: 123456789012345678\n"
    )
    with pytest.raises(ConfigErrors) as raised:
        load_agent_config(path, {})

    assert str(raised.value) == (
        f"{path}:7:18: sources[0].headers.X-Api-Key: this header carries a credential: "
        "write its value as ${env:NAME} or ${file:path}"
    )


NOT_LATIN_1 = Secret("canary-\u2603-31337")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param({"auth": {"type": "bearer", "token": NOT_LATIN_1}}, "the token has", id="bearer-token"),
        pytest.param({"auth": {"type": "basic", "username": "svc", "password": NOT_LATIN_1}}, "the password has",
                     id="basic-password"),
        pytest.param({"auth": {"type": "basic", "username": "sv\u2603c", "password": TOKEN}}, "the username has",
                     id="basic-username"),
        pytest.param({"headers": {"X-Api-Key": NOT_LATIN_1}}, "the value has", id="secret-header"),
        pytest.param({"headers": {"X-Tenant": "caf\u00e9-\u2603"}}, "the value has", id="plain-header"),
    ],
)  # fmt: skip
def test_a_value_http_headers_cannot_carry_is_refused_without_showing_it(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        parse_source_config({**HTTP, **data})

    messages = " ".join(error["msg"] for error in raised.value.errors())
    assert f"{problem} characters HTTP headers cannot carry" in messages
    assert "canary" not in messages and "\u2603" not in messages
    assert "canary" not in str(raised.value)


def test_latin_1_values_are_sendable() -> None:
    config = parse_source_config(
        {**HTTP, "auth": {"type": "basic", "username": "jos\u00e9", "password": Secret("pa\u00df")}}
    )

    assert isinstance(config, HttpJsonSourceConfig) and isinstance(config.auth, BasicAuth)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({**HTTP, "url": "htps://svc:canary-pw@hr.example.org/api"}, id="bad-scheme-with-credentials"),
        pytest.param({**HTTP, "url": "https://svc:canary-pw@/api"}, id="no-host-with-credentials"),
        pytest.param({**HTTP, "lookup_url": "htps://svc:canary-pw@hr.example.org/{id}"}, id="lookup-url"),
        pytest.param({**SCIM, "base_url": "https://svc:canary-pw@/scim/v2"}, id="scim-base-url"),
    ],
)
def test_a_url_with_credentials_is_refused_for_them_without_showing_them(data: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        parse_source_config(data)

    messages = [detail["msg"] for detail in raised.value.errors()]
    assert messages == ["Value error, put credentials under auth:, never in the URL"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({**HTTP, "url": "ftp://hr.example.org/x?api_key=canary-key"}, id="not-http-with-a-key"),
        pytest.param({**HTTP, "url": "https:///people?api_key=canary-key"}, id="no-host-with-a-key"),
        pytest.param({**LDAP, "url": "ldapz://cn=sync:canary-pw@ldap.example.org"}, id="not-ldap-with-a-password"),
    ],
)
def test_a_bad_url_is_not_repeated_in_its_error(data: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        parse_source_config(data)

    messages = " ".join(detail["msg"] for detail in raised.value.errors())
    assert "URL" in messages
    assert "canary" not in messages


def test_configs_are_frozen() -> None:
    config = parse_source_config(CSV)

    with pytest.raises(pydantic.ValidationError):
        config.name = "other"
