"""Client scopes (description, protocol, token-scope flag, attributes), owned by mark; their protocol
mappers are planned by the protocol-mappers kind in protocol_mappers.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.keycloak import KeycloakGateway
from agent.keycloak.models import ClientScope
from agent.realm.kinds.base import BUILT_IN_CLIENT_SCOPES, OWNER_ATTRIBUTE, LiveRealm, is_owned, may_delete
from agent.realm.live import LiveReader
from agent.realm.plan import Change, diff_fields
from agent.realm.spec import ClientScopeSpec, RealmSpec

KIND = "client scopes"
INCLUDE_IN_TOKEN_SCOPE = "include.in.token.scope"  # noqa: S105 - an attribute name, not a secret
# Keycloak 26 also creates the SAML scope AuthnContextClassRef in every new realm.
KEYCLOAK_CLIENT_SCOPES = BUILT_IN_CLIENT_SCOPES | {"AuthnContextClassRef"}


def is_protected_scope(name: str) -> bool:
    return name in KEYCLOAK_CLIENT_SCOPES


def scope_fields(scope: ClientScopeSpec, *, owned_mark: bool) -> dict[str, Any]:
    """Keycloak fields the spec manages; attributes not written (and the mapper ownership list) stay."""
    fields: dict[str, Any] = {"protocol": scope.protocol}
    if scope.description is not None:
        fields["description"] = scope.description
    attributes = dict(scope.attributes or {})
    if scope.include_in_token_scope is not None:
        attributes[INCLUDE_IN_TOKEN_SCOPE] = str(scope.include_in_token_scope).lower()
    if owned_mark:
        attributes[OWNER_ATTRIBUTE] = "true"
    if attributes:
        fields["attributes"] = attributes
    return fields


def live_attributes(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Live attributes as comparable with desired ones: Keycloak drops an attribute written as "" (that
    is how one is removed), so an absent attribute equals an empty one."""
    absent = {key: "" for key, value in desired.items() if value == "" and key not in live}
    return {**live, **absent}


def _live_fields(scope: ClientScope, desired: Mapping[str, Any]) -> dict[str, Any]:
    attributes = live_attributes(scope.attributes, desired.get("attributes") or {})
    return {"protocol": scope.protocol, "description": scope.description, "attributes": attributes}


def plan_client_scopes(spec: RealmSpec, live: Mapping[str, ClientScope]) -> list[Change]:
    """Create missing scopes, update differing ones, delete owned scopes no longer written (never built-ins)."""
    if spec.client_scopes is None:
        return []
    changes: list[Change] = []
    wanted = {scope.name: scope for scope in spec.client_scopes}
    for name, scope in wanted.items():
        current = live.get(name)
        if current is None:
            fields = scope_fields(scope, owned_mark=True)
            changes.append(Change(KIND, "create", name, diff_fields({}, fields), desired=fields))
            continue
        fields = scope_fields(scope, owned_mark=is_owned(current.attributes))
        differing = diff_fields(_live_fields(current, fields), fields)
        if differing:
            changes.append(Change(KIND, "update", name, differing, desired=fields, live=current))
    for name, current in sorted(live.items()):
        if name in wanted:
            continue
        if may_delete(
            spec.managed.client_scopes, owned=is_owned(current.attributes), protected=is_protected_scope(name)
        ):
            changes.append(Change(KIND, "delete", name, live=current))
    return changes


class ClientScopes:
    name = KIND

    def read(self, live: LiveReader) -> dict[str, ClientScope]:
        return live.client_scopes

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: dict[str, ClientScope]) -> list[Change]:
        return plan_client_scopes(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "create":
            gateway.create_client_scope(realm, {**change.desired, "name": change.key})
        elif change.action == "update":
            gateway.update_client_scope(realm, change.live.id, change.desired)
        else:
            gateway.delete_client_scope(realm, change.live.id)
