"""Plan and apply one realm: kinds run in a fixed order that is data, references pointing forward later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway
from agent.realm.kinds.base import Kind
from agent.realm.kinds.client_roles import ClientRoleComposites, ClientRoles, ServiceAccountRoles
from agent.realm.kinds.client_scopes import ClientScopes
from agent.realm.kinds.clients import Clients
from agent.realm.kinds.defaults import DefaultGroups, DefaultRoles
from agent.realm.kinds.flows import Flows
from agent.realm.kinds.groups import GroupGrants, Groups
from agent.realm.kinds.ldap_federation import LdapFederations, LdapMappers
from agent.realm.kinds.mfa_groups import MfaGroups
from agent.realm.kinds.protocol_mappers import ProtocolMappers
from agent.realm.kinds.realm_settings import RealmSettings
from agent.realm.kinds.required_actions import RequiredActions
from agent.realm.kinds.roles import RealmRoles, RoleComposites
from agent.realm.kinds.terms import Terms
from agent.realm.kinds.user_profile import UserProfile
from agent.realm.live import LiveReader, read_live_realm
from agent.realm.plan import Change, Plan
from agent.realm.spec import RealmSpec

# Dependency order: the realm first; client scopes before the clients that link them; clients before
# their mappers and roles; every role before the composites and grants that name it; groups before their
# grants and before default groups; required actions before terms (both touch TERMS_AND_CONDITIONS); the
# MFA flow before its group role (a removed flow is unbound before its role goes); LDAP federations before
# their mappers.
KINDS: tuple[Kind, ...] = (
    RealmSettings(),
    ClientScopes(),
    Clients(),
    ProtocolMappers(),
    RealmRoles(),
    ClientRoles(),
    RoleComposites(),
    ClientRoleComposites(),
    Groups(),
    GroupGrants(),
    ServiceAccountRoles(),
    DefaultRoles(),
    DefaultGroups(),
    RequiredActions(),
    Terms(),
    Flows(),
    MfaGroups(),
    UserProfile(),
    LdapFederations(),
    LdapMappers(),
)
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}


# The spec fields each kind plans from. A kind whose fields are all absent from the spec has nothing to
# manage, so it is neither read nor planned (a realm without `clients:` costs no client reads). Kinds not
# listed (realm settings) always run.
SPEC_FIELDS: dict[str, tuple[str, ...]] = {
    "client scopes": ("client_scopes",),
    "clients": ("clients",),
    "protocol mappers": ("clients", "client_scopes"),
    "realm roles": ("roles",),
    "client roles": ("clients",),
    "role composites": ("roles",),
    "client role composites": ("clients",),
    "groups": ("groups",),
    "group grants": ("groups",),
    "service account roles": ("clients",),
    "default roles": ("default_roles",),
    "default groups": ("default_groups",),
    "user profile": ("user_profile",),
    "required actions": ("required_actions",),
    "terms": ("terms",),
    # `mfa` absent: MFA is not managed. `mfa` with empty lists: no MFA (the owned flow is removed).
    "flows": ("mfa",),
    "mfa groups": ("mfa",),
    "ldap federations": ("ldap",),
    "ldap mappers": ("ldap",),
}


def concerns(kind: Kind, spec: RealmSpec) -> bool:
    fields = SPEC_FIELDS.get(kind.name)
    return fields is None or any(getattr(spec, field) is not None for field in fields)


def plan_realm(gateway: KeycloakGateway, spec: RealmSpec, kinds: tuple[Kind, ...] = KINDS) -> Plan:
    """Read what each kind needs (each read made once) and plan every kind, in order. Makes no writes."""
    live_realm = read_live_realm(gateway, spec.realm)
    reader = LiveReader(gateway, live_realm)
    changes: list[Change] = []
    for kind in kinds:
        if not concerns(kind, spec):
            continue
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
