"""Alerts on failed runs, staged removals and drift: a JSON POST to a webhook and/or a mail through the
agent's SMTP relay (agent/notify). A failing alert channel is logged, never fatal to the daemon."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from agent.daemon.config import AlertReason, AlertsSpec
from agent.daemon.logs import daemon_logger, redact
from agent.sync.agent_config import AgentConfig

WEBHOOK_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Alert:
    reason: AlertReason
    job: str
    run_id: str
    summary: str
    at: datetime

    def payload(self) -> dict[str, Any]:
        return {
            "source": "idp-agent",
            "reason": self.reason,
            "job": self.job,
            "run_id": self.run_id,
            "summary": redact(self.summary),
            "at": self.at.isoformat(),
        }

    @property
    def subject(self) -> str:
        return f"[idp-agent] {self.reason}: {self.job}"


def alert_reason(outcome: str) -> AlertReason | None:
    """The alert a run outcome raises, if any."""
    return {"failed": "failure", "staged": "staged", "drift": "drift"}.get(outcome)  # type: ignore[return-value]


class Alerter:
    def __init__(self, spec: AlertsSpec, config: AgentConfig) -> None:
        self.spec = spec
        self.config = config

    def send(self, alert: Alert) -> list[str]:
        """Deliver to every configured channel; returns the channels that failed (already logged)."""
        if alert.reason not in self.spec.on:
            return []
        failed = []
        if self.spec.webhook is not None and not self._post(alert):
            failed.append("webhook")
        if self.spec.email and not self._mail(alert):
            failed.append("email")
        return failed

    def _post(self, alert: Alert) -> bool:
        assert self.spec.webhook is not None
        try:
            response = requests.post(self.spec.webhook.reveal(), json=alert.payload(), timeout=WEBHOOK_TIMEOUT_SECONDS)
            response.raise_for_status()
        except requests.RequestException as error:
            # The URL may carry a token: only the error's class and the status go to the log.
            status = getattr(getattr(error, "response", None), "status_code", None)
            daemon_logger().warning(
                "alert webhook failed: %s%s", type(error).__name__, f" (HTTP {status})" if status else "",
                extra={"job": alert.job, "run_id": alert.run_id, "event": "alert_failed"},
            )  # fmt: skip
            return False
        return True

    def _mail(self, alert: Alert) -> bool:
        if self.config.smtp is None:
            daemon_logger().warning(
                "alert mail skipped: daemon.alerts.email needs an smtp: section", extra={"event": "alert_failed"}
            )
            return False
        from agent.notify.mail import NotifyError, SmtpNotifier, compose_message, sender_domain
        from agent.notify.templates import RenderedMessage

        notifier = SmtpNotifier(self.config.smtp, self.config.base_dir)
        sender = self.config.smtp.from_address
        body = json.dumps(alert.payload(), indent=2) + "\n"
        try:
            for address in self.spec.email:
                message = compose_message(sender, address, RenderedMessage(alert.subject, body), sender_domain(sender))
                notifier.send(message)
        except NotifyError as error:
            daemon_logger().warning(
                "alert mail failed: %s",
                error,
                extra={"job": alert.job, "run_id": alert.run_id, "event": "alert_failed"},
            )
            return False
        return True
