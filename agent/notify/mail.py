"""Sending sanction notices by e-mail: the `Notifier` protocol the sanctions service calls, and its SMTP form.

Exceptions: `NotifyError` (an AgentError) when a notice cannot be rendered or sent; the SMTP password never
appears in it (smtplib's errors carry the server's reply, not what we sent).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.errors import AgentError, ConfigError
from agent.notify.config import SmtpConfig
from agent.notify.templates import Recipient, RenderedMessage, SanctionNotice, language_of, render_notice

if TYPE_CHECKING:
    from agent.keycloak.models import User
    from agent.sync.agent_config import AgentConfig


class NotifyError(AgentError):
    """A notice could not be rendered or sent."""


class Notifier(Protocol):
    """Tells a user about a sanction at `level` (the level's name, or its policy's template name).
    Raises NotifyError when the notice did not go out."""

    def notify(self, user: Recipient, sanction: SanctionNotice, level: str) -> None: ...


def recipient_for(user: User) -> Recipient | None:
    """The Recipient for a Keycloak user; None when the user has no e-mail address."""
    if not user.email:
        return None
    return Recipient(email=user.email, username=user.username, language=language_of(user.attributes))


def compose_message(sender: str, to: str, rendered: RenderedMessage, domain: str) -> EmailMessage:
    """A plain-text UTF-8 message; header values are single lines (EmailMessage refuses line breaks)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to an automated notice
    message.set_content(rendered.body)
    return message


def sender_domain(sender: str) -> str:
    """The domain of the From: address, for Message-IDs (a made-up one when the address has none)."""
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    return domain if at and domain else "idp-agent.invalid"


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificates and host names verified (the system's CAs, or only `ca_file` when given)."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


@dataclass(frozen=True)
class SmtpNotifier:
    """Sends each notice in its own SMTP session (notices are rare; no connection to keep alive)."""

    config: SmtpConfig
    templates_dir: Path

    def notify(self, user: Recipient, sanction: SanctionNotice, level: str) -> None:
        try:
            rendered = render_notice(self.templates_dir, user, sanction, level)
        except ConfigError as error:
            raise NotifyError(str(error), hint=error.hint) from None
        message = compose_message(
            self.config.from_address, user.email, rendered, sender_domain(self.config.from_address)
        )
        self.send(message)

    def send(self, message: EmailMessage) -> None:
        config = self.config
        where = f"{config.host}:{config.port}"
        try:
            with self._connect() as smtp:
                if config.starttls:
                    smtp.starttls(context=tls_context(config.ca_file))
                if config.username is not None and config.password is not None:
                    smtp.login(config.username, config.password.reveal())
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as error:
            raise NotifyError(
                f"the SMTP server {where} refused the login: {error.smtp_code}", hint="check smtp.username/password"
            ) from None
        except ssl.SSLError as error:
            raise NotifyError(
                f"TLS with the SMTP server {where} failed: {error.reason or error}",
                hint="check smtp.ca_file and that the certificate names the host",
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise NotifyError(f"cannot send mail through {where}: {type(error).__name__}: {error}") from None

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.ssl:
            return smtplib.SMTP_SSL(
                config.host, config.port, timeout=config.timeout_seconds, context=tls_context(config.ca_file)
            )
        return smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)


def build_notifier(config: AgentConfig) -> Notifier | None:
    """The SMTP notifier of the agent config; None when it has no `smtp:` section (notices are then skipped)."""
    smtp = config.smtp
    if smtp is None:
        return None
    folder = smtp.templates if smtp.templates.is_absolute() else config.base_dir / smtp.templates
    return SmtpNotifier(smtp, folder)
