"""Debian packages a test needs, installed on first use (as root, like the stack installs slapd), so that
`make test` on a fresh machine sets itself up; CI installs them up front in .ci/run."""

from __future__ import annotations

import os
import shutil
import subprocess

INSTALL_TIMEOUT_SECONDS = 900


def apt_install(packages: tuple[str, ...]) -> str:
    """Install `packages` with apt-get; '' when done, else why not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    return ""
