"""The mapping engine of the identity sync: source records -> desired users (merged by priority on the id,
granted by rules, each value and grant traced) and rejected records with reasons. Pure: `now` is an argument.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import ConfigError
from agent.sync.conditions import DateValue, Test, Value, condition_tests, tests_hold, texts_of
from agent.sync.mapper_spec import STATUS_VALUES, GrantSpec, MapperSpec, RuleSpec
from agent.sync.model import DesiredUser, RejectedRecord, SourceRead, SourceRecord, TraceStep
from agent.sync.record_mapping import FieldStep, Mapped, Refused, SourceValue, field_steps, map_record, shown
from agent.sync.transforms import WrittenDate

CONFIGURE_TOTP = "CONFIGURE_TOTP"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_UTC = ZoneInfo("UTC")

LeftOutKind = Literal["future-start", "no-creating-source", "incomplete-source"]


@dataclass(frozen=True)
class LeftOut:
    """A record that makes no user this run on purpose (not an error): a hire whose start is beyond the
    lookahead, a person only in sources that do not create users, or one missing from an incomplete read
    (their fields from that source are unknown this run, and a fallback value would be a false change)."""

    external_id: str
    source: str
    where: str
    kind: LeftOutKind
    reason: str


@dataclass(frozen=True)
class MappingResult:
    """Users sorted by external id; every input record is in exactly one of: a user (by its id), `rejected`
    or `left_out`.

    A hire inside the lookahead is a user with status active and `start` in the future: the account is
    created ahead (so IT can prepare it) and kept disabled until `start`. Status inactive means employment
    ended (HR says so, or `end` has passed). Usernames and emails are lower-cased, as Keycloak stores them.

    A user's trace, for `sync explain`: a `record <source>` step per record (where it was), a `field <name>`
    step per mapped field (which source and field, which sources it won over; never the value), the status
    and why, a step per grant of every rule (granted=False, with the failing test, when the rule did not
    match), and the required actions. Identical steps are one shared object.
    """

    users: tuple[DesiredUser, ...]
    rejected: tuple[RejectedRecord, ...]
    left_out: tuple[LeftOut, ...] = ()

    @property
    def listed_ids(self) -> frozenset[str]:
        """Ids a source still lists though they are not users this run (rejected, not started yet, missing
        from an incomplete read): a planner must not take their absence from `users` for a leaver."""
        return frozenset(
            {record.external_id for record in self.rejected if record.external_id}
            | {item.external_id for item in self.left_out if item.kind != "no-creating-source"}
        )


@dataclass(frozen=True)
class _Person:
    """The merged records of one id, dates placed in the worker's zone, before rules."""

    external_id: str
    records: tuple[tuple[str, str], ...]  # (source, where) of each record, for rejections
    values: Mapping[str, Value]
    zone: tzinfo
    status: Literal["active", "inactive"]
    start: datetime | None
    end: datetime | None
    trace: tuple[TraceStep, ...]


_Hashable = TypeVar("_Hashable", bound=Hashable)
# Required actions, and their trace steps (what, because).
_Actions = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]


class _Shared:
    """Values shared between users. Most trace steps read the same for thousands of people (a rule's
    outcome, which source a field came from), and so do grant sets and attribute values: each distinct
    one is built once per run, which keeps a user to a few pointers at 100k users."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, str, bool], TraceStep] = {}
        self._values: dict[Hashable, Hashable] = {}
        self._rules: dict[tuple[int, bool, str], tuple[TraceStep, ...]] = {}
        self._fields: dict[tuple[str, str, tuple[str, ...], bool], TraceStep] = {}
        self._actions: dict[tuple[frozenset[str], frozenset[str]], _Actions] = {}

    def field_step(
        self, spec: MapperSpec, name: str, source: str, losers: tuple[str, ...], *, defaulted: bool
    ) -> TraceStep:
        """Where a field's value came from: which source and field, and which sources it won over."""
        key = (name, source, losers, defaulted)
        found = self._fields.get(key)
        if found is None:
            found = self._fields[key] = TraceStep(f"field {name}", _origin(spec, *key))
        return found

    def rule_steps(self, index: int, rule: RuleSpec, matched: bool, why: str) -> tuple[TraceStep, ...]:
        """One step per grant of the rule: given (because it matched) or not (and why not)."""
        key = (index, matched, why)
        found = self._rules.get(key)
        if found is None:
            because = f"rule {rule.name}: {why}" if matched else f"rule {rule.name} did not match: {why}"
            found = self._rules[key] = tuple(self.step(what, because, matched) for what in _grant_names(rule.grant))
        return found

    def step(self, what: str, because: str, granted: bool = True) -> TraceStep:
        key = (what, because, granted)
        found = self._steps.get(key)
        if found is None:
            found = self._steps[key] = TraceStep(what, because, granted)
        return found

    def required_actions(self, spec: MapperSpec, groups: frozenset[str], realm_roles: frozenset[str]) -> _Actions:
        """The required actions of users granted `groups` and `realm_roles`: most users share a few grant sets."""
        key = (groups, realm_roles)
        found = self._actions.get(key)
        if found is None:
            found = self._actions[key] = _required_actions(spec, groups, realm_roles)
        return found

    def same(self, value: _Hashable) -> _Hashable:
        """The first value equal to `value` seen this run."""
        return self._values.setdefault(value, value)  # type: ignore[return-value]


@dataclass(frozen=True)
class _Plan:
    """What the spec says, worked out once per run rather than once per record; and the shared traces."""

    spec: MapperSpec
    creating: frozenset[str]
    merge_orders: Mapping[str, tuple[str, ...]]
    # Per source: its fields as map_record makes them, those read with `from` first (templates see them).
    field_order: Mapping[str, tuple[FieldStep, ...]]
    lookahead: timedelta
    sources: frozenset[str]
    shared: _Shared
    traced: bool
    # Per rule, in order: its tests by field name (see agent/sync/conditions.py).
    rule_tests: tuple[tuple[tuple[str, tuple[Test, ...]], ...], ...] = ()

    @classmethod
    def of(cls, spec: MapperSpec, *, traced: bool) -> _Plan:
        return cls(
            spec,
            frozenset(source for source in spec.sources if spec.creates_users(source)),
            {name: spec.merge_order(name) for name in sorted(spec.canonical_fields)},
            {source: field_steps(fields) for source, fields in spec.fields.items()},
            timedelta(seconds=spec.lookahead),
            frozenset(spec.sources),
            _Shared(),
            traced,
            tuple(
                tuple((name, condition_tests(name, condition)) for name, condition in rule.when.items())
                for rule in spec.rules
            ),
        )


def map_sources(reads: Sequence[SourceRead], spec: MapperSpec, now: datetime, *, traced: bool = True) -> MappingResult:
    """Map, merge, check and grant: the desired users of one run, deterministic whatever the record order.
    `traced`: each user with their trace (for `sync explain`); without, `trace` is empty, the rest the same.

    A person is mapped from all of their records or from none: when one record of an id is rejected, the
    others of that id are rejected too. Raises ConfigError when a read names a source the spec lacks.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    plan = _Plan.of(spec, traced=traced)
    rejected: list[RejectedRecord] = []
    mapped: list[Mapped] = []
    for read in reads:
        if read.source not in plan.sources:
            raise ConfigError(f"source '{read.source}' is not in mapper '{spec.name}'")
        for record in read.records:
            outcome = map_record(record, read.source, plan.spec, plan.field_order[read.source])
            if isinstance(outcome, RejectedRecord):
                rejected.append(outcome)
            else:
                mapped.append(outcome)
    people, more_rejected = _join(mapped, rejected)
    del mapped  # the people hold the records now; each is dropped once its user is made
    rejected += more_rejected
    # A source without a read this run counts as incomplete: what it decides is unknown.
    incomplete = plan.sources - {read.source for read in reads if read.complete}
    incomplete |= {read.source for read in reads if not read.complete}
    users, records_of, left_out, person_rejects = _make_users(people, plan, incomplete, now)
    rejected += person_rejects
    users, unique_rejects = _reject_shared_names(users, records_of)
    rejected += unique_rejects
    return MappingResult(
        users=tuple(sorted(users, key=lambda user: user.external_id)),
        rejected=tuple(sorted(rejected, key=lambda item: (item.source, item.where, item.reason))),
        left_out=tuple(sorted(left_out, key=lambda item: (item.external_id, item.source, item.where))),
    )


def listed_ids(read: SourceRead, spec: MapperSpec, most: int) -> tuple[str, ...]:
    """Up to `most` ids of records `read` listed, as the mapper makes them: what the source's exact lookup
    must find, were it searching the same field, the same way, as the listing."""
    order = _Plan.of(spec, traced=False).field_order[read.source]
    ids: list[str] = []
    for record in read.records:
        outcome = map_record(record, read.source, spec, order)
        if isinstance(outcome, Mapped) and outcome.external_id not in ids:
            ids.append(outcome.external_id)
            if len(ids) == most:
                break
    return tuple(ids)


# --- join on the id ---------------------------------------------------------------------------------


def _join(
    mapped: list[Mapped], rejected: list[RejectedRecord]
) -> tuple[dict[str, dict[str, Mapped]], list[RejectedRecord]]:
    """Records by id and source. Two records of one source with one id reject each other; any rejected
    record of an id rejects the other records of that id."""
    by_key: dict[tuple[str, str], list[Mapped]] = defaultdict(list)
    for item in mapped:
        by_key[(item.external_id, item.source)].append(item)
    more: list[RejectedRecord] = []
    for (external_id, source), items in by_key.items():
        if len(items) < 2:
            continue
        for item in items:
            others = sorted(other.record.where or "?" for other in items if other is not item)
            reason = f"duplicate id {shown(external_id)} in {source} (also at {', '.join(others)})"
            more.append(RejectedRecord(source, item.record.where, reason, external_id))
    first_reject: dict[str, RejectedRecord] = {}
    for reject in sorted([*rejected, *more], key=lambda item: (item.source, item.where)):
        if reject.external_id:
            first_reject.setdefault(reject.external_id, reject)
    people: dict[str, dict[str, Mapped]] = defaultdict(dict)
    for (external_id, source), items in by_key.items():
        cause = first_reject.get(external_id)
        if cause is None:
            people[external_id][source] = items[0]
        elif len(items) == 1:
            reason = f"id {shown(external_id)} is rejected at {cause.source} {cause.where or '?'}: {cause.reason}"
            more.append(RejectedRecord(source, items[0].record.where, reason, external_id))
    return people, more


# --- one person -------------------------------------------------------------------------------------


def _make_users(
    people: dict[str, dict[str, Mapped]], plan: _Plan, incomplete: frozenset[str], now: datetime
) -> tuple[list[DesiredUser], dict[str, tuple[tuple[str, str], ...]], list[LeftOut], list[RejectedRecord]]:
    """Users (and where each one's records are), left-out records and rejects; empties `people` as it goes,
    so that a person's records are freed once their user is made."""
    users: list[DesiredUser] = []
    records_of: dict[str, tuple[tuple[str, str], ...]] = {}
    left_out: list[LeftOut] = []
    rejected: list[RejectedRecord] = []
    for external_id in sorted(people):
        records = people.pop(external_id)
        ordered = tuple(records[source] for source in sorted(records))
        kind, reason = _left_out_why(records, plan, incomplete)
        if kind is not None:
            left_out += [LeftOut(external_id, item.source, item.record.where, kind, reason) for item in ordered]
            continue
        try:
            person = _merge_person(external_id, ordered, plan, now)
        except Refused as refused:
            rejected += [_reject(item, str(refused)) for item in ordered]
            continue
        reason = _future_start_reason(person.start, plan.lookahead, now)
        if reason:
            left_out += [
                LeftOut(external_id, item.source, item.record.where, "future-start", reason) for item in ordered
            ]
            continue
        users.append(_desired_user(person, plan, now))
        records_of[external_id] = person.records
    return users, records_of, left_out, rejected


def _future_start_reason(start: datetime | None, lookahead: timedelta, now: datetime) -> str:
    """Why a hire is no user yet (their start is beyond the lookahead); empty when they are one."""
    if start is None:
        return ""
    # Elapsed time, so in UTC: subtracting from a zoned time counts wall-clock time, an hour off across DST.
    created_from = start.astimezone(_UTC) - lookahead
    if created_from <= now:
        return ""
    return f"starts {start.isoformat()}; becomes a user from {created_from.astimezone(start.tzinfo).isoformat()}"


def _left_out_why(
    records: Mapping[str, Mapped], plan: _Plan, incomplete: frozenset[str]
) -> tuple[LeftOutKind | None, str]:
    if not plan.creating & records.keys():
        listed = ", ".join(sorted(records))
        return "no-creating-source", f"only in {listed}, which does not create users"
    missing = sorted(incomplete - records.keys())
    if missing:
        # Its fields from that source are unknown this run: a fallback value would be a false change.
        return "incomplete-source", f"not in the incomplete read of {', '.join(missing)}; left as it is"
    return None, ""


def _reject(item: Mapped, reason: str) -> RejectedRecord:
    return RejectedRecord(item.source, item.record.where, reason, item.external_id)


def _merge_person(external_id: str, ordered: tuple[Mapped, ...], plan: _Plan, now: datetime) -> _Person:
    """Each field from the first source in its merge order that has a value; then dates and status."""
    spec, shared = plan.spec, plan.shared
    chosen: dict[str, tuple[SourceValue, Mapped]] = {}
    # Not shared: one per record, never the same twice.
    traced = plan.traced
    trace = [TraceStep(shared.same(f"record {item.source}"), item.record.where or "?") for item in ordered if traced]
    if len(ordered) == 1 and not traced:
        # One record (most people, with one source): each of its fields is chosen, over no other.
        only = ordered[0]
        chosen = {name: (only.values[name], only) for name in plan.merge_orders if name in only.values}
    else:
        records = {item.source: item for item in ordered}
        for name, order in plan.merge_orders.items():
            givers = [records[source] for source in order if source in records and name in records[source].values]
            if givers:
                chosen[name] = (givers[0].values[name], givers[0])
                if traced:
                    losers = tuple(giver.source for giver in givers[1:])
                    defaulted = name in givers[0].defaulted
                    trace.append(shared.field_step(spec, name, givers[0].source, losers, defaulted=defaulted))
    zone = _zone(chosen.get("timezone"))
    values = _placed(chosen, spec, zone)
    _require_names(values)
    start, end = _instant(values.get("start_date")), _instant(values.get("end_date"))
    # An end before the start is an earlier employment; one at the start ends this one at once (inactive).
    if start is not None and end is not None and end < start:
        if traced:
            trace.append(shared.step("end", f"end_date {end.isoformat()} is before start_date: an earlier employment"))
        end = None
        del values["end_date"]  # rules and attributes see the employment the status is about
    status, (what, because) = _status(values.get("status"), chosen.get("status"), end, now)
    values["status"] = status  # as decided (an end that has passed makes it inactive), not the source's word
    if traced:
        trace.append(shared.step(what, because))
    refs = tuple((item.source, item.record.where) for item in ordered)
    return _Person(external_id, refs, values, zone, status, start, end, tuple(trace))


def _placed(chosen: Mapping[str, tuple[SourceValue, Mapped]], spec: MapperSpec, zone: tzinfo) -> dict[str, Value]:
    """The chosen values, dates placed in the worker's zone (at the end of that day where the field says so)."""
    values: dict[str, Value] = {}
    for name, (value, item) in chosen.items():
        if isinstance(value, WrittenDate):
            end_of_day = spec.fields[item.source][name].end_of_day
            values[name] = DateValue(
                value.instant(zone, end_of_day=end_of_day), value.text(zone, end_of_day=end_of_day)
            )
        else:
            values[name] = value
    return values


def record_says_left(record: SourceRecord, source: str, spec: MapperSpec, now: datetime) -> str | None:
    """Why one record, on its own, says its person has left (status inactive, or an end date passed); None
    when it does not, or cannot be read. For a record found by exact lookup outside the listing: a listing
    filtered to active people (`active eq true`, AD's disabled-account bit) drops a leaver from the read, and
    the lookup, which ignores the filter, finds them, inactive."""
    outcome = map_record(record, source, spec, _Plan.of(spec, traced=False).field_order[source])
    if not isinstance(outcome, Mapped):
        return None
    chosen = {name: (value, outcome) for name, value in outcome.values.items()}
    values = _placed(chosen, spec, _zone(chosen.get("timezone")))
    start, end = _instant(values.get("start_date")), _instant(values.get("end_date"))
    if start is not None and end is not None and end < start:
        end = None  # an earlier employment, as when merging
    try:
        status, (_, because) = _status(values.get("status"), chosen.get("status"), end, now)
    except Refused:
        return None
    return because if status == "inactive" else None


def _origin(spec: MapperSpec, name: str, source: str, losers: tuple[str, ...], defaulted: bool) -> str:
    field_spec = spec.fields[source][name]
    text = f"from {source} {field_spec.from_}" if field_spec.from_ else f"from {source} template {field_spec.template}"
    if defaulted:
        text = f"default of {source} ({field_spec.from_ or 'template'} empty)"
    if name not in spec.sources[source].fields:
        text += " (fallback: no source that decides it has a value)"
    if losers:
        text += f"; over {', '.join(losers)}"
    return text


def _zone(chosen: tuple[SourceValue, Mapped] | None) -> tzinfo:
    if chosen is None:
        return _UTC
    name = chosen[0]
    if not isinstance(name, str):
        raise Refused("timezone: several values")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused(f"timezone: unknown time zone {shown(name)}") from None


# Keycloak keeps a username and an e-mail in columns of 255 characters: a longer one fails the whole import
# transaction it is in (HTTP 500), so it is a bad record, rejected with why, not sent.
MAX_NAME_LENGTH = 255


def _require_names(values: Mapping[str, Value]) -> None:
    username = values.get("username")
    if not isinstance(username, str) or not username:
        raise Refused("no username: no source gives one")
    if len(username) > MAX_NAME_LENGTH:
        raise Refused(f"username: longer than Keycloak keeps ({len(username)} characters, at most {MAX_NAME_LENGTH})")
    email = values.get("email")
    if isinstance(email, str) and not _EMAIL.fullmatch(email):
        raise Refused("email: not an email address")
    if isinstance(email, str) and len(email) > MAX_NAME_LENGTH:
        raise Refused(f"email: longer than Keycloak keeps ({len(email)} characters, at most {MAX_NAME_LENGTH})")


def _instant(value: Value | None) -> datetime | None:
    return value.instant if isinstance(value, DateValue) else None


def _status(
    value: Value | None, chosen: tuple[SourceValue, Mapped] | None, end: datetime | None, now: datetime
) -> tuple[Literal["active", "inactive"], tuple[str, str]]:
    """The status and its trace step (what, because)."""
    source = f"{chosen[1].source} says" if chosen else "no status given:"
    if value is not None and value not in STATUS_VALUES:
        raise Refused(f"status: {shown(str(value))} is neither {' nor '.join(STATUS_VALUES)}; map it")
    if value == "inactive":
        # Fail closed: a termination HR entered ahead of time, with the status already inactive, ends access now.
        # The trace says so, for an admin who expected the end date to decide (leave the status active for that).
        ahead = f" (end_date {end.isoformat()} is still ahead: the status decides)" if end and end > now else ""
        return "inactive", ("status inactive", f"{source} inactive{ahead}")
    if end is not None and end <= now:
        return "inactive", ("status inactive", f"end_date {end.isoformat()} has passed")
    return "active", ("status active", f"{source} active" if value else f"{source} active by default")


# --- names shared between people ----------------------------------------------------------------------


def _reject_shared_names(
    users: list[DesiredUser], records_of: Mapping[str, tuple[tuple[str, str], ...]]
) -> tuple[list[DesiredUser], list[RejectedRecord]]:
    """Two active people with one username or email: both are rejected (Keycloak could link only one).
    Leavers are left out of this check: a leaver's email reissued to a new hire is the planner's case."""
    owners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for user in users:
        if user.status != "active":
            continue
        owners[("username", user.username)].append(user.external_id)
        if user.email:
            owners[("email", user.email)].append(user.external_id)
    reasons: dict[str, list[str]] = defaultdict(list)
    shared = sorted((owner, ids) for owner, ids in owners.items() if len(ids) > 1)  # sorting all 10k costs 0.05 s
    for (key, _value), ids in shared:
        for external_id in ids:
            others = ", ".join(sorted(other for other in ids if other != external_id))
            reasons[external_id].append(f"duplicate {key} (also the {key} of id {others})")
    kept = [user for user in users if user.external_id not in reasons]
    rejected = [
        RejectedRecord(source, where, "; ".join(sorted(why)), external_id)
        for external_id, why in reasons.items()
        for source, where in records_of[external_id]
    ]
    return kept, rejected


# --- rules and the desired user --------------------------------------------------------------------------


def _desired_user(person: _Person, plan: _Plan, now: datetime) -> DesiredUser:
    spec, shared = plan.spec, plan.shared
    trace = list(person.trace)
    groups: set[str] = set()
    realm_roles: set[str] = set()
    client_roles: set[tuple[str, str]] = set()
    for index, (rule, tests) in enumerate(zip(spec.rules, plan.rule_tests, strict=True)):
        matched, why = _rule_matches(tests, person, now)
        if plan.traced:
            trace += shared.rule_steps(index, rule, matched, why)
        if matched:
            groups.update(rule.grant.groups)
            realm_roles.update(rule.grant.realm_roles)
            client_roles.update((client, role) for client, roles in rule.grant.client_roles.items() for role in roles)
    granted_groups, granted_roles = shared.same(frozenset(groups)), shared.same(frozenset(realm_roles))
    actions, action_steps = shared.required_actions(spec, granted_groups, granted_roles)
    if plan.traced:
        trace += [shared.step(what, because) for what, because in action_steps]
    values = person.values
    return DesiredUser(
        external_id=person.external_id,
        source=spec.name,
        username=_text(values.get("username")).lower(),
        email=_text(values.get("email")).lower() or None,
        first_name=_text(values.get("first_name")) or None,
        last_name=_text(values.get("last_name")) or None,
        attributes=MappingProxyType(
            {
                name: shared.same(texts_of(values[name]))
                for name in spec.attributes
                if name in values and texts_of(values[name])
            }
        ),
        status=person.status,
        start=person.start,
        end=person.end,
        groups=granted_groups,
        realm_roles=granted_roles,
        client_roles=shared.same(frozenset(client_roles)),
        required_actions=shared.same(actions),
        trace=tuple(trace),
    )


def _text(value: Value | None) -> str:
    return value if isinstance(value, str) else ""


def _grant_names(grant: GrantSpec) -> list[str]:
    return [
        *(f"group {path}" for path in grant.groups),
        *(f"realm role {role}" for role in grant.realm_roles),
        *(f"client role {client}/{role}" for client, roles in grant.client_roles.items() for role in roles),
    ]


def _required_actions(spec: MapperSpec, groups: frozenset[str], realm_roles: frozenset[str]) -> _Actions:
    """The required actions and their trace steps (what, because)."""
    actions = list(spec.required_actions)
    steps = [(f"required action {action}", "required_actions of the mapper (joiners)") for action in actions]
    mfa_because = [f"realm role {role} is in mfa_roles" for role in sorted(realm_roles & set(spec.mfa_roles))]
    mfa_because += [
        f"group {group} is in mfa_groups"
        for group in sorted(groups)
        if any(group == mfa or group.startswith(f"{mfa}/") for mfa in spec.mfa_groups)
    ]
    if mfa_because:
        if CONFIGURE_TOTP not in actions:
            actions.append(CONFIGURE_TOTP)
        steps.append((f"required action {CONFIGURE_TOTP}", "; ".join(mfa_because)))
    return tuple(actions), tuple(steps)


def _rule_matches(tests: tuple[tuple[str, tuple[Test, ...]], ...], person: _Person, now: datetime) -> tuple[bool, str]:
    """Whether every test of the rule holds, and why: all phrases when it matches, the first that fails
    when it does not."""
    phrases: list[str] = []
    for name, field_tests in tests:
        held, phrase = tests_hold(field_tests, person.values.get(name), person.zone, now)
        if not held:
            return False, phrase
        phrases.append(phrase)
    return True, " and ".join(phrases) or "always"
