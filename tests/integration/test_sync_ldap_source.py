"""The ldap source against a real slapd: paged reads beyond the size limit, groups, entryUUID as the id;
S04 (stopped mid-read, refused, reset, limits, rotated password: incomplete, never "not found"); S20
(values with filter and DN specials: a lookup matches at most the exact entry)."""

from __future__ import annotations

import os
import signal
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import SourceUnavailable
from agent.secrets import Secret
from agent.settings import LdapConnection
from agent.stack.processes import free_port
from agent.stack.slapd import SizeLimits
from agent.sync.model import Found, NotFound, SourceRead
from agent.sync.sources import build_source, parse_source_config
from agent.sync.sources.ldap_connection import open_connection
from agent.sync.sources.ldap_source import LdapSource, dn_key, escape_dn_value, exact_filter
from tests.harness import ldap_directory as harness
from tests.harness.ldap_directory import SUFFIX, DirectoryFactory, numbered_people

PEOPLE_BASE = f"ou=people,{SUFFIX}"
GROUPS_BASE = f"ou=groups,{SUFFIX}"
DEADLINE_SECONDS = 10.0
# Filter and DN specials, a leading '#' and space, non-ASCII, NUL: each is a uid of its own entry.
NASTY_UIDS = (
    "*",
    ")(uid=*",
    "*)(|(uid=*",
    "a\\b",
    "#lead",
    " lead space",
    'x,y+z="<>;',
    "Ünïcødé-名前",
    "nul\x00inside",
    "user00001)(cn=*",
)


def _admin(connection: LdapConnection) -> ldap3.Connection:
    return ldap3.Connection(
        ldap3.Server(connection.url, connect_timeout=5),
        connection.bind_dn,
        connection.bind_password.reveal(),
        auto_bind=True,
        raise_exceptions=True,
        receive_timeout=10,
    )


def _person_dn(uid: str) -> str:
    return f"uid={escape_dn_value(uid)},{PEOPLE_BASE}"


def _add_groups_and_nasty_people(directory: harness.TestDirectory) -> None:
    admin = _admin(directory.admin)
    for uid in NASTY_UIDS:
        admin.add(_person_dn(uid), ["inetOrgPerson"], {"uid": uid, "cn": "Nasty", "sn": "Value"})
    groups = {
        "finance": [_person_dn("user00000"), _person_dn("user00001")],
        "admins": [_person_dn("user00001")],
        "odd, group": [_person_dn('x,y+z="<>;'), _person_dn("#lead")],
    }
    for name, members in groups.items():
        admin.add(f"cn={escape_dn_value(name)},{GROUPS_BASE}", ["groupOfNames"], {"cn": name, "member": members})
    admin.unbind()


def _source(connection: LdapConnection, **overrides: Any) -> LdapSource:
    settings_: dict[str, Any] = {
        "type": "ldap",
        "name": "corp-ldap",
        "url": connection.url,
        "bind_dn": connection.bind_dn,
        "bind_password": connection.bind_password,
        "base_dn": PEOPLE_BASE,
        "tls": "none",  # this slapd speaks plain LDAP on loopback; TLS is test_sync_ldap_tls.py
        "connect_timeout_seconds": 2,
        "receive_timeout_seconds": 2,
        **overrides,
    }
    source = build_source(parse_source_config(settings_))
    assert isinstance(source, LdapSource)
    return source


@pytest.fixture
def directory(ldap_directory: DirectoryFactory) -> harness.TestDirectory:
    """120 people (the reader may see 50 per unpaged search), 3 groups and the nasty uids."""
    made = ldap_directory(numbered_people(120), limits=SizeLimits(soft=50, hard=50))
    _add_groups_and_nasty_people(made)
    return made


def _by_uid(read: SourceRead) -> dict[str, Any]:
    return {str(record.get("uid")): record for record in read.records if isinstance(record.get("uid"), str)}


# --- reads -------------------------------------------------------------------------------------------------


def test_a_paged_read_returns_everyone_beyond_the_size_limit(directory: harness.TestDirectory) -> None:
    read = _source(directory.reader, paged_size=20).read()

    assert read.complete, read.problem
    assert len(read.records) == 120 + len(NASTY_UIDS)
    assert read.pages == 7
    uids = {record.get("uid") for record in read.records}
    assert {person.uid for person in directory.people} <= uids


def test_records_carry_entry_uuid_dn_and_configured_attributes(directory: harness.TestDirectory) -> None:
    read = _source(directory.reader, attributes=["uid", "mail", "employeeNumber", "givenName"]).read()

    record = _by_uid(read)["user00007"]
    assert set(record.fields) == {"dn", "uid", "mail", "employeeNumber", "givenName", "entryUUID"}
    assert record.get("dn") == record.where == _person_dn("user00007")
    assert record.get("mail") == "user00007@example.org"
    assert uuid.UUID(str(record.get("entryUUID")))


def _stock_and_raw_entries(directory: harness.TestDirectory, attributes: list[str]) -> tuple[Any, Any]:
    """Every entry under the people base as ldap3 decodes it, and as RawEntries does, by DN (as the admin: the
    reader sees 50 entries an unpaged search)."""
    stock = _admin(directory.admin)
    raw = open_connection(_source(directory.admin).config)
    try:
        answers = []
        for connection in (stock, raw):
            connection.search(PEOPLE_BASE, "(objectClass=*)", search_scope=ldap3.LEVEL, attributes=attributes)
            answers.append({entry["dn"]: entry for entry in connection.response if entry["type"] == "searchResEntry"})
        return answers[0], answers[1]
    finally:
        stock.unbind()
        raw.unbind()


def test_raw_entries_hold_what_ldap3_decodes_itself(directory: harness.TestDirectory) -> None:
    admin = _admin(directory.admin)
    photo = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10])  # a JPEG header: not UTF-8
    admin.modify(_person_dn("Ünïcødé-名前"), {"jpegPhoto": [(ldap3.MODIFY_ADD, [photo])]})
    admin.modify(_person_dn("user00003"), {"mail": [(ldap3.MODIFY_ADD, ["second@example.org", "third@example.org"])]})
    admin.unbind()

    stock, raw = _stock_and_raw_entries(directory, ["uid", "mail", "jpegPhoto", "entryUUID", "cn"])

    assert set(raw) == set(stock) and len(raw) == 120 + len(NASTY_UIDS)
    for dn, entry in raw.items():
        assert entry["raw_dn"] == stock[dn]["raw_dn"]
        # ldap3 adds the attributes an entry lacks as empty lists; the source's connection leaves them out.
        present = {name: values for name, values in stock[dn]["raw_attributes"].items() if values}
        assert entry["raw_attributes"] == present
    assert raw[_person_dn("Ünïcødé-名前")]["raw_attributes"]["jpegPhoto"] == [photo]
    assert len(raw[_person_dn("user00003")]["raw_attributes"]["mail"]) == 3


def test_a_value_that_is_not_text_is_left_out_of_the_record(directory: harness.TestDirectory) -> None:
    admin = _admin(directory.admin)
    admin.modify(_person_dn("user00004"), {"jpegPhoto": [(ldap3.MODIFY_ADD, [bytes([0xFF, 0xFE, 0x00])])]})
    admin.unbind()

    record = _by_uid(_source(directory.reader, attributes=["uid", "jpegPhoto", "mail"]).read())["user00004"]

    assert "jpegPhoto" not in record.fields
    assert record.get("mail") == "user00004@example.org"


def test_groups_from_group_of_names_are_a_multi_valued_field(directory: harness.TestDirectory) -> None:
    read = _source(directory.reader, groups={"base_dn": GROUPS_BASE}).read()

    assert read.complete, read.problem
    people = _by_uid(read)
    assert people["user00001"].get("groups") == ("admins", "finance")
    assert people["user00000"].get("groups") == ("finance",)
    assert people["user00002"].get("groups") == ()
    assert people['x,y+z="<>;'].get("groups") == ("odd, group",)
    assert people["#lead"].get("groups") == ("odd, group",)


def test_memberof_names_the_groups_when_entries_carry_it(directory: harness.TestDirectory) -> None:
    # slapd here has no memberOf overlay: seeAlso (DN syntax, allowed on a person) stands for memberOf.
    admin = _admin(directory.admin)
    member_of = [f"cn=Sales\\2C EMEA,{GROUPS_BASE}", f"cn=staff,{GROUPS_BASE}"]
    admin.modify(_person_dn("user00003"), {"seeAlso": [(ldap3.MODIFY_ADD, member_of)]})
    admin.unbind()
    groups = {"base_dn": GROUPS_BASE, "member_of_attribute": "seeAlso"}

    read = _source(directory.reader, groups=groups).read()

    people = _by_uid(read)
    assert people["user00003"].get("groups") == ("Sales, EMEA", "staff")
    assert people["user00001"].get("groups") == ("admins", "finance")  # no memberOf: from the group search
    assert "seeAlso" not in people["user00003"].fields
    found = _source(directory.reader, id_attribute="uid", groups=groups).lookup("user00003")
    assert isinstance(found, Found) and found.record.get("groups") == ("Sales, EMEA", "staff")


def test_an_empty_directory_subtree_is_a_complete_empty_read(ldap_directory: DirectoryFactory) -> None:
    made = ldap_directory([])

    read = _source(made.reader).read()

    assert read.complete, read.problem
    assert read.records == ()


# --- S04: limits and failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "paged_size", "problem"),
    [
        pytest.param(SizeLimits(soft=50, hard=50, paged_total=60), 20, "sizeLimitExceeded", id="size-limit"),
        pytest.param(
            SizeLimits(soft=50, hard=50, paged=20), 50, "adminLimitExceeded: illegal pagedResults page size",
            id="page-larger-than-allowed",
        ),
    ],
)  # fmt: skip
def test_a_server_limit_makes_the_read_incomplete(
    ldap_directory: DirectoryFactory, limits: SizeLimits, paged_size: int, problem: str
) -> None:
    made = ldap_directory(numbered_people(100), limits=limits)

    read = _source(made.reader, paged_size=paged_size).read()

    assert not read.complete
    assert problem in read.problem
    assert len(read.records) < 100


def _read_while(source: LdapSource, fault: Any, after_seconds: float) -> tuple[SourceRead, float]:
    """Start a read, apply `fault` after a while, and return the read and how long it took."""
    results: list[SourceRead] = []
    reader = threading.Thread(target=lambda: results.append(source.read()))
    started = time.monotonic()
    reader.start()
    time.sleep(after_seconds)
    fault()
    reader.join(DEADLINE_SECONDS)
    assert not reader.is_alive(), "the read did not end within its deadline"
    return results[0], time.monotonic() - started


@pytest.fixture
def big_directory(ldap_directory: DirectoryFactory) -> Iterator[harness.TestDirectory]:
    made = ldap_directory(numbered_people(3000), limits=SizeLimits(soft=500, hard=500))
    yield made
    pid = made.instance.pid()
    if pid is not None:
        os.kill(pid, signal.SIGCONT)  # never leave a stopped slapd behind for stop() to wait on


@pytest.mark.parametrize("fault", ["sigstop", "stop"])
def test_slapd_stopped_mid_read_gives_an_incomplete_read_within_the_deadline(
    big_directory: harness.TestDirectory, fault: str
) -> None:
    source = _source(big_directory.reader, paged_size=5, receive_timeout_seconds=1)
    started = time.monotonic()
    baseline = source.read()
    full_read_seconds = time.monotonic() - started
    assert baseline.complete and len(baseline.records) == 3000
    pid = big_directory.instance.pid()
    assert pid is not None

    def sigstop() -> None:
        os.kill(pid, signal.SIGSTOP)

    apply = sigstop if fault == "sigstop" else big_directory.instance.stop
    read, elapsed = _read_while(source, apply, full_read_seconds / 3)

    assert not read.complete
    assert 0 < len(read.records) < 3000, "the fault should land mid-read"
    expected = "did not answer within 1 s" if fault == "sigstop" else "closed or reset the connection"
    assert expected in read.problem
    assert elapsed < full_read_seconds + 3


def stop_and_wait(pid: int) -> None:
    """SIGSTOP `pid` and wait (bounded) until every one of its threads is stopped: the signal is delivered
    asynchronously, and on a loaded machine a thread may still answer a request that arrives meanwhile."""
    os.kill(pid, signal.SIGSTOP)

    def all_stopped() -> bool:
        states = []
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
            except (OSError, IndexError):
                continue
        return bool(states) and all(state in {"T", "t"} for state in states)

    deadline = time.monotonic() + 10
    while not all_stopped():
        assert time.monotonic() < deadline, f"slapd {pid} did not stop within 10 s of SIGSTOP"
        time.sleep(0.01)


def test_a_stopped_slapd_fails_lookups_as_unavailable_never_not_found(directory: harness.TestDirectory) -> None:
    source = _source(directory.reader, receive_timeout_seconds=1)
    pid = directory.instance.pid()
    assert pid is not None
    stop_and_wait(pid)
    try:
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="did not answer within 1 s"):
            source.lookup("user00001")
        read = source.read()
        assert time.monotonic() - started < DEADLINE_SECONDS
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not read.complete
    assert read.records == ()


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        pytest.param({"port": "free"}, "cannot connect to ldap://127.0.0.1:{port}: Connection refused", id="refused"),
        pytest.param(
            {"bind_password": Secret("rotated-canary-pw")},
            "bind as cn=reader,dc=test,dc=example refused: invalidCredentials (wrong or rotated password?)",
            id="wrong-password",
        ),
        pytest.param({"bind_password": Secret("")}, "the bind password is empty", id="empty-password"),
        pytest.param({"base_dn": f"ou=gone,{SUFFIX}"}, "answered noSuchObject", id="base-dn-gone"),
        pytest.param({"tls": None}, "the server refused StartTLS (protocolError)", id="no-starttls-no-plain"),
    ],
)
def test_trouble_is_an_incomplete_read_with_a_clear_problem(
    directory: harness.TestDirectory, overrides: dict[str, Any], problem: str
) -> None:
    port = free_port()
    if overrides.pop("port", None):
        overrides["url"] = f"ldap://127.0.0.1:{port}"
    source = _source(directory.reader, **overrides)
    started = time.monotonic()

    read = source.read()
    with pytest.raises(SourceUnavailable) as raised:
        source.lookup("user00001")

    assert time.monotonic() - started < DEADLINE_SECONDS
    assert not read.complete
    assert problem.format(port=port) in read.problem
    assert problem.format(port=port) in str(raised.value)
    for secret in (directory.reader_password.reveal(), "rotated-canary-pw"):
        assert secret not in read.problem and secret not in str(raised.value)


# --- lookups -----------------------------------------------------------------------------------------------


def test_lookup_by_entry_uuid(directory: harness.TestDirectory) -> None:
    source = _source(directory.reader, groups={"base_dn": GROUPS_BASE})
    entry_uuid = str(_by_uid(source.read())["user00001"].get("entryUUID"))

    found = source.lookup(entry_uuid)

    assert isinstance(found, Found)
    assert found.record.get("uid") == "user00001"
    assert found.record.get("groups") == ("admins", "finance")
    assert source.lookup(str(uuid.uuid4())) == NotFound()
    assert source.lookup("not-a-uuid") == NotFound()


def test_lookup_searches_the_whole_lookup_base_not_only_the_listing(directory: harness.TestDirectory) -> None:
    # S05: a user who fell out of the listing (base DN narrowed) is still found, so never taken for a leaver.
    source = _source(directory.reader, id_attribute="uid", base_dn=GROUPS_BASE, lookup_base_dn=SUFFIX)

    assert not any(record.get("uid") == "user00001" for record in source.read().records)
    assert isinstance(source.lookup("user00001"), Found)


def test_lookup_many_settles_leavers_in_batches_as_single_lookups_would(directory: harness.TestDirectory) -> None:
    """Batches of LOOKUP_BATCH (50, the reader's size limit here) ids a search: every id it answers, it answers as
    `lookup` does; present, gone, filter specials and an id in another case (uid ignores case) alike."""
    source = _source(directory.reader, id_attribute="uid")
    present = [f"user{index:05d}" for index in range(0, 120, 2)]
    gone = [f"gone{index:03d}" for index in range(40)]
    wanted = [*present, *gone, *NASTY_UIDS, "USER00003"]

    answers = source.lookup_many(wanted)

    assert set(present) | set(gone) <= set(answers)
    for external_id, answer in answers.items():
        single = source.lookup(external_id)
        assert type(answer) is type(single), external_id
        if isinstance(answer, Found) and isinstance(single, Found):
            assert answer.record.get("uid") == single.record.get("uid"), external_id
    assert isinstance(answers["USER00003"], Found) and answers["USER00003"].record.get("uid") == "user00003"
    with pytest.raises(SourceUnavailable, match="invalidCredentials"):
        _source(directory.reader, id_attribute="uid", bind_password=Secret("rotated-canary-pw")).lookup_many(gone)


MANAGE_DSA_IT = ("2.16.840.1.113730.3.4.2", True, None)  # write the referral entry itself, do not follow it


def test_a_lookup_referred_to_another_server_cannot_tell_so_no_one_is_taken_for_gone(
    directory: harness.TestDirectory,
) -> None:
    """A branch of the directory held by another server: a search answers success with a continuation
    reference and no entry. The person may be there, so the lookup is unavailable, never NotFound (which would
    disable a leaver candidate who is still employed), unless the config says referrals are ignored."""
    admin = _admin(directory.admin)
    referral = {"ou": "branch", "ref": "ldap://branch.example.invalid/ou=branch,ou=people,dc=example,dc=org"}
    admin.add(f"ou=branch,{PEOPLE_BASE}", ["referral", "extensibleObject"], referral, controls=[MANAGE_DSA_IT])
    admin.unbind()
    source = _source(directory.reader, id_attribute="uid")

    assert not source.read().complete
    with pytest.raises(SourceUnavailable, match="referred to another server"):
        source.lookup("moved.away")
    with pytest.raises(SourceUnavailable, match="referred to another server"):
        source.lookup_many(["moved.away", "user00001"])
    assert _source(directory.reader, id_attribute="uid", referrals="ignore").lookup("moved.away") == NotFound()


def test_lookup_of_an_empty_id_is_refused(directory: harness.TestDirectory) -> None:
    with pytest.raises(ValueError, match="empty id"):
        _source(directory.reader, id_attribute="uid").lookup("")


# --- S20: escaping -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("uid", NASTY_UIDS)
def test_a_nasty_uid_finds_exactly_its_own_entry(directory: harness.TestDirectory, uid: str) -> None:
    found = _source(directory.reader, id_attribute="uid").lookup(uid)

    assert isinstance(found, Found)
    assert found.record.get("uid") == uid
    # slapd writes the DN back with its own escapes (\\2C for a comma): compare DNs, not their spelling.
    assert dn_key(found.record.where) == dn_key(_person_dn(uid))


@pytest.mark.parametrize("wanted", ["user0*", "*)(uid=user00001", "user00001)(|(uid=*)", "\x00", "\\2a", "(uid=*)"])
def test_wildcards_and_injections_match_nothing(directory: harness.TestDirectory, wanted: str) -> None:
    assert _source(directory.reader, id_attribute="uid").lookup(wanted) == NotFound()


def _loose(text: str) -> str:
    """Near enough to slapd's caseIgnoreMatch (RFC 4518: NFKC, case folded, controls and spaces dropped)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(char for char in folded if not char.isspace() and unicodedata.category(char) not in {"Cc", "Cf"})


SPECIALS = st.sampled_from(["*", "(", ")", "\\", "\x00", ",", "+", '"', "<", ">", ";", "=", "#", " ", "|", "&", "!"])
IDS = st.one_of(
    st.sampled_from(NASTY_UIDS),
    st.sampled_from(NASTY_UIDS).map(str.upper),
    st.lists(st.one_of(SPECIALS, st.characters(exclude_categories=["Cs"])), min_size=1, max_size=12).map("".join),
    st.builds(lambda a, b: f"{a}){b}", st.sampled_from(["user00001", "*", ""]), st.sampled_from(["(uid=*", "(|(cn=*"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wanted=IDS)
def test_generated_ids_match_at_most_the_exact_entry(directory: harness.TestDirectory, wanted: str) -> None:
    source = _source(directory.reader, id_attribute="uid")
    known = {*NASTY_UIDS, *(person.uid for person in directory.people)}

    result = source.lookup(wanted)

    if wanted in known:
        assert isinstance(result, Found) and result.record.get("uid") == wanted
    elif isinstance(result, Found):
        assert result.record.get("uid") in known
        assert _loose(str(result.record.get("uid"))) == _loose(wanted)

    # The filter the source builds never matches more than one entry, whatever the value.
    reader = _admin(directory.reader)
    reader.search(SUFFIX, exact_filter("uid", wanted), attributes=["uid"])
    assert len(reader.entries) <= 1
    reader.unbind()
