"""Sanction notices through a real SMTP server on loopback: plain to localhost, STARTTLS with a verified
certificate and a login, refusals (untrusted CA, wrong password) that never show the password, and a
warning issued to a real Keycloak user arriving in their language."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.notify import NotifyError, Recipient, SanctionNotice, SmtpConfig, SmtpNotifier, build_notifier
from agent.sanctions.notices import MAX_NOTICE_ATTEMPTS
from agent.sanctions.service import enforce_sanctions, issue_sanction
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.stack.processes import free_port
from agent.store import ManualClock, open_store
from agent.sync.agent_config import load_agent_config
from tests.harness.certificates import TestPki, write_test_pki
from tests.harness.sanctions import START, context_for, make_member, prepare_realm
from tests.harness.smtp_server import LOOPBACK, smtp_server

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "policies" / "templates" / "sanctions"
PASSWORD = "s3cret-smtp-Pa55"
ALICE = Recipient(email="alice@example.org", username="alice", language="en")
WARNING = SanctionNotice("S-1", "spam", datetime(2026, 12, 6, 12, 0, tzinfo=UTC), "Three spam posts in a day.")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return write_test_pki(tmp_path_factory.mktemp("smtp-pki"), dns_names=["localhost"], ip_addresses=[LOOPBACK])


def smtp_config(port: int, **changes: object) -> SmtpConfig:
    values: dict[str, object] = {"host": LOOPBACK, "port": port, "from": "IAM <iam@example.org>", "starttls": False}
    values.update(changes)
    return SmtpConfig.model_validate(values)


def test_warning_mail_is_received_from_the_agent_config(tmp_path: Path) -> None:
    with smtp_server() as (port, mailbox):
        config_file = tmp_path / "idp-agent.yaml"
        config_file.write_text(
            f"smtp:\n  host: {LOOPBACK}\n  port: {port}\n  from: IAM <iam@example.org>\n  starttls: false\n"
            f"  templates: {TEMPLATES}\n"
        )
        notifier = build_notifier(load_agent_config(config_file, {}))
        assert notifier is not None
        notifier.notify(ALICE, WARNING, "warning")

    assert mailbox.recipients == [["alice@example.org"]]
    message = mailbox.messages[0]
    assert message["Subject"] == "Warning for your account alice"
    assert message["From"] == "IAM <iam@example.org>"
    body = message.get_content()
    assert "reason: spam" in body
    assert "until 2026-12-06 12:00 UTC" in body
    assert "Three spam posts in a day." in body
    assert "S-1" in body


def test_german_notice_over_starttls_with_login(pki: TestPki) -> None:
    with smtp_server(cert_file=pki.cert_file, key_file=pki.key_file, login=("agent", PASSWORD)) as (port, mailbox):
        config = smtp_config(
            port, starttls=True, ca_file=pki.ca_file, username="agent", password=Secret(PASSWORD), host="localhost"
        )
        SmtpNotifier(config, TEMPLATES).notify(
            Recipient("bernd@example.org", "bernd", "de"), SanctionNotice("S-2", "harassment"), "suspension"
        )

    assert mailbox.logins == ["agent"]
    message = mailbox.messages[0]
    assert message["Subject"] == "Ihr Konto bernd ist gesperrt"
    assert "bis auf Weiteres gesperrt (Grund: harassment)" in message.get_content()


# aiosmtpd warns because it does not count implicit TLS as TLS; the connection is TLS from the first byte.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_ssl_from_the_first_byte_with_login(pki: TestPki) -> None:
    with smtp_server(cert_file=pki.cert_file, key_file=pki.key_file, login=("agent", PASSWORD), implicit_tls=True) as (
        port,
        mailbox,
    ):
        config = smtp_config(
            port, ssl=True, ca_file=pki.ca_file, username="agent", password=Secret(PASSWORD), host="localhost"
        )
        SmtpNotifier(config, TEMPLATES).notify(ALICE, WARNING, "ban")
    assert mailbox.logins == ["agent"]
    assert mailbox.messages[0]["Subject"] == "Your account alice is closed"


def test_a_certificate_from_an_unknown_ca_is_refused(pki: TestPki) -> None:
    with smtp_server(cert_file=pki.cert_file, key_file=pki.key_file) as (port, mailbox):
        config = smtp_config(port, starttls=True, ca_file=pki.untrusted_ca_file, host="localhost")
        with pytest.raises(NotifyError, match="TLS with the SMTP server"):
            SmtpNotifier(config, TEMPLATES).notify(ALICE, WARNING, "warning")
    assert mailbox.messages == []


def test_starttls_is_not_skipped_when_the_server_lacks_it() -> None:
    with smtp_server() as (port, mailbox):
        config = smtp_config(port, starttls=True)
        with pytest.raises(NotifyError, match="cannot send mail"):
            SmtpNotifier(config, TEMPLATES).notify(ALICE, WARNING, "warning")
    assert mailbox.messages == []


def test_a_refused_login_names_neither_the_password_nor_sends(pki: TestPki, caplog: pytest.LogCaptureFixture) -> None:
    with smtp_server(cert_file=pki.cert_file, key_file=pki.key_file, login=("agent", "other")) as (port, mailbox):
        config = smtp_config(
            port, starttls=True, ca_file=pki.ca_file, username="agent", password=Secret(PASSWORD), host="localhost"
        )
        with pytest.raises(NotifyError, match="refused the login") as raised:
            SmtpNotifier(config, TEMPLATES).notify(ALICE, WARNING, "warning")
    assert PASSWORD not in str(raised.value) + raised.value.hint
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(config)
    assert mailbox.messages == []


def test_issuing_a_warning_mails_the_user_in_their_language(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, tmp_path: Path
) -> None:
    """End to end: the sanctions service issues a warning to a Keycloak user whose `locale` is German, and
    the SMTP server receives the German warning at the user's address; the journal records it was sent."""
    prepare_realm(keycloak_connection, realm)
    # Keycloak keeps a user's `locale` only when the realm has internationalization on.
    gateway.update_realm(realm, {"internationalizationEnabled": True, "supportedLocales": ["en", "de"]})
    user_id = make_member(gateway, realm, "dora")
    gateway.set_user_attributes(realm, user_id, {"locale": ["de"]})
    with open_store(f"sqlite:///{tmp_path / 'store.db'}", now=ManualClock(START)) as store:
        with smtp_server() as (port, mailbox):
            context = replace(
                context_for(gateway, store, realm, ManualClock(START)),
                notifier=SmtpNotifier(smtp_config(port), TEMPLATES),
            )
            sanction = issue_sanction(context, "dora", level="warning", reason_code="spam", note="Links in posts.")
        sent = [entry for entry in store.journal.entries() if entry.action == "sanction.notify"]
        actions = [entry.action for entry in store.journal.entries(subject="dora")]

    assert mailbox.recipients == [["dora@example.org"]]
    message = mailbox.messages[0]
    assert message["Subject"] == "Verwarnung für Ihr Konto dora"
    body = message.get_content()
    assert "(Grund: spam)" in body and "Links in posts." in body and sanction.id in body
    assert [entry.details.get("outcome") for entry in sent] == ["applied"]
    # Enforced at once, then the notice (which may fail without holding the sanction back).
    assert actions[0] == "sanction.issue" and actions[-1] == "sanction.notify" and len(actions) > 2, actions


class CutOff(BaseException):
    """The issuing process killed after the sanction was enforced, before its notice went out."""


class CutOffNotifier:
    def notify(self, recipient: Recipient, notice: SanctionNotice, template: str) -> None:
        raise CutOff


def test_a_notice_not_sent_at_issue_is_sent_by_the_next_enforce_passes_once(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, tmp_path: Path
) -> None:
    """A notice owed when a sanction is issued (its issue entry names it) is not lost when the mail server is
    down or the issuing command is cut off between enforcing and mailing: the enforce passes send it, once,
    and stop asking a server that keeps refusing after MAX_NOTICE_ATTEMPTS tries in all."""
    prepare_realm(keycloak_connection, realm)
    for name in ("erin", "finn", "gus"):
        make_member(gateway, realm, name)
    clock = ManualClock(START)
    with open_store(f"sqlite:///{tmp_path / 'store.db'}", now=clock) as store:
        base = context_for(gateway, store, realm, clock)
        down = replace(base, notifier=SmtpNotifier(smtp_config(free_port()), TEMPLATES))  # nothing listens
        issue_sanction(down, "erin", level="warning", reason_code="spam")
        with pytest.raises(CutOff):
            issue_sanction(replace(base, notifier=CutOffNotifier()), "finn", level="warning", reason_code="spam")
        issue_sanction(base, "gus", level="warning", reason_code="spam")  # no notifier: no notice owed, ever

        with smtp_server() as (port, mailbox):
            up = replace(base, notifier=SmtpNotifier(smtp_config(port), TEMPLATES))
            enforce_sanctions(up)
            enforce_sanctions(up)
        assert sorted(mailbox.recipients) == [["erin@example.org"], ["finn@example.org"]]

        refused = issue_sanction(down, "gus", level="warning", reason_code="other")
        for _ in range(MAX_NOTICE_ATTEMPTS + 2):
            enforce_sanctions(down)
        attempts = [
            entry.details["outcome"]
            for entry in store.journal.entries(subject="gus")
            if entry.action == "sanction.notify" and entry.details.get("sanction_id") == refused.id
        ]
        sent = [
            (entry.subject, entry.details["outcome"]) for entry in store.journal.entries()
            if entry.action == "sanction.notify" and entry.subject != "gus"
        ]  # fmt: skip
    assert attempts == ["failed"] * MAX_NOTICE_ATTEMPTS
    assert sorted(sent) == [("erin", "applied"), ("erin", "failed"), ("finn", "applied")]
