"""People's steps as one change each (agent/sync/people_changes.py) and the executor's use of them, without a
server: what a change holds, which people can be changed in bulk, a refusal failing the whole person, and the
admin API taking over where the plugin declines. The plugin itself is tested on Keycloak
(tests/integration/test_sync_user_changes.py), both ways of writing in tests/integration/test_sync_lifecycle.py."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from agent.errors import Interrupted, Rejected, Unavailable
from agent.keycloak import KeycloakGateway, Role, User
from agent.keycloak.models import ImportedUser, UserChange
from agent.sync.executor import SyncExecutor
from agent.sync.grants import Grants
from agent.sync.model import DISABLED_BY_SYNC_ATTRIBUTE, GRANTS_ATTRIBUTE, DesiredUser, Found, NotFound, SourceRecord
from agent.sync.people_changes import ChangeBuilder, Targets, resolve_grants, split_people
from agent.sync.plan import SyncItem, SyncPlan
from tests.unit.test_sync_speed_paths import raw_user

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TARGETS = Targets(
    group_ids={"/staff": "g-staff", "/sales": "g-sales"},
    realm_roles={"employee": Role(id="r-employee", name="employee")},
    client_roles={("ledger", "auditor"): ("c-ledger", Role(id="r-auditor", name="auditor"))},
)


def test_grants_resolve_to_group_ids_and_role_names() -> None:
    grants = Grants(frozenset({"/staff", "/sales"}), frozenset({"employee"}), frozenset({("ledger", "auditor")}))
    change = ChangeBuilder("u1")

    change.change_grants(resolve_grants(TARGETS, grants, "acme"), add=True)
    change.change_grants(resolve_grants(TARGETS, Grants(frozenset({"/staff"})), "acme"), add=False)

    built = change.build()
    assert built.join_groups == ("g-sales", "g-staff") and built.leave_groups == ("g-staff",)
    assert built.grant_realm_roles == ("employee",) and built.revoke_realm_roles == ()
    assert built.grant_client_roles == (("c-ledger", "auditor"),)


@pytest.mark.parametrize(
    ("grants", "message"),
    [
        (Grants(groups=frozenset({"/nowhere"})), "group '/nowhere' does not exist in realm 'acme'"),
        (Grants(realm_roles=frozenset({"ghost"})), "unknown realm role among ['ghost'] in realm 'acme'"),
        (Grants(client_roles=frozenset({("ledger", "ghost")})), "unknown client role among ['ledger/ghost']"),
    ],
)
def test_an_unknown_group_or_role_is_rejected(grants: Grants, message: str) -> None:
    with pytest.raises(Rejected, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve_grants(TARGETS, grants, "acme")


def test_a_later_step_wins_over_an_earlier_one_as_if_written_in_turn() -> None:
    change = ChangeBuilder("u1")
    assert change.empty
    change.set(
        {"lastName": "Old", "email": "a@example.org"}, {"department": ["Sales"], DISABLED_BY_SYNC_ATTRIBUTE: None}
    )
    change.set({"enabled": False}, {DISABLED_BY_SYNC_ATTRIBUTE: ["left"]})

    built = change.build()
    assert not change.empty
    assert built.fields == {"lastName": "Old", "email": "a@example.org", "enabled": False}
    assert built.attributes == {"department": ["Sales"], DISABLED_BY_SYNC_ATTRIBUTE: ["left"]}


def test_only_people_without_enable_delete_or_anonymise_are_changed_in_bulk() -> None:
    mover = [SyncItem("grant", "1", "a", "u1"), SyncItem("update", "1", "a", "u1")]
    leaver = [SyncItem("confirm-leaver", "2", "b", "u2")]
    rehire = [SyncItem("enable", "3", "c", "u3"), SyncItem("update", "3", "c", "u3")]
    expired = [SyncItem("delete", "4", "d", "u4")]

    together, alone = split_people([mover, leaver, rehire, expired])

    assert together == [mover, leaver] and alone == [rehire, expired]


class FakeGateway:
    """What the executor calls for leavers: the plugin's bulk change, or the admin API's PUT and logout."""

    def __init__(self, answer: dict[str, str] | None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, Any]] = []
        self.users = {f"id-{n}": User.from_json(raw_user(n)) for n in (1, 2, 3)}

    def get_user(self, realm: str, user_id: str) -> User | None:
        return self.users.get(user_id)  # read again before a person's first write through the admin API

    def change_users(self, realm: str, changes: Sequence[UserChange]) -> dict[str, str] | None:
        self.calls.append(("change_users", [change.user_id for change in changes]))
        return self.answer

    def replace_user(self, realm: str, user_id: str, body: dict[str, Any]) -> None:
        self.calls.append(("replace_user", (user_id, body["enabled"])))

    def logout_user(self, realm: str, user_id: str) -> None:
        self.calls.append(("logout_user", user_id))

    def list_consents(self, realm: str, user_id: str) -> list[str]:
        return []

    def get_realm(self, realm: str) -> None:
        return None  # a realm without brute-force detection: nobody is asked whether they are locked


def leavers_run(answer: dict[str, str] | None, *, still_there: str = "") -> tuple[FakeGateway, SyncExecutor]:
    items = tuple(SyncItem("confirm-leaver", f"{n}", f"user{n}", f"id-{n}", reason="absent") for n in (1, 2, 3))
    live = {f"id-{n}": User.from_json(raw_user(n)) for n in (1, 2, 3)}
    gateway = FakeGateway(answer)

    def lookup(external_id: str) -> Found | NotFound:
        return Found(SourceRecord("hr", {"id": external_id})) if external_id == still_there else NotFound()

    executor = SyncExecutor(
        cast(KeycloakGateway, gateway), SyncPlan("acme", "hr", items), now=NOW, attribute_names=(),
        lookup=lookup, live_users=live, workers=1,
    )  # fmt: skip
    executor.run()
    return gateway, executor


def test_leavers_go_in_one_request_and_a_refused_one_fails_alone() -> None:
    gateway, executor = leavers_run({"id-2": "no user with id id-2"}, still_there="3")

    assert gateway.calls == [("change_users", ["id-1", "id-2"])]  # id-3 is still in the source: nothing sent
    outcomes = [(r.user_id, r.outcome, r.detail) for r in executor.outcome.results]
    assert outcomes == [
        ("id-1", "applied", "left: absent from the source, confirmed by an exact lookup"),
        ("id-2", "failed", "refused by Keycloak: no user with id id-2"),
        ("id-3", "skipped", "still in the source (left out of the listing: a scope or filter change?)"),
    ]
    assert executor.in_bulk


def test_where_the_plugin_declines_the_admin_api_makes_every_change() -> None:
    gateway, executor = leavers_run(None)

    assert gateway.calls == [
        ("change_users", ["id-1", "id-2", "id-3"]),
        ("replace_user", ("id-1", False)), ("logout_user", "id-1"),
        ("replace_user", ("id-2", False)), ("logout_user", "id-2"),
        ("replace_user", ("id-3", False)), ("logout_user", "id-3"),
    ]  # fmt: skip
    assert [result.outcome for result in executor.outcome.results] == ["applied"] * 3
    assert not executor.in_bulk


def test_after_the_plugin_declines_people_are_written_one_by_one_until_asked_to_stop() -> None:
    items = tuple(SyncItem("disable", f"{n}", f"user{n}", f"id-{n}", reason="left") for n in (1, 2, 3))
    stopping = False

    def should_stop() -> bool:
        return stopping

    class StoppingGateway(FakeGateway):
        def logout_user(self, realm: str, user_id: str) -> None:
            nonlocal stopping
            super().logout_user(realm, user_id)
            stopping = True  # SIGTERM while the first person is being written

    gateway = StoppingGateway(None)
    executor = SyncExecutor(
        cast(KeycloakGateway, gateway), SyncPlan("acme", "hr", items), now=NOW, attribute_names=(),
        lookup=lambda _: NotFound(), live_users={f"id-{n}": User.from_json(raw_user(n)) for n in (1, 2, 3)},
        workers=1, should_stop=should_stop,
    )  # fmt: skip

    with pytest.raises(Interrupted):
        executor.run()

    assert [call for call in gateway.calls if call[0] != "change_users"] == [
        ("replace_user", ("id-1", False)), ("logout_user", "id-1"),
    ]  # fmt: skip
    # The two not begun have an intent in the journal: each ends as skipped, not left open.
    assert [(result.user_id, result.outcome) for result in executor.outcome.results] == [
        ("id-1", "applied"), ("id-2", "skipped"), ("id-3", "skipped"),
    ]  # fmt: skip


def test_people_changes_start_while_the_last_import_batch_is_still_running() -> None:
    """Joiners and people's changes are one stream for the workers: with one import batch and three groups of
    changes on four workers, the changes are sent while the import is under way, not after it. The import
    here waits for a change to arrive; a pause between joiners and people would keep it waiting in vain."""
    change_sent = threading.Event()

    class SlowImports(FakeGateway):
        def list_required_actions(self, realm: str) -> list[Any]:
            return []

        def import_users(self, realm: str, users: Sequence[dict[str, Any]]) -> list[ImportedUser]:
            overlapped = change_sent.wait(timeout=5)
            self.calls.append(("import_users", overlapped))
            return [ImportedUser(user["username"], f"new-{user['username']}", "ADDED") for user in users]

        def change_users(self, realm: str, changes: Sequence[UserChange]) -> dict[str, str] | None:
            change_sent.set()
            return super().change_users(realm, changes)

    joiners = tuple(
        SyncItem("create", f"j{n}", f"joiner{n}", desired=DesiredUser(f"j{n}", "hr", f"joiner{n}")) for n in range(5)
    )
    leavers = tuple(SyncItem("disable", f"{n}", f"user{n}", f"id-{n}", reason="left") for n in range(50))
    gateway = SlowImports({})
    executor = SyncExecutor(
        cast(KeycloakGateway, gateway), SyncPlan("acme", "hr", joiners + leavers), now=NOW, attribute_names=(),
        lookup=lambda _: NotFound(), live_users={f"id-{n}": User.from_json(raw_user(n)) for n in range(50)},
        workers=4,
    )  # fmt: skip

    executor.run()

    assert ("import_users", True) in gateway.calls
    assert [call[0] for call in gateway.calls].count("change_users") == 3
    assert [result.item.external_id for result in executor.outcome.results] == [
        item.external_id for item in joiners + leavers
    ]
    assert {result.outcome for result in executor.outcome.results} == {"applied"}


def test_the_groups_and_roles_the_plan_was_made_with_are_not_read_again_to_apply_it() -> None:
    # FakeGateway has no group or role listing: reading them would fail the run.
    gateway = FakeGateway({})
    grant = SyncItem("grant", "1", "user1", "id-1", grants=Grants(frozenset({"/sales"}), frozenset({"employee"})))
    executor = SyncExecutor(
        cast(KeycloakGateway, gateway), SyncPlan("acme", "hr", (grant,)), now=NOW, attribute_names=(),
        lookup=lambda external_id: NotFound(), live_users={"id-1": User.from_json(raw_user(1))}, workers=1,
        targets=TARGETS,
    )  # fmt: skip

    outcome = executor.run()

    assert [(r.user_id, r.outcome) for r in outcome.results] == [("id-1", "applied")]
    assert gateway.calls == [("change_users", ["id-1"])]


class RefusingGateway(FakeGateway):
    """The admin API, refusing to take anyone out of /sales or to grant the employee role."""

    def __init__(self) -> None:
        super().__init__(None)
        self.bodies: list[dict[str, Any]] = []

    def replace_user(self, realm: str, user_id: str, body: dict[str, Any]) -> None:
        self.bodies.append(body)

    def add_user_to_group(self, realm: str, user_id: str, group_id: str) -> None:
        self.calls.append(("join", group_id))

    def remove_user_from_group(self, realm: str, user_id: str, group_id: str) -> None:
        if group_id == "g-sales":
            raise Rejected("leave refused")
        self.calls.append(("leave", group_id))

    def add_realm_roles_to_user(self, realm: str, user_id: str, roles: Sequence[Role]) -> None:
        if roles:
            raise Rejected("grant refused")

    def remove_realm_roles_from_user(self, realm: str, user_id: str, roles: Sequence[Role]) -> None:
        self.calls.append(("remove roles", [role.name for role in roles]))


def mover_run(recorded: Grants, desired: Grants, gateway: FakeGateway) -> list[tuple[str, str]]:
    """One mover's grant, revoke and update through the admin API; (action, outcome) of each step."""
    person = DesiredUser("1", "hr", "user1", groups=desired.groups, realm_roles=desired.realm_roles)
    steps = (
        SyncItem("update", "1", "user1", "id-1", person, reason="grants changed"),
        *[SyncItem("grant", "1", "user1", "id-1", person, grants=desired - recorded)] * bool(desired - recorded),
        *[SyncItem("revoke", "1", "user1", "id-1", person, grants=recorded - desired)] * bool(recorded - desired),
    )
    executor = SyncExecutor(
        cast(KeycloakGateway, gateway), SyncPlan("acme", "hr", steps), now=NOW, attribute_names=(),
        lookup=lambda external_id: NotFound(), live_users={"id-1": User.from_json(raw_user(1))}, workers=1,
        targets=TARGETS, in_bulk=False,
    )  # fmt: skip
    return [(result.item.action, result.outcome) for result in executor.run().results]


def test_a_refused_grant_or_revoke_is_not_recorded_as_done_so_the_next_run_tries_again() -> None:
    """The plan compares what the sources want with what the sync recorded on the user, not with Keycloak: a
    revoke refused but recorded as done would leave the grant for good (then taken for an admin's)."""
    gateway = RefusingGateway()
    recorded = Grants(groups=frozenset({"/staff", "/sales"}))
    desired = Grants(groups=frozenset({"/staff"}), realm_roles=frozenset({"employee"}))

    outcomes = mover_run(recorded, desired, gateway)

    assert outcomes == [("grant", "failed"), ("revoke", "failed"), ("update", "applied")]
    [body] = gateway.bodies
    written = Grants.from_json(body["attributes"][GRANTS_ATTRIBUTE][0])
    assert written == Grants(groups=frozenset({"/staff", "/sales"}))  # /sales still ours; employee not given


def test_a_revoke_of_a_group_or_role_deleted_since_is_done_and_forgotten() -> None:
    gateway = RefusingGateway()
    recorded = Grants(groups=frozenset({"/staff", "/gone"}), realm_roles=frozenset({"retired"}))
    desired = Grants(groups=frozenset({"/staff"}))

    outcomes = mover_run(recorded, desired, gateway)

    assert outcomes == [("revoke", "applied"), ("update", "applied")]
    assert ("remove roles", []) in gateway.calls and not any(call[0] == "leave" for call in gateway.calls)
    [body] = gateway.bodies
    assert Grants.from_json(body["attributes"][GRANTS_ATTRIBUTE][0]) == desired


def test_users_an_import_made_are_recorded_even_when_settling_a_skipped_one_fails() -> None:
    """A batch creates ann and cy and skips bob (his username exists); reading bob's account to see whose it is
    fails: the run stops, and ann and cy are still recorded as created."""

    class SkippingImport(FakeGateway):
        def list_required_actions(self, realm: str) -> list[Any]:
            return []

        def import_users(self, realm: str, users: Sequence[dict[str, Any]]) -> list[ImportedUser]:
            actions = {"ann": "ADDED", "bob": "SKIPPED", "cy": "ADDED"}
            return [
                ImportedUser(user["username"], f"id-{user['username']}", actions[user["username"]]) for user in users
            ]

        def get_user(self, realm: str, user_id: str) -> User:
            raise Unavailable("GET answered 503")

    joiners = tuple(
        SyncItem("create", name, name, desired=DesiredUser(name, "hr", name)) for name in ("ann", "bob", "cy")
    )
    executor = SyncExecutor(
        cast(KeycloakGateway, SkippingImport({})), SyncPlan("acme", "hr", joiners), now=NOW, attribute_names=(),
        lookup=lambda external_id: NotFound(), live_users={}, workers=1,
    )  # fmt: skip

    with pytest.raises(Unavailable):
        executor.run()

    assert [(result.item.username, result.outcome) for result in executor.outcome.results] == [
        ("ann", "applied"), ("cy", "applied"), ("bob", "failed"),
    ]  # fmt: skip
