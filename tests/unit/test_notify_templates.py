"""Notice rendering and SMTP settings: templates per level and language, placeholders, fallbacks, safety."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pydantic
import pytest

from agent.errors import ConfigError
from agent.keycloak.models import User
from agent.notify import Recipient, SanctionNotice, SmtpConfig, build_notifier, language_of, recipient_for
from agent.notify.mail import compose_message, sender_domain
from agent.notify.templates import (
    RenderedMessage,
    format_until,
    notice_template_problems,
    parse_template,
    render,
    render_notice,
)
from agent.sanctions.wiring import build_sanction_context
from agent.secrets import Secret
from agent.store import ManualClock
from agent.sync.agent_config import AgentConfig, load_agent_config

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "policies" / "templates" / "sanctions"
NOTICE = SanctionNotice("S-9", "spam", datetime(2026, 12, 1, 8, 30, tzinfo=UTC), "see ticket 42")


@pytest.mark.parametrize(
    ("attributes", "language"),
    [
        ({}, "en"),
        ({"locale": ["de"]}, "de"),
        ({"locale": ["de-CH"]}, "de"),
        ({"locale": ["pt_BR"]}, "pt"),
        ({"locale": "fr"}, "fr"),
        ({"locale": []}, "en"),
        ({"locale": ["not a language"]}, "en"),
        ({"locale": [42]}, "en"),
    ],
)
def test_language_comes_from_the_locale_attribute(attributes: dict[str, object], language: str) -> None:
    assert language_of(attributes) == language


def test_recipient_for_a_user_without_email_is_none() -> None:
    assert recipient_for(User(id="1", username="bob", enabled=True)) is None
    user = User(id="1", username="bob", enabled=True, email="bob@example.org", attributes={"locale": ("de",)})
    assert recipient_for(user) == Recipient("bob@example.org", "bob", "de")


def test_every_shipped_template_renders_in_both_languages() -> None:
    for level in ("warning", "restriction", "suspension", "ban"):
        for language in ("en", "de"):
            message = render_notice(REPO_TEMPLATES, Recipient("a@example.org", "anna", language), NOTICE, level)
            assert "anna" in message.subject
            assert "spam" in message.body
            assert "S-9" in message.body
            assert "2026-12-01 08:30 UTC" in message.body
            assert "$" not in message.subject + message.body


def test_a_missing_language_falls_back_to_english(tmp_path: Path) -> None:
    (tmp_path / "warning.en.txt").write_text("Warned $username\n\nUntil $until.\n")
    message = render_notice(tmp_path, Recipient("a@example.org", "anna", "fr"), NOTICE, "warning")
    assert message == RenderedMessage("Warned anna", "Until 2026-12-01 08:30 UTC.\n")


def test_the_user_language_wins_over_english(tmp_path: Path) -> None:
    (tmp_path / "warning.en.txt").write_text("Warned\n\nbody\n")
    (tmp_path / "warning.fr.txt").write_text("Subject: Averti $username\n\ncorps\n")
    message = render_notice(tmp_path, Recipient("a@example.org", "anna", "fr"), NOTICE, "warning")
    assert message.subject == "Averti anna"


def test_a_level_without_any_template_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no notice template for level 'ban'") as raised:
        render_notice(tmp_path, Recipient("a@example.org", "anna"), NOTICE, "ban")
    assert "ban.en.txt" in raised.value.hint


def test_a_level_name_cannot_walk_out_of_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot name a template file"):
        render_notice(tmp_path, Recipient("a@example.org", "anna"), NOTICE, "../secrets")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("\n\nbody", "first line must be the subject"),
        ("Subject\nbody right away", "a blank line must follow"),
        ("Hi $user\n\nbody", "unknown placeholder"),
        ("Hi\n\ncosts 5$", "not a placeholder"),
    ],
)
def test_bad_templates_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_template(text, "t.txt")


def test_values_cannot_break_the_subject_into_headers() -> None:
    message = render("Note: $note\n\n$note\n", "t.txt", {"note": "a\r\nBcc: evil@example.org"})
    assert message.subject == "Note: a Bcc: evil@example.org"
    assert message.body == "a\r\nBcc: evil@example.org\n"


def test_until_is_shown_in_utc_or_open_ended_per_language() -> None:
    berlin = timezone(timedelta(hours=1))
    assert format_until(datetime(2026, 12, 1, 9, 30, tzinfo=berlin), "de") == "2026-12-01 08:30 UTC"
    assert format_until(None, "en") == "further notice"
    assert format_until(None, "de") == "auf Weiteres"
    assert format_until(None, "xx") == "further notice"


def test_composed_message_headers() -> None:
    message = compose_message("IAM <iam@example.org>", "a@example.org", RenderedMessage("Hi", "Body\n"), "example.org")
    assert message["To"] == "a@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert str(message["Message-ID"]).endswith("@example.org>")
    assert message.get_content() == "Body\n"
    assert sender_domain("iam") == "idp-agent.invalid"


BASE = {"host": "smtp.example.org", "from": "iam@example.org"}


def test_smtp_defaults_to_verified_starttls_on_587() -> None:
    config = SmtpConfig.model_validate(BASE)
    assert (config.port, config.starttls, config.ssl, config.ca_file) == (587, True, False, None)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"ssl": True}, "not both"),
        ({"username": "agent"}, "go together"),
        ({"starttls": False, "username": "a", "password": Secret("p")}, "only over TLS"),
        ({"password": "written-in-the-file", "username": "a"}, "must come from"),
        ({"port": 0}, "greater than or equal to 1"),
    ],
)
def test_unsafe_smtp_settings_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=problem):
        SmtpConfig.model_validate({**BASE, **changes})


def test_plain_smtp_with_a_login_is_allowed_to_localhost_only() -> None:
    for host in ("localhost", "127.0.0.1", "::1"):
        SmtpConfig.model_validate({**BASE, "host": host, "starttls": False, "username": "a", "password": Secret("p")})


def test_smtp_section_in_the_agent_config_reads_the_password_as_a_secret(tmp_path: Path) -> None:
    config_file = tmp_path / "idp-agent.yaml"
    config_file.write_text(
        "smtp:\n  host: smtp.example.org\n  from: iam@example.org\n  username: agent\n  password: ${env:SMTP_PW}\n"
    )
    config = load_agent_config(config_file, {"SMTP_PW": "hunter2-smtp"})
    assert config.smtp is not None
    assert config.smtp.password == Secret("hunter2-smtp")
    assert "hunter2-smtp" not in repr(config)
    notifier = build_notifier(config)
    assert notifier is not None
    assert getattr(notifier, "templates_dir") == tmp_path / "policies" / "templates" / "sanctions"  # noqa: B009


def test_no_smtp_section_means_no_notifier() -> None:
    assert build_notifier(AgentConfig()) is None


def test_the_shipped_policy_s_notices_all_have_templates() -> None:
    assert notice_template_problems(REPO_TEMPLATES, ["warning", "restriction", "suspension", "ban"]) == []


def test_notices_that_cannot_be_sent_are_found_before_anything_is_enforced(tmp_path: Path) -> None:
    """A misspelt notify:, a placeholder that does not exist and a file that is not UTF-8: all named at once."""
    (tmp_path / "ban.en.txt").write_text("Banned\n\nHello $usernme\n", encoding="utf-8")
    (tmp_path / "ban.de.txt").write_bytes(b"Gesperrt\n\nHallo \xfc\n")
    problems = notice_template_problems(tmp_path, ["ban", "warnign"])
    assert len(problems) == 3
    assert problems[0] == f"{tmp_path / 'ban.de.txt'}: not UTF-8 text (byte 16)"
    assert problems[1] == f"{tmp_path / 'ban.en.txt'}: unknown placeholder(s) usernme"
    assert problems[2] == f"no notice template {tmp_path / 'warnign.en.txt'} (subject line, blank line, body)"


def test_a_sanction_context_with_a_notice_that_cannot_be_sent_is_refused(tmp_path: Path) -> None:
    """Refused when the context is built: before `sanction issue` or `sanctions enforce` writes anything."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO_TEMPLATES, policies / "templates" / "sanctions")
    shutil.copy(REPO_TEMPLATES.parents[1] / "sanctions.yaml", policies / "sanctions.yaml")
    (tmp_path / "idp-agent.yaml").write_text("smtp:\n  host: smtp.example.org\n  from: iam@example.org\n")
    config = load_agent_config(tmp_path / "idp-agent.yaml", {})
    clock = ManualClock(datetime(2026, 12, 1, tzinfo=UTC))
    context = build_sanction_context(config, None, None, "acme", env={}, clock=clock)  # type: ignore[arg-type]
    assert context.notifier is not None
    (policies / "templates" / "sanctions" / "ban.en.txt").unlink()
    with pytest.raises(ConfigError, match=r"no notice template .*ban\.en\.txt"):
        build_sanction_context(config, None, None, "acme", env={}, clock=clock)  # type: ignore[arg-type]
