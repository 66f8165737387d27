"""Client roles (owned by mark, like realm roles) and, as later kinds, their composites and the roles of
each client's service-account user."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway, Role
from agent.keycloak.models import default_role_name
from agent.realm.kinds.base import LiveRealm, is_owned, is_protected_client, may_delete
from agent.realm.kinds.roles import RoleRef, composite_refs, resolve_roles, role_fields
from agent.realm.live import LiveReader
from agent.realm.plan import Change, FieldChange, diff_fields
from agent.realm.spec import RealmSpec

KIND = "client roles"
COMPOSITES_KIND = "client role composites"
SERVICE_ACCOUNT_KIND = "service account roles"

LiveClientRoles = Mapping[str, Mapping[str, Role]]  # clientId -> role name -> role


@dataclass(frozen=True)
class ClientRoleWrite:
    client_id: str
    name: str
    fields: Mapping[str, Any]


def _live_role_fields(role: Role) -> dict[str, Any]:
    return {
        "description": role.description,
        "attributes": {key: list(values) for key, values in role.attributes.items()},
    }


def plan_client_roles(spec: RealmSpec, live: LiveClientRoles) -> list[Change]:
    """Roles written for a client are authoritative over the roles the agent created there; a client
    without `roles` is left as it is. Unowned roles of built-in clients are never deleted."""
    changes: list[Change] = []
    for client in spec.clients or ():
        if client.roles is None:
            continue
        current_roles = live.get(client.client_id, {})
        wanted = {role.name: role for role in client.roles}
        for name, role in wanted.items():
            key = f"{client.client_id}/{name}"
            current = current_roles.get(name)
            if current is None:
                fields = role_fields(role, owned_mark=True)
                write = ClientRoleWrite(client.client_id, name, fields)
                changes.append(Change(KIND, "create", key, diff_fields({}, fields), desired=write))
                continue
            # Attributes left out of the config are not managed (see roles.py).
            fields = role_fields(role, owned_mark=is_owned(current.attributes) and role.attributes is not None)
            if differing := diff_fields(_live_role_fields(current), fields, whole=("attributes",)):
                write = ClientRoleWrite(client.client_id, name, fields)
                changes.append(Change(KIND, "update", key, differing, desired=write, live=current))
        for name, current in sorted(current_roles.items()):
            owned = is_owned(current.attributes)
            protected = is_protected_client(client.client_id) and not owned
            if name not in wanted and may_delete(spec.managed.client_roles, owned=owned, protected=protected):
                changes.append(Change(KIND, "delete", f"{client.client_id}/{name}", live=current))
    return changes


class ClientRoles:
    name = KIND

    def read(self, live: LiveReader) -> dict[str, dict[str, Role]]:
        return {client_id: {r.name: r for r in live.client_roles(client_id)} for client_id in live.clients}

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: dict[str, dict[str, Role]]) -> list[Change]:
        return plan_client_roles(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "delete":
            gateway.delete_role_by_id(realm, change.live.id)
        elif change.action == "update":
            gateway.update_role_by_id(realm, change.live.id, change.desired.fields)
        else:
            write: ClientRoleWrite = change.desired
            client = gateway.find_client(realm, write.client_id)
            if client is None:
                raise Rejected(f"client '{write.client_id}' does not exist in realm '{realm}'")
            gateway.create_client_role(realm, client.id, write.name, write.fields)


# -- composites of client roles -------------------------------------------------------------------


def refs_of(roles: list[Role], client_ids: Mapping[str, str]) -> frozenset[RoleRef]:
    """Roles as references; a client role's container id is its client's internal id."""
    return frozenset(
        RoleRef(client_ids.get(role.container_id or "", role.container_id) if role.client_role else None, role.name)
        for role in roles
    )


def plan_client_role_composites(spec: RealmSpec, live: Mapping[RoleRef, frozenset[RoleRef]]) -> list[Change]:
    """Composites written for a client role are authoritative for it; roles without `composites` are left."""
    changes: list[Change] = []
    for client in spec.clients or ():
        for role in client.roles or ():
            if role.composites is None:
                continue
            ref = RoleRef(client.client_id, role.name)
            wanted = composite_refs(role.composites)
            current = live.get(ref, frozenset())
            if wanted != current:
                field = FieldChange("composites", sorted(map(str, current)), sorted(map(str, wanted)))
                changes.append(Change(COMPOSITES_KIND, "update", str(ref), (field,), desired=(ref, wanted)))
    return changes


class ClientRoleComposites:
    name = COMPOSITES_KIND

    def read(self, live: LiveReader) -> dict[RoleRef, frozenset[RoleRef]]:
        client_ids = {client.id: client.client_id for client in live.clients.values()}
        composites: dict[RoleRef, frozenset[RoleRef]] = {}
        for client_id in live.clients:
            for role in live.client_roles(client_id):
                if role.composite:
                    members = live.gateway.role_composites(live.name, role.id)
                    composites[RoleRef(client_id, role.name)] = refs_of(members, client_ids)
        return composites

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: dict[RoleRef, frozenset[RoleRef]]) -> list[Change]:
        return plan_client_role_composites(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        ref, wanted = change.desired
        (role,) = resolve_roles(gateway, realm, frozenset({ref}))
        # Read again: a role created earlier in this run had no live composites when planned.
        client_ids = {client.id: client.client_id for client in gateway.list_clients(realm)}
        current = refs_of(gateway.role_composites(realm, role.id), client_ids)
        gateway.add_role_composites(realm, role.id, resolve_roles(gateway, realm, wanted - current))
        gateway.remove_role_composites(realm, role.id, resolve_roles(gateway, realm, current - wanted, missing_ok=True))


# -- roles of service-account users -----------------------------------------------------------------


def default_role_ref(realm: str) -> RoleRef:
    return RoleRef(None, default_role_name(realm))


def managed_roles(realm: str, wanted: frozenset[RoleRef], current: frozenset[RoleRef]) -> frozenset[RoleRef]:
    """The live roles the config manages. Keycloak gives every new user, service accounts included, the
    realm's default-roles composite: it stays unless the config names it (and is given when named)."""
    default = default_role_ref(realm)
    return current if default in wanted else current - {default}


def plan_service_account_roles(spec: RealmSpec, live: Mapping[str, frozenset[RoleRef]]) -> list[Change]:
    """`service_account_roles` written for a client is authoritative for its service-account user."""
    changes: list[Change] = []
    for client in spec.clients or ():
        if client.service_account_roles is None:
            continue
        wanted = composite_refs(client.service_account_roles)
        current = managed_roles(spec.realm, wanted, live.get(client.client_id, frozenset()))
        if wanted != current:
            field = FieldChange("roles", sorted(map(str, current)), sorted(map(str, wanted)))
            changes.append(Change(SERVICE_ACCOUNT_KIND, "update", client.client_id, (field,), desired=wanted))
    return changes


def _grant(gateway: KeycloakGateway, realm: str, user_id: str, roles: list[Role], *, remove: bool) -> None:
    realm_roles = [role for role in roles if not role.client_role]
    by_client: dict[str, list[Role]] = {}
    for role in roles:
        if role.client_role:
            by_client.setdefault(role.container_id or "", []).append(role)
    if remove:
        gateway.remove_realm_roles_from_user(realm, user_id, realm_roles)
        for client_uuid, client_roles in by_client.items():
            gateway.remove_client_roles_from_user(realm, user_id, client_uuid, client_roles)
    else:
        gateway.add_realm_roles_to_user(realm, user_id, realm_roles)
        for client_uuid, client_roles in by_client.items():
            gateway.add_client_roles_to_user(realm, user_id, client_uuid, client_roles)


class ServiceAccountRoles:
    name = SERVICE_ACCOUNT_KIND

    def read(self, live: LiveReader) -> dict[str, frozenset[RoleRef]]:
        client_ids = {client.id: client.client_id for client in live.clients.values()}
        roles: dict[str, frozenset[RoleRef]] = {}
        for client in live.clients.values():
            if not client.service_accounts_enabled:
                continue
            user = live.gateway.service_account_user(live.name, client.id)
            if user is not None:
                roles[client.client_id] = refs_of(live.gateway.user_role_mappings(live.name, user.id), client_ids)
        return roles

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: dict[str, frozenset[RoleRef]]) -> list[Change]:
        return plan_service_account_roles(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        wanted: frozenset[RoleRef] = change.desired
        client = gateway.find_client(realm, change.key)
        user = gateway.service_account_user(realm, client.id) if client else None
        if client is None or user is None:
            raise Rejected(
                f"client '{change.key}' in realm '{realm}' has no service account",
                hint="set service_account: true on the client",
            )
        # Read again: a client created earlier in this run had no service-account user when planned.
        client_ids = {c.id: c.client_id for c in gateway.list_clients(realm)}
        current = managed_roles(realm, wanted, refs_of(gateway.user_role_mappings(realm, user.id), client_ids))
        _grant(gateway, realm, user.id, resolve_roles(gateway, realm, wanted - current), remove=False)
        _grant(gateway, realm, user.id, resolve_roles(gateway, realm, current - wanted, missing_ok=True), remove=True)
