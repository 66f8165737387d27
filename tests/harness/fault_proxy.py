"""A small HTTP fault proxy on loopback, between the agent and the real Keycloak.

It forwards each request unchanged (Host included, so tokens keep their issuer) unless a Fault matches:
latency, a reset before forwarding, a reset after Keycloak answered (the answer is lost after commit),
a truncated body, or an injected status such as 429 with Retry-After. It never fakes Keycloak's answers.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

FaultKind = Literal["latency", "reset_before", "reset_after", "truncate", "status"]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Fault:
    """Applies to `times` matching requests, after letting the first `skip` matching ones through; with `share`
    below 1, to each matching request only with that probability (drawn from the proxy's seeded generator; a
    request it spares is offered to the next fault). `applied` counts the requests it was applied to.

    `method` "WRITE" matches every method but GET and HEAD.
    """

    kind: FaultKind
    path_pattern: str = ".*"
    method: str | None = None
    times: int = 1
    skip: int = 0
    status: int = 503
    retry_after: str | None = None
    delay_seconds: float = 0.0
    share: float = 1.0
    applied: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times <= 0:
            return False
        if self.method == "WRITE":
            method_matches = method not in {"GET", "HEAD"}
        else:
            method_matches = self.method is None or self.method == method
        return method_matches and re.search(self.path_pattern, path) is not None


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    fault: FaultKind | None
    forwarded: bool


@dataclass
class ProxyState:
    upstream_host: str
    upstream_port: int
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.share < 1 and self.rng.random() >= fault.share:
                        continue
                    fault.times -= 1
                    fault.applied += 1
                    return fault
        return None

    def record(self, entry: Seen) -> None:
        with self.lock:
            self.seen.append(entry)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._relay()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _relay(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = state.take_fault(self.command, self.path)
        kind = fault.kind if fault else None
        if fault and fault.kind == "latency":
            time.sleep(fault.delay_seconds)
        if fault and fault.kind == "reset_before":
            state.record(Seen(self.command, self.path, kind, forwarded=False))
            self._reset()
            return
        if fault and fault.kind == "status":
            state.record(Seen(self.command, self.path, kind, forwarded=False))
            self._inject_status(fault)
            return
        status, reason, headers, payload = self._forward(body)
        state.record(Seen(self.command, self.path, kind, forwarded=True))
        if fault and fault.kind == "reset_after":
            self._reset()
            return
        self.send_response(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if fault and fault.kind == "truncate":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.wfile.write(payload)

    def _forward(self, body: bytes | None) -> tuple[int, str, list[tuple[str, str]], bytes]:
        state = self.server.state
        upstream = http.client.HTTPConnection(state.upstream_host, state.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
            return answer.status, answer.reason, kept, payload
        finally:
            upstream.close()

    def _inject_status(self, fault: Fault) -> None:
        payload = b'{"error":"injected by fault proxy"}'
        self.send_response(fault.status)
        if fault.retry_after is not None:
            self.send_header("Retry-After", fault.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Close with a TCP RST (linger 0), as a dropped connection looks to the client."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    state: ProxyState

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # resets make the base class print tracebacks; they are the point here


class FaultProxy:
    """Start with `with FaultProxy(upstream_url) as proxy:`; `proxy.url` replaces Keycloak's URL."""

    def __init__(self, upstream_url: str, *, seed: int = 0) -> None:
        parts = urlsplit(upstream_url)
        self.state = ProxyState(parts.hostname or "127.0.0.1", parts.port or 80, rng=random.Random(seed))
        self._server = _ProxyServer(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, fault: Fault) -> Fault:
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def seen(self, method: str | None = None, path_pattern: str = ".*") -> list[Seen]:
        with self.state.lock:
            return [
                entry
                for entry in self.state.seen
                if (method is None or entry.method == method) and re.search(path_pattern, entry.path)
            ]

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
