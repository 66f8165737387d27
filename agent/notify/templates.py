"""Sanction notices as text: one template file per level and language (`<level>.<lang>.txt`, falling back to
English), its first line the subject, then a blank line and the body, with `string.Template` placeholders."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from agent.errors import ConfigError

DEFAULT_LANGUAGE = "en"
LOCALE_ATTRIBUTE = "locale"  # Keycloak's own user attribute for the preferred language
PLACEHOLDERS: frozenset[str] = frozenset({"username", "level", "reason_code", "until", "note", "sanction_id"})
# What `$until` says for a sanction without an end, per language.
OPEN_ENDED = {"en": "further notice", "de": "auf Weiteres"}
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Recipient:
    """Whom a notice goes to: plain values, so the sender needs nothing from Keycloak."""

    email: str
    username: str
    language: str = DEFAULT_LANGUAGE


@dataclass(frozen=True)
class SanctionNotice:
    """What the notice says about the sanction (the level comes separately: it picks the template)."""

    sanction_id: str
    reason_code: str
    until: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body: str


def language_of(attributes: Mapping[str, object]) -> str:
    """The user's language from Keycloak's `locale` attribute (`de`, `de-CH`, `pt_BR` -> `de`, `de`, `pt`),
    else English."""
    raw = attributes.get(LOCALE_ATTRIBUTE)
    value = raw[0] if isinstance(raw, list | tuple) and raw else raw
    if not isinstance(value, str):
        return DEFAULT_LANGUAGE
    primary = re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]
    return primary if _LANGUAGE.match(primary) else DEFAULT_LANGUAGE


def template_candidates(folder: Path, level: str, language: str) -> list[Path]:
    """Files to try, in order: the user's language, then English."""
    if not _NAME.match(level):
        raise ConfigError(f"level name '{level}' cannot name a template file", hint="use letters, digits, - and _")
    languages = [language] if language == DEFAULT_LANGUAGE else [language, DEFAULT_LANGUAGE]
    return [folder / f"{level}.{lang}.txt" for lang in languages if _LANGUAGE.match(lang)]


def parse_template(text: str, where: str) -> tuple[Template, Template]:
    """(subject, body) templates from a file's text; placeholders checked against PLACEHOLDERS."""
    subject_line, _, rest = text.partition("\n")
    subject = subject_line.removeprefix("Subject:").strip()
    if not subject:
        raise ConfigError(f"{where}:1:1: the first line must be the subject", hint="subject, blank line, body")
    if rest and not rest.startswith("\n") and not rest.startswith("\r\n"):
        raise ConfigError(f"{where}:2:1: a blank line must follow the subject", hint="subject, blank line, body")
    templates = (Template(subject), Template(rest.lstrip("\r\n")))
    for template in templates:
        if not template.is_valid():
            raise ConfigError(f"{where}: a '$' that is not a placeholder", hint="write $$ for a literal $")
        unknown = sorted(set(template.get_identifiers()) - PLACEHOLDERS)
        if unknown:
            known = ", ".join(f"${name}" for name in sorted(PLACEHOLDERS))
            raise ConfigError(f"{where}: unknown placeholder(s) {', '.join(unknown)}", hint=f"known: {known}")
    return templates


def format_until(until: datetime | None, language: str) -> str:
    if until is None:
        return OPEN_ENDED.get(language, OPEN_ENDED[DEFAULT_LANGUAGE])
    return until.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def placeholder_values(recipient: Recipient, notice: SanctionNotice, level: str, language: str) -> dict[str, str]:
    return {
        "username": recipient.username,
        "level": level,
        "reason_code": notice.reason_code,
        "until": format_until(notice.until, language),
        "note": notice.note,
        "sanction_id": notice.sanction_id,
    }


def render(text: str, where: str, values: Mapping[str, str]) -> RenderedMessage:
    """Fill one template; the subject stays one line whatever the values hold (no header injection)."""
    subject, body = parse_template(text, where)
    one_line = {name: " ".join(value.split()) for name, value in values.items()}
    return RenderedMessage(subject.substitute(one_line), body.substitute(values))


def read_template(path: Path) -> str:
    """A template file's text; a file that is not UTF-8 is a ConfigError at its place, not a crash."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})", hint="save the template as UTF-8") from None


def notice_template_problems(folder: Path, names: Iterable[str]) -> list[str]:
    """What would keep the notices `names` (a policy's `notify:` values) from being sent, found before anything
    is enforced: a name without its English template, a template of it that does not parse."""
    problems: list[str] = []
    for name in sorted(set(names)):
        if not _NAME.match(name):
            problems.append(f"notice '{name}' cannot name a template file (use letters, digits, - and _)")
            continue
        english = folder / f"{name}.{DEFAULT_LANGUAGE}.txt"
        if not english.is_file():
            problems.append(f"no notice template {english} (subject line, blank line, body)")
        for path in sorted(folder.glob(f"{name}.*.txt")):
            try:
                parse_template(read_template(path), str(path))
            except ConfigError as error:
                problems.append(str(error))
    return problems


def render_notice(folder: Path, recipient: Recipient, notice: SanctionNotice, level: str) -> RenderedMessage:
    """The notice for `level` in the recipient's language (else English), from the template files in `folder`."""
    for path in template_candidates(folder, level, recipient.language):
        if path.is_file():
            language = path.name.split(".")[-2]
            values = placeholder_values(recipient, notice, level, language)
            return render(read_template(path), str(path), values)
    raise ConfigError(
        f"no notice template for level '{level}' in {folder}",
        hint=f"add {folder / f'{level}.{DEFAULT_LANGUAGE}.txt'} (subject line, blank line, body)",
    )
