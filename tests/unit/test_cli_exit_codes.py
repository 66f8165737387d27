"""The console entry point's exit codes: 0 done, 2 changes pending, 1 any error, a usage error included (click's
own 2 would read as "changes pending" to a CI step that accepts 0 and 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *arguments], check=False, cwd=cwd, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "IDP_AGENT_STATE_DIR": str(cwd / "state")},
    )  # fmt: skip


@pytest.mark.parametrize(
    "arguments",
    [("plan", "no-such-folder"), ("sync", "plan", "--no-such-option"), ("report", "controls", "--check", "extra")],
)
def test_a_usage_error_exits_1_not_the_changes_pending_2(arguments: tuple[str, ...], tmp_path: Path) -> None:
    done = run(*arguments, cwd=tmp_path)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Error:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "arguments",
    [("store", "prune", "--dry-run"), ("audit", "verify"), ("audit", "show"), ("appeal", "list")],
)
def test_a_config_file_named_but_missing_is_an_error_not_the_default_store(
    arguments: tuple[str, ...], tmp_path: Path
) -> None:
    """A misspelt --config must not quietly prune, audit or appeal in the default store."""
    done = run(*arguments, "--config", "idp-agnet.yaml", cwd=tmp_path)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "idp-agnet.yaml:1:1: no agent config file" in done.stderr
    assert not (tmp_path / "state").exists()  # no store was made
    # Without --config and without a file, these work on the default store, as before.
    assert run(*arguments, cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("command", ["run", "plan", "approve"])
def test_a_sync_whose_mapper_cannot_be_read_touches_nothing(command: str, tmp_path: Path) -> None:
    """The config errors come first: no store is made, no lock taken, Keycloak not asked."""
    (tmp_path / "agent.yaml").write_text(
        f"store: sqlite:///{tmp_path / 'store.db'}\nsources:\n  - {{name: hr, type: csv, path: hr.csv}}\n"
        "syncs:\n  - {name: people, mapper: missing.yaml, sources: [hr]}\n",
        encoding="utf-8",
    )
    arguments = ("sync", command, *(["r-1"] if command == "approve" else []), "--config", "agent.yaml")
    done = run(*arguments, cwd=tmp_path)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "missing.yaml:1:1: cannot read this file" in done.stderr
    assert not (tmp_path / "store.db").exists() and not (tmp_path / "state").exists()
