"""slapd.conf generation and {SSHA} hashing (pure; the real slapd runs in the integration tests)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from agent.secrets import Secret
from agent.stack.slapd import SizeLimits, SlapdInstance, render_slapd_conf, ssha

pytestmark = pytest.mark.unit


def directives(conf: str) -> list[str]:
    return [line for line in conf.splitlines() if line and not line.startswith("#")]


def acme_conf_lines(extra_indexes: tuple[str, ...] = ()) -> list[str]:
    conf = render_slapd_conf(
        Path("/srv/ldap"),
        suffix="dc=acme,dc=test",
        root_dn="cn=admin,dc=acme,dc=test",
        root_pw_hash="{SSHA}abc",
        limits=SizeLimits(),
        extra_indexes=extra_indexes,
    )
    return directives(conf)


def test_conf_has_schemas_module_database_and_indexes() -> None:
    lines = acme_conf_lines()
    assert lines[:4] == [
        f"include /etc/ldap/schema/{name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")
    ]
    for expected in (
        "moduleload back_mdb",
        "pidfile /srv/ldap/slapd.pid",
        "argsfile /srv/ldap/slapd.args",
        "sizelimit size.soft=1000 size.hard=unlimited size.pr=1000 size.prtotal=unlimited",
        "database mdb",
        "maxsize 1073741824",
        'suffix "dc=acme,dc=test"',
        'rootdn "cn=admin,dc=acme,dc=test"',
        "rootpw {SSHA}abc",
        "directory /srv/ldap/db",
        "index uid,mail eq,sub",
        "index member,memberUid eq",
    ):
        assert expected in lines
    # Global directives must come before `database`, or slapd applies them to that database only.
    assert lines.index("moduleload back_mdb") < lines.index("database mdb")
    assert lines.index(SizeLimits().directive()) < lines.index("database mdb")


def test_extra_indexes_follow_the_standard_ones_in_the_database_section() -> None:
    lines = acme_conf_lines(("employeeNumber eq",))
    standard, extra = lines.index("index member,memberUid eq"), lines.index("index employeeNumber eq")
    assert lines.index("database mdb") < standard < extra


@pytest.mark.parametrize(
    ("limits", "directive"),
    [
        (SizeLimits(), "sizelimit size.soft=1000 size.hard=unlimited size.pr=1000 size.prtotal=unlimited"),
        (SizeLimits(soft=5), "sizelimit size.soft=5 size.hard=unlimited size.pr=1000 size.prtotal=unlimited"),
        (
            SizeLimits(soft=None, hard=50, paged=10, paged_total=40),
            "sizelimit size.soft=unlimited size.hard=50 size.pr=10 size.prtotal=40",
        ),
    ],
)
def test_size_limits_directive(limits: SizeLimits, directive: str) -> None:
    assert limits.directive() == directive


def test_ssha_is_salted_sha1_of_password_and_salt() -> None:
    hashed = ssha("s3cret", salt=b"12345678")
    raw = base64.b64decode(hashed.removeprefix("{SSHA}"))
    digest, salt = raw[:20], raw[20:]
    assert salt == b"12345678"
    assert digest == hashlib.sha1(b"s3cret12345678", usedforsecurity=False).digest()


def test_ssha_uses_a_fresh_salt_each_time() -> None:
    assert ssha("same") != ssha("same")


def test_written_conf_is_private_and_has_no_plaintext_password(tmp_path: Path) -> None:
    instance = SlapdInstance(tmp_path / "ldap", password=Secret("plain-text-pw"), suffix="dc=acme,dc=test")
    conf = instance.write_config()
    assert conf.stat().st_mode & 0o777 == 0o600
    text = conf.read_text(encoding="utf-8")
    assert "plain-text-pw" not in text
    assert "rootpw {SSHA}" in text
    assert instance.root_dn == "cn=admin,dc=acme,dc=test"
    assert not instance.is_running()
    assert instance.port() is None
