"""Pure and loopback-only parts of the daemon: clock jumps, the injected scheduler clock, alerts,
readiness probes and the health server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apscheduler.executors.base as executor_module
import apscheduler.schedulers.base as scheduler_module
import pytest
import requests

from agent.daemon.alerts import Alert, Alerter, alert_reason
from agent.daemon.clock import FileOffsetClock, detect_jump, system_clock, use_clock
from agent.daemon.config import AlertsSpec
from agent.daemon.health import Check, Endpoints, HealthServer, probe_source, readiness, source_endpoint
from agent.errors import ConfigError
from agent.secrets import Secret
from agent.sync.agent_config import AgentConfig
from agent.sync.sources.config import parse_source_config
from tests.harness.webhook import WebhookReceiver

AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_detect_jump() -> None:
    assert detect_jump(1000.0, 1000.4) is None, "drift within the threshold"
    assert detect_jump(1000.0, 1000.0 + 7200) == 7200
    assert detect_jump(1000.0, 1000.0 - 3600) == -3600


def test_file_offset_clock(tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    clock = FileOffsetClock(offset)
    assert abs((clock() - system_clock()).total_seconds()) < 5, "no file: system time"
    offset.write_text("86400")
    assert abs((clock() - system_clock() - timedelta(days=1)).total_seconds()) < 5
    offset.write_text("not a number")
    assert clock.offset() == 0.0


def test_use_clock_drives_the_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    # Restored after the test: the clock is process-wide in APScheduler.
    monkeypatch.setattr(scheduler_module, "datetime", scheduler_module.datetime)
    monkeypatch.setattr(executor_module, "datetime", executor_module.datetime)
    use_clock(lambda: AT)
    assert scheduler_module.datetime.now(UTC) == AT
    assert executor_module.datetime.now(UTC) == AT
    assert isinstance(scheduler_module.datetime.now(UTC), datetime)


def test_alert_reasons() -> None:
    assert alert_reason("failed") == "failure"
    assert alert_reason("staged") == "staged"
    assert alert_reason("drift") == "drift"
    assert alert_reason("succeeded") is None
    assert alert_reason("skipped_locked") is None


def test_webhook_alert_is_posted_as_json_without_secrets() -> None:
    with WebhookReceiver() as hook:
        alerter = Alerter(AlertsSpec(webhook=Secret(hook.url), on=("failure",)), AgentConfig())
        failing = Alert("failure", "sync:hr", "r1", "login failed: client_secret=canary-31337", AT)
        assert alerter.send(failing) == []
        assert alerter.send(Alert("drift", "drift", "r2", "1 change", AT)) == [], "drift alerts not asked for"
        (received,) = hook.received()
    assert received["reason"] == "failure" and received["job"] == "sync:hr" and received["run_id"] == "r1"
    assert "canary-31337" not in received["summary"]


def test_an_unreachable_webhook_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter(AlertsSpec(webhook=Secret("http://127.0.0.1:9/hook?token=canary-31337")), AgentConfig())
    assert alerter.send(Alert("failure", "drift", "r1", "x", AT)) == ["webhook"]
    assert "canary-31337" not in caplog.text


def test_mail_without_smtp_is_reported() -> None:
    alerter = Alerter(AlertsSpec(email=("oncall@example.org",)), AgentConfig())
    assert alerter.send(Alert("failure", "drift", "r1", "x", AT)) == ["email"]


@pytest.mark.parametrize(
    ("source", "endpoint"),
    [
        ({"type": "csv", "name": "hr", "path": "/data/hr.csv"}, Path("/data/hr.csv")),
        ({"type": "http-json", "name": "api", "url": "https://hr.example.org/people"}, ("hr.example.org", 443)),
        ({"type": "scim", "name": "scim", "base_url": "http://scim.example.org:8080/v2"}, ("scim.example.org", 8080)),
        (
            {
                "type": "ldap",
                "name": "dir",
                "url": "ldaps://ldap.example.org",
                "bind_dn": "cn=x",
                "bind_password": Secret("p"),
                "base_dn": "dc=x",
            },
            ("ldap.example.org", 636),
        ),
    ],
)
def test_source_endpoints(source: dict[str, Any], endpoint: object) -> None:
    assert source_endpoint(parse_source_config(source)) == endpoint


def test_readiness_reports_each_check(tmp_path: Path) -> None:
    (tmp_path / "here.csv").write_text("id\n")
    here = parse_source_config({"type": "csv", "name": "here", "path": "here.csv"})
    gone = parse_source_config({"type": "csv", "name": "gone", "path": "gone.csv"})
    config = AgentConfig(sources=(here, gone), base_dir=tmp_path)
    checks = readiness(config, keycloak=lambda: Check("keycloak", True, "26.7.3"))
    assert [(c.name, c.ok) for c in checks] == [("keycloak", True), ("source:here", True), ("source:gone", False)]
    assert probe_source(gone, tmp_path).detail.startswith("no file")


def test_health_server_endpoints() -> None:
    ready = [Check("keycloak", True), Check("source:hr", False, "hr.example.org:443 unreachable")]
    server = HealthServer("127.0.0.1", 0, Endpoints(lambda: "idp_agent_up 1\n", lambda: ready, lambda: True))
    server.start()
    try:
        base = "http://{}:{}".format(*server.address)
        assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        answer = requests.get(f"{base}/readyz", timeout=5)
        assert answer.status_code == 503 and answer.json()["status"] == "not ready"
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.text == "idp_agent_up 1\n" and metrics.headers["Content-Type"].startswith("text/plain")
        assert requests.get(f"{base}/other", timeout=5).status_code == 404
    finally:
        server.stop()


def test_a_taken_port_is_a_clear_error() -> None:
    first = HealthServer("127.0.0.1", 0, Endpoints(lambda: "", lambda: [], lambda: True))
    try:
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1"):
            HealthServer(*first.address, Endpoints(lambda: "", lambda: [], lambda: True))
    finally:
        first.stop()
