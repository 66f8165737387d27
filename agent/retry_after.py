"""HTTP Retry-After, read the same way by every HTTP client of the agent (Keycloak's and HR systems')."""

from __future__ import annotations

import re
import time
from datetime import UTC
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds, from delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    # Only ASCII digits: str.isdigit() also takes "²", which float() refuses.
    if re.fullmatch(r"[0-9]+", value):
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        # "-0000" (RFC 5322: UTC, source zone unknown) parses naive; HTTP dates are always UTC.
        moment = moment.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)
