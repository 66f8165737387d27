"""policies/retention.yaml, read with every agent config: every problem at its place, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.diagnostics import ConfigErrors
from agent.sync.agent_config import load_retention_presets

pytestmark = pytest.mark.unit


def problems_of(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    path = tmp_path / "retention.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_retention_presets(path, {})
    return [(problem.line, problem.col, problem.message) for problem in caught.value.diagnostics]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("presets:\n  - standard\n", [(2, 3, "presets is a mapping of names")]),
        ("preset:\n  standard: {keep_for: 90d}\n", [(1, 1, "unknown key 'preset'")]),
        ("- a\n", [(1, 1, "a retention presets file is a mapping with `presets:`")]),
    ],
)
def test_a_file_of_the_wrong_shape_is_an_error_at_its_place(
    tmp_path: Path, text: str, expected: list[tuple[int, int, str]]
) -> None:
    assert problems_of(tmp_path, text) == expected


def test_every_bad_preset_is_reported_at_once(tmp_path: Path) -> None:
    text = "presets:\n  a: {keep_for: 90d, then: shred}\n  b: {keep_for: soon}\n"
    assert [line for line, _, _ in problems_of(tmp_path, text)] == [2, 3]


def test_a_folder_is_an_error_and_no_file_means_no_presets(tmp_path: Path) -> None:
    (tmp_path / "retention.yaml").mkdir()
    with pytest.raises(ConfigErrors, match="a folder, not a retention presets file"):
        load_retention_presets(tmp_path / "retention.yaml", {})
    assert load_retention_presets(tmp_path / "missing.yaml", {}) == {}
