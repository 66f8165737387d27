"""The mapper file's models (`mappers/<name>.yaml`): how source records become desired users. Reading a file
and the checks across its parts are in agent/sync/mapper_file.py. See mappers/workforce.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from agent.config.values import Duration, GroupPath, NonEmpty, Spec
from agent.sync.transforms import (
    ISO,
    TransformName,
    check_date_format,
    is_date_only_format,
    parse_date,
    template_fields,
)

# Canonical fields the mapping itself understands; any other name is free (an attribute, a rule input).
CORE_FIELDS: Mapping[str, str] = {
    "username": "the account name; required (lower-cased, as Keycloak stores it)",
    "email": "the email address (lower-cased, as Keycloak stores it)",
    "first_name": "the first name",
    "last_name": "the last name",
    "status": "active or inactive (map the source's own words onto these two)",
    "start_date": "the first day of work (a date field)",
    "end_date": "the termination date (a date field; usually with end_of_day: true)",
    "timezone": "the worker's IANA time zone; dates without an offset are read in it (UTC when absent)",
    "groups": "the source's group names, for rules (multi-valued)",
}
DATE_FIELDS = frozenset({"start_date", "end_date"})
MULTI_VALUED_FIELDS = frozenset({"groups"})
STATUS_VALUES = ("active", "inactive")
# Keycloak's own user profile names: copying a field under one of these would fight the user's real field.
RESERVED_ATTRIBUTES = frozenset({"username", "email", "firstName", "lastName"})

FieldName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="a canonical field name, usable in {templates}"),
]
Arity = Literal["one", "first", "all"]


def _as_tuple(value: object) -> object:
    return (value,) if isinstance(value, str) else value


class FieldSpec(Spec):
    """How one canonical field is made from one source's record, in this order:

    1. the value: `from` (the source's own field: a CSV header, a JSON key, an LDAP attribute) or
       `template` ('{first_name}.{last_name}': the same source's non-template fields after their own
       steps; when a field it names has no value, the template gives no value);
    2. `split`: a separator that cuts a string into several values ('a;b' -> a, b);
    3. `transform`: names applied in order to each value: strip, lower, upper, title, ascii (accents
       dropped: José -> Jose), collapse_spaces, remove_spaces, first_rdn (cn=admins,ou=... -> admins);
       values blank afterwards are dropped;
    4. `map`: source value -> canonical value; a value not in it rejects the record, unless
       `unmapped: keep` keeps it unchanged;
    5. `default`: the canonical value when nothing is left (it counts as a value when sources merge);
    6. `values`: `one` (several different values reject the record), `first` (the first as the source
       ordered them) or `all` (every value; the default for `groups`, allowed for fields not built in);
    7. `date`: strptime format(s) tried in order, or `iso`. A date without a time means the start of that
       day in the worker's time zone, or with `end_of_day: true` its end (the next midnight there); a
       value with a UTC offset keeps its own instant.
    """

    from_: NonEmpty | None = Field(default=None, alias="from")
    template: NonEmpty | None = None
    split: NonEmpty | None = None
    transform: tuple[TransformName, ...] = ()
    map: dict[str, str] | None = None
    unmapped: Literal["reject", "keep"] = "reject"
    default: NonEmpty | None = None
    values: Arity | None = None
    date: Annotated[tuple[NonEmpty, ...] | None, BeforeValidator(_as_tuple)] = None
    end_of_day: bool = False

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            template_fields(value)  # raises ValueError with the reason
        return value

    @field_validator("date")
    @classmethod
    def _formats(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for fmt in value or ():
            check_date_format(fmt)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if (self.from_ is None) == (self.template is None):
            raise ValueError("write exactly one of `from` (a field of the source record) and `template`")
        if self.end_of_day and not self.date:
            raise ValueError("end_of_day applies to dates: add `date: <format>`")
        if self.date and self.default is not None:
            raise ValueError("a date field has no default: leave the date empty instead")
        if self.date and self.values == "all":
            raise ValueError("a date field holds one date: use `values: one` or `values: first`")
        if self.end_of_day and any(fmt != ISO and not is_date_only_format(fmt) for fmt in self.date or ()):
            raise ValueError("end_of_day needs date formats without a time of day")
        return self

    def arity(self, name: str) -> Arity:
        """How many values the field keeps (`values`, or its default for that field name)."""
        return self.values or ("all" if name in MULTI_VALUED_FIELDS else "one")


class SourceSpec(Spec):
    """One source's say in the merge of records that share an id.

    `priority`: higher wins when two sources both give a field; each source has its own.
    `fields`: the canonical fields this source decides. A field the source maps under `fields:` without
    deciding it is a fallback, used only when no deciding source has a value (e.g. a username made from
    HR names for someone not in LDAP yet).
    `creates_users`: whether a person this source lists becomes a user; by default only the
    highest-priority source creates users, so an LDAP entry without an HR record is left out.
    """

    priority: int
    fields: tuple[FieldName, ...] = ()
    creates_users: bool | None = None


DATE_OPERATORS = ("before", "after", "older_than", "newer_than")
OPERATORS = ("exists", "equals", "not_equals", "in", "not_in", "contains", "matches", *DATE_OPERATORS)


class ConditionSpec(Spec):
    """A test on one canonical field; every operator written must hold. A plain value means `equals`, a
    list means `in`. On a multi-valued field (groups) a test holds when any value passes it (`not_equals`
    and `not_in`: when no value is the one named). A field without a value passes only `not_equals`,
    `not_in` and `exists: false`.

    `equals`, `not_equals`, `in`, `not_in`: exact text; `matches`: a regular expression matching the
    whole value; `contains`: one of the values is this; `exists`: the field has a value (true) or not;
    `before`, `after`: a date field is before/after an ISO date (a date alone is midnight in the worker's
    zone); `older_than`, `newer_than`: a date field lies more/less than a duration (365d) before now.
    """

    equals: str | None = None
    not_equals: str | None = None
    in_: tuple[str, ...] | None = Field(default=None, alias="in")
    not_in: tuple[str, ...] | None = None
    matches: str | None = None
    contains: str | None = None
    exists: bool | None = None
    before: str | None = None
    after: str | None = None
    older_than: Duration | None = None
    newer_than: Duration | None = None

    @field_validator("before", "after")
    @classmethod
    def _date_operand(cls, value: str | None) -> str | None:
        if value is not None and parse_date(value, (ISO,)) is None:
            raise ValueError(f"'{value}' is not an ISO date such as 2026-01-31 or 2026-01-31T17:00:00+01:00")
        return value

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from None
        return value

    @model_validator(mode="after")
    def _some_operator(self) -> ConditionSpec:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError(f"write at least one operator: {', '.join(OPERATORS)}")
        return self

    @property
    def uses_dates(self) -> bool:
        return any(getattr(self, name) is not None for name in DATE_OPERATORS)


def _condition_shorthand(value: object) -> object:
    """`department: Finance` is `{equals: Finance}`; `department: [Finance, HR]` is `{in: [...]}`."""
    if isinstance(value, str):
        return {"equals": value}
    if isinstance(value, int) and not isinstance(value, bool):
        # Written as read: the loader refuses the forms YAML changes (0100, 12:30, 1_000), so 4711 is "4711".
        return {"equals": str(value)}
    if isinstance(value, bool | float | date):
        raise ValueError(_unquoted_value_message(value))
    if isinstance(value, list):
        return {"in": value}
    return value


def _unquoted_value_message(value: bool | float | date) -> str:
    """Why an unquoted scalar is refused: YAML may have changed it (1.10 -> 1.1, yes -> true, a date), so str()
    of it could be text the source never holds and the rule would never match."""
    kind = "a boolean" if isinstance(value, bool) else "a date" if isinstance(value, date) else "a number"
    read = str(value).lower() if isinstance(value, bool) else str(value)
    return f"YAML reads this value as {kind} ({read}), not text, so the rule could never match; quote it as written"


Condition = Annotated[ConditionSpec, BeforeValidator(_condition_shorthand)]


class GrantSpec(Spec):
    """What a rule gives: group paths, realm roles, client roles (`{client_id: [role, ...]}`)."""

    groups: tuple[GroupPath, ...] = ()
    realm_roles: tuple[NonEmpty, ...] = ()
    client_roles: dict[NonEmpty, tuple[NonEmpty, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> GrantSpec:
        if not (self.groups or self.realm_roles or any(self.client_roles.values())):
            raise ValueError("a grant gives at least one of groups, realm_roles, client_roles")
        return self


class RuleSpec(Spec):
    """Grants from attributes: when every test under `when` holds (no `when`: always), `grant` applies.
    Rules are evaluated in order and every rule that matches applies. `name` names the rule in traces
    (`sync explain`); `description` is for readers of the file."""

    name: NonEmpty
    description: str = ""
    when: dict[FieldName, Condition] = Field(default_factory=dict)
    grant: GrantSpec


class MapperSpec(Spec):
    """One sync's mapper file.

    `name`: the sync's name, stored on its users as idp-agent.source (two syncs never fight over a user).
    `realm`: the Keycloak realm it feeds.
    `id`: the canonical field that is the immutable id: the join key across sources and the user's
    idp-agent.external-id (never a username or email, which change).
    `sources`: per source name (as configured in idp-agent.yaml), its priority and the fields it decides.
    `fields`: per source, canonical field name -> how it is made from that source's record.
    `attributes`: canonical fields copied to Keycloak user attributes of the same name.
    `lookahead`: a future hire becomes a user from `start_date - lookahead` (created ahead, kept disabled
    until the start instant); 0 means on the start date.
    `rules`: grants from attributes, evaluated in order; every matching rule applies.
    `required_actions`: for joiners (e.g. VERIFY_EMAIL, UPDATE_PASSWORD, TERMS_AND_CONDITIONS);
    CONFIGURE_TOTP is added for whoever is granted a role in `mfa_roles` or a group in `mfa_groups`
    (or one of its subgroups).
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    realm: NonEmpty
    id: FieldName
    sources: dict[NonEmpty, SourceSpec] = Field(min_length=1)
    fields: dict[NonEmpty, dict[FieldName, FieldSpec]]
    attributes: tuple[FieldName, ...] = ()
    lookahead: Duration = 0
    rules: tuple[RuleSpec, ...] = ()
    required_actions: tuple[NonEmpty, ...] = ()
    mfa_roles: tuple[NonEmpty, ...] = ()
    mfa_groups: tuple[GroupPath, ...] = ()

    def creates_users(self, source: str) -> bool:
        """Whether a person this source lists becomes a user (default: the highest-priority source only)."""
        explicit = self.sources[source].creates_users
        if explicit is not None:
            return explicit
        return self.sources[source].priority == max(spec.priority for spec in self.sources.values())

    def merge_order(self, name: str) -> tuple[str, ...]:
        """The sources that give field `name`, first choice first: those that decide it by priority, then
        those that map it as a fallback, by priority."""
        mapping = [source for source in self.fields if name in self.fields[source] and source in self.sources]
        by_priority = sorted(mapping, key=lambda source: -self.sources[source].priority)
        deciding = [source for source in by_priority if name in self.sources[source].fields]
        return (*deciding, *(source for source in by_priority if source not in deciding))

    @property
    def canonical_fields(self) -> frozenset[str]:
        return frozenset(name for fields in self.fields.values() for name in fields)

    def is_date_field(self, name: str) -> bool:
        return any(fields[name].date for fields in self.fields.values() if name in fields)

    def is_end_of_day(self, name: str) -> bool:
        return any(fields[name].end_of_day for fields in self.fields.values() if name in fields)
