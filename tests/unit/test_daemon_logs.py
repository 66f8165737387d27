"""Structured logs: JSON lines off a terminal, run ids and job names as fields, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from agent.daemon.logs import REDACTED, JsonFormatter, TextFormatter, redact, redact_fields, setup_logging

CANARY = "canary-s3cr3t-31337"


@pytest.mark.parametrize(
    "text",
    [
        f"login failed: password={CANARY}",
        f'body {{"client_secret": "{CANARY}"}}',
        f"GET https://svc:{CANARY}@hr.example.org/api",
        f"header Authorization: Bearer {CANARY}",
        f"ldap bind_password: {CANARY}; retrying",
        f"access_token={CANARY}&x=1",
        'body {"client_secret": "a passphrase with spaces"}',  # a quoted value is hidden whole
        "connect postgresql://agent:pass@word@db:5432/idp failed",  # a raw @ in the password
        'db error: password="spaces and word@ unclosed',  # a message cut before the quote closes
    ],
)
def test_secrets_are_redacted(text: str) -> None:
    cleaned = redact(text)
    assert CANARY not in cleaned and "spaces" not in cleaned and "word@" not in cleaned
    assert REDACTED in cleaned


def test_ordinary_text_is_kept() -> None:
    text = "run 20261129T100000Z-ab12: succeeded (create=3, disable=1) for realm acme"
    assert redact(text) == text


def test_secret_named_fields_are_hidden() -> None:
    assert redact_fields({"password": "x", "job": "sync:hr", "note": f"token={CANARY}"}) == {
        "password": REDACTED, "job": "sync:hr", "note": f"token={REDACTED}",
    }  # fmt: skip


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("idp_agent.daemon", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_run_context() -> None:
    line = JsonFormatter().format(_record("run %s: %s", "failed", f"password={CANARY}", job="sync:hr", run_id="abc123"))
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["job"] == "sync:hr" and entry["run_id"] == "abc123"
    assert entry["msg"] == f"run failed: password={REDACTED}"
    assert CANARY not in line


def test_exceptions_are_summarised_and_redacted() -> None:
    try:
        raise RuntimeError(f"bad secret={CANARY}")
    except RuntimeError:
        record = _record("run crashed", job="drift")
        record.exc_info = sys.exc_info()
    for formatter in (JsonFormatter(), TextFormatter()):
        text = formatter.format(record)
        assert CANARY not in text
        assert "bad secret" in text


def test_text_format_on_a_terminal() -> None:
    line = TextFormatter().format(_record("scheduled", job="sync:hr", event="scheduled"))
    assert "warning" in line and "job=sync:hr" in line and line.count("\n") == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_off_a_terminal_text_on_one() -> None:
    logger = logging.getLogger("idp_agent.daemon")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        pipe = io.StringIO()
        setup_logging(pipe)
        logger.info("hello", extra={"job": "drift"})
        assert json.loads(pipe.getvalue())["job"] == "drift"
        terminal = _Terminal()
        setup_logging(terminal)
        logger.info("hello", extra={"job": "drift"})
        assert "job=drift" in terminal.getvalue() and not terminal.getvalue().startswith("{")
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
