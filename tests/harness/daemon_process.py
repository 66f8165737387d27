"""`idp-agent daemon` as a real child process for tests: its config written beside a sync setup, its
/metrics and /healthz read over HTTP, its JSON log lines read from a file, bounded waits only."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from agent.daemon.metrics import parse_metrics
from agent.stack.processes import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0


def add_daemon_section(config_file: Path, daemon: dict[str, Any]) -> None:
    """Add (or replace) the daemon: section of an agent config written by the sync harness."""
    config = yaml.safe_load(config_file.read_text())
    config["daemon"] = daemon
    config_file.write_text(yaml.safe_dump(config))


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class DaemonProcess:
    def __init__(self, config_file: Path, env: dict[str, str], *, name: str = "daemon") -> None:
        self.config_file = config_file
        self.env = env
        self.port = free_port()
        self.log_file = config_file.parent / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> DaemonProcess:
        """Start the process without waiting for it (to start several together)."""
        command = [sys.executable, "-m", "agent", "daemon", "--config", str(self.config_file),
                   "--listen", f"127.0.0.1:{self.port}"]  # fmt: skip
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, cwd=REPO, stdout=log, stderr=log)
        return self

    def wait_healthy(self) -> DaemonProcess:
        wait_for("the daemon's /healthz", self._healthy, timeout=START_TIMEOUT_SECONDS)
        return self

    def start(self) -> DaemonProcess:
        return self.launch().wait_healthy()

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.log_text()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30)

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.get("/metrics").text)

    def runs(self, job: str, outcome: str) -> int:
        return int(self.metrics().get(f'idp_agent_job_runs_total{{job="{job}",outcome="{outcome}"}}', 0))

    def all_runs(self, job: str) -> dict[str, int]:
        prefix = f'idp_agent_job_runs_total{{job="{job}",outcome="'
        return {k[len(prefix) : -2]: int(v) for k, v in self.metrics().items() if k.startswith(prefix)}

    def ran(self, job: str) -> bool:
        """The job has finished at least one run, whatever its outcome."""
        return sum(self.all_runs(job).values()) >= 1

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace") if self.log_file.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append({"msg": line, "level": "raw"})
        return records

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def __enter__(self) -> DaemonProcess:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
