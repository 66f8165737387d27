"""The sanction ladder (`policies/sanctions.yaml`): levels and their actions, reasons, escalation, appeal
deadlines and the deny-list. Loaded strictly: every problem as file:line:col before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pydantic
from pydantic import Field, field_validator

from agent.config.diagnostics import ConfigErrors, Diagnostic, diagnostics_from_validation_error
from agent.config.source import ConfigPath, Document, load_document
from agent.config.values import Duration, NonEmpty, Spec
from agent.store.sanctions import ClientRoleRef

# Keycloak's client holding the realm's administration roles.
REALM_MANAGEMENT = "realm-management"

DEFAULT_POLICY_FILE = Path("policies") / "sanctions.yaml"


class ActionsSpec(Spec):
    """What a level does to the account; every field left out does nothing. Lifting undoes exactly what was done."""

    record: bool = Field(default=True, description="keep the sanction in the ledger (always true in practice)")
    notify: NonEmpty | None = Field(default=None, description="the notice template to e-mail (none: no mail)")
    set_attributes: bool = Field(default=False, description="write the level, end and restrictions attributes")
    restrictions: tuple[NonEmpty, ...] = Field(default=(), description="features switched off, in `restrictions`")
    remove_roles: tuple[NonEmpty, ...] = Field(default=(), description="realm roles taken away")
    remove_client_roles: dict[NonEmpty, tuple[NonEmpty, ...]] = Field(
        default_factory=dict, description="client roles taken away, as in realm-config: {client_id: [role, ...]}"
    )
    remove_groups: tuple[NonEmpty, ...] = Field(default=(), description="group paths the user is taken out of")
    add_groups: tuple[NonEmpty, ...] = Field(default=(), description="group paths the user is put in")
    required_actions: tuple[NonEmpty, ...] = Field(default=(), description="required actions added")
    disable: bool = False
    logout: bool = Field(default=False, description="end every browser session")
    revoke_consents: bool = Field(default=False, description="revoke consents and offline sessions (offline tokens)")

    @field_validator("remove_groups", "add_groups")
    @classmethod
    def _group_paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"'{path}' is not a group path: write it from the top, e.g. /{path}")
        return paths

    @property
    def client_role_refs(self) -> tuple[ClientRoleRef, ...]:
        """`remove_client_roles` as (clientId, role) pairs, in policy order."""
        return tuple(
            ClientRoleRef(client_id, role) for client_id, roles in self.remove_client_roles.items() for role in roles
        )

    @property
    def holds_access(self) -> bool:
        """Whether the level changes what the account can do (not just records, notifies or labels it)."""
        return bool(
            self.remove_roles or self.remove_client_roles or self.remove_groups or self.add_groups
            or self.required_actions or self.disable or self.logout or self.revoke_consents
        )  # fmt: skip


class LevelSpec(Spec):
    name: NonEmpty
    description: str = ""
    duration: Duration | None = Field(default=None, description="default length (none: until lifted)")
    actions: ActionsSpec = ActionsSpec()

    @property
    def default_duration(self) -> timedelta | None:
        return None if self.duration is None else timedelta(seconds=self.duration)


class ReasonSpec(Spec):
    code: NonEmpty
    description: str = ""


class EscalationSpec(Spec):
    """`count` sanctions at `level` issued within `within` raise the next one at that level to `raise_to`."""

    level: NonEmpty
    count: int = Field(ge=1)
    within: Duration
    raise_to: NonEmpty


class AppealsSpec(Spec):
    acknowledge_within_seconds: Duration = Field(alias="acknowledge_within")
    decide_within_seconds: Duration = Field(alias="decide_within")

    @property
    def acknowledge_within(self) -> timedelta:
        return timedelta(seconds=self.acknowledge_within_seconds)

    @property
    def decide_within(self) -> timedelta:
        return timedelta(seconds=self.decide_within_seconds)


class AttributeNames(Spec):
    """The user attributes a level with `set_attributes` writes (a protocol mapper puts them in tokens)."""

    level: NonEmpty = "sanction_level"
    until: NonEmpty = "sanction_until"
    restrictions: NonEmpty = "restrictions"

    def all(self) -> tuple[str, str, str]:
        return (self.level, self.until, self.restrictions)


class DenySpec(Spec):
    """Accounts never sanctioned. Holders of realm-management roles and service accounts always are."""

    usernames: tuple[NonEmpty, ...] = Field(default=(), description="break-glass accounts")


class SanctionPolicy(Spec):
    levels: tuple[LevelSpec, ...] = Field(min_length=1, description="mildest first")
    reasons: tuple[ReasonSpec, ...] = Field(min_length=1)
    escalation: tuple[EscalationSpec, ...] = ()
    appeals: AppealsSpec
    attributes: AttributeNames = AttributeNames()
    deny: DenySpec = DenySpec()

    def level(self, name: str) -> LevelSpec:
        for level in self.levels:
            if level.name == name:
                return level
        raise KeyError(name)

    def rank(self, name: str) -> int:
        """0 for the mildest level; harsher levels rank higher."""
        return [level.name for level in self.levels].index(name)

    def has_level(self, name: str) -> bool:
        return any(level.name == name for level in self.levels)

    def has_reason(self, code: str) -> bool:
        return any(reason.code == code for reason in self.reasons)

    def is_break_glass(self, username: str) -> bool:
        return username.lower() in {name.lower() for name in self.deny.usernames}


def load_sanction_policy(path: Path, env: Mapping[str, str]) -> SanctionPolicy:
    """The policy at `path`, validated; raises ConfigErrors with every problem."""
    if not path.is_file():
        hint = "create it (see policies/sanctions.yaml in the repository) or pass --policy"
        raise ConfigErrors([Diagnostic(str(path), 1, 1, "no sanction policy file", hint)])
    document = load_document(path, env=env, base_dir=path.parent)
    try:
        policy = SanctionPolicy.model_validate(document.data or {})
    except pydantic.ValidationError as error:
        raise ConfigErrors(diagnostics_from_validation_error(error, document, model=SanctionPolicy)) from None
    problems = reference_problems(policy)
    if problems:
        raise ConfigErrors(_positioned(document, problems))
    return policy


def reference_problems(policy: SanctionPolicy) -> list[tuple[ConfigPath, str]]:
    """Names that must be unique or must refer to a level: (where in the document, message) pairs."""
    problems: list[tuple[ConfigPath, str]] = []
    names = [level.name for level in policy.levels]
    for index, name in enumerate(names):
        if name in names[:index]:
            problems.append((("levels", index, "name"), f"level '{name}' is defined twice"))
    codes = [reason.code for reason in policy.reasons]
    for index, code in enumerate(codes):
        if code in codes[:index]:
            problems.append((("reasons", index, "code"), f"reason '{code}' is defined twice"))
    for index, level in enumerate(policy.levels):
        for client_id, roles in level.actions.remove_client_roles.items():
            where = ("levels", index, "actions", "remove_client_roles", client_id)
            problems += [(where, message) for message in _client_role_problems(client_id, roles)]
    for index, rule in enumerate(policy.escalation):
        for key, name in (("level", rule.level), ("raise_to", rule.raise_to)):
            if name not in names:
                problems.append((("escalation", index, key), f"unknown level '{name}' (levels: {', '.join(names)})"))
        if rule.level in names and rule.raise_to in names and names.index(rule.raise_to) <= names.index(rule.level):
            message = f"escalation from '{rule.level}' must raise to a harsher level, not '{rule.raise_to}'"
            problems.append((("escalation", index, "raise_to"), message))
    return problems


def _client_role_problems(client_id: str, roles: tuple[str, ...]) -> list[str]:
    if client_id == REALM_MANAGEMENT:
        # Holders of realm-management roles are never sanctioned (see DenySpec): listing them would do nothing.
        return [f"'{REALM_MANAGEMENT}' roles cannot be removed: administrators are handled by hand"]
    if not roles:
        return [f"client '{client_id}' lists no roles: write [role, ...] or leave the client out"]
    repeated = sorted({role for role in roles if roles.count(role) > 1})
    return [f"client '{client_id}' lists role '{role}' twice" for role in repeated]


def _positioned(document: Document, problems: list[tuple[ConfigPath, str]]) -> list[Diagnostic]:
    diagnostics = []
    for where, message in problems:
        position = document.position_of(where)
        diagnostics.append(Diagnostic(document.name, position.line, position.col, message))
    return diagnostics
