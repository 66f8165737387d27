"""The `smtp:` section of idp-agent.yaml: where sanction notices are sent from, and how securely."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, model_validator

from agent.config.values import FromEnv, NonEmpty, SecretValue, Spec

DEFAULT_TEMPLATES_DIR = Path("policies") / "templates" / "sanctions"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: the only places plain SMTP is allowed to carry a login."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SmtpConfig(Spec):
    """An SMTP relay. TLS with the certificate verified is the default (STARTTLS on 587); `ssl: true` is
    TLS from the first byte (465). Plain SMTP (`starttls: false`) only to a relay on this host."""

    host: FromEnv
    port: int = Field(default=587, ge=1, le=65535)
    from_address: NonEmpty = Field(alias="from", description="the From: address, e.g. 'IAM <iam@example.org>'")
    starttls: bool = True
    ssl: bool = False
    username: FromEnv | None = None
    password: SecretValue | None = None
    ca_file: Path | None = Field(default=None, description="a CA bundle to trust instead of the system's")
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    templates: Path = Field(default=DEFAULT_TEMPLATES_DIR, description="notice templates, relative to this file")

    @model_validator(mode="after")
    def _secure(self) -> SmtpConfig:
        if self.ssl and self.starttls:
            raise ValueError("choose one of ssl (TLS from the start) and starttls (upgrade), not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if not (self.ssl or self.starttls) and self.password is not None and not is_loopback(self.host):
            raise ValueError("a password is sent only over TLS: set starttls or ssl (plain SMTP only to localhost)")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.ssl or self.starttls
