"""`idp-agent appeal open | acknowledge | list` on a real store file, and decide's argument checks (no Keycloak:
the decisions themselves are tested against a real one in tests/integration/test_appeals_flow.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.appeals.commands import decided_message
from agent.appeals.decisions import AppealError
from agent.appeals.service import DecidedAppeal
from agent.cli import cli
from agent.store import open_store
from agent.store.appeals import NewAppeal
from agent.store.locks import store_lock
from agent.store.sanctions import NewSanction

POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "sanctions.yaml"


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no idp-agent.yaml here: appeals work without an agent config
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def sanction_id(store_url: str) -> str:
    with open_store(store_url) as store:
        until = datetime(2099, 1, 1, tzinfo=UTC)
        added = store.sanctions.add(NewSanction("acme", "kc-1", "ann", "ban", "ban", "fraud", "moderator", until))
        return store.sanctions.save(replace(added, state="active")).id


def appeal(store_url: str, *args: str) -> Result:
    scope = ["--store", store_url]
    return CliRunner().invoke(cli, ["appeal", *args, *scope], catch_exceptions=False)


def test_open_acknowledge_list(store_url: str, sanction_id: str) -> None:
    opened = appeal(store_url, "open", sanction_id, "--text", "not me", "--policy", str(POLICY_FILE), "--actor", "ann")
    assert opened.exit_code == 0, opened.output
    appeal_id = opened.output.split()[1]
    assert f"appeal {appeal_id} opened against {sanction_id} (ann); acknowledge by" in opened.output
    [listed] = json.loads(appeal(store_url, "list", "--json").output)
    assert (listed["id"], listed["status"], listed["text"], listed["overdue"]) == (appeal_id, "open", "not me", [])
    assert appeal(store_url, "list", "--overdue").output.strip() == "0 appeal(s), 0 overdue"
    acknowledged = appeal(store_url, "acknowledge", appeal_id, "--actor", "lead")
    assert acknowledged.exit_code == 0 and "acknowledged" in acknowledged.output
    line = appeal(store_url, "list").output.splitlines()[0]
    assert line.startswith(f"{appeal_id} {sanction_id} ann@acme opened ") and ": acknowledged, due " in line
    with open_store(store_url) as store:
        actions = [(entry.action, entry.actor) for entry in store.journal.entries()]
    assert actions == [("appeal.open", "ann"), ("appeal.acknowledge", "lead")]


def test_open_against_an_unknown_sanction_fails(store_url: str) -> None:
    with pytest.raises(AppealError, match="no sanction s-nope"):
        appeal(store_url, "open", "s-nope", "--text", "x", "--policy", str(POLICY_FILE))


@pytest.mark.parametrize(
    "flags",
    [[], ["--uphold", "--overturn"], ["--overturn", "--reduce", "warning"]],
    ids=["none", "two", "overturn-and-reduce"],
)
def test_decide_needs_exactly_one_decision(store_url: str, flags: list[str]) -> None:
    result = appeal(store_url, "decide", "a-1", *flags, "--note", "why")
    assert result.exit_code == 2
    assert "exactly one of --uphold, --overturn and --reduce LEVEL" in result.output


def test_decide_needs_a_note_that_says_something(store_url: str) -> None:
    result = appeal(store_url, "decide", "a-1", "--uphold", "--note", "  ")
    assert result.exit_code == 2 and "--note must say why" in result.output


def test_decide_waits_for_no_one_while_a_sanction_writer_holds_the_realm(store_url: str, sanction_id: str) -> None:
    opened = appeal(store_url, "open", sanction_id, "--text", "not me", "--policy", str(POLICY_FILE))
    appeal_id = opened.output.split()[1]
    with open_store(store_url) as store, store_lock(store, "sanctions-acme"):
        with pytest.raises(AppealError, match="not decided") as raised:
            appeal(store_url, "decide", appeal_id, "--overturn", "--note", "mix-up", "--policy", str(POLICY_FILE))
        assert "decide again" in raised.value.hint
        stored = store.appeals.get(appeal_id)
        assert stored is not None and stored.decision is None


def test_a_restore_not_yet_verified_is_said_and_exits_2(store_url: str, sanction_id: str) -> None:
    with open_store(store_url) as store:
        sanction = store.sanctions.get(sanction_id)
        appeal_row = store.appeals.open(
            NewAppeal(sanction_id, "acme", "ann", "x", "ann"),
            acknowledge_within=timedelta(days=2),
            decide_within=timedelta(days=15),
        )
    assert sanction is not None
    being_lifted = replace(sanction, ending="overturned", problem="Keycloak: unavailable")
    decided = replace(appeal_row, decision="overturn", note="mix-up")
    pending = DecidedAppeal(decided, being_lifted)
    assert pending.restore_pending == "Keycloak: unavailable"
    assert decided_message(pending).splitlines() == [
        f"appeal {decided.id}: decided: overturn; sanction {sanction_id} is active (being overturned)",
        "restore pending: Keycloak: unavailable (the next `idp-agent sanctions enforce` retries)",
    ]
    done = DecidedAppeal(decided, replace(sanction, state="overturned"))
    assert done.restore_pending == ""
    assert decided_message(done) == f"appeal {decided.id}: decided: overturn; sanction {sanction_id} is overturned"
