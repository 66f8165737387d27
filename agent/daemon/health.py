"""`/healthz` (the process answers), `/readyz` (Keycloak and every source reachable), `/metrics`
(Prometheus text) on a small stdlib HTTP server in a thread, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.errors import ConfigError
from agent.sync.agent_config import AgentConfig
from agent.sync.sources.config import CsvSourceConfig, LdapSourceConfig, ScimSourceConfig, SourceConfig

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROBE_TIMEOUT_SECONDS = 3.0
DEFAULT_PORTS = {"http": 80, "https": 443, "ldap": 389, "ldaps": 636}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


def source_endpoint(source: SourceConfig) -> Path | tuple[str, int]:
    """What must be reachable for a source to be read: its file, or its server's host and port."""
    if isinstance(source, CsvSourceConfig):
        return source.path
    url = source.base_url if isinstance(source, ScimSourceConfig) else source.url
    parts = urlsplit(url)
    scheme = parts.scheme.lower() or ("ldap" if isinstance(source, LdapSourceConfig) else "https")
    return parts.hostname or "", parts.port or DEFAULT_PORTS.get(scheme, 443)


def probe_source(source: SourceConfig, base_dir: Path) -> Check:
    target = source_endpoint(source)
    if isinstance(target, Path):
        path = target if target.is_absolute() else base_dir / target
        return Check(f"source:{source.name}", path.is_file(), "" if path.is_file() else f"no file {path}")
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_SECONDS):
            return Check(f"source:{source.name}", True)
    except OSError as error:
        return Check(f"source:{source.name}", False, f"{host}:{port} unreachable: {error.strerror or error}")


def probe_keycloak() -> Check:
    from agent.errors import AgentError
    from agent.keycloak import KeycloakGateway
    from agent.settings import resolve_keycloak_connection

    try:
        gateway = KeycloakGateway.connect(resolve_keycloak_connection())
        try:
            version = gateway.server_version()
        finally:
            gateway.close()
    except AgentError as error:
        return Check("keycloak", False, str(error))
    return Check("keycloak", True, version)


def readiness(config: AgentConfig, keycloak: Callable[[], Check] = probe_keycloak) -> list[Check]:
    return [keycloak(), *(probe_source(source, config.base_dir) for source in config.sources)]


@dataclass
class Endpoints:
    metrics: Callable[[], str]
    ready: Callable[[], list[Check]]
    live: Callable[[], bool]


class _Handler(BaseHTTPRequestHandler):
    endpoints: Endpoints
    server_version = "idp-agent"

    def do_GET(self) -> None:  # the stdlib's name
        path = urlsplit(self.path).path
        if path == "/healthz":
            alive = self.endpoints.live()
            self._send(200 if alive else 503, "application/json", json.dumps({"status": "ok" if alive else "down"}))
        elif path == "/readyz":
            checks = self.endpoints.ready()
            body: dict[str, Any] = {
                "status": "ready" if all(c.ok for c in checks) else "not ready",
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
            }
            self._send(200 if all(c.ok for c in checks) else 503, "application/json", json.dumps(body))
        elif path == "/metrics":
            self._send(200, PROMETHEUS_CONTENT_TYPE, self.endpoints.metrics())
        else:
            self._send(404, "text/plain", "not found: try /healthz, /readyz or /metrics\n")

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        """Requests are not logged: scrapes every few seconds would drown the job logs."""


class HealthServer:
    def __init__(self, host: str, port: int, endpoints: Endpoints) -> None:
        handler = type("Handler", (_Handler,), {"endpoints": endpoints})
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        try:
            self._server = server_class((host, port), handler)
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} for health and metrics: {error.strerror or error}",
                hint="another process holds the port: pass --listen HOST:PORT or set daemon.listen",
            ) from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever: only when it runs
        self._server.server_close()
