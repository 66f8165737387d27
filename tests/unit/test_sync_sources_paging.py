"""Paging decisions of the http-json source (pure): which page comes next, when a read ends, when it is broken."""

from __future__ import annotations

from typing import Any

import pytest

from agent.sync.sources.config import HttpJsonSourceConfig
from agent.sync.sources.http_json import PageRequest, PageSeen, Stop, first_request, next_step

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
