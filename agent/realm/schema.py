"""The JSON Schema of realm-config files, generated from the models, so editors validate YAML as it is typed."""

from __future__ import annotations

import json
from typing import Any

from agent.realm.spec import RealmSpec

SCHEMA_ID = "https://idp-agent.dev/schema/realm-config.json"


def realm_config_schema() -> dict[str, Any]:
    schema = RealmSpec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def realm_config_schema_text() -> str:
    """The schema as committed in realm-config/schema.json (stable key order, trailing newline)."""
    return json.dumps(realm_config_schema(), indent=2, sort_keys=True) + "\n"
