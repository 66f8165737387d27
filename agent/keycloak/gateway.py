"""The one gateway to Keycloak: realm-explicit calls that return typed values.

Lookups return None when the object is missing. Lists are paged explicitly (PAGE_SIZE). Creates that lose
their answer are verified by an exact lookup before anything is resent (see `_create`).

Calls are grouped by concern, one module each, combined here: realms, users, roles and groups below;
`clients`, `components`, `authentication`, `sync_calls`, `reviews`, `sanctions_calls` beside this file;
the shared plumbing in `base`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from agent.errors import AuthError, Rejected
from agent.keycloak.authentication import AuthenticationCalls
from agent.keycloak.base import PAGE_SIZE, GatewayBase, flatten_groups
from agent.keycloak.clients import ClientCalls
from agent.keycloak.components import ComponentCalls
from agent.keycloak.models import (
    Client,
    Group,
    Realm,
    RealmOutline,
    RequiredAction,
    Role,
    User,
    UserDraft,
    UserProfileConfig,
)
from agent.keycloak.reviews import ReviewCalls
from agent.keycloak.sanctions_calls import SanctionCalls
from agent.keycloak.sync_calls import SyncCalls
from agent.keycloak.transport import RetryPolicy, Transport, admin_path
from agent.secrets import Secret
from agent.settings import KeycloakConnection

__all__ = ["PAGE_SIZE", "KeycloakGateway"]


def _outline(
    settings: Mapping[str, Any], parts: Mapping[str, Any], roles: Any, user_profile: UserProfileConfig
) -> RealmOutline:
    """An outline from the realm's representation, and the groups and required actions in export form."""
    return RealmOutline(
        MappingProxyType(dict(settings)),
        tuple(flatten_groups(parts.get("groups") or (), parent_id=None)),
        tuple(Role.from_json(raw) for raw in roles),
        tuple(RequiredAction.from_json(raw) for raw in parts.get("requiredActions") or ()),
        user_profile,
    )


class KeycloakGateway(
    ClientCalls, ComponentCalls, AuthenticationCalls, SyncCalls, ReviewCalls, SanctionCalls, GatewayBase
):
    """Every call takes the realm explicitly; a read-only twin (`read_only()`) refuses all writes."""

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

    # -- realms ---------------------------------------------------------------------------------

    def list_realm_names(self) -> list[str]:
        return [str(raw["realm"]) for raw in self._get("/admin/realms", {"briefRepresentation": "true"}) or []]

    def get_realm(self, realm: str) -> Realm | None:
        raw = self._lookup(admin_path(realm))
        return None if raw is None else Realm.from_json(raw)

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

    def create_realm(self, realm: str, settings: Mapping[str, Any] | None = None) -> None:
        body = {"enabled": True, **(settings or {}), "realm": realm}

        def existing() -> str | None:
            return realm if self.get_realm(realm) is not None else None

        self._create("/admin/realms", body, existing)

    def export_realm(self, realm: str) -> dict[str, Any]:
        """Keycloak's partial export (roles, groups, clients; secrets masked by Keycloak). Changes nothing."""
        return self._export(realm, clients=True, groups_and_roles=True)

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
        return list(flatten_groups(exported.get("groups") or (), parent_id=None))

    def read_realm_outline(self, realm: str, *, use_plugin: bool = False) -> RealmOutline:
        """The realm's settings, groups, realm roles, required actions and user profile, as `get_realm`,
        `list_groups`, `list_realm_roles`, `list_required_actions` and `get_user_profile` give them. Each request
        costs Keycloak a few ms of CPU however small its answer, so they are read in as few as can be: one from the
        idp-agent plugin (`use_plugin`); else a partial export, which carries all but the user profile; without
        manage-realm, by the five reads."""
        outline = self._plugin_lookup(realm, "access", "sync-outline") if use_plugin else None
        if outline is not None:
            return _outline(
                outline["realm"], outline, outline["roles"], UserProfileConfig.from_json(outline["userProfile"])
            )
        try:
            exported = self._export(realm, clients=False, groups_and_roles=True)
        except AuthError:
            live = self.get_realm(realm)
            return RealmOutline(
                {} if live is None else live.representation,
                tuple(self._page_groups(realm)),
                tuple(self.list_realm_roles(realm)),
                tuple(self.list_required_actions(realm)),
                self.get_user_profile(realm),
            )
        roles = (exported.get("roles") or {}).get("realm") or ()
        return _outline(exported, exported, roles, self.get_user_profile(realm))

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
