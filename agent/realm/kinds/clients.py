"""Clients (OIDC settings, secret, default and optional scopes), updated in place and owned by mark. Their
protocol mappers are a later kind, in protocol_mappers.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.errors import Rejected
from agent.keycloak import Client, KeycloakGateway
from agent.realm.kinds.base import (
    OWNER_ATTRIBUTE,
    LiveRealm,
    fingerprint_attributes,
    is_owned,
    is_protected_client,
    may_delete,
    secret_changed,
)
from agent.realm.kinds.client_scopes import live_attributes
from agent.realm.live import LiveReader
from agent.realm.plan import Change, FieldChange, diff_fields
from agent.realm.spec import ClientSpec, RealmSpec
from agent.secrets import Secret

KIND = "clients"
OIDC = "openid-connect"
POST_LOGOUT_REDIRECT_URIS = "post.logout.redirect.uris"
PKCE_METHOD = "pkce.code.challenge.method"
URI_SEPARATOR = "##"  # how Keycloak joins several post-logout redirect URIs in one attribute
# Keycloak links `service_account` to a client's default scopes when its service account is enabled and
# unlinks it when disabled: left to Keycloak unless the config names it.
KEYCLOAK_LINKED_SCOPES = frozenset({"service_account"})

CLIENT_FIELDS = {
    "name": "name",
    "description": "description",
    "enabled": "enabled",
    "public": "publicClient",
    "root_url": "rootUrl",
    "base_url": "baseUrl",
    "redirect_uris": "redirectUris",
    "web_origins": "webOrigins",
    "standard_flow": "standardFlowEnabled",
    "implicit_flow": "implicitFlowEnabled",
    "direct_access_grants": "directAccessGrantsEnabled",
    "service_account": "serviceAccountsEnabled",
    "consent_required": "consentRequired",
}


def secret_name(client_id: str) -> str:
    """The name under which the fingerprint of a client's secret is recorded in the realm's attributes."""
    return f"client.{client_id}.secret"


def client_fields(client: ClientSpec, *, owned_mark: bool) -> dict[str, Any]:
    """Keycloak fields the spec manages (secret and scope links excluded); attributes not written stay."""
    fields: dict[str, Any] = {}
    for friendly, name in CLIENT_FIELDS.items():
        value = getattr(client, friendly)
        if value is not None:
            fields[name] = list(value) if isinstance(value, tuple) else value
    attributes = dict(client.attributes or {})
    if client.post_logout_redirect_uris is not None:
        attributes[POST_LOGOUT_REDIRECT_URIS] = URI_SEPARATOR.join(client.post_logout_redirect_uris)
    if client.pkce is not None:
        attributes[PKCE_METHOD] = client.pkce
    if owned_mark:
        attributes[OWNER_ATTRIBUTE] = "true"
    if attributes:
        fields["attributes"] = attributes
    return fields


def _live_fields(client: Client, desired: Mapping[str, Any]) -> dict[str, Any]:
    fields = {name: client.representation.get(name) for name in CLIENT_FIELDS.values()}
    attributes = client.representation.get("attributes") or {}
    fields["attributes"] = live_attributes(attributes, desired.get("attributes") or {})
    return fields


@dataclass(frozen=True)
class ScopeLinks:
    """The default and optional client scopes written for a client; None = that list is not managed."""

    default: frozenset[str] | None = None
    optional: frozenset[str] | None = None

    @classmethod
    def of(cls, client: ClientSpec) -> ScopeLinks:
        def as_set(names: tuple[str, ...] | None) -> frozenset[str] | None:
            return None if names is None else frozenset(names)

        return cls(as_set(client.default_client_scopes), as_set(client.optional_client_scopes))

    @property
    def named(self) -> frozenset[str]:
        return (self.default or frozenset()) | (self.optional or frozenset())

    def managed(self, live: Iterable[str]) -> frozenset[str]:
        """The live links this config manages: all but those Keycloak makes itself, unless named."""
        return frozenset(name for name in live if name in self.named or name not in KEYCLOAK_LINKED_SCOPES)


def live_links(client: Client | None) -> tuple[frozenset[str], frozenset[str]]:
    if client is None:
        return frozenset(), frozenset()
    rep = client.representation
    return frozenset(rep.get("defaultClientScopes") or ()), frozenset(rep.get("optionalClientScopes") or ())


def link_changes(links: ScopeLinks, live_default: frozenset[str], live_optional: frozenset[str]) -> list[FieldChange]:
    changes = []
    for field_name, wanted, live in (
        ("default_client_scopes", links.default, live_default),
        ("optional_client_scopes", links.optional, live_optional),
    ):
        current = links.managed(live)
        if wanted is not None and wanted != current:
            changes.append(FieldChange(field_name, sorted(current), sorted(wanted)))
    return changes


LinkStep = tuple[Literal["unlink", "link"], str, bool]


def link_steps(links: ScopeLinks, live_default: frozenset[str], live_optional: frozenset[str]) -> list[LinkStep]:
    """Steps `(action, scope, optional)` that turn the live links into the written ones.

    Unlinks come first: Keycloak ignores linking a scope as optional while it is a default one (and the
    reverse), so a scope that moves is unlinked from its old list even when that list is not managed.
    """
    unlinks: dict[tuple[str, bool], None] = {}
    adds: list[tuple[str, bool]] = []
    for optional, wanted, live, other in (
        (False, links.default, live_default, live_optional),
        (True, links.optional, live_optional, live_default),
    ):
        if wanted is None:
            continue
        unlinks.update(dict.fromkeys((name, optional) for name in sorted(links.managed(live) - wanted)))
        for name in sorted(wanted - live):
            if name in other:
                unlinks[(name, not optional)] = None
            adds.append((name, optional))
    return [("unlink", name, optional) for name, optional in unlinks] + [
        ("link", name, optional) for name, optional in adds
    ]


@dataclass(frozen=True)
class ClientWrite:
    """What the executor writes for one client: fields to PUT (empty: none differ), a secret that changed
    (sent once, its fingerprint recorded afterwards), and the scope links written."""

    fields: Mapping[str, Any]
    secret: Secret | None = None
    links: ScopeLinks = ScopeLinks()


@dataclass(frozen=True)
class LiveClients:
    """Live clients by clientId, and salted hashes of the secrets Keycloak shows (never the secrets)."""

    clients: Mapping[str, Client]
    secret_fingerprints: Mapping[str, str] = field(default_factory=dict)


def secret_differs(live_realm: LiveRealm, live: LiveClients, client: ClientSpec) -> bool:
    """Whether the written secret must be sent to an existing client.

    The live secret's hash decides when Keycloak shows the secret: this catches a secret rotated by hand
    and adopts a realm whose secrets already match. Otherwise the hash recorded when the agent last wrote
    it decides; a public client becoming confidential always gets it (Keycloak would invent one).
    """
    if client.secret is None:
        return False
    live_hash = live.secret_fingerprints.get(client.client_id)
    if live_hash is not None:
        return live_hash != client.secret.fingerprint(live_realm.id.encode())
    current = live.clients.get(client.client_id)
    if current is None or current.public_client:
        return True
    return secret_changed(live_realm, secret_name(client.client_id), client.secret)


def plan_client(client: ClientSpec, live_realm: LiveRealm, live: LiveClients) -> Change | None:
    """Create or update one client; None when it already matches."""
    links = ScopeLinks.of(client)
    current = live.clients.get(client.client_id)
    send_secret = secret_differs(live_realm, live, client)
    if current is None:
        fields = client_fields(client, owned_mark=True)
        shown = [*diff_fields({}, fields), *link_changes(links, frozenset(), frozenset())]
        if client.secret is not None:
            shown.append(FieldChange("secret", None, "set", secret=True))
        write = ClientWrite(fields, client.secret, links)
        return Change(KIND, "create", client.client_id, tuple(shown), desired=write)
    fields = client_fields(client, owned_mark=is_owned(current.representation.get("attributes") or {}))
    differing = list(diff_fields(_live_fields(current, fields), fields))
    if send_secret:
        differing.append(FieldChange("secret", None if current.public_client else "set", "set", secret=True))
    differing.extend(link_changes(links, *live_links(current)))
    if not differing:
        return None
    put_fields = fields if any(change.field in fields for change in differing) else {}
    write = ClientWrite(put_fields, client.secret if send_secret else None, links)
    return Change(KIND, "update", client.client_id, tuple(differing), desired=write, live=current)


def plan_clients(spec: RealmSpec, live_realm: LiveRealm, live: LiveClients) -> list[Change]:
    """Create or update written clients; delete owned ones no longer written, never protected ones."""
    if spec.clients is None:
        return []
    changes = [change for client in spec.clients if (change := plan_client(client, live_realm, live))]
    written = {client.client_id for client in spec.clients}
    for client_id, current in sorted(live.clients.items()):
        if client_id in written:
            continue
        owned = is_owned(current.representation.get("attributes") or {})
        if may_delete(spec.managed.clients, owned=owned, protected=is_protected_client(client_id)):
            changes.append(Change(KIND, "delete", client_id, live=current))
    return changes


def create_body(client_id: str, write: ClientWrite) -> dict[str, Any]:
    """The POST for a new client. `protocol` is left out on purpose: Keycloak 26 then makes an OIDC client
    that is confidential with direct access grants off, while naming the protocol applies the console's
    defaults (a public client with direct access grants on) to every flag the config does not write."""
    body: dict[str, Any] = {"clientId": client_id, **write.fields}
    if write.secret is not None:
        body["secret"] = write.secret.reveal()
    if write.links.default is not None:
        body["defaultClientScopes"] = sorted(write.links.default)
    if write.links.optional is not None:
        body["optionalClientScopes"] = sorted(write.links.optional)
    return body


def sync_scope_links(gateway: KeycloakGateway, realm: str, client_id: str, links: ScopeLinks) -> None:
    """Link and unlink scopes until the client's lists are the written ones (read fresh: a new client
    starts with the realm's defaults)."""
    if links.default is None and links.optional is None:
        return
    client = gateway.find_client(realm, client_id)
    if client is None:
        raise Rejected(f"client '{client_id}' vanished from realm '{realm}'")
    steps = link_steps(links, *live_links(client))
    if not steps:
        return
    scope_ids = {scope.name: scope.id for scope in gateway.list_client_scopes(realm)}
    for action, name, optional in steps:
        if name not in scope_ids:
            raise Rejected(
                f"client '{client_id}' names client scope '{name}', which does not exist in realm '{realm}'",
                hint="add it under client_scopes: or fix the name",
            )
        if action == "unlink":
            gateway.unlink_client_scope(realm, client.id, scope_ids[name], optional=optional)
        else:
            gateway.link_client_scope(realm, client.id, scope_ids[name], optional=optional)


def record_secret_fingerprint(gateway: KeycloakGateway, realm: str, client_id: str, secret: Secret) -> None:
    """Keep a salted hash of the secret just written as a realm attribute (the realm PUT is whole)."""
    live = gateway.get_realm(realm)
    if live is None:
        raise Rejected(f"realm '{realm}' does not exist")
    recorded = fingerprint_attributes(live.id, {secret_name(client_id): secret})
    gateway.update_realm(realm, {"attributes": {**(live.representation.get("attributes") or {}), **recorded}})


class Clients:
    name = KIND

    def read(self, live: LiveReader) -> LiveClients:
        if not live.realm.exists:
            return LiveClients({})
        fingerprints = live.gateway.client_secret_fingerprints(live.name, live.realm.id.encode())
        return LiveClients(live.clients, fingerprints)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveClients) -> list[Change]:
        return plan_clients(spec, live_realm, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "delete":
            gateway.delete_client(realm, change.live.id)
            return
        write: ClientWrite = change.desired
        if change.action == "create":
            gateway.create_client(realm, create_body(change.key, write))
        else:
            body = dict(write.fields)
            if write.secret is not None:
                body["secret"] = write.secret.reveal()
            if body:
                gateway.update_client(realm, change.live.id, body)
        sync_scope_links(gateway, realm, change.key, write.links)
        if write.secret is not None:
            record_secret_fingerprint(gateway, realm, change.key, write.secret)
