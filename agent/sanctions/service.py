"""Sanctions as the CLI, the daemon and appeals use them: issue, lift, reduce, enforce, and the set of users
the sync must leave alone. Every write goes through the executor and is journalled; every sanction is
verified against Keycloak after its writes, and stays visibly pending until it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from agent.errors import AgentError, ConfigError, KeycloakError
from agent.sanctions.context import SanctionContext, journal
from agent.sanctions.executor import StepResult, Writer, apply_steps, failures
from agent.sanctions.live import deny_reason, find_user, read_account
from agent.sanctions.notices import notice_template, notify, notify_if_owed
from agent.sanctions.plan import (
    REDUCED_FROM_PREFIX,
    REDUCED_NOTE_PREFIX,
    Step,
    escalated_level,
    hand_over,
    is_expired,
    left_meanwhile,
    plan_apply,
    plan_restore,
    verify_apply,
    verify_restore,
    wanted_attributes,
)
from agent.sanctions.policy import SanctionPolicy
from agent.store.db import Store
from agent.store.journal import NewEntry
from agent.store.runs import RunStatus
from agent.store.sanctions import OPEN_STATES, EndState, NewSanction, Sanction
from agent.store.values import JsonValue


class SanctionError(AgentError):
    """A sanction request that cannot be carried out as asked (unknown user, level or id, deny-listed...)."""


@dataclass
class EnforceReport:
    """What one enforcement pass did, per sanction id."""

    run_id: str
    applied: list[str] = field(default_factory=list)  # verified effective this pass (first time)
    reasserted: list[str] = field(default_factory=list)  # drift undone
    lifted: list[str] = field(default_factory=list)  # ended (lifted, expired, overturned) and verified
    pending: dict[str, str] = field(default_factory=dict)  # id -> what is not yet effective or restored
    unchanged: int = 0

    @property
    def ok(self) -> bool:
        return not self.pending


# -- reads ------------------------------------------------------------------------------------------


def get_sanction(store: Store, sanction_id: str) -> Sanction | None:
    return store.sanctions.get(sanction_id)


def sanctioned_user_ids(store: Store, realm: str, policy: SanctionPolicy | None = None) -> frozenset[str]:
    """Keycloak ids of users whose access a sanction holds (pending or active, or still being lifted): the
    sync must not change their `enabled`. Without a policy every open sanction counts; with one, only levels
    that change access (a warning does not stop a leaver being disabled)."""
    open_ones = store.sanctions.list(realm=realm, states=OPEN_STATES)
    return frozenset(s.user_id for s in open_ones if _holds(s, policy))


def access_held(store: Store, realm: str, user_id: str, policy: SanctionPolicy | None = None) -> bool:
    """Whether a sanction holds this one user's access now (as `sanctioned_user_ids` counts them)."""
    return any(_holds(s, policy) for s in store.sanctions.list(realm=realm, user_id=user_id, states=OPEN_STATES))


def _holds(sanction: Sanction, policy: SanctionPolicy | None) -> bool:
    return policy is None or _holds_access(policy, sanction.level) or sanction.ending is not None


def _holds_access(policy: SanctionPolicy, level: str) -> bool:
    return not policy.has_level(level) or policy.level(level).actions.holds_access


# -- issuing ------------------------------------------------------------------------------------------


def sanction_end(
    now: datetime, default: timedelta | None, *, duration: timedelta | None, until: datetime | None
) -> datetime | None:
    """When a sanction issued `now` ends: `until`, else `now + duration`, else the level's default."""
    if until is not None:
        if until <= now:
            raise SanctionError(f"--until {until.isoformat()} is not in the future")
        return until
    length = duration if duration is not None else default
    return None if length is None else now + length


def issue_sanction(
    context: SanctionContext,
    user_reference: str,
    *,
    level: str,
    reason_code: str,
    duration: timedelta | None = None,
    until: datetime | None = None,
    note: str = "",
    evidence: tuple[str, ...] = (),
) -> Sanction:
    """Record a sanction (raised by the escalation rules), notify the user, and enforce it at once."""
    policy = context.policy
    _check_known(policy, level, reason_code)
    user = find_user(context.gateway, context.realm, user_reference)
    if user is None:
        raise SanctionError(
            f"no user '{user_reference}' in realm '{context.realm}'", hint="name the user by username, e-mail or id"
        )
    denied = deny_reason(context.gateway, context.realm, user, policy.is_break_glass(user.username))
    if denied:
        raise SanctionError(f"user '{user.username}' cannot be sanctioned: {denied}")
    now = context.clock()
    history = context.store.sanctions.list(realm=context.realm, user_id=user.id)
    final_level = escalated_level(policy, level, history, now)
    _check_targets_exist(context, final_level)
    end = sanction_end(now, policy.level(final_level).default_duration, duration=duration, until=until)
    new = NewSanction(
        realm=context.realm, user_id=user.id, username=user.username, level=final_level, requested_level=level,
        reason_code=reason_code, issued_by=context.actor, until=end, note=note, evidence=evidence,
    )  # fmt: skip
    with _run(context, "sanction-issue", f"{final_level} for {user.username}") as scope:
        acting = scope.context
        escalation = f" (escalated from {level})" if final_level != level else ""
        reason = f"{final_level}{escalation}: {reason_code}"
        with acting.store.atomic():  # never a sanction without its issue entry (and the notice it owes)
            sanction = acting.store.sanctions.add(new)
            details = _issue_details(sanction, notice_template(acting, sanction))
            journal(acting, sanction, "sanction.issue", reason, details)
        outcome = enforce_one(acting, sanction)  # enforced at once; the notice, which may fail, comes after
        notify(acting, sanction)
        return scope.done(outcome)


def _check_known(policy: SanctionPolicy, level: str, reason_code: str) -> None:
    if not policy.has_level(level):
        known = ", ".join(item.name for item in policy.levels)
        raise ConfigError(f"unknown sanction level '{level}'", hint=f"levels in the policy: {known}")
    if not policy.has_reason(reason_code):
        known = ", ".join(item.code for item in policy.reasons)
        raise ConfigError(f"unknown reason code '{reason_code}'", hint=f"reasons in the policy: {known}")


def _check_targets_exist(context: SanctionContext, level: str) -> None:
    """A level that puts users in a group the realm lacks could never be verified: refuse it up front."""
    for path in context.policy.level(level).actions.add_groups:
        if context.gateway.find_group_by_path(context.realm, path) is None:
            raise SanctionError(
                f"level '{level}' puts users in group {path}, which realm '{context.realm}' does not have",
                hint="add the group to the realm (realm-config) or remove it from the level in the sanction policy",
            )


def _issue_details(sanction: Sanction, notice: str | None = None) -> dict[str, JsonValue]:
    details: dict[str, JsonValue] = {
        "sanction_id": sanction.id, "level": sanction.level, "reason_code": sanction.reason_code,
        "id": sanction.user_id, "until": sanction.until.isoformat() if sanction.until else None,
    }  # fmt: skip
    if notice is not None:
        details["notice"] = notice  # owed from now on: a pass sends it if this command is cut off before it
    if sanction.note:
        details["note"] = sanction.note
    if sanction.evidence:
        details["evidence"] = list(sanction.evidence)
    return details


IN_FORCE = frozenset({"applied", "reasserted", "unchanged"})  # the outcomes of a sanction verified in force


# -- lifting and reducing --------------------------------------------------------------------------------


def lift_sanction(
    context: SanctionContext,
    sanction_id: str,
    *,
    actor: str,
    note: str,
    outcome: Literal["lifted", "overturned"] = "lifted",
) -> Sanction:
    """End an open sanction and restore exactly what it changed; it stays `pending`-looking (being lifted)
    until the restore is verified, and the next enforce pass retries."""
    sanction = _open_sanction(context, sanction_id)
    kind = "sanction-lift" if outcome == "lifted" else "sanction-overturn"
    with _run(replace(context, actor=actor), kind, f"{sanction.id} {outcome}") as scope:
        acting = scope.context
        action = "sanction.lift" if outcome == "lifted" else "sanction.overturn"
        with acting.store.atomic():
            ending = acting.store.sanctions.save(replace(sanction, ending=outcome, ended_by=actor, end_note=note))
            journal(acting, ending, action, note, {"sanction_id": sanction.id, "level": sanction.level})
        return scope.done(enforce_one(acting, ending))


def reduce_sanction(context: SanctionContext, sanction_id: str, *, level: str, actor: str, note: str) -> Sanction:
    """Replace an open sanction by a milder one (same reason and end); the old one ends as lifted, naming the
    new id. The new one is applied first, so nothing is restored that the milder level still takes away."""
    sanction = _open_sanction(context, sanction_id)
    policy = context.policy
    if not policy.has_level(level) or policy.rank(level) >= policy.rank(sanction.level):
        raise SanctionError(f"'{level}' is not a level milder than '{sanction.level}'")
    new = NewSanction(
        realm=sanction.realm, user_id=sanction.user_id, username=sanction.username, level=level,
        requested_level=level, reason_code=sanction.reason_code, issued_by=actor, until=sanction.until,
        note=f"{REDUCED_FROM_PREFIX}{sanction.id}: {note}", evidence=sanction.evidence,
    )  # fmt: skip
    with _run(replace(context, actor=actor), "sanction-reduce", f"{sanction.id} reduced to {level}") as scope:
        acting = scope.context
        with acting.store.atomic():
            milder = acting.store.sanctions.add(new)
            details = {**_issue_details(milder), "decision": f"from {sanction.id}"}
            journal(acting, milder, "sanction.reduce", note, details)
        milder = scope.done(enforce_one(acting, milder))
        reduced = f"{REDUCED_NOTE_PREFIX}{level} ({milder.id}): {note}"
        ended = lift_sanction(acting, sanction.id, actor=actor, note=reduced)
        scope.pending = scope.pending or ended.ending is not None
    return context.store.sanctions.get(milder.id) or milder


def _open_sanction(context: SanctionContext, sanction_id: str) -> Sanction:
    sanction = context.store.sanctions.get(sanction_id)
    if sanction is None:
        raise SanctionError(f"no sanction {sanction_id}", hint="`idp-agent sanction list` shows them")
    if sanction.realm != context.realm:
        raise SanctionError(f"sanction {sanction_id} is in realm '{sanction.realm}', not '{context.realm}'")
    if not sanction.is_open or sanction.ending is not None:
        raise SanctionError(f"sanction {sanction_id} is {sanction.display_state}: only an open one can be ended")
    return sanction


@dataclass
class _Scope:
    """The context of one command's writes, and whether anything it enforced is still pending."""

    context: SanctionContext
    pending: bool = False

    def done(self, outcome: Outcome) -> Sanction:
        self.pending = self.pending or outcome.kind == "pending"
        return outcome.sanction


@contextmanager
def _run(context: SanctionContext, kind: str, summary: str) -> Iterator[_Scope]:
    """A store run around one command's writes (journal entries carry its id), finished as failed while
    something is pending; inside a run already in progress (an enforce pass, a decision) that run is kept."""
    if context.run_id is not None:
        yield _Scope(context)
        return
    run = context.store.runs.start_run(kind, context.realm, summary=summary)
    scope = _Scope(replace(context, run_id=run.id))
    try:
        yield scope
    except BaseException:
        context.store.runs.finish_run(run.id, "failed", summary=f"{summary}: stopped by an error")
        raise
    status: RunStatus = "failed" if scope.pending else "succeeded"
    context.store.runs.finish_run(run.id, status, summary=f"{summary}: pending" if scope.pending else summary)


# -- enforcing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    sanction: Sanction
    kind: Literal["applied", "reasserted", "lifted", "pending", "unchanged"]
    problem: str = ""


def enforce_sanctions(context: SanctionContext) -> EnforceReport:
    """One pass over the realm's open sanctions, oldest first: lift those ended or expired, apply those
    pending, re-assert those active. Each is verified against Keycloak after its writes."""
    run = context.store.runs.start_run("sanctions", context.realm, summary="sanctions enforce")
    acting = replace(context, run_id=run.id)
    report = EnforceReport(run.id)
    try:
        for sanction in context.store.sanctions.list(realm=context.realm, states=OPEN_STATES):
            current = context.store.sanctions.get(sanction.id) or sanction  # a lift earlier may hand over
            outcome = enforce_one(acting, current)
            _count(report, outcome)
            if outcome.kind in IN_FORCE and outcome.sanction.ending is None:
                notify_if_owed(acting, outcome.sanction)
    except Exception:
        context.store.runs.finish_run(run.id, "failed", summary="stopped by an error; the next pass resumes")
        raise
    counts = {
        "applied": len(report.applied), "reasserted": len(report.reasserted), "lifted": len(report.lifted),
        "pending": len(report.pending), "unchanged": report.unchanged,
    }  # fmt: skip
    summary = "; ".join(f"{key} {value}" for key, value in counts.items())
    context.store.runs.finish_run(run.id, "succeeded" if report.ok else "failed", counts=counts, summary=summary)
    return report


def _count(report: EnforceReport, outcome: Outcome) -> None:
    sanction_id = outcome.sanction.id
    if outcome.kind == "pending":
        report.pending[sanction_id] = outcome.problem
    elif outcome.kind == "unchanged":
        report.unchanged += 1
    else:
        getattr(report, outcome.kind).append(sanction_id)


def enforce_one(context: SanctionContext, sanction: Sanction) -> Outcome:
    """Bring one open sanction to its wanted state: ended (restore) or in force (apply)."""
    now = context.clock()
    if sanction.ending is None and is_expired(sanction, now):
        sanction = replace(sanction, ending="expired", ended_by=context.actor, end_note="expired")
        context.store.sanctions.save(sanction)
    unknown = _unknown_levels(context, sanction)
    if unknown:
        named = ", ".join(f"'{level}'" for level in unknown)
        problem = f"level {named} is not in the sanction policy: put it back, or end the sanction by hand"
        saved = context.store.sanctions.save(replace(sanction, problem=problem))
        return Outcome(saved, "pending", problem)
    try:
        if sanction.ending is not None:
            return _restore(context, sanction, now)
        return _apply(context, sanction, now)
    except KeycloakError as error:
        problem = f"Keycloak: {error}"
        saved = context.store.sanctions.save(replace(sanction, problem=problem))
        return Outcome(saved, "pending", problem)


def _unknown_levels(context: SanctionContext, sanction: Sanction) -> list[str]:
    """Levels of this sanction, or of the user's other open ones it is weighed with, that the policy no longer
    has (renamed or removed since it was issued): nothing about them can be enforced or undone by name."""
    known = {level.name for level in context.policy.levels}
    return sorted({other.level for other in [sanction, *_others(context, sanction)]} - known)


def _others(context: SanctionContext, sanction: Sanction) -> list[Sanction]:
    return [
        other
        for other in context.store.sanctions.list(realm=context.realm, user_id=sanction.user_id, states=OPEN_STATES)
        if other.id != sanction.id and other.ending is None
    ]


def _apply(context: SanctionContext, sanction: Sanction, now: datetime) -> Outcome:
    actions = context.policy.level(sanction.level).actions
    others = _others(context, sanction)
    wanted = wanted_attributes([sanction, *others], context.policy)
    clients = tuple(actions.remove_client_roles)
    live = read_account(context.gateway, context.realm, sanction.user_id, offline=False, clients=clients)
    # Offline sessions are counted per client (a request each): only when the sanction first applies, or
    # when the account was found enabled again (a disabled account cannot have made new ones).
    offline = actions.revoke_consents and (sanction.verified_at is None or live.user.enabled)
    if offline:
        live = read_account(context.gateway, context.realm, sanction.user_id, offline=True, clients=clients)
    recorded_elsewhere = any(other.changes.attributes_before is not None for other in others)
    plan = plan_apply(sanction, actions, live, wanted, others_recorded_attributes=recorded_elsewhere)
    if plan.changes != sanction.changes:  # intent first: what will be changed is on disk before the writes
        sanction = context.store.sanctions.save(replace(sanction, changes=plan.changes))
    results = _write(context, sanction, plan.steps, "drift" if sanction.verified_at else "apply")
    live = read_account(context.gateway, context.realm, sanction.user_id, offline=offline, clients=clients)
    problems = verify_apply(sanction, actions, live, wanted)
    return _settle_apply(context, sanction, results, problems, now)


def _settle_apply(
    context: SanctionContext, sanction: Sanction, results: list[StepResult], problems: list[str], now: datetime
) -> Outcome:
    attempts = sanction.attempts + (1 if results else 0)
    if problems:
        problem = pending_problem(problems, results)
        saved = context.store.sanctions.save(replace(sanction, state="pending", problem=problem, attempts=attempts))
        return Outcome(saved, "pending", problem)
    first = sanction.verified_at is None
    verified = replace(sanction, state="active", problem="", attempts=attempts, verified_at=sanction.verified_at or now)
    if verified != sanction:
        context.store.sanctions.save(verified)
    if first:
        journal(context, verified, "sanction.verified", "in force", {"sanction_id": sanction.id, "verified": True})
        return Outcome(verified, "applied")
    return Outcome(verified, "reasserted" if results else "unchanged")


def _restore(context: SanctionContext, sanction: Sanction, now: datetime) -> Outcome:
    if context.gateway.get_user(context.realm, sanction.user_id) is None:
        return _end(context, replace(sanction, end_note=f"{sanction.end_note} (account deleted: nothing to restore)"),
                    now, sanction.attempts)  # fmt: skip
    others = _others(context, sanction)
    handover = hand_over(sanction, others, context.policy)
    for other in others:
        if other.id in handover.handed:
            context.store.sanctions.save(replace(other, changes=handover.handed[other.id]))
    wanted_after = wanted_attributes(others, context.policy)
    clients = tuple(ref.client_id for ref in handover.restore.removed_client_roles)
    live = read_account(context.gateway, context.realm, sanction.user_id, offline=False, clients=clients)
    steps = plan_restore(handover.restore, live, wanted_after)
    results = _write(context, sanction, steps, f"restore ({sanction.ending})")
    live = read_account(context.gateway, context.realm, sanction.user_id, offline=False, clients=clients)
    problems = verify_restore(handover.restore, live, wanted_after)
    attempts = sanction.attempts + (1 if results else 0)
    if problems:
        problem = pending_problem(problems, results)
        saved = context.store.sanctions.save(replace(sanction, problem=problem, attempts=attempts))
        return Outcome(saved, "pending", problem)
    if handover.restore.enabled_before and not live.user.enabled and left_meanwhile(live.user):
        sanction = replace(sanction, end_note=f"{sanction.end_note} {KEPT_DISABLED_NOTE}".strip())
    return _end(context, sanction, now, attempts)


# Appended to the end note of a sanction whose person left while it held them disabled.
KEPT_DISABLED_NOTE = "(the account stays disabled: the person left meanwhile, and the sync decides its access now)"


def pending_problem(problems: Sequence[str], results: Sequence[StepResult]) -> str:
    """What is still missing, then why writes failed, if any did."""
    failed = failures(results)
    return "; ".join([*problems, failed] if failed else problems)


def _end(context: SanctionContext, sanction: Sanction, now: datetime, attempts: int) -> Outcome:
    assert sanction.ending is not None
    final_state: EndState = sanction.ending
    ended = replace(sanction, state=final_state, ending=None, ended_at=now, problem="", attempts=attempts)
    context.store.sanctions.save(ended)
    journal(context, ended, f"sanction.{final_state}", ended.end_note, {"sanction_id": ended.id, "verified": True})
    return Outcome(ended, "lifted")


def _write(context: SanctionContext, sanction: Sanction, steps: Sequence[Step], why: str) -> list[StepResult]:
    def journal(entry: NewEntry) -> None:
        context.store.journal.append_many([entry])

    writer = Writer(context.gateway, context.realm, context.actor, context.run_id, journal)
    return apply_steps(writer, sanction, steps, f"{sanction.id} {sanction.level}: {why}")
