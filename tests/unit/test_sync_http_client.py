"""The HTTP client of the http-json and scim sources against servers on loopback: credentials never follow a
redirect to another server, and `timeout_seconds` bounds a whole answer, not each socket read."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.secrets import Secret
from agent.sync.sources import build_source, parse_source_config
from agent.sync.sources.config import BasicAuth, BearerAuth, HttpJsonSourceConfig
from agent.sync.sources.http_client import MAX_REDIRECTS, FetchFailed, JsonClient

API_KEY = "canary-api-key-7e2a"
TOKEN = "canary-token-90b1"
TIMEOUT_SECONDS = 0.5

# path -> (status, headers, body)
Answer = tuple[int, dict[str, str], bytes]
Route = Callable[[str], Answer]


class Server:
    """A loopback HTTP server that answers each GET with `route(path)` and remembers what it was sent."""

    def __init__(self, route: Route) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, route))
        self.port = self._httpd.server_address[1]
        # A short poll interval: shutdown() waits for it, at the end of every test.
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: Server, route: Route) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass  # keep the test output clean

        def do_GET(self) -> None:
            server.seen.append((self.path, dict(self.headers.items())))
            status, headers, body = route(self.path)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[Route], Server]]:
    servers: list[Server] = []

    def start(route: Route) -> Server:
        servers.append(Server(route))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _redirect(location: str) -> Answer:
    return 302, {"Location": location}, b""


def _options(url: str, **extra: Any) -> HttpJsonSourceConfig:
    config = parse_source_config(
        {"type": "http-json", "name": "hr-api", "url": url, "max_attempts": 1, "backoff_seconds": 0, **extra}
    )
    assert isinstance(config, HttpJsonSourceConfig)
    return config


ELSEWHERE = {
    "other-host": lambda hr, other: f"{other.url('localhost')}/people?api_key=x",
    "other-port": lambda hr, other: f"{other.url()}/people",
    "other-scheme": lambda hr, other: f"https://127.0.0.1:{hr.port}/people",
}


@pytest.mark.parametrize("elsewhere", list(ELSEWHERE))
def test_a_redirect_to_another_server_is_refused_and_no_credential_goes_there(
    serve: Callable[[Route], Server], elsewhere: str
) -> None:
    other = serve(lambda path: (200, {}, b"[]"))
    routes = {"/people": _redirect("/moved")}
    hr = serve(lambda path: routes.get(path, (404, {}, b"")))
    routes["/moved"] = _redirect(ELSEWHERE[elsewhere](hr, other))
    auth = {"type": "bearer", "token": Secret(TOKEN)}
    config = _options(f"{hr.url()}/people", auth=auth, headers={"X-Api-Key": Secret(API_KEY)})

    read = build_source(config).read()

    assert not read.complete
    assert "redirected to another server" in read.problem
    assert other.seen == []
    # The redirect within the same server was followed, with the credentials.
    assert [(path, headers["X-Api-Key"]) for path, headers in hr.seen] == [("/people", API_KEY), ("/moved", API_KEY)]
    for secret in (API_KEY, TOKEN, "api_key"):
        assert secret not in read.problem


def test_redirects_within_the_server_are_bounded(serve: Callable[[Route], Server]) -> None:
    hr = serve(lambda path: _redirect("/again"))

    with JsonClient(_options(f"{hr.url()}/people")) as client, pytest.raises(FetchFailed) as raised:
        client.get(f"{hr.url()}/people")

    assert str(raised.value) == f"GET {hr.url()}/people: more than {MAX_REDIRECTS} redirects"
    assert len(hr.seen) == MAX_REDIRECTS + 1


def _drip(listener: socket.socket, body: bytes, every_seconds: float, stop: threading.Event) -> None:
    """Answers one request with `body`, one byte at a time: each byte restarts the client's read timeout."""
    connection, _ = listener.accept()
    with connection:
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for byte in body:
            if stop.wait(every_seconds):
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return  # the client gave up, as it should


@pytest.fixture
def dripping() -> Iterator[str]:
    body = b"[" + b" " * 40 + b"]"  # 42 bytes, 0.05 s apart: about 2 s in all
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        thread = threading.Thread(target=_drip, args=(listener, body, 0.05, stop), daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/people"
        stop.set()
        thread.join(timeout=2)


def test_a_server_dripping_its_answer_is_cut_off_at_timeout_seconds(dripping: str) -> None:
    started = time.monotonic()

    options = _options(dripping, timeout_seconds=TIMEOUT_SECONDS)
    with JsonClient(options) as client, pytest.raises(FetchFailed) as raised:
        client.get(dripping)

    assert time.monotonic() - started < 2 * TIMEOUT_SECONDS
    assert str(raised.value) == f"GET {dripping}: no answer within {TIMEOUT_SECONDS:g} s (after 1 attempts)"


SNOWMAN = Secret("canary-\u2603")
UNSENDABLE: dict[str, dict[str, Any]] = {
    # The config refuses these values; options changed after validation reach the client anyway.
    "bearer-token": {"auth": BearerAuth.model_construct(type="bearer", token=SNOWMAN)},
    "basic-password": {"auth": BasicAuth.model_construct(type="basic", username="svc", password=SNOWMAN)},
    "header-value": {"headers": {"X-Api-Key": SNOWMAN}},
}


@pytest.mark.parametrize("unsendable", list(UNSENDABLE))
def test_a_value_headers_cannot_carry_fails_the_read_without_showing_it(
    serve: Callable[[Route], Server], unsendable: str
) -> None:
    hr = serve(lambda path: (200, {}, b"[]"))
    config = _options(f"{hr.url()}/people").model_copy(update=UNSENDABLE[unsendable])

    read = build_source(config).read()

    assert not read.complete
    assert read.problem.endswith(
        "a credential or header value cannot be sent: it has characters HTTP headers cannot carry"
    )
    assert "canary" not in read.problem and "\u2603" not in read.problem and "position" not in read.problem
    assert hr.seen == []


def test_a_retry_after_longer_than_waited_for_ends_the_read_as_incomplete_at_once(
    serve: Callable[[Route], Server],
) -> None:
    """Told to come back in an hour, the client neither waits an hour nor asks again sooner than told."""
    hr = serve(lambda path: (503, {"Retry-After": "3600"}, b""))
    slept: list[float] = []
    options = _options(f"{hr.url()}/people").model_copy(update={"max_attempts": 4})

    with pytest.raises(FetchFailed) as failed, JsonClient(options, sleep=slept.append) as client:
        client.get(f"{hr.url()}/people")

    assert "HTTP 503" in str(failed.value) and "Retry-After 3600 s, more than the 60 s waited for" in str(failed.value)
    assert slept == [] and len(hr.seen) == 1
