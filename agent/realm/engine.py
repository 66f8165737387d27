"""Plan and apply one realm: kinds run in a fixed order that is data, references pointing forward later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway
from agent.realm.kinds.base import Kind
from agent.realm.kinds.defaults import DefaultGroups, DefaultRoles
from agent.realm.kinds.groups import GroupGrants, Groups
from agent.realm.kinds.realm_settings import RealmSettings
from agent.realm.kinds.roles import RealmRoles, RoleComposites
from agent.realm.live import LiveReader, read_live_realm
from agent.realm.plan import Change, Plan
from agent.realm.spec import RealmSpec

# Dependency order: the realm first; roles before the composites and grants that name them; groups
# before their grants and before default groups.
KINDS: tuple[Kind, ...] = (
    RealmSettings(),
    RealmRoles(),
    RoleComposites(),
    Groups(),
    GroupGrants(),
    DefaultRoles(),
    DefaultGroups(),
)
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}


def plan_realm(gateway: KeycloakGateway, spec: RealmSpec, kinds: tuple[Kind, ...] = KINDS) -> Plan:
    """Read what each kind needs (each read made once) and plan every kind, in order. Makes no writes."""
    live_realm = read_live_realm(gateway, spec.realm)
    reader = LiveReader(gateway, live_realm)
    changes: list[Change] = []
    for kind in kinds:
        changes.extend(kind.plan(spec, live_realm, kind.read(reader)))
    return Plan(spec.realm, tuple(changes), realm_exists=live_realm.exists)


@dataclass
class ApplyResult:
    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def apply_plan(
    gateway: KeycloakGateway,
    plan: Plan,
    *,
    on_applied: Callable[[Change], None] = lambda change: None,
    on_failed: Callable[[Change, str], None] = lambda change, why: None,
) -> ApplyResult:
    """Apply changes in plan order. A change Keycloak rejects is recorded and the rest go on; anything
    else (Keycloak unavailable, auth) stops the run, and the next run converges from the live state."""
    result = ApplyResult()
    for change in plan.changes:
        try:
            KINDS_BY_NAME[change.kind].apply(gateway, plan.realm, change)
        except Rejected as error:
            result.failed.append((change, str(error)))
            on_failed(change, str(error))
            continue
        result.applied.append(change)
        on_applied(change)
    return result
