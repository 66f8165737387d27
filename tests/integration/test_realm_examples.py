"""The shipped example realms: each applies to an empty server, re-applies with zero writes, and can be
adopted back (export as YAML, or Keycloak's native JSON export) with an empty plan."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.keycloak import KeycloakGateway
from agent.realm.engine import plan_realm
from agent.realm.loader import load_realms
from agent.realm.spec import RealmSpec
from agent.settings import KeycloakConnection, LdapConnection
from tests.conftest import realm_name_for
from tests.harness.realm_steps import apply_and_converge
from tests.integration.test_realm_cli import cli_env, run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(path.name for path in (REPO / "realm-config").iterdir() if path.is_dir())
INTRANET_SECRET = "example-intranet-secret-value"


@pytest.fixture
def example_env(demo_ldap: LdapConnection) -> dict[str, str]:
    """What `make demo` exports: the stack's LDAP settings and the demo's client secret."""
    return {
        **os.environ,
        "LDAP_URL": demo_ldap.url,
        "LDAP_BIND_DN": demo_ldap.bind_dn,
        "LDAP_BIND_PASSWORD": demo_ldap.bind_password.reveal(),
        "WORKFORCE_INTRANET_SECRET": INTRANET_SECRET,
    }


def load_example(folder: str, env: dict[str, str]) -> RealmSpec:
    [sourced] = load_realms([REPO / "realm-config" / folder], policies_dir=REPO / "policies", env=env)
    return sourced.spec


@pytest.fixture
def renamed(gateway: KeycloakGateway, request: pytest.FixtureRequest) -> Iterator[str]:
    name = realm_name_for(request.node.name)
    yield name
    if gateway.get_realm(name) is not None:
        gateway.delete_realm(name)


def test_examples_are_found() -> None:
    assert set(EXAMPLES) >= {"public-website", "workforce", "customer-service", "directory"}


@pytest.mark.parametrize("folder", EXAMPLES)
def test_example_applies_to_an_empty_server_and_is_adopted_back(
    folder: str,
    example_env: dict[str, str],
    keycloak_connection: KeycloakConnection,
    gateway: KeycloakGateway,
    renamed: str,
    tmp_path: Path,
) -> None:
    spec = load_example(folder, example_env).model_copy(update={"realm": renamed})
    apply_and_converge(keycloak_connection, spec)

    # Adopt it back: `idp-agent export`, then plan what was exported against the same realm.
    env = cli_env(keycloak_connection, IDP_AGENT_STATE_DIR=str(tmp_path / "state"))
    exported = run_cli(["export", "--realm", renamed, "--out", str(tmp_path / "adopted")], env, REPO)
    assert exported.returncode == 0, exported.stderr
    adopted_env = {
        **env,
        "CLIENT_SECRET_INTRANET": INTRANET_SECRET,
        "LDAP_BIND_CREDENTIAL_CORPORATE_LDAP": example_env["LDAP_BIND_PASSWORD"],
    }
    plan = run_cli(["plan", str(tmp_path / "adopted" / renamed)], adopted_env, REPO)
    assert plan.returncode == 0, plan.stdout + plan.stderr


@pytest.mark.parametrize("folder", ["public-website", "customer-service"])
def test_native_export_is_accepted_as_input(
    folder: str,
    example_env: dict[str, str],
    keycloak_connection: KeycloakConnection,
    gateway: KeycloakGateway,
    renamed: str,
    tmp_path: Path,
) -> None:
    spec = load_example(folder, example_env).model_copy(update={"realm": renamed})
    apply_and_converge(keycloak_connection, spec)
    live = gateway.get_realm(renamed)
    assert live is not None
    native = tmp_path / f"{renamed}.json"
    native.write_text(json.dumps({**live.representation, **gateway.export_realm(renamed)}))

    [sourced] = load_realms([native], policies_dir=REPO / "policies", env=example_env)
    plan = plan_realm(gateway.read_only(), sourced.spec)

    assert plan.is_empty, [(c.kind, c.action, c.key, c.fields) for c in plan.changes]
