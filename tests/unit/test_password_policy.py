"""Password policy: readable fields to Keycloak's policy string and back, validation, equality, presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agent.config.diagnostics import Diagnostics, diagnostics_from_validation_error
from agent.config.source import load_document, parse_document
from agent.realm.loader import load_presets as load_presets_of
from agent.realm.password_policy import (
    PasswordPolicySpec,
    compile_password_policy,
    parse_password_policy,
    policies_equal,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
STRICT = (
    "length(12) and upperCase(1) and lowerCase(1) and digits(1) and specialChars(1) and notUsername(undefined) "
    "and notEmail(undefined) and passwordHistory(5) and forceExpiredPasswordChange(90)"
)

SPECS_AND_STRINGS: list[tuple[dict[str, Any], str]] = [
    ({}, ""),
    ({"min_length": 8}, "length(8)"),
    ({"max_length": 64}, "maxLength(64)"),
    ({"uppercase": 2, "lowercase": 0}, "upperCase(2) and lowerCase(0)"),
    ({"digits": 1, "special_chars": 3}, "digits(1) and specialChars(3)"),
    ({"not_username": True}, "notUsername(undefined)"),
    ({"not_email": True}, "notEmail(undefined)"),
    ({"history": 5}, "passwordHistory(5)"),
    ({"expire_days": 90}, "forceExpiredPasswordChange(90)"),
    ({"blocklist": "10_million_passwords.txt"}, "passwordBlacklist(10_million_passwords.txt)"),
    ({"regex": ["^(?=.*[A-Z])(?=.*[0-9]).{8,}$"]}, "regexPattern(^(?=.*[A-Z])(?=.*[0-9]).{8,}$)"),
    ({"hash_iterations": 210000}, "hashIterations(210000)"),
    ({"hash_algorithm": "pbkdf2-sha512"}, "hashAlgorithm(pbkdf2-sha512)"),
    ({"not_recently_used_days": 30}, "passwordAge(30)"),
    ({"max_auth_age_seconds": 300}, "maxAuthAge(300)"),
    ({"other": ["notContainsUsername(undefined)"]}, "notContainsUsername(undefined)"),
    (
        {
            "min_length": 12,
            "uppercase": 1,
            "lowercase": 1,
            "digits": 1,
            "special_chars": 1,
            "not_username": True,
            "not_email": True,
            "history": 5,
            "expire_days": 90,
        },
        STRICT,
    ),
    (
        # Every field at once, written in a scrambled order: compiled in the canonical one.
        {
            "other": ["customPolicy(x y)", "bareCustom"],
            "max_auth_age_seconds": 60,
            "not_recently_used_days": 365,
            "hash_algorithm": "argon2",
            "hash_iterations": 5,
            "regex": ["[a-z]+"],
            "blocklist": "weak.txt",
            "expire_days": 30,
            "history": 24,
            "not_email": True,
            "not_username": True,
            "special_chars": 2,
            "digits": 2,
            "lowercase": 2,
            "uppercase": 2,
            "max_length": 128,
            "min_length": 16,
        },
        "length(16) and maxLength(128) and upperCase(2) and lowerCase(2) and digits(2) and specialChars(2) "
        "and notUsername(undefined) and notEmail(undefined) and passwordHistory(24) "
        "and forceExpiredPasswordChange(30) and passwordBlacklist(weak.txt) and regexPattern([a-z]+) "
        "and hashIterations(5) and hashAlgorithm(argon2) and passwordAge(365) and maxAuthAge(60) "
        "and customPolicy(x y) and bareCustom",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), SPECS_AND_STRINGS)
def test_compile_writes_terms_in_canonical_order(fields: dict[str, Any], expected: str) -> None:
    assert compile_password_policy(PasswordPolicySpec.model_validate(fields)) == expected


@pytest.mark.parametrize(("fields", "text"), SPECS_AND_STRINGS)
def test_parse_inverts_compile(fields: dict[str, Any], text: str) -> None:
    spec = PasswordPolicySpec.model_validate(fields)
    assert parse_password_policy(text) == spec
    assert compile_password_policy(parse_password_policy(text)) == text


def test_false_flags_are_not_part_of_the_policy() -> None:
    spec = PasswordPolicySpec(min_length=8, not_username=False, not_email=False)
    assert compile_password_policy(spec) == "length(8)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Term order, spacing around terms, and what Keycloak ignores do not matter.
        ("digits(1) and length(12)", {"min_length": 12, "digits": 1}),
        ("  length(12)   and   digits( 1 )  ", {"min_length": 12, "digits": 1}),
        ("notUsername and notEmail(anything)", {"not_username": True, "not_email": True}),
        # Unknown policy ids are kept, as written, in the order met.
        (
            "maxLength(64) and zzz(1) and notContainsUsername(undefined) and length(8)",
            {"min_length": 8, "max_length": 64, "other": ("zzz(1)", "notContainsUsername(undefined)")},
        ),
        ("", {}),
        ("   ", {}),
    ],
)
def test_parse_reads_what_keycloak_stores(text: str, expected: dict[str, Any]) -> None:
    assert parse_password_policy(text) == PasswordPolicySpec.model_validate(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("length", "policy 'length' has no value; write length(...)"),
        ("length(twelve)", "policy 'length' needs a whole number, not 'twelve'"),
        ("length(8) and length(12)", "policy 'length' appears more than once; Keycloak keeps only the last"),
        ("regexPattern(a) and regexPattern(b)", "policy 'regexPattern' appears more than once"),
        ("length(8", "password policy term 'length(8' does not end with ')'"),
        ("(8)", "password policy term '(8)' does not start with a policy id"),
        ("length(8) and  and digits(1)", "empty term in password policy"),
        ("hashAlgorithm", "policy 'hashAlgorithm' has no value; write hashAlgorithm(...)"),
        ("length(0)", "Input should be greater than or equal to 1"),
    ],
)
def test_parse_refuses_what_it_cannot_hold(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_password_policy(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        ({"min_length": 0}, ("min_length",), "Input should be greater than or equal to 1"),
        ({"uppercase": -1}, ("uppercase",), "Input should be greater than or equal to 0"),
        ({"history": -3}, ("history",), "Input should be greater than or equal to 0"),
        ({"expire_days": 0}, ("expire_days",), "Input should be greater than or equal to 1"),
        ({"uppercase": True}, ("uppercase",), "Input should be a valid integer"),
        ({"min_length": "12"}, ("min_length",), "Input should be a valid integer"),
        ({"not_username": "yes"}, ("not_username",), "Input should be a valid boolean"),
        ({"min_lenght": 8}, ("min_lenght",), "Extra inputs are not permitted"),
        (
            {"min_length": 16, "max_length": 12},
            (),
            "Value error, min_length (16) is larger than max_length (12)",
        ),
        (
            {"max_length": 3, "uppercase": 2, "digits": 2},
            (),
            "Value error, uppercase + lowercase + digits + special_chars (4) is more than max_length (3): "
            "no password could satisfy it",
        ),
        (
            {"regex": ["[A-Z]", "[0-9]"]},
            ("regex",),
            "Value error, Keycloak enforces only one regex pattern (keycloak/keycloak#19713); combine them "
            "into one, e.g. with lookaheads (?=.*[A-Z])(?=.*[0-9]).*",
        ),
        ({"regex": ["  "]}, ("regex", 0), "Value error, must not be empty"),
        (
            {"regex": ["cats and dogs"]},
            ("regex", 0),
            "Value error, must not contain ' and ': Keycloak splits the policy string there",
        ),
        (
            {"blocklist": "../etc/passwd"},
            ("blocklist",),
            "Value error, is a file name in Keycloak's password-blacklists folder, without '/'",
        ),
        ({"hash_algorithm": "pbkdf2 sha256"}, ("hash_algorithm",), "String should match pattern"),
        (
            {"other": ["length(8)"]},
            ("other", 0),
            "Value error, 'length' has its own field: write `min_length` instead",
        ),
        (
            {"other": ["custom(1)", "custom(2)"]},
            ("other",),
            "Value error, 'custom' is written more than once; Keycloak keeps only the last",
        ),
        ({"other": ["(1)"]}, ("other", 0), "Value error, password policy term '(1)' does not start with a policy id"),
    ],
)
def test_invalid_specs_are_refused(fields: dict[str, Any], loc: tuple[str | int, ...], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PasswordPolicySpec.model_validate(fields)
    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [loc]
    assert errors[0]["msg"].startswith(message)


def test_spec_is_frozen() -> None:
    spec = PasswordPolicySpec(min_length=8)
    with pytest.raises(ValidationError):
        spec.min_length = 9


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (STRICT, STRICT, True),
        ("length(8) and digits(1)", "digits(1) and length(8)", True),
        ("length(8)  and digits(1) ", " digits(1) and length(8)", True),
        ("length(8) and notUsername", "notUsername(undefined) and length(8)", True),
        ("length( 08 )", "length(8)", True),
        ("", "", True),
        ("length(8)", "length(9)", False),
        ("length(8)", "length(8) and digits(1)", False),
        ("length(8) and length(8)", "length(8)", False),
        ("regexPattern(a b)", "regexPattern(a  b)", False),
        ("custom(x)", "custom(X)", False),
        ("", "length(8)", False),
    ],
)
def test_policies_equal(a: str, b: str, equal: bool) -> None:
    assert policies_equal(a, b) is equal
    assert policies_equal(b, a) is equal


@pytest.mark.parametrize(("fields", "text"), SPECS_AND_STRINGS)
def test_compiled_policy_equals_any_reordering(fields: dict[str, Any], text: str) -> None:
    compiled = compile_password_policy(PasswordPolicySpec.model_validate(fields))
    reordered = " and ".join(reversed(text.split(" and "))) if text else ""
    assert policies_equal(compiled, reordered)


# --- presets in policies/password.yaml ---------------------------------------------------------


def load_presets() -> dict[str, PasswordPolicySpec]:
    document = load_document(REPO_ROOT / "policies" / "password.yaml", env={}, base_dir=REPO_ROOT)
    return {name: PasswordPolicySpec.model_validate(fields) for name, fields in document.data["presets"].items()}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "baseline",
            "length(8) and maxLength(64) and notUsername(undefined) and notEmail(undefined) and passwordHistory(3)",
        ),
        ("strict", STRICT),
        (
            "admin",
            "length(16) and maxLength(128) and upperCase(1) and lowerCase(1) and digits(1) and specialChars(1) "
            "and notUsername(undefined) and notEmail(undefined) and passwordHistory(12) "
            "and forceExpiredPasswordChange(60)",
        ),
    ],
)
def test_presets_compile(name: str, expected: str) -> None:
    assert compile_password_policy(load_presets()[name]) == expected


def test_presets_are_exactly_these() -> None:
    assert sorted(load_presets()) == ["admin", "baseline", "strict"]


def test_a_misspelt_policy_field_is_a_positioned_diagnostic() -> None:
    document = parse_document("password_policy:\n  min_length: 12\n  uppercse: 1\n", "realm.yaml")
    with pytest.raises(ValidationError) as caught:
        PasswordPolicySpec.model_validate(document.data["password_policy"])
    found = diagnostics_from_validation_error(caught.value, document, ("password_policy",), PasswordPolicySpec)
    assert [d.format() for d in found] == [
        "realm.yaml:3:3: unknown field 'uppercse'\n  hint: did you mean 'uppercase'?"
    ]


@pytest.mark.parametrize(
    ("presets_file", "expected"),
    [
        ("presets:\n  - strict\n", "password.yaml:2:3: presets is a mapping of preset names to settings"),
        ("preset:\n  strict: {min_length: 12}\n", "password.yaml:1:1: unknown key 'preset' in password.yaml"),
        ("- strict\n", "password.yaml:1:1: password.yaml is a mapping with presets:"),
    ],
)
def test_a_presets_file_of_the_wrong_shape_is_an_error_at_its_place(
    tmp_path: Path, presets_file: str, expected: str
) -> None:
    """Not a crash, and not only the realm's misleading 'unknown preset ... none defined'."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "password.yaml").write_text(presets_file)
    diagnostics = Diagnostics()
    load_presets_of(tmp_path / "policies", {}, diagnostics)
    assert [d.format().split("\n")[0].rsplit("/", 1)[-1] for d in diagnostics] == [expected]
