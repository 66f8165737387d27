"""A realm export from the admin console (.json) beside the YAML files: JSON of another shape is a config error
at the file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.realm.loader import load_realms

pytestmark = pytest.mark.unit


def load(tmp_path: Path, document: Any) -> list[str]:
    folder = tmp_path / "realm-config"
    folder.mkdir()
    (folder / "export.json").write_text(json.dumps(document), encoding="utf-8")
    return [realm.spec.realm for realm in load_realms([folder], policies_dir=tmp_path / "policies", env={})]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "not a realm export: an object with a 'realm' name"),
        ({}, "not a realm export: an object with a 'realm' name"),
        ({"realm": "a", "clients": "x"}, "a part has another shape than Keycloak's"),
        ({"realm": "a", "roles": {"realm": "x"}}, "a part has another shape than Keycloak's"),
        ({"realm": "a", "groups": [1]}, "a part has another shape than Keycloak's"),
    ],
)
def test_json_of_another_shape_is_an_error_at_the_file(tmp_path: Path, document: Any, message: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, document)
    (problem,) = caught.value.diagnostics
    assert problem.file.endswith("export.json") and (problem.line, problem.col) == (1, 1)
    assert message in problem.message


def test_an_export_of_the_right_shape_loads(tmp_path: Path) -> None:
    assert load(tmp_path, {"realm": "acme", "roles": {"realm": [{"name": "staff"}]}}) == ["acme"]
