"""The realm commands as an operator runs them: exit codes, messages, and no call to Keycloak on bad config.

S21 (strict validation, zero writes) and S17 (no secret in any output) of RELIABILITY.md.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from agent.store.db import open_store
from agent.store.locks import store_lock
from tests.conftest import realm_name_for
from tests.harness.cli import cli_env
from tests.harness.fault_proxy import FaultProxy

__all__ = ["cli_env", "run_cli"]  # the daemon and sanctions tests run the CLI the same way

REPO = Path(__file__).resolve().parents[2]


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agent", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "realm-config").mkdir()
    (tmp_path / "policies").symlink_to(REPO / "policies")
    return tmp_path


@pytest.fixture
def cli_realm(gateway: KeycloakGateway) -> Iterator[str]:
    name = realm_name_for("cli")
    yield name
    if gateway.get_realm(name) is not None:
        gateway.delete_realm(name)


BAD_FILES = {
    "duplicate.yaml": "realm: dup\nroles:\n  - name: a\nroles:\n  - name: b\n",
    "unknown.yaml": "realm: unknown\nregistration:\n  alowed: true\n",
    "bomb.yaml": (
        "realm: bomb\n"
        'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    ),
    "dangling.yaml": (
        "realm: dangling\nroles:\n  - name: user\ngroups:\n  - path: /finance\n    realm_roles: [invoice-approver]\n"
    ),
    "preset.yaml": "realm: preset\npassword_policy: stricter\n",
    "secret.yaml": (
        "realm: secret\nsmtp:\n  host: h\n  from: a@b.c\n  user: u\n  password: ${env:IDP_TEST_UNDEFINED_VAR}\n"
    ),
}


def test_bad_config_reports_every_error_and_calls_nothing(
    keycloak_connection: KeycloakConnection, workdir: Path
) -> None:
    for name, text in BAD_FILES.items():
        (workdir / "realm-config" / name).write_text(text)
    (workdir / "realm-config" / "huge.yaml").write_text("realm: huge\n" + "#" * (6 * 1024 * 1024))

    with FaultProxy(keycloak_connection.url) as proxy:
        env = cli_env(keycloak_connection, url=proxy.url)
        validate = run_cli(["validate"], env, workdir)
        apply = run_cli(["apply"], env, workdir)
        plan = run_cli(["plan"], env, workdir)
        assert proxy.seen() == []  # not one request reached Keycloak

    assert validate.returncode == apply.returncode == plan.returncode == 1
    errors = validate.stderr
    expected = [
        "realm-config/dangling.yaml:6:19: group '/finance' grants unknown realm role 'invoice-approver'",
        "realm-config/duplicate.yaml:4:1: duplicate key 'roles'",
        "realm-config/unknown.yaml:3:3: unknown field 'alowed'",
        "realm-config/preset.yaml:2:18: unknown password_policy preset 'stricter'",
        "realm-config/secret.yaml:6:13:",
        "realm-config/bomb.yaml:",
        "realm-config/huge.yaml:1:1:",
    ]
    for line in expected:
        assert line in errors, f"missing {line!r} in:\n{errors}"
    assert "did you mean 'allowed'?" in errors
    assert "IDP_TEST_UNDEFINED_VAR" in errors
    assert "nothing was sent to Keycloak" in errors
    assert apply.stderr == errors


def test_plan_apply_exit_codes_and_no_secret_in_output(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, workdir: Path, cli_realm: str
) -> None:
    canary = "canary-Secret-4f9Q"
    (workdir / "realm-config" / f"{cli_realm}.yaml").write_text(
        f"realm: {cli_realm}\n"
        "display_name: CLI\n"
        "password_policy: strict\n"
        "smtp:\n  host: 127.0.0.1\n  port: 2525\n  from: noreply@example.org\n  user: mailer\n"
        "  password: ${env:IDP_TEST_SMTP_PASSWORD}\n"
        "roles:\n  - name: user\n"
    )
    env = cli_env(keycloak_connection, IDP_TEST_SMTP_PASSWORD=canary, IDP_AGENT_STATE_DIR=str(workdir / "state"))

    outputs = []
    first_plan = run_cli(["plan"], env, workdir)
    outputs.append(first_plan)
    assert first_plan.returncode == 2, first_plan.stderr
    assert "(value hidden)" in first_plan.stdout
    dry = run_cli(["apply", "--dry-run"], env, workdir)
    outputs.append(dry)
    assert dry.returncode == 0 and gateway.get_realm(cli_realm) is None
    applied = run_cli(["apply"], env, workdir)
    outputs.append(applied)
    assert applied.returncode == 0, applied.stderr
    second = run_cli(["plan", "--json"], env, workdir)
    outputs.append(second)
    assert second.returncode == 0, second.stdout + second.stderr
    reapply = run_cli(["apply"], env, workdir)
    outputs.append(reapply)
    assert reapply.returncode == 0 and "no changes" in reapply.stdout

    # A rejected write whose request carried the rotated secret: Keycloak refuses an unknown realm field.
    config = workdir / "realm-config" / f"{cli_realm}.yaml"
    config.write_text(config.read_text() + "keycloak:\n  bogusField: x\n")
    rejected = run_cli(["apply"], {**env, "IDP_TEST_SMTP_PASSWORD": canary + "-new"}, workdir)
    outputs.append(rejected)
    assert rejected.returncode == 1
    assert 'Unrecognized field "bogusField"' in rejected.stderr

    for output in outputs:
        assert canary not in output.stdout + output.stderr
    backups = list((workdir / "state" / "backups" / cli_realm).glob("*.json"))
    assert backups, "apply that changed something saved a backup"
    for backup in backups:
        assert canary not in backup.read_text()

    # N6: each apply that changed something is a run in the store beside the backups, every change journalled,
    # the refused one with Keycloak's reason; N7: no secret in the journal either.
    with open_store(f"sqlite:///{workdir / 'state' / 'idp-agent.db'}") as store:
        runs = [run for run in reversed(store.runs.list_runs("apply")) if run.realm == cli_realm]
        entries = [entry for entry in store.journal.entries() if entry.realm == cli_realm]
        verified = store.journal.verify()
    assert [run.status for run in runs] == ["succeeded", "failed"]
    assert {entry.run_id for entry in entries} == {run.id for run in runs}
    first = [entry for entry in entries if entry.run_id == runs[0].id]
    assert (first[0].action, first[0].subject) == ("realm.create", f"realm {cli_realm}")
    assert len(first) == sum(line.startswith("  created ") for line in applied.stdout.splitlines())
    [refused] = [entry for entry in entries if entry.run_id == runs[1].id]
    assert refused.action == "realm.update" and refused.reason.startswith("refused by Keycloak:")
    assert all(canary not in f"{entry.reason} {entry.details}" for entry in entries)
    assert all(entry.actor == env.get("USER", "operator") for entry in entries)
    assert verified.ok


def test_an_apply_of_a_realm_another_apply_holds_changes_nothing(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, workdir: Path, cli_realm: str
) -> None:
    """Two applies of one realm (CI and the daemon's drift apply, say) never interleave: the second is refused
    naming the holder, and writes nothing."""
    (workdir / "realm-config" / f"{cli_realm}.yaml").write_text(f"realm: {cli_realm}\nroles:\n  - name: user\n")
    env = cli_env(keycloak_connection, IDP_AGENT_STATE_DIR=str(workdir / "state"))
    store_url = f"sqlite:///{workdir / 'state' / 'idp-agent.db'}"

    with open_store(store_url) as store, store_lock(store, f"realm-{cli_realm}"):
        refused = run_cli(["apply", "--store", store_url], env, workdir)
    assert refused.returncode == 1
    assert f"locked by another run of 'realm-{cli_realm}'" in refused.stderr
    assert gateway.get_realm(cli_realm) is None

    applied = run_cli(["apply", "--store", store_url], env, workdir)
    assert applied.returncode == 0, applied.stderr
    assert "journalled as run " in applied.stdout and str(workdir / "state" / "idp-agent.db") in applied.stdout
