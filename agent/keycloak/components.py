"""User profile, components (LDAP federation and its mappers) and realm attributes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.errors import Rejected
from agent.keycloak.base import GatewayBase
from agent.keycloak.models import (
    Component,
    ConnectionCheck,
    SyncResult,
    UserProfileConfig,
)
from agent.keycloak.transport import admin_path


class ComponentCalls(GatewayBase):
    """User profile, components and LDAP federation, realm attributes."""

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
