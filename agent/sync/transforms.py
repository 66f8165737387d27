"""The value transforms a mapper applies to source fields: string transforms by name, templates, and dates
read in the worker's time zone. Pure functions; the mapper file names them (see agent/sync/mapper_spec.py).
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Literal, get_args

TransformName = Literal["strip", "lower", "upper", "title", "ascii", "collapse_spaces", "remove_spaces", "first_rdn"]

# Letters NFKD does not decompose into a base letter plus marks, spelled the way registries usually do.
_ASCII_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "\u0131": "i",  # dotless i
    }
)
# strptime directives that carry a time of day: a format without any of them writes a date only.
_TIME_DIRECTIVES = frozenset("HIMSfpXcTRz")
ISO = "iso"
DATE_CACHE_SIZE = 16_384


def to_ascii(text: str) -> str:
    """'José Núñez' -> 'Jose Nunez': accents dropped (NFKD, combining marks removed), other letters
    spelled out (ß -> ss, ø -> o), and whatever is still not ASCII dropped."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_LETTERS))
    kept = "".join(char for char in decomposed if not unicodedata.combining(char))
    return kept.encode("ascii", "ignore").decode("ascii")


def first_rdn(text: str) -> str:
    """'cn=admins,ou=groups,dc=example,dc=org' -> 'admins'; a value that is not a DN is returned as is."""
    if "=" not in text:
        return text
    value = text.split("=", 1)[1]
    out: list[str] = []
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            pair = value[index + 1 : index + 3]
            if len(pair) == 2 and all(c in string.hexdigits for c in pair):
                out.append(chr(int(pair, 16)))  # RFC 4514 hex escape (bytes above 0x7f stay as-is)
                index += 3
            else:
                out.append(value[index + 1])
                index += 2
            continue
        if char in ",+":
            break
        out.append(char)
        index += 1
    return "".join(out).strip()


TRANSFORMS: Mapping[TransformName, Callable[[str], str]] = MappingProxyType(
    {
        "strip": str.strip,
        "lower": str.lower,
        "upper": str.upper,
        "title": str.title,
        "ascii": to_ascii,
        "collapse_spaces": lambda text: " ".join(text.split()),
        "remove_spaces": lambda text: "".join(text.split()),
        "first_rdn": first_rdn,
    }
)
assert set(TRANSFORMS) == set(get_args(TransformName))


def apply_transforms(text: str, names: tuple[TransformName, ...]) -> str:
    """Each named transform in order."""
    for name in names:
        text = TRANSFORMS[name](text)
    return text


def template_fields(template: str) -> tuple[str, ...]:
    """The field names a template such as '{first_name}.{last_name}' uses, in order.

    Raises ValueError for what a template may not hold: unbalanced braces, empty `{}`, attribute or index
    access (`{a.b}`, `{a[0]}`), conversions or format specs.
    """
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"not a valid template ({error}); write {{field}}, and {{{{ for a literal brace") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"'{{{name}}}' is not a field name; write {{field}} with a canonical field name")
        if spec or conversion:
            raise ValueError(f"'{{{name}}}' has a format spec or conversion; write plain {{field}}")
        names.append(name)
    return tuple(names)


def render_template(template: str, values: Mapping[str, str]) -> str | None:
    """The template with every `{field}` replaced; None when a field it uses has no value."""
    parts: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if not value:
            return None
        parts.append(value)
    return "".join(parts)


@dataclass(frozen=True)
class WrittenDate:
    """A date or date-time as a source wrote it: naive unless the text carried a UTC offset."""

    value: datetime
    date_only: bool

    def instant(self, zone: tzinfo, *, end_of_day: bool = False) -> datetime:
        """The aware instant, reading a naive value in `zone`.

        With `end_of_day`, a date-only value means the end of that day: the next day's midnight in `zone`
        (2026-03-31 in America/Los_Angeles -> 2026-04-01T00:00-07:00, i.e. 07:00Z).
        """
        if self.value.tzinfo is not None:
            return self.value
        if self.date_only and end_of_day:
            return datetime.combine(self.value.date() + timedelta(days=1), time(), tzinfo=zone)
        return self.value.replace(tzinfo=zone)

    def text(self, zone: tzinfo, *, end_of_day: bool = False) -> str:
        """How the value is shown in attributes: a date as YYYY-MM-DD, a date-time as ISO 8601 with offset."""
        if self.date_only:
            return self.value.date().isoformat()
        return self.instant(zone, end_of_day=end_of_day).isoformat()


def is_date_only_format(fmt: str) -> bool:
    """Whether a strptime format writes a date without a time of day."""
    directives = set(re.findall(r"%([A-Za-z])", fmt.replace("%%", "")))
    return not directives & _TIME_DIRECTIVES


def check_date_format(fmt: str) -> None:
    """Raise ValueError unless `fmt` is 'iso' or a strptime format that reads back what it writes."""
    if fmt == ISO:
        return
    if "%" not in fmt.replace("%%", ""):
        raise ValueError(f"date format '{fmt}' has no % directive; write e.g. '%Y-%m-%d' or 'iso'")
    literal = re.sub(r"%.", "", fmt)
    if literal.rstrip().endswith("Z") or "UTC" in literal or "GMT" in literal:
        raise ValueError(
            f"date format '{fmt}' writes the zone as plain text, so times would be read in the worker's zone; "
            "write %z (it reads Z and +02:00) or use iso"
        )
    sample = datetime(2001, 12, 24, 13, 14, 15)  # every field distinct, so a swapped directive shows
    if "%z" in fmt:
        sample = sample.replace(tzinfo=UTC)  # %z writes nothing for a time without a zone
    try:
        written = sample.strftime(fmt)
        read = datetime.strptime(written, fmt)
    except ValueError as error:
        raise ValueError(f"date format '{fmt}' cannot be read back: {error}") from None
    date_only = is_date_only_format(fmt)
    if not _reads_back(sample, read, date_only=date_only):
        meant, got = (sample.date(), read.date()) if date_only else (sample, read)
        fix = "write the year, month and day" if read.date() != sample.date() else "write the hour as %H, or %I with %p"
        raise ValueError(
            f"date format '{fmt}' loses information: it writes {meant} as '{written}', read back as {got}; {fix}"
        )


def _reads_back(sample: datetime, read: datetime, *, date_only: bool) -> bool:
    """Whether `read` is `sample` as far as the format writes it: the date, and the time of day to the hour,
    minute or second (a format without seconds reads 13:14:15 as 13:14, which loses nothing it wrote)."""
    if read.date() != sample.date():
        return False
    if date_only:
        return True
    moment = sample.time()
    return read.time() in {time(moment.hour), time(moment.hour, moment.minute), moment}


@functools.lru_cache(maxsize=DATE_CACHE_SIZE)
def parse_date(text: str, formats: tuple[str, ...]) -> WrittenDate | None:
    """The first format that reads the whole of `text`; None when none does. Cached: a feed repeats the
    same few thousand dates (start dates, training days), and strptime is slow."""
    for fmt in formats:
        parsed = _parse_one(text.strip(), fmt)
        if parsed is not None:
            return parsed
    return None


def _parse_one(text: str, fmt: str) -> WrittenDate | None:
    if fmt == ISO:
        return _parse_iso(text)
    try:
        return WrittenDate(datetime.strptime(text, fmt), is_date_only_format(fmt))
    except ValueError:
        return None


def _parse_iso(text: str) -> WrittenDate | None:
    try:
        return WrittenDate(datetime.combine(date.fromisoformat(text), time()), date_only=True)
    except ValueError:
        pass
    try:
        return WrittenDate(datetime.fromisoformat(text.replace("Z", "+00:00")), date_only=False)
    except ValueError:
        return None


def format_duration(seconds: int) -> str:
    """365 days in seconds -> '365d': the largest unit that divides evenly, as written in mapper files."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
