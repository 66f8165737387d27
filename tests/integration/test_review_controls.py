"""`idp-agent report controls` against a real realm: configured, applied, read back live, then weakened by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from selenium.webdriver.common.by import By

from agent.keycloak import KeycloakGateway
from agent.realm.engine import apply_plan, plan_realm
from agent.realm.loader import load_realms
from agent.settings import KeycloakConnection
from tests.harness.browser import console_errors, headless_chromium
from tests.harness.cli import cli_env

REPO = Path(__file__).resolve().parents[2]

REALM_YAML = """\
realm: {realm}
registration:
  allowed: false
password_policy:
  min_length: 12
  digits: 1
  not_username: true
  history: 5
  expire_days: 90
lockout: strict
events:
  enabled: true
  types: [LOGIN, LOGIN_ERROR, LOGOUT]
  expiration: 30d
  admin_events: true
roles:
  - name: employee
  - name: admin
groups:
  - path: /it-admins
    realm_roles: [admin]
mfa:
  otp_for_roles: [admin]
user_profile:
  unmanaged_attributes: admin_edit   # keeps the HR feed's training_date (policies/review.yaml: training)
"""


def run_report(workdir: Path, realm: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "agent", "report", "controls", "--realm", realm, "--format", "md,json,html",
        "--out", str(workdir / "out"), "--realm-config", str(workdir / "realm-config"),
        "--policies", str(REPO / "policies"), "--config", str(workdir / "idp-agent.yaml"), *extra,
    ]  # fmt: skip
    return subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=300, check=False)


def statuses(workdir: Path) -> dict[str, str]:
    document = json.loads((workdir / "out" / "controls.json").read_text(encoding="utf-8"))
    return {row["control"]: row["status"] for row in document["controls"]}


def evidence(workdir: Path) -> list[str]:
    document = json.loads((workdir / "out" / "controls.json").read_text(encoding="utf-8"))
    return [row["evidence"] for row in document["controls"]]


def test_controls_pass_on_the_applied_realm_and_fail_once_weakened_by_hand(
    gateway: KeycloakGateway, realm: str, keycloak_connection: KeycloakConnection, tmp_path: Path
) -> None:
    (tmp_path / "realm-config").mkdir()
    (tmp_path / "realm-config" / f"{realm}.yaml").write_text(REALM_YAML.format(realm=realm), encoding="utf-8")
    (tmp_path / "idp-agent.yaml").write_text(f"store: sqlite:///{tmp_path / 'store.db'}\n", encoding="utf-8")
    (sourced,) = load_realms([tmp_path / "realm-config"], policies_dir=REPO / "policies", env=os.environ)
    result = apply_plan(gateway, plan_realm(gateway, sourced.spec))
    assert result.ok, result.failed

    env = cli_env(keycloak_connection)
    done = run_report(tmp_path, realm, env, "--check")
    assert done.returncode == 0, done.stderr
    found = statuses(tmp_path)
    for control in (
        "password minimum length >= 12",
        "digits >= 1",
        "password differs from username",
        "previous passwords refused >= 5",
        "password changed at least every 90 days",
        "brute-force lockout on",
        "locked after at most 5 failures",
        "OTP required for role admin",
        "self-registration allowed = false",
        "LOGIN events stored (last login known for dormant-account reviews)",
        "group /it-admins grants admin",
        "tamper-evident journal intact",
        "attributes outside the profile: admin_edit",
        "training date kept on each user (attribute training_date)",
    ):
        assert found[control] == "pass", (control, found)
    assert f"password minimum length >= 12: realm {realm}, passwordPolicy length(12): pass" in evidence(tmp_path)
    assert {path.name for path in (tmp_path / "out").iterdir()} == {"controls.md", "controls.json", "controls.html"}

    # Weakened in the admin console: the live value is what the report shows, and --check says so.
    gateway.update_realm(realm, {"passwordPolicy": "length(8)", "eventsEnabled": False})
    done = run_report(tmp_path, realm, env, "--check")
    assert done.returncode == 2, done.stderr
    found = statuses(tmp_path)
    assert found["password minimum length >= 12"] == "fail"
    assert found["previous passwords refused >= 5"] == "fail"
    assert found["LOGIN events stored (last login known for dormant-account reviews)"] == "fail"
    assert found["OTP required for role admin"] == "pass"
    assert f"password minimum length >= 12: realm {realm}, passwordPolicy length(8): fail" in evidence(tmp_path)
    markdown = (tmp_path / "out" / "controls.md").read_text(encoding="utf-8")
    assert "| **fail** |" in markdown
    with headless_chromium() as driver:
        driver.get((tmp_path / "out" / "controls.html").as_uri())
        assert console_errors(driver) == []
        failed = driver.find_elements(By.CSS_SELECTOR, "#controls-table td.status-fail")
        assert len(failed) == list(statuses(tmp_path).values()).count("fail") >= 3
