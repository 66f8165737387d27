"""The one gateway to Keycloak: realm-explicit calls that return typed values.

Lookups return None when the object is missing. Lists are paged explicitly (PAGE_SIZE). Creates that lose
their answer are verified by an exact lookup before anything is resent (see `_create`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from agent.errors import AuthError, Conflict, OutcomeUnknown, Rejected
from agent.keycloak.auth import TokenSource
from agent.keycloak.models import (
    AccessExport,
    AuthFlow,
    Client,
    ClientScope,
    Component,
    ConnectionCheck,
    ExportedRole,
    ExportedUser,
    FlowExecution,
    Group,
    ImportedUser,
    LoginEvent,
    ProtocolMapper,
    Realm,
    RequiredAction,
    RequiredActionProvider,
    Role,
    SyncResult,
    User,
    UserDraft,
    UserProfileConfig,
)
from agent.keycloak.transport import RequestStats, Response, RetryPolicy, Transport, admin_path
from agent.secrets import Secret
from agent.settings import KeycloakConnection

PAGE_SIZE = 500


class KeycloakGateway:
    """Every call takes the realm explicitly; a read-only twin (`read_only()`) refuses all writes."""

    def __init__(self, transport: Transport, *, read_only: bool = False) -> None:
        self._transport = transport
        self.is_read_only = read_only

    @classmethod
    def connect(
        cls,
        connection: KeycloakConnection,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> KeycloakGateway:
        return cls(Transport(connection, retry=retry, sleep=sleep))

    def read_only(self) -> KeycloakGateway:
        """A twin sharing this gateway's connection and counters whose every write raises ReadOnlyViolation."""
        return KeycloakGateway(self._transport, read_only=True)

    @property
    def stats(self) -> RequestStats:
        return self._transport.stats

    @property
    def tokens(self) -> TokenSource:
        return self._transport.tokens

    @property
    def server_url(self) -> str:
        return self._transport.connection.url

    def close(self) -> None:
        self._transport.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self._transport.request("GET", path, params=params)
        return response.body if response else None

    def _lookup(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        response = self._transport.request("GET", path, params=params, missing_ok=True)
        return None if response is None else response.body

    def _write(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Response:
        response = self._transport.request(method, path, params=params, body=body, read_only=self.is_read_only)
        assert response is not None  # missing_ok is off, so a 404 raised
        return response

    def _map_roles(self, method: str, path: str, roles: list[Role]) -> None:
        """Add (POST) or remove (DELETE) role mappings; nothing is sent for an empty list."""
        if roles:
            self._write(method, path, [{"id": role.id, "name": role.name} for role in roles])

    def _paged(self, path: str, params: Mapping[str, Any] | None = None, page_size: int = PAGE_SIZE) -> Iterator[Any]:
        """Every item of a list endpoint, fetched `page_size` at a time until a short page."""
        first = 0
        while True:
            page = self._get(path, {**(params or {}), "first": first, "max": page_size}) or []
            yield from page
            if len(page) < page_size:
                return
            first += page_size

    def _create(self, path: str, body: Any, find_existing: Callable[[], str | None]) -> str:
        """POST a new object and return its id; if the answer is lost, adopt what the lookup finds.

        A POST is never replayed blindly: after a lost answer the object is looked up by its natural
        key, and only when it is certainly absent is the POST sent once more.
        """
        try:
            response = self._write("POST", path, body)
        except OutcomeUnknown:
            existing = find_existing()
            if existing is not None:
                return existing
            response = self._write("POST", path, body)
        created = response.created_id or find_existing()
        if created is None:
            raise Rejected(f"POST {path} succeeded but the new object cannot be found")
        return created

    # -- realms ---------------------------------------------------------------------------------

    def list_realm_names(self) -> list[str]:
        return [str(raw["realm"]) for raw in self._get("/admin/realms", {"briefRepresentation": "true"}) or []]

    def get_realm(self, realm: str) -> Realm | None:
        raw = self._lookup(admin_path(realm))
        return None if raw is None else Realm.from_json(raw)

    def create_realm(self, realm: str, settings: Mapping[str, Any] | None = None) -> None:
        body = {"enabled": True, **(settings or {}), "realm": realm}

        def existing() -> str | None:
            return realm if self.get_realm(realm) is not None else None

        self._create("/admin/realms", body, existing)

    def export_realm(self, realm: str) -> dict[str, Any]:
        """Keycloak's partial export (roles, groups, clients; secrets masked by Keycloak). Changes nothing."""
        return self._export(realm, clients=True, groups_and_roles=True)

    def _export(self, realm: str, *, clients: bool, groups_and_roles: bool) -> dict[str, Any]:
        params = {"exportClients": str(clients).lower(), "exportGroupsAndRoles": str(groups_and_roles).lower()}
        path = admin_path(realm, "partial-export")
        response = self._transport.request("POST", path, params=params, reads_only=True)
        assert response is not None
        return dict(response.body or {})

    def update_realm(self, realm: str, changes: Mapping[str, Any]) -> None:
        """Overlay `changes` on the live realm and PUT it whole (Keycloak rebuilds omitted parts)."""
        live = self.get_realm(realm)
        if live is None:
            raise Rejected(f"realm '{realm}' does not exist")
        self._write("PUT", admin_path(realm), {**live.representation, **changes})

    def delete_realm(self, realm: str) -> None:
        self._write("DELETE", admin_path(realm))

    # -- users ----------------------------------------------------------------------------------

    def count_users(self, realm: str) -> int:
        return int(self._get(admin_path(realm, "users", "count")) or 0)

    def list_users(self, realm: str, *, brief: bool = True, page_size: int = PAGE_SIZE) -> Iterator[User]:
        """All users, brief by default (more than 10x cheaper); `brief=False` adds attributes and totp."""
        params = {"briefRepresentation": str(brief).lower()}
        for raw in self._paged(admin_path(realm, "users"), params, page_size):
            yield User.from_json(raw)

    def get_user(self, realm: str, user_id: str) -> User | None:
        raw = self._lookup(admin_path(realm, "users", user_id))
        return None if raw is None else User.from_json(raw)

    def find_user_by_username(self, realm: str, username: str) -> User | None:
        """The user with exactly this username (Keycloak stores usernames in lower case)."""
        matches = self._get(admin_path(realm, "users"), {"username": username, "exact": "true"}) or []
        wanted = username.lower()
        for raw in matches:
            if str(raw.get("username", "")).lower() == wanted:
                return User.from_json(raw)
        return None

    def create_user(self, realm: str, draft: UserDraft) -> str:
        def existing() -> str | None:
            found = self.find_user_by_username(realm, draft.username)
            return found.id if found else None

        return self._create(admin_path(realm, "users"), draft.to_json(), existing)

    def update_user(self, realm: str, user_id: str, changes: Mapping[str, Any]) -> None:
        """Overlay `changes` (Keycloak field names) on the full user and PUT it whole.

        PUT with `attributes` replaces every writable attribute, so the live ones are read first.
        """
        live = self._get(admin_path(realm, "users", user_id))
        self._write("PUT", admin_path(realm, "users", user_id), {**live, **changes})

    def delete_user(self, realm: str, user_id: str) -> None:
        self._write("DELETE", admin_path(realm, "users", user_id))

    def set_password(self, realm: str, user_id: str, password: Secret, *, temporary: bool = False) -> None:
        body = {"type": "password", "value": password.reveal(), "temporary": temporary}
        self._write("PUT", admin_path(realm, "users", user_id, "reset-password"), body)

    def logout_user(self, realm: str, user_id: str) -> None:
        """End every session of the user (online sessions; offline ones need revoking separately)."""
        self._write("POST", admin_path(realm, "users", user_id, "logout"))

    # -- roles ----------------------------------------------------------------------------------

    def list_realm_roles(self, realm: str) -> list[Role]:
        params = {"briefRepresentation": "false"}
        return [Role.from_json(raw) for raw in self._paged(admin_path(realm, "roles"), params)]

    def get_realm_role(self, realm: str, name: str) -> Role | None:
        raw = self._lookup(admin_path(realm, "roles", name))
        return None if raw is None else Role.from_json(raw)

    def create_realm_role(self, realm: str, name: str, fields: Mapping[str, Any] | None = None) -> str:
        """Create a realm role with optional `fields` (description, attributes) in one POST; returns its id."""
        body: dict[str, Any] = {**(fields or {}), "name": name}

        def existing() -> str | None:
            found = self.get_realm_role(realm, name)
            return found.id if found else None

        self._create(admin_path(realm, "roles"), body, existing)
        # Role creation answers with a Location naming the role, not its id.
        found = self.get_realm_role(realm, name)
        if found is None:
            raise Rejected(f"realm role '{name}' in realm '{realm}' vanished after creation")
        return found.id

    def list_client_roles(self, realm: str, client_uuid: str) -> list[Role]:
        path = admin_path(realm, "clients", client_uuid, "roles")
        return [Role.from_json(raw) for raw in self._paged(path, {"briefRepresentation": "false"})]

    def add_realm_roles_to_user(self, realm: str, user_id: str, roles: list[Role]) -> None:
        self._map_roles("POST", admin_path(realm, "users", user_id, "role-mappings", "realm"), roles)

    def add_client_roles_to_user(self, realm: str, user_id: str, client_uuid: str, roles: list[Role]) -> None:
        self._map_roles("POST", admin_path(realm, "users", user_id, "role-mappings", "clients", client_uuid), roles)

    # -- groups ---------------------------------------------------------------------------------

    def list_groups(self, realm: str) -> list[Group]:
        """Every group, top-level and nested, parents before children, with attributes and role grants.

        One partial-export request carries the whole tree (a thousand groups in one answer instead of one
        page per parent); an account that may not export (no manage-realm) pages through the tree instead.
        """
        try:
            exported = self._export(realm, clients=False, groups_and_roles=True)
        except AuthError:
            return self._page_groups(realm)
        return list(_flatten_groups(exported.get("groups") or (), parent_id=None))

    def _page_groups(self, realm: str) -> list[Group]:
        groups: list[Group] = []
        top = admin_path(realm, "groups")
        pending = [Group.from_json(raw) for raw in self._paged(top, {"briefRepresentation": "false"})]
        while pending:
            group = pending.pop(0)
            groups.append(group)
            if group.sub_group_count:
                children = admin_path(realm, "groups", group.id, "children")
                pending.extend(Group.from_json(raw) for raw in self._paged(children, {"briefRepresentation": "false"}))
        return groups

    def find_group_by_path(self, realm: str, path: str) -> Group | None:
        raw = self._lookup(admin_path(realm, "group-by-path", path.lstrip("/")))
        return None if raw is None else Group.from_json(raw)

    def create_group(self, realm: str, name: str, parent_id: str | None = None) -> str:
        url = admin_path(realm, "groups") if parent_id is None else admin_path(realm, "groups", parent_id, "children")

        def existing() -> str | None:
            for group in self.list_groups(realm):
                if group.name == name and group.parent_id == parent_id:
                    return group.id
            return None

        return self._create(url, {"name": name}, existing)

    # -- clients --------------------------------------------------------------------------------

    def list_clients(self, realm: str) -> list[Client]:
        return [Client.from_json(raw) for raw in self._paged(admin_path(realm, "clients"))]

    def find_client(self, realm: str, client_id: str) -> Client | None:
        """The client whose human clientId is `client_id`."""
        matches = self._get(admin_path(realm, "clients"), {"clientId": client_id}) or []
        for raw in matches:
            if raw.get("clientId") == client_id:
                return Client.from_json(raw)
        return None

    def create_client(self, realm: str, representation: Mapping[str, Any]) -> str:
        client_id = str(representation["clientId"])

        def existing() -> str | None:
            found = self.find_client(realm, client_id)
            return found.id if found else None

        return self._create(admin_path(realm, "clients"), dict(representation), existing)

    def service_account_user(self, realm: str, client_uuid: str) -> User | None:
        raw = self._lookup(admin_path(realm, "clients", client_uuid, "service-account-user"))
        return None if raw is None else User.from_json(raw)

    # -- role details ---------------------------------------------------------------------------

    def update_realm_role(self, realm: str, name: str, changes: Mapping[str, Any]) -> None:
        """Overlay `changes` on the live role and PUT it (attributes are replaced whole)."""
        live = self._get(admin_path(realm, "roles", name))
        self._write("PUT", admin_path(realm, "roles", name), {**live, **changes})

    def delete_realm_role(self, realm: str, name: str) -> None:
        self._write("DELETE", admin_path(realm, "roles", name))

    def role_composites(self, realm: str, role_id: str) -> list[Role]:
        """Direct composites (realm and client roles) of a role, by its id."""
        return [Role.from_json(raw) for raw in self._get(admin_path(realm, "roles-by-id", role_id, "composites")) or []]

    def add_role_composites(self, realm: str, role_id: str, roles: list[Role]) -> None:
        self._map_roles("POST", admin_path(realm, "roles-by-id", role_id, "composites"), roles)

    def remove_role_composites(self, realm: str, role_id: str, roles: list[Role]) -> None:
        self._map_roles("DELETE", admin_path(realm, "roles-by-id", role_id, "composites"), roles)

    # -- group details --------------------------------------------------------------------------

    def create_group_with(
        self, realm: str, name: str, parent_id: str | None, fields: Mapping[str, Any] | None = None
    ) -> str:
        """Create a group (top-level or under `parent_id`) with optional attributes in one POST."""
        url = admin_path(realm, "groups") if parent_id is None else admin_path(realm, "groups", parent_id, "children")
        body = {**(fields or {}), "name": name}

        def existing() -> str | None:
            for group in self.list_groups(realm):
                if group.name == name and group.parent_id == parent_id:
                    return group.id
            return None

        return self._create(url, body, existing)

    def update_group(self, realm: str, group_id: str, changes: Mapping[str, Any]) -> None:
        live = self._get(admin_path(realm, "groups", group_id))
        self._write("PUT", admin_path(realm, "groups", group_id), {**live, **changes})

    def delete_group(self, realm: str, group_id: str) -> None:
        self._write("DELETE", admin_path(realm, "groups", group_id))

    def change_group_realm_roles(self, realm: str, group_id: str, add: list[Role], remove: list[Role]) -> None:
        path = admin_path(realm, "groups", group_id, "role-mappings", "realm")
        self._map_roles("POST", path, add)
        self._map_roles("DELETE", path, remove)

    def change_group_client_roles(
        self, realm: str, group_id: str, client_uuid: str, add: list[Role], remove: list[Role]
    ) -> None:
        path = admin_path(realm, "groups", group_id, "role-mappings", "clients", client_uuid)
        self._map_roles("POST", path, add)
        self._map_roles("DELETE", path, remove)

    def list_default_groups(self, realm: str) -> list[Group]:
        return [Group.from_json(raw) for raw in self._get(admin_path(realm, "default-groups")) or []]

    def add_default_group(self, realm: str, group_id: str) -> None:
        self._write("PUT", admin_path(realm, "default-groups", group_id))

    def remove_default_group(self, realm: str, group_id: str) -> None:
        self._write("DELETE", admin_path(realm, "default-groups", group_id))

    # -- user role mappings ---------------------------------------------------------------------

    def user_realm_roles(self, realm: str, user_id: str, *, effective: bool = False) -> list[Role]:
        """The user's realm roles: direct mappings, or with `effective` also those from groups and composites."""
        parts = ("users", user_id, "role-mappings", "realm") + (("composite",) if effective else ())
        return [Role.from_json(raw) for raw in self._get(admin_path(realm, *parts)) or []]

    # -- clients, client scopes, protocol mappers, client roles (realm as code) ------------------

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

    # -- user profile, components (LDAP federation and mappers), realm attributes -----------------

    def get_user_profile(self, realm: str) -> UserProfileConfig:
        """The realm's declarative user profile (every realm has one; a new realm gets Keycloak's default)."""
        return UserProfileConfig.from_json(self._get(admin_path(realm, "users", "profile")) or {})

    def update_user_profile(self, realm: str, config: UserProfileConfig) -> None:
        """PUT the whole profile; Keycloak validates all of it at once and refuses it whole (Rejected)."""
        self._write("PUT", admin_path(realm, "users", "profile"), config.to_json())

    def list_components(self, realm: str, *, provider_type: str, parent_id: str | None = None) -> list[Component]:
        """Components of one type under `parent_id` (the realm's own id when None, as Keycloak defaults)."""
        params = {"type": provider_type, **({"parent": parent_id} if parent_id else {})}
        return [Component.from_json(raw) for raw in self._get(admin_path(realm, "components"), params) or []]

    def get_component(self, realm: str, component_id: str) -> Component | None:
        raw = self._lookup(admin_path(realm, "components", component_id))
        return None if raw is None else Component.from_json(raw)

    def create_component(
        self,
        realm: str,
        *,
        name: str,
        provider_id: str,
        provider_type: str,
        parent_id: str,
        config: Mapping[str, Sequence[str]],
        component_id: str | None = None,
    ) -> str:
        """Create a component and return its id; a lost answer is settled by looking it up (by id when
        `component_id` is given, which Keycloak keeps: the caller may record it before creating)."""
        body = {
            "name": name,
            "providerId": provider_id,
            "providerType": provider_type,
            "parentId": parent_id,
            "config": {key: list(values) for key, values in config.items()},
            **({"id": component_id} if component_id else {}),
        }

        def existing() -> str | None:
            if component_id:
                return component_id if self.get_component(realm, component_id) else None
            for component in self.list_components(realm, provider_type=provider_type, parent_id=parent_id):
                if component.name == name and component.provider_id == provider_id:
                    return component.id
            return None

        return self._create(admin_path(realm, "components"), body, existing)

    def update_component(
        self, realm: str, component_id: str, config: Mapping[str, Sequence[str]], *, name: str | None = None
    ) -> None:
        """Overlay `config` keys on the live component and PUT it; the component keeps its id.

        Masked secrets (`**********`) read back are sent back as they are: Keycloak keeps the stored value.
        """
        live = self._get(admin_path(realm, "components", component_id))
        body = {**live, "config": {**(live.get("config") or {}), **{k: list(v) for k, v in config.items()}}}
        if name is not None:
            body["name"] = name
        self._write("PUT", admin_path(realm, "components", component_id), body)

    def delete_component(self, realm: str, component_id: str) -> None:
        """Delete a component and its sub-components. For a user federation this deletes its imported users."""
        self._write("DELETE", admin_path(realm, "components", component_id))

    def test_ldap_connection(self, realm: str, component_id: str, *, authenticate: bool = True) -> ConnectionCheck:
        """Keycloak's own LDAP test for a stored federation (its stored bind credential): connect, and bind
        when `authenticate`. Changes nothing, so a read-only gateway may call it."""
        component = self.get_component(realm, component_id)
        if component is None:
            return ConnectionCheck(False, f"no component '{component_id}' in realm '{realm}'")

        def first(key: str, default: str = "") -> str:
            values = component.config.get(key) or ()
            return values[0] if values else default

        body = {
            "action": "testAuthentication" if authenticate else "testConnection",
            "componentId": component_id,
            "connectionUrl": first("connectionUrl"),
            "authType": first("authType", "simple"),
            "bindDn": first("bindDn"),
            "bindCredential": first("bindCredential"),  # the mask: Keycloak uses the stored credential
            "useTruststoreSpi": first("useTruststoreSpi", "always"),
            "connectionTimeout": first("connectionTimeout"),
            "startTls": first("startTls", "false"),
        }
        path = admin_path(realm, "testLDAPConnection")
        try:
            self._transport.request("POST", path, body=body, reads_only=True)
        except Rejected as error:
            return ConnectionCheck(False, str(error))
        return ConnectionCheck(True)

    def sync_user_storage(self, realm: str, component_id: str, *, full: bool = True) -> SyncResult:
        """Run a federation's sync now: every user (`full`) or only those changed since the last sync."""
        action = "triggerFullSync" if full else "triggerChangedUsersSync"
        response = self._write(
            "POST", admin_path(realm, "user-storage", component_id, "sync"), params={"action": action}
        )
        return SyncResult.from_json(response.body or {})

    def set_realm_attributes(self, realm: str, values: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        """Set and remove realm attributes, keeping every other one (Keycloak replaces the map whole)."""
        live = self.get_realm(realm)
        if live is None:
            raise Rejected(f"realm '{realm}' does not exist")
        attributes = {str(k): v for k, v in (live.representation.get("attributes") or {}).items()}
        for key in remove:
            attributes.pop(key, None)
        attributes.update(values)
        self._write("PUT", admin_path(realm), {**live.representation, "attributes": attributes})

    # -- authentication: required actions and flows (realm as code) ------------------------------

    def list_required_actions(self, realm: str) -> list[RequiredAction]:
        return [
            RequiredAction.from_json(raw)
            for raw in self._get(admin_path(realm, "authentication", "required-actions")) or []
        ]

    def list_unregistered_required_actions(self, realm: str) -> list[RequiredActionProvider]:
        path = admin_path(realm, "authentication", "unregistered-required-actions")
        return [RequiredActionProvider.from_json(raw) for raw in self._get(path) or []]

    def register_required_action(self, realm: str, provider_id: str, name: str) -> None:
        """Register an installed provider (Keycloak enables it at the end of the priority list).

        Registering twice answers 409, which here means "already registered": nothing to do.
        """
        path = admin_path(realm, "authentication", "register-required-action")
        try:
            self._write("POST", path, {"providerId": provider_id, "name": name})
        except Conflict:
            return
        except OutcomeUnknown:
            if not any(action.provider_id == provider_id for action in self.list_required_actions(realm)):
                self._write("POST", path, {"providerId": provider_id, "name": name})

    def update_required_action(self, realm: str, alias: str, changes: Mapping[str, Any]) -> None:
        """Overlay `changes` (enabled, defaultAction, priority, config) on the live action and PUT it whole.

        The PUT replaces the whole action: a field left out is nulled (alias and name included), so the
        live representation is always read first.
        """
        path = admin_path(realm, "authentication", "required-actions", alias)
        self._write("PUT", path, {**self._get(path), **changes})

    def list_flows(self, realm: str) -> list[AuthFlow]:
        """Top-level authentication flows (sub-flows are reached through their parent's executions)."""
        return [AuthFlow.from_json(raw) for raw in self._get(admin_path(realm, "authentication", "flows")) or []]

    def find_flow(self, realm: str, alias: str) -> AuthFlow | None:
        return next((flow for flow in self.list_flows(realm) if flow.alias == alias), None)

    def copy_flow(self, realm: str, source_alias: str, new_alias: str) -> str:
        """Copy a flow with its sub-flows (named `<new_alias> <sub-flow>`) and configs; returns the new id."""

        def existing() -> str | None:
            found = self.find_flow(realm, new_alias)
            return found.id if found else None

        path = admin_path(realm, "authentication", "flows", source_alias, "copy")
        return self._create(path, {"newName": new_alias}, existing)

    def flow_executions(self, realm: str, flow_alias: str) -> list[FlowExecution]:
        """Every execution of a flow and of its sub-flows, flattened: parents first, in execution order."""
        path = admin_path(realm, "authentication", "flows", flow_alias, "executions")
        return [FlowExecution.from_json(raw) for raw in self._get(path) or []]

    def execution_config(self, realm: str, config_id: str) -> dict[str, str] | None:
        raw = self._lookup(admin_path(realm, "authentication", "config", config_id))
        return None if raw is None else {str(k): str(v) for k, v in (raw.get("config") or {}).items()}

    def add_flow_subflow(
        self, realm: str, parent_alias: str, alias: str, *, priority: int, description: str = ""
    ) -> FlowExecution:
        """Append a basic sub-flow to `parent_alias`; returns its execution (Keycloak answers with the flow id)."""
        body = {
            "alias": alias,
            "type": "basic-flow",
            "provider": "registration-page-form",
            "description": description,
            "priority": priority,
        }

        def child() -> FlowExecution | None:
            rows = self.flow_executions(realm, parent_alias)
            return next((row for row in rows if row.level == 0 and row.flow_id and row.display_name == alias), None)

        def existing() -> str | None:
            found = child()
            return found.flow_id if found else None

        self._create(admin_path(realm, "authentication", "flows", parent_alias, "executions", "flow"), body, existing)
        created = child()
        if created is None:
            raise Rejected(f"sub-flow '{alias}' of '{parent_alias}' in realm '{realm}' vanished after creation")
        return created

    def add_flow_execution(self, realm: str, flow_alias: str, provider: str, *, priority: int) -> str:
        """Append an authenticator (DISABLED until its requirement is set); returns the execution id.

        The id comes only in the Location header. A lost answer is settled by the execution with this
        provider and priority at the top level of the flow.
        """

        def existing() -> str | None:
            rows = self.flow_executions(realm, flow_alias)
            found = [r for r in rows if r.level == 0 and r.provider_id == provider and r.priority == priority]
            return found[0].id if found else None

        path = admin_path(realm, "authentication", "flows", flow_alias, "executions", "execution")
        return self._create(path, {"provider": provider, "priority": priority}, existing)

    def set_execution_requirement(
        self, realm: str, flow_alias: str, execution: FlowExecution, requirement: str
    ) -> None:
        """Set an execution's requirement, keeping its priority.

        Keycloak treats a priority left out of this PUT as 0 and moves the execution first in its flow.
        """
        body = {**execution.representation, "requirement": requirement, "priority": execution.priority}
        self._write("PUT", admin_path(realm, "authentication", "flows", flow_alias, "executions"), body)

    def add_execution_config(self, realm: str, execution_id: str, alias: str, config: Mapping[str, str]) -> str:
        """Attach a config to an execution; returns the config id."""

        def existing() -> str | None:
            raw = self._lookup(admin_path(realm, "authentication", "executions", execution_id)) or {}
            found = raw.get("authenticatorConfig")
            return str(found) if found else None

        path = admin_path(realm, "authentication", "executions", execution_id, "config")
        return self._create(path, {"alias": alias, "config": dict(config)}, existing)

    def delete_flow(self, realm: str, flow_id: str) -> None:
        """Delete a top-level flow and its sub-flows. Keycloak answers 500 for a flow still bound to the
        realm, so callers check bindings first."""
        self._write("DELETE", admin_path(realm, "authentication", "flows", flow_id))

    def list_role_groups(self, realm: str, role_name: str) -> list[Group]:
        """Groups granted a realm role directly."""
        path = admin_path(realm, "roles", role_name, "groups")
        return [Group.from_json(raw) for raw in self._paged(path, {"briefRepresentation": "false"})]

    def set_user_required_actions(self, realm: str, user_id: str, actions: Sequence[str]) -> None:
        """Replace the user's required actions with one partial PUT.

        A user PUT without `attributes` keeps attributes, names, email and flags (checked on 26.x), so
        no read is needed when the caller already holds the user's current actions.
        """
        self._write("PUT", admin_path(realm, "users", user_id), {"requiredActions": list(actions)})

    # -- the signed-in user's own account (account REST API) --------------------------------------

    def own_account(self, realm: str) -> User:
        """The signed-in user's own account as the account console reads it: only the attributes the user
        profile lets that user view. For a gateway logged in as an end user of `realm` (password grant)."""
        return User.from_json({"enabled": True, **(self._get(f"/realms/{quote(realm, safe='')}/account/") or {})})

    # -- server ---------------------------------------------------------------------------------

    def server_version(self) -> str:
        """Keycloak's version, as the admin API reports it (recorded with benchmark results)."""
        info = self._get("/admin/serverinfo") or {}
        return str((info.get("systemInfo") or {}).get("version", "unknown"))

    # -- group membership -------------------------------------------------------------------------

    def add_user_to_group(self, realm: str, user_id: str, group_id: str) -> None:
        """Make the user a direct member of the group (idempotent: joining twice changes nothing)."""
        self._write("PUT", admin_path(realm, "users", user_id, "groups", group_id))

    # -- required actions: unregistering (operators and tests; the agent never deletes one) -----------

    def unregister_required_action(self, realm: str, alias: str) -> None:
        """Remove a required action from the realm; its provider stays installed and can be registered again."""
        self._write("DELETE", admin_path(realm, "authentication", "required-actions", alias))

    # -- identity sync: bulk creates, users by attribute, memberships, sessions ----------------

    def import_users(self, realm: str, users: Sequence[Mapping[str, Any]]) -> list[ImportedUser]:
        """Create users in one transaction with partialImport, skipping usernames that exist.

        With SKIP a resend cannot duplicate anything, so a lost answer is simply sent again. Created users
        get no default roles or default required actions from Keycloak: callers include them.
        """
        body = {"ifResourceExists": "SKIP", "users": list(users)}
        path = admin_path(realm, "partialImport")
        try:
            response = self._write("POST", path, body)
        except OutcomeUnknown:
            response = self._write("POST", path, body)
        return [
            ImportedUser(str(result["resourceName"]), str(result["id"]), str(result["action"]))
            for result in (response.body or {}).get("results") or ()
            if result.get("resourceType") == "USER"
        ]

    def list_users_with_attribute(
        self, realm: str, name: str, value: str, *, page_size: int = PAGE_SIZE
    ) -> Iterator[User]:
        """Users (full representation) whose attribute `name` has exactly `value`."""
        params = {"q": f"{name}:{value}", "briefRepresentation": "false"}
        for raw in self._paged(admin_path(realm, "users"), params, page_size):
            user = User.from_json(raw)
            if value in user.attributes.get(name, ()):
                yield user

    def user_group_paths(self, realm: str, user_id: str) -> list[str]:
        return [str(raw["path"]) for raw in self._paged(admin_path(realm, "users", user_id, "groups"))]

    def remove_user_from_group(self, realm: str, user_id: str, group_id: str) -> None:
        self._write("DELETE", admin_path(realm, "users", user_id, "groups", group_id))

    def list_consents(self, realm: str, user_id: str) -> list[str]:
        """clientIds the user consented to or holds offline tokens for (Keycloak lists both as consents)."""
        return [str(raw["clientId"]) for raw in self._get(admin_path(realm, "users", user_id, "consents")) or []]

    def revoke_consent(self, realm: str, user_id: str, client_id: str) -> None:
        """Revoke consent and offline tokens of one client (takes the human clientId, not the uuid)."""
        self._write("DELETE", admin_path(realm, "users", user_id, "consents", client_id))

    def is_locked_out(self, realm: str, user_id: str) -> bool:
        """True while brute-force detection holds the user locked (temporarily or permanently)."""
        status = self._get(admin_path(realm, "attack-detection", "brute-force", "users", user_id)) or {}
        return bool(status.get("disabled"))

    def list_raw_users(self, realm: str, *, page_size: int = PAGE_SIZE) -> Iterator[Mapping[str, Any]]:
        """Every user's full representation as Keycloak sends it (for callers that keep only part of 100k)."""
        yield from self._paged(admin_path(realm, "users"), {"briefRepresentation": "false"}, page_size)

    def replace_user(self, realm: str, user_id: str, representation: Mapping[str, Any]) -> None:
        """PUT a whole user the caller already holds in full (see `update_user`, which reads it first)."""
        self._write("PUT", admin_path(realm, "users", user_id), dict(representation))

    # -- access reviews: one export for roles/groups/clients, direct members per role and group, events --------

    def export_access(self, realm: str) -> AccessExport:
        """Roles with composites, groups with grants, clients and service accounts, in one partial export."""
        exported = self._export(realm, clients=True, groups_and_roles=True)
        roles_raw = exported.get("roles") or {}
        roles = [ExportedRole.from_json(raw, None) for raw in roles_raw.get("realm") or ()]
        for client, client_roles in (roles_raw.get("client") or {}).items():
            roles.extend(ExportedRole.from_json(raw, str(client)) for raw in client_roles or ())
        return AccessExport(
            roles=tuple(roles),
            groups=tuple(_flatten_groups(exported.get("groups") or (), parent_id=None)),
            clients=tuple(Client.from_json(raw) for raw in exported.get("clients") or ()),
            service_accounts=tuple(ExportedUser.from_json(raw) for raw in exported.get("users") or ()),
            default_role=(exported.get("defaultRole") or {}).get("name"),
        )

    def role_member_ids(
        self, realm: str, role_name: str, *, client_uuid: str | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[str]:
        """Ids of the users a realm role (or a client role of `client_uuid`) is mapped on directly."""
        parts: tuple[str, ...] = ("roles", role_name, "users")
        if client_uuid is not None:
            parts = ("clients", client_uuid, *parts)
        for raw in self._paged(admin_path(realm, *parts), {"briefRepresentation": "true"}, page_size):
            yield str(raw["id"])

    def group_member_ids(self, realm: str, group_id: str, *, page_size: int = PAGE_SIZE) -> Iterator[str]:
        """Ids of the group's direct members (not those of its sub-groups)."""
        path = admin_path(realm, "groups", group_id, "members")
        for raw in self._paged(path, {"briefRepresentation": "true"}, page_size):
            yield str(raw["id"])

    def user_credential_types(self, realm: str, user_id: str) -> frozenset[str]:
        """The types of the user's stored credentials (password, otp, webauthn ...); never their values."""
        credentials = self._get(admin_path(realm, "users", user_id, "credentials")) or ()
        return frozenset(str(raw.get("type")) for raw in credentials)

    def list_login_events(
        self, realm: str, types: Sequence[str], *, since_ms: int, first: int, max_results: int
    ) -> list[LoginEvent]:
        """One page of stored user events of `types` at or after `since_ms`, oldest first (so paging is stable
        while new events arrive: they land on later pages)."""
        params = {"type": list(types), "dateFrom": str(since_ms), "direction": "asc"}
        page = self._get(admin_path(realm, "events"), {**params, "first": first, "max": max_results}) or ()
        return [LoginEvent.from_json(raw) for raw in page]

    def list_users_page(self, realm: str, *, first: int, max_results: int, brief: bool = True) -> list[User]:
        """One page of the user listing (Keycloak orders it by username), for callers that fetch pages
        concurrently; `list_users` pages sequentially."""
        params = {"briefRepresentation": str(brief).lower(), "first": first, "max": max_results}
        return [User.from_json(raw) for raw in self._get(admin_path(realm, "users"), params) or ()]

    # -- sanctions: user lookups, sessions, attributes, client roles ------------------------------

    def find_user_by_email(self, realm: str, email: str) -> User | None:
        """The user with exactly this e-mail address (compared without case)."""
        matches = self._get(admin_path(realm, "users"), {"email": email, "exact": "true"}) or []
        wanted = email.lower()
        for raw in matches:
            if str(raw.get("email") or "").lower() == wanted:
                return User.from_json(raw)
        return None

    def user_session_count(self, realm: str, user_id: str) -> int:
        """The user's online (browser and refresh-token) sessions."""
        return len(self._get(admin_path(realm, "users", user_id, "sessions")) or [])

    def user_offline_session_count(self, realm: str, user_id: str, client_uuid: str) -> int:
        """The user's offline sessions (offline tokens) for one client, by the client's internal id."""
        return len(self._get(admin_path(realm, "users", user_id, "offline-sessions", client_uuid)) or [])

    def user_client_roles(self, realm: str, user_id: str, client_uuid: str, *, effective: bool = False) -> list[Role]:
        """The user's roles of one client: direct, or with `effective` also from groups and composites."""
        parts = ("users", user_id, "role-mappings", "clients", client_uuid) + (("composite",) if effective else ())
        return [Role.from_json(raw) for raw in self._get(admin_path(realm, *parts)) or []]

    def set_user_attributes(self, realm: str, user_id: str, values: Mapping[str, Sequence[str]]) -> None:
        """Set the named attributes (an empty list removes one), keeping every other attribute.

        Keycloak replaces the whole attribute map on PUT, so the live user is read first.
        """
        live = self._get(admin_path(realm, "users", user_id))
        attributes = {str(key): list(items) for key, items in (live.get("attributes") or {}).items()}
        for name, items in values.items():
            if items:
                attributes[name] = list(items)
            else:
                attributes.pop(name, None)
        self._write("PUT", admin_path(realm, "users", user_id), {**live, "attributes": attributes})


def _flatten_groups(raw_groups: Any, parent_id: str | None) -> Iterator[Group]:
    """Groups of an export tree (`subGroups` nested) as a flat list, parents before children."""
    for raw in raw_groups:
        children = list(raw.get("subGroups") or ())
        yield Group.from_json({**raw, "parentId": parent_id, "subGroupCount": len(children)})
    for raw in raw_groups:
        yield from _flatten_groups(raw.get("subGroups") or (), parent_id=str(raw["id"]))
