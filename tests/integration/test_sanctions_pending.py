"""N3 against a real Keycloak: a sanction that cannot be made effective stays visibly pending, with the
reason, and the next pass finishes it; a reduction (appeals) replaces a ban by a milder level without
restoring what the milder level still takes away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.sanctions.service import (
    enforce_sanctions,
    issue_sanction,
    lift_sanction,
    reduce_sanction,
    sanctioned_user_ids,
)
from agent.settings import KeycloakConnection, LdapConnection
from agent.store import ManualClock, open_store
from agent.store.db import Store
from tests.harness.federation import add_ldap_federation
from tests.harness.sanctions import START, access_of, context_for, make_member, prepare_realm


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}", now=clock) as opened:
        yield opened


def test_a_sanction_that_cannot_be_made_effective_stays_pending_and_is_retried(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, store: Store, clock: ManualClock
) -> None:
    prepare_realm(keycloak_connection, realm)
    user_id = make_member(gateway, realm, "gil")
    context = context_for(gateway, store, realm, clock)
    sanction = issue_sanction(context, "gil", level="restriction", reason_code="spam")
    assert sanction.state == "active"
    restricted = gateway.find_group_by_path(realm, "/restricted")
    assert restricted is not None
    gateway.delete_group(realm, restricted.id)  # by hand: the group the restriction needs is gone

    report = enforce_sanctions(context)

    assert not report.ok and "not in group /restricted" in report.pending[sanction.id]
    stored = store.sanctions.get(sanction.id)
    assert stored is not None and stored.state == "pending" and "not in group /restricted" in stored.problem
    assert user_id in sanctioned_user_ids(store, realm)  # still held from the sync while pending
    failed = [e for e in store.journal.entries(subject="gil") if e.details.get("outcome") == "failed"]
    assert failed and failed[-1].action == "sanction.join-group" and failed[-1].run_id == report.run_id

    gateway.create_group(realm, "restricted")
    report = enforce_sanctions(context)

    assert report.ok and report.reasserted == [sanction.id]
    stored = store.sanctions.get(sanction.id)
    assert stored is not None and stored.state == "active" and stored.problem == ""
    assert "/restricted" in access_of(gateway, realm, user_id).groups


def test_a_suspension_keycloak_refuses_stays_pending_and_says_why(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, demo_ldap: LdapConnection,
    store: Store, clock: ManualClock,
) -> None:  # fmt: skip
    """A person of a read-only LDAP federation that does not import its users: Keycloak refuses to disable them
    (it cannot be done through Keycloak at all). The suspension is not shown as in force: it stays pending, and
    its problem carries Keycloak's answer, not only what the check found missing."""
    prepare_realm(keycloak_connection, realm)
    add_ldap_federation(gateway, realm, demo_ldap, import_users=False)
    context = context_for(gateway, store, realm, clock)

    sanction = issue_sanction(context, "acarter", level="suspension", reason_code="harassment")

    assert sanction.state == "pending"
    assert sanction.problem.startswith("still enabled")
    assert "writes failed: The user is read-only. Not possible to write 'enabled'" in sanction.problem
    person = gateway.find_user_by_username(realm, "acarter")
    assert person is not None and person.enabled
    report = enforce_sanctions(context)
    assert report.pending[sanction.id] == store.sanctions.get(sanction.id).problem  # type: ignore[union-attr]
    assert "The user is read-only" in report.pending[sanction.id]


def test_a_ban_reduced_to_a_restriction_gives_back_only_what_the_restriction_allows(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, store: Store, clock: ManualClock
) -> None:
    prepare_realm(keycloak_connection, realm)
    user_id = make_member(gateway, realm, "hal")
    before = access_of(gateway, realm, user_id)
    context = context_for(gateway, store, realm, clock)
    ban = issue_sanction(context, "hal", level="ban", reason_code="harassment")
    assert not access_of(gateway, realm, user_id).enabled

    milder = reduce_sanction(context, ban.id, level="restriction", actor="appeals-board", note="first offence")

    assert milder.level == "restriction" and milder.state == "active" and milder.until == ban.until
    old = store.sanctions.get(ban.id)
    assert old is not None and old.state == "lifted" and milder.id in old.end_note
    access = access_of(gateway, realm, user_id)
    assert access.enabled and "premium" not in access.roles and "/restricted" in access.groups
    user = gateway.get_user(realm, user_id)
    assert user is not None and user.attributes["sanction_level"] == ("restriction",)
    # The restriction ends: everything is as before the ban.
    lift_sanction(context, milder.id, actor="appeals-board", note="served")
    assert access_of(gateway, realm, user_id) == before
    user = gateway.get_user(realm, user_id)
    assert user is not None and not {"sanction_level", "sanction_until", "restrictions"} & set(user.attributes)


def test_a_deleted_account_keeps_its_sanction_pending_until_lifted(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str, store: Store, clock: ManualClock
) -> None:
    prepare_realm(keycloak_connection, realm)
    user_id = make_member(gateway, realm, "kim")
    context = context_for(gateway, store, realm, clock)
    ban = issue_sanction(context, "kim", level="ban", reason_code="fraud")
    gateway.delete_user(realm, user_id)

    report = enforce_sanctions(context)

    assert "no longer exists" in report.pending[ban.id]
    ended = lift_sanction(context, ban.id, actor="lead", note="account closed")
    assert ended.state == "lifted" and "nothing to restore" in ended.end_note
    assert enforce_sanctions(context).ok
