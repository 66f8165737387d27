"""A sync set up for tests: a realm ready for the sync, a temp folder with the agent config, mapper, CSV and
store, and helpers to run it against the real Keycloak."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from agent.keycloak import KeycloakGateway, RetryPolicy
from agent.settings import KeycloakConnection
from agent.store.db import Store, open_store
from agent.sync.agent_config import AgentConfig, load_agent_config
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, SOURCE_ATTRIBUTE
from agent.sync.runner import run_sync
from tests.harness.realm_steps import apply_spec, spec_of

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
SYNC = "people"
HEADER = ["EmployeeID", "Username", "FirstName", "LastName", "Email", "Status", "Department", "StartDate"]


def hr_row(index: int, **changes: str) -> dict[str, str]:
    row = {
        "EmployeeID": str(5000 + index),
        "Username": f"person{index:03d}",
        "FirstName": "Per",
        "LastName": f"Son{index}",
        "Email": f"person{index:03d}@example.org",
        "Status": "Active",
        "Department": "Sales",
        "StartDate": "2020-01-01",
    }
    row.update(changes)
    return row


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, HEADER)
        writer.writeheader()
        writer.writerows(rows)


HR_FIELDS = ["employee_id", "username", "first_name", "last_name", "email", "status", "department", "start_date"]
HR_MAPPER = {
    "name": SYNC,
    "id": "employee_id",
    "sources": {"hr": {"priority": 10, "fields": HR_FIELDS}},
    "fields": {
        "hr": {
            "employee_id": {"from": "EmployeeID"},
            "username": {"from": "Username", "transform": ["lower"]},
            "first_name": {"from": "FirstName"},
            "last_name": {"from": "LastName"},
            "email": {"from": "Email", "transform": ["lower"]},
            "status": {"from": "Status", "map": {"Active": "active", "Terminated": "inactive"}},
            "department": {"from": "Department"},
            "start_date": {"from": "StartDate", "date": "%Y-%m-%d"},
        }
    },
    "attributes": ["department"],
    "rules": [
        {"name": "everyone", "grant": {"groups": ["/staff"]}},
        {"name": "finance", "when": {"department": "Finance"}, "grant": {"groups": ["/finance"]}},
        {"name": "ghosts", "when": {"department": "Ghost"}, "grant": {"realm_roles": ["no-such-role"]}},
    ],
}  # fmt: skip


@dataclass
class SyncSetup:
    folder: Path
    realm: str
    connection: KeycloakConnection

    def config(
        self, *, sources: list[dict[str, Any]], mapper: dict[str, Any], safety: dict[str, Any] | None = None
    ) -> AgentConfig:
        (self.folder / "mapper.yaml").write_text(yaml.safe_dump({**mapper, "realm": self.realm}))
        agent = {
            "store": f"sqlite:///{self.folder / 'store.db'}",
            "sources": sources,
            "syncs": [
                {
                    "name": SYNC,
                    "mapper": "mapper.yaml",
                    "sources": [s["name"] for s in sources],
                    "safety": safety or {},
                    "keycloak_read": self.keycloak_read,
                    "keycloak_write": self.keycloak_write,
                }
            ],
        }
        (self.folder / "idp-agent.yaml").write_text(yaml.safe_dump(agent))
        return load_agent_config(self.folder / "idp-agent.yaml", self.env or {})

    env: dict[str, str] | None = None
    # "plugin" (the default: the test stack's Keycloak has it) or "admin-api" (brief listings and records).
    keycloak_read: str = "plugin"
    # "plugin" (people's changes many to a request) or "admin-api" (a PUT per person).
    keycloak_write: str = "plugin"

    def run(self, config: AgentConfig) -> tuple[Any, Any, Any]:
        gateway = KeycloakGateway.connect(self.connection)
        try:
            with open_store(config.store) as store:
                return run_sync(config, config.sync(SYNC), gateway, store, now=NOW, env=self.env or {})
        finally:
            gateway.close()

    def run_through(self, config: AgentConfig, connection: KeycloakConnection) -> tuple[Any, Any, Any]:
        """One run against Keycloak at another address (a fault proxy's), with short retries."""
        gateway = KeycloakGateway.connect(
            connection, retry=RetryPolicy(max_attempts=2, base_seconds=0.01, cap_seconds=0.02)
        )
        try:
            with open_store(config.store) as store:
                return run_sync(config, config.sync(SYNC), gateway, store, now=NOW, env=self.env or {})
        finally:
            gateway.close()

    def store(self, config: AgentConfig) -> Store:
        return open_store(config.store)


def hr_config(setup: SyncSetup, rows: list[dict[str, str]] | None, **safety: Any) -> AgentConfig:
    path = setup.folder / "hr.csv"
    if rows is None:
        path.unlink(missing_ok=True)
    else:
        write_csv(path, rows)
    source = {"name": "hr", "type": "csv", "path": str(path), "id_field": "EmployeeID"}
    return setup.config(sources=[source], mapper=HR_MAPPER, safety=safety)


def make_sync_setup(
    connection: KeycloakConnection, realm: str, folder: Path, *, keycloak_read: str = "plugin",
    keycloak_write: str = "plugin",
) -> SyncSetup:  # fmt: skip
    """A realm with the groups the test mapper grants, keeping the sync's attributes and allowing renames."""
    apply_spec(
        connection,
        spec_of(
            {
                "realm": realm,
                "groups": [{"path": "/staff"}, {"path": "/finance"}],
                "user_profile": {"unmanaged_attributes": "admin_edit"},
                "registration": {"edit_username": True},
            }
        ),
    )
    return SyncSetup(folder, realm, connection, env={}, keycloak_read=keycloak_read, keycloak_write=keycloak_write)


def managed(gateway: KeycloakGateway, realm: str) -> dict[str, Any]:
    return {
        u.attributes[EXTERNAL_ID_ATTRIBUTE][0]: u
        for u in gateway.list_users_with_attribute(realm, SOURCE_ATTRIBUTE, SYNC)
    }
