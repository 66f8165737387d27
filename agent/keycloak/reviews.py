"""Access reviews: one export for roles, groups and clients; direct members per role and group; events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from agent.errors import AuthError
from agent.keycloak.base import PAGE_SIZE, GatewayBase, flatten_groups
from agent.keycloak.models import Client, User
from agent.keycloak.review_models import AccessExport, ExportedRole, ExportedUser, LoginEvent, PluginAccess
from agent.keycloak.transport import admin_path


def by_client(roles: Iterable[Mapping[str, Any]], client_ids: Mapping[str, str]) -> dict[str, list[str]]:
    """Client roles' names by their client's clientId (a role's containerId is the client's id)."""
    named: dict[str, list[str]] = {}
    for role in roles:
        if role.get("clientRole"):
            client = str(role.get("containerId"))
            named.setdefault(client_ids.get(client, client), []).append(str(role["name"]))
    return named


def access_from_export(exported: Mapping[str, Any]) -> AccessExport:
    """A partial export's (or the plugin's `access/structure`) roles, groups, clients and service accounts."""
    roles_raw = exported.get("roles") or {}
    roles = [ExportedRole.from_json(raw, None) for raw in roles_raw.get("realm") or ()]
    for client, client_roles in (roles_raw.get("client") or {}).items():
        roles.extend(ExportedRole.from_json(raw, str(client)) for raw in client_roles or ())
    return AccessExport(
        roles=tuple(roles),
        groups=tuple(flatten_groups(exported.get("groups") or (), parent_id=None)),
        clients=tuple(Client.from_json(raw) for raw in exported.get("clients") or ()),
        service_accounts=tuple(ExportedUser.from_json(raw) for raw in exported.get("users") or ()),
        default_role=(exported.get("defaultRole") or {}).get("name"),
    )


class ReviewCalls(GatewayBase):
    """Bulk reads for access-review snapshots and login events."""

    def export_access(self, realm: str, *, use_plugin: bool = True) -> AccessExport:
        """Roles with composites, groups with grants, clients and service accounts, in one partial export.

        Keycloak lets only manage-realm export; a reviewer's account that may only look (view-realm,
        view-users, view-clients) gets the same from the idp-agent plugin in one request (unless `use_plugin` is
        False), else reads it through the listings (see `_access_by_views`)."""
        try:
            exported = self._export(realm, clients=True, groups_and_roles=True)
        except AuthError:
            structure = self._plugin_lookup(realm, "access", "structure") if use_plugin else None
            if structure is None:
                return self._access_by_views(realm)
            exported = dict(structure)
        return access_from_export(exported)

    def _access_by_views(self, realm: str) -> AccessExport:
        """What `export_access` gives, read without manage-realm: clients, realm roles, each client's roles
        and each composite's parts, the group tree, and each service account with its grants. Requests grow
        with clients, composite roles and groups, never with users."""
        clients = tuple(Client.from_json(raw) for raw in self._paged(admin_path(realm, "clients")))
        client_ids = {client.id: client.client_id for client in clients}
        realm_roles = self._paged(admin_path(realm, "roles"), {"briefRepresentation": "false"})
        listed: list[tuple[Any, str | None]] = [(raw, None) for raw in realm_roles]
        for client in clients:
            path = admin_path(realm, "clients", client.id, "roles")
            listed.extend((raw, client.client_id) for raw in self._paged(path, {"briefRepresentation": "false"}))
        roles = tuple(
            ExportedRole.from_json({**raw, "composites": self._composites(realm, raw, client_ids)}, client)
            for raw, client in listed
        )
        accounts = (
            self._service_account(realm, client.id, client_ids) for client in clients if client.service_accounts_enabled
        )
        realm_raw = self._get(admin_path(realm)) or {}
        return AccessExport(
            roles=roles,
            groups=tuple(self._page_groups(realm)),
            clients=clients,
            service_accounts=tuple(account for account in accounts if account is not None),
            default_role=(realm_raw.get("defaultRole") or {}).get("name"),
        )

    def _composites(self, realm: str, raw: Mapping[str, Any], client_ids: Mapping[str, str]) -> dict[str, Any]:
        """A role's direct composites in the export's form: {"realm": [names], "client": {clientId: [names]}}."""
        if not raw.get("composite"):
            return {}
        parts = self._get(admin_path(realm, "roles-by-id", str(raw["id"]), "composites")) or ()
        return {
            "realm": [part["name"] for part in parts if not part.get("clientRole")],
            "client": by_client(parts, client_ids),
        }

    def _service_account(self, realm: str, client_uuid: str, client_ids: Mapping[str, str]) -> ExportedUser | None:
        """A client's service-account user with its directly mapped roles and its groups, as the export has it."""
        raw = self._lookup(admin_path(realm, "clients", client_uuid, "service-account-user"))
        if raw is None:
            return None
        mappings = self._get(admin_path(realm, "users", str(raw["id"]), "role-mappings")) or {}
        groups = self._paged(admin_path(realm, "users", str(raw["id"]), "groups"), {"briefRepresentation": "true"})
        client_roles = {
            str(client): [role["name"] for role in found.get("mappings") or ()]
            for client, found in (mappings.get("clientMappings") or {}).items()
        }
        return ExportedUser.from_json(
            {
                **raw,
                # The export names the client (clientId); this answer leaves it out.
                "serviceAccountClientId": raw.get("serviceAccountClientId") or client_ids.get(client_uuid),
                "realmRoles": [role["name"] for role in mappings.get("realmMappings") or ()],
                "clientRoles": client_roles,
                "groups": [group["path"] for group in groups],
            }
        )

    def plugin_access(
        self, realm: str, *, skip_role_ids: Iterable[str] = (), users: Sequence[Mapping[str, Any]] | None = None
    ) -> PluginAccess | None:
        """Every role's and group's direct members in one request, and the users with their credentials' types
        in a few pages (or `users`, when the caller read them already), from the idp-agent plugin
        (`plugins/keycloak`); roles in `skip_role_ids` are left out. None when the plugin is not installed (404),
        the realm has user federation (409: members may come from LDAP) or the account may not use it (401/403):
        the caller then reads through the admin API."""
        members = self._plugin_lookup(realm, "access", "memberships", params={"skipRole": list(skip_role_ids)})
        if members is None:
            return None
        listed = users if users is not None else self.plugin_raw_users(realm)
        if listed is None:
            return None
        return PluginAccess.from_json({**members, "users": list(listed)})

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
