"""Client roles in sanctions, against a real Keycloak: a level takes a listed client role and a realm role,
a manual re-grant of the client role is reverted (and journalled as drift) on enforce, and lifting gives
back exactly what was taken: nothing the sanction did not remove, nothing granted by hand meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.sanctions.policy import SanctionPolicy, load_sanction_policy
from agent.sanctions.service import enforce_sanctions, issue_sanction, lift_sanction
from agent.settings import KeycloakConnection
from agent.store import ManualClock, open_store
from agent.store.db import Store
from agent.store.sanctions import ClientRoleRef
from tests.harness.sanctions import START, access_of, context_for, make_member, prepare_realm

POLICY = """\
levels:
  - name: warning
  - name: demoted
    actions:
      remove_roles: [premium]
      remove_client_roles:
        app: [buyer, seller]
reasons:
  - code: spam
appeals: {acknowledge_within: 2d, decide_within: 15d}
"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}", now=clock) as opened:
        yield opened


@pytest.fixture
def policy(tmp_path: Path) -> SanctionPolicy:
    path = tmp_path / "sanctions.yaml"
    path.write_text(POLICY)
    return load_sanction_policy(path, {})


@pytest.fixture
def app_realm(keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str) -> str:
    """The sanction test realm, with roles buyer, seller and viewer on client `app`."""
    prepare_realm(keycloak_connection, realm)
    app = gateway.find_client(realm, "app")
    assert app is not None
    for name in ("buyer", "seller", "viewer"):
        gateway.create_client_role(realm, app.id, name)
    return realm


def app_roles(gateway: KeycloakGateway, realm: str, user_id: str, *, effective: bool = False) -> set[str]:
    app = gateway.find_client(realm, "app")
    assert app is not None
    return {role.name for role in gateway.user_client_roles(realm, user_id, app.id, effective=effective)}


def grant_app_roles(gateway: KeycloakGateway, realm: str, user_id: str, *names: str) -> None:
    """By hand, as an administrator would in the console."""
    app = gateway.find_client(realm, "app")
    assert app is not None
    roles = [gateway.get_client_role(realm, app.id, name) for name in names]
    gateway.add_client_roles_to_user(realm, user_id, app.id, [role for role in roles if role is not None])


def test_client_and_realm_roles_are_taken_re_asserted_and_given_back_exactly(
    gateway: KeycloakGateway, app_realm: str, store: Store, clock: ManualClock, policy: SanctionPolicy
) -> None:
    user_id = make_member(gateway, app_realm, "erin")
    grant_app_roles(gateway, app_realm, user_id, "buyer", "viewer")  # seller is listed but not held
    before = access_of(gateway, app_realm, user_id)
    context = context_for(gateway, store, app_realm, clock, policy)

    sanction = issue_sanction(context, "erin", level="demoted", reason_code="spam")

    assert sanction.state == "active", sanction.problem
    assert sanction.changes.removed_roles == ("premium",)
    assert sanction.changes.removed_client_roles == (ClientRoleRef("app", "buyer"),)
    assert app_roles(gateway, app_realm, user_id, effective=True) == {"viewer"}
    assert "premium" not in access_of(gateway, app_realm, user_id).roles

    grant_app_roles(gateway, app_realm, user_id, "buyer", "seller")  # a re-grant, and a listed role never held
    report = enforce_sanctions(context)

    assert report.reasserted == [sanction.id] and report.ok, report.pending
    assert app_roles(gateway, app_realm, user_id, effective=True) == {"viewer"}
    journal = store.journal.entries(subject="erin")
    drift = [e for e in journal if e.details.get("drift") and e.details["outcome"] == "applied"]
    assert sorted((e.action, e.details.get("client_id"), e.details.get("role")) for e in drift) == [
        ("sanction.remove-client-role", "app", "buyer"),
        ("sanction.remove-client-role", "app", "seller"),
    ]
    stored = store.sanctions.get(sanction.id)
    assert stored is not None and stored.changes == sanction.changes  # drift is not recorded as a change

    lifted = lift_sanction(context, sanction.id, actor="lead", note="appeal upheld")

    assert lifted.state == "lifted", lifted.problem
    assert access_of(gateway, app_realm, user_id) == before  # premium back, groups as they were
    assert app_roles(gateway, app_realm, user_id) == {"buyer", "viewer"}  # not seller: the sanction never took it
    restored = [e for e in store.journal.entries(subject="erin") if e.action == "sanction.add-client-role"]
    # The intent, journalled before the write, then its outcome.
    assert [(e.details["outcome"], e.details.get("role")) for e in restored] == [
        ("intent", "buyer"),
        ("applied", "buyer"),
    ]
