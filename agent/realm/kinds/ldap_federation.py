"""LDAP user federations and, as a later kind, their mappers: Keycloak components updated in place.

A federation is never deleted and recreated: deleting one deletes every user it imported. Keycloak drops
config keys it does not know, so what the agent created is recorded in realm attributes
(`idp-agent.managed.component.<id>`), as are salted fingerprints of bind credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway
from agent.keycloak.models import LDAP_MAPPER_PROVIDER, USER_STORAGE_PROVIDER, Component
from agent.realm.kinds.base import (
    FINGERPRINT_PREFIX,
    OWNER_ATTRIBUTE,
    LiveRealm,
    fingerprint_attributes,
    secret_changed,
)
from agent.realm.live import LiveReader
from agent.realm.plan import Change, FieldChange
from agent.realm.spec import LdapFederationSpec, LdapMapperSpec, ManageMode, RealmSpec
from agent.secrets import Secret

KIND = "ldap federations"
MAPPERS_KIND = "ldap mappers"
LDAP_PROVIDER = "ldap"
BIND_CREDENTIAL = "bindCredential"
OWNED_PREFIX = f"{OWNER_ATTRIBUTE}.component."
SET = "set"

# Friendly key -> Keycloak config key, in the order a plan lists them.
FEDERATION_FIELDS: Mapping[str, str] = {
    "connection_url": "connectionUrl",
    "bind_dn": "bindDn",
    "users_dn": "usersDn",
    "vendor": "vendor",
    "username_attribute": "usernameLDAPAttribute",
    "rdn_attribute": "rdnLDAPAttribute",
    "uuid_attribute": "uuidLDAPAttribute",
    "user_object_classes": "userObjectClasses",
    "user_filter": "customUserSearchFilter",
    "search_scope": "searchScope",
    "edit_mode": "editMode",
    "import_users": "importEnabled",
    "sync_registrations": "syncRegistrations",
    "pagination": "pagination",
    "start_tls": "startTls",
    "trust_email": "trustEmail",
    "full_sync_period": "fullSyncPeriod",
    "changed_sync_period": "changedSyncPeriod",
    "enabled": "enabled",
}
FRIENDLY_NAMES = {keycloak: friendly for friendly, keycloak in FEDERATION_FIELDS.items()}
SEARCH_SCOPES: Mapping[str, str] = {"one": "1", "subtree": "2"}
# Keycloak reads these as false when absent.
BOOLEAN_KEYS = frozenset({"importEnabled", "syncRegistrations", "pagination", "startTls", "trustEmail"})
PERIOD_KEYS = frozenset({"fullSyncPeriod", "changedSyncPeriod"})
# Keycloak's own "no periodic sync" (any period <= 0 means the same).
SYNC_OFF = "-1"

Config = dict[str, tuple[str, ...]]


def credential_name(federation: str) -> str:
    """The fingerprint name of a federation's bind credential."""
    return f"ldap.{federation}.{BIND_CREDENTIAL}"


def owned_mark(component_id: str) -> str:
    return OWNED_PREFIX + component_id


def is_owned_component(live_realm: LiveRealm, component_id: str) -> bool:
    return owned_mark(component_id) in live_realm.attributes


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def compile_federation(federation: LdapFederationSpec) -> Config:
    """Keycloak config for the spec, bind credential excluded; periods left out are not managed."""
    values: dict[str, Any] = {
        "connectionUrl": federation.connection_url,
        "bindDn": federation.bind_dn,
        "usersDn": federation.users_dn,
        "vendor": federation.vendor,
        "usernameLDAPAttribute": federation.username_attribute,
        "rdnLDAPAttribute": federation.rdn_attribute,
        "uuidLDAPAttribute": federation.uuid_attribute,
        "userObjectClasses": ", ".join(federation.user_object_classes),
        "customUserSearchFilter": federation.user_filter,
        "searchScope": SEARCH_SCOPES[federation.search_scope],
        "editMode": federation.edit_mode,
        "importEnabled": federation.import_users,
        "syncRegistrations": federation.sync_registrations,
        "pagination": federation.pagination,
        "startTls": federation.start_tls,
        "trustEmail": federation.trust_email,
        "fullSyncPeriod": federation.full_sync_period,
        "changedSyncPeriod": federation.changed_sync_period,
        "enabled": federation.enabled,
        "authType": "simple",
    }
    config: Config = {
        key: (SYNC_OFF if value == "off" else _text(value),) for key, value in values.items() if value is not None
    }
    config.update(federation.config or {})
    return config


def normalized(key: str, values: Iterable[str] | None) -> tuple[str, ...]:
    """Config values as Keycloak means them: absent is empty (false for flags), object classes a set."""
    items = tuple(values or ())
    if items in {(), ("",)}:
        return ("false",) if key in BOOLEAN_KEYS else ()
    if key == "userObjectClasses":
        classes = {part.strip().lower() for item in items for part in item.split(",") if part.strip()}
        return tuple(sorted(classes))
    if key in PERIOD_KEYS:
        try:
            return ("off",) if int(items[0]) <= 0 else (str(int(items[0])),)
        except ValueError:
            return items
    if all(item.lower() in {"true", "false"} for item in items):
        return tuple(item.lower() for item in items)
    return items


def _shown(values: Iterable[str] | None) -> Any:
    items = list(values or ())
    if not items:
        return None
    return items[0] if len(items) == 1 else items


def friendly_value(key: str, values: Iterable[str] | None) -> Any:
    """A federation config value as the config file writes it (`subtree`, `off`, `true`), for plans."""
    items = tuple(values or ())
    if not items:
        return None
    if key == "searchScope":
        return {code: scope for scope, code in SEARCH_SCOPES.items()}.get(items[0], items[0])
    if key in PERIOD_KEYS:
        period = normalized(key, items)
        return period[0] if period == ("off",) else int(period[0])
    if key == "userObjectClasses":
        return [part.strip() for item in items for part in item.split(",") if part.strip()]
    if key in BOOLEAN_KEYS | {"enabled"}:
        return items[0].lower() == "true"
    return _shown(items)


def diff_config(
    live: Mapping[str, Iterable[str]], desired: Mapping[str, Iterable[str]], *, friendly: bool = False
) -> tuple[FieldChange, ...]:
    """Written keys whose live value means something else; keys not written are not managed.

    With `friendly`, federation keys are labelled and shown as the config file writes them.
    """
    changes = []
    for key, wanted in desired.items():
        current = live.get(key)
        if normalized(key, current) == normalized(key, wanted):
            continue
        if friendly and key in FRIENDLY_NAMES:
            changes.append(FieldChange(FRIENDLY_NAMES[key], friendly_value(key, current), friendly_value(key, wanted)))
        else:
            changes.append(FieldChange(f"config.{key}", _shown(current), _shown(wanted)))
    return tuple(changes)


@dataclass(frozen=True)
class LiveLdap:
    """LDAP federations by name (sorted by id, so a duplicate name resolves the same way every time)
    and every federation's mappers by federation id."""

    federations: Mapping[str, Component]
    mappers: Mapping[str, tuple[Component, ...]] = field(default_factory=dict)


def read_live_ldap(live: LiveReader) -> LiveLdap:
    federations = sorted((c for c in live.user_storage if c.provider_id == LDAP_PROVIDER), key=lambda c: c.id)
    return LiveLdap(
        {federation.name: federation for federation in reversed(federations)},
        {federation_id: tuple(mappers) for federation_id, mappers in live.ldap_mappers.items()},
    )


@dataclass(frozen=True)
class FederationWrite:
    """What the executor writes for one federation; `credential` only when it changed (or on create)."""

    name: str
    config: Config
    credential: Secret | None = None
    release: bool = False


def _credential_field(live_has_one: bool) -> FieldChange:
    return FieldChange("bind_credential", SET if live_has_one else None, SET, secret=True)


def _unwritten_federation(mode: ManageMode, name: str, current: Component) -> Change:
    """An owned federation no longer in config: deleted only when `managed.ldap: full`; otherwise released
    once (the ownership mark is removed) and kept, so the plan says so and the next plan is empty."""
    if mode == "full":
        return Change(KIND, "delete", name, live=current, note="deletes every user this federation imported")
    note = (
        "no longer in config: kept, not deleted (deleting a federation deletes the users it imported); "
        "idp-agent stops managing it. To delete it, remove it with managed.ldap: full"
    )
    owned = FieldChange("owned by idp-agent", True, False)
    release = FederationWrite(name, {}, release=True)
    return Change(KIND, "update", name, (owned,), desired=release, live=current, note=note)


def plan_federations(spec: RealmSpec, live_realm: LiveRealm, live: LiveLdap) -> list[Change]:
    """Create missing federations, update differing ones in place; owned ones no longer written are
    deleted (`managed.ldap: full`) or released. Federations the agent did not create are left alone."""
    if spec.ldap is None:
        return []
    changes: list[Change] = []
    for federation in spec.ldap:
        config = compile_federation(federation)
        current = live.federations.get(federation.name)
        if current is None:
            fields = (*diff_config({}, config, friendly=True), _credential_field(False))
            write = FederationWrite(federation.name, config, federation.bind_credential)
            changes.append(Change(KIND, "create", federation.name, fields, desired=write, note="recorded as owned"))
            continue
        differing = diff_config(current.config, config, friendly=True)
        credential = None
        if secret_changed(live_realm, credential_name(federation.name), federation.bind_credential):
            credential = federation.bind_credential
            differing = (*differing, _credential_field(bool(current.config.get(BIND_CREDENTIAL))))
        if differing:
            write = FederationWrite(federation.name, config, credential)
            changes.append(Change(KIND, "update", federation.name, differing, desired=write, live=current))
    written = {federation.name for federation in spec.ldap}
    for name, current in sorted(live.federations.items()):
        if name not in written and is_owned_component(live_realm, current.id):
            changes.append(_unwritten_federation(spec.managed.ldap, name, current))
    return changes


def check_written_keys(component: Component | None, written: Mapping[str, Iterable[str]], what: str) -> None:
    """Keycloak silently drops config keys its provider does not declare: say so instead of planning the
    same change forever."""
    if component is None:
        raise Rejected(f"{what} vanished right after it was written")
    dropped = sorted(key for key, values in written.items() if key not in component.config and any(values))
    if dropped:
        raise Rejected(
            f"Keycloak ignored config key(s) {', '.join(dropped)} of {what}: "
            f"they are not options of provider '{component.provider_id}'",
            hint="fix the key names under config:",
        )


def _find_federation(gateway: KeycloakGateway, realm: str, realm_id: str, name: str) -> Component | None:
    for component in gateway.list_components(realm, provider_type=USER_STORAGE_PROVIDER, parent_id=realm_id):
        if component.provider_id == LDAP_PROVIDER and component.name == name:
            return component
    return None


def _realm_id(gateway: KeycloakGateway, realm: str) -> str:
    live = gateway.get_realm(realm)
    if live is None:
        raise Rejected(f"realm '{realm}' does not exist")
    return live.id


def write_federation(gateway: KeycloakGateway, realm: str, write: FederationWrite) -> None:
    """Create the federation, or update it in place when one of that name exists (never recreate it).

    A new federation is recorded as owned, under an id chosen here, before it is created: a run cut off
    in between leaves a harmless mark, never an agent-made federation that looks hand-made.
    """
    realm_id = _realm_id(gateway, realm)
    config: Config = dict(write.config)
    fingerprints: dict[str, str] = {}
    if write.credential is not None:
        config[BIND_CREDENTIAL] = (write.credential.reveal(),)
        fingerprints = fingerprint_attributes(realm_id, {credential_name(write.name): write.credential})
    existing = _find_federation(gateway, realm, realm_id, write.name)
    if existing is None:
        component_id = str(uuid.uuid4())
        # A federation that is not there is created with its credential whatever the fingerprint says,
        # so recording it first is safe too.
        gateway.set_realm_attributes(realm, {owned_mark(component_id): f"ldap federation {write.name}", **fingerprints})
        gateway.create_component(
            realm,
            name=write.name,
            provider_id=LDAP_PROVIDER,
            provider_type=USER_STORAGE_PROVIDER,
            parent_id=realm_id,
            config=config,
            component_id=component_id,
        )
    else:
        component_id = existing.id
        gateway.update_component(realm, component_id, config)
        # Only once the credential is written: a fingerprint recorded first would hide a failed write.
        if fingerprints:
            gateway.set_realm_attributes(realm, fingerprints)
    check_written_keys(gateway.get_component(realm, component_id), write.config, f"federation '{write.name}'")


class LdapFederations:
    name = KIND

    def read(self, live: LiveReader) -> LiveLdap:
        return read_live_ldap(live)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveLdap) -> list[Change]:
        return plan_federations(spec, live_realm, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "delete":
            gateway.delete_component(realm, change.live.id)
            marks = (owned_mark(change.live.id), FINGERPRINT_PREFIX + credential_name(change.key))
            gateway.set_realm_attributes(realm, {}, remove=marks)
            return
        write: FederationWrite = change.desired
        if write.release:
            gateway.set_realm_attributes(realm, {}, remove=[owned_mark(change.live.id)])
            return
        write_federation(gateway, realm, write)


# -- mappers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapperWrite:
    federation: str
    mapper: LdapMapperSpec


def _mapper_config(mapper: LdapMapperSpec) -> Config:
    return dict(mapper.config)


def plan_federation_mappers(
    federation: LdapFederationSpec, live_realm: LiveRealm, live: Iterable[Component], mode: ManageMode
) -> list[Change]:
    """Written mappers by name, updated in place; owned mappers no longer written are deleted. Mappers the
    agent did not create (Keycloak makes username, email, ... with every federation) are left alone."""
    current = {mapper.name: mapper for mapper in live}
    changes: list[Change] = []
    for mapper in federation.mappers:
        key = f"{federation.name}/{mapper.name}"
        config = _mapper_config(mapper)
        found = current.get(mapper.name)
        if found is None:
            fields = (FieldChange("type", None, mapper.type), *diff_config({}, config))
            changes.append(Change(MAPPERS_KIND, "create", key, fields, desired=MapperWrite(federation.name, mapper)))
            continue
        differing = diff_config(found.config, config)
        if found.provider_id != mapper.type:
            type_change = FieldChange("type", found.provider_id, mapper.type)
            write = MapperWrite(federation.name, mapper)
            note = "a mapper's type cannot change in place: it is replaced (mappers hold no users)"
            fields = (type_change, *differing)
            changes.append(Change(MAPPERS_KIND, "update", key, fields, desired=write, live=found, note=note))
        elif differing:
            write = MapperWrite(federation.name, mapper)
            changes.append(Change(MAPPERS_KIND, "update", key, differing, desired=write, live=found))
    written = {mapper.name for mapper in federation.mappers}
    for name, found in sorted(current.items()):
        if name not in written and mode != "no-delete" and is_owned_component(live_realm, found.id):
            changes.append(Change(MAPPERS_KIND, "delete", f"{federation.name}/{name}", live=found))
    return changes


def plan_mappers(spec: RealmSpec, live_realm: LiveRealm, live: LiveLdap) -> list[Change]:
    changes: list[Change] = []
    for federation in spec.ldap or ():
        found = live.federations.get(federation.name)
        mappers = live.mappers.get(found.id, ()) if found else ()
        changes.extend(plan_federation_mappers(federation, live_realm, mappers, spec.managed.ldap))
    return changes


def write_mapper(gateway: KeycloakGateway, realm: str, write: MapperWrite) -> None:
    """Update the mapper of that name in place (Keycloak may have made it with the federation), or create it;
    a mapper of another type is replaced, and stays owned only if the one it replaces was."""
    realm_id = _realm_id(gateway, realm)
    federation = _find_federation(gateway, realm, realm_id, write.federation)
    if federation is None:
        raise Rejected(f"ldap federation '{write.federation}' does not exist in realm '{realm}'")
    mappers = gateway.list_components(realm, provider_type=LDAP_MAPPER_PROVIDER, parent_id=federation.id)
    existing = next((mapper for mapper in mappers if mapper.name == write.mapper.name), None)
    config = _mapper_config(write.mapper)
    what = f"mapper '{write.federation}/{write.mapper.name}'"
    if existing is not None and existing.provider_id == write.mapper.type:
        gateway.update_component(realm, existing.id, config)
        check_written_keys(gateway.get_component(realm, existing.id), config, what)
        return
    owned = True
    if existing is not None:
        owned = owned_mark(existing.id) in _realm_attributes(gateway, realm)
        gateway.delete_component(realm, existing.id)
    mapper_id = str(uuid.uuid4())
    marks = {owned_mark(mapper_id): f"ldap mapper {write.federation}/{write.mapper.name}"} if owned else {}
    stale = [owned_mark(existing.id)] if existing is not None else []
    if marks or stale:
        gateway.set_realm_attributes(realm, marks, remove=stale)
    gateway.create_component(
        realm,
        name=write.mapper.name,
        provider_id=write.mapper.type,
        provider_type=LDAP_MAPPER_PROVIDER,
        parent_id=federation.id,
        config=config,
        component_id=mapper_id,
    )
    check_written_keys(gateway.get_component(realm, mapper_id), config, what)


def _realm_attributes(gateway: KeycloakGateway, realm: str) -> Mapping[str, Any]:
    live = gateway.get_realm(realm)
    return dict(live.representation.get("attributes") or {}) if live else {}


class LdapMappers:
    name = MAPPERS_KIND

    def read(self, live: LiveReader) -> LiveLdap:
        return read_live_ldap(live)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveLdap) -> list[Change]:
        return plan_mappers(spec, live_realm, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "delete":
            gateway.delete_component(realm, change.live.id)
            gateway.set_realm_attributes(realm, {}, remove=[owned_mark(change.live.id)])
            return
        write_mapper(gateway, realm, change.desired)
