"""Reads of the live realm for one plan, each made once and shared by every kind that needs it."""

from __future__ import annotations

from functools import cached_property

from agent.keycloak import Client, Group, KeycloakGateway, Role
from agent.keycloak.models import (
    LDAP_MAPPER_PROVIDER,
    USER_STORAGE_PROVIDER,
    ClientScope,
    Component,
    RequiredAction,
    RequiredActionProvider,
)
from agent.realm.kinds.base import LiveRealm


def read_live_realm(gateway: KeycloakGateway, realm: str) -> LiveRealm:
    live = gateway.get_realm(realm)
    if live is None:
        return LiveRealm(realm, exists=False, id="", representation={})
    return LiveRealm(realm, exists=True, id=live.id, representation=live.representation)


class LiveReader:
    """Memoized reads; a realm that does not exist yet reads as empty without asking Keycloak."""

    def __init__(self, gateway: KeycloakGateway, realm: LiveRealm) -> None:
        self.gateway = gateway
        self.realm = realm
        self._client_roles: dict[str, list[Role]] = {}

    @property
    def name(self) -> str:
        return self.realm.name

    @cached_property
    def realm_roles(self) -> dict[str, Role]:
        if not self.realm.exists:
            return {}
        return {role.name: role for role in self.gateway.list_realm_roles(self.name)}

    @cached_property
    def groups(self) -> dict[str, Group]:
        if not self.realm.exists:
            return {}
        return {group.path: group for group in self.gateway.list_groups(self.name)}

    @cached_property
    def clients(self) -> dict[str, Client]:
        if not self.realm.exists:
            return {}
        return {client.client_id: client for client in self.gateway.list_clients(self.name)}

    def client_roles(self, client_id: str) -> list[Role]:
        client = self.clients.get(client_id)
        if client is None:
            return []
        if client_id not in self._client_roles:
            self._client_roles[client_id] = self.gateway.list_client_roles(self.name, client.id)
        return self._client_roles[client_id]

    @cached_property
    def client_scopes(self) -> dict[str, ClientScope]:
        """Every client scope by name, with its attributes and protocol mappers."""
        if not self.realm.exists:
            return {}
        return {scope.name: scope for scope in self.gateway.list_client_scopes(self.name)}

    # -- user federation (LDAP) -------------------------------------------------------------------

    @cached_property
    def user_storage(self) -> list[Component]:
        """The realm's user federations (LDAP, Kerberos, custom providers), as components."""
        if not self.realm.exists:
            return []
        return self.gateway.list_components(self.name, provider_type=USER_STORAGE_PROVIDER, parent_id=self.realm.id)

    @cached_property
    def ldap_mappers(self) -> dict[str, list[Component]]:
        """The mappers of every LDAP federation, by federation id."""
        return {
            federation.id: self.gateway.list_components(
                self.name, provider_type=LDAP_MAPPER_PROVIDER, parent_id=federation.id
            )
            for federation in self.user_storage
            if federation.provider_id == "ldap"
        }

    # -- authentication: required actions ----------------------------------------------------------

    @cached_property
    def required_actions(self) -> dict[str, RequiredAction]:
        """Registered required actions by alias."""
        if not self.realm.exists:
            return {}
        return {action.alias: action for action in self.gateway.list_required_actions(self.name)}

    @cached_property
    def unregistered_required_actions(self) -> dict[str, RequiredActionProvider]:
        """Installed required-action providers not registered in the realm, by provider id."""
        if not self.realm.exists:
            return {}
        return {p.provider_id: p for p in self.gateway.list_unregistered_required_actions(self.name)}
