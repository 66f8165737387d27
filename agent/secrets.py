"""Secrets: read from environment variables or files, and a wrapper that never prints its value."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path

from agent.errors import ConfigError

HIDDEN = "(value hidden)"


class Secret:
    """A secret value whose str/repr never reveal it; call reveal() at the one place it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def fingerprint(self, salt: bytes) -> str:
        """A salted hash, so a change can be detected without keeping the secret."""
        return hmac.new(salt, self._value.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"Secret({HIDDEN})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", hashlib.sha256(self._value.encode()).hexdigest()))


def read_secret(env: Mapping[str, str], name: str) -> Secret | None:
    """NAME from the environment, or the contents of the file named by NAME_FILE (one trailing newline dropped)."""
    value = env.get(name)
    file_name = env.get(f"{name}_FILE")
    if value is not None and file_name:
        raise ConfigError(f"both {name} and {name}_FILE are set", hint="set only one of them")
    if value is not None:
        return Secret(value)
    if not file_name:
        return None
    path = Path(file_name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"{name}_FILE: cannot read {path}: {error.strerror}", hint="check the path and its permissions"
        ) from None
    return Secret(text.removesuffix("\n"))
