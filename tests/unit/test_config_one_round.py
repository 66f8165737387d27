"""Problems in several config files come in one round: the agent config with the retention presets beside it,
and a sync's mapper with the sanction policy beside the config; never a file's problems only after the one
before it was fixed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.sync.agent_config import load_agent_config
from agent.sync.config_files import load_sync_files

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
AGENT_CONFIG = """\
sources:
  - {name: hr, type: csv, path: hr.csv}
syncs:
  - {name: people, mapper: m.yaml, sources: [hr], retention: standard}
"""
MAPPER = """\
name: people
realm: acme
id: id
sources: {hr: {priority: 1, fields: [id, username]}}
fields: {hr: {id: {from: id}, username: {from: id}}}
"""


def problems(caught: pytest.ExceptionInfo[ConfigErrors]) -> list[tuple[str, int, str]]:
    return [(Path(item.file).name, item.line, item.message) for item in caught.value.diagnostics]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_agent_config_and_the_retention_presets_are_checked_together(tmp_path: Path) -> None:
    path = write(tmp_path / "idp-agent.yaml", AGENT_CONFIG + "stor: {}\n")
    write(tmp_path / "policies" / "retention.yaml", "presets:\n  standard: {keep_for: soon}\n")
    with pytest.raises(ConfigErrors) as caught:
        load_agent_config(path, {})
    found = problems(caught)
    assert [(name, line) for name, line, _ in found] == [("idp-agent.yaml", 5), ("retention.yaml", 2)]
    assert "unknown field 'stor'" in found[0][2]
    # The preset exists, in a file with problems of its own: not also called unknown.
    assert not any("unknown retention preset" in message for _, _, message in found)


def test_a_yaml_error_in_the_agent_config_still_reports_the_presets_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "idp-agent.yaml", "sources: [\n")
    write(tmp_path / "policies" / "retention.yaml", "preset: {}\n")
    with pytest.raises(ConfigErrors) as caught:
        load_agent_config(path, {})
    assert sorted({name for name, _, _ in problems(caught)}) == ["idp-agent.yaml", "retention.yaml"]


def test_a_sync_s_mapper_and_the_sanction_policy_are_checked_together(tmp_path: Path) -> None:
    write(tmp_path / "policies" / "retention.yaml", "presets:\n  standard: {keep_for: 90d}\n")
    config = load_agent_config(write(tmp_path / "idp-agent.yaml", AGENT_CONFIG), {})
    write(tmp_path / "m.yaml", MAPPER.replace("realm: acme", "realm: ''"))
    policy = write(tmp_path / "policies" / "sanctions.yaml", "")
    shutil.copy(REPO / "policies" / "sanctions.yaml", policy)
    policy.write_text(policy.read_text(encoding="utf-8") + "\nextra: 1\n", encoding="utf-8")

    with pytest.raises(ConfigErrors) as caught:
        load_sync_files(config, config.sync("people"), {})
    assert sorted({name for name, _, _ in problems(caught)}) == ["m.yaml", "sanctions.yaml"]

    write(tmp_path / "m.yaml", MAPPER)
    with pytest.raises(ConfigErrors, match=r"sanctions\.yaml:\d+:1: unknown field 'extra'"):
        load_sync_files(config, config.sync("people"), {})
    shutil.copy(REPO / "policies" / "sanctions.yaml", policy)
    files = load_sync_files(config, config.sync("people"), {})
    assert files.mapper.realm == "acme"
    assert files.policy is not None and files.policy.levels


def test_without_a_sanction_policy_the_sync_reads_the_mapper_alone(tmp_path: Path) -> None:
    without_retention = AGENT_CONFIG.replace(", retention: standard", "")
    config = load_agent_config(write(tmp_path / "idp-agent.yaml", without_retention), {})
    write(tmp_path / "m.yaml", MAPPER)
    assert load_sync_files(config, config.sync("people"), {}).policy is None
