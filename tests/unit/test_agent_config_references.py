"""idp-agent.yaml's references between sources, syncs and retention presets: every problem at its place, at
once; and a sync asked for by name that is not there named with the file it was looked for in."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.sync.agent_config import load_agent_config

pytestmark = pytest.mark.unit

CONFIG = """\
sources:
  - {name: hr, type: csv, path: hr.csv}
  - {name: hr, type: csv, path: other.csv}
syncs:
  - name: people
    mapper: m.yaml
    sources: [hr, ldap]
    retention: forever
"""


def test_every_broken_reference_is_reported_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_agent_config(path, {})
    found = [(problem.line, problem.col, problem.message) for problem in caught.value.diagnostics]
    assert found == [
        (3, 12, "source 'hr' is defined twice"),
        (7, 19, "sync 'people' reads unknown source 'ldap'"),
        (8, 16, "unknown retention preset 'forever'"),
    ]


def test_a_sync_not_there_is_named_with_the_file_it_was_looked_for_in(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "agent.yaml"
    path.parent.mkdir()
    path.write_text("sources: []\nsyncs: []\n", encoding="utf-8")
    config = load_agent_config(path, {})
    with pytest.raises(ConfigErrors, match=r"sub/agent\.yaml:1:1: no sync named 'nope'"):
        config.sync("nope")
