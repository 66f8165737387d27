"""docker-compose.yml and the images stay consistent with the code, checked without a Docker engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agent.stack.demo_directory import demo_ldif
from agent.stack.keycloak import KEYCLOAK_VERSION

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
