"""The `http-json` source: an HR system's REST endpoint, read page by page; any page lost makes it incomplete.

Paging decisions are pure (`first_request`, `next_step`); `read_pages` drives them over a JsonClient.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from agent.errors import SourceUnavailable
from agent.sync.model import FieldValue, Found, NotFound, SourceRead, SourceRecord
from agent.sync.record_mapping import shown
from agent.sync.sources.common import check_external_id, check_path_id, index_by_field
from agent.sync.sources.config import (
    CursorPaging,
    HttpJsonSourceConfig,
    NextLinkPaging,
    NoPaging,
    OffsetPaging,
    PagePaging,
)
from agent.sync.sources.http_client import NOT_FOUND, FetchFailed, JsonClient, safe_url, same_origin

MISSING: Any = object()


@dataclass(frozen=True)
class PageRequest:
    """The `number`-th page (1-based) to ask for; `offset` for offset paging; `after_short`: the record
    count of the previous page when it came back short and this request only confirms the end."""

    number: int
    url: str
    params: tuple[tuple[str, str], ...]
    offset: int = 0
    after_short: int | None = None


@dataclass(frozen=True)
class PageSeen:
    """What paging needs to know of an answered page: its record count, body, Link header and final URL, the
    records read so far (this page included) and the total the first page announced, if any."""

    count: int
    body: Any
    links: Mapping[str, str]
    url: str
    read: int
    total: int | None = None


@dataclass(frozen=True)
class Stop:
    """No more pages: the read ended (problem "") or cannot be trusted (problem says why)."""

    problem: str = ""


class HttpJsonSource:
    """Reads every page on each `read`. A `lookup` asks `lookup_url` for the one record; without it, the first
    lookup after a `read` reads every page again and keeps that complete re-read, indexed by `id_field`, for
    the lookups after it, until the next `read` (so confirming many leavers reads the feed once more, not
    once per leaver). An incomplete re-read is not kept: the next lookup tries again."""

    def __init__(self, config: HttpJsonSourceConfig) -> None:
        self.config = config
        self.name = config.name
        # Held through a re-read, so lookups from several threads at once wait for one re-read, not start their own.
        self._lock = threading.Lock()
        self._index: Mapping[str, SourceRecord] | None = None

    def read(self) -> SourceRead:
        """All pages; the first page that fails, loops or comes back short makes the read incomplete."""
        # A lookup confirms a leaver that this read missed: it must read again, not trust an older re-read.
        with self._lock:
            self._index = None
        return read_all(self.config)

    def lookup(self, external_id: str) -> Found | NotFound:
        """GET `lookup_url` with the id: 200 Found, 404 NotFound, anything else raises SourceUnavailable.
        Without `lookup_url`: searched by `id_field` in the re-read kept since the last `read` (the first
        record wins a duplicate id); an incomplete re-read raises."""
        check_external_id(external_id)
        if self.config.lookup_url is None:
            record = self._reread_index().get(external_id)
            return NotFound() if record is None else Found(record)
        url = lookup_url(self.config.name, self.config.lookup_url, external_id)
        with JsonClient(self.config) as client:
            try:
                answer = client.get(url, not_found_ok=True)
            except FetchFailed as failed:
                raise SourceUnavailable(f"source {self.name}: lookup failed: {failed}") from None
        if answer.status == NOT_FOUND:
            return NotFound()
        return Found(lookup_record(self.config, answer.body, safe_url(url), external_id))

    def _reread_index(self) -> Mapping[str, SourceRecord]:
        with self._lock:
            if self._index is None:
                self._index = reread_index(self.config)
            return self._index


def read_all(config: HttpJsonSourceConfig) -> SourceRead:
    with JsonClient(config) as client:
        return read_pages(config, client)


def reread_index(config: HttpJsonSourceConfig) -> Mapping[str, SourceRecord]:
    """A fresh complete read indexed by `id_field` as `find_by_field` would search it; SourceUnavailable when
    the read is incomplete (nothing of it is kept)."""
    result = read_all(config)
    if not result.complete:
        raise SourceUnavailable(f"source {config.name}: {result.problem}")
    return index_by_field(result.records, config.id_field)


def lookup_url(source: str, template: str, external_id: str) -> str:
    """The template with the id; SourceUnavailable for an id the HTTP stack would resolve as a path segment."""
    if "{id}" in urlsplit(template).path:  # in the query, dots are plain text
        check_path_id(source, external_id)
    return template.replace("{id}", quote(external_id, safe=""))


def lookup_record(config: HttpJsonSourceConfig, body: Any, where: str, external_id: str) -> SourceRecord:
    """The record in a lookup answer; SourceUnavailable when there is none or it is another person's."""
    item = value_at(body, config.lookup_record_path)
    if not isinstance(item, Mapping):
        path = config.lookup_record_path or "the top level"
        raise SourceUnavailable(f"source {config.name}: GET {where}: no JSON object at {path}")
    record = SourceRecord(config.name, flatten_json(item), f"GET {where}")
    found = record.get(config.id_field)
    if found is not None and found != external_id:
        raise SourceUnavailable(f"source {config.name}: GET {where} answered a record with another {config.id_field}")
    return record


def read_pages(config: HttpJsonSourceConfig, client: JsonClient) -> SourceRead:
    """Follow the pages until paging stops (each paging model in config.py says how it ends)."""
    records: list[SourceRecord] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    first_page_of: dict[str, int] = {}
    total: int | None = None
    pages = 0

    def incomplete(problem: str) -> SourceRead:
        return SourceRead(config.name, tuple(records), complete=False, problem=problem, pages=pages)

    step: PageRequest | Stop = first_request(config)
    while isinstance(step, PageRequest):
        if step.number > config.max_pages:
            return incomplete(f"more than {config.max_pages} pages (max_pages): stopped, the paging may loop")
        key = (step.url, step.params)
        if key in seen:
            return incomplete(f"page {step.number} asks for a page already read (the cursor or link repeats)")
        seen.add(key)
        try:
            answer = client.get(step.url, step.params)
        except FetchFailed as failed:
            return incomplete(f"page {step.number}: {failed}")
        pages += 1
        page_records, problem = records_of(config, answer.body, step.number)
        if problem:
            return incomplete(f"page {step.number}: {problem}")
        if pages == 1 and config.expected_total_path:
            total = total_of(answer.body, config.expected_total_path)
            if total is None:
                return incomplete(f"page 1 has no record count at {config.expected_total_path}")
        # A page that moved or repeated is left out: its records would be read twice or out of place.
        problem = (
            total_change(config, answer.body, total)
            or repeated_id(config, page_records, step.number, first_page_of)
            or over_total(config, step.number, len(records) + len(page_records), total)
        )
        if problem:
            return incomplete(problem)
        records += page_records
        for value in ids_of(config, page_records):
            first_page_of.setdefault(value, step.number)
        seen_page = PageSeen(len(page_records), answer.body, answer.links, answer.url, len(records), total)
        step = next_step(config, step, seen_page)
    if step.problem:
        return incomplete(step.problem)
    if total is not None and len(records) < total:
        return incomplete(
            f"read {len(records)} records where {config.expected_total_path} said {total}: a page came back short"
        )
    return SourceRead(config.name, tuple(records), complete=True, pages=pages)


def total_change(config: HttpJsonSourceConfig, body: Any, first: int | None) -> str:
    """Why a page's total makes the read untrustworthy: it differs from page 1's ("" when equal or not stated)."""
    if config.expected_total_path is None or first is None:
        return ""
    stated = total_of(body, config.expected_total_path)
    if stated is None or stated == first:
        return ""
    path = config.expected_total_path
    return f"the total at {path} changed from {first} to {stated} while reading: records moved between pages"


def over_total(config: HttpJsonSourceConfig, number: int, read: int, total: int | None) -> str:
    """Why more records than the stated total is untrustworthy (records moved, or the total is wrong), or ""."""
    if total is None or read <= total:
        return ""
    return (
        f"page {number} brings the records read to {read}, more than the {total} at {config.expected_total_path}: "
        "records moved between pages"
    )


def repeated_id(
    config: HttpJsonSourceConfig, page_records: list[SourceRecord], number: int, first_page_of: Mapping[str, int]
) -> str:
    """Why a page is one read before, or "": every id on it came on earlier pages (a server ignoring the
    paging sends page 1 again and again, and the people beyond it are never read). One id seen before is the
    data's (a person with two contracts) or a record moved by an insert (read twice, none lost): the mapping
    rejects duplicates, and a total that changed is caught on its own."""
    ids = ids_of(config, page_records)
    if not ids or any(value not in first_page_of for value in ids):
        return ""
    return (
        f"page {number} repeats every {config.id_field} of earlier pages (first {shown(ids[0])}, of page "
        f"{first_page_of[ids[0]]}): the server ignored the paging"
    )


def ids_of(config: HttpJsonSourceConfig, records: list[SourceRecord]) -> list[str]:
    """Every value of `id_field` in the records, each value of a multi-valued one (as `index_by_field` keys them)."""
    values: list[str] = []
    for record in records:
        value = record.get(config.id_field)
        if value is not None:
            values += value if isinstance(value, tuple) else (value,)
    return values


def records_of(config: HttpJsonSourceConfig, body: Any, number: int) -> tuple[list[SourceRecord], str]:
    """The page's records, or a problem when the list is missing or holds something other than objects."""
    items = value_at(body, config.records_path)
    if not isinstance(items, list):
        return [], f"no list of records at {config.records_path or 'the top level'}"
    records: list[SourceRecord] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            return [], f"record {index} is not a JSON object"
        records.append(SourceRecord(config.name, flatten_json(item), f"page {number} #{index}"))
    return records, ""


def total_of(body: Any, path: str) -> int | None:
    value = value_at(body, path)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def first_request(config: HttpJsonSourceConfig) -> PageRequest:
    paging = config.paging
    params = tuple(config.params.items())
    match paging:
        case PagePaging():
            return PageRequest(1, config.url, _page_params(paging, params, paging.first_page))
        case OffsetPaging():
            return PageRequest(1, config.url, _offset_params(paging, params, 0))
        case CursorPaging() | NextLinkPaging():
            size = ((paging.size_param, str(paging.size)),) if paging.size else ()
            return PageRequest(1, config.url, params + size)
        case NoPaging():
            return PageRequest(1, config.url, params)


def next_step(config: HttpJsonSourceConfig, request: PageRequest, page: PageSeen) -> PageRequest | Stop:
    """The next page to ask for after `page`, or Stop (with a problem when the read cannot be trusted)."""
    paging = config.paging
    match paging:
        case PagePaging():
            return _next_page(config, paging, request, page)
        case OffsetPaging():
            return _next_offset(config, paging, request, page)
        case CursorPaging():
            cursor = value_at(page.body, paging.next_cursor_path)
            if cursor is MISSING or cursor is None or cursor == "":
                return Stop()
            params = tuple(config.params.items()) + (((paging.size_param, str(paging.size)),) if paging.size else ())
            return PageRequest(request.number + 1, config.url, (*params, (paging.cursor_param, _text(cursor))))
        case NextLinkPaging():
            return _next_link(config, paging, request, page)
        case NoPaging():
            return Stop()


def _next_page(
    config: HttpJsonSourceConfig, paging: PagePaging, request: PageRequest, page: PageSeen
) -> PageRequest | Stop:
    number, read, total = request.number, page.read, page.total
    if request.after_short is not None:
        if page.count == 0:
            return Stop()
        return Stop(
            f"page {number - 1} came back with {request.after_short} of {paging.size} records, "
            f"yet page {number} still has records: the records in between were lost"
        )
    if page.count == 0 or (total is not None and read >= total):
        return Stop()
    if page.count > paging.size:
        return Stop(
            f"page {number} has {page.count} records, more than paging.size {paging.size}: set it to the server's"
        )
    following = PageRequest(
        number + 1, config.url, _page_params(paging, tuple(config.params.items()), paging.first_page + number)
    )
    if page.count == paging.size:
        return following
    if total is not None:
        return Stop(
            f"page {number} came back short: {page.count} of {paging.size} records, "
            f"{read} of the {total} at {config.expected_total_path} read"
        )
    if not paging.confirm_end:
        return Stop()
    return PageRequest(following.number, following.url, following.params, after_short=page.count)


def _next_offset(
    config: HttpJsonSourceConfig, paging: OffsetPaging, request: PageRequest, page: PageSeen
) -> PageRequest | Stop:
    read, total = page.read, page.total
    if page.count == 0 or (total is not None and read >= total):
        return Stop()
    if page.count < paging.size and total is None and not paging.confirm_end:
        return Stop()
    # Advance by what came back, not by the limit: a page cut short is then asked for again from where it stopped.
    offset = request.offset + page.count
    params = _offset_params(paging, tuple(config.params.items()), offset)
    return PageRequest(request.number + 1, config.url, params, offset=offset)


def _next_link(
    config: HttpJsonSourceConfig, paging: NextLinkPaging, request: PageRequest, page: PageSeen
) -> PageRequest | Stop:
    if paging.next_link_path is None:
        link: Any = page.links.get("next")
    else:
        link = value_at(page.body, paging.next_link_path)
    if link is MISSING or link is None or link == "":
        return Stop()
    if not isinstance(link, str):
        return Stop(f"page {request.number}: the next link at {paging.next_link_path} is not a URL")
    absolute = urljoin(page.url, link)
    if not same_origin(absolute, config.url):
        return Stop(
            f"page {request.number}: the next link points to another server ({safe_url(absolute)}); not followed"
        )
    return PageRequest(request.number + 1, absolute, ())


def _page_params(paging: PagePaging, base: tuple[tuple[str, str], ...], page: int) -> tuple[tuple[str, str], ...]:
    return (*base, (paging.page_param, str(page)), (paging.size_param, str(paging.size)))


def _offset_params(paging: OffsetPaging, base: tuple[tuple[str, str], ...], offset: int) -> tuple[tuple[str, str], ...]:
    return (*base, (paging.offset_param, str(offset)), (paging.limit_param, str(paging.size)))


def value_at(body: Any, path: str) -> Any:
    """The value at a dotted path (`data.items`; "" is the body itself), or MISSING."""
    current = body
    for key in path.split(".") if path else ():
        if not isinstance(current, Mapping) or key not in current:
            return MISSING
        current = current[key]
    return current


def flatten_json(item: Mapping[str, Any], prefix: str = "") -> dict[str, FieldValue]:
    """Nested objects become dotted names (`name.given`), lists tuples of strings; nulls are left out."""
    fields: dict[str, FieldValue] = {}
    for key, value in item.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, Mapping):
            fields.update(flatten_json(value, f"{name}."))
        elif isinstance(value, list):
            fields[name] = tuple(_text(element) for element in value if element is not None)
        else:
            fields[name] = _text(value)
    return fields


def _text(value: Any) -> str:
    """A JSON scalar as the text a mapping compares with (true/false, numbers as JSON writes them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    # Numbers as JSON writes them; objects inside lists stay JSON, so nothing is silently dropped.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
