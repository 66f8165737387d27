"""The declarative user profile as code: numbered steps against a real Keycloak.

The customer-service privacy case: few attributes, a phone number with a pattern, a national id that only
administrators see. After every apply a second plan must be empty and write nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import pytest

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway, UserDraft
from agent.realm.kinds.base import Kind
from agent.realm.kinds.realm_settings import RealmSettings
from agent.realm.kinds.user_profile import BUILT_IN_ATTRIBUTES, UserProfile
from agent.realm.native import friendly_federation_and_profile
from agent.realm.plan import Plan
from agent.realm.spec import RealmSpec
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from tests.harness import realm_steps

KINDS: tuple[Kind, ...] = (RealmSettings(), UserProfile())
PHONE_PATTERN = r"^\+?[0-9 ]{6,20}$"

PHONE = {
    "name": "phone",
    "display_name": "Phone number",
    "validators": {"pattern": {"pattern": PHONE_PATTERN, "error-message": "invalid-phone"}, "length": {"max": 20}},
    "view": ["user", "admin"],
    "edit": ["user", "admin"],
    "annotations": {"inputType": "html5-tel"},
}
NATIONAL_ID = {
    "name": "nationalId",
    "display_name": "National ID",
    "group": "identity",
    "view": ["admin"],
    "edit": ["admin"],
    "validators": [{"name": "length", "config": {"max": 32}}],
}
IDENTITY_GROUP = {"name": "identity", "display_header": "Identity checks"}


def spec_of(realm: str, **extra: Any) -> RealmSpec:
    return RealmSpec.model_validate({"realm": realm, **extra})


def planned(connection: KeycloakConnection, spec: RealmSpec) -> Plan:
    """Plan through a read-only gateway, so planning provably writes nothing."""
    return realm_steps.planned(connection, spec, KINDS)


def apply_and_converge(connection: KeycloakConnection, spec: RealmSpec) -> Plan:
    """Apply, then prove a second plan is empty and writes nothing."""
    return realm_steps.apply_and_converge(connection, spec, KINDS)


def fields(plan: Plan) -> list[str]:
    return [field.field for change in plan.changes for field in change.fields]


def attributes_of(gateway: KeycloakGateway, realm: str) -> dict[str, dict[str, Any]]:
    return {str(a["name"]): dict(a) for a in gateway.get_user_profile(realm).attributes}


def customer(gateway: KeycloakGateway, realm: str) -> tuple[str, Secret]:
    password = Secret(secrets.token_urlsafe(18))
    draft = UserDraft(
        "customer1",
        email="customer1@example.org",
        first_name="Cara",
        last_name="Client",
        attributes={"phone": ("+44 20 7946 0000",), "nationalId": ("AB123456C",)},
    )
    user_id = gateway.create_user(realm, draft)
    gateway.set_password(realm, user_id, password)
    return user_id, password


def test_privacy_profile(keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str) -> None:
    # Step 1: the privacy profile: a phone with a pattern, a national id for administrators only. The
    # built-ins are not written, so they stay as Keycloak made them.
    spec = spec_of(
        realm,
        user_profile={
            "unmanaged_attributes": "admin_view",
            "attributes": [PHONE, NATIONAL_ID],
            "groups": [{"name": "user-metadata"}, IDENTITY_GROUP],
        },
    )
    plan = apply_and_converge(keycloak_connection, spec)
    assert fields(plan) == [
        "attributes.phone",
        "attributes.nationalId",
        "groups.identity",
        "unmanagedAttributePolicy",
    ]
    live = attributes_of(gateway, realm)
    assert list(live) == [*BUILT_IN_ATTRIBUTES, "phone", "nationalId"]
    assert live["nationalId"]["permissions"] == {"view": ["admin"], "edit": ["admin"]}
    assert sorted(live["phone"]["permissions"]["view"]) == ["admin", "user"]
    assert live["phone"]["validations"]["pattern"]["pattern"] == PHONE_PATTERN
    assert live["nationalId"]["group"] == "identity"
    assert gateway.get_user_profile(realm).unmanaged_attribute_policy == "ADMIN_VIEW"

    # Step 2: the profile is live: Keycloak refuses a phone number that breaks the pattern ...
    user_id, password = customer(gateway, realm)
    with pytest.raises(Rejected, match="invalid-phone"):
        gateway.update_user(realm, user_id, {"attributes": {"phone": ["call me"], "nationalId": ["AB123456C"]}})
    stored = gateway.get_user(realm, user_id)
    assert stored is not None and stored.attributes["phone"] == ("+44 20 7946 0000",)
    # ... and the customer, signed in, sees the phone but not the national id; an administrator sees both.
    as_customer = KeycloakGateway.connect(
        replace(keycloak_connection, auth_realm=realm, username="customer1", password=password, client_secret=None)
    )
    try:
        own = as_customer.own_account(realm)
    finally:
        as_customer.close()
    assert own.attributes.get("phone") == ("+44 20 7946 0000",)
    assert "nationalId" not in own.attributes
    assert stored.attributes["nationalId"] == ("AB123456C",)

    # Step 3: update: a stricter length, the phone becomes required for users; order of validators and
    # permissions written differently changes nothing.
    phone = {
        **PHONE,
        "validators": {"length": {"max": 16}, "pattern": {"pattern": PHONE_PATTERN, "error-message": "invalid-phone"}},
        "view": ["admin", "user"],
        "required_for": ["user"],
    }
    spec = spec_of(realm, user_profile={"attributes": [phone, NATIONAL_ID], "groups": [IDENTITY_GROUP]})
    plan = planned(keycloak_connection, spec)
    assert fields(plan) == ["attributes.phone.required", "attributes.phone.validations", "groups.user-metadata"]
    apply_and_converge(keycloak_connection, spec)
    live = attributes_of(gateway, realm)
    assert live["phone"]["required"] == {"roles": ["user"]}
    assert live["phone"]["validations"]["length"] == {"max": 16}
    assert gateway.get_user_profile(realm).unmanaged_attribute_policy == "ADMIN_VIEW"  # not written: kept

    # An export of the realm, adopted as config, plans nothing.
    exported = friendly_federation_and_profile(gateway.export_realm(realm))["user_profile"]
    assert planned(keycloak_connection, spec_of(realm, user_profile=exported)).is_empty

    # Step 4: drift by hand: someone lets users see the national id; the plan shows exactly that.
    profile = gateway.get_user_profile(realm)
    drifted = [
        {**a, "permissions": {"view": ["admin", "user"], "edit": ["admin"]}} if a["name"] == "nationalId" else a
        for a in profile.attributes
    ]
    gateway.update_user_profile(realm, replace(profile, attributes=tuple(drifted)))
    plan = planned(keycloak_connection, spec)
    assert [(f.field, f.live, f.desired) for f in plan.changes[0].fields] == [
        (
            "attributes.nationalId.permissions",
            {"view": ["admin", "user"], "edit": ["admin"]},
            {"view": ["admin"], "edit": ["admin"]},
        )
    ]
    apply_and_converge(keycloak_connection, spec)
    assert attributes_of(gateway, realm)["nationalId"]["permissions"]["view"] == ["admin"]

    # Step 5: an attribute dropped from config leaves the profile (with a note); built-ins never do.
    spec = spec_of(realm, user_profile={"attributes": [phone]})
    plan = planned(keycloak_connection, spec)
    assert fields(plan) == ["attributes.nationalId"]
    assert "nationalId" in plan.changes[0].note
    apply_and_converge(keycloak_connection, spec)
    assert list(attributes_of(gateway, realm)) == [*BUILT_IN_ATTRIBUTES, "phone"]
    # The value stays with the user; with ADMIN_VIEW an administrator still sees it, read-only.
    stored = gateway.get_user(realm, user_id)
    assert stored is not None and stored.attributes.get("nationalId") == ("AB123456C",)


def test_written_built_in_is_merged_not_replaced(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str
) -> None:
    # Step 1: writing `email` with only a permission changes only that: its validators and required stay.
    before = attributes_of(gateway, realm)["email"]
    spec = spec_of(realm, user_profile={"attributes": [{"name": "email", "edit": ["admin"]}]})
    plan = apply_and_converge(keycloak_connection, spec)
    assert fields(plan) == ["attributes.email.permissions"]
    after = attributes_of(gateway, realm)["email"]
    assert after["permissions"]["edit"] == ["admin"]
    assert after["validations"] == before["validations"]
    assert after["required"] == before["required"]

    # Step 2: a profile without username is never produced, even with an empty attribute list.
    spec = spec_of(realm, user_profile={"attributes": []})
    assert planned(keycloak_connection, spec).is_empty
    assert list(attributes_of(gateway, realm)) == list(BUILT_IN_ATTRIBUTES)
