"""Stack bookkeeping without servers: ports, credentials, export lines, status text, Keycloak arguments."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from agent.errors import StackError
from agent.secrets import HIDDEN, Secret
from agent.settings import KeycloakConnection, LdapConnection
from agent.stack import api, keycloak
from agent.stack.commands import describe
from agent.stack.keycloak import KeycloakInstance, KeycloakPorts

pytestmark = pytest.mark.unit


def always_free(port: int) -> bool:
    return True


def never_free(port: int) -> bool:
    return False


def test_choose_port_prefers_requested_then_recorded() -> None:
    assert api.choose_port(4000, 5000, is_free=always_free) == 4000
    assert api.choose_port(None, 5000, is_free=always_free) == 5000


def test_choose_port_refuses_a_busy_requested_port() -> None:
    with pytest.raises(StackError) as raised:
        api.choose_port(4000, None, is_free=never_free, option="--ldap-port")
    assert "--ldap-port" in raised.value.hint


def test_choose_port_replaces_a_busy_or_reserved_recorded_port() -> None:
    assert api.choose_port(None, 5000, is_free=never_free) != 5000
    assert api.choose_port(None, 5000, taken=frozenset({5000}), is_free=always_free) != 5000
    with pytest.raises(StackError):
        api.choose_port(5000, None, taken=frozenset({5000}), is_free=always_free)


def test_export_lines_are_shell_quoted() -> None:
    kc = KeycloakConnection(url="http://127.0.0.1:1", username="admin", password=Secret("it's $secret"))
    ldap = LdapConnection("ldap://127.0.0.1:2", "cn=admin,dc=example,dc=org", Secret("a b;c"), "dc=example,dc=org")
    lines = api.export_lines(kc, ldap)
    parsed = dict(shlex.split(line)[1].split("=", 1) for line in lines)
    assert parsed == {
        "KEYCLOAK_URL": "http://127.0.0.1:1",
        "KEYCLOAK_ADMIN_USER": "admin",
        "KEYCLOAK_ADMIN_PASSWORD": "it's $secret",
        "LDAP_URL": "ldap://127.0.0.1:2",
        "LDAP_BIND_DN": "cn=admin,dc=example,dc=org",
        "LDAP_BIND_PASSWORD": "a b;c",
        "LDAP_BASE_DN": "dc=example,dc=org",
    }
    assert api.export_lines(None, None) == []


def test_credentials_are_generated_once_and_private(tmp_path: Path) -> None:
    first = api._load_or_create_credentials(tmp_path, {})
    again = api._load_or_create_credentials(tmp_path, {})
    assert first == again
    assert first.admin_user == "admin"
    assert len(first.admin_password.reveal()) >= 24
    assert first.admin_password != first.ldap_password
    assert (tmp_path / api.CREDENTIALS_FILE).stat().st_mode & 0o777 == 0o600


def test_credentials_from_env_and_conflicts(tmp_path: Path) -> None:
    env = {"IDP_STACK_ADMIN_USER": "root", "IDP_STACK_ADMIN_PASSWORD": "pw-from-env"}
    created = api._load_or_create_credentials(tmp_path, env)
    assert (created.admin_user, created.admin_password, created.ldap_password) == (
        "root",
        Secret("pw-from-env"),
        Secret("pw-from-env"),
    )
    assert api._load_or_create_credentials(tmp_path, env) == created
    with pytest.raises(StackError) as raised:
        api._load_or_create_credentials(tmp_path, {"IDP_STACK_ADMIN_PASSWORD": "other"})
    assert "other" not in str(raised.value)


def test_status_of_an_empty_state_dir(tmp_path: Path) -> None:
    status = api.status(tmp_path)
    assert (status.keycloak, status.ldap, status.all_running) == (None, None, False)
    assert api.running_keycloak_connection(tmp_path) is None
    assert api.running_ldap_connection(tmp_path) is None


def test_status_after_setup_without_processes(tmp_path: Path) -> None:
    api._load_or_create_credentials(tmp_path, {})
    api._save_ports(tmp_path, api.StackPorts(keycloak_http=1111, keycloak_management=2222, ldap=3333))
    status = api.status(tmp_path)
    assert status.keycloak is not None and status.ldap is not None
    assert not status.keycloak.running and not status.ldap.running
    assert status.keycloak.health_url == "http://127.0.0.1:2222/health/ready"
    assert status.ldap.url == "ldap://127.0.0.1:3333"
    text = "\n".join(describe(status))
    assert "not running" in text and "idp-agent stack up" in text


def test_describe_hides_passwords(tmp_path: Path) -> None:
    credentials = api._load_or_create_credentials(tmp_path, {})
    url, console, health = keycloak.urls(KeycloakPorts(1, 2))
    status = api.StackStatus(
        tmp_path,
        api.KeycloakInfo(True, 10, "26", url, console, health, "admin", tmp_path / "k.log"),
        api.LdapInfo(True, 11, "ldap://127.0.0.1:3", "dc=example,dc=org", "cn=admin,dc=example,dc=org", tmp_path),
    )
    text = "\n".join(describe(status))
    assert HIDDEN in text
    assert credentials.admin_password.reveal() not in text
    assert "http://127.0.0.1:1/admin/master/console/" in text


def test_unknown_component_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError):
        api.up(tmp_path, components=("postgres",))


def test_build_key_names_version_and_options() -> None:
    key = keycloak.build_key()
    assert key.startswith(f"{keycloak.KEYCLOAK_VERSION}-")
    assert key == keycloak.build_key()


def test_start_arguments_are_runtime_only(tmp_path: Path) -> None:
    instance = KeycloakInstance(tmp_path / "keycloak")
    arguments = instance.start_arguments(KeycloakPorts(http=8081, management=9001))
    assert arguments[:2] == ["start", "--optimized"]
    assert "--cache=local" in arguments
    assert "--http-host=127.0.0.1" in arguments
    assert "--http-management-port=9001" in arguments
    db_url = f"--db-url=jdbc:h2:file:{tmp_path.resolve()}/keycloak/db/keycloakdb;NON_KEYWORDS=VALUE"
    assert db_url in arguments
    assert not set(arguments) & set(keycloak.BUILD_OPTIONS)


def test_a_build_for_postgres_differs_only_in_its_database_and_has_its_own_cache_key() -> None:
    options = keycloak.build_options(keycloak.POSTGRES)
    assert "--db=postgres" in options
    assert [option for option in options if not option.startswith("--db=")] == [
        option for option in keycloak.BUILD_OPTIONS if not option.startswith("--db=")
    ]
    assert keycloak.build_options() == keycloak.BUILD_OPTIONS
    assert keycloak.build_key(keycloak.POSTGRES) != keycloak.build_key()


def test_start_arguments_on_postgres_name_the_database_but_never_its_password(tmp_path: Path) -> None:
    instance = KeycloakInstance(tmp_path / "keycloak")
    database = keycloak.KeycloakDatabase("jdbc:postgresql://127.0.0.1:5433/kc", "keycloak", Secret("s3cret-value"))
    arguments = instance.start_arguments(KeycloakPorts(http=8081, management=9001), database)
    assert "--db-url=jdbc:postgresql://127.0.0.1:5433/kc" in arguments
    assert "--db-username=keycloak" in arguments
    assert not [argument for argument in arguments if "h2" in argument or "s3cret-value" in argument]


def test_link_copy_shares_inodes(tmp_path: Path) -> None:
    source = tmp_path / "build"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "kc.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    (source / "lib").symlink_to("bin")
    keycloak.link_copy(source, tmp_path / "home")
    copied = tmp_path / "home" / "bin" / "kc.sh"
    assert copied.stat().st_ino == (source / "bin" / "kc.sh").stat().st_ino
    assert (tmp_path / "home" / "lib").is_symlink()


def test_prepare_home_links_the_build_but_copies_data(tmp_path: Path) -> None:
    build = tmp_path / "cache" / "26-abc"
    (build / "lib").mkdir(parents=True)
    (build / "lib" / "quarkus-run.jar").write_bytes(b"jar")
    (build / "data").mkdir()
    (build / "data" / "state").write_bytes(b"runtime")
    instance = KeycloakInstance(tmp_path / "state" / "keycloak")
    instance.prepare_home(build)
    assert (instance.home / "lib" / "quarkus-run.jar").stat().st_ino == (
        build / "lib" / "quarkus-run.jar"
    ).stat().st_ino
    assert (instance.home / "data" / "state").stat().st_ino != (build / "data" / "state").stat().st_ino
    (instance.home / "data" / "new").write_bytes(b"x")
    instance.prepare_home(build)  # same build: the home (and its data/) is kept
    assert (instance.home / "data" / "new").exists()
    assert not (build / "data" / "new").exists()
