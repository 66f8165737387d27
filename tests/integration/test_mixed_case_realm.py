"""A realm whose name has capitals: Keycloak names its default role in lower case (realm Acme has
default-roles-acme). Realm as code must converge without touching that role, and the sync's joiners must get
it (partialImport does not give it by itself)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.realm.native import friendly_from_representation
from agent.settings import KeycloakConnection
from tests.harness.realm_steps import apply_and_converge, spec_of
from tests.harness.sync_setup import hr_config, hr_row, make_sync_setup, managed


@pytest.fixture
def mixed_realm(gateway: KeycloakGateway, realm: str) -> Iterator[str]:
    """The test's realm name with capitals, as a realm of its own (removed afterwards)."""
    name = f"Mixed-{realm}"
    yield name
    if gateway.get_realm(name) is not None:
        gateway.delete_realm(name)


def test_realm_as_code_converges_and_keeps_the_lower_case_default_role(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, mixed_realm: str
) -> None:
    spec = spec_of({"realm": mixed_realm, "roles": [{"name": "staff"}], "default_roles": ["staff"]})

    apply_and_converge(keycloak_connection, spec)  # a second plan must be empty

    default_role = gateway.get_realm_role(mixed_realm, f"default-roles-{mixed_realm.lower()}")
    assert default_role is not None
    assert {role.name for role in gateway.role_composites(mixed_realm, default_role.id)} == {"staff"}


def test_an_exported_realm_with_capitals_lists_its_own_roles_not_the_default_role(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, mixed_realm: str
) -> None:
    apply_and_converge(keycloak_connection, spec_of({"realm": mixed_realm, "roles": [{"name": "staff"}]}))

    exported = friendly_from_representation(gateway.export_realm(mixed_realm))

    assert [role["name"] for role in exported["roles"]] == ["staff"]


def test_a_joiner_in_a_realm_with_capitals_gets_the_default_roles(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, mixed_realm: str, tmp_path: Path
) -> None:
    setup = make_sync_setup(keycloak_connection, mixed_realm, tmp_path)
    apply_and_converge(
        keycloak_connection, spec_of({"realm": mixed_realm, "roles": [{"name": "staff"}], "default_roles": ["staff"]})
    )

    run, _, _ = setup.run(hr_config(setup, [hr_row(0)]))

    assert run.status == "succeeded", run.summary
    [joiner] = managed(gateway, mixed_realm).values()
    effective = {role.name for role in gateway.user_role_mappings(mixed_realm, joiner.id)}
    assert f"default-roles-{mixed_realm.lower()}" in effective
