"""LDAP federation and its mappers as code: numbered steps against a real Keycloak and a real slapd.

After every apply a second plan must be empty and write nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.keycloak import KeycloakGateway
from agent.keycloak.models import LDAP_MAPPER_PROVIDER, USER_STORAGE_PROVIDER, Component
from agent.realm.kinds.base import Kind
from agent.realm.kinds.ldap_federation import LdapFederations, LdapMappers
from agent.realm.kinds.realm_settings import RealmSettings
from agent.realm.native import friendly_federation_and_profile
from agent.realm.plan import HIDDEN, Plan
from agent.realm.render import render_json, render_text
from agent.realm.spec import RealmSpec
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.stack.demo_directory import PEOPLE, demo_ldif
from agent.stack.processes import free_port
from agent.stack.slapd import DEFAULT_SUFFIX, SlapdInstance
from tests.harness import realm_steps

KINDS: tuple[Kind, ...] = (RealmSettings(), LdapFederations(), LdapMappers())
PEOPLE_DN = f"ou=people,{DEFAULT_SUFFIX}"
GROUPS_DN = f"ou=groups,{DEFAULT_SUFFIX}"
ROOT_DN = f"cn=admin,{DEFAULT_SUFFIX}"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    """A throwaway slapd on a free port, loaded with the demo directory (20 inetOrgPerson entries)."""
    folder: Path = tmp_path_factory.mktemp("slapd")
    instance = SlapdInstance(folder / "directory", password=Secret(secrets.token_urlsafe(18)))
    ldif = folder / "demo.ldif"
    ldif.write_text(demo_ldif(), encoding="utf-8")
    instance.load(ldif)
    instance.start(free_port())
    yield instance
    instance.stop()


def ldap_url(slapd: SlapdInstance) -> str:
    return slapd.connection().url


def federation(slapd: SlapdInstance, **overrides: Any) -> dict[str, Any]:
    """A federation as a user writes it: friendly keys, the credential from the environment (a Secret)."""
    base: dict[str, Any] = {
        "name": "corp",
        "connection_url": ldap_url(slapd),
        "bind_dn": ROOT_DN,
        "bind_credential": slapd.password,
        "users_dn": PEOPLE_DN,
        "edit_mode": "READ_ONLY",
        "mappers": [
            {
                "name": "department",
                "type": "user-attribute-ldap-mapper",
                "config": {
                    "ldap.attribute": "departmentNumber",
                    "user.model.attribute": "department",
                    "read.only": True,
                    "always.read.value.from.ldap": False,
                    "is.mandatory.in.ldap": False,
                },
            },
            {
                "name": "title",
                "type": "user-attribute-ldap-mapper",
                "config": {"ldap.attribute": "title", "user.model.attribute": "jobTitle", "read.only": True},
            },
            {
                "name": "groups",
                "type": "group-ldap-mapper",
                "config": {
                    "groups.dn": GROUPS_DN,
                    "group.name.ldap.attribute": "cn",
                    "group.object.classes": "groupOfNames",
                    "membership.ldap.attribute": "member",
                    "membership.attribute.type": "DN",
                    "membership.user.ldap.attribute": "uid",
                    "mode": "READ_ONLY",
                    "user.roles.retrieve.strategy": "LOAD_GROUPS_BY_MEMBER_ATTRIBUTE",
                    "preserve.group.inheritance": False,
                    "ignore.missing.groups": False,
                    "drop.non.existing.groups.during.sync": False,
                },
            },
        ],
    }
    return {**base, **overrides}


def spec_of(realm: str, **extra: Any) -> RealmSpec:
    return RealmSpec.model_validate({"realm": realm, **extra})


def planned(connection: KeycloakConnection, spec: RealmSpec) -> Plan:
    """Plan through a read-only gateway, so planning provably writes nothing."""
    return realm_steps.planned(connection, spec, KINDS)


def apply_and_converge(connection: KeycloakConnection, spec: RealmSpec) -> Plan:
    """Apply, then prove a second plan is empty and writes nothing."""
    return realm_steps.apply_and_converge(connection, spec, KINDS)


def keys(plan: Plan) -> list[tuple[str, str, str]]:
    return [(change.action, change.kind, change.key) for change in plan.changes]


def federations(gateway: KeycloakGateway, realm: str) -> dict[str, Component]:
    live = gateway.get_realm(realm)
    assert live is not None
    components = gateway.list_components(realm, provider_type=USER_STORAGE_PROVIDER, parent_id=live.id)
    return {component.name: component for component in components}


def mappers(gateway: KeycloakGateway, realm: str, federation_id: str) -> dict[str, Component]:
    found = gateway.list_components(realm, provider_type=LDAP_MAPPER_PROVIDER, parent_id=federation_id)
    return {mapper.name: mapper for mapper in found}


def federated_users(gateway: KeycloakGateway, realm: str, federation_id: str) -> set[str]:
    return {user.username for user in gateway.list_users(realm, brief=False) if user.federation_link == federation_id}


def test_ldap_federation_lifecycle(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, slapd: SlapdInstance
) -> None:
    # Step 1: create the federation with three mappers; Keycloak adds its default mappers on its own.
    spec = spec_of(realm, ldap=[federation(slapd)])
    plan = apply_and_converge(keycloak_connection, spec)
    assert keys(plan) == [
        ("create", "ldap federations", "corp"),
        ("create", "ldap mappers", "corp/department"),
        ("create", "ldap mappers", "corp/title"),
        ("create", "ldap mappers", "corp/groups"),
    ]
    corp = federations(gateway, realm)["corp"]
    assert corp.config["usersDn"] == (PEOPLE_DN,)
    assert corp.config["bindCredential"] == ("**********",)
    assert slapd.password.reveal() not in render_text([plan]) + render_json([plan])
    live_mappers = mappers(gateway, realm, corp.id)
    assert {"department", "title", "groups", "username", "email", "first name", "last name"} <= set(live_mappers)
    assert live_mappers["groups"].config["groups.dn"] == (GROUPS_DN,)

    # The config is real: Keycloak itself binds with the stored credential, and a full sync imports everyone.
    assert gateway.test_ldap_connection(realm, corp.id).ok
    result = gateway.sync_user_storage(realm, corp.id)
    assert (result.added, result.failed) == (len(PEOPLE), 0)
    imported = federated_users(gateway, realm, corp.id)
    assert imported == {person.uid for person in PEOPLE}
    alice = gateway.find_user_by_username(realm, "acarter")
    assert alice is not None
    full = gateway.get_user(realm, alice.id)
    assert full is not None and full.attributes.get("department") == ("ENG",)

    # Step 2: update settings and a mapper in place: same component ids, imported users stay.
    updated = federation(slapd, search_scope="one", changed_sync_period="1h", full_sync_period="off")
    title_config = {"ldap.attribute": "title", "always.read.value.from.ldap": True}
    updated["mappers"][1] = {**updated["mappers"][1], "config": title_config}
    spec = spec_of(realm, ldap=[updated])
    first = planned(keycloak_connection, spec)
    assert keys(first) == [("update", "ldap federations", "corp"), ("update", "ldap mappers", "corp/title")]
    assert {field.field for field in first.changes[0].fields} == {
        "search_scope",
        "changed_sync_period",
        "full_sync_period",
    }
    assert [(f.field, f.desired) for f in first.changes[1].fields] == [("config.always.read.value.from.ldap", "true")]
    apply_and_converge(keycloak_connection, spec)
    after = federations(gateway, realm)["corp"]
    assert after.id == corp.id
    assert after.config["searchScope"] == ("1",)
    assert after.config["changedSyncPeriod"] == ("3600",)
    assert mappers(gateway, realm, corp.id)["title"].id == live_mappers["title"].id
    assert federated_users(gateway, realm, corp.id) == imported
    assert gateway.sync_user_storage(realm, corp.id).failed == 0

    # Step 3: the bind credential changes in the environment, the files do not: applied once, never shown.
    wrong = Secret("not-" + slapd.password.reveal())
    spec_wrong = spec_of(realm, ldap=[{**updated, "bind_credential": wrong}])
    plan = planned(keycloak_connection, spec_wrong)
    assert [(c.key, [(f.field, f.shown()) for f in c.fields]) for c in plan.changes] == [
        ("corp", [("bind_credential", (HIDDEN, HIDDEN))])
    ]
    shown = render_text([plan]) + render_json([plan])
    assert HIDDEN in shown and wrong.reveal() not in shown
    apply_and_converge(keycloak_connection, spec_wrong)
    # Keycloak really holds the new (wrong) credential now: its own bind fails.
    assert not gateway.test_ldap_connection(realm, corp.id).ok
    plan = apply_and_converge(keycloak_connection, spec)
    assert keys(plan) == [("update", "ldap federations", "corp")]
    assert gateway.test_ldap_connection(realm, corp.id).ok

    # Step 4: drift by hand in the admin API is shown exactly, and fixed in place.
    gateway.update_component(realm, corp.id, {"usersDn": [GROUPS_DN]})
    plan = planned(keycloak_connection, spec)
    assert [(c.key, [(f.field, f.live, f.desired) for f in c.fields]) for c in plan.changes] == [
        ("corp", [("users_dn", GROUPS_DN, PEOPLE_DN)])
    ]
    apply_and_converge(keycloak_connection, spec)
    assert federations(gateway, realm)["corp"].config["usersDn"] == (PEOPLE_DN,)
    assert federations(gateway, realm)["corp"].id == corp.id

    # An export of the realm, adopted as config (credential from the environment), plans nothing.
    exported = friendly_federation_and_profile(gateway.export_realm(realm))["ldap"]
    assert [entry["bind_credential"] for entry in exported] == ["${env:LDAP_BIND_CREDENTIAL_CORP}"]
    adopted = spec_of(realm, ldap=[{**entry, "bind_credential": slapd.password} for entry in exported])
    assert planned(keycloak_connection, adopted).is_empty

    # Step 5: a mapper removed from config is deleted (the agent created it); Keycloak's defaults stay.
    trimmed = {**updated, "mappers": [updated["mappers"][0], updated["mappers"][2]]}
    spec = spec_of(realm, ldap=[trimmed])
    plan = apply_and_converge(keycloak_connection, spec)
    assert keys(plan) == [("delete", "ldap mappers", "corp/title")]
    remaining = mappers(gateway, realm, corp.id)
    assert "title" not in remaining
    assert {"username", "email", "first name", "last name", "department", "groups"} <= set(remaining)
    assert federated_users(gateway, realm, corp.id) == imported


def test_keycloak_default_mapper_is_updated_in_place(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, slapd: SlapdInstance
) -> None:
    # Step 1: a mapper written with the name of one Keycloak creates by itself is updated, not duplicated.
    email = {"name": "email", "type": "user-attribute-ldap-mapper", "config": {"ldap.attribute": "mail"}}
    first_name = {"name": "first name", "type": "user-attribute-ldap-mapper", "config": {"ldap.attribute": "givenName"}}
    spec = spec_of(realm, ldap=[federation(slapd, mappers=[email, first_name])])
    apply_and_converge(keycloak_connection, spec)
    corp = federations(gateway, realm)["corp"]
    found = gateway.list_components(realm, provider_type=LDAP_MAPPER_PROVIDER, parent_id=corp.id)
    assert [mapper.name for mapper in found].count("first name") == 1
    assert mappers(gateway, realm, corp.id)["first name"].config["ldap.attribute"] == ("givenName",)

    # Step 2: dropping it from config leaves it: it is Keycloak's, not the agent's.
    spec = spec_of(realm, ldap=[federation(slapd, mappers=[])])
    assert planned(keycloak_connection, spec).is_empty
    assert "first name" in mappers(gateway, realm, corp.id)


def test_federations_not_created_by_the_agent_are_left_alone(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, slapd: SlapdInstance
) -> None:
    live = gateway.get_realm(realm)
    assert live is not None
    legacy_id = gateway.create_component(
        realm,
        name="legacy",
        provider_id="ldap",
        provider_type=USER_STORAGE_PROVIDER,
        parent_id=live.id,
        config={
            "connectionUrl": [ldap_url(slapd)],
            "bindDn": [ROOT_DN],
            "bindCredential": [slapd.password.reveal()],
            "usersDn": [PEOPLE_DN],
            "vendor": ["other"],
            "usernameLDAPAttribute": ["uid"],
            "rdnLDAPAttribute": ["uid"],
            "uuidLDAPAttribute": ["entryUUID"],
            "userObjectClasses": ["inetOrgPerson"],
            "editMode": ["READ_ONLY"],
            "authType": ["simple"],
        },
    )

    # Step 1: create an owned federation next to the one made by hand; the hand-made one is not touched.
    spec = spec_of(realm, ldap=[federation(slapd)])
    plan = apply_and_converge(keycloak_connection, spec)
    assert "legacy" not in {change.key for change in plan.changes}
    corp = federations(gateway, realm)["corp"]
    assert gateway.sync_user_storage(realm, corp.id).added == len(PEOPLE)

    # Step 2: removing the owned federation from config keeps it (its users too) and says so, once.
    spec = spec_of(realm, ldap=[])
    plan = planned(keycloak_connection, spec)
    assert keys(plan) == [("update", "ldap federations", "corp")]
    assert "not deleted" in plan.changes[0].note
    apply_and_converge(keycloak_connection, spec)
    assert set(federations(gateway, realm)) == {"corp", "legacy"}
    assert len(federated_users(gateway, realm, corp.id)) == len(PEOPLE)

    # Step 3: `managed.ldap: full` deletes only federations the agent owns: the released one and the
    # hand-made one both stay.
    full = spec_of(realm, ldap=[], managed={"ldap": "full"})
    assert planned(keycloak_connection, full).is_empty

    # Step 4: an owned federation dropped from config under `managed.ldap: full` is deleted, with a note.
    temp = federation(slapd, name="temp", mappers=[])
    apply_and_converge(keycloak_connection, spec_of(realm, ldap=[temp], managed={"ldap": "full"}))
    plan = planned(keycloak_connection, full)
    assert keys(plan) == [("delete", "ldap federations", "temp")]
    assert "deletes every user" in plan.changes[0].note
    apply_and_converge(keycloak_connection, full)
    assert set(federations(gateway, realm)) == {"corp", "legacy"}
    assert federations(gateway, realm)["legacy"].id == legacy_id
