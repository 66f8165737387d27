"""Strict YAML loading: positions, refused constructs, limits, and secret references."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import source
from agent.config.diagnostics import ConfigErrors
from agent.config.source import Document, Position, load_document, parse_document
from agent.secrets import Secret

pytestmark = pytest.mark.unit

NESTED = """\
realm: acme
groups:
  - name: staff
    subgroups:
      - name: finance
        roles: [viewer, "approver"]
  - name: admins
"""


def messages(text: str, **kwargs: object) -> list[str]:
    """The formatted diagnostics (without hints) that parsing `text` raises."""
    with pytest.raises(ConfigErrors) as caught:
        parse_document(text, "t.yaml", **kwargs)  # type: ignore[arg-type]
    return [f"{d.file}:{d.line}:{d.col}: {d.message}" for d in caught.value.diagnostics]


def billion_laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), Position(1, 1)),
        (("realm",), Position(1, 8)),
        (("groups",), Position(3, 3)),
        (("groups", 0), Position(3, 5)),
        (("groups", 0, "name"), Position(3, 11)),
        (("groups", 0, "subgroups", 0, "name"), Position(5, 15)),
        (("groups", 0, "subgroups", 0, "roles", 1), Position(6, 25)),
        (("groups", 1, "name"), Position(7, 11)),
        # Unknown tails fall back to the longest known prefix.
        (("groups", 1, "description"), Position(7, 5)),
        (("groups", 9, "name"), Position(3, 3)),
        (("nothing", "here"), Position(1, 1)),
    ],
)
def test_position_of_nested_values(path: tuple[str | int, ...], expected: Position) -> None:
    assert parse_document(NESTED, "t.yaml").position_of(path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("realm",), Position(1, 1)),
        (("groups", 0, "name"), Position(3, 5)),
        (("groups", 0, "subgroups", 0, "roles"), Position(6, 9)),
        # A list item has no key: the item's own position.
        (("groups", 1), Position(7, 5)),
    ],
)
def test_key_position_of(path: tuple[str | int, ...], expected: Position) -> None:
    assert parse_document(NESTED, "t.yaml").key_position_of(path) == expected


def test_data_is_plain_python() -> None:
    document = parse_document(NESTED + "count: 3\nratio: 0.5\nenabled: true\nsince: 2024-01-31\nnote: ~\n", "t.yaml")
    assert document.data == {
        "realm": "acme",
        "groups": [
            {"name": "staff", "subgroups": [{"name": "finance", "roles": ["viewer", "approver"]}]},
            {"name": "admins"},
        ],
        "count": 3,
        "ratio": 0.5,
        "enabled": True,
        "since": "2024-01-31",
        "note": None,
    }
    assert document.name == "t.yaml"


def test_position_table_lists_every_path_in_document_order() -> None:
    document = parse_document("a: 1\nb: [x, {c: 2}]\n", "t.yaml")
    assert list(document.positions) == [(), ("a",), ("b",), ("b", 0), ("b", 1), ("b", 1, "c")]
    assert dict(document.key_positions) == {
        ("a",): Position(1, 1),
        ("b",): Position(2, 1),
        ("b", 1, "c"): Position(2, 9),
    }


def test_aliases_share_the_anchor_positions_and_data() -> None:
    document = parse_document("base: &base {role: viewer}\ncopy: *base\n", "t.yaml")
    assert document.data == {"base": {"role": "viewer"}, "copy": {"role": "viewer"}}
    assert document.position_of(("copy", "role")) == Position(1, 20)
    assert document.key_position_of(("copy",)) == Position(2, 1)


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "---\n"])
def test_empty_file_gives_none(text: str) -> None:
    assert parse_document(text, "t.yaml").data is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: a\nother: 1\nname: b\n",
            ["t.yaml:3:1: duplicate key 'name' (first at line 1)"],
        ),
        (
            "groups:\n  - name: a\n    path: /a\n    name: b\n    name: c\n",
            [
                "t.yaml:4:5: duplicate key 'name' (first at line 2)",
                "t.yaml:5:5: duplicate key 'name' (first at line 2)",
            ],
        ),
        (
            "base: &b {x: 1}\nitem:\n  <<: *b\n  y: 2\n",
            ["t.yaml:3:3: merge keys ('<<') are not supported"],
        ),
        (
            "1: a\ntrue: b\n? [x]\n: c\n2024-01-01: d\n~: e\n",
            [
                "t.yaml:1:1: a mapping key must be a string; '1' reads as an integer",
                "t.yaml:2:1: a mapping key must be a string; 'true' reads as a boolean",
                "t.yaml:3:3: a mapping key must be a string, not a list or mapping",
                "t.yaml:5:1: a mapping key must be a string; '2024-01-01' reads as a date",
                "t.yaml:6:1: a mapping key must be a string; '~' reads as null",
            ],
        ),
        (
            "a: 1\n---\nb: 2\n",
            ["t.yaml:2:1: a second YAML document starts here; one document per file"],
        ),
        (
            "a: !!python/object/apply:os.system [echo]\nb: !!binary aGk=\nc: !custom 1\nd: !!set {x}\n",
            [
                "t.yaml:1:4: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'",
                "t.yaml:2:4: unsupported YAML tag 'tag:yaml.org,2002:binary'",
                "t.yaml:3:4: unsupported YAML tag '!custom'",
                "t.yaml:4:4: unsupported YAML tag 'tag:yaml.org,2002:set'",
            ],
        ),
        ("a: !!int twelve\n", ["t.yaml:1:4: 'twelve' is not valid for tag tag:yaml.org,2002:int"]),
        ("loop: &a [1, *a]\n", ["t.yaml:1:7: recursive alias: this value contains itself"]),
        # Syntax errors stop the file at the parser's mark.
        ("a: [1,\n", ["t.yaml:2:1: invalid YAML: expected the node content, but found '<stream end>'"]),
        ("a: b: c\n", ["t.yaml:1:5: invalid YAML: mapping values are not allowed here"]),
        ("a: 1\n\tb: 2\n", ["t.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token"]),
        ("ok: 1\nbell: \x07\n", ["t.yaml:2:7: invalid YAML: special characters are not allowed"]),
    ],
)
def test_rejected_constructs_are_reported_at_their_position(text: str, expected: list[str]) -> None:
    assert messages(text) == expected


def test_all_problems_of_a_file_are_collected() -> None:
    text = "a: 1\na: 2\n<<: {x: 1}\nsecret: ${env:UNSET}\n1: x\n"
    assert messages(text) == [
        "t.yaml:2:1: duplicate key 'a' (first at line 1)",
        "t.yaml:3:1: merge keys ('<<') are not supported",
        "t.yaml:4:9: environment variable 'UNSET' is not set",
        "t.yaml:5:1: a mapping key must be a string; '1' reads as an integer",
    ]


def test_duplicate_key_hint_and_merge_hint_say_why() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse_document("a: 1\na: 2\n<<: {x: 1}\n", "t.yaml")
    hints = [d.hint for d in caught.value.diagnostics]
    assert hints[0] == "remove one of them; YAML would silently keep only the last"
    assert hints[1].startswith("their meaning is unclear")


def test_billion_laughs_is_refused_by_the_node_limit() -> None:
    # a4 expands to 111111 values and a5 to 1111111, so a5 (line 6) is where the limit is crossed:
    # the count is made per YAML node, nothing is expanded.
    assert messages(billion_laughs(9)) == [
        "t.yaml:6:5: this value expands to more than 200000 values once aliases are expanded"
    ]


@pytest.mark.parametrize(("max_nodes", "accepted"), [(12, True), (11, False)])
def test_node_limit_counts_every_value_with_aliases_expanded(max_nodes: int, accepted: bool) -> None:
    # root, a, x, y, b, two copies of a with their x and y, c: 1 + 1 + 2 + 1 + 2 * 3 + 1 = 12 values.
    text = "a: &a [x, y]\nb: [*a, *a]\nc: 1\n"
    if accepted:
        assert parse_document(text, "t.yaml", max_nodes=max_nodes).data["b"] == [["x", "y"], ["x", "y"]]
    else:
        assert messages(text, max_nodes=max_nodes) == [
            "t.yaml:1:1: this value expands to more than 11 values once aliases are expanded"
        ]


def test_default_node_limit() -> None:
    assert source.MAX_NODES == 200_000
    assert source.MAX_CONFIG_BYTES == 5 * 1024 * 1024


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    depth = source.MAX_DEPTH + 1
    text = "[" * depth + "1" + "]" * depth + "\n"
    assert messages(text) == [f"t.yaml:1:{depth + 1}: nested more than {source.MAX_DEPTH} levels deep"]


def test_absurd_nesting_is_a_diagnostic_not_a_crash() -> None:
    assert messages("[" * 5000 + "]" * 5000) == ["t.yaml:1:1: invalid YAML: nested too deeply"]


def test_huge_file_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    huge = tmp_path / "huge.yaml"
    # Not valid YAML at all: a parse would report a syntax error instead of the size.
    huge.write_bytes(b"[" * (source.MAX_CONFIG_BYTES + 1))

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed an oversized file")

    monkeypatch.setattr(source, "_compose", no_parsing)
    with pytest.raises(ConfigErrors) as caught:
        load_document(huge, env={}, base_dir=tmp_path)
    assert str(caught.value) == (
        f"{huge}:1:1: file is larger than 5 MiB, the limit for one config file\n  hint: split it into smaller files"
    )


def test_huge_text_is_refused_before_parsing() -> None:
    assert messages("#" * (source.MAX_CONFIG_BYTES + 1)) == [
        "t.yaml:1:1: file is larger than 5 MiB, the limit for one config file"
    ]


def test_load_document_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "realm.yaml"
    path.write_text("\ufeffrealm: acme\n", encoding="utf-8")
    document = load_document(path, env={}, base_dir=tmp_path)
    assert document == Document(str(path), {"realm": "acme"})
    assert document.position_of(("realm",)) == Position(1, 8)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "1:1: cannot read this file: No such file or directory"),
        (b"a: 1\nb: \xff\n", "2:4: file is not UTF-8 text"),
    ],
)
def test_unreadable_files_are_diagnostics(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "x.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigErrors) as caught:
        load_document(path, env={}, base_dir=tmp_path)
    assert str(caught.value) == f"{path}:{expected}"


# --- secret references -------------------------------------------------------------------------


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ldap").write_text("bind-pw\n")
    (tmp_path / "secrets" / "two-lines").write_text("line1\nline2\n\n")
    (tmp_path / "secrets" / "windows").write_bytes(b"bind-pw\r\n")  # saved by a Windows editor
    return tmp_path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${env:SMTP_PASSWORD}", Secret("smtp-pw")),
        ("'${env:SMTP_PASSWORD}'", Secret("smtp-pw")),
        ("${env:EMPTY}", Secret("")),
        ("${file:secrets/ldap}", Secret("bind-pw")),
        ("${file:secrets/two-lines}", Secret("line1\nline2\n")),
        ("${file:secrets/windows}", Secret("bind-pw")),
        ("$${env:SMTP_PASSWORD}", "${env:SMTP_PASSWORD}"),
        ("'cost: $5, template: $${user}'", "cost: $5, template: ${user}"),
        ("'$$${x}'", "$${x}"),
        ("'plain $ and { and }'", "plain $ and { and }"),
    ],
)
def test_secret_references_and_escapes(secret_dir: Path, value: str, expected: object) -> None:
    env = {"SMTP_PASSWORD": "smtp-pw", "EMPTY": ""}
    document = parse_document(f"value: {value}\n", "t.yaml", env=env, base_dir=secret_dir)
    assert document.data["value"] == expected
    assert type(document.data["value"]) is type(expected)


def test_absolute_secret_file(secret_dir: Path) -> None:
    path = secret_dir / "secrets" / "ldap"
    document = parse_document(f"bind: ${{file:{path}}}\n", "t.yaml", base_dir=Path("/nonexistent"))
    assert document.data["bind"] == Secret("bind-pw")


def test_relative_secret_file_defaults_to_the_document_directory(secret_dir: Path) -> None:
    name = str(secret_dir / "realm.yaml")
    document = parse_document("bind: ${file:secrets/ldap}\n", name)
    assert document.data["bind"] == Secret("bind-pw")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${env:UNSET}", "t.yaml:2:11: environment variable 'UNSET' is not set"),
        (
            "${file:secrets/missing}",
            "t.yaml:2:11: cannot read secret file {dir}/secrets/missing: No such file or directory",
        ),
        ("${file:secrets}", "t.yaml:2:11: cannot read secret file {dir}/secrets: Is a directory"),
        ("'pre-${env:TOKEN}'", "t.yaml:2:11: a secret reference must be the whole value"),
        ("'${env:TOKEN}-post'", "t.yaml:2:11: a secret reference must be the whole value"),
        ("'${env:TOKEN'", "t.yaml:2:11: malformed secret reference"),
        ("'pre ${oops'", "t.yaml:2:11: malformed secret reference"),
        ("'${env:TOKEN}${env:TOKEN}'", "t.yaml:2:11: a secret reference must be the whole value"),
        ("${vault:kv/x}", "t.yaml:2:11: unknown reference kind 'vault'"),
        ("${TOKEN}", "t.yaml:2:11: malformed secret reference"),
        ("${env:not-a-name}", "t.yaml:2:11: 'not-a-name' is not an environment variable name"),
    ],
)
def test_bad_secret_references_are_reported_without_values(secret_dir: Path, value: str, expected: str) -> None:
    env = {"TOKEN": "tok-123456"}
    with pytest.raises(ConfigErrors) as caught:
        parse_document(f"realm: acme\npassword: {value}\n", "t.yaml", env=env, base_dir=secret_dir)
    assert [d.format().splitlines()[0] for d in caught.value.diagnostics] == [expected.format(dir=secret_dir)]
    assert "tok-123456" not in str(caught.value)


def test_secret_values_never_appear_in_errors_of_the_same_file(secret_dir: Path) -> None:
    env = {"TOKEN": "tok-123456"}
    with pytest.raises(ConfigErrors) as caught:
        parse_document("a: ${env:TOKEN}\nb: ${file:secrets/ldap}\na: 2\n", "t.yaml", env=env, base_dir=secret_dir)
    text = str(caught.value)
    assert text.startswith("t.yaml:3:1: duplicate key 'a' (first at line 1)")
    assert "tok-123456" not in text and "bind-pw" not in text


def test_keys_are_never_substituted() -> None:
    assert parse_document("${env:X}: 1\n", "t.yaml").data == {"${env:X}": 1}


def test_secret_inside_an_anchor_is_reported_once() -> None:
    assert messages("a: &a {pw: '${env:UNSET}'}\nb: *a\nc: *a\n") == [
        "t.yaml:1:12: environment variable 'UNSET' is not set"
    ]


@pytest.mark.parametrize(
    ("text", "shown"),
    [("zip: 01234\n", "'01234' as the number 668"), ("at: 12:30\n", "'12:30' as the number 750"),
     ("n: 1_000\n", "'1_000' as the number 1000"), ("mask: 0x1F\n", "'0x1F' as the number 31")],
)  # fmt: skip
def test_a_number_yaml_reads_otherwise_than_written_is_an_error_at_its_place(text: str, shown: str) -> None:
    with pytest.raises(ConfigErrors) as raised:
        parse_document(text, "t.yaml")
    [problem] = raised.value.diagnostics
    assert (problem.line, problem.col) == (1, text.index(":") + 3) and shown in problem.message


@pytest.mark.parametrize("text", ["n: 10\n", "n: -5\n", "n: 0\n", "r: 0.5\n", "v: 1.10\n", 'zip: "01234"\n'])
def test_numbers_written_as_read_stay_numbers(text: str) -> None:
    assert parse_document(text, "t.yaml").data


@pytest.mark.parametrize(
    ("text", "shown"),
    [("country: NO\n", "'NO' as the boolean false"), ("remote: yes\n", "'yes' as the boolean true"),
     ("tags: [a, Off]\n", "'Off' as the boolean false"), ("x: {on: 1, v: on}\n", "'on' as the boolean true")],
)  # fmt: skip
def test_a_yaml_1_1_boolean_word_is_an_error_at_its_place(text: str, shown: str) -> None:
    with pytest.raises(ConfigErrors) as raised:
        parse_document(text, "t.yaml")
    [problem] = [item for item in raised.value.diagnostics if "as the boolean" in item.message]
    assert problem.line == 1 and problem.col == text.rindex(shown.split("'")[1]) + 1 and shown in problem.message
    assert "quote it if it is text" in problem.hint


@pytest.mark.parametrize(("text", "value"), [("a: true\n", True), ("a: False\n", False), ('a: "no"\n', "no")])
def test_true_and_false_stay_booleans_and_quoted_words_text(text: str, value: object) -> None:
    assert parse_document(text, "t.yaml").data == {"a": value}
