"""Sanctions: user lookups, sessions, attributes and client roles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.keycloak.base import GatewayBase
from agent.keycloak.models import (
    Role,
    User,
)
from agent.keycloak.transport import admin_path


class SanctionCalls(GatewayBase):
    """What enforcing and verifying a sanction reads and writes."""

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
