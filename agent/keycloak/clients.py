"""Clients, client scopes, protocol mappers and client roles: the calls realm-as-code makes for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.errors import Rejected
from agent.keycloak.base import GatewayBase
from agent.keycloak.models import (
    ClientScope,
    ProtocolMapper,
    Role,
)
from agent.keycloak.transport import admin_path
from agent.secrets import Secret


class ClientCalls(GatewayBase):
    """Clients, their scopes, protocol mappers and roles; role mappings of users."""

    def update_client(self, realm: str, client_uuid: str, changes: Mapping[str, Any]) -> None:
        """Overlay `changes` on the live client and PUT it; attributes are merged, mappers left alone.

        A PUT carrying `protocolMappers` replaces them all (an empty list deletes every mapper), so that
        key is never sent; mappers change through their own endpoints.
        """
        path = admin_path(realm, "clients", client_uuid)
        self._write("PUT", path, self._overlay_keeping_mappers(self._get(path), changes))

    def delete_client(self, realm: str, client_uuid: str) -> None:
        self._write("DELETE", admin_path(realm, "clients", client_uuid))

    def client_secret_fingerprints(self, realm: str, salt: bytes) -> dict[str, str]:
        """Salted hashes of the secrets Keycloak shows for confidential clients, by clientId.

        The secrets themselves never leave the gateway: a plan compares hashes only.
        """
        return {
            str(raw["clientId"]): Secret(str(raw["secret"])).fingerprint(salt)
            for raw in self._paged(admin_path(realm, "clients"))
            if raw.get("secret")
        }

    def link_client_scope(self, realm: str, client_uuid: str, scope_id: str, *, optional: bool) -> None:
        """Make a client scope a default (or optional) scope of the client.

        Keycloak ignores the request silently when the scope is linked the other way: unlink it first.
        """
        which = "optional-client-scopes" if optional else "default-client-scopes"
        self._write("PUT", admin_path(realm, "clients", client_uuid, which, scope_id))

    def unlink_client_scope(self, realm: str, client_uuid: str, scope_id: str, *, optional: bool) -> None:
        which = "optional-client-scopes" if optional else "default-client-scopes"
        self._write("DELETE", admin_path(realm, "clients", client_uuid, which, scope_id))

    def list_client_scopes(self, realm: str) -> list[ClientScope]:
        """Every client scope with its attributes and mappers (Keycloak does not page this list)."""
        return [ClientScope.from_json(raw) for raw in self._get(admin_path(realm, "client-scopes")) or []]

    def find_client_scope(self, realm: str, name: str) -> ClientScope | None:
        return next((scope for scope in self.list_client_scopes(realm) if scope.name == name), None)

    def create_client_scope(self, realm: str, representation: Mapping[str, Any]) -> str:
        name = str(representation["name"])

        def existing() -> str | None:
            found = self.find_client_scope(realm, name)
            return found.id if found else None

        return self._create(admin_path(realm, "client-scopes"), dict(representation), existing)

    def update_client_scope(self, realm: str, scope_id: str, changes: Mapping[str, Any]) -> None:
        """Overlay `changes` on the live scope and PUT it; attributes merged, mappers left alone."""
        path = admin_path(realm, "client-scopes", scope_id)
        self._write("PUT", path, self._overlay_keeping_mappers(self._get(path), changes))

    def delete_client_scope(self, realm: str, scope_id: str) -> None:
        """Delete a scope; Keycloak unlinks it from every client that uses it."""
        self._write("DELETE", admin_path(realm, "client-scopes", scope_id))

    def _mappers_path(self, realm: str, container: str, container_id: str, *mapper_id: str) -> str:
        if container not in ("clients", "client-scopes"):
            raise ValueError(f"protocol mappers belong to clients or client-scopes, not '{container}'")
        return admin_path(realm, container, container_id, "protocol-mappers", "models", *mapper_id)

    def list_protocol_mappers(self, realm: str, container: str, container_id: str) -> list[ProtocolMapper]:
        """Mappers of a client (`container="clients"`) or client scope (`"client-scopes"`)."""
        raw = self._get(self._mappers_path(realm, container, container_id)) or []
        return [ProtocolMapper.from_json(item) for item in raw]

    def create_protocol_mapper(
        self, realm: str, container: str, container_id: str, representation: Mapping[str, Any]
    ) -> str:
        name = str(representation["name"])

        def existing() -> str | None:
            found = [m for m in self.list_protocol_mappers(realm, container, container_id) if m.name == name]
            return found[0].id if found else None

        return self._create(self._mappers_path(realm, container, container_id), dict(representation), existing)

    def update_protocol_mapper(
        self, realm: str, container: str, container_id: str, mapper_id: str, representation: Mapping[str, Any]
    ) -> None:
        """PUT a mapper whole: Keycloak replaces its config with the one sent."""
        body = {**representation, "id": mapper_id}
        self._write("PUT", self._mappers_path(realm, container, container_id, mapper_id), body)

    def delete_protocol_mapper(self, realm: str, container: str, container_id: str, mapper_id: str) -> None:
        self._write("DELETE", self._mappers_path(realm, container, container_id, mapper_id))

    def get_client_role(self, realm: str, client_uuid: str, name: str) -> Role | None:
        raw = self._lookup(admin_path(realm, "clients", client_uuid, "roles", name))
        return None if raw is None else Role.from_json(raw)

    def create_client_role(
        self, realm: str, client_uuid: str, name: str, fields: Mapping[str, Any] | None = None
    ) -> str:
        """Create a client role with optional description/attributes in one POST; returns its id."""
        body: dict[str, Any] = {**(fields or {}), "name": name}

        def existing() -> str | None:
            found = self.get_client_role(realm, client_uuid, name)
            return found.id if found else None

        self._create(admin_path(realm, "clients", client_uuid, "roles"), body, existing)
        # Like realm roles, the Location of a new client role names it instead of giving its id.
        found = self.get_client_role(realm, client_uuid, name)
        if found is None:
            raise Rejected(f"client role '{name}' in realm '{realm}' vanished after creation")
        return found.id

    def update_role_by_id(self, realm: str, role_id: str, changes: Mapping[str, Any]) -> None:
        """Overlay `changes` on the live role (realm or client) and PUT it (attributes replaced whole)."""
        path = admin_path(realm, "roles-by-id", role_id)
        self._write("PUT", path, {**self._get(path), **changes})

    def delete_role_by_id(self, realm: str, role_id: str) -> None:
        self._write("DELETE", admin_path(realm, "roles-by-id", role_id))

    def user_role_mappings(self, realm: str, user_id: str) -> list[Role]:
        """The user's direct realm and client role mappings (client roles carry their client's id)."""
        raw = self._get(admin_path(realm, "users", user_id, "role-mappings")) or {}
        roles = [Role.from_json(item) for item in raw.get("realmMappings") or ()]
        for mapping in (raw.get("clientMappings") or {}).values():
            roles.extend(Role.from_json(item) for item in mapping.get("mappings") or ())
        return roles

    def remove_realm_roles_from_user(self, realm: str, user_id: str, roles: list[Role]) -> None:
        self._map_roles("DELETE", admin_path(realm, "users", user_id, "role-mappings", "realm"), roles)

    def remove_client_roles_from_user(self, realm: str, user_id: str, client_uuid: str, roles: list[Role]) -> None:
        self._map_roles("DELETE", admin_path(realm, "users", user_id, "role-mappings", "clients", client_uuid), roles)

    @staticmethod
    def _overlay_keeping_mappers(live: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        """`changes` over a live client or scope, attributes merged key by key, `protocolMappers` dropped."""
        attributes = {**(live.get("attributes") or {}), **(changes.get("attributes") or {})}
        body = {**live, **changes, "attributes": attributes}
        body.pop("protocolMappers", None)
        return body
