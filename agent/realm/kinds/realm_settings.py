"""Realm settings: registration, sessions, events, SMTP, i18n, password policy, lockout, OTP, WebAuthn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.keycloak import KeycloakGateway
from agent.realm.kinds.base import LiveRealm, fingerprint_attributes, secret_changed
from agent.realm.live import LiveReader
from agent.realm.password_policy import PasswordPolicySpec, compile_password_policy, policies_equal
from agent.realm.plan import Change, FieldChange, diff_fields
from agent.realm.spec import LockoutSpec, RealmSpec, SmtpSpec
from agent.realm.written_maps import BOOKKEEPING_ATTRIBUTE_PREFIXES
from agent.secrets import Secret

KIND = "realm"
SMTP_SECRET = "smtp.password"  # noqa: S105 - the name of a fingerprint, not a password

REGISTRATION_FIELDS = {
    "allowed": "registrationAllowed",
    "email_as_username": "registrationEmailAsUsername",
    "login_with_email": "loginWithEmailAllowed",
    "verify_email": "verifyEmail",
    "duplicate_emails": "duplicateEmailsAllowed",
    "reset_password": "resetPasswordAllowed",
    "remember_me": "rememberMe",
    "edit_username": "editUsernameAllowed",
}
SESSION_FIELDS = {
    "idle_timeout": "ssoSessionIdleTimeout",
    "max_lifespan": "ssoSessionMaxLifespan",
    "remember_me_idle_timeout": "ssoSessionIdleTimeoutRememberMe",
    "remember_me_max_lifespan": "ssoSessionMaxLifespanRememberMe",
    "offline_idle_timeout": "offlineSessionIdleTimeout",
    "access_token_lifespan": "accessTokenLifespan",
    "access_token_lifespan_implicit": "accessTokenLifespanForImplicitFlow",
    "access_code_lifespan": "accessCodeLifespan",
    "action_token_lifespan": "actionTokenGeneratedByUserLifespan",
}
EVENT_FIELDS = {
    "enabled": "eventsEnabled",
    "types": "enabledEventTypes",
    "expiration": "eventsExpiration",
    "admin_events": "adminEventsEnabled",
    "admin_events_details": "adminEventsDetailsEnabled",
    "listeners": "eventsListeners",
}
OTP_FIELDS = {
    "type": "otpPolicyType",
    "algorithm": "otpPolicyAlgorithm",
    "digits": "otpPolicyDigits",
    "period": "otpPolicyPeriod",
    "look_ahead": "otpPolicyLookAheadWindow",
    "initial_counter": "otpPolicyInitialCounter",
    "reusable": "otpPolicyCodeReusable",
}
WEBAUTHN_FIELDS = {
    "rp_name": "webAuthnPolicyRpEntityName",
    "rp_id": "webAuthnPolicyRpId",
    "signature_algorithms": "webAuthnPolicySignatureAlgorithms",
    "attestation": "webAuthnPolicyAttestationConveyancePreference",
    "authenticator_attachment": "webAuthnPolicyAuthenticatorAttachment",
    "require_resident_key": "webAuthnPolicyRequireResidentKey",
    "user_verification": "webAuthnPolicyUserVerificationRequirement",
    "timeout": "webAuthnPolicyCreateTimeout",
}


@dataclass(frozen=True)
class RealmUpdate:
    """What the executor writes: realm fields, plus secrets whose fingerprints it records afterwards."""

    fields: Mapping[str, Any]
    secrets: Mapping[str, Secret]


def _mapped(section: Any, table: Mapping[str, str]) -> dict[str, Any]:
    """Keycloak fields for the friendly keys of `section` that are set (None = not managed)."""
    if section is None:
        return {}
    values = {}
    for friendly, keycloak in table.items():
        value = getattr(section, friendly)
        if value is not None:
            values[keycloak] = list(value) if isinstance(value, tuple) else value
    return values


def lockout_fields(lockout: LockoutSpec) -> dict[str, Any]:
    """Brute-force fields; `permanent_after` N means N temporary lockouts, then a permanent one."""
    if not lockout.enabled:
        return {"bruteForceProtected": False}
    fields: dict[str, Any] = {"bruteForceProtected": True}
    optional = {
        "failureFactor": lockout.max_failures,
        "waitIncrementSeconds": lockout.wait_increment,
        "maxFailureWaitSeconds": lockout.max_wait,
        "maxDeltaTimeSeconds": lockout.failure_reset,
        "minimumQuickLoginWaitSeconds": lockout.min_quick_login_wait,
    }
    fields.update({key: value for key, value in optional.items() if value is not None})
    if lockout.quick_login_check is not None:
        fields["quickLoginCheckMilliSeconds"] = lockout.quick_login_check * 1000
    if lockout.permanent_after is None:
        fields["permanentLockout"] = False
    else:
        fields["permanentLockout"] = True
        fields["maxTemporaryLockouts"] = lockout.permanent_after
    return fields


def smtp_fields(smtp: SmtpSpec) -> dict[str, Any]:
    server: dict[str, Any] = {
        "host": smtp.host,
        "port": str(smtp.port),
        "from": smtp.from_address,
        "starttls": str(smtp.starttls).lower(),
        "ssl": str(smtp.ssl).lower(),
        "auth": str(smtp.user is not None).lower(),
    }
    optional = {"fromDisplayName": smtp.from_display_name, "replyTo": smtp.reply_to, "user": smtp.user}
    server.update({key: value for key, value in optional.items() if value is not None})
    return server


def desired_fields(spec: RealmSpec) -> dict[str, Any]:
    """Every realm field the spec manages, in Keycloak's names (secrets excluded)."""
    fields: dict[str, Any] = {}
    if spec.display_name is not None:
        fields["displayName"] = spec.display_name
    if spec.display_name_html is not None:
        fields["displayNameHtml"] = spec.display_name_html
    if spec.enabled is not None:
        fields["enabled"] = spec.enabled
    fields.update(_mapped(spec.registration, REGISTRATION_FIELDS))
    fields.update(_mapped(spec.sessions, SESSION_FIELDS))
    fields.update(_mapped(spec.events, EVENT_FIELDS))
    fields.update(_mapped(spec.otp_policy, OTP_FIELDS))
    fields.update(_mapped(spec.webauthn_policy, WEBAUTHN_FIELDS))
    if spec.internationalization is not None:
        i18n = spec.internationalization
        fields["internationalizationEnabled"] = i18n.enabled
        fields["supportedLocales"] = list(i18n.supported_locales)
        fields["defaultLocale"] = i18n.default_locale
    if spec.password_policy is not None:
        assert isinstance(spec.password_policy, PasswordPolicySpec), "presets are resolved by the loader"
        fields["passwordPolicy"] = compile_password_policy(spec.password_policy)
    if spec.lockout is not None:
        assert isinstance(spec.lockout, LockoutSpec), "presets are resolved by the loader"
        fields.update(lockout_fields(spec.lockout))
    if spec.smtp is not None:
        fields["smtpServer"] = smtp_fields(spec.smtp)
    if spec.keycloak:
        fields.update(spec.keycloak)
    return fields


def plan_realm_settings(spec: RealmSpec, live_realm: LiveRealm) -> list[Change]:
    """One `~ realm` change listing every managed field that differs (or `+ realm` when it is new)."""
    desired = desired_fields(spec)
    live = live_realm.representation
    changes = list(diff_fields(without_bookkeeping(live), without_bookkeeping(desired)))
    if "passwordPolicy" in desired and policies_equal(str(live.get("passwordPolicy") or ""), desired["passwordPolicy"]):
        changes = [change for change in changes if change.field != "passwordPolicy"]
    secrets: dict[str, Secret] = {}
    smtp_password = spec.smtp.password if spec.smtp else None
    if smtp_password is not None and secret_changed(live_realm, SMTP_SECRET, smtp_password):
        secrets[SMTP_SECRET] = smtp_password
        live_has_password = bool((live.get("smtpServer") or {}).get("password"))
        changes.append(FieldChange("smtpServer.password", "set" if live_has_password else None, "set", secret=True))
    if not live_realm.exists:
        return [Change(KIND, "create", spec.realm, tuple(changes), desired=RealmUpdate(desired, secrets))]
    if not changes:
        return []
    return [Change(KIND, "update", spec.realm, tuple(changes), desired=RealmUpdate(desired, secrets))]


def without_bookkeeping(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """Realm fields as a plan may compare and show them: `attributes` without the bookkeeping keys."""
    attributes = fields.get("attributes")
    if not isinstance(attributes, Mapping):
        return fields
    kept = {key: value for key, value in attributes.items() if not str(key).startswith(BOOKKEEPING_ATTRIBUTE_PREFIXES)}
    return {**fields, "attributes": kept}


def write_realm_update(gateway: KeycloakGateway, realm: str, update: RealmUpdate) -> None:
    """PUT the realm whole (GET, overlay, PUT): Keycloak rebuilds omitted parts from defaults otherwise."""
    live = gateway.get_realm(realm)
    assert live is not None
    fields = dict(update.fields)
    if update.secrets:
        smtp = dict(fields.get("smtpServer") or live.representation.get("smtpServer") or {})
        if SMTP_SECRET in update.secrets:
            smtp["password"] = update.secrets[SMTP_SECRET].reveal()
        fields["smtpServer"] = smtp
        attributes = dict(live.representation.get("attributes") or {})
        attributes.update(dict(fields.get("attributes") or {}))
        attributes.update(fingerprint_attributes(live.id, update.secrets))
        fields["attributes"] = attributes
    elif "smtpServer" in fields and (live.representation.get("smtpServer") or {}).get("password"):
        # Keycloak reads the password back masked; sending the mask keeps the stored one.
        fields["smtpServer"] = {**fields["smtpServer"], "password": live.representation["smtpServer"]["password"]}
    if "attributes" in fields and "attributes" in live.representation:
        fields["attributes"] = {**live.representation["attributes"], **fields["attributes"]}
    gateway.update_realm(realm, fields)


class RealmSettings:
    name = KIND

    def read(self, live: LiveReader) -> None:
        return None  # the realm representation is read once, for every kind, as LiveRealm

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: None) -> list[Change]:
        return plan_realm_settings(spec, live_realm)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        update: RealmUpdate = change.desired
        if change.action == "create" and gateway.get_realm(realm) is None:
            gateway.create_realm(realm)
        if update.fields or update.secrets:
            write_realm_update(gateway, realm, update)
