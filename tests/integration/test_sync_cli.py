"""The sync's commands as an operator runs them, against a real Keycloak: `sync plan` (its exit codes and
`--json`), `sync run`, `sync explain`, `sync runs` and `sync show`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli import cli
from agent.settings import KeycloakConnection
from tests.harness.cli import REPO, cli_env, keycloak_env
from tests.harness.sync_setup import SyncSetup, hr_config, hr_row, make_sync_setup

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


@pytest.fixture(autouse=True)
def cli_uses_the_test_keycloak(keycloak_connection: KeycloakConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """CliRunner runs the CLI in this process: point it at the test's Keycloak, not a stack that may run."""
    for name, value in keycloak_env(keycloak_connection).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


def sync(setup: SyncSetup, *args: str) -> Result:
    config = str(setup.folder / "idp-agent.yaml")
    return CliRunner().invoke(cli, ["sync", *args, "--config", config], catch_exceptions=False)


def test_plan_run_explain_and_show_as_an_operator_uses_them(setup: SyncSetup) -> None:
    hr_config(
        setup,
        [
            hr_row(0),
            hr_row(1, Department="Finance"),
            hr_row(2, Status="Terminated"),  # a leaver HR still lists, who never had an account
            hr_row(3, StartDate="2099-01-05"),  # a hire beyond the lookahead (0 days)
            hr_row(4, EmployeeID=""),  # a bad record
        ],
    )

    planned = sync(setup, "plan")
    assert planned.exit_code == EXIT_PENDING, planned.output
    lines = planned.output.splitlines()
    assert "  + create person000 (5000)  [joiner]" in lines
    assert "  + create person001 (5001)  [joiner]" in lines
    assert [line for line in lines if line.startswith("  ! rejected")] == [
        "  ! rejected hr.csv:6: missing id (EmployeeID is empty)"
    ]
    assert "  . 1 inactive in the sources and never created: nothing to do: 5002" in lines
    [not_yet] = [line for line in lines if line.startswith("  . not yet 5003: starts 2099-01-05")]
    assert "becomes a user from" in not_yet
    assert lines[-1] == "Plan: 2 create, 1 rejected."

    as_json = sync(setup, "plan", "--json")
    assert as_json.exit_code == EXIT_PENDING
    document = json.loads(as_json.output)
    assert sorted(item["external_id"] for item in document["items"] if item["action"] == "create") == ["5000", "5001"]
    assert document["never_created"] == ["5002"]
    assert [(item["external_id"], item["kind"]) for item in document["left_out"]] == [("5003", "future-start")]

    ran = sync(setup, "run")
    assert ran.exit_code == EXIT_OK, ran.output
    assert ran.output.splitlines()[-1].endswith(": succeeded (create.applied=2, reject.skipped=1)")

    again = sync(setup, "plan")
    assert again.exit_code == EXIT_OK, again.output
    assert again.output.splitlines()[-1] == "Plan: 1 rejected."

    explained = sync(setup, "explain", "person001")
    assert explained.exit_code == EXIT_OK
    assert "  + group /finance: rule finance: department == Finance" in explained.output.splitlines()
    hire = sync(setup, "explain", "5003")
    assert hire.exit_code == EXIT_OK
    assert hire.output.startswith("5003: no account this run (future-start), record hr at hr.csv:5: starts 2099-01-05")
    assert sync(setup, "explain", "nobody").exit_code == EXIT_ERROR

    [run_line] = sync(setup, "runs").output.splitlines()
    run_id = run_line.split()[0]
    shown = sync(setup, "show", run_id)
    assert shown.exit_code == EXIT_OK
    assert shown.output.splitlines()[-1] == "counts: create.applied=2, reject.skipped=1"
    assert sync(setup, "show", "no-such-run").exit_code == EXIT_ERROR


def test_plan_exits_1_with_every_config_error_at_its_place(
    setup: SyncSetup, keycloak_connection: KeycloakConnection
) -> None:
    hr_config(setup, [hr_row(0)])
    mapper = setup.folder / "mapper.yaml"
    mapper.write_text(mapper.read_text().replace("priority: 10", "priority: ten").replace("rules:", "rulez:"))
    command = [sys.executable, "-m", "agent", "sync", "plan", "--config", str(setup.folder / "idp-agent.yaml")]
    done = subprocess.run(
        command, check=False, env=cli_env(keycloak_connection), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_ERROR, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(f"{mapper}:")]
    assert len(errors) == 2, done.stderr
    assert all(line.split(":")[1].isdigit() and line.split(":")[2].isdigit() for line in errors)


def test_show_says_where_a_staged_set_stands_and_approve_refuses_a_superseded_one(
    setup: SyncSetup, keycloak_connection: KeycloakConnection
) -> None:
    """Through the commands (each holding the sync's lock): a staged run's set awaits approval until a later
    run computes the removals again; from then `show` says it expired and `approve` refuses it (exit 1)."""
    hr_config(setup, [hr_row(i) for i in range(10)])
    assert sync(setup, "run").exit_code == EXIT_OK
    brakes = {"max_removal_ratio": 0.2, "max_shrink_ratio": 1.0}
    hr_config(setup, [hr_row(i) for i in range(3, 10)], **brakes)
    staged = sync(setup, "run")
    assert staged.exit_code == EXIT_PENDING, staged.output
    staged_id = sync(setup, "runs").output.splitlines()[0].split()[0]
    waiting = sync(setup, "show", staged_id).output.splitlines()
    assert waiting[2] == f"  staged set of 3 removal(s): awaiting approval (idp-agent sync approve {staged_id})"

    hr_config(setup, [hr_row(i) for i in range(10)], **brakes)  # the three are back in HR
    assert sync(setup, "run").exit_code == EXIT_OK
    later_id = sync(setup, "runs").output.splitlines()[0].split()[0]

    superseded = sync(setup, "show", staged_id).output.splitlines()
    assert (
        superseded[2]
        == f"  staged set of 3 removal(s): superseded by run {later_id}, which computed the removals again"
    )
    command = [
        sys.executable,
        "-m",
        "agent",
        "sync",
        "approve",
        staged_id,
        "--config",
        str(setup.folder / "idp-agent.yaml"),
    ]
    refused = subprocess.run(
        command, check=False, env=cli_env(keycloak_connection), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == EXIT_ERROR, refused.stdout + refused.stderr
    assert f"superseded by run {later_id}" in refused.stderr
    assert "Traceback" not in refused.stderr
