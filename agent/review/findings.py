"""Findings: pure checks over a Snapshot and a ReviewPolicy, each finding with a stable id, a severity and a
one-line explanation. `findings()` runs them all; each rule is also callable on its own (tests, reports).

Time is the snapshot's `taken_at`, never the wall clock, so a stored snapshot gives the same findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

from agent.keycloak.models import default_role_name, stored_by_keycloak
from agent.review.access import beyond_baseline
from agent.review.model import SEVERITIES, Finding, Grant, RoleRef, Severity, Snapshot, UserAccess, UserRecord
from agent.review.policy import ReviewPolicy, SodRule, missing_entitlements

Rule = Callable[[Snapshot, ReviewPolicy], Iterator[Finding]]

PRIVILEGED_WITHOUT_MFA = "privileged-without-mfa"
DORMANT = "dormant"
NEVER_LOGGED_IN = "never-logged-in"
LAST_LOGIN_UNKNOWN = "last-login-unknown"
ORPHAN_NO_EXTERNAL_ID = "orphan-no-external-id"
ORPHAN_NO_SOURCE_RECORD = "orphan-no-source-record"
LEAVER_ENABLED = "leaver-enabled"
SHARED_EXTERNAL_ID = "shared-external-id"
DIRECT_GRANT = "direct-grant"
SOD_CONFLICT = "sod-conflict"
SOD_RULE_UNKNOWN = "sod-rule-unknown"
TRAINING_LAPSED = "training-lapsed"
SANCTION_ACTIVE = "sanction-active"
APPEAL_OVERDUE = "appeal-overdue"
SERVICE_ACCOUNT_ADMIN = "service-account-admin"
DEFAULT_ROLE_BEYOND_BASELINE = "default-role-beyond-baseline"


def _finding(rule: str, severity: Severity, key: str, subject: str, explanation: str, **details: object) -> Finding:
    return Finding(f"{rule}:{key}", rule, severity, subject, explanation, MappingProxyType(details))


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


# -- who is privileged ------------------------------------------------------------------------------


def privileged_grants(access: UserAccess, policy: ReviewPolicy) -> list[Grant]:
    """The grants that make a user privileged: configured roles, any realm-management role, configured groups
    (or their sub-groups)."""
    roles = policy.privileged.role_refs()
    groups = set(policy.privileged.groups)
    return [
        grant
        for grant in access.grants
        if (grant.role is not None and (grant.role in roles or grant.role.is_realm_management))
        or (grant.kind == "group" and grant.name in groups)
    ]


def privileged_user_ids(snapshot: Snapshot, policy: ReviewPolicy) -> frozenset[str]:
    """Users (enabled or not) holding any privileged grant, for `--scope privileged` and reports."""
    return frozenset(user.id for user in snapshot.users if privileged_grants(snapshot.access_of(user.id), policy))


def _people(snapshot: Snapshot, policy: ReviewPolicy, *, exempt: bool = True) -> Iterator[UserRecord]:
    """Enabled human accounts (no service accounts), without the exempt (break-glass) ones when `exempt`."""
    skipped = set(policy.exempt_usernames) if exempt else set()
    for user in snapshot.users:
        if user.enabled and not user.is_service_account and user.username not in skipped:
            yield user


def _labels(grants: Iterable[Grant]) -> list[str]:
    return sorted(grant.name for grant in grants)


# -- rules ------------------------------------------------------------------------------------------


def privileged_without_mfa(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    for user in _people(snapshot, policy, exempt=False):
        grants = privileged_grants(snapshot.access_of(user.id), policy)
        if grants and not user.has_mfa:
            held = _labels(grants)
            yield _finding(
                PRIVILEGED_WITHOUT_MFA,
                "high",
                user.id,
                user.username,
                f"{user.username} holds {', '.join(held[:3])}{' ...' if len(held) > 3 else ''} without OTP or WebAuthn",
                user_id=user.id,
                grants=held,
                totp=user.totp,
                webauthn=user.has_webauthn,
            )


def last_login_findings(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    """Dormant accounts and accounts never logged in; one realm-level finding when no events were harvested."""
    if snapshot.logins_known_since is None:
        yield _finding(
            LAST_LOGIN_UNKNOWN,
            "info",
            snapshot.realm,
            snapshot.realm,
            f"no LOGIN events harvested for realm {snapshot.realm}: dormancy not checked (run events harvest)",
            realm=snapshot.realm,
        )
        return
    now = snapshot.taken_at
    dormant_before = now - timedelta(seconds=policy.dormant.after)
    never_before = now - timedelta(seconds=policy.dormant.never_logged_in_after)
    since = snapshot.logins_known_since
    for user in _people(snapshot, policy):
        last = snapshot.last_login.get(user.id)
        if last is not None and last < dormant_before:
            days = (now - last).days
            yield _finding(
                DORMANT,
                "medium",
                user.id,
                user.username,
                f"{user.username} last logged in {days} days ago ({_day(last)})",
                user_id=user.id,
                last_login=last.isoformat(),
                days=days,
            )
        elif last is None and user.created is not None and max(user.created, since) < never_before:
            # Counted from when logins were first known, as campaign recommendations are: right after the first
            # harvest, an account without a login yet is not one that never logged in.
            days = (now - user.created).days
            yield _finding(
                NEVER_LOGGED_IN,
                "medium",
                user.id,
                user.username,
                f"{user.username} was created {days} days ago and has no login recorded since {_day(since)}",
                user_id=user.id,
                created=user.created.isoformat(),
                logins_known_since=since.isoformat(),
                days=days,
            )


def orphans(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    """Enabled people with no immutable source id, whose id the sources no longer have, or marked leavers.

    A user Keycloak does not store (a federation with import off) needs no source id: Keycloak lists such users
    from the directory as it is, so one listed has an entry there. An imported account does need one: Keycloak
    keeps it, enabled, after its entry is deleted from the directory."""
    spec = policy.orphans
    for user in _people(snapshot, policy):
        external_id = user.attribute(spec.external_id_attribute)
        if external_id is None and stored_by_keycloak(user.id):
            yield _finding(
                ORPHAN_NO_EXTERNAL_ID,
                "medium",
                user.id,
                user.username,
                f"{user.username} has no {spec.external_id_attribute}: no source of truth vouches for this account",
                user_id=user.id,
                attribute=spec.external_id_attribute,
            )
        elif (
            external_id is not None
            and snapshot.source_external_ids is not None
            and external_id not in snapshot.source_external_ids
        ):
            yield _finding(
                ORPHAN_NO_SOURCE_RECORD,
                "high",
                user.id,
                user.username,
                f"{user.username} is enabled but no source has a record with id {external_id}",
                user_id=user.id,
                external_id=external_id,
            )
        leavers = snapshot.source_leaver_ids
        if external_id is not None and leavers is not None and external_id in leavers:
            yield _finding(
                LEAVER_ENABLED,
                "high",
                user.id,
                user.username,
                f"{user.username} has left according to the source (id {external_id}) and is still enabled",
                user_id=user.id,
                external_id=external_id,
            )
            continue
        leaver = spec.leaver
        if leaver is not None:
            marked = set(user.attributes.get(leaver.attribute, ())) & set(leaver.values)
            if marked:
                value = sorted(marked)[0]
                yield _finding(
                    LEAVER_ENABLED,
                    "high",
                    user.id,
                    user.username,
                    f"{user.username} is a leaver ({leaver.attribute}={value}) and still enabled",
                    user_id=user.id,
                    attribute=leaver.attribute,
                    value=value,
                )


def shared_external_ids(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    """Enabled people carrying the same immutable id: one source record vouches for several accounts, so one of
    them is not that person's, or the person has a second way in (the sync holds such accounts)."""
    attribute = policy.orphans.external_id_attribute
    by_id: dict[str, list[UserRecord]] = {}
    for user in _people(snapshot, policy):
        external_id = user.attribute(attribute)
        if external_id is not None:
            by_id.setdefault(external_id, []).append(user)
    for external_id, users in sorted(by_id.items()):
        if len(users) < 2:
            continue
        usernames = sorted(user.username for user in users)
        for user in users:
            others = ", ".join(name for name in usernames if name != user.username)
            yield _finding(
                SHARED_EXTERNAL_ID,
                "high",
                user.id,
                user.username,
                f"{user.username} carries {attribute} {external_id}, as do {others}: one source record vouches "
                f"for {len(users)} enabled accounts",
                user_id=user.id,
                external_id=external_id,
                accounts=", ".join(usernames),
            )


def direct_grants(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    """Roles mapped on a person directly instead of through a group (composites reached from them excluded)."""
    allowed = {RoleRef(name) for name in policy.direct_grants.allowed_roles} | {
        snapshot.default_role or RoleRef(default_role_name(snapshot.realm))
    }
    for user in _people(snapshot, policy):
        for grant in snapshot.access_of(user.id).roles():
            if grant.role is None or grant.role in allowed or not grant.direct:
                continue
            yield _finding(
                DIRECT_GRANT,
                "low",
                f"{user.id}:{grant.name}",
                user.username,
                f"{user.username} holds {grant.name} directly, not through a group",
                user_id=user.id,
                role=grant.name,
            )


def sod_conflicts(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    """Users whose effective access (groups, parents, composites) holds more of a rule's set than allowed."""
    for rule in policy.sod.rules:
        for user in snapshot.users:
            if not user.enabled:
                continue
            held = _held_from_rule(snapshot.access_of(user.id), rule)
            if len(held) > rule.max_held:
                names = [grant.name for grant in held]
                text = rule.explanation or f"must not hold more than {rule.max_held} of the set"
                yield _finding(
                    SOD_CONFLICT,
                    rule.severity,
                    f"{rule.name}:{user.id}",
                    user.username,
                    f"{user.username} breaks SoD rule {rule.name}: holds {' + '.join(names)} ({text})",
                    user_id=user.id,
                    sod_rule=rule.name,
                    held={grant.name: [route.describe() for route in grant.routes] for grant in held},
                )


def sod_rule_problems(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    """SoD rules naming roles or groups the realm lacks: such a rule can never fire, which hides a typo."""
    known_roles = frozenset(role.ref for role in snapshot.roles)
    known_groups = frozenset(group.path for group in snapshot.groups)
    for rule in policy.sod.rules:
        missing = missing_entitlements(rule, known_roles, known_groups)
        if missing:
            yield _finding(
                SOD_RULE_UNKNOWN,
                "info",
                rule.name,
                rule.name,
                f"SoD rule {rule.name} names what realm {snapshot.realm} lacks: {', '.join(missing)}",
                sod_rule=rule.name,
                missing=missing,
            )


def _held_from_rule(access: UserAccess, rule: SodRule) -> list[Grant]:
    roles = rule.role_refs()
    groups = set(rule.groups)
    return [
        grant
        for grant in access.grants
        if (grant.role is not None and grant.role in roles) or (grant.kind == "group" and grant.name in groups)
    ]


def lapsed_training(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    spec = policy.training
    if spec is None:
        return
    oldest = snapshot.taken_at - timedelta(seconds=spec.max_age)
    privileged = privileged_user_ids(snapshot, policy) if spec.only_privileged else None
    for user in _people(snapshot, policy):
        if privileged is not None and user.id not in privileged:
            continue
        raw = user.attribute(spec.attribute)
        taken = parse_day(raw) if raw is not None else None
        if raw is None:
            reason = f"has no {spec.attribute}"
        elif taken is None:
            reason = f"has an unreadable {spec.attribute} '{raw[:40]}'"
        elif taken < oldest:
            reason = f"was last trained on {_day(taken)}, more than {spec.max_age // 86_400} days ago"
        else:
            continue
        yield _finding(
            TRAINING_LAPSED,
            "medium",
            user.id,
            user.username,
            f"{user.username} {reason}",
            user_id=user.id,
            attribute=spec.attribute,
            value=raw,
        )


def parse_day(raw: str) -> datetime | None:
    """A date or ISO time from a source attribute, as a UTC time; None when unreadable."""
    text = raw.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        moment = datetime(day.year, day.month, day.day)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def sanctions_and_appeals(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    """Sanctions in force, and appeals not acknowledged or decided within the policy's deadlines."""
    names = {user.id: user.username for user in snapshot.users}
    for sanction in snapshot.sanctions:
        if sanction.in_force:
            who = names.get(sanction.user_id, sanction.user_id)
            until = f" until {_day(sanction.until)}" if sanction.until else ""
            yield _finding(
                SANCTION_ACTIVE,
                "medium",
                sanction.id,
                who,
                f"{who} is under a {sanction.state} {sanction.level} sanction{until}",
                user_id=sanction.user_id,
                sanction_id=sanction.id,
                level=sanction.level,
                state=sanction.state,
            )
    now = snapshot.taken_at
    for appeal in snapshot.appeals:
        if appeal.decided_at is not None:
            continue
        who = names.get(appeal.user_id, appeal.user_id)
        acknowledge_by = appeal.acknowledge_due or appeal.opened_at + timedelta(
            seconds=policy.appeals.acknowledge_within
        )
        decide_by = appeal.decide_due or appeal.opened_at + timedelta(seconds=policy.appeals.decide_within)
        if now > decide_by:
            missed, due = "decision", decide_by
        elif appeal.acknowledged_at is None and now > acknowledge_by:
            missed, due = "acknowledgement", acknowledge_by
        else:
            continue
        yield _finding(
            APPEAL_OVERDUE,
            "high",
            appeal.id,
            who,
            f"appeal {appeal.id} of {who} is overdue: {missed} was due {_day(due)}",
            user_id=appeal.user_id,
            appeal_id=appeal.id,
            sanction_id=appeal.sanction_id,
            missed=missed,
            due=due.isoformat(),
        )


def service_account_admins(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    skipped = set(policy.exempt_usernames)
    for user in snapshot.users:
        if not user.is_service_account or not user.enabled or user.username in skipped:
            continue
        grants = privileged_grants(snapshot.access_of(user.id), policy)
        if grants:
            held = _labels(grants)
            yield _finding(
                SERVICE_ACCOUNT_ADMIN,
                "high",
                user.id,
                user.username,
                f"service account of {user.service_account_client} holds admin role(s) {', '.join(held[:3])}"
                + (" ..." if len(held) > 3 else ""),
                user_id=user.id,
                client=user.service_account_client,
                grants=held,
            )


def default_role_beyond_baseline(snapshot: Snapshot, policy: ReviewPolicy) -> Iterator[Finding]:
    """The realm's default role granting more than Keycloak's baseline: every new account gets it unreviewed."""
    record = snapshot.role(snapshot.default_role) if snapshot.default_role is not None else None
    if record is None:
        return
    extra = beyond_baseline(record.expanded)
    if not extra:
        return
    privileged = policy.privileged.role_refs()
    severity: Severity = "high" if any(ref in privileged or ref.is_realm_management for ref in extra) else "medium"
    labels = sorted(ref.label for ref in extra)
    yield _finding(
        DEFAULT_ROLE_BEYOND_BASELINE,
        severity,
        record.ref.label,
        record.ref.label,
        f"default role {record.ref.label} gives every new account {', '.join(labels[:3])}"
        + (" ..." if len(labels) > 3 else ""),
        role=record.ref.label,
        grants=labels,
    )


RULES: tuple[Rule, ...] = (
    privileged_without_mfa,
    last_login_findings,
    orphans,
    shared_external_ids,
    direct_grants,
    sod_conflicts,
    sod_rule_problems,
    lapsed_training,
    sanctions_and_appeals,
    service_account_admins,
    default_role_beyond_baseline,
)


def findings(snapshot: Snapshot, policy: ReviewPolicy) -> list[Finding]:
    """Every finding of every rule, most severe first, then by rule and subject."""
    found = [finding for rule in RULES for finding in rule(snapshot, policy)]
    rank = {severity: index for index, severity in enumerate(SEVERITIES)}
    return sorted(found, key=lambda f: (rank[f.severity], f.rule, f.subject, f.id))
