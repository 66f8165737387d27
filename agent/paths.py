"""Where idp-agent keeps state (pid files, generated passwords, the store) and caches (downloads, builds)."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """The state directory: IDP_AGENT_STATE_DIR, else $XDG_STATE_HOME/idp-agent, else ~/.local/state/idp-agent."""
    explicit = os.environ.get("IDP_AGENT_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "idp-agent"


def cache_dir() -> Path:
    """The cache directory: IDP_AGENT_CACHE_DIR, else $XDG_CACHE_HOME/idp-agent, else ~/.cache/idp-agent."""
    explicit = os.environ.get("IDP_AGENT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "idp-agent"
