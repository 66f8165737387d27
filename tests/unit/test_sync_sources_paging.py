"""Paging decisions of the http-json source (pure): which page comes next, when a read ends, when it is broken;
and whole reads over a fake server that ignores the paging, or whose records move between pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from agent.errors import SourceUnavailable
from agent.sync.model import NotFound
from agent.sync.sources import http_json, scim
from agent.sync.sources.config import HttpJsonSourceConfig, ScimSourceConfig
from agent.sync.sources.http_client import NOT_FOUND, JsonAnswer, JsonClient
from agent.sync.sources.http_json import PageRequest, PageSeen, Stop, first_request, next_step, read_pages
from agent.sync.sources.scim import read_users

URL = "https://hr.example.org/api/people"


def _config(paging: dict[str, Any], **extra: Any) -> HttpJsonSourceConfig:
    return HttpJsonSourceConfig.model_validate(
        {"type": "http-json", "name": "hr", "url": URL, "paging": paging, "params": {"status": "all"}, **extra}
    )


PAGE = {"mode": "page", "size": 10}
OFFSET = {"mode": "offset", "size": 10}
CURSOR = {"mode": "cursor", "next_cursor_path": "meta.next", "size": 10}
LINK_BODY = {"mode": "next-link", "next_link_path": "links.next"}
LINK_HEADER = {"mode": "next-link"}


@pytest.mark.parametrize(
    ("paging", "params"),
    [
        (PAGE, (("status", "all"), ("page", "1"), ("per_page", "10"))),
        ({**PAGE, "first_page": 0, "page_param": "p", "size_param": "n"}, (("status", "all"), ("p", "0"), ("n", "10"))),
        (OFFSET, (("status", "all"), ("offset", "0"), ("limit", "10"))),
        (CURSOR, (("status", "all"), ("limit", "10"))),
        (LINK_HEADER, (("status", "all"),)),
        ({"mode": "none"}, (("status", "all"),)),
    ],
)
def test_first_request(paging: dict[str, Any], params: tuple[tuple[str, str], ...]) -> None:
    assert first_request(_config(paging)) == PageRequest(1, URL, params)


def _page(
    count: int, read: int, total: int | None = None, body: Any = None, links: dict[str, str] | None = None
) -> PageSeen:
    return PageSeen(count, body if body is not None else {}, links or {}, URL, read, total)


def _page_request(number: int, page: int, *, after_short: int | None = None) -> PageRequest:
    return PageRequest(
        number, URL, (("status", "all"), ("page", str(page)), ("per_page", "10")), after_short=after_short
    )


PAGE_CASES = [
    pytest.param(_page_request(1, 1), _page(10, 10), _page_request(2, 2), id="full-page-goes-on"),
    pytest.param(_page_request(2, 2), _page(0, 10), Stop(), id="empty-page-ends"),
    pytest.param(_page_request(3, 3), _page(4, 24), _page_request(4, 4, after_short=4), id="short-page-is-confirmed"),
    pytest.param(_page_request(4, 4, after_short=4), _page(0, 24), Stop(), id="confirmed-end"),
    pytest.param(_page_request(3, 3, after_short=7), _page(10, 27),
                 Stop("page 2 came back with 7 of 10 records, yet page 3 still has records: the records in between "
                      "were lost"), id="records-after-a-short-page"),
    pytest.param(_page_request(3, 3), _page(10, 30, total=30), Stop(), id="total-reached"),
    pytest.param(_page_request(2, 2), _page(6, 16, total=30),
                 Stop("page 2 came back short: 6 of 10 records, 16 of the 30 at meta.total read"), id="short-of-total"),
    pytest.param(_page_request(1, 1), _page(11, 11),
                 Stop("page 1 has 11 records, more than paging.size 10: set it to the server's"), id="page-too-big"),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "page", "expected"), PAGE_CASES)
def test_page_paging(request_: PageRequest, page: PageSeen, expected: PageRequest | Stop) -> None:
    assert next_step(_config(PAGE, expected_total_path="meta.total"), request_, page) == expected


def test_page_paging_without_confirm_end_trusts_a_short_page() -> None:
    config = _config({**PAGE, "confirm_end": False})

    assert next_step(config, _page_request(3, 3), _page(4, 24)) == Stop()


def _offset_request(number: int, offset: int) -> PageRequest:
    return PageRequest(number, URL, (("status", "all"), ("offset", str(offset)), ("limit", "10")), offset=offset)


OFFSET_CASES = [
    pytest.param({}, _offset_request(1, 0), _page(10, 10), _offset_request(2, 10), id="full-page"),
    pytest.param({}, _offset_request(2, 10), _page(7, 17), _offset_request(3, 17), id="short-page-goes-on-from-there"),
    pytest.param({}, _offset_request(3, 17), _page(0, 17), Stop(), id="empty-page-ends"),
    pytest.param({"confirm_end": False}, _offset_request(2, 10), _page(7, 17), Stop(), id="no-confirm-short-ends"),
    pytest.param({}, _offset_request(2, 10), _page(10, 20, total=20), Stop(), id="total-reached"),
]


@pytest.mark.parametrize(("extra", "request_", "page", "expected"), OFFSET_CASES)
def test_offset_paging(
    extra: dict[str, Any], request_: PageRequest, page: PageSeen, expected: PageRequest | Stop
) -> None:
    assert next_step(_config({**OFFSET, **extra}), request_, page) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"meta": {"next": "abc"}}, PageRequest(2, URL, (("status", "all"), ("limit", "10"), ("cursor", "abc")))),
        ({"meta": {"next": 17}}, PageRequest(2, URL, (("status", "all"), ("limit", "10"), ("cursor", "17")))),
        ({"meta": {"next": None}}, Stop()),
        ({"meta": {"next": ""}}, Stop()),
        ({"meta": {}}, Stop()),
    ],
)
def test_cursor_paging(body: Any, expected: PageRequest | Stop) -> None:
    request_ = PageRequest(1, URL, (("status", "all"), ("limit", "10")))

    assert next_step(_config(CURSOR), request_, _page(10, 10, body=body)) == expected


@pytest.mark.parametrize(
    ("paging", "body", "links", "expected"),
    [
        (LINK_BODY, {"links": {"next": "/api/people?after=9"}}, {},
         PageRequest(2, "https://hr.example.org/api/people?after=9", ())),
        (LINK_BODY, {"links": {"next": "https://HR.example.org:443/api/people?after=9"}}, {},
         PageRequest(2, "https://HR.example.org:443/api/people?after=9", ())),
        (LINK_BODY, {"links": {"next": None}}, {}, Stop()),
        (LINK_BODY, {"links": {"next": 5}}, {}, Stop("page 1: the next link at links.next is not a URL")),
        (LINK_BODY, {"links": {"next": "https://evil.example.net/steal"}}, {},
         Stop("page 1: the next link points to another server (https://evil.example.net/steal); not followed")),
        (LINK_BODY, {"links": {"next": "http://hr.example.org/api/people?after=9"}}, {},
         Stop("page 1: the next link points to another server (http://hr.example.org/api/people); not followed")),
        (LINK_HEADER, {}, {"next": "https://hr.example.org/api/people?page=2"},
         PageRequest(2, "https://hr.example.org/api/people?page=2", ())),
        (LINK_HEADER, {}, {"prev": "https://hr.example.org/api/people?page=0"}, Stop()),
    ],
)  # fmt: skip
def test_next_link_paging(
    paging: dict[str, Any], body: Any, links: dict[str, str], expected: PageRequest | Stop
) -> None:
    request_ = PageRequest(1, URL, (("status", "all"),))

    assert next_step(_config(paging), request_, _page(10, 10, body=body, links=links)) == expected


def test_without_paging_one_page_is_all() -> None:
    assert next_step(_config({"mode": "none"}), PageRequest(1, URL, ()), _page(10, 10)) == Stop()


class FakeServer:
    """Stands in for a JsonClient: answers the bodies in turn, whatever is asked (then an empty page), or 404
    (with a SCIM error, as a SCIM service provider's)."""

    def __init__(self, bodies: Sequence[Any] = (), *, status: int = 200) -> None:
        self.bodies = list(bodies)
        self.status = status
        self.urls: list[str] = []

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def get(self, url: str, params: Sequence[tuple[str, str]] = (), *, not_found_ok: bool = False) -> JsonAnswer:
        self.urls.append(url)
        if self.status == NOT_FOUND:
            return JsonAnswer(NOT_FOUND, {"schemas": [scim.SCIM_ERROR], "status": "404"}, {}, {}, url)
        body = self.bodies.pop(0) if self.bodies else {"items": [], "Resources": [], "totalResults": 0}
        return JsonAnswer(self.status, body, {}, {}, url)


def _people(*ids: str, total: int | None = None) -> dict[str, Any]:
    return {"items": [{"id": id_} for id_ in ids], **({} if total is None else {"total": total})}


LONG_ID = "x" * 60
SMALL_PAGE = {"mode": "page", "size": 2}
HTTP_READ_CASES = [
    pytest.param(SMALL_PAGE, [_people("p1", "p2", total=4)] * 2,
                 "page 2 repeats every id of earlier pages (first 'p1', of page 1): the server ignored the paging",
                 id="page-ignored"),
    pytest.param({"mode": "offset", "size": 2}, [_people("p1", "p2", total=4)] * 2,
                 "page 2 repeats every id of earlier pages (first 'p1', of page 1): the server ignored the paging",
                 id="offset-ignored"),
    pytest.param(SMALL_PAGE, [_people("p1", "p2"), _people("p3", "p4"), _people("p2", "p1")],
                 "page 3 repeats every id of earlier pages (first 'p2', of page 1): the server ignored the paging",
                 id="repeat-without-total"),
    pytest.param(SMALL_PAGE, [_people(LONG_ID, "p2"), _people(LONG_ID, "p2")],
                 f"page 2 repeats every id of earlier pages (first '{'x' * 37}...', of page 1): the server ignored "
                 "the paging",
                 id="long-id-cut"),
    # Must stay complete: one id seen on an earlier page is the data's (two contracts) or a record moved by an
    # insert (read twice, none lost); the mapping rejects the duplicate.
    pytest.param(SMALL_PAGE, [_people("p1", "p2"), _people("p3", "p4"), _people("p1", "p5")], "",
                 id="one-id-again-is-data"),
    pytest.param(SMALL_PAGE, [_people("p1", "p2", total=4), _people("p3", "p4", total=5)],
                 "the total at total changed from 4 to 5 while reading: records moved between pages",
                 id="total-changed"),
    pytest.param(SMALL_PAGE, [_people("p1", "p2", total=3), _people("p3", "p4", total=3)],
                 "page 2 brings the records read to 4, more than the 3 at total: records moved between pages",
                 id="more-than-total"),
    # Must stay complete: a repeat within one page is the mapping's to reject, and a later page may omit the total.
    pytest.param(SMALL_PAGE, [_people("p1", "p1", total=4), _people("p3", "p4", total=4)], "",
                 id="repeat-within-a-page-is-data"),
    pytest.param(SMALL_PAGE, [_people("p1", "p2", total=4), _people("p3", "p4")], "", id="later-page-without-total"),
]  # fmt: skip


@pytest.mark.parametrize(("paging", "bodies", "problem"), HTTP_READ_CASES)
def test_http_json_read_that_may_have_missed_records_is_incomplete(
    paging: dict[str, Any], bodies: list[Any], problem: str
) -> None:
    total_path = "total" if "total" in bodies[0] else None  # a row whose page 1 states a total has it read
    config = _config(paging, records_path="items", expected_total_path=total_path)

    result = read_pages(config, cast(JsonClient, FakeServer(bodies)))

    assert (result.complete, result.problem) == (not problem, problem)


def _users(*ids: str, total: int = 4, start: int | str | None = None) -> dict[str, Any]:
    start_index = {} if start is None else {"startIndex": start}
    return {"totalResults": total, **start_index, "Resources": [{"id": id_, "userName": id_} for id_ in ids]}


SCIM_READ_CASES = [
    pytest.param([_users("u1", "u2", start=1)] * 2,
                 "page 2 (startIndex 3): the answer starts at startIndex 1: the server ignored the paging",
                 id="start-index-ignored"),
    pytest.param([_users("u1", "u2"), _users("u3", "u4", total=5)],
                 "page 2 (startIndex 3): totalResults changed from 4 to 5 while reading: users moved between pages",
                 id="total-changed"),
    pytest.param([_users("u1", "u2"), _users("u2", "u3"), _users("u4")],
                 "page 2 (startIndex 3): repeats user id 'u2' of page 1: the server ignored the paging or the users "
                 "moved", id="user-repeated"),
    # Must stay complete: the startIndex asked for (as a string too), and a repeat within one page (the data's).
    pytest.param([_users("u1", "u1", start=1), _users("u3", "u4", start="3")], "", id="start-index-agrees"),
]  # fmt: skip


@pytest.mark.parametrize(("bodies", "problem"), SCIM_READ_CASES)
def test_scim_read_that_may_have_missed_users_is_incomplete(bodies: list[Any], problem: str) -> None:
    config = ScimSourceConfig.model_validate({"type": "scim", "name": "s", "base_url": URL, "page_size": 2})

    result = read_users(config, cast(JsonClient, FakeServer(bodies)))

    assert (result.complete, result.problem) == (not problem, problem)


SCIM_BY_ID = {"type": "scim", "name": "hr", "base_url": "https://hr.example.org/scim/v2"}
HTTP_BY_PATH = {"type": "http-json", "name": "hr", "url": URL, "lookup_url": URL + "/{id}"}
HTTP_BY_QUERY = {**HTTP_BY_PATH, "lookup_url": URL + "?id={id}"}


def _source(spec: dict[str, Any]) -> scim.ScimSource | http_json.HttpJsonSource:
    if spec["type"] == "scim":
        return scim.ScimSource(ScimSourceConfig.model_validate(spec))
    return http_json.HttpJsonSource(HttpJsonSourceConfig.model_validate(spec))


@pytest.mark.parametrize(
    ("spec", "external_id", "refused"),
    [
        pytest.param(SCIM_BY_ID, "..", True, id="scim-dotdot"),
        pytest.param(SCIM_BY_ID, ".", True, id="scim-dot"),
        pytest.param(HTTP_BY_PATH, "..", True, id="http-dotdot"),
        pytest.param(HTTP_BY_PATH, ".", True, id="http-dot"),
        # Not dot segments, or not in the path: asked for as usual, so the server's 404 is NotFound.
        pytest.param(SCIM_BY_ID, "...", False, id="scim-three-dots"),
        pytest.param(HTTP_BY_PATH, "a..", False, id="http-dots-in-a-segment"),
        pytest.param(HTTP_BY_QUERY, "..", False, id="http-dotdot-in-the-query"),
    ],
)
def test_an_id_the_http_stack_would_resolve_as_a_dot_segment_is_refused(
    monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any], external_id: str, refused: bool
) -> None:
    # GET /Users/.. would reach /scim/v2/, whose 404 must not read as "this person is gone".
    server = FakeServer(status=NOT_FOUND)
    monkeypatch.setattr(scim, "JsonClient", lambda _config: server)
    monkeypatch.setattr(http_json, "JsonClient", lambda _config: server)
    source = _source(spec)

    if refused:
        with pytest.raises(SourceUnavailable, match="cannot be looked up in a URL path"):
            source.lookup(external_id)
        assert server.urls == []
    else:
        assert source.lookup(external_id) == NotFound()
