"""The appeal flow against a real Keycloak, time moved by a test clock: a sanction is appealed, the appeal is
flagged overdue once the acknowledge deadline passes, and an overturn (through the CLI) gives the user back
exactly the access there was; a reduction swaps the restriction for a warning; an uphold changes nothing.
The journal tells the whole story and still verifies."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.appeals.service import acknowledge_appeal, decide_appeal, enforce_with_appeals, list_appeals, open_appeal
from agent.cli import cli
from agent.keycloak import KeycloakGateway
from agent.sanctions.service import issue_sanction
from agent.settings import KeycloakConnection
from agent.store import ManualClock, open_store
from agent.store.db import Store
from agent.store.sanctions import NewSanction
from tests.harness.cli import keycloak_env
from tests.harness.sanctions import POLICY_FILE, access_of, context_for, make_member, prepare_realm, sanction_policy

# Three days ago, so that the CLI, which reads the real clock, sees the acknowledge deadline (2 days) passed.
OPENED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


@pytest.fixture(autouse=True)
def cli_uses_the_test_keycloak(keycloak_connection: KeycloakConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """CliRunner runs the CLI in this process: point it at the test's Keycloak, not a stack that may run."""
    for name, value in keycloak_env(keycloak_connection).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(OPENED)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(store_url: str, clock: ManualClock) -> Iterator[Store]:
    with open_store(store_url, now=clock) as opened:
        yield opened


@pytest.fixture
def sanction_realm(keycloak_connection: KeycloakConnection, realm: str) -> str:
    prepare_realm(keycloak_connection, realm)
    return realm


def appeal_cli(store_url: str, tmp_path: Path, *args: str) -> Result:
    """`idp-agent appeal ...` on the test's store, with an agent config without smtp: (so no mail) and the
    repo's policy beside it."""
    config = tmp_path / "agent" / "idp-agent.yaml"
    if not config.is_file():
        (config.parent / "policies").mkdir(parents=True)
        shutil.copy(POLICY_FILE, config.parent / "policies" / "sanctions.yaml")
        config.write_text(f"store: {store_url}\n", encoding="utf-8")
    scope = ["--store", store_url, "--config", str(config)]
    return CliRunner().invoke(cli, ["appeal", *args, *scope], catch_exceptions=False)


def test_overdue_appeal_is_flagged_and_an_overturn_restores_access(
    gateway: KeycloakGateway, sanction_realm: str, store: Store, store_url: str, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    realm = sanction_realm
    user_id = make_member(gateway, realm, "ann")
    before = access_of(gateway, realm, user_id)
    context = context_for(gateway, store, realm, clock)
    sanction = issue_sanction(context, "ann", level="suspension", reason_code="harassment", note="reported twice")
    assert sanction.state == "active", sanction.problem
    assert not access_of(gateway, realm, user_id).enabled

    clock.advance(timedelta(minutes=5))
    appeal = open_appeal(store, sanction_policy().appeals, sanction.id, text="It was my brother", actor="ann")

    clock.advance(timedelta(days=2))  # exactly at the acknowledge deadline: not late yet
    assert list_appeals(store, clock(), overdue_only=True) == []
    clock.advance(timedelta(seconds=1))
    [flagged] = list_appeals(store, clock(), overdue_only=True)
    assert flagged.appeal.id == appeal.id
    assert flagged.overdue[0].startswith("not acknowledged by")
    listed = appeal_cli(store_url, tmp_path, "list", "--overdue", "--json")
    assert listed.exit_code == 0, listed.output
    [shown] = json.loads(listed.output)
    assert (shown["id"], shown["status"], shown["overdue"]) == (appeal.id, "open", list(flagged.overdue))
    text_list = appeal_cli(store_url, tmp_path, "list")
    assert f"{appeal.id} {sanction.id} ann@{realm}" in text_list.output and "OVERDUE" in text_list.output

    decided = appeal_cli(
        store_url, tmp_path, "decide", appeal.id, "--overturn", "--note", "identity mix-up",
        "--policy", str(POLICY_FILE), "--actor", "lead",
    )  # fmt: skip

    assert decided.exit_code == 0, decided.output
    assert f"sanction {sanction.id} is overturned" in decided.output
    assert access_of(gateway, realm, user_id) == before
    user = gateway.get_user(realm, user_id)
    assert user is not None and "sanction_level" not in user.attributes
    assert store.sanctions.get(sanction.id).state == "overturned"  # type: ignore[union-attr]
    stored = store.appeals.get(appeal.id)
    assert stored is not None
    assert (stored.decision, stored.decided_by, stored.note) == ("overturn", "lead", "identity mix-up")
    assert appeal_cli(store_url, tmp_path, "list", "--overdue", "--json").output.strip() == "[]"
    actions = [entry.action for entry in store.journal.entries(subject="ann")]
    assert actions.index("appeal.open") < actions.index("appeal.decide") < actions.index("sanction.overturn")
    assert actions[-1] == "sanction.overturned"
    decision = next(entry for entry in store.journal.entries() if entry.action == "appeal.decide")
    assert decision.actor == "lead"
    assert decision.details["appeal_id"] == appeal.id and decision.details["decision"] == "overturn"
    assert all("brother" not in json.dumps(dict(entry.details)) + entry.reason for entry in store.journal.entries())
    verify = CliRunner().invoke(cli, ["audit", "verify", "--store", store_url])
    assert verify.exit_code == 0, verify.output


def test_reduce_swaps_a_restriction_for_a_warning(
    gateway: KeycloakGateway, sanction_realm: str, store: Store, clock: ManualClock
) -> None:
    realm = sanction_realm
    user_id = make_member(gateway, realm, "bob")
    before = access_of(gateway, realm, user_id)
    context = context_for(gateway, store, realm, clock)
    sanction = issue_sanction(context, "bob", level="restriction", reason_code="spam")
    assert "premium" not in access_of(gateway, realm, user_id).roles
    appeal = open_appeal(store, context.policy.appeals, sanction.id, text="first time", actor="bob")
    clock.advance(timedelta(days=1))
    acknowledge_appeal(store, appeal.id, actor="lead")
    clock.advance(timedelta(days=10))

    result = decide_appeal(context, appeal.id, "reduce", note="first offence", actor="lead", reduce_to="warning")

    assert result.replacement is not None and result.replacement.level == "warning"
    assert result.replacement.state == "active" and result.restore_pending == ""
    assert result.sanction.state == "lifted"
    assert access_of(gateway, realm, user_id) == before  # a warning takes nothing away
    assert list_appeals(store, clock() + timedelta(days=30), overdue_only=True) == []


def test_uphold_changes_nothing_in_keycloak(
    gateway: KeycloakGateway, sanction_realm: str, store: Store, clock: ManualClock
) -> None:
    realm = sanction_realm
    user_id = make_member(gateway, realm, "cid")
    context = context_for(gateway, store, realm, clock)
    sanction = issue_sanction(context, "cid", level="suspension", reason_code="fraud")
    during = access_of(gateway, realm, user_id)
    appeal = open_appeal(store, context.policy.appeals, sanction.id, text="please", actor="cid")

    result = decide_appeal(context, appeal.id, "uphold", note="evidence is clear", actor="lead")

    assert (result.appeal.decision, result.sanction.state) == ("uphold", "active")
    assert access_of(gateway, realm, user_id) == during
    assert not during.enabled


def test_an_overturn_cut_off_after_its_decision_is_finished_by_the_enforce_pass(
    gateway: KeycloakGateway, sanction_realm: str, store: Store, clock: ManualClock
) -> None:
    """N3: the process stopped between recording the decision and ending the sanction (deciding again is
    refused: the appeal is decided). The next enforce pass carries the decision out, once."""
    realm = sanction_realm
    user_id = make_member(gateway, realm, "dan")
    before = access_of(gateway, realm, user_id)
    context = context_for(gateway, store, realm, clock)
    sanction = issue_sanction(context, "dan", level="suspension", reason_code="fraud")
    appeal = open_appeal(store, context.policy.appeals, sanction.id, text="not me", actor="dan")
    store.appeals.decide(appeal.id, "overturn", actor="lead", note="wrong account", reduced_to=None)  # then killed

    finished, report = enforce_with_appeals(context)

    assert [done.appeal.id for done in finished] == [appeal.id]
    assert store.sanctions.get(sanction.id).state == "overturned"  # type: ignore[union-attr]
    assert access_of(gateway, realm, user_id) == before
    assert report.ok and report.reasserted == []  # the pass did not put the suspension back
    again, _ = enforce_with_appeals(context)
    assert again == []


def test_a_reduction_cut_off_after_the_milder_sanction_ends_the_old_one_without_a_second_milder(
    gateway: KeycloakGateway, sanction_realm: str, store: Store, clock: ManualClock
) -> None:
    realm = sanction_realm
    user_id = make_member(gateway, realm, "eve")
    before = access_of(gateway, realm, user_id)
    context = context_for(gateway, store, realm, clock)
    sanction = issue_sanction(context, "eve", level="restriction", reason_code="spam")
    appeal = open_appeal(store, context.policy.appeals, sanction.id, text="first time", actor="eve")
    store.appeals.decide(appeal.id, "reduce", actor="lead", note="first offence", reduced_to="warning")
    milder = store.sanctions.add(
        NewSanction(realm=realm, user_id=user_id, username="eve", level="warning", requested_level="warning",
                    reason_code="spam", issued_by="lead", until=sanction.until,
                    note=f"reduced from {sanction.id}: appeal {appeal.id}: first offence")
    )  # fmt: skip  # then killed, before the restriction was ended

    finished, _ = enforce_with_appeals(context)

    assert [(done.appeal.id, done.replacement and done.replacement.id) for done in finished] == [(appeal.id, milder.id)]
    assert store.sanctions.get(sanction.id).state == "lifted"  # type: ignore[union-attr]
    open_ones = store.sanctions.list(realm=realm, user_id=user_id, states=["pending", "active"])
    assert [(one.id, one.level) for one in open_ones] == [(milder.id, "warning")]
    assert access_of(gateway, realm, user_id) == before  # a warning takes nothing away
