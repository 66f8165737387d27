"""Realm roles (name, description, attributes) and, as a later kind, their composites."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway, Role
from agent.realm.kinds.base import OWNER_ATTRIBUTE, LiveRealm, is_owned, is_protected_role, may_delete
from agent.realm.live import LiveReader
from agent.realm.plan import Action, Change, FieldChange, diff_fields
from agent.realm.spec import CompositesSpec, RealmSpec, RoleSpec

KIND = "realm roles"
COMPOSITES_KIND = "role composites"


def role_fields(role: RoleSpec, *, owned_mark: bool) -> dict[str, Any]:
    """Keycloak fields the spec manages; the owner mark rides along on roles the agent creates."""
    fields: dict[str, Any] = {}
    if role.description is not None:
        fields["description"] = role.description
    if role.attributes is not None or owned_mark:
        attributes = {key: list(values) for key, values in (role.attributes or {}).items()}
        if owned_mark:
            attributes[OWNER_ATTRIBUTE] = ["true"]
        fields["attributes"] = attributes
    return fields


def _live_fields(role: Role) -> dict[str, Any]:
    return {
        "description": role.description,
        "attributes": {key: list(values) for key, values in role.attributes.items()},
    }


def plan_roles(spec: RealmSpec, live: Mapping[str, Role]) -> list[Change]:
    """Create missing roles, update differing ones, delete owned roles no longer written."""
    if spec.roles is None:
        return []
    changes: list[Change] = []
    wanted = {role.name: role for role in spec.roles}
    for name, role in wanted.items():
        current = live.get(name)
        if current is None:
            fields = role_fields(role, owned_mark=True)
            changes.append(Change(KIND, "create", name, diff_fields({}, fields), desired=fields))
            continue
        # Attributes left out of the config are not managed: not even the owner mark is sent (Keycloak would
        # replace the map whole, dropping keys added by hand).
        fields = role_fields(role, owned_mark=is_owned(current.attributes) and role.attributes is not None)
        differing = diff_fields(_live_fields(current), fields, whole=("attributes",))
        if differing:
            changes.append(Change(KIND, "update", name, differing, desired=fields))
    mode = spec.managed.realm_roles
    for name, current in sorted(live.items()):
        if name in wanted:
            continue
        protected = is_protected_role(spec.realm, name)
        if may_delete(mode, owned=is_owned(current.attributes), protected=protected):
            changes.append(Change(KIND, "delete", name))
    return changes


class RealmRoles:
    name = KIND

    def read(self, live: LiveReader) -> dict[str, Role]:
        return live.realm_roles

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: dict[str, Role]) -> list[Change]:
        return plan_roles(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "delete":
            gateway.delete_realm_role(realm, change.key)
            return
        if change.action == "create":
            gateway.create_realm_role(realm, change.key, change.desired)
        else:
            gateway.update_realm_role(realm, change.key, change.desired)


@dataclass(frozen=True)
class RoleRef:
    """A role named in config: a realm role, or a client role as (clientId, name)."""

    client_id: str | None
    name: str

    def __str__(self) -> str:
        return self.name if self.client_id is None else f"{self.client_id}/{self.name}"


def composite_refs(composites: CompositesSpec) -> frozenset[RoleRef]:
    realm = {RoleRef(None, name) for name in composites.realm}
    clients = {RoleRef(client, name) for client, names in composites.clients.items() for name in names}
    return frozenset(realm | clients)


@dataclass(frozen=True)
class LiveComposites:
    role_ids: Mapping[str, str]
    composites: Mapping[str, frozenset[RoleRef]]


def plan_composites(spec: RealmSpec, live: LiveComposites) -> list[Change]:
    """Composites written for a role are authoritative for that role; roles without `composites` are left."""
    changes: list[Change] = []
    for role in spec.roles or ():
        if role.composites is None:
            continue
        wanted = composite_refs(role.composites)
        current = live.composites.get(role.name, frozenset())
        if wanted != current:
            field = FieldChange("composites", sorted(map(str, current)), sorted(map(str, wanted)))
            action: Action = "update" if role.name in live.role_ids else "create"
            changes.append(Change(COMPOSITES_KIND, action, role.name, (field,), desired=(wanted, current)))
    return changes


def resolve_roles(
    gateway: KeycloakGateway, realm: str, refs: frozenset[RoleRef], *, missing_ok: bool = False
) -> list[Role]:
    """Look up roles by reference. `missing_ok` is for removals: a role deleted earlier in the same run
    took its links with it, so there is nothing left to remove."""
    resolved: list[Role] = []
    clients: dict[str, list[Role]] = {}
    for ref in sorted(refs, key=str):
        if ref.client_id is None:
            role = gateway.get_realm_role(realm, ref.name)
        else:
            if ref.client_id not in clients:
                client = gateway.find_client(realm, ref.client_id)
                clients[ref.client_id] = gateway.list_client_roles(realm, client.id) if client else []
            role = next((r for r in clients[ref.client_id] if r.name == ref.name), None)
        if role is None:
            if missing_ok:
                continue
            raise Rejected(f"role '{ref}' not found in realm '{realm}'", hint="create it or fix the reference")
        resolved.append(role)
    return resolved


class RoleComposites:
    name = COMPOSITES_KIND

    def read(self, live: LiveReader) -> LiveComposites:
        client_ids = {client.id: client.client_id for client in live.clients.values()}
        composites: dict[str, frozenset[RoleRef]] = {}
        for role in live.realm_roles.values():
            if role.composite:
                members = live.gateway.role_composites(live.name, role.id)
                composites[role.name] = frozenset(
                    RoleRef(client_ids.get(member.container_id or "") if member.client_role else None, member.name)
                    for member in members
                )
        return LiveComposites({role.name: role.id for role in live.realm_roles.values()}, composites)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveComposites) -> list[Change]:
        return plan_composites(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        wanted, current = change.desired
        role = gateway.get_realm_role(realm, change.key)
        assert role is not None
        gateway.add_role_composites(realm, role.id, resolve_roles(gateway, realm, wanted - current))
        gateway.remove_role_composites(realm, role.id, resolve_roles(gateway, realm, current - wanted, missing_ok=True))
