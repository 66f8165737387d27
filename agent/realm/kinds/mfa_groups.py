"""MFA by group: Keycloak has no "user in group" flow condition, so the groups in `mfa.otp_for_groups` are
granted one marker realm role (`mfa.group_role`, created and marked by the agent) that a role condition of
the MFA browser flow checks. Once no group is listed, the agent's marker role is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway, Role
from agent.realm.kinds.base import LiveRealm, may_delete
from agent.realm.live import LiveReader
from agent.realm.plan import Action, Change, FieldChange
from agent.realm.spec import RealmSpec

GROUPS_KIND = "mfa groups"
# Marks the realm role the agent created to stand for "member of an MFA group".
GROUP_ROLE_ATTRIBUTE = "idp-agent.mfa-group-role"


@dataclass(frozen=True)
class LiveMfaGroups:
    """Every realm role, and the groups granted each group role the agent created (read per role, so a
    realm without MFA groups costs no group listing)."""

    roles: Mapping[str, Role]
    groups_of: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupRoleChange:
    role: str
    add: frozenset[str]
    remove: frozenset[str]


def is_group_role(role: Role) -> bool:
    return any(value.lower() == "true" for value in role.attributes.get(GROUP_ROLE_ATTRIBUTE, ()))


def plan_mfa_groups(spec: RealmSpec, live: LiveMfaGroups) -> list[Change]:
    """The group role is granted to exactly the listed groups; once no group is listed, the agent's own
    group role is deleted (which removes its grants). A role of that name the agent did not create is
    never taken over: the plan says so and apply refuses it."""
    mfa = spec.mfa
    wanted_role = mfa.group_role if mfa is not None and mfa.otp_for_groups else None
    changes: list[Change] = []
    if mfa is not None and wanted_role is not None:
        wanted = frozenset(mfa.otp_for_groups)
        existing = live.roles.get(wanted_role)
        current = live.groups_of.get(wanted_role, frozenset())
        if existing is not None and not is_group_role(existing):
            note = "a role of this name exists and was not created by idp-agent: choose another mfa.group_role"
            changes.append(Change(GROUPS_KIND, "update", wanted_role, note=note, desired=None))
        elif existing is None or wanted != current:
            grant = GroupRoleChange(wanted_role, wanted - current, current - wanted)
            field_change = FieldChange("groups", sorted(current), sorted(wanted))
            action: Action = "update" if existing is not None else "create"
            changes.append(Change(GROUPS_KIND, action, wanted_role, (field_change,), desired=grant))
    for name, role in sorted(live.roles.items()):
        if name != wanted_role and is_group_role(role) and may_delete(spec.managed.flows, owned=True, protected=False):
            changes.append(Change(GROUPS_KIND, "delete", name, live=role))
    return changes


class MfaGroups:
    """Runs after `Flows`: a new flow may name the role a moment before it exists (no one loses OTP they
    had), and a removed one is unbound before its role goes."""

    name = GROUPS_KIND

    def read(self, live: LiveReader) -> LiveMfaGroups:
        roles = live.realm_roles
        groups_of = {
            name: frozenset(group.path for group in live.gateway.list_role_groups(live.name, name))
            for name, role in roles.items()
            if is_group_role(role)
        }
        return LiveMfaGroups(roles, groups_of)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveMfaGroups) -> list[Change]:
        return plan_mfa_groups(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "delete":
            gateway.delete_realm_role(realm, change.key)
            return
        if change.desired is None:
            raise Rejected(f"realm role '{change.key}' in realm '{realm}': {change.note}")
        grant: GroupRoleChange = change.desired
        role = gateway.get_realm_role(realm, grant.role)
        if role is None:
            description = "Members of these groups must use OTP (granted by idp-agent from mfa.otp_for_groups)"
            fields = {"description": description, "attributes": {GROUP_ROLE_ATTRIBUTE: ["true"]}}
            gateway.create_realm_role(realm, grant.role, fields)
            role = gateway.get_realm_role(realm, grant.role)
            assert role is not None
        for path, adding in [*((p, True) for p in sorted(grant.add)), *((p, False) for p in sorted(grant.remove))]:
            group = gateway.find_group_by_path(realm, path)
            if group is None:
                raise Rejected(f"group '{path}' of mfa.otp_for_groups does not exist in realm '{realm}'")
            if adding:
                gateway.change_group_realm_roles(realm, group.id, [role], [])
            else:
                gateway.change_group_realm_roles(realm, group.id, [], [role])
