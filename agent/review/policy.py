"""Review policy: `policies/review.yaml` (privileged roles, dormancy, training, orphans, owners and the fallback
reviewer) and `policies/sod.yaml` (sets of roles and groups that must not meet). Loaded strictly: every
problem in both files as file:line:col before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import pydantic
from pydantic import Field, model_validator

from agent.config.diagnostics import Diagnostic, Diagnostics, diagnostics_from_validation_error
from agent.config.source import Document, load_document
from agent.config.values import Duration, NonEmpty, Spec
from agent.review.model import RoleRef, Severity
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE

REVIEW_POLICY_FILE = Path("policies") / "review.yaml"
SOD_POLICY_FILE = Path("policies") / "sod.yaml"
DAY_SECONDS = 86_400
GroupPath = Annotated[str, Field(pattern=r"^/.+")]


class PrivilegedSpec(Spec):
    """What makes an account privileged. Every role of the realm-management client always counts too."""

    realm_roles: tuple[NonEmpty, ...] = Field(default=("admin",), description="privileged realm roles")
    client_roles: dict[NonEmpty, tuple[NonEmpty, ...]] = Field(
        default_factory=dict, description="clientId -> privileged roles of that client"
    )
    groups: tuple[GroupPath, ...] = Field(default=(), description="members of these groups (or sub-groups)")

    def role_refs(self) -> frozenset[RoleRef]:
        refs = {RoleRef(name) for name in self.realm_roles}
        refs.update(RoleRef(name, client) for client, names in self.client_roles.items() for name in names)
        return frozenset(refs)


class DormantSpec(Spec):
    after: Duration = Field(default=90 * DAY_SECONDS, description="no login for this long: dormant")
    never_logged_in_after: Duration = Field(
        default=30 * DAY_SECONDS, description="created this long ago and never logged in"
    )


class TrainingSpec(Spec):
    """Training recorded as a date (YYYY-MM-DD or ISO time) in a user attribute fed by the source."""

    attribute: NonEmpty = "training_date"
    max_age: Duration = 365 * DAY_SECONDS
    only_privileged: bool = Field(default=False, description="check privileged accounts only")


class LeaverSpec(Spec):
    """A leaver is a user whose `attribute` has one of `values` (e.g. employment_status: [leaver])."""

    attribute: NonEmpty
    values: tuple[NonEmpty, ...] = Field(min_length=1)


class OrphansSpec(Spec):
    external_id_attribute: NonEmpty = EXTERNAL_ID_ATTRIBUTE
    leaver: LeaverSpec | None = None


class DirectGrantsSpec(Spec):
    """Roles that may be mapped on a user directly; `default-roles-<realm>` always may."""

    allowed_roles: tuple[NonEmpty, ...] = ("offline_access", "uma_authorization")


class AppealsSpec(Spec):
    """Deadlines for overdue appeals (the sanctions policy holds the same two; this is the review's copy)."""

    acknowledge_within: Duration = 2 * DAY_SECONDS
    decide_within: Duration = 15 * DAY_SECONDS


class OwnersSpec(Spec):
    """Who reviews an entitlement when the user has no manager: role label or group path -> username."""

    roles: dict[NonEmpty, NonEmpty] = Field(default_factory=dict, description="role (clientId/name) -> reviewer")
    groups: dict[GroupPath, NonEmpty] = Field(default_factory=dict, description="group path -> reviewer")


class SodRule(Spec):
    """A set of roles and groups of which a user may effectively hold at most `max_held`."""

    name: NonEmpty
    severity: Severity = "high"
    explanation: str = ""
    realm_roles: tuple[NonEmpty, ...] = ()
    client_roles: dict[NonEmpty, tuple[NonEmpty, ...]] = Field(default_factory=dict)
    groups: tuple[GroupPath, ...] = ()
    max_held: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _big_enough(self) -> SodRule:
        size = len(self.role_refs()) + len(set(self.groups))
        if size <= self.max_held:
            raise ValueError(f"rule '{self.name}' lists {size} entitlement(s); it needs more than max_held")
        return self

    def role_refs(self) -> frozenset[RoleRef]:
        refs = {RoleRef(name) for name in self.realm_roles}
        refs.update(RoleRef(name, client) for client, names in self.client_roles.items() for name in names)
        return frozenset(refs)


class SodPolicy(Spec):
    rules: tuple[SodRule, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> SodPolicy:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        return self


class ReviewPolicy(Spec):
    privileged: PrivilegedSpec = PrivilegedSpec()
    dormant: DormantSpec = DormantSpec()
    training: TrainingSpec | None = Field(default=None, description="absent: no training finding")
    orphans: OrphansSpec = OrphansSpec()
    direct_grants: DirectGrantsSpec = DirectGrantsSpec()
    appeals: AppealsSpec = AppealsSpec()
    exempt_usernames: tuple[NonEmpty, ...] = Field(
        default=(), description="break-glass accounts: no dormancy, orphan or training findings"
    )
    manager_attribute: NonEmpty = Field(default="manager", description="user attribute naming the manager")
    owners: OwnersSpec = OwnersSpec()
    fallback_reviewer: NonEmpty | None = Field(default=None, description="reviewer when no manager or owner")
    sod: SodPolicy = Field(default_factory=SodPolicy, exclude=True)  # from sod.yaml beside review.yaml

    def owner_of(self, kind: str, name: str) -> str | None:
        """The configured owner of a role (label) or group (path; the nearest configured ancestor counts)."""
        if kind == "role":
            return self.owners.roles.get(name)
        path = name
        while path:
            if path in self.owners.groups:
                return self.owners.groups[path]
            path = path.rpartition("/")[0]
        return None


def load_review_policy(path: Path, env: Mapping[str, str], *, sod_path: Path | None = None) -> ReviewPolicy:
    """review.yaml at `path` (defaults when absent) with the SoD rules of `sod_path` (default: sod.yaml beside
    it; none when absent). Raises ConfigErrors with every problem of both files."""
    diagnostics = Diagnostics()
    policy = ReviewPolicy()
    if path.is_file():
        document = load_document(path, env=env, base_dir=path.parent)
        loaded = _validate(ReviewPolicy, document, diagnostics)
        policy = loaded if isinstance(loaded, ReviewPolicy) else policy
    sod_file = sod_path if sod_path is not None else path.parent / SOD_POLICY_FILE.name
    sod = load_sod_policy(sod_file, env, diagnostics) if sod_file.is_file() else SodPolicy()
    if sod_path is not None and not sod_path.is_file():
        diagnostics.add(Diagnostic(str(sod_path), 1, 1, "no SoD policy file", "create it or leave --sod out"))
    diagnostics.raise_if_any()
    return policy.model_copy(update={"sod": sod})


def load_sod_policy(path: Path, env: Mapping[str, str], diagnostics: Diagnostics | None = None) -> SodPolicy:
    """The SoD rules of `path`; problems go to `diagnostics` when given (else raised at once)."""
    collected = diagnostics if diagnostics is not None else Diagnostics()
    document = load_document(path, env=env, base_dir=path.parent)
    loaded = _validate(SodPolicy, document, collected)
    if diagnostics is None:
        collected.raise_if_any()
    return loaded if isinstance(loaded, SodPolicy) else SodPolicy()


def _validate(model: type[Spec], document: Document, diagnostics: Diagnostics) -> Spec | None:
    try:
        return model.model_validate(document.data or {})
    except pydantic.ValidationError as error:
        diagnostics.extend(diagnostics_from_validation_error(error, document, model=model))
        return None


def missing_entitlements(rule: SodRule, known_roles: frozenset[RoleRef], known_groups: frozenset[str]) -> list[str]:
    """The roles (labels) and groups a rule names that the realm lacks (a typo would silently never match)."""
    return sorted(ref.label for ref in rule.role_refs() - known_roles) + sorted(set(rule.groups) - known_groups)


def sod_errors(policy: SodPolicy, known_roles: frozenset[RoleRef], known_groups: frozenset[str]) -> list[str]:
    """One message per rule naming roles or groups the realm lacks."""
    return [
        f"SoD rule '{rule.name}' names what the realm lacks: {', '.join(missing)}"
        for rule in policy.rules
        if (missing := missing_entitlements(rule, known_roles, known_groups))
    ]
