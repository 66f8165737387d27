"""Telling users about sanctions: SMTP settings, per-level and per-language templates, the Notifier."""

from agent.notify.config import SmtpConfig
from agent.notify.mail import Notifier, NotifyError, SmtpNotifier, build_notifier, recipient_for
from agent.notify.templates import Recipient, RenderedMessage, SanctionNotice, language_of, render_notice

__all__ = [
    "Notifier",
    "NotifyError",
    "Recipient",
    "RenderedMessage",
    "SanctionNotice",
    "SmtpConfig",
    "SmtpNotifier",
    "build_notifier",
    "language_of",
    "recipient_for",
    "render_notice",
]
