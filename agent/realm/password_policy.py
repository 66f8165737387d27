"""A realm's password policy as readable fields, and Keycloak's policy string (`length(12) and ...`) both ways.

Keycloak keeps the policy as one string of terms joined by " and " and stores it exactly as sent
(`org.keycloak.models.PasswordPolicy.parse`), so a fixed term order makes a round trip compare equal.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

TERM_SEPARATOR = " and "
# What the admin console sends for policies without a value (JavaScript's undefined, stringified);
# Keycloak ignores it but stores it, so we write the same to compare equal after a round trip.
FLAG_ARGUMENT = "undefined"
_POLICY_ID = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_HASH_ALGORITHM = r"^[A-Za-z0-9_.-]+$"
# Keycloak evaluates only one regexPattern term: https://github.com/keycloak/keycloak/issues/19713
MAX_REGEX_PATTERNS = 1


def _check_argument(value: str) -> str:
    """A value Keycloak can read back inside `id(...)` without splitting the policy string."""
    if not value.strip():
        raise ValueError("must not be empty")
    if TERM_SEPARATOR in value:
        raise ValueError(f"must not contain '{TERM_SEPARATOR}': Keycloak splits the policy string there")
    return value


def _check_blocklist(value: str) -> str:
    if "/" in value:
        raise ValueError("is a file name in Keycloak's password-blacklists folder, without '/'")
    return _check_argument(value)


def _check_other_term(value: str) -> str:
    policy_id, _argument = _split_term(_check_argument(value).strip())
    if policy_id in _TERMS_BY_ID:
        field = _TERMS_BY_ID[policy_id].field
        raise ValueError(f"'{policy_id}' has its own field: write `{field}` instead")
    return value.strip()


Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, ge=1)]
Flag = Annotated[bool, Field(strict=True)]
Argument = Annotated[str, AfterValidator(_check_argument)]


class PasswordPolicySpec(BaseModel):
    """A password policy; a field left out (or false) is not part of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_length: Positive | None = None
    max_length: Positive | None = None
    uppercase: Count | None = None
    lowercase: Count | None = None
    digits: Count | None = None
    special_chars: Count | None = None
    not_username: Flag = False
    not_email: Flag = False
    history: Count | None = Field(default=None, description="how many previous passwords may not be reused")
    expire_days: Positive | None = Field(default=None, description="days until a password must be changed")
    blocklist: Annotated[str, AfterValidator(_check_blocklist)] | None = Field(
        default=None, description="a file in Keycloak's password-blacklists folder"
    )
    regex: tuple[Argument, ...] = Field(default=(), description="Java regular expressions a password must match")
    hash_iterations: Positive | None = None
    hash_algorithm: Annotated[str, Field(pattern=_HASH_ALGORITHM)] | None = None
    not_recently_used_days: Positive | None = Field(
        default=None, description="a password used within this many days may not be reused"
    )
    max_auth_age_seconds: Count | None = Field(
        default=None, description="how recent a login must be to change the password without logging in again"
    )
    other: tuple[Annotated[str, AfterValidator(_check_other_term)], ...] = Field(
        default=(), description="raw Keycloak terms this model has no field for, e.g. from a custom provider"
    )

    @field_validator("regex")
    @classmethod
    def _one_regex(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        if len(patterns) > MAX_REGEX_PATTERNS:
            raise ValueError(
                "Keycloak enforces only one regex pattern (keycloak/keycloak#19713); "
                "combine them into one, e.g. with lookaheads (?=.*[A-Z])(?=.*[0-9]).*"
            )
        return patterns

    @field_validator("other")
    @classmethod
    def _other_once(cls, terms: tuple[str, ...]) -> tuple[str, ...]:
        ids = Counter(_split_term(term)[0] for term in terms)
        repeated = sorted(policy_id for policy_id, count in ids.items() if count > 1)
        if repeated:
            raise ValueError(f"'{repeated[0]}' is written more than once; Keycloak keeps only the last")
        return terms

    @model_validator(mode="after")
    def _satisfiable(self) -> PasswordPolicySpec:
        if self.max_length is None:
            return self
        if self.min_length is not None and self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) is larger than max_length ({self.max_length})")
        required = sum(count or 0 for count in (self.uppercase, self.lowercase, self.digits, self.special_chars))
        if required > self.max_length:
            raise ValueError(
                f"uppercase + lowercase + digits + special_chars ({required}) is more than max_length "
                f"({self.max_length}): no password could satisfy it"
            )
        return self


@dataclass(frozen=True)
class _Term:
    field: str
    policy_id: str
    kind: Literal["int", "flag", "text", "texts"]


# The canonical order of compiled terms; `other` terms follow, as written.
_TERMS = (
    _Term("min_length", "length", "int"),
    _Term("max_length", "maxLength", "int"),
    _Term("uppercase", "upperCase", "int"),
    _Term("lowercase", "lowerCase", "int"),
    _Term("digits", "digits", "int"),
    _Term("special_chars", "specialChars", "int"),
    _Term("not_username", "notUsername", "flag"),
    _Term("not_email", "notEmail", "flag"),
    _Term("history", "passwordHistory", "int"),
    _Term("expire_days", "forceExpiredPasswordChange", "int"),
    _Term("blocklist", "passwordBlacklist", "text"),
    _Term("regex", "regexPattern", "texts"),
    _Term("hash_iterations", "hashIterations", "int"),
    _Term("hash_algorithm", "hashAlgorithm", "text"),
    _Term("not_recently_used_days", "passwordAge", "int"),
    _Term("max_auth_age_seconds", "maxAuthAge", "int"),
)
_TERMS_BY_ID = {term.policy_id: term for term in _TERMS}


def compile_password_policy(spec: PasswordPolicySpec) -> str:
    """Keycloak's policy string for `spec`, terms in a fixed order; "" for an empty policy."""
    terms: list[str] = []
    for term in _TERMS:
        terms.extend(_render(term, getattr(spec, term.field)))
    terms.extend(spec.other)
    return TERM_SEPARATOR.join(terms)


def _render(term: _Term, value: Any) -> list[str]:
    if value is None or value is False:
        return []
    if term.kind == "flag":
        return [f"{term.policy_id}({FLAG_ARGUMENT})"]
    if term.kind == "texts":
        return [f"{term.policy_id}({item})" for item in value]
    return [f"{term.policy_id}({value})"]


def parse_password_policy(text: str) -> PasswordPolicySpec:
    """The spec for a policy string read from Keycloak; unknown policy ids are kept in `other`.

    Raises ValueError for what Keycloak's console never writes and this model cannot hold: a term
    without its value (`length`), a value that is not a number, or the same policy twice.
    """
    values: dict[str, Any] = {}
    other: list[str] = []
    for raw in _split_terms(text):
        policy_id, argument = _split_term(raw)
        term = _TERMS_BY_ID.get(policy_id)
        if term is None:
            other.append(raw)
        elif term.field in values:
            raise ValueError(f"policy '{policy_id}' appears more than once; Keycloak keeps only the last")
        else:
            values[term.field] = _read_argument(term, argument)
    return PasswordPolicySpec(**values, other=tuple(other))


def _split_terms(text: str) -> list[str]:
    # Split like Keycloak does: on " and " exactly, each term trimmed.
    if not text.strip():
        return []
    terms = [raw.strip() for raw in text.split(TERM_SEPARATOR)]
    if "" in terms:
        raise ValueError(f"empty term in password policy '{text}'")
    return terms


def _split_term(raw: str) -> tuple[str, str | None]:
    """`id(value)` -> (id, value); a bare `id` -> (id, None)."""
    opening = raw.find("(")
    if opening == -1:
        policy_id, argument = raw, None
    elif raw.endswith(")"):
        policy_id, argument = raw[:opening].strip(), raw[opening + 1 : -1]
    else:
        raise ValueError(f"password policy term '{raw}' does not end with ')'")
    if not _POLICY_ID.fullmatch(policy_id):
        raise ValueError(f"password policy term '{raw}' does not start with a policy id")
    return policy_id, argument


def _read_argument(term: _Term, argument: str | None) -> Any:
    if term.kind == "flag":
        return True  # Keycloak ignores the value of a flag policy
    if argument is None:
        raise ValueError(f"policy '{term.policy_id}' has no value; write {term.policy_id}(...)")
    if term.kind == "text":
        return argument
    if term.kind == "texts":
        return (argument,)
    try:
        return int(argument.strip())
    except ValueError:
        raise ValueError(f"policy '{term.policy_id}' needs a whole number, not '{argument}'") from None


def policies_equal(a: str, b: str) -> bool:
    """Whether two Keycloak policy strings say the same, ignoring term order and spacing.

    A flag written bare (`notUsername`) equals one with a value (`notUsername(undefined)`).
    """
    return _normal_terms(a) == _normal_terms(b)


def _normal_terms(text: str) -> Counter[tuple[str, str | None]]:
    terms: Counter[tuple[str, str | None]] = Counter()
    for raw in (part.strip() for part in text.split(TERM_SEPARATOR)):
        if raw:
            terms[_normal_term(raw)] += 1
    return terms


def _normal_term(raw: str) -> tuple[str, str | None]:
    try:
        policy_id, argument = _split_term(raw)
    except ValueError:
        return raw, None  # compared as written
    term = _TERMS_BY_ID.get(policy_id)
    if term is not None and term.kind == "flag":
        return policy_id, None
    if term is not None and term.kind == "int" and argument is not None and argument.strip().isdigit():
        return policy_id, str(int(argument))
    return policy_id, argument
