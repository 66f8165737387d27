"""Grants a rule wants that the person already holds by other means: recorded apart, never revoked by the sync
(the rule of agent/sync/found_held.py; against the real server in test_sync_lifecycle.py and test_sync_runs.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from agent.keycloak import Role, User
from agent.store.journal import JournalEntry
from agent.sync.found_held import FOUND_HELD, grant_cut_short, grants_of_ids, held_by_plugin, with_found_held
from agent.sync.grants import GrantRecord, Grants
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, GRANTS_ATTRIBUTE, SOURCE_ATTRIBUTE, DesiredUser
from agent.sync.people_changes import Targets
from agent.sync.plan import SyncContext, SyncPlan, managed_live_users, plan_sync

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SOURCE = "workforce"
STAFF = Grants(groups=frozenset({"/staff"}))
FINANCE = Grants(groups=frozenset({"/finance"}))
AUDITOR = Grants(client_roles=frozenset({("ledger", "auditor")}))


def wanting(grants: Grants) -> DesiredUser:
    return DesiredUser(
        external_id="1", source=SOURCE, username="ann", email="ann@example.org", first_name="Ann", last_name="X",
        groups=grants.groups, realm_roles=grants.realm_roles, client_roles=grants.client_roles,
    )  # fmt: skip


def recorded(record: GrantRecord) -> User:
    attributes = {EXTERNAL_ID_ATTRIBUTE: ("1",), SOURCE_ATTRIBUTE: (SOURCE,), GRANTS_ATTRIBUTE: (record.to_json(),)}
    return User(
        id="kc-1", username="ann", enabled=True, email="ann@example.org", first_name="Ann", last_name="X",
        attributes=MappingProxyType(attributes),
    )  # fmt: skip


def plan_of(wanted: Grants, record: GrantRecord) -> SyncPlan:
    user = recorded(record)
    context = SyncContext(realm="r", source=SOURCE, now=NOW)
    return plan_sync([wanting(wanted)], [], managed_live_users([user], SOURCE), [user], context)


def steps(plan: SyncPlan) -> list[tuple[str, Grants, Grants]]:
    return [(item.action, item.grants, item.found_held) for item in plan.items]


def test_a_record_without_held_grants_reads_and_writes_as_before() -> None:
    """Records written before held grants were kept are read the same, and written back unchanged (no write)."""
    old_text = (STAFF | AUDITOR).to_json()
    assert GrantRecord.from_json(old_text) == GrantRecord(STAFF | AUDITOR)
    assert GrantRecord(STAFF | AUDITOR).to_json() == old_text


def test_a_record_with_held_grants_keeps_both_apart() -> None:
    record = GrantRecord(STAFF, FINANCE | AUDITOR)
    assert GrantRecord.from_json(record.to_json()) == record
    assert Grants.from_json(record.to_json()) == STAFF  # what the sync gave, as an older reader sees it


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]", '{"groups": ["/a"], "held": "x"}'])
def test_an_unreadable_record_or_held_part_reads_as_nothing_held(text: str | None) -> None:
    assert GrantRecord.from_json(text).held == Grants()


@pytest.mark.parametrize(
    ("wanted", "record", "expected"),
    [
        # Steady: what is held stays held, nothing to do.
        (STAFF | FINANCE, GrantRecord(STAFF, FINANCE), []),
        # A rule no longer wants what was found held: the record forgets it; no revoke (the grant stays).
        (STAFF, GrantRecord(STAFF, FINANCE), [("update", Grants(), Grants())]),
        # A rule wants something new: a grant, to be checked against what the person holds.
        (STAFF | FINANCE, GrantRecord(STAFF), [("update", Grants(), Grants()), ("grant", FINANCE, Grants())]),
        # What the sync gave and no rule wants is revoked; what was found held is not.
        (Grants(), GrantRecord(STAFF, FINANCE), [("update", Grants(), Grants()), ("revoke", STAFF, Grants())]),
        # Still wanted and held alongside a new grant: the update keeps it held.
        (
            STAFF | FINANCE | AUDITOR, GrantRecord(STAFF, FINANCE),
            [("update", Grants(), FINANCE), ("grant", AUDITOR, Grants())],
        ),
    ],
)  # fmt: skip
def test_the_plan_never_grants_or_revokes_what_was_found_held(
    wanted: Grants, record: GrantRecord, expected: list[tuple[str, Grants, Grants]]
) -> None:
    assert steps(plan_of(wanted, record)) == expected


def test_what_the_person_holds_is_taken_out_of_the_grant_and_recorded_held_by_the_update() -> None:
    plan = plan_of(STAFF | FINANCE | AUDITOR, GrantRecord(STAFF))

    settled = with_found_held(plan, {"kc-1": FINANCE})

    assert steps(settled) == [("update", Grants(), FINANCE), ("grant", AUDITOR, Grants())]
    assert FOUND_HELD in settled.of("update")[0].reason and "group /finance" in settled.of("update")[0].reason


def test_a_grant_all_held_leaves_only_the_update_and_other_people_are_untouched() -> None:
    plan = plan_of(STAFF | FINANCE, GrantRecord(STAFF))

    assert steps(with_found_held(plan, {"kc-1": FINANCE})) == [("update", Grants(), FINANCE)]
    assert with_found_held(plan, {"kc-2": FINANCE}) == plan


def entry(
    seq: int, outcome: str, *, user_id: str = "kc-1", action: str = "user.grant", actor: str = "sync:hr"
) -> JournalEntry:
    return JournalEntry(
        actor=actor, action=action, subject="ann", realm="r", details={"outcome": outcome, "id": user_id},
        seq=seq, at=NOW, prev_hash="", hash="",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("entries", "cut_short"),
    [
        ([], False),
        ([entry(1, "intent")], True),  # sent, or about to be, and never recorded
        ([entry(1, "intent"), entry(2, "applied")], False),
        ([entry(1, "intent"), entry(2, "applied"), entry(3, "intent")], True),  # a later run cut off
        ([entry(1, "intent", user_id="kc-2")], False),  # another account of that name
        ([entry(1, "intent", actor="sync:other")], False),  # another sync's
        ([entry(1, "intent"), entry(2, "intent", action="user.update")], True),  # a later step is not the grant's
    ],
)
def test_a_grant_whose_intent_has_no_outcome_was_cut_short(entries: list[JournalEntry], cut_short: bool) -> None:
    assert grant_cut_short(entries, "sync:hr", "kc-1") is cut_short


def test_ids_the_plugin_answers_with_are_the_grants_the_plan_names() -> None:
    targets = Targets(
        group_ids={"/finance": "g-1", "/staff": "g-2"},
        realm_roles={"approver": Role(id="r-1", name="approver")},
        client_roles={("ledger", "auditor"): ("c-1", Role(id="r-2", name="auditor", client_role=True))},
    )

    grants = grants_of_ids(frozenset({"r-1", "r-2", "r-unknown"}), frozenset({"g-1", "g-unknown"}), targets)

    assert grants == Grants(frozenset({"/finance"}), frozenset({"approver"}), frozenset({("ledger", "auditor")}))


class _Plugin:
    """Answers `direct_grant_ids` as the plugin would for people who are each in group g-1; records each request."""

    def __init__(self) -> None:
        self.requests: list[int] = []

    def direct_grant_ids(self, realm: str, user_ids: list[str]) -> tuple[dict[str, frozenset[str]], ...]:
        self.requests.append(len(user_ids))
        return {}, {user_id: frozenset({"g-1"}) for user_id in user_ids}


def test_many_people_are_read_a_request_per_eighty_and_each_gets_only_their_own_candidates() -> None:
    plugin = _Plugin()
    candidates = {f"kc-{n}": FINANCE if n % 2 else STAFF for n in range(170)}
    targets = Targets(group_ids={"/finance": "g-1", "/staff": "g-2"}, realm_roles={}, client_roles={})

    held = held_by_plugin(plugin, "r", candidates, targets)  # type: ignore[arg-type]

    assert sorted(plugin.requests) == [10, 80, 80]
    assert held is not None and held["kc-1"] == FINANCE and held["kc-2"] == Grants()
