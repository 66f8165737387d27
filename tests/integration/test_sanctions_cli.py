"""The sanction commands as an operator runs them against a real Keycloak: issue, list, show, lift,
enforce; exit codes and messages (a deny-listed account is refused with exit 1 and nothing recorded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from tests.harness.sanctions import POLICY_FILE, access_of, make_member, prepare_realm
from tests.integration.test_realm_cli import cli_env, run_cli


def test_issue_list_show_lift_and_enforce_from_the_command_line(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, tmp_path: Path
) -> None:
    prepare_realm(keycloak_connection, realm)
    user_id = make_member(gateway, realm, "fay")
    make_member(gateway, realm, "breakglass-admin")
    before = access_of(gateway, realm, user_id)
    (tmp_path / "policies").mkdir()
    shutil.copy(POLICY_FILE, tmp_path / "policies" / "sanctions.yaml")
    (tmp_path / "idp-agent.yaml").write_text(f"store: sqlite:///{tmp_path / 'store.db'}\n")
    env = cli_env(keycloak_connection, USER="moderator")

    def cli(*args: str) -> tuple[int, str, str]:
        done = run_cli([*args], env, tmp_path)
        return done.returncode, done.stdout, done.stderr

    code, out, err = cli(
        "sanction", "issue", "fay", "--level", "suspension", "--reason", "spam", "--for", "3d", "--realm", realm,
        "--note", "flooded the forum", "--evidence", "https://tickets.example.org/42",
    )  # fmt: skip
    assert code == 0, err
    sanction_id = out.split()[0]
    assert "active" in out and "suspension" in out and not access_of(gateway, realm, user_id).enabled

    code, out, err = cli("sanction", "list", "--active", "--json")
    assert code == 0, err
    [listed] = json.loads(out)
    assert listed["id"] == sanction_id and listed["user_id"] == user_id and listed["issued_by"] == "moderator"
    assert listed["changes"]["enabled_before"] is True
    assert listed["evidence"] == ["https://tickets.example.org/42"]

    code, out, _ = cli("sanction", "show", sanction_id)
    assert code == 0 and "flooded the forum" in out and "sanction.disable" in out and "enabled_before: true" in out

    gateway.update_user(realm, user_id, {"enabled": True})  # re-enabled by hand
    code, out, err = cli("sanctions", "enforce", "--realm", realm)
    assert code == 0, err
    assert f"re-asserted {sanction_id}" in out and not access_of(gateway, realm, user_id).enabled

    code, out, err = cli("sanction", "lift", sanction_id, "--note", "apologised")
    assert code == 0, err
    assert "lifted" in out and access_of(gateway, realm, user_id) == before

    code, out, err = cli("sanction", "issue", "breakglass-admin", "--level=ban", "--reason=spam", "--realm", realm)
    assert code == 1 and "break-glass" in err and "Traceback" not in err
    code, out, err = cli("sanction", "issue", "fay", "--level", "exile", "--reason", "spam", "--realm", realm)
    assert code == 1 and "unknown sanction level 'exile'" in err and "hint: levels in the policy" in err
    code, out, _ = cli("sanction", "list", "--user", "fay")
    assert code == 0 and out.strip().endswith("1 sanction(s)") and "lifted" in out
