"""Clients (OIDC settings, secret, default and optional scopes), updated in place and owned by mark; and,
as a later kind, the protocol mappers of clients and client scopes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.errors import Rejected
from agent.keycloak import Client, KeycloakGateway
from agent.keycloak.models import ClientScope, ProtocolMapper, protocol_mappers_from_json
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
from agent.realm.plan import Change, FieldChange, diff_fields, values_equal
from agent.realm.spec import ClientSpec, ManageMode, ProtocolMapperSpec, RealmSpec
from agent.secrets import Secret

KIND = "clients"
MAPPERS_KIND = "protocol mappers"
OIDC = "openid-connect"
POST_LOGOUT_REDIRECT_URIS = "post.logout.redirect.uris"
PKCE_METHOD = "pkce.code.challenge.method"
URI_SEPARATOR = "##"  # how Keycloak joins several post-logout redirect URIs in one attribute
USER_ATTRIBUTE_MAPPER = "oidc-usermodel-attribute-mapper"
# Mappers carry no attributes of their own, so the names of the mappers the agent created are recorded in
# their client's (or client scope's) attributes, as a JSON list because mapper names may hold commas.
MAPPER_OWNER_ATTRIBUTE = "idp-agent.mappers"
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


# -- protocol mappers of clients and client scopes ----------------------------------------------------

Container = Literal["clients", "client-scopes"]


@dataclass(frozen=True)
class MapperOwner:
    """The client (by clientId) or client scope (by name) a mapper belongs to."""

    container: Container
    name: str

    def __str__(self) -> str:
        return f"{'client' if self.container == 'clients' else 'client scope'} {self.name}"


@dataclass(frozen=True)
class LiveMappers:
    """The mappers of one client or scope, and the names of those the agent created."""

    id: str
    protocol: str
    mappers: Mapping[str, ProtocolMapper]
    owned: frozenset[str]


@dataclass(frozen=True)
class MapperWrite:
    owner: MapperOwner
    name: str
    representation: Mapping[str, Any] = field(default_factory=dict)


def owned_mapper_names(attributes: Mapping[str, Any]) -> frozenset[str]:
    raw = attributes.get(MAPPER_OWNER_ATTRIBUTE)
    try:
        names = json.loads(str(raw)) if raw else []
    except ValueError:
        return frozenset()
    return frozenset(str(name) for name in names) if isinstance(names, list) else frozenset()


def owned_mapper_value(names: Iterable[str]) -> str:
    return json.dumps(sorted(names), separators=(",", ":"))


def _flag(value: bool) -> str:
    return "true" if value else "false"


def mapper_representation(mapper: ProtocolMapperSpec, protocol: str) -> dict[str, Any]:
    """Keycloak's form of a mapper: `user_attribute` compiles to a user-attribute mapper (claim defaults
    to the attribute's name); otherwise `mapper` and `config` are taken as written."""
    if mapper.user_attribute is None:
        return {
            "name": mapper.name,
            "protocol": protocol,
            "protocolMapper": mapper.mapper,
            "config": dict(mapper.config or {}),
        }
    config = {
        "user.attribute": mapper.user_attribute,
        "claim.name": mapper.claim or mapper.user_attribute,
        "jsonType.label": mapper.json_type,
        "multivalued": _flag(mapper.multivalued),
        "id.token.claim": _flag(mapper.in_id_token),
        "access.token.claim": _flag(mapper.in_access_token),
        "userinfo.token.claim": _flag(mapper.in_userinfo),
    }
    return {"name": mapper.name, "protocol": OIDC, "protocolMapper": USER_ATTRIBUTE_MAPPER, "config": config}


def _mapper_fields(representation: Mapping[str, Any]) -> dict[str, Any]:
    config = representation["config"]
    return {"mapper": representation["protocolMapper"], **{f"config.{key}": config[key] for key in sorted(config)}}


def diff_mapper(live: ProtocolMapper, representation: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """Type and written config keys that differ; config keys not written are not managed."""
    live_fields = {"mapper": live.mapper, **{f"config.{key}": value for key, value in live.config.items()}}
    return tuple(
        FieldChange(name, live_fields.get(name), wanted)
        for name, wanted in _mapper_fields(representation).items()
        if not values_equal(live_fields.get(name), wanted)
    )


def plan_owner_mappers(
    owner: MapperOwner,
    written: tuple[ProtocolMapperSpec, ...],
    protocol: str,
    live: LiveMappers | None,
    mode: ManageMode,
) -> list[Change]:
    """Mappers written for one client or scope are authoritative over those the agent created there;
    others (Keycloak's own) are deleted only when protocol mappers are fully managed."""
    wanted = {mapper.name: mapper_representation(mapper, protocol) for mapper in written}
    current = live.mappers if live else {}
    changes: list[Change] = []
    for name, representation in wanted.items():
        key = f"{owner}: {name}"
        existing = current.get(name)
        write = MapperWrite(owner, name, representation)
        if existing is None:
            changes.append(Change(MAPPERS_KIND, "create", key, diff_fields({}, _mapper_fields(representation)), write))
        elif differing := diff_mapper(existing, representation):
            changes.append(Change(MAPPERS_KIND, "update", key, differing, desired=write, live=existing))
    owned = live.owned if live else frozenset()
    for name, existing in sorted(current.items()):
        if name not in wanted and may_delete(mode, owned=name in owned, protected=False):
            changes.append(
                Change(MAPPERS_KIND, "delete", f"{owner}: {name}", desired=MapperWrite(owner, name), live=existing)
            )
    return changes


def plan_protocol_mappers(spec: RealmSpec, live: Mapping[MapperOwner, LiveMappers]) -> list[Change]:
    """Mappers of every client and client scope whose `protocol_mappers` is written."""
    mode = spec.managed.protocol_mappers
    changes: list[Change] = []
    for client in spec.clients or ():
        if client.protocol_mappers is not None:
            owner = MapperOwner("clients", client.client_id)
            current = live.get(owner)
            protocol = current.protocol if current else OIDC
            changes.extend(plan_owner_mappers(owner, client.protocol_mappers, protocol, current, mode))
    for scope in spec.client_scopes or ():
        if scope.protocol_mappers is not None:
            owner = MapperOwner("client-scopes", scope.name)
            changes.extend(plan_owner_mappers(owner, scope.protocol_mappers, scope.protocol, live.get(owner), mode))
    return changes


def client_mappers(client: Client) -> LiveMappers:
    rep = client.representation
    mappers = {mapper.name: mapper for mapper in protocol_mappers_from_json(rep.get("protocolMappers"))}
    owned = owned_mapper_names(rep.get("attributes") or {})
    return LiveMappers(client.id, str(rep.get("protocol") or OIDC), mappers, owned)


def scope_mappers(scope: ClientScope) -> LiveMappers:
    mappers = {mapper.name: mapper for mapper in scope.protocol_mappers}
    return LiveMappers(scope.id, scope.protocol, mappers, owned_mapper_names(scope.attributes))


def read_mapper_owner(gateway: KeycloakGateway, realm: str, owner: MapperOwner) -> LiveMappers:
    """The owner as it is now (it may have been created earlier in this run)."""
    if owner.container == "clients":
        client = gateway.find_client(realm, owner.name)
        if client is not None:
            return client_mappers(client)
    else:
        scope = gateway.find_client_scope(realm, owner.name)
        if scope is not None:
            return scope_mappers(scope)
    raise Rejected(f"{owner} does not exist in realm '{realm}'")


def record_owned_mappers(
    gateway: KeycloakGateway, realm: str, owner: MapperOwner, live: LiveMappers, names: frozenset[str]
) -> None:
    if names == live.owned:
        return
    attributes = {"attributes": {MAPPER_OWNER_ATTRIBUTE: owned_mapper_value(names)}}
    if owner.container == "clients":
        gateway.update_client(realm, live.id, attributes)
    else:
        gateway.update_client_scope(realm, live.id, attributes)


class ProtocolMappers:
    name = MAPPERS_KIND

    def read(self, live: LiveReader) -> dict[MapperOwner, LiveMappers]:
        owners = {MapperOwner("clients", client_id): client_mappers(c) for client_id, c in live.clients.items()}
        owners.update({MapperOwner("client-scopes", name): scope_mappers(s) for name, s in live.client_scopes.items()})
        return owners

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: dict[MapperOwner, LiveMappers]) -> list[Change]:
        return plan_protocol_mappers(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        write: MapperWrite = change.desired
        owner = write.owner
        target = read_mapper_owner(gateway, realm, owner)
        # Stale names (mappers deleted by hand) are dropped from the record whenever it is rewritten.
        recorded = target.owned & set(target.mappers)
        existing = target.mappers.get(write.name)
        if change.action == "create":
            # Recorded before creating: an interruption in between never leaves an agent-made mapper unowned.
            record_owned_mappers(gateway, realm, owner, target, recorded | {write.name})
            gateway.create_protocol_mapper(realm, owner.container, target.id, write.representation)
        elif change.action == "update":
            if existing is None:
                raise Rejected(f"mapper '{write.name}' of {owner} vanished from realm '{realm}'")
            representation = dict(write.representation)
            if existing.mapper == representation["protocolMapper"]:
                # A PUT replaces the whole config: keep the keys the config does not write.
                representation["config"] = {**existing.config, **representation["config"]}
            gateway.update_protocol_mapper(realm, owner.container, target.id, existing.id, representation)
        else:
            if existing is not None:
                gateway.delete_protocol_mapper(realm, owner.container, target.id, existing.id)
            record_owned_mappers(gateway, realm, owner, target, recorded - {write.name})
