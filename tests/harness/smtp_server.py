"""A real SMTP server on loopback (aiosmtpd in a thread) that keeps what it receives, for the mail tests."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from agent.stack.processes import free_port

LOOPBACK = "127.0.0.1"


@dataclass
class Mailbox:
    """Every message the server accepted, parsed, with the envelope recipients and the logins it saw."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:  # aiosmtpd's hook name
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


def _authenticator(mailbox: Mailbox, username: str, password: str) -> Any:
    def check(server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            ok = auth_data.login.decode() == username and auth_data.password.decode() == password
            if ok:
                mailbox.logins.append(username)
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)

    return check


@contextmanager
def smtp_server(
    *,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    login: tuple[str, str] | None = None,
    implicit_tls: bool = False,
) -> Iterator[tuple[int, Mailbox]]:
    """Serve SMTP on 127.0.0.1:<free port>; with a certificate, STARTTLS is offered and required, or TLS from the
    first byte with `implicit_tls` (port 465 style). With `login`, AUTH is required (and, as aiosmtpd insists by
    default, only over TLS)."""
    mailbox = Mailbox()
    options: dict[str, Any] = {}
    if cert_file is not None and key_file is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        if implicit_tls:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; here the whole connection is TLS already.
            options.update(ssl_context=context, auth_require_tls=False)
        else:
            options.update(tls_context=context, require_starttls=True)
    if login is not None:
        options.update(authenticator=_authenticator(mailbox, *login), auth_required=True)
    port = free_port()
    controller = Controller(mailbox, hostname=LOOPBACK, port=port, **options)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()
