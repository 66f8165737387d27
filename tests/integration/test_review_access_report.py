"""`idp-agent report access` on a seeded realm, and its HTML opened in headless Chromium: it loads without console
errors, shows the summary first, and its tables filter offline. A screenshot is kept as a test artifact."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

from selenium.webdriver.common.by import By

from agent.keycloak import KeycloakGateway, UserDraft
from agent.settings import KeycloakConnection
from tests.harness.browser import console_errors, headless_chromium
from tests.harness.cli import cli_env

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".state" / "artifacts"


def seed(gateway: KeycloakGateway, realm: str) -> None:
    """alice: admin through /it-admins; bob: admin mapped directly; '-risky': a name a spreadsheet would evaluate."""
    admin_id = gateway.create_realm_role(realm, "admin")
    admin = gateway.get_realm_role(realm, "admin")
    assert admin is not None and admin.id == admin_id
    group_id = gateway.create_group(realm, "it-admins")
    gateway.change_group_realm_roles(realm, group_id, [admin], [])
    alice = gateway.create_user(realm, UserDraft("alice", email="alice@example.org", first_name="A", last_name="L"))
    gateway.add_user_to_group(realm, alice, group_id)
    bob = gateway.create_user(realm, UserDraft("bob", email="bob@example.org", first_name="B", last_name="O"))
    gateway.add_realm_roles_to_user(realm, bob, [admin])
    gateway.create_user(realm, UserDraft("-risky", email="risky@example.org", first_name="R", last_name="I"))


def run_report(tmp_path: Path, realm: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "idp-agent.yaml").write_text(f"store: sqlite:///{tmp_path / 'store.db'}\n", encoding="utf-8")
    command = [
        sys.executable, "-m", "agent", "report", "access", "--realm", realm, "--format", "html,csv,json,md",
        "--out", str(tmp_path / "out"), "--policies", str(REPO / "policies"),
        "--config", str(tmp_path / "idp-agent.yaml"),
    ]  # fmt: skip
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)


def test_access_report_files_and_the_html_in_headless_chromium(
    gateway: KeycloakGateway, realm: str, keycloak_connection: KeycloakConnection, tmp_path: Path
) -> None:
    seed(gateway, realm)
    done = run_report(tmp_path, realm, cli_env(keycloak_connection))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    names = {"access.html", "access.json", "access.md", "access-users.csv", "access-findings.csv", "access-grants.csv"}
    assert {path.name for path in out.iterdir()} == names

    document = json.loads((out / "access.json").read_text(encoding="utf-8"))
    assert document["summary"]["users"] == gateway.count_users(realm) == 3
    assert document["summary"]["privileged"] == 2
    assert document["summary"]["privileged_with_mfa"] == 0
    subjects = {(finding["rule"], finding["subject"]) for finding in document["findings"]}
    assert {("privileged-without-mfa", "alice"), ("privileged-without-mfa", "bob")} <= subjects
    routes = {(row["Username"], row["Entitlement"]): row["How"] for row in document["grants"]}
    assert routes[("alice", "admin")] == "group"
    assert routes[("bob", "admin")] == "direct"

    users_csv = list(csv.reader(io.StringIO((out / "access-users.csv").read_text(encoding="utf-8"))))
    assert "'-risky" in [row[0] for row in users_csv[1:]]

    with headless_chromium() as driver:
        driver.get((out / "access.html").as_uri())
        assert console_errors(driver) == []
        summary = driver.find_element(By.ID, "summary")
        assert summary.is_displayed()
        cards = driver.find_element(By.ID, "summary-cards").text
        assert "3\nusers" in cards
        assert "0 of 2\nprivileged with MFA" in cards
        for chart in ("chart-users-by-level", "chart-findings-by-severity", "chart-mfa-coverage", "chart-logins"):
            assert driver.find_element(By.CSS_SELECTOR, f"#{chart} svg").is_displayed()
        assert driver.find_element(By.TAG_NAME, "h2").text == "Summary"  # the summary comes first

        box = driver.find_element(By.CSS_SELECTOR, 'input[data-filter="users-table"]')
        box.send_keys("alice")
        visible = [row for row in driver.find_elements(By.CSS_SELECTOR, "#users-table tbody tr") if row.is_displayed()]
        assert [row.find_element(By.TAG_NAME, "td").text for row in visible] == ["alice"]
        assert driver.find_element(By.ID, "users-table-count").text == "1 of 3 rows"
        assert console_errors(driver) == []

        screenshot = tmp_path / "access-report.png"
        assert driver.save_screenshot(str(screenshot))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "access-report.png")
    assert screenshot.stat().st_size > 10_000
