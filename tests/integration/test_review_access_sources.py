"""`idp-agent report access` reads the syncs' sources (idp-agent.yaml): an account no source lists is an orphan,
one the source marks inactive is a leaver; a broken feed or `--no-sources` gives neither, and a broken feed says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway, UserDraft
from agent.review.findings import LEAVER_ENABLED, ORPHAN_NO_SOURCE_RECORD
from agent.review.report_commands import SOURCES_INCOMPLETE
from agent.settings import KeycloakConnection
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE
from tests.harness.cli import REPO, cli_env
from tests.harness.sync_setup import hr_config, hr_row, make_sync_setup

SOURCE_RULES = {ORPHAN_NO_SOURCE_RECORD, LEAVER_ENABLED}


def seed(gateway: KeycloakGateway, realm: str) -> None:
    """person000 (5000) and person001 (5001) are in the feed; ghost (9999) is not."""
    for username, external_id in (("person000", "5000"), ("person001", "5001"), ("ghost", "9999")):
        attributes = {EXTERNAL_ID_ATTRIBUTE: (external_id,)}
        gateway.create_user(realm, UserDraft(username, email=f"{username}@example.org", attributes=attributes))


@pytest.mark.parametrize("case", ["feed-read", "feed-missing", "no-sources"])
def test_access_report_findings_from_the_sources(
    gateway: KeycloakGateway, realm: str, keycloak_connection: KeycloakConnection, tmp_path: Path, case: str
) -> None:
    setup = make_sync_setup(keycloak_connection, realm, tmp_path)
    seed(gateway, realm)
    rows = [hr_row(0), hr_row(1, Status="Terminated")]
    hr_config(setup, None if case == "feed-missing" else rows)
    command = [
        sys.executable, "-m", "agent", "report", "access", "--realm", realm, "--format", "json",
        "--out", str(tmp_path / "out"), "--policies", str(REPO / "policies"),
        "--config", str(tmp_path / "idp-agent.yaml"), *(["--no-sources"] if case == "no-sources" else []),
    ]  # fmt: skip
    env = cli_env(keycloak_connection)
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out" / "access.json").read_text(encoding="utf-8")
    document = json.loads(text)
    assert document["summary"]["users"] == 3
    found = {(item["rule"], item["subject"]) for item in document["findings"] if item["rule"] in SOURCE_RULES}
    if case == "feed-read":
        assert found == {(ORPHAN_NO_SOURCE_RECORD, "ghost"), (LEAVER_ENABLED, "person001")}
    else:
        assert found == set()  # a missing feed proves nothing: nobody becomes an orphan
    assert (SOURCES_INCOMPLETE in done.stderr) == (case == "feed-missing"), done.stderr
    password = env["KEYCLOAK_ADMIN_PASSWORD"]
    assert password not in done.stdout + done.stderr + text
