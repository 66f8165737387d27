"""Default roles (the realm's default-roles composite) and default groups given to every new user."""

from __future__ import annotations

from dataclasses import dataclass

from agent.keycloak import Group, KeycloakGateway
from agent.keycloak.models import default_role_name
from agent.realm.kinds.base import LiveRealm
from agent.realm.kinds.roles import RoleRef, resolve_roles
from agent.realm.live import LiveReader
from agent.realm.plan import Change, FieldChange
from agent.realm.spec import RealmSpec

ROLES_KIND = "default roles"
GROUPS_KIND = "default groups"


def parse_role_ref(text: str) -> RoleRef:
    """`name` is a realm role; `client/name` a client role (as in `account/view-profile`)."""
    client, slash, name = text.partition("/")
    return RoleRef(client, name) if slash else RoleRef(None, text)


@dataclass(frozen=True)
class LiveDefaultRoles:
    role_id: str | None
    members: frozenset[RoleRef]


class DefaultRoles:
    """The list written is authoritative: Keycloak's own defaults stay only if listed."""

    name = ROLES_KIND

    def read(self, live: LiveReader) -> LiveDefaultRoles:
        default = live.realm.representation.get("defaultRole") or {}
        role_id = default.get("id")
        if not role_id:
            return LiveDefaultRoles(None, frozenset())
        client_ids = {client.id: client.client_id for client in live.clients.values()}
        members = live.gateway.role_composites(live.name, str(role_id))
        refs = frozenset(
            RoleRef(client_ids.get(m.container_id or "") if m.client_role else None, m.name) for m in members
        )
        return LiveDefaultRoles(str(role_id), refs)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveDefaultRoles) -> list[Change]:
        if spec.default_roles is None:
            return []
        wanted = frozenset(parse_role_ref(text) for text in spec.default_roles)
        if live_realm.exists and wanted == live.members:
            return []
        field = FieldChange("roles", sorted(map(str, live.members)), sorted(map(str, wanted)))
        return [Change(ROLES_KIND, "update", default_role_name(spec.realm), (field,), desired=(wanted, live.members))]

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        wanted, _ = change.desired
        live = gateway.get_realm(realm)
        assert live is not None
        role_id = str(live.representation["defaultRole"]["id"])
        # Read again: when the realm was created in this run, the planned view of its defaults was empty.
        members = gateway.role_composites(realm, role_id)
        clients = {client.id: client.client_id for client in gateway.list_clients(realm)}
        current = frozenset(
            RoleRef(clients.get(m.container_id or "") if m.client_role else None, m.name) for m in members
        )
        gateway.add_role_composites(realm, role_id, resolve_roles(gateway, realm, wanted - current))
        gateway.remove_role_composites(realm, role_id, resolve_roles(gateway, realm, current - wanted, missing_ok=True))


class DefaultGroups:
    name = GROUPS_KIND

    def read(self, live: LiveReader) -> list[Group]:
        if not live.realm.exists:
            return []
        return live.gateway.list_default_groups(live.name)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: list[Group]) -> list[Change]:
        if spec.default_groups is None:
            return []
        wanted = frozenset(spec.default_groups)
        current = frozenset(group.path for group in live)
        if wanted == current:
            return []
        field = FieldChange("groups", sorted(current), sorted(wanted))
        return [Change(GROUPS_KIND, "update", "default groups", (field,), desired=(wanted, current))]

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        wanted, _ = change.desired
        current = {group.path: group.id for group in gateway.list_default_groups(realm)}
        for path in sorted(wanted - set(current)):
            group = gateway.find_group_by_path(realm, path)
            assert group is not None, f"default group {path} is created by the groups kind first"
            gateway.add_default_group(realm, group.id)
        for path in sorted(set(current) - wanted):
            gateway.remove_default_group(realm, current[path])
