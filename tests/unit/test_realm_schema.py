"""realm-config/schema.json is generated from the models and must be kept current."""

from __future__ import annotations

import json
from pathlib import Path

from agent.realm.schema import realm_config_schema, realm_config_schema_text

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "realm-config" / "schema.json").read_text()
    assert committed == realm_config_schema_text(), "run `idp-agent schema --out realm-config/schema.json`"


def test_schema_forbids_unknown_keys_and_describes_secrets_and_durations() -> None:
    schema = realm_config_schema()
    assert schema["additionalProperties"] is False
    assert "realm" in schema["required"]
    smtp = schema["$defs"]["SmtpSpec"]["properties"]["password"]
    assert "${env:NAME}" in json.dumps(smtp)
    sessions = schema["$defs"]["SessionsSpec"]["properties"]["idle_timeout"]
    assert "pattern" in json.dumps(sessions) and "integer" in json.dumps(sessions)
