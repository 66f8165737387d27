"""Groups as nested paths with attributes, and, as a later kind, the roles each group grants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.keycloak import Group, KeycloakGateway
from agent.realm.kinds.base import OWNER_ATTRIBUTE, LiveRealm, is_owned, may_delete
from agent.realm.kinds.roles import RoleRef, resolve_roles
from agent.realm.live import LiveReader
from agent.realm.plan import Change, FieldChange, diff_fields
from agent.realm.spec import GroupSpec, MfaSpec, RealmSpec

KIND = "groups"
GRANTS_KIND = "group grants"


def _depth(path: str) -> int:
    return path.count("/")


def group_fields(group: GroupSpec, *, owned_mark: bool) -> dict[str, Any]:
    if group.attributes is None and not owned_mark:
        return {}
    attributes = {key: list(values) for key, values in (group.attributes or {}).items()}
    if owned_mark:
        attributes[OWNER_ATTRIBUTE] = ["true"]
    return {"attributes": attributes}


def _descendants(path: str, live: Mapping[str, Group]) -> list[str]:
    return [other for other in live if other.startswith(path + "/")]


def plan_groups(spec: RealmSpec, live: Mapping[str, Group]) -> list[Change]:
    """Parents are created before children and children deleted before parents.

    A group is never deleted while it has a live descendant that stays: deleting a parent deletes its
    whole subtree in Keycloak, which would take objects the agent does not own with it.
    """
    if spec.groups is None:
        return []
    wanted = {group.path: group for group in spec.groups}
    # A group written as /a/b implies /a: create missing parents as plain (owned) groups.
    for path in list(wanted):
        parent = wanted[path].parent_path
        while parent and parent not in wanted:
            wanted[parent] = GroupSpec(path=parent)
            parent = wanted[parent].parent_path
    changes: list[Change] = []
    for path in sorted(wanted, key=lambda p: (_depth(p), p)):
        current = live.get(path)
        if current is None:
            fields = group_fields(wanted[path], owned_mark=True)
            changes.append(Change(KIND, "create", path, diff_fields({}, fields), desired=fields))
            continue
        # Attributes left out of the config are not managed (see roles.py).
        owned_mark = is_owned(current.attributes) and wanted[path].attributes is not None
        fields = group_fields(wanted[path], owned_mark=owned_mark)
        live_fields = {"attributes": {key: list(values) for key, values in current.attributes.items()}}
        differing = diff_fields(live_fields, fields, whole=("attributes",))
        if differing:
            changes.append(Change(KIND, "update", path, differing, desired=fields, live=current))
    doomed = {
        path
        for path, group in live.items()
        if path not in wanted and may_delete(spec.managed.groups, owned=is_owned(group.attributes), protected=False)
    }
    for path in sorted(doomed, key=lambda p: (-_depth(p), p)):
        kept = [child for child in _descendants(path, live) if child not in doomed]
        if kept:
            continue
        changes.append(Change(KIND, "delete", path, live=live[path]))
    return changes


class Groups:
    name = KIND

    def read(self, live: LiveReader) -> dict[str, Group]:
        return live.groups

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: dict[str, Group]) -> list[Change]:
        return plan_groups(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "delete":
            gateway.delete_group(realm, change.live.id)
            return
        if change.action == "update":
            gateway.update_group(realm, change.live.id, change.desired)
            return
        parent_path, _, name = change.key.rpartition("/")
        parent_id = None
        if parent_path:
            parent = gateway.find_group_by_path(realm, parent_path)
            assert parent is not None, f"parent of {change.key} is created first"
            parent_id = parent.id
        gateway.create_group_with(realm, name, parent_id, change.desired)


@dataclass(frozen=True)
class GrantChange:
    group_path: str
    add: frozenset[RoleRef]
    remove: frozenset[RoleRef]


def group_grants(group: GroupSpec) -> frozenset[RoleRef] | None:
    """The roles a group grants as written, or None when neither realm_roles nor client_roles is written."""
    if group.realm_roles is None and group.client_roles is None:
        return None
    realm = {RoleRef(None, name) for name in group.realm_roles or ()}
    clients = {RoleRef(client, name) for client, names in (group.client_roles or {}).items() for name in names}
    return frozenset(realm | clients)


def live_grants(group: Group) -> frozenset[RoleRef]:
    realm = {RoleRef(None, name) for name in group.realm_roles}
    clients = {RoleRef(client, name) for client, names in group.client_roles.items() for name in names}
    return frozenset(realm | clients)


def mfa_group_role(spec: RealmSpec) -> RoleRef:
    """The marker role the `mfa groups` kind grants to groups listed in mfa.otp_for_groups."""
    name = spec.mfa.group_role if spec.mfa is not None else MfaSpec.model_fields["group_role"].default
    return RoleRef(None, str(name))


def plan_group_grants(spec: RealmSpec, live: Mapping[str, Group]) -> list[Change]:
    """Roles written for a group are authoritative for that group; groups without them are left as they are.

    The MFA marker role is left to the `mfa groups` kind, so a group may both grant roles and require OTP.
    """
    changes: list[Change] = []
    marker = frozenset({mfa_group_role(spec)})
    for group in spec.groups or ():
        written = group_grants(group)
        if written is None:
            continue
        wanted = written - marker
        current = live_grants(live[group.path]) - marker if group.path in live else frozenset()
        if wanted == current:
            continue
        field = FieldChange("roles", sorted(map(str, current)), sorted(map(str, wanted)))
        grant = GrantChange(group.path, wanted - current, current - wanted)
        changes.append(Change(GRANTS_KIND, "update", group.path, (field,), desired=grant))
    return changes


class GroupGrants:
    name = GRANTS_KIND

    def read(self, live: LiveReader) -> dict[str, Group]:
        return live.groups

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: dict[str, Group]) -> list[Change]:
        return plan_group_grants(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        grant: GrantChange = change.desired
        group = gateway.find_group_by_path(realm, grant.group_path)
        assert group is not None
        add = resolve_roles(gateway, realm, grant.add)
        remove = resolve_roles(gateway, realm, grant.remove, missing_ok=True)
        gateway.change_group_realm_roles(
            realm, group.id, [r for r in add if not r.client_role], [r for r in remove if not r.client_role]
        )
        by_client: dict[str, tuple[list[Any], list[Any]]] = {}
        for role in add:
            if role.client_role:
                by_client.setdefault(role.container_id or "", ([], []))[0].append(role)
        for role in remove:
            if role.client_role:
                by_client.setdefault(role.container_id or "", ([], []))[1].append(role)
        for client_uuid, (adding, removing) in by_client.items():
            gateway.change_group_client_roles(realm, group.id, client_uuid, adding, removing)
