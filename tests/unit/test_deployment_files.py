"""docker-compose.yml and the images stay consistent with the code, checked without a Docker engine."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from agent.config.values import parse_duration
from agent.daemon.config import DaemonSpec, parse_listen
from agent.daemon.service import scheduled_jobs
from agent.stack.demo_directory import demo_ldif
from agent.stack.keycloak import KEYCLOAK_VERSION
from agent.sync.agent_config import load_agent_config
from tests.harness.cli_commands import resolve

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_keycloak_image_matches_the_pinned_version() -> None:
    image = _compose()["services"]["keycloak"]["image"]
    assert image == f"quay.io/keycloak/keycloak:{KEYCLOAK_VERSION}"


def test_published_ports_bind_to_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_named_volumes_are_declared_and_builds_exist() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET")):
                assert str(value).startswith("${"), f"{name}.{key} must come from the environment"


def test_services_with_dependents_have_healthchecks() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency} without a healthcheck"


def test_seed_ldif_is_the_demo_directory() -> None:
    assert (ROOT / "docker/openldap/seed/demo.ldif").read_text() == demo_ldif()


# -- the agent image and the daemon service ---------------------------------------------------------


def _dockerfile(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line.removesuffix(chr(92)).strip()}" if pending else line.removesuffix(chr(92)).strip()
        if not line.endswith("\\"):
            keyword, _, arguments = pending.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
    return instructions


def _one(instruction: str) -> str:
    values = [arguments for keyword, arguments in _dockerfile() if keyword == instruction]
    assert values, f"Dockerfile has no {instruction}"
    return values[-1]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _agent() -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"]["agent"]
    return service


def _agent_command() -> list[str]:
    """The agent service's command line after the image's ENTRYPOINT (`idp-agent`)."""
    command = _agent().get("command") or json.loads(_one("CMD"))
    return [str(word) for word in command]


def _listen_port(words: list[str]) -> int:
    context = resolve(words)
    return parse_listen(context.params["listen"] or DaemonSpec().listen)[1]


def test_the_image_runs_the_agent_as_a_non_root_user() -> None:
    base = _one("FROM")
    version = re.fullmatch(r"python:(\d+\.\d+)-slim", base)
    assert version, base
    assert SpecifierSet(_pyproject()["project"]["requires-python"]).contains(version.group(1) + ".0")
    for arguments in (a for k, a in _dockerfile() if k == "COPY"):
        *sources, _ = arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
    assert _one("USER") not in {"root", "0"}
    assert json.loads(_one("ENTRYPOINT")) == ["idp-agent"]
    assert "idp-agent" in _pyproject()["project"]["scripts"]


def test_the_image_command_and_the_compose_command_are_real_cli_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for words in (json.loads(_one("CMD")), _agent_command()):
        context = resolve(words)
        assert context.command.name == "daemon"


def test_the_daemon_port_is_exposed_published_on_loopback_and_health_checked() -> None:
    port = _listen_port(_agent_command())
    assert str(port) in _one("EXPOSE").split()
    assert f"127.0.0.1:{port}:{port}" in _agent()["ports"]
    check = " ".join(_agent()["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in check
    # Inside its container the daemon must listen on all interfaces for the published port to reach it.
    assert resolve(_agent_command()).params["listen"].startswith("0.0.0.0:")


def test_the_agent_mounts_its_config_and_keeps_state_in_the_volume() -> None:
    agent = _agent()
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in agent["volumes"]}
    config = resolve(_agent_command()).params["config_path"]
    workdir = _one("WORKDIR")
    assert mounts[f"{workdir}/{config}"] == f"./{config}"
    for folder in ("realm-config", "policies", "mappers"):
        assert mounts[f"{workdir}/{folder}"] == f"./{folder}"
    state = dict(line.split("=", 1) for line in [_one("ENV")])["IDP_AGENT_STATE_DIR"]
    assert agent["environment"]["IDP_AGENT_STATE_DIR"] == state
    assert mounts[state] == "agent-state"


def _env_references(path: Path) -> set[str]:
    """${env:NAME} used by a config file, comments left out."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    return set(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", text))


def test_every_variable_the_mounted_config_reads_is_set_for_the_agent() -> None:
    needed = _env_references(ROOT / "idp-agent.yaml")
    for path in (ROOT / "realm-config").rglob("*.yaml"):
        needed |= _env_references(path)
    assert needed, "the example config reads its LDAP settings from the environment"
    assert needed <= set(_agent()["environment"]), sorted(needed - set(_agent()["environment"]))


def _agent_env() -> dict[str, str]:
    """The agent container's environment, with a stand-in for each value that comes from .env."""
    return {
        name: "stand-in" if str(value).startswith("${") else str(value)
        for name, value in _agent()["environment"].items()
    }


def test_the_example_config_schedules_the_daemon_jobs() -> None:
    config = load_agent_config(ROOT / "idp-agent.yaml", _agent_env())
    jobs = {job.job_id for job in scheduled_jobs(config)}
    assert {"sync:workforce", "drift"} <= jobs


def test_stopping_the_agent_leaves_time_for_the_current_item() -> None:
    daemon = load_agent_config(ROOT / "idp-agent.yaml", _agent_env()).daemon
    assert daemon is not None
    grace = _agent()["stop_grace_period"]
    assert _agent().get("stop_signal", "SIGTERM") == "SIGTERM"
    assert parse_duration(grace) > daemon.shutdown_timeout


def test_keycloak_uses_the_postgres_service() -> None:
    services = _compose()["services"]
    keycloak, postgres = services["keycloak"]["environment"], services["postgres"]["environment"]
    assert keycloak["KC_DB"] == "postgres"
    assert keycloak["KC_DB_URL"] == f"jdbc:postgresql://postgres:5432/{postgres['POSTGRES_DB']}"
    assert keycloak["KC_DB_USERNAME"] == postgres["POSTGRES_USER"]
    assert keycloak["KC_DB_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert services["keycloak"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_service_has_a_healthcheck_and_required_variables_are_documented() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for name, service in _compose()["services"].items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    header = "\n".join(line for line in compose_text.splitlines() if line.startswith("#"))
    for variable in set(re.findall(r"\$\{([A-Z_]+):\?", compose_text)):
        assert variable in header, f"{variable} is required but not listed in the header's .env list"
