"""The GitOps examples run only commands the CLI has, with options it accepts, on paths that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from tests.harness.cli_commands import agent_commands, resolve

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "github-actions" / "idp-agent.yml"
PRE_COMMIT = ROOT / "examples" / "pre-commit-config.yaml"


def _workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def _steps() -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in _workflow()["jobs"].items() for step in job["steps"]]


def test_the_workflow_runs_on_pull_requests_main_and_nightly() -> None:
    workflow = _workflow()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) >= {"pull_request", "push", "schedule"}
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"], "nightly"
    jobs = workflow["jobs"]
    assert "pull_request" in jobs["plan"]["if"] and "refs/heads/main" in jobs["apply"]["if"]
    assert "schedule" in jobs["drift"]["if"]


def test_every_agent_command_in_the_examples_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the examples run at the root of a config repository like this one
    commands = [words for _, step in _steps() for words in agent_commands(step.get("run", ""))]
    hooks = yaml.safe_load(PRE_COMMIT.read_text())["repos"][0]["hooks"]
    commands += [shlex.split(hook["entry"])[1:] for hook in hooks]
    assert {words[0] for words in commands} == {"validate", "plan", "apply"}
    for words in commands:
        resolve(words)


def test_a_missing_command_or_option_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(AssertionError, match="no command 'deploy'"):
        resolve(["deploy"])
    with pytest.raises(click.UsageError):
        resolve(["plan", "realm-config", "--colour"])


def test_the_plan_is_attached_and_posted_and_drift_fails_the_job() -> None:
    plan_steps = [step for name, step in _steps() if name == "plan"]
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in plan_steps)
    assert any(step.get("uses", "").startswith("actions/github-script") for step in plan_steps)
    drift = next(step for name, step in _steps() if name == "drift" and "idp-agent plan" in step.get("run", ""))
    # `plan` exits 2 on drift; with pipefail the pipe through tee keeps that exit code.
    assert "pipefail" in drift.get("shell", "")
    apply_runs = [step.get("run", "") for name, step in _steps() if name == "apply"]
    applied_at = next(i for i, run in enumerate(apply_runs) if "idp-agent apply" in run)
    assert any("idp-agent plan" in run for run in apply_runs[applied_at + 1 :]), "a second plan after apply"


def test_secrets_come_from_the_ci_secret_store() -> None:
    for name, job in _workflow()["jobs"].items():
        for key, value in (job.get("env") or {}).items():
            if "SECRET" in key or "PASSWORD" in key:
                assert str(value).startswith("${{ secrets."), f"{name}.{key}"


def test_the_pre_commit_hook_validates_without_keycloak() -> None:
    (hook,) = yaml.safe_load(PRE_COMMIT.read_text())["repos"][0]["hooks"]
    assert shlex.split(hook["entry"])[:2] == ["idp-agent", "validate"]
    assert hook["pass_filenames"] is False and re.search(hook["files"], "realm-config/workforce/realm.yaml")
