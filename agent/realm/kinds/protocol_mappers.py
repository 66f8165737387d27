"""Protocol mappers of clients and client scopes: a later kind than both, since a mapper needs its owner.
The config's mappers of an owner are authoritative over those the agent created there."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.errors import Rejected
from agent.keycloak import Client, KeycloakGateway
from agent.keycloak.models import ClientScope, ProtocolMapper, protocol_mappers_from_json
from agent.realm.kinds.base import LiveRealm, may_delete
from agent.realm.kinds.clients import OIDC
from agent.realm.live import LiveReader
from agent.realm.plan import Change, FieldChange, diff_fields, values_equal
from agent.realm.spec import ManageMode, ProtocolMapperSpec, RealmSpec

MAPPERS_KIND = "protocol mappers"
USER_ATTRIBUTE_MAPPER = "oidc-usermodel-attribute-mapper"
# Mappers carry no attributes of their own, so the names of the mappers the agent created are recorded in
# their client's (or client scope's) attributes, as a JSON list because mapper names may hold commas.
MAPPER_OWNER_ATTRIBUTE = "idp-agent.mappers"

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
