"""Authentication: required actions and flows (realm as code, MFA, terms)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from agent.errors import Conflict, OutcomeUnknown, Rejected
from agent.keycloak.base import GatewayBase
from agent.keycloak.models import (
    AuthFlow,
    FlowExecution,
    Group,
    RequiredAction,
    RequiredActionProvider,
)
from agent.keycloak.transport import admin_path


class AuthenticationCalls(GatewayBase):
    """Required actions and authentication flows."""

    def list_required_actions(self, realm: str) -> list[RequiredAction]:
        return [
            RequiredAction.from_json(raw)
            for raw in self._get(admin_path(realm, "authentication", "required-actions")) or []
        ]

    def list_unregistered_required_actions(self, realm: str) -> list[RequiredActionProvider]:
        path = admin_path(realm, "authentication", "unregistered-required-actions")
        return [RequiredActionProvider.from_json(raw) for raw in self._get(path) or []]

    def register_required_action(self, realm: str, provider_id: str, name: str) -> None:
        """Register an installed provider (Keycloak enables it at the end of the priority list).

        Registering twice answers 409, which here means "already registered": nothing to do.
        """
        path = admin_path(realm, "authentication", "register-required-action")
        body = {"providerId": provider_id, "name": name}
        try:
            self._write("POST", path, body)
        except Conflict:
            return
        except OutcomeUnknown:
            if any(action.provider_id == provider_id for action in self.list_required_actions(realm)):
                return
            # Resent once: a 409 now means the first POST committed after the listing.
            with suppress(Conflict):
                self._write("POST", path, body)

    def update_required_action(self, realm: str, alias: str, changes: Mapping[str, Any]) -> None:
        """Overlay `changes` (enabled, defaultAction, priority, config) on the live action and PUT it whole.

        The PUT replaces the whole action: a field left out is nulled (alias and name included), so the
        live representation is always read first.
        """
        path = admin_path(realm, "authentication", "required-actions", alias)
        self._write("PUT", path, {**self._get(path), **changes})

    def list_flows(self, realm: str) -> list[AuthFlow]:
        """Top-level authentication flows (sub-flows are reached through their parent's executions)."""
        return [AuthFlow.from_json(raw) for raw in self._get(admin_path(realm, "authentication", "flows")) or []]

    def find_flow(self, realm: str, alias: str) -> AuthFlow | None:
        return next((flow for flow in self.list_flows(realm) if flow.alias == alias), None)

    def copy_flow(self, realm: str, source_alias: str, new_alias: str) -> str:
        """Copy a flow with its sub-flows (named `<new_alias> <sub-flow>`) and configs; returns the new id."""

        def existing() -> str | None:
            found = self.find_flow(realm, new_alias)
            return found.id if found else None

        path = admin_path(realm, "authentication", "flows", source_alias, "copy")
        return self._create(path, {"newName": new_alias}, existing)

    def flow_executions(self, realm: str, flow_alias: str) -> list[FlowExecution]:
        """Every execution of a flow and of its sub-flows, flattened: parents first, in execution order."""
        path = admin_path(realm, "authentication", "flows", flow_alias, "executions")
        return [FlowExecution.from_json(raw) for raw in self._get(path) or []]

    def execution_config(self, realm: str, config_id: str) -> dict[str, str] | None:
        raw = self._lookup(admin_path(realm, "authentication", "config", config_id))
        return None if raw is None else {str(k): str(v) for k, v in (raw.get("config") or {}).items()}

    def add_flow_subflow(
        self, realm: str, parent_alias: str, alias: str, *, priority: int, description: str = ""
    ) -> FlowExecution:
        """Append a basic sub-flow to `parent_alias`; returns its execution (Keycloak answers with the flow id)."""
        body = {
            "alias": alias,
            "type": "basic-flow",
            "provider": "registration-page-form",
            "description": description,
            "priority": priority,
        }

        def child() -> FlowExecution | None:
            rows = self.flow_executions(realm, parent_alias)
            return next((row for row in rows if row.level == 0 and row.flow_id and row.display_name == alias), None)

        def existing() -> str | None:
            found = child()
            return found.flow_id if found else None

        self._create(admin_path(realm, "authentication", "flows", parent_alias, "executions", "flow"), body, existing)
        created = child()
        if created is None:
            raise Rejected(f"sub-flow '{alias}' of '{parent_alias}' in realm '{realm}' vanished after creation")
        return created

    def add_flow_execution(self, realm: str, flow_alias: str, provider: str, *, priority: int) -> str:
        """Append an authenticator (DISABLED until its requirement is set); returns the execution id.

        The id comes only in the Location header. A lost answer is settled by the execution with this
        provider and priority at the top level of the flow.
        """

        def existing() -> str | None:
            rows = self.flow_executions(realm, flow_alias)
            found = [r for r in rows if r.level == 0 and r.provider_id == provider and r.priority == priority]
            return found[0].id if found else None

        path = admin_path(realm, "authentication", "flows", flow_alias, "executions", "execution")
        return self._create(path, {"provider": provider, "priority": priority}, existing)

    def set_execution_requirement(
        self, realm: str, flow_alias: str, execution: FlowExecution, requirement: str
    ) -> None:
        """Set an execution's requirement, keeping its priority.

        Keycloak treats a priority left out of this PUT as 0 and moves the execution first in its flow.
        """
        body = {**execution.representation, "requirement": requirement, "priority": execution.priority}
        self._write("PUT", admin_path(realm, "authentication", "flows", flow_alias, "executions"), body)

    def add_execution_config(self, realm: str, execution_id: str, alias: str, config: Mapping[str, str]) -> str:
        """Attach a config to an execution; returns the config id."""

        def existing() -> str | None:
            raw = self._lookup(admin_path(realm, "authentication", "executions", execution_id)) or {}
            found = raw.get("authenticatorConfig")
            return str(found) if found else None

        path = admin_path(realm, "authentication", "executions", execution_id, "config")
        return self._create(path, {"alias": alias, "config": dict(config)}, existing)

    def delete_flow(self, realm: str, flow_id: str) -> None:
        """Delete a top-level flow and its sub-flows. Keycloak answers 500 for a flow still bound to the
        realm, so callers check bindings first."""
        self._write("DELETE", admin_path(realm, "authentication", "flows", flow_id))

    def list_role_groups(self, realm: str, role_name: str) -> list[Group]:
        """Groups granted a realm role directly."""
        path = admin_path(realm, "roles", role_name, "groups")
        return [Group.from_json(raw) for raw in self._paged(path, {"briefRepresentation": "false"})]

    def set_user_required_actions(self, realm: str, user_id: str, actions: Sequence[str]) -> None:
        """Replace the user's required actions with one partial PUT.

        A user PUT without `attributes` keeps attributes, names, email and flags (checked on 26.x), so
        no read is needed when the caller already holds the user's current actions.
        """
        self._write("PUT", admin_path(realm, "users", user_id), {"requiredActions": list(actions)})

    def unregister_required_action(self, realm: str, alias: str) -> None:
        """Remove a required action from the realm; its provider stays installed and can be registered again."""
        self._write("DELETE", admin_path(realm, "authentication", "required-actions", alias))
