"""A campaign from start to close against a real Keycloak, through the CLI as an operator runs it: reviewers
from managers and the fallback, a bad sheet refused whole with line numbers, the safety threshold stopping the
close until the exact count is confirmed, revocations applied and journalled, and the evidence bundle."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from selenium.webdriver.common.by import By

from agent.keycloak import KeycloakGateway, UserDraft
from agent.review.campaigns import close_campaign
from agent.settings import KeycloakConnection
from agent.store import open_store
from agent.store.locks import store_lock
from tests.harness.browser import console_errors, headless_chromium
from tests.harness.cli import cli_env

REPO = Path(__file__).resolve().parents[2]
REVIEW_YAML = """\
privileged:
  realm_roles: [admin]
manager_attribute: manager
fallback_reviewer: security
"""


def operator_env(connection: KeycloakConnection, tmp_path: Path) -> dict[str, str]:
    # The state dir holds the campaign locks and the default evidence folder.
    return cli_env(connection, IDP_AGENT_STATE_DIR=str(tmp_path / "state"))


class Operator:
    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "review.yaml").write_text(REVIEW_YAML, encoding="utf-8")
        (tmp_path / "idp-agent.yaml").write_text(f"store: sqlite:///{tmp_path / 'store.db'}\n", encoding="utf-8")

    def review(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "agent", "review", *args, "--config", str(self.tmp_path / "idp-agent.yaml")]
        return subprocess.run(
            command, env=self.env, cwd=self.tmp_path, capture_output=True, text=True, timeout=300, check=False
        )


def seed(gateway: KeycloakGateway, realm: str) -> dict[str, str]:
    """alice: admin through /it-admins, manager dave; bob: admin directly, manager dave; carol: admin directly,
    no manager (the fallback reviews her); dave: no privilege. Unmanaged attributes on, for `manager`."""
    profile = gateway.get_user_profile(realm)
    gateway.update_user_profile(realm, replace(profile, unmanaged_attribute_policy="ENABLED"))
    gateway.create_realm_role(realm, "admin")
    admin = gateway.get_realm_role(realm, "admin")
    assert admin is not None
    group_id = gateway.create_group(realm, "it-admins")
    gateway.change_group_realm_roles(realm, group_id, [admin], [])
    ids = {}
    for name, manager in (("alice", "dave"), ("bob", "dave"), ("carol", None), ("dave", None)):
        attributes = {"manager": (manager,)} if manager else {}
        draft = UserDraft(name, email=f"{name}@example.org", first_name=name.title(), last_name="Test",
                          attributes=attributes)  # fmt: skip
        ids[name] = gateway.create_user(realm, draft)
    gateway.add_user_to_group(realm, ids["alice"], group_id)
    gateway.add_realm_roles_to_user(realm, ids["bob"], [admin])
    gateway.add_realm_roles_to_user(realm, ids["carol"], [admin])
    return ids


def direct_realm_roles(gateway: KeycloakGateway, realm: str, user_id: str) -> set[str]:
    return {role.name for role in gateway.user_realm_roles(realm, user_id)}


def sheet_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def write_sheet(path: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def test_campaign_start_export_decide_close_applies_and_journals_revocations(
    gateway: KeycloakGateway, realm: str, keycloak_connection: KeycloakConnection, tmp_path: Path
) -> None:
    ids = seed(gateway, realm)
    operator = Operator(tmp_path, operator_env(keycloak_connection, tmp_path))
    policies = str(tmp_path / "policies")

    started = operator.review(
        "start", "--campaign", "q4", "--realm", realm, "--scope", "privileged", "--due", "2026-12-31",
        "--default", "revoke", "--policies", policies, "--actor", "olivia",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert "3 item(s)" in started.stdout
    assert "reviewers: dave, security" in started.stdout

    # Dave's sheet: alice's group and bob's role. Carol's item goes to the fallback reviewer.
    dave_sheet = tmp_path / "dave.csv"
    exported = operator.review("export", "--campaign", "q4", "--reviewer", "dave", "--out", str(dave_sheet))
    assert exported.returncode == 0, exported.stderr
    rows = sheet_rows(dave_sheet)
    assert {(row["user"], row["kind"], row["entitlement"]) for row in rows} == {
        ("alice", "group", "/it-admins"), ("bob", "role", "admin"),
    }  # fmt: skip
    assert all(row["recommendation"] == "keep" and row["reason"].startswith("last login unknown") for row in rows)

    # A sheet with one bad line is refused whole, naming the line; nothing is recorded.
    decisions = {"alice": ("keep", ""), "bob": ("revoke", "moved to sales; no admin work")}
    filled = [
        {**row, "decision": decisions[row["user"]][0], "justification": decisions[row["user"]][1]} for row in rows
    ]
    write_sheet(dave_sheet, [*filled, {**filled[0], "item": "42"}])
    refused = operator.review("decide", "--campaign", "q4", "--file", str(dave_sheet))
    assert refused.returncode == 1
    assert f"{dave_sheet}:4:1: unknown item '42'" in refused.stderr
    shown = operator.review("show", "--campaign", "q4")
    assert shown.stdout.count("decided -") == 3

    write_sheet(dave_sheet, filled)
    # While a close holds the campaign (it works from the decisions it read first), no sheet is recorded.
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store, store_lock(store, "review-q4"):
        during_close = operator.review("decide", "--campaign", "q4", "--file", str(dave_sheet))
    assert during_close.returncode != 0 and "review-q4" in during_close.stderr, during_close.stderr
    assert operator.review("show", "--campaign", "q4").stdout.count("decided -") == 3
    decided = operator.review("decide", "--campaign", "q4", "--file", str(dave_sheet))
    assert decided.returncode == 0, decided.stderr
    assert "2 decision(s) recorded" in decided.stdout

    # Bob (decided) and carol (no answer: the default, revoke) make 2 revocations among 4 users: over the
    # threshold, so the close stops before any write.
    planned = operator.review("close", "--campaign", "q4", "--actor", "olivia", "--dry-run")
    assert planned.returncode == 2, planned.stderr
    assert "would record 1 default decision(s) ('revoke') and apply 2 revocation(s)" in planned.stdout
    assert "- revoke role admin from bob (decided by dave: moved to sales; no admin work)" in planned.stdout
    assert "SAFETY: 2 revocations reach the threshold" in planned.stdout
    assert operator.review("show", "--campaign", "q4").stdout.count("decided -") == 1  # the dry run wrote nothing
    stopped = operator.review("close", "--campaign", "q4", "--actor", "olivia")
    assert stopped.returncode == 1
    assert "2 revocations reach the threshold" in stopped.stderr
    assert "admin" in direct_realm_roles(gateway, realm, ids["bob"])
    assert "admin" in direct_realm_roles(gateway, realm, ids["carol"])

    evidence = tmp_path / "evidence"
    closed = operator.review(
        "close", "--campaign", "q4", "--actor", "olivia", "--confirm-revocations", "2", "--out", str(evidence)
    )
    assert closed.returncode == 0, closed.stderr
    assert "2 revocation(s) applied" in closed.stdout

    # Keycloak: bob and carol lost the role; alice (kept) is still in the group; nobody else was touched.
    assert "admin" not in direct_realm_roles(gateway, realm, ids["bob"])
    assert "admin" not in direct_realm_roles(gateway, realm, ids["carol"])
    assert gateway.user_group_paths(realm, ids["alice"]) == ["/it-admins"]
    assert gateway.get_realm_role(realm, "admin") is not None

    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        revokes = [entry for entry in store.journal.entries() if entry.action == "user.revoke"]
        # Each write's intent is journalled before it is sent, its outcome before the item is marked done.
        steps = {name: [(e.details["role"], e.details["outcome"]) for e in revokes if e.subject == name]
                 for name in ("bob", "carol")}  # fmt: skip
        assert steps == {"bob": [("admin", "intent"), ("admin", "applied")],
                         "carol": [("admin", "intent"), ("admin", "applied")]}  # fmt: skip
        assert len(revokes) == 4
        bob = next(entry for entry in revokes if entry.subject == "bob" and entry.details["outcome"] == "applied")
        assert bob.reason == "moved to sales; no admin work"
        assert bob.details["reviewer"] == "dave"
        campaign = store.campaigns.get("q4")
        assert campaign is not None and campaign.status == "closed"
        assert campaign.run_id is not None and campaign.run_id == bob.run_id
        run_items = store.runs.run_items(campaign.run_id)
        assert sorted((item.subject, item.action, item.outcome, item.revoked) for item in run_items) == [
            ("bob", "revoke", "applied", ("role admin",)), ("carol", "revoke", "applied", ("role admin",)),
        ]  # fmt: skip
        assert store.journal.verify().ok
        actions = [entry.action for entry in store.journal.entries(subject="q4")]
        assert actions == ["review.decide", "review.close", "review.evidence"]

    manifest = json.loads((evidence / "manifest.json").read_text(encoding="utf-8"))
    assert {entry["name"] for entry in manifest["files"]} == {"report.html", "decisions.csv", "decisions.json"}
    for entry in manifest["files"]:
        assert hashlib.sha256((evidence / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    decisions_csv = {row["user"]: row for row in csv.DictReader(io.StringIO((evidence / "decisions.csv").read_text()))}
    assert decisions_csv["carol"]["decided how"] == "default"
    assert decisions_csv["carol"]["reviewer"] == "security"
    assert decisions_csv["alice"]["outcome"] == "kept"
    assert decisions_csv["bob"]["outcome"] == "applied"

    # The auditor's page opens offline in a browser, without console errors, summary first.
    with headless_chromium() as driver:
        driver.get((evidence / "report.html").as_uri())
        assert console_errors(driver) == []
        assert driver.find_element(By.TAG_NAME, "h2").text == "Summary"
        assert "2\nrevocations applied" in driver.find_element(By.ID, "summary-cards").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#decisions-table tbody tr")) == 3

    listed = operator.review("list")
    assert "q4" in listed.stdout and "closed" in listed.stdout and "3/3 decided" in listed.stdout
    again = operator.review("close", "--campaign", "q4", "--actor", "olivia")
    assert again.returncode == 1
    assert "was closed" in again.stderr


def test_a_close_cut_off_before_its_evidence_is_finished_by_the_next_close(
    gateway: KeycloakGateway, realm: str, keycloak_connection: KeycloakConnection, tmp_path: Path
) -> None:
    """The campaign closed (its revocations done, journalled) but the process stopped before the evidence
    bundle was written: the next `review close` writes it, and journals it, once."""
    seed(gateway, realm)
    operator = Operator(tmp_path, operator_env(keycloak_connection, tmp_path))
    started = operator.review(
        "start", "--campaign", "q1", "--realm", realm, "--scope", "privileged", "--due", "2026-12-31",
        "--default", "keep", "--policies", str(tmp_path / "policies"), "--actor", "olivia",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        close_campaign(gateway, store, "q1", actor="olivia")  # then killed: no evidence yet

    evidence = tmp_path / "evidence"
    finished = operator.review("close", "--campaign", "q1", "--actor", "olivia", "--out", str(evidence))

    assert finished.returncode == 0, finished.stderr
    assert "its evidence was not written yet" in finished.stdout
    manifest = (evidence / "manifest.json").read_bytes()
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        [written] = [entry for entry in store.journal.entries(subject="q1") if entry.action == "review.evidence"]
    assert written.details["evidence"] == f"manifest.json sha256:{hashlib.sha256(manifest).hexdigest()}"
    again = operator.review("close", "--campaign", "q1", "--actor", "olivia", "--out", str(evidence))
    assert again.returncode == 1 and "was closed" in again.stderr
