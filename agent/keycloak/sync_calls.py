"""Identity sync: bulk creates, users by attribute, memberships, consents, lockouts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from agent.errors import AuthError, Conflict, OutcomeUnknown, Rejected, Unavailable
from agent.keycloak.base import PAGE_SIZE, GatewayBase
from agent.keycloak.models import (
    DirectAccess,
    ImportedUser,
    User,
    UserChange,
)
from agent.keycloak.transport import admin_path, realm_path

# Changes per request of the plugin's `users/changes` (one Keycloak transaction; UserChanges.MAX_CHANGES).
MAX_USER_CHANGES = 500
# Users per request of the plugin's `access/direct-grants` (their ids go in the URL; AccessResource.MAX_IDS).
MAX_DIRECT_GRANT_IDS = 80


class SyncCalls(GatewayBase):
    """What the identity sync needs beyond plain user calls."""

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

    def change_users(self, realm: str, changes: Sequence[UserChange]) -> dict[str, str] | None:
        """Make many users' changes in one request to the idp-agent plugin (`plugins/keycloak`, UserChanges):
        user id -> why Keycloak refused that user's change (nothing of it made); every other change was made.

        None where the plugin does not take them: not installed (404), a realm with user federation (409), an
        account that may not (401/403), or the request failed inside Keycloak (500, the transaction rolled back):
        the caller makes the same changes through the admin API, which says per user what is wrong. The changes
        are idempotent (a PUT), so a lost answer is resent, never left unknown.
        """
        if len(changes) > MAX_USER_CHANGES:
            raise ValueError(f"at most {MAX_USER_CHANGES} changes a request, not {len(changes)}")
        path = realm_path(realm, "idp-agent", "users", "changes")
        try:
            response = self._write("PUT", path, {"users": [change.body() for change in changes]})
        except (AuthError, Conflict, Rejected):
            return None
        except Unavailable as error:
            if error.status != 500:
                raise
            return None
        return {str(refused["id"]): str(refused["error"]) for refused in (response.body or {}).get("users") or ()}

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

    def direct_access(self, realm: str, user_id: str, *, groups: bool = True, roles: bool = True) -> DirectAccess:
        """The user's direct group memberships (one read, unless not asked for) and role mappings (one read,
        likewise); nothing of a user that is gone."""
        paths = self._group_paths_if_found(realm, user_id) if groups else []
        mappings = self._lookup(admin_path(realm, "users", user_id, "role-mappings")) if roles else {}
        if paths is None or mappings is None:
            return DirectAccess()
        client_roles = {
            (str(found.get("client") or client), str(role["name"]))
            for client, found in (mappings.get("clientMappings") or {}).items()
            for role in found.get("mappings") or ()
        }
        return DirectAccess(
            groups=frozenset(paths),
            realm_roles=frozenset(str(role["name"]) for role in mappings.get("realmMappings") or ()),
            client_roles=frozenset(client_roles),
        )

    def direct_grant_ids(
        self, realm: str, user_ids: Sequence[str]
    ) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]] | None:
        """What `direct_access` gives, for up to MAX_DIRECT_GRANT_IDS users in one request to the idp-agent plugin,
        by id: (user id -> role ids mapped on them directly, user id -> ids of the groups they are in). None where
        the plugin does not answer (see `_plugin_lookup`): the caller reads `direct_access` of each."""
        if len(user_ids) > MAX_DIRECT_GRANT_IDS:
            raise ValueError(f"at most {MAX_DIRECT_GRANT_IDS} users a request, not {len(user_ids)}")
        raw = self._plugin_lookup(realm, "access", "direct-grants", params={"id": list(user_ids)})
        if raw is None:
            return None

        def by_user(found: Mapping[str, Sequence[str]] | None) -> dict[str, frozenset[str]]:
            return {str(user): frozenset(str(value) for value in values) for user, values in (found or {}).items()}

        return by_user(raw.get("roles")), by_user(raw.get("groups"))

    def _group_paths_if_found(self, realm: str, user_id: str) -> list[str] | None:
        """`user_group_paths`, or None for a user that is gone (a first page that was full is read again whole)."""
        page = self._lookup(admin_path(realm, "users", user_id, "groups"), {"first": 0, "max": PAGE_SIZE})
        if page is None:
            return None
        if len(page) < PAGE_SIZE:
            return [str(group["path"]) for group in page]
        return self.user_group_paths(realm, user_id)

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

    def list_raw_users(
        self, realm: str, *, page_size: int = PAGE_SIZE, brief: bool = False, workers: int = 1
    ) -> Iterator[Mapping[str, Any]]:
        """Every user as Keycloak sends it, full or brief (for callers that keep only part of 100k). With
        `workers` > 1, that many pages are read at once (Keycloak serves them in parallel)."""
        params = {"briefRepresentation": str(brief).lower()}
        path = admin_path(realm, "users")
        if workers <= 1:
            yield from self._paged(path, params, page_size)
            return
        yield from self._paged_concurrently(path, params, page_size, expected=self._user_count(realm), workers=workers)

    def _user_count(self, realm: str) -> int:
        return int(self._get(admin_path(realm, "users", "count")) or 0)

    def get_raw_user(self, realm: str, user_id: str) -> Mapping[str, Any] | None:
        """One user's full representation as Keycloak sends it; None when there is no such user."""
        raw = self._lookup(admin_path(realm, "users", user_id))
        return None if raw is None else dict(raw)

    def replace_user(self, realm: str, user_id: str, representation: Mapping[str, Any]) -> None:
        """PUT a whole user the caller already holds in full (see `update_user`, which reads it first)."""
        self._write("PUT", admin_path(realm, "users", user_id), dict(representation))
