"""Diagnostics: compiler-style formatting, collection, and pydantic errors mapped to YAML positions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.config.diagnostics import ConfigErrors, Diagnostic, Diagnostics, diagnostics_from_validation_error
from agent.config.source import Document, parse_document
from agent.errors import ConfigError
from agent.secrets import Secret

pytestmark = pytest.mark.unit


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    username: str
    password: Secret
    port: int = 25
    token: int | None = None


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    max_sessions: int = 1
    description: str = ""


class Client(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(alias="clientId")


class Realm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    realm: str
    groups: list[Group] = []
    smtp: dict[str, Credentials] = {}
    client: Client | None = None
    default_group: str | Group | None = None
    min_length: int = 8
    max_length: int = 64

    @model_validator(mode="after")
    def _lengths(self) -> Realm:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) is larger than max_length ({self.max_length})")
        return self


def diagnose(
    text: str,
    model: type[BaseModel] = Realm,
    prefix: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    hint_model: bool = True,
) -> list[str]:
    """Validate the YAML `text` (at `prefix`) with `model`; the formatted diagnostics, hints included."""
    document = parse_document(text, "realm.yaml", env=env or {})
    data: Any = document.data
    for key in prefix:
        data = data[key]
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    found = diagnostics_from_validation_error(caught.value, document, prefix, model if hint_model else None)
    return [diagnostic.format() for diagnostic in sorted(found)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "realm: acme\nsmtp:\n  main:\n    username: mailer\n    passwrd: x\n",
            [
                "realm.yaml:3:3: missing required field 'password'",
                "realm.yaml:5:5: unknown field 'passwrd'\n  hint: did you mean 'password'?",
            ],
        ),
        (
            "realm: acme\ngroups:\n  - name: staff\n  - nme: admins\n",
            [
                "realm.yaml:4:5: missing required field 'name'",
                "realm.yaml:4:5: unknown field 'nme'\n  hint: did you mean 'name'?",
            ],
        ),
        (
            "realm: acme\ngroups:\n  - name: staff\n    max_session: 3\n",
            ["realm.yaml:4:5: unknown field 'max_session'\n  hint: did you mean 'max_sessions'?"],
        ),
        (
            "realm: acme\ngroupz: []\n",
            ["realm.yaml:2:1: unknown field 'groupz'\n  hint: did you mean 'groups'?"],
        ),
        (
            "realm: acme\nlength: 3\n",
            ["realm.yaml:2:1: unknown field 'length'\n  hint: did you mean 'min_length' or 'max_length'?"],
        ),
        (
            "realm: acme\ngroups:\n  - name: a\n    colour: red\n",
            ["realm.yaml:4:5: unknown field 'colour'\n  hint: valid fields: description, max_sessions, name"],
        ),
        (
            # With an alias and no populate_by_name, only the alias is a valid name.
            "realm: acme\nclient:\n  client_id: app\n",
            [
                "realm.yaml:2:1: missing required field 'clientId'",
                "realm.yaml:3:3: unknown field 'client_id'\n  hint: did you mean 'clientId'?",
            ],
        ),
        ("groups: []\n", ["realm.yaml:1:1: missing required field 'realm'"]),
        (
            # Union members ("str", "Group") appear in pydantic's loc but not in the YAML.
            "realm: acme\ndefault_group:\n  max_sesions: 2\n",
            [
                "realm.yaml:2:1: missing required field 'name'",
                "realm.yaml:3:3: default_group: input should be a valid string (found a mapping)",
                "realm.yaml:3:3: unknown field 'max_sesions'\n  hint: did you mean 'max_sessions'?",
            ],
        ),
        (
            "realm: acme\ngroups:\n  - name: staff\n    max_sessions: many\n",
            [
                "realm.yaml:4:19: groups[0].max_sessions: input should be a valid integer, "
                "unable to parse string as an integer (found 'many')"
            ],
        ),
        (
            "realm: acme\ngroups: {name: staff}\n",
            ["realm.yaml:2:9: groups: input should be a valid list (found a mapping)"],
        ),
        (
            "realm: [acme]\n",
            ["realm.yaml:1:8: realm: input should be a valid string (found a list)"],
        ),
        (
            "realm: acme\nmin_length: 12\nmax_length: 8\n",
            ["realm.yaml:1:1: min_length (12) is larger than max_length (8)"],
        ),
    ],
)
def test_validation_errors_point_into_the_yaml(text: str, expected: list[str]) -> None:
    assert diagnose(text) == expected


def test_without_a_model_there_is_no_hint() -> None:
    assert diagnose("realm: acme\ngroupz: []\n", hint_model=False) == ["realm.yaml:2:1: unknown field 'groupz'"]


def test_prefix_places_a_nested_model() -> None:
    text = "realm: acme\nsettings:\n  mail:\n    username: mailer\n    password: ${env:PW}\n    port: 'twenty-five'\n"
    found = diagnose(text, Credentials, prefix=("settings", "mail"), env={"PW": "hunter2"})
    assert found == [
        "realm.yaml:6:11: settings.mail.port: input should be a valid integer, "
        "unable to parse string as an integer (found 'twenty-five')"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A secret where a number belongs: the message says so without showing it.
        (
            "username: u\npassword: ${env:PW}\nport: ${env:PW}\n",
            "realm.yaml:3:7: port: input should be a valid integer (found a secret (value hidden))",
        ),
        # A plain string under a secret-looking key is not echoed either.
        (
            "username: u\npassword: ${env:PW}\ntoken: hunter2\n",
            "realm.yaml:3:8: token: input should be a valid integer, "
            "unable to parse string as an integer (found a secret (value hidden))",
        ),
        # A plain string where a Secret belongs.
        (
            "username: u\npassword: hunter2\n",
            "realm.yaml:2:11: password: input should be an instance of Secret (found a secret (value hidden))",
        ),
    ],
)
def test_secret_values_are_never_echoed(text: str, expected: str) -> None:
    found = diagnose(text, Credentials, env={"PW": "hunter2"})
    assert found == [expected]
    assert "hunter2" not in "\n".join(found)


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: int | bool


def test_union_member_names_in_loc_are_not_shown_as_fields() -> None:
    assert diagnose("level: [1]\n", Level) == [
        "realm.yaml:1:8: level: input should be a valid boolean (found a list)",
        "realm.yaml:1:8: level: input should be a valid integer (found a list)",
    ]


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_token: int | bool


def test_secret_looking_field_with_a_union_type_is_not_echoed() -> None:
    assert diagnose("api_token: hunter2\n", Webhook) == [
        "realm.yaml:1:12: api_token: input should be a valid boolean, "
        "unable to interpret input (found a secret (value hidden))",
        "realm.yaml:1:12: api_token: input should be a valid integer, "
        "unable to parse string as an integer (found a secret (value hidden))",
    ]


class Headers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    headers: dict[str, int] = {}


def test_values_of_credential_headers_are_never_echoed() -> None:
    found = diagnose(
        "headers:\n  X-Api-Key: k-hunter2\n  Proxy-Authorization: Basic hunter2\n  Cookie: sid=hunter2\n", Headers
    )
    assert [line.split(": ", 1)[0] for line in found] == ["realm.yaml:2:14", "realm.yaml:3:24", "realm.yaml:4:11"]
    assert all(line.endswith("(found a secret (value hidden))") for line in found)
    assert "hunter2" not in "\n".join(found)


def test_long_values_are_shortened() -> None:
    found = diagnose("realm: acme\nmin_length: " + "x" * 100 + "\n")
    assert found == [
        "realm.yaml:2:13: min_length: input should be a valid integer, unable to parse string as an integer "
        "(found 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...')"
    ]


def test_a_hand_made_document_falls_back_to_the_top() -> None:
    with pytest.raises(ValidationError) as caught:
        Realm.model_validate({"realm": "acme", "groups": [{"name": 1}]})
    found = diagnostics_from_validation_error(caught.value, Document("api", None), model=Realm)
    assert [d.format() for d in found] == [
        "api:1:1: groups[0].name: input should be a valid string (found 1)",
    ]


# --- Diagnostic, ConfigErrors, Diagnostics -----------------------------------------------------


@pytest.mark.parametrize(
    ("diagnostic", "expected"),
    [
        (Diagnostic("a.yaml", 3, 7, "unknown field 'x'"), "a.yaml:3:7: unknown field 'x'"),
        (
            Diagnostic("a.yaml", 3, 7, "unknown field 'x'", "did you mean 'y'?"),
            "a.yaml:3:7: unknown field 'x'\n  hint: did you mean 'y'?",
        ),
    ],
)
def test_diagnostic_format(diagnostic: Diagnostic, expected: str) -> None:
    assert diagnostic.format() == expected


def test_diagnostics_sort_by_file_line_col() -> None:
    unsorted = [
        Diagnostic("b.yaml", 1, 1, "z"),
        Diagnostic("a.yaml", 10, 1, "y"),
        Diagnostic("a.yaml", 2, 5, "x"),
        Diagnostic("a.yaml", 2, 3, "w"),
    ]
    assert [(d.file, d.line, d.col) for d in sorted(unsorted)] == [
        ("a.yaml", 2, 3),
        ("a.yaml", 2, 5),
        ("a.yaml", 10, 1),
        ("b.yaml", 1, 1),
    ]


def test_config_errors_prints_all_sorted_and_deduplicated() -> None:
    error = ConfigErrors(
        [
            Diagnostic("b.yaml", 1, 1, "second file"),
            Diagnostic("a.yaml", 4, 2, "later", "a hint"),
            Diagnostic("a.yaml", 1, 9, "first"),
            Diagnostic("a.yaml", 1, 9, "first"),
        ]
    )
    assert isinstance(error, ConfigError)
    assert str(error) == "a.yaml:1:9: first\na.yaml:4:2: later\n  hint: a hint\nb.yaml:1:1: second file"
    assert len(error.diagnostics) == 3


def test_collector_raises_only_when_something_was_collected() -> None:
    collected = Diagnostics()
    collected.raise_if_any()
    collected.add(Diagnostic("b.yaml", 2, 1, "two"))
    collected.extend([Diagnostic("a.yaml", 5, 1, "one"), Diagnostic("b.yaml", 1, 1, "three")])
    assert len(collected) == 3
    assert [d.message for d in collected] == ["one", "three", "two"]
    with pytest.raises(ConfigErrors) as caught:
        collected.raise_if_any()
    assert str(caught.value) == "a.yaml:5:1: one\nb.yaml:1:1: three\nb.yaml:2:1: two"


def test_collector_gathers_errors_from_several_files() -> None:
    collected = Diagnostics()
    for name, text in [("b.yaml", "a: 1\na: 2\n"), ("a.yaml", "x: [\n"), ("c.yaml", "ok: true\n")]:
        try:
            parse_document(text, name)
        except ConfigErrors as error:
            collected.extend(error.diagnostics)
    with pytest.raises(ConfigErrors) as caught:
        collected.raise_if_any()
    assert [d.format().splitlines()[0] for d in caught.value.diagnostics] == [
        "a.yaml:2:1: invalid YAML: expected the node content, but found '<stream end>'",
        "b.yaml:2:1: duplicate key 'a' (first at line 1)",
    ]


def test_secret_repr_is_what_a_message_could_show() -> None:
    assert str(Secret("hunter2")) == "Secret((value hidden))"
