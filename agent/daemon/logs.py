"""Structured logs: one JSON object per line when stderr is not a terminal (for log shippers), a readable
line on a terminal. Every record passes through `redact` so no secret reaches the log."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOGGER_NAME = "idp_agent.daemon"
REDACTED = "(redacted)"
# key=value or "key": "value" where the key names a secret
_SECRET_KEY = r"(?:password|passwd|secret|token|api[_-]?key|authorization|client_secret|credentials?)"  # noqa: S105  # a pattern of key names
# A quoted value whole (a passphrase has spaces), one whose quote never closes (a cut message) to the line's
# end, else up to a separator.
_KEY_VALUE = re.compile(
    rf"(?i)(\b\w*{_SECRET_KEY}\w*\b\"?\s*[:=]\s*)"
    r"(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[\"'][^\n]*|[^\s\"',;&}]+)"
)
# user:password@ up to the last @ before the path: a password may hold a raw @ (Python's URL parsing allows it).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^/\s]+)@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# the fields every record may carry besides the message
CONTEXT_FIELDS = ("job", "run_id", "outcome", "duration_s", "changes", "event")
_SECRET_FIELD = re.compile(rf"(?i){_SECRET_KEY}")


def redact(text: str) -> str:
    """The text with secret-looking values replaced: key=value pairs, URL user:password@, bearer tokens."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields whose name names a secret are hidden; string values are redacted."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if _SECRET_FIELD.search(key):
            clean[key] = REDACTED
        elif isinstance(value, str):
            clean[key] = redact(value)
        else:
            clean[key] = value
    return clean


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in CONTEXT_FIELDS if getattr(record, name, None) is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
            **redact_fields(_context(record)),
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = redact(f"{type(error).__name__}: {error}")
        return json.dumps(entry, sort_keys=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{key}={value}" for key, value in redact_fields(_context(record)).items())
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname.lower():7} {redact(record.getMessage())}"
        if context:
            line += f"  [{context}]"
        if record.exc_info and record.exc_info[1] is not None:
            line += f"  error: {redact(str(record.exc_info[1]))}"
        return line


def setup_logging(stream: TextIO | None = None, *, json_lines: bool | None = None, level: int = logging.INFO) -> None:
    """Route the daemon's and APScheduler's logs to `stream` (stderr), JSON unless it is a terminal."""
    out = stream or sys.stderr
    as_json = not out.isatty() if json_lines is None else json_lines
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    for name in (LOGGER_NAME, "apscheduler"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level if name == LOGGER_NAME else logging.WARNING)
        logger.propagate = False


def daemon_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
