"""A small HR system on 127.0.0.1 for the HTTP sources: paged JSON people lists and SCIM 2.0 /Users.

It stands for an HR product (not Keycloak), so the tests can break it on purpose: a page answers 500 or
429, sleeps past the client's timeout, comes back cut short, is not JSON, or the total lies. Faults name
the page by its place in the list (records [(k-1)*size, k*size) are page k), so a retry of page k meets
the same fault until its `times` run out. Every request is logged, so tests can count retries.

    /api/page/people?page=P&per_page=S     page paging
    /api/offset/people?offset=O&limit=L    offset paging
    /api/cursor/people?cursor=C&limit=L    cursor paging, next cursor at paging.next
    /api/link/people?offset=O&limit=L      next link at links.next and in the Link header
    /api/plain/people                      everyone, as a top-level JSON list
    /api/people/{id}                       one person, 404 when unknown
    /scim/v2/Users?startIndex=&count=&filter=    and    /scim/v2/Users/{id}
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

FaultKind = Literal["status", "slow", "truncate", "bad-json", "no-records", "foreign-link", "same-cursor"]
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
DEFAULT_PAGE_SIZE = 10
POLL_SECONDS = 0.05  # how soon the server notices a shutdown
_EXTERNAL_ID_FILTER = re.compile(r'^externalId eq (".*")$')


@dataclass
class Fault:
    """Breaks page `page` (1-based) of every list endpoint, `times` times (None: every time)."""

    kind: FaultKind
    page: int
    times: int | None = None
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0
    drop: int = 1  # records left out of a truncated page

    def take(self, page: int) -> bool:
        if page != self.page or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass(frozen=True)
class Seen:
    path: str
    params: Mapping[str, str]
    status: int


def person(index: int) -> dict[str, Any]:
    """A generated employee as the HR API gives it."""
    return {
        "id": f"E{index:05d}",
        "userName": f"user{index:05d}",
        "email": f"user{index:05d}@example.org",
        "name": {"given": "Test", "family": f"Person{index}"},
        "department": ("Finance", "Sales", "IT")[index % 3],
        "title": "Clerk",
        "active": index % 10 != 0,
        "roles": ["staff", "finance"] if index % 3 == 0 else ["staff"],
        "manager": None,
    }


def scim_user(record: Mapping[str, Any]) -> dict[str, Any]:
    """The same employee as a SCIM 2.0 User with the enterprise extension."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "id": f"scim-{record['id']}",
        "externalId": record["id"],
        "userName": record["userName"],
        "name": {"givenName": record["name"]["given"], "familyName": record["name"]["family"]},
        "emails": [
            {"value": f"private.{record['email']}", "type": "home"},
            {"value": record["email"], "type": "work", "primary": True},
        ],
        "active": record["active"],
        "title": record["title"],
        "groups": [{"value": f"g-{role}", "display": role} for role in record["roles"]],
        ENTERPRISE: {
            "employeeNumber": record["id"].lstrip("E"),
            "department": record["department"],
            "manager": {"value": "scim-E00000", "displayName": "Boss"},
        },
        "meta": {"resourceType": "User"},
    }


@dataclass
class HrState:
    """What the server serves and how it misbehaves; tests change it between reads."""

    people: list[dict[str, Any]]
    page_size: int = DEFAULT_PAGE_SIZE  # when the client does not ask for one
    faults: list[Fault] = field(default_factory=list)
    extra_total: int = 0  # meta.total / totalResults claim this many more than exist
    report_total: bool = True
    link_in_body: bool = True
    token: str | None = None
    basic: tuple[str, str] | None = None
    lookup_status: int | None = None  # answer every lookup with this status instead
    lookup_null: bool = False  # answer every lookup 200 with a JSON null
    lookup_page_404: bool = False  # answer every lookup 404 with an HTML page (a gateway's, not the API's)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def fault(self, page: int) -> Fault | None:
        with self.lock:
            return next((fault for fault in self.faults if fault.take(page)), None)

    def requests_to(self, prefix: str) -> list[Seen]:
        with self.lock:
            return [seen for seen in self.seen if seen.path.startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    server: _HrHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output clean

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        delay = 0.0
        try:
            status, body, headers = self._route(state, parts.path, params)
        except _Slow as slow:
            delay, (status, body, headers) = slow.seconds, slow.answer
        with state.lock:
            state.seen.append(Seen(parts.path, params, status))
        if delay and state.stopping.wait(delay):
            return
        self._send(status, body, headers)

    def _route(self, state: HrState, path: str, params: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if not self._authorized(state):
            return _json(401, {"error": "unauthorized"})
        if path.startswith("/scim/v2/Users"):
            return _scim(state, path, params)
        if path.startswith("/api/people/"):
            return _lookup(state, unquote(path.removeprefix("/api/people/")))
        if path == "/api/plain/people":
            return _json(200, state.people)
        return _list(state, path, params, self._base_url())

    def _authorized(self, state: HrState) -> bool:
        given = self.headers.get("Authorization", "")
        if state.token is not None:
            return given == f"Bearer {state.token}"
        if state.basic is not None:
            expected = base64.b64encode(f"{state.basic[0]}:{state.basic[1]}".encode()).decode()
            return given == f"Basic {expected}"
        return True

    def _base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to tell it


class _Slow(Exception):  # a signal inside the handler, not an error
    def __init__(self, seconds: float, answer: tuple[int, bytes, dict[str, str]]) -> None:
        super().__init__()
        self.seconds = seconds
        self.answer = answer


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    return status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name, "")
    return int(value) if value.lstrip("-").isdigit() else default


def _window(path: str, params: Mapping[str, str], page_size: int) -> tuple[int, int]:
    """(first record index, page size) a list request asks for."""
    if path == "/api/page/people":
        size = _int(params, "per_page", page_size)
        return (_int(params, "page", 1) - 1) * size, size
    if path == "/api/cursor/people":
        size = _int(params, "limit", page_size)
        cursor = params.get("cursor", "")
        return (int(cursor.removeprefix("c")) if cursor else 0), size
    return _int(params, "offset", 0), _int(params, "limit", page_size)


def _faulty(
    state: HrState, page: int, records: list[dict[str, Any]], answer: Any
) -> tuple[int, bytes, dict[str, str]] | None:
    """The faulty answer for this page, or None to answer normally (a truncation edits `records` in place)."""
    fault = state.fault(page)
    if fault is None:
        return None
    match fault.kind:
        case "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return _json(fault.status, {"error": "injected"}, headers)
        case "slow":
            raise _Slow(fault.seconds, _json(200, answer()))
        case "truncate":
            del records[max(0, len(records) - fault.drop) :]
            return None
        case "bad-json":
            return 200, b'{"data": {"items": [', {"Content-Type": "application/json"}
        case "no-records":
            return _json(200, {"meta": {"total": len(state.people)}})
        case _:
            return None


def _list(state: HrState, path: str, params: Mapping[str, str], base_url: str) -> tuple[int, bytes, dict[str, str]]:
    start, size = _window(path, params, state.page_size)
    if size <= 0 or start < 0:
        return _json(400, {"error": "bad paging"})
    page = start // size + 1
    records = state.people[start : start + size]
    following = start + size
    headers: dict[str, str] = {}
    fault_kinds = {fault.kind for fault in state.faults if fault.page == page and fault.times != 0}

    def answer() -> dict[str, Any]:
        body: dict[str, Any] = {"data": {"items": records}}
        if state.report_total:
            body["meta"] = {"total": len(state.people) + state.extra_total}
        if following < len(state.people):
            if path == "/api/cursor/people":
                cursor = f"c{start}" if "same-cursor" in fault_kinds else f"c{following}"
                body["paging"] = {"next": cursor}
            if path == "/api/link/people":
                host = "http://127.0.0.2:9" if "foreign-link" in fault_kinds else ""
                link = f"{host}/api/link/people?offset={following}&limit={size}"
                if state.link_in_body:
                    body["links"] = {"next": link}
                else:
                    headers["Link"] = f'<{link}>; rel="next"'
        return body

    faulty = _faulty(state, page, records, answer)
    if faulty is not None:
        return faulty
    return _json(200, answer(), headers)


def _lookup(state: HrState, person_id: str) -> tuple[int, bytes, dict[str, str]]:
    if state.lookup_null:
        return _json(200, None)
    if state.lookup_status is not None:
        return _json(state.lookup_status, {"error": "injected"})
    found = next((record for record in state.people if record["id"] == person_id), None)
    if found is None:
        return _json(404, {"error": "not found"})
    return _json(200, {"data": found})


def _scim(state: HrState, path: str, params: Mapping[str, str]) -> tuple[int, bytes, dict[str, str]]:
    users = [scim_user(record) for record in state.people]
    if path != "/scim/v2/Users":
        if state.lookup_null:
            return _json(200, None)
        if state.lookup_page_404:
            return 404, b"<html><body>Not Found</body></html>", {"Content-Type": "text/html"}
        if state.lookup_status is not None:
            return _json(state.lookup_status, {"status": str(state.lookup_status)})
        wanted = unquote(path.removeprefix("/scim/v2/Users/"))
        found = next((user for user in users if user["id"] == wanted), None)
        if found is None:
            return _json(404, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "404"})
        return _json(200, found)
    query = params.get("filter")
    if query is not None:
        if state.lookup_status is not None:
            return _json(state.lookup_status, {"status": str(state.lookup_status)})
        matched = _EXTERNAL_ID_FILTER.match(query)
        if matched is None:
            return _json(400, {"status": "400", "scimType": "invalidFilter"})
        value = json.loads(matched.group(1))
        users = [user for user in users if user["externalId"] == value]
    size = _int(params, "count", state.page_size)
    start = max(1, _int(params, "startIndex", 1))
    records = users[start - 1 : start - 1 + size]
    page = (start - 1) // max(size, 1) + 1

    def answer() -> dict[str, Any]:
        return {
            "schemas": [LIST_RESPONSE],
            "totalResults": len(users) + state.extra_total,
            "startIndex": start,
            "itemsPerPage": len(records),
            "Resources": records,
        }

    faulty = _faulty(state, page, records, answer)
    if faulty is not None:
        return faulty
    return _json(200, answer())


class _HrHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: HrState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is part of the tests


class HrServer:
    """`with HrServer(people) as hr:` serves on a free loopback port until the block ends."""

    def __init__(self, people: list[dict[str, Any]], *, tls: ssl.SSLContext | None = None, **settings: Any) -> None:
        self.state = HrState(people, **settings)
        self._server = _HrHttpServer(self.state)
        self._scheme = "http"
        if tls is not None:  # HTTPS: the handshake happens on accept, a client that rejects it is just dropped
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name="hr-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> HrServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def people(count: int) -> list[dict[str, Any]]:
    return [person(index) for index in range(count)]


def running(count: int, **settings: Any) -> Iterator[HrServer]:
    """For a fixture: `yield from running(25)`."""
    with HrServer(people(count), **settings) as server:
        yield server
