"""S03 for the http-json and scim sources against a real HTTP server on loopback (a small HR system):
a page that fails, times out, is cut short or short without error makes the read incomplete, with retries
bounded; lookups tell found, not found and unavailable apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent.errors import SourceUnavailable
from agent.secrets import Secret
from agent.sync.model import Found, NotFound, SourceRead
from agent.sync.sources import build_source, parse_source_config
from agent.sync.sources.http_json import HttpJsonSource
from agent.sync.sources.scim import ScimSource
from tests.harness.hr_server import Fault, HrServer, people, person

PEOPLE = 25
PAGE_SIZE = 10
ATTEMPTS = 3
TIMEOUT_SECONDS = 0.5
TOKEN = "hr-canary-token-5f1c9d"
FAST = {"timeout_seconds": TIMEOUT_SECONDS, "max_attempts": ATTEMPTS, "backoff_seconds": 0.01}

MODES: dict[str, dict[str, Any]] = {
    "page": {"url": "/api/page/people", "paging": {"mode": "page", "size": PAGE_SIZE}},
    "offset": {"url": "/api/offset/people", "paging": {"mode": "offset", "size": PAGE_SIZE}},
    "cursor": {
        "url": "/api/cursor/people",
        "paging": {"mode": "cursor", "next_cursor_path": "paging.next", "size": PAGE_SIZE},
    },
    "link-in-body": {
        "url": "/api/link/people",
        "paging": {"mode": "next-link", "next_link_path": "links.next", "size": PAGE_SIZE},
    },
    "link-header": {"url": "/api/link/people", "paging": {"mode": "next-link", "size": PAGE_SIZE}},
}
ALL_MODES = list(MODES)


@pytest.fixture
def hr() -> Iterator[HrServer]:
    with HrServer(people(PEOPLE), token=TOKEN) as server:
        yield server


def _http(server: HrServer, mode: str, *, total: bool = False, **extra: Any) -> HttpJsonSource:
    if mode == "link-header":
        server.state.link_in_body = False
    settings: dict[str, Any] = {
        "type": "http-json",
        "name": "hr-api",
        "records_path": "data.items",
        "auth": {"type": "bearer", "token": Secret(TOKEN)},
        **FAST,
        **MODES[mode],
        **extra,
    }
    if settings["url"].startswith("/"):
        settings["url"] = server.url + settings["url"]
    if total:
        settings["expected_total_path"] = "meta.total"
    source = build_source(parse_source_config(settings))
    assert isinstance(source, HttpJsonSource)
    return source


def _scim(server: HrServer, **extra: Any) -> ScimSource:
    settings = {
        "type": "scim",
        "name": "hr-scim",
        "base_url": f"{server.url}/scim/v2",
        "auth": {"type": "bearer", "token": Secret(TOKEN)},
        "page_size": PAGE_SIZE,
        **FAST,
        **extra,
    }
    source = build_source(parse_source_config(settings))
    assert isinstance(source, ScimSource)
    return source


def _ids(read: SourceRead, field: str = "id") -> list[str]:
    return [str(record.get(field)) for record in read.records]


def _expected_ids(count: int = PEOPLE) -> list[str]:
    return [f"E{index:05d}" for index in range(count)]


def _page_requests(server: HrServer, page: int) -> int:
    """How many requests asked for list page `page` (1-based) of size PAGE_SIZE, retries included."""
    count = 0
    for seen in server.state.requests_to("/api/"):
        params = seen.params
        if "page" in params:
            start = (int(params["page"]) - 1) * PAGE_SIZE
        elif "cursor" in params:
            start = int(params["cursor"].removeprefix("c"))
        else:
            start = int(params.get("offset", "0"))
        count += start // PAGE_SIZE + 1 == page
    return count


# --- http-json: complete reads -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("count", [PEOPLE, 2 * PAGE_SIZE, 0])
def test_every_paging_mode_reads_everyone(hr: HrServer, mode: str, count: int) -> None:
    hr.state.people = people(count)

    read = _http(hr, mode).read()

    assert read.complete, read.problem
    assert _ids(read) == _expected_ids(count)
    assert read.records[0].where == "page 1 #1" if count else read.records == ()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_with_a_total_the_read_stops_without_asking_past_the_end(hr: HrServer, mode: str) -> None:
    read = _http(hr, mode, total=True).read()

    assert read.complete, read.problem
    assert _ids(read) == _expected_ids()
    assert read.pages == 3
    assert len(hr.state.requests_to("/api/")) == 3


def test_records_are_flattened_into_fields(hr: HrServer) -> None:
    read = _http(hr, "page").read()

    first = read.records[0]
    assert first.get("name.family") == "Person0"
    assert first.get("active") == "false"
    assert first.get("roles") == ("staff", "finance")
    assert first.get("manager") is None  # null is absent, not "None"


def test_a_top_level_list_without_paging(hr: HrServer) -> None:
    source = build_source(
        parse_source_config(
            {"type": "http-json", "name": "hr-api", "url": f"{hr.url}/api/plain/people", "auth": {
                "type": "bearer", "token": Secret(TOKEN)}}
        )
    )  # fmt: skip

    read = source.read()

    assert read.complete, read.problem
    assert _ids(read) == _expected_ids()
    assert read.pages == 1


def test_basic_auth(hr: HrServer) -> None:
    hr.state.token = None
    hr.state.basic = ("sync", "basic-canary-pw")
    source = _http(hr, "page", auth={"type": "basic", "username": "sync", "password": Secret("basic-canary-pw")})

    assert source.read().complete


# --- http-json: S03 faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("status", [500, 503])
def test_a_page_that_keeps_failing_makes_the_read_incomplete_after_bounded_retries(
    hr: HrServer, mode: str, status: int
) -> None:
    hr.state.faults = [Fault("status", page=2, status=status)]

    read = _http(hr, mode).read()

    assert not read.complete
    assert read.problem.startswith("page 2: GET ")
    assert f"HTTP {status} (after {ATTEMPTS} attempts)" in read.problem
    assert _page_requests(hr, 2) == ATTEMPTS
    assert _page_requests(hr, 3) == 0  # nothing after the broken page is read
    assert _ids(read) == _expected_ids(PAGE_SIZE)


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_page_that_fails_once_is_retried_and_the_read_completes(hr: HrServer, mode: str) -> None:
    hr.state.faults = [Fault("status", page=2, status=502, times=1)]

    read = _http(hr, mode).read()

    assert read.complete, read.problem
    assert _ids(read) == _expected_ids()
    assert _page_requests(hr, 2) == 2


def test_429_with_retry_after_is_honoured_once(hr: HrServer) -> None:
    hr.state.faults = [Fault("status", page=2, status=429, retry_after="1", times=1)]
    started = time.monotonic()

    read = _http(hr, "page", total=True).read()

    assert read.complete, read.problem
    assert time.monotonic() - started >= 1.0
    assert [seen.status for seen in hr.state.requests_to("/api/")] == [200, 429, 200, 200]


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_page_that_times_out_makes_the_read_incomplete_within_its_deadline(hr: HrServer, mode: str) -> None:
    hr.state.faults = [Fault("slow", page=2, seconds=5 * TIMEOUT_SECONDS)]
    started = time.monotonic()

    read = _http(hr, mode).read()

    elapsed = time.monotonic() - started
    assert not read.complete
    assert f"no answer within {TIMEOUT_SECONDS:g} s (after {ATTEMPTS} attempts)" in read.problem
    assert _page_requests(hr, 2) == ATTEMPTS
    assert elapsed < ATTEMPTS * TIMEOUT_SECONDS + 2.0


# Offset paging advances by what came back, so a cut page is asked for again from where it stopped: complete.
# Page paging notices the records behind the cut (the next page still has records), with or without a total.
# Cursor and link paging can only tell from the total.
TRUNCATION_CASES = [
    pytest.param("page", False, False, id="page"),
    pytest.param("page", True, False, id="page-total"),
    pytest.param("offset", False, True, id="offset"),
    pytest.param("offset", True, True, id="offset-total"),
    pytest.param("cursor", True, False, id="cursor-total"),
    pytest.param("link-in-body", True, False, id="link-in-body-total"),
    pytest.param("link-header", True, False, id="link-header-total"),
]


@pytest.mark.parametrize(("mode", "total", "complete"), TRUNCATION_CASES)
def test_a_page_cut_short(hr: HrServer, mode: str, total: bool, complete: bool) -> None:
    hr.state.faults = [Fault("truncate", page=2, drop=3, times=1)]

    read = _http(hr, mode, total=total).read()

    assert read.complete is complete, read.problem
    if complete:
        assert _ids(read) == _expected_ids()
    else:
        assert "short" in read.problem or "lost" in read.problem
        assert len(read.records) < PEOPLE


def test_page_paging_names_the_page_that_came_back_short(hr: HrServer) -> None:
    hr.state.faults = [Fault("truncate", page=2, drop=3, times=1)]

    read = _http(hr, "page").read()

    assert read.problem == (
        "page 2 came back with 7 of 10 records, yet page 3 still has records: the records in between were lost"
    )


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_read_short_of_the_announced_total_without_any_error_is_incomplete(hr: HrServer, mode: str) -> None:
    hr.state.extra_total = 5

    read = _http(hr, mode, total=True).read()

    assert not read.complete
    assert "read 25 records where meta.total said 30" in read.problem or "25 of the 30 at meta.total" in read.problem
    assert all(seen.status == 200 for seen in hr.state.seen)


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        pytest.param(Fault("bad-json", page=2), "page 2: GET ", id="bad-json"),
        pytest.param(Fault("no-records", page=2), "page 2: no list of records at data.items", id="no-records"),
        pytest.param(Fault("status", page=2, status=400), "HTTP 400", id="400"),
    ],
)
def test_a_page_with_a_broken_answer_is_not_retried(hr: HrServer, fault: Fault, problem: str) -> None:
    hr.state.faults = [fault]

    read = _http(hr, "offset").read()

    assert not read.complete
    assert problem in read.problem
    assert _page_requests(hr, 2) == 1


def test_bad_json_is_named(hr: HrServer) -> None:
    hr.state.faults = [Fault("bad-json", page=1)]

    read = _http(hr, "page").read()

    assert read.problem.endswith("the answer is not JSON (HTTP 200)")


def test_a_cursor_that_repeats_stops_the_read(hr: HrServer) -> None:
    hr.state.faults = [Fault("same-cursor", page=2)]

    read = _http(hr, "cursor").read()

    assert not read.complete
    assert read.problem == "page 3 asks for a page already read (the cursor or link repeats)"
    assert _page_requests(hr, 2) == 1


def test_paging_is_capped(hr: HrServer) -> None:
    read = _http(hr, "cursor", max_pages=2).read()

    assert not read.complete
    assert "more than 2 pages" in read.problem
    assert len(hr.state.requests_to("/api/")) == 2


def test_a_next_link_to_another_server_is_not_followed(hr: HrServer) -> None:
    hr.state.faults = [Fault("foreign-link", page=1)]

    read = _http(hr, "link-in-body").read()

    assert not read.complete
    assert "points to another server (http://127.0.0.2:9/api/link/people); not followed" in read.problem
    assert len(hr.state.requests_to("/api/")) == 1


def test_wrong_credentials_are_not_retried_and_the_token_is_never_shown(hr: HrServer) -> None:
    hr.state.token = "the-rotated-token"

    read = _http(hr, "page").read()

    assert not read.complete
    assert "HTTP 401: check the source's credentials" in read.problem
    assert TOKEN not in read.problem and "rotated" not in read.problem
    assert len(hr.state.seen) == 1


def test_a_server_that_is_down_is_an_incomplete_read(hr: HrServer) -> None:
    source = _http(hr, "page", url="http://127.0.0.1:9/api/page/people?api_key=canary-key")

    read = source.read()

    assert not read.complete
    assert read.problem == (
        f"page 1: GET http://127.0.0.1:9/api/page/people: connection failed or was reset (after {ATTEMPTS} attempts)"
    )


# --- http-json: lookup ---------------------------------------------------------------------------------------


def test_lookup_found_and_not_found(hr: HrServer) -> None:
    source = _http(hr, "page", lookup_url=f"{hr.url}/api/people/{{id}}", lookup_record_path="data")

    found = source.lookup("E00007")
    missing = source.lookup("E99999")

    assert isinstance(found, Found)
    assert found.record.get("email") == "user00007@example.org"
    assert missing == NotFound()


def test_lookup_escapes_the_id_into_one_path_segment(hr: HrServer) -> None:
    hr.state.people = [*people(2), {**person(2), "id": "a/b?c#d e"}]
    source = _http(hr, "page", lookup_url=f"{hr.url}/api/people/{{id}}", lookup_record_path="data")

    found = source.lookup("a/b?c#d e")

    assert isinstance(found, Found)
    assert found.record.get("id") == "a/b?c#d e"
    assert source.lookup("../people/E00001") == NotFound()


@pytest.mark.parametrize(("status", "attempts"), [(500, ATTEMPTS), (503, ATTEMPTS), (403, 1), (400, 1)])
def test_lookup_that_cannot_tell_raises_unavailable(hr: HrServer, status: int, attempts: int) -> None:
    hr.state.lookup_status = status
    source = _http(hr, "page", lookup_url=f"{hr.url}/api/people/{{id}}")

    with pytest.raises(SourceUnavailable, match=f"HTTP {status}") as raised:
        source.lookup("E00007")

    assert TOKEN not in str(raised.value)
    assert len(hr.state.requests_to("/api/people/")) == attempts


@pytest.mark.parametrize("lookup", ["http-json", "scim"])
@pytest.mark.parametrize("answer", ["error-object", "null"])
def test_lookup_answered_200_without_the_record_raises_unavailable(hr: HrServer, lookup: str, answer: str) -> None:
    if answer == "null":
        hr.state.lookup_null = True
    else:
        hr.state.lookup_status = 200  # answers {"error": "injected"}
    source: HttpJsonSource | ScimSource = (
        _http(hr, "page", lookup_url=f"{hr.url}/api/people/{{id}}", lookup_record_path="data")
        if lookup == "http-json"
        else _scim(hr)
    )

    with pytest.raises(SourceUnavailable):
        source.lookup("E00007" if lookup == "http-json" else "scim-E00007")


def test_lookup_of_a_server_that_is_down_raises_unavailable(hr: HrServer) -> None:
    source = _http(hr, "page", lookup_url="http://127.0.0.1:9/api/people/{id}")

    with pytest.raises(SourceUnavailable, match="connection failed"):
        source.lookup("E00007")


def test_lookup_answered_with_another_record_raises_unavailable(hr: HrServer) -> None:
    # A template that forgets {id} in the right place answers someone else: never "found" for the wrong person.
    source = _http(hr, "page", lookup_url=f"{hr.url}/api/people/E00001?wanted={{id}}", lookup_record_path="data")

    with pytest.raises(SourceUnavailable, match="another id"):
        source.lookup("E00007")


@pytest.mark.parametrize(("faults", "expected"), [([], "found"), ([Fault("status", page=3)], "unavailable")])
def test_lookup_without_a_lookup_url_reads_everything(hr: HrServer, faults: list[Fault], expected: str) -> None:
    hr.state.faults = faults
    source = _http(hr, "page")

    if expected == "found":
        assert isinstance(source.lookup("E00024"), Found)
        assert source.lookup("E00025") == NotFound()
    else:
        with pytest.raises(SourceUnavailable, match="page 3"):
            source.lookup("E00024")


def _reads(server: HrServer) -> int:
    """How many reads of the whole list the server saw: each one asks for page 1 once."""
    return _page_requests(server, 1)


def test_lookups_without_a_lookup_url_share_one_re_read_made_after_the_read(hr: HrServer) -> None:
    source = _http(hr, "page")
    assert source.read().complete
    pages_per_read = len(hr.state.requests_to("/api/"))
    hr.state.people = people(PEOPLE - 1)  # E00024 leaves after the read: the lookups must see the newer data

    answers = [source.lookup(wanted) for wanted in ("E00024", "E00003", "E00023", "E99999", "E00003")]

    assert answers[0] == NotFound()
    assert [answer.record.get("id") for answer in answers[1:3] if isinstance(answer, Found)] == ["E00003", "E00023"]
    assert answers[3] == NotFound()
    assert isinstance(answers[4], Found) and answers[4].record.get("email") == "user00003@example.org"
    assert _reads(hr) == 2  # the read and one re-read, not one per lookup
    assert len(hr.state.requests_to("/api/")) == 2 * pages_per_read


def test_a_new_read_makes_the_next_lookup_read_again(hr: HrServer) -> None:
    source = _http(hr, "page")
    source.read()
    assert isinstance(source.lookup("E00024"), Found)
    hr.state.people = people(PEOPLE - 1)
    assert isinstance(source.lookup("E00024"), Found)  # the kept re-read still answers until the next read
    assert _reads(hr) == 2

    source.read()

    assert source.lookup("E00024") == NotFound()
    assert isinstance(source.lookup("E00001"), Found)
    assert _reads(hr) == 4


def test_an_incomplete_re_read_raises_and_is_not_kept(hr: HrServer) -> None:
    source = _http(hr, "page")
    source.read()
    hr.state.faults = [Fault("status", page=2, status=503, times=2 * ATTEMPTS)]  # two re-reads fail

    for _ in range(2):
        with pytest.raises(SourceUnavailable, match="page 2"):
            source.lookup("E00001")  # an id on page 1, which each re-read did get
    found = source.lookup("E00024")
    also_found = source.lookup("E00001")

    assert isinstance(found, Found) and isinstance(also_found, Found)
    assert _reads(hr) == 1 + 3  # two failed re-reads, then one good one that the last lookup reuses


def test_lookups_from_many_threads_at_once_make_one_re_read(hr: HrServer) -> None:
    source = _http(hr, "page")
    source.read()
    hr.state.faults = [Fault("slow", page=1, seconds=0.2, times=1)]  # keeps the re-read going while all ask
    wanted = ["E00000", "E00009", "E00017", "E00024", "E00025", "E00099", "E10000", "e00001"]  # 4 known, 4 not
    start = threading.Barrier(len(wanted), timeout=10)

    def look_up(external_id: str) -> Found | NotFound:
        start.wait()
        return source.lookup(external_id)

    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        answers = list(pool.map(look_up, wanted))

    found_ids = [answer.record.get("id") if isinstance(answer, Found) else None for answer in answers]
    assert found_ids == [*wanted[:4], None, None, None, None]
    assert _reads(hr) == 2


# --- scim --------------------------------------------------------------------------------------------------


def test_scim_reads_every_user_page_by_page(hr: HrServer) -> None:
    read = _scim(hr).read()

    assert read.complete, read.problem
    assert _ids(read, "externalId") == _expected_ids()
    assert read.pages == 3
    starts = [seen.params["startIndex"] for seen in hr.state.requests_to("/scim/")]
    assert starts == ["1", "11", "21"]
    fields = dict(read.records[3].fields)
    assert fields == {
        "id": "scim-E00003",
        "externalId": "E00003",
        "userName": "user00003",
        "title": "Clerk",
        "name.givenName": "Test",
        "name.familyName": "Person3",
        "active": "true",
        "emails": ("private.user00003@example.org", "user00003@example.org"),
        "email": "user00003@example.org",
        "groups": ("staff", "finance"),
        "employeeNumber": "00003",
        "department": "Finance",
        "manager": "scim-E00000",
    }


def test_scim_sends_the_configured_filter(hr: HrServer) -> None:
    read = _scim(hr, filter='externalId eq "E00004"').read()

    assert read.complete
    assert _ids(read, "externalId") == ["E00004"]
    assert hr.state.seen[0].params["filter"] == 'externalId eq "E00004"'


def test_scim_with_no_users_is_a_complete_empty_read(hr: HrServer) -> None:
    hr.state.people = []

    read = _scim(hr).read()

    assert read.complete
    assert read.records == ()


@pytest.mark.parametrize(
    ("fault", "problem", "page_requests"),
    [
        pytest.param(Fault("status", page=2), "HTTP 500 (after 3 attempts)", ATTEMPTS, id="500"),
        pytest.param(Fault("slow", page=2, seconds=5 * TIMEOUT_SECONDS), "no answer within 0.5 s", ATTEMPTS,
                     id="timeout"),
        pytest.param(Fault("bad-json", page=2), "not JSON", 1, id="bad-json"),
        pytest.param(Fault("no-records", page=2), "no totalResults", 1, id="not-a-list-response"),
    ],
)  # fmt: skip
def test_scim_page_that_fails_makes_the_read_incomplete(
    hr: HrServer, fault: Fault, problem: str, page_requests: int
) -> None:
    hr.state.faults = [fault]

    read = _scim(hr).read()

    assert not read.complete
    assert read.problem.startswith("page 2 (startIndex 11): ")
    assert problem in read.problem
    assert [seen.params["startIndex"] for seen in hr.state.requests_to("/scim/")].count("11") == page_requests


def test_scim_page_cut_short_is_followed_up_from_where_it_stopped(hr: HrServer) -> None:
    # RFC 7644 lets a server return fewer than `count`; advancing by what came back loses nobody.
    hr.state.faults = [Fault("truncate", page=2, drop=4, times=1)]

    read = _scim(hr).read()

    assert read.complete, read.problem
    assert _ids(read, "externalId") == _expected_ids()
    assert [seen.params["startIndex"] for seen in hr.state.requests_to("/scim/")] == ["1", "11", "17"]


def test_scim_fewer_users_than_total_results_is_incomplete(hr: HrServer) -> None:
    hr.state.extra_total = 3

    read = _scim(hr).read()

    assert not read.complete
    assert read.problem == "page 4 (startIndex 26) came back empty with 25 of 28 users read"
    assert len(read.records) == PEOPLE


def test_scim_lookup_by_id(hr: HrServer) -> None:
    source = _scim(hr)

    found = source.lookup("scim-E00005")

    assert isinstance(found, Found)
    assert found.record.get("externalId") == "E00005"
    assert source.lookup("scim-E99999") == NotFound()


def test_a_scim_404_that_is_no_scim_error_is_not_taken_as_no_such_user(hr: HrServer) -> None:
    """A gateway's 404 page (a route missing while the service redeploys) says nothing about the user."""
    hr.state.lookup_page_404 = True

    with pytest.raises(SourceUnavailable, match="answered 404 without a SCIM error; not taken as 'no such user'"):
        _scim(hr).lookup("scim-E99999")


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        pytest.param("E00005", "E00005", id="plain"),
        pytest.param('E"q\\x', 'E"q\\x', id="quote-and-backslash"),
        pytest.param('E" or userName pr or externalId eq "', None, id="filter-injection"),
        pytest.param("E\u00e9\n\t", None, id="controls-and-non-ascii"),
    ],
)
def test_scim_lookup_by_external_id_escapes_the_value(hr: HrServer, wanted: str, expected: str | None) -> None:
    hr.state.people = [*people(10), {**person(10), "id": 'E"q\\x'}]
    source = _scim(hr, lookup_by="externalId")

    result = source.lookup(wanted)

    if expected is None:
        assert result == NotFound()
    else:
        assert isinstance(result, Found)
        assert result.record.get("externalId") == expected


@pytest.mark.parametrize("lookup_by", ["id", "externalId"])
def test_scim_lookup_that_cannot_tell_raises_unavailable(hr: HrServer, lookup_by: str) -> None:
    hr.state.lookup_status = 503
    source = _scim(hr, lookup_by=lookup_by)

    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        source.lookup("scim-E00005" if lookup_by == "id" else "E00005")

    assert len(hr.state.requests_to("/scim/")) == ATTEMPTS
