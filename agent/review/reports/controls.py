"""The compliance matrix: every rule family of the design mapped to the control configured for it, the live value
read from Keycloak, and a verdict with a one-line evidence text. Pure: `evaluate_controls(configured, live)`.

A control passes when the live realm is at least as strict as the configuration asks (a longer minimum password
length passes), fails otherwise; what Keycloak cannot show (sanctions, appeals, retention) is `manual`; a family
with nothing configured says `not-configured` rather than passing silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from agent.realm.kinds.realm_settings import OTP_FIELDS
from agent.realm.kinds.terms import TERMS_ACTION, VERSION_ATTRIBUTE
from agent.realm.kinds.user_profile import UNMANAGED_POLICIES
from agent.realm.password_policy import PasswordPolicySpec, parse_password_policy
from agent.realm.spec import LockoutSpec, RealmSpec

ControlStatus = Literal["pass", "fail", "manual", "not-configured"]
CONTROL_STATUSES: tuple[ControlStatus, ...] = ("fail", "pass", "manual", "not-configured")
LOGIN_EVENT = "LOGIN"


@dataclass(frozen=True)
class RuleFamily:
    key: str
    title: str
    lives_in: str  # where the design puts it


RULE_FAMILIES: tuple[RuleFamily, ...] = (
    RuleFamily(
        "registration",
        "Registration and identity verification",
        "realm-config: registration, verify-email, user profile attributes and validators",
    ),
    RuleFamily("levels", "User levels and permissions", "realm-config: realm and client roles, composites, groups"),
    RuleFamily("passwords", "Password rules", "policies: password and lockout presets, applied to the realm"),
    RuleFamily(
        "mfa", "MFA for sensitive roles", "policies + realm-config: OTP policy, conditional flows by role/group"
    ),
    RuleFamily("terms", "Behaviour rules and terms of service", "realm-config: terms required action with a version"),
    RuleFamily("sanctions", "Violation handling", "policies: sanction ladder; agent: sanction ledger and enforcement"),
    RuleFamily("appeals", "Complaints, disputes and appeals", "agent: appeal cases tied to sanctions, with deadlines"),
    RuleFamily("personal-data", "Personal data", "realm-config: user profile permissions; policies: retention"),
    RuleFamily("audits", "Periodic audits and supervision", "agent: access reviews, findings, journal; events"),
    RuleFamily("training", "Training and awareness", "mappers: training dates from HR; policies: lapsed training"),
)
FAMILY_TITLES: Mapping[str, str] = MappingProxyType({family.key: family.title for family in RULE_FAMILIES})


@dataclass(frozen=True)
class ControlResult:
    family: str  # a RuleFamily key
    control: str  # what is required, e.g. "password minimum length >= 12"
    realm: str
    configured: str  # where the requirement is written
    live: str  # the live value as read, e.g. "passwordPolicy length(14)"
    status: ControlStatus

    @property
    def evidence(self) -> str:
        return f"{self.control}: realm {self.realm}, {self.live}: {self.status}"


@dataclass(frozen=True)
class LiveControls:
    """What the matrix reads from one realm (see controls_live.read_live_controls)."""

    realm: str
    exists: bool = True
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # the realm representation
    realm_roles: frozenset[str] = frozenset()
    group_roles: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))  # path -> roles
    required_actions: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))  # alias -> enabled
    browser_flow: str | None = None
    otp_roles: frozenset[str] = frozenset()  # roles whose holders the bound browser flow asks for OTP
    unmanaged_attribute_policy: str | None = None
    profile_attributes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PolicyFacts:
    """What policies/ and idp-agent.yaml say, as far as the matrix needs; None/empty: not written."""

    sanction_levels: tuple[str, ...] | None = None
    appeal_deadlines: str | None = None
    retention: tuple[str, ...] = ()  # e.g. "sync workforce: standard (keep 90d, then delete)"
    training_attribute: str | None = None
    review_policy: str | None = None  # e.g. "policies/review.yaml: dormant after 90 days"
    journal: str | None = None  # e.g. "journal verified: 120 entries, chain intact"
    journal_ok: bool | None = None


@dataclass(frozen=True)
class ConfiguredControls:
    realm: str
    spec: RealmSpec | None  # None: the realm is not in realm-config/
    source: str  # e.g. "realm-config/workforce"
    policies: PolicyFacts = PolicyFacts()


Evaluator = Callable[[ConfiguredControls, LiveControls], list[ControlResult]]


# -- helpers ------------------------------------------------------------------------------------------------


def verdict(ok: bool) -> ControlStatus:
    return "pass" if ok else "fail"


def on_off(value: object) -> str:
    return "true" if value is True else "false" if value is False else "not set"


# A row is six facts; keywords at every call would triple the matrix's length.
def _result(family: str, control: str, c: ConfiguredControls, configured: str, live: str, ok: bool) -> ControlResult:  # noqa: PLR0917
    return ControlResult(family, control, c.realm, configured, live, verdict(ok))


# -- registration -------------------------------------------------------------------------------------------

REGISTRATION_LABELS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "allowed": ("registrationAllowed", "self-registration allowed"),
        "verify_email": ("verifyEmail", "email verified before first use"),
        "email_as_username": ("registrationEmailAsUsername", "email as username"),
        "duplicate_emails": ("duplicateEmailsAllowed", "duplicate emails allowed"),
        "login_with_email": ("loginWithEmailAllowed", "login with email"),
        "reset_password": ("resetPasswordAllowed", "password reset by email"),
        "edit_username": ("editUsernameAllowed", "username editable"),
    }
)


def registration_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    results: list[ControlResult] = []
    registration = c.spec.registration if c.spec else None
    for name, (keycloak_field, label) in REGISTRATION_LABELS.items():
        wanted = getattr(registration, name, None) if registration else None
        if wanted is None:
            continue
        actual = live.settings.get(keycloak_field)
        results.append(
            _result(
                "registration", f"{label} = {on_off(wanted)}", c, f"{c.source}: registration.{name}",
                f"{keycloak_field} {on_off(actual)}", actual is wanted,
            )
        )  # fmt: skip
    # A baseline every regulation shares: self-registered accounts prove their email first.
    allowed = live.settings.get("registrationAllowed") is True
    verified = live.settings.get("verifyEmail") is True
    results.append(
        _result(
            "registration", "self-registered accounts verify their email", c, "baseline: identity verification",
            f"registrationAllowed {on_off(allowed)}, verifyEmail {on_off(verified)}", not allowed or verified,
        )
    )  # fmt: skip
    profile = c.spec.user_profile if c.spec else None
    wanted_attributes = sorted(attribute.name for attribute in (profile.attributes or ()) if profile) if profile else []
    if wanted_attributes:
        missing = sorted(set(wanted_attributes) - live.profile_attributes)
        live_text = f"user profile lacks {', '.join(missing)}" if missing else "user profile has all of them"
        results.append(
            _result(
                "registration", f"user profile attributes defined ({', '.join(wanted_attributes)})", c,
                f"{c.source}: user_profile.attributes", live_text, not missing,
            )
        )  # fmt: skip
    return results


# -- user levels and permissions ------------------------------------------------------------------------------


def level_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    results: list[ControlResult] = []
    roles = sorted(role.name for role in (c.spec.roles or ())) if c.spec else []
    if roles:
        missing = sorted(set(roles) - live.realm_roles)
        results.append(
            _result(
                "levels", f"user levels exist as realm roles ({', '.join(roles)})", c, f"{c.source}: roles",
                f"missing {', '.join(missing)}" if missing else f"{len(roles)} of {len(roles)} present", not missing,
            )
        )  # fmt: skip
    for group in (c.spec.groups or ()) if c.spec else ():
        if group.realm_roles is None:
            continue
        present = live.group_roles.get(group.path)
        wanted = frozenset(group.realm_roles)
        if present is None:
            live_text = f"group {group.path} missing"
        else:
            live_text = f"group {group.path} grants {', '.join(sorted(present)) or 'no realm role'}"
        results.append(
            _result(
                "levels", f"group {group.path} grants {', '.join(sorted(wanted)) or 'no realm role'}", c,
                f"{c.source}: groups {group.path}", live_text, present is not None and wanted <= present,
            )
        )  # fmt: skip
    return results


# -- passwords and lockout ------------------------------------------------------------------------------------

# field -> (Keycloak policy id, label); the live value must be at least the configured one.
AT_LEAST_TERMS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "min_length": ("length", "password minimum length"),
        "uppercase": ("upperCase", "upper-case letters"),
        "lowercase": ("lowerCase", "lower-case letters"),
        "digits": ("digits", "digits"),
        "special_chars": ("specialChars", "special characters"),
        "history": ("passwordHistory", "previous passwords refused"),
    }
)
FLAG_TERMS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "not_username": ("notUsername", "password differs from username"),
        "not_email": ("notEmail", "password differs from email"),
    }
)


def _term_text(policy_id: str, value: object) -> str:
    if value is None or value is False:
        return f"passwordPolicy has no {policy_id} term"
    return f"passwordPolicy {policy_id}" if value is True else f"passwordPolicy {policy_id}({value})"


def password_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    policy = c.spec.password_policy if c.spec else None
    if not isinstance(policy, PasswordPolicySpec):
        return []
    text = str(live.settings.get("passwordPolicy") or "")
    try:
        actual = parse_password_policy(text)
    except ValueError as error:
        where = f"{c.source}: password_policy"
        return [ControlResult("passwords", "password policy readable", c.realm, where, str(error), "fail")]
    where = f"{c.source}: password_policy"
    results: list[ControlResult] = []
    for name, (policy_id, label) in AT_LEAST_TERMS.items():
        wanted = getattr(policy, name)
        if wanted is None:
            continue
        got = getattr(actual, name)
        ok = got is not None and got >= wanted
        results.append(_result("passwords", f"{label} >= {wanted}", c, where, _term_text(policy_id, got), ok))
    for name, (policy_id, label) in FLAG_TERMS.items():
        if getattr(policy, name):
            got = getattr(actual, name)
            results.append(_result("passwords", label, c, where, _term_text(policy_id, got), got is True))
    if policy.expire_days is not None:
        got = actual.expire_days
        ok = got is not None and got <= policy.expire_days
        label = f"password changed at least every {policy.expire_days} days"
        results.append(_result("passwords", label, c, where, _term_text("forceExpiredPasswordChange", got), ok))
    return results


def lockout_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    lockout = c.spec.lockout if c.spec else None
    if not isinstance(lockout, LockoutSpec):
        return []
    where = f"{c.source}: lockout"
    settings = live.settings
    protected = settings.get("bruteForceProtected") is True
    results = [
        _result(
            "passwords", f"brute-force lockout {'on' if lockout.enabled else 'off'}", c, where,
            f"bruteForceProtected {on_off(settings.get('bruteForceProtected'))}", protected is lockout.enabled,
        )
    ]  # fmt: skip
    if lockout.enabled and lockout.max_failures is not None:
        failures = settings.get("failureFactor")
        ok = protected and isinstance(failures, int) and failures <= lockout.max_failures
        label = f"locked after at most {lockout.max_failures} failures"
        results.append(_result("passwords", label, c, where, f"failureFactor {failures}", ok))
    if lockout.enabled and lockout.permanent_after is not None:
        permanent = settings.get("permanentLockout") is True
        temporary = settings.get("maxTemporaryLockouts")
        ok = protected and permanent and isinstance(temporary, int) and temporary <= lockout.permanent_after
        label = f"permanent lockout after at most {lockout.permanent_after} temporary ones"
        live_text = f"permanentLockout {on_off(permanent)}, maxTemporaryLockouts {temporary}"
        results.append(_result("passwords", label, c, where, live_text, ok))
    return results


# -- MFA --------------------------------------------------------------------------------------------------------


def _flow_text(live: LiveControls) -> str:
    roles = ", ".join(sorted(live.otp_roles)) or "no role"
    return f"browser flow '{live.browser_flow or 'none'}' asks OTP of {roles}"


def mfa_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    mfa = c.spec.mfa if c.spec else None
    results: list[ControlResult] = []
    if mfa is not None:
        for role in mfa.otp_for_roles:
            ok = role in live.otp_roles
            results.append(_result("mfa", f"OTP required for role {role}", c, f"{c.source}: mfa", _flow_text(live), ok))
        for path in mfa.otp_for_groups:
            marked = mfa.group_role in live.group_roles.get(path, frozenset())
            ok = marked and mfa.group_role in live.otp_roles
            live_text = f"{_flow_text(live)}; group {path} {'grants' if marked else 'lacks'} {mfa.group_role}"
            results.append(_result("mfa", f"OTP required for group {path}", c, f"{c.source}: mfa", live_text, ok))
    otp = c.spec.otp_policy if c.spec else None
    for name, keycloak_field in OTP_FIELDS.items():
        wanted = getattr(otp, name, None) if otp else None
        if wanted is None:
            continue
        actual = live.settings.get(keycloak_field)
        results.append(
            _result(
                "mfa", f"OTP policy {name} = {wanted}", c, f"{c.source}: otp_policy.{name}",
                f"{keycloak_field} {actual}", actual == wanted,
            )
        )  # fmt: skip
    return results


# -- terms --------------------------------------------------------------------------------------------------------


def recorded_terms_version(settings: Mapping[str, Any]) -> str | None:
    attributes = settings.get("attributes") or {}
    value = attributes.get(VERSION_ATTRIBUTE) if isinstance(attributes, Mapping) else None
    return str(value) if value is not None else None


def terms_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    terms = c.spec.terms if c.spec else None
    if terms is None:
        return []
    where = f"{c.source}: terms"
    enabled = live.required_actions.get(TERMS_ACTION)
    action_text = f"{TERMS_ACTION} {'not registered' if enabled is None else 'enabled' if enabled else 'disabled'}"
    recorded = recorded_terms_version(live.settings)
    return [
        _result(
            "terms", f"users must accept the terms ({'required' if terms.required else 'not required'})", c, where,
            action_text, bool(enabled) is terms.required,
        ),
        _result(
            "terms", f"terms version {terms.version} in force", c, where,
            f"recorded version {recorded or 'none'}", recorded == str(terms.version),
        ),
    ]  # fmt: skip


# -- what only the agent enforces -----------------------------------------------------------------------------------


def sanction_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    levels = c.policies.sanction_levels
    if levels is None:
        return []
    return [
        ControlResult(
            "sanctions", f"sanction ladder defined ({' > '.join(levels) or 'no level'})", c.realm,
            "policies/sanctions.yaml", "enforced by `idp-agent sanctions enforce`; see the sanction ledger", "manual",
        )
    ]  # fmt: skip


def appeal_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    deadlines = c.policies.appeal_deadlines
    if deadlines is None:
        return []
    return [
        ControlResult(
            "appeals", f"appeals handled within deadlines ({deadlines})", c.realm, "policies/sanctions.yaml: appeals",
            "tracked by `idp-agent appeal list`; overdue appeals appear in the access report", "manual",
        )
    ]  # fmt: skip


def personal_data_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    results: list[ControlResult] = []
    profile = c.spec.user_profile if c.spec else None
    if profile is not None and profile.unmanaged_attributes is not None:
        wanted = UNMANAGED_POLICIES[profile.unmanaged_attributes]
        results.append(
            _result(
                "personal-data", f"attributes outside the profile: {profile.unmanaged_attributes}", c,
                f"{c.source}: user_profile.unmanaged_attributes",
                f"unmanagedAttributePolicy {live.unmanaged_attribute_policy or 'DISABLED'}",
                live.unmanaged_attribute_policy == wanted,
            )
        )  # fmt: skip
    events = c.spec.events if c.spec else None
    if events is not None and events.expiration is not None:
        actual = live.settings.get("eventsExpiration")
        results.append(
            _result(
                "personal-data", f"login events kept {events.expiration // 86400} days, then destroyed", c,
                f"{c.source}: events.expiration", f"eventsExpiration {actual}", actual == events.expiration,
            )
        )  # fmt: skip
    for preset in c.policies.retention:
        results.append(
            ControlResult(
                "personal-data", f"leavers' accounts removed after retention: {preset}", c.realm,
                "idp-agent.yaml + policies/retention.yaml", "applied by the identity sync", "manual",
            )
        )  # fmt: skip
    return results


def stores_login_events(settings: Mapping[str, Any]) -> bool:
    """Keycloak stores every event type when `enabledEventTypes` is empty."""
    types = settings.get("enabledEventTypes") or []
    return settings.get("eventsEnabled") is True and (not types or LOGIN_EVENT in types)


def audit_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    settings = live.settings
    types = settings.get("enabledEventTypes") or []
    results = [
        _result(
            "audits", "LOGIN events stored (last login known for dormant-account reviews)", c,
            "baseline (issue: last login from LOGIN events)",
            f"eventsEnabled {on_off(settings.get('eventsEnabled'))}, enabledEventTypes {', '.join(types) or 'all'}",
            stores_login_events(settings),
        )
    ]  # fmt: skip
    events = c.spec.events if c.spec else None
    if events is not None and events.admin_events is not None:
        actual = settings.get("adminEventsEnabled")
        results.append(
            _result(
                "audits", f"admin events recorded = {on_off(events.admin_events)}", c, f"{c.source}: events",
                f"adminEventsEnabled {on_off(actual)}", actual is events.admin_events,
            )
        )  # fmt: skip
    if c.policies.review_policy is not None:
        results.append(
            ControlResult(
                "audits", "periodic access reviews configured", c.realm, c.policies.review_policy,
                "campaigns: `idp-agent review list`", "manual",
            )
        )  # fmt: skip
    if c.policies.journal is not None:
        ok = c.policies.journal_ok is True
        results.append(
            ControlResult(
                "audits", "tamper-evident journal intact", c.realm, "agent store", c.policies.journal, verdict(ok)
            )
        )
    return results


def training_controls(c: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    attribute = c.policies.training_attribute
    if attribute is None:
        return []
    kept = attribute in live.profile_attributes or live.unmanaged_attribute_policy is not None
    live_text = (
        f"attribute {attribute} in the user profile"
        if attribute in live.profile_attributes
        else f"unmanagedAttributePolicy {live.unmanaged_attribute_policy or 'DISABLED'}"
    )
    return [
        _result(
            "training", f"training date kept on each user (attribute {attribute})", c, "policies/review.yaml",
            live_text, kept,
        )
    ]  # fmt: skip


EVALUATORS: Mapping[str, tuple[Evaluator, ...]] = MappingProxyType(
    {
        "registration": (registration_controls,),
        "levels": (level_controls,),
        "passwords": (password_controls, lockout_controls),
        "mfa": (mfa_controls,),
        "terms": (terms_controls,),
        "sanctions": (sanction_controls,),
        "appeals": (appeal_controls,),
        "personal-data": (personal_data_controls,),
        "audits": (audit_controls,),
        "training": (training_controls,),
    }
)


def not_configured(family: RuleFamily, realm: str) -> ControlResult:
    return ControlResult(family.key, "no control configured", realm, family.lives_in, "-", "not-configured")


def evaluate_controls(configured: ConfiguredControls, live: LiveControls) -> list[ControlResult]:
    """Every rule family in the design's order; a family without any control gets one `not-configured` row."""
    if not live.exists:
        return [
            ControlResult(family.key, "realm exists", configured.realm, configured.source, "realm not found", "fail")
            for family in RULE_FAMILIES
        ]
    results: list[ControlResult] = []
    for family in RULE_FAMILIES:
        found = [result for evaluate in EVALUATORS[family.key] for result in evaluate(configured, live)]
        results.extend(found or [not_configured(family, configured.realm)])
    return results


def count_statuses(results: Iterable[ControlResult]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(CONTROL_STATUSES, 0)
    for result in results:
        counts[result.status] += 1
    return counts
