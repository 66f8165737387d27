"""Access reviews: one export for roles, groups and clients; direct members per role and group; events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from agent.keycloak.base import PAGE_SIZE, GatewayBase, flatten_groups
from agent.keycloak.models import (
    AccessExport,
    Client,
    ExportedRole,
    ExportedUser,
    LoginEvent,
    User,
)
from agent.keycloak.transport import admin_path


class ReviewCalls(GatewayBase):
    """Bulk reads for access-review snapshots and login events."""

    def export_access(self, realm: str) -> AccessExport:
        """Roles with composites, groups with grants, clients and service accounts, in one partial export."""
        exported = self._export(realm, clients=True, groups_and_roles=True)
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
