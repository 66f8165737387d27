"""Required actions: enabled, default for new users, priority and config. A listed action is registered when
its provider is installed but not registered; unlisted actions are left alone, and none is ever deleted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway
from agent.keycloak.models import RequiredAction, RequiredActionProvider
from agent.realm.kinds.base import LiveRealm
from agent.realm.live import LiveReader
from agent.realm.plan import Change, diff_fields
from agent.realm.spec import RealmSpec, RequiredActionSpec

KIND = "required actions"


@dataclass(frozen=True)
class LiveRequiredActions:
    registered: Mapping[str, RequiredAction]
    unregistered: Mapping[str, RequiredActionProvider]


def action_fields(action: RequiredActionSpec) -> dict[str, Any]:
    """Keycloak fields the spec manages (None = not managed); `config` holds only the keys written."""
    fields: dict[str, Any] = {}
    if action.enabled is not None:
        fields["enabled"] = action.enabled
    if action.default_action is not None:
        fields["defaultAction"] = action.default_action
    if action.priority is not None:
        fields["priority"] = action.priority
    if action.config is not None:
        fields["config"] = dict(action.config)
    return fields


def live_fields(action: RequiredAction) -> dict[str, Any]:
    return {
        "enabled": action.enabled,
        "defaultAction": action.default_action,
        "priority": action.priority,
        "config": dict(action.config),
    }


def plan_required_actions(spec: RealmSpec, live_realm: LiveRealm, live: LiveRequiredActions) -> list[Change]:
    """Update listed actions that differ; `+` registers one whose provider is installed but not registered."""
    changes: list[Change] = []
    for action in spec.required_actions or ():
        fields = action_fields(action)
        current = live.registered.get(action.alias)
        if current is not None:
            differing = diff_fields(live_fields(current), fields)
            if differing:
                changes.append(Change(KIND, "update", action.alias, differing, desired=fields))
            continue
        # A realm created by this run registers Keycloak's own actions itself: apply decides then.
        note = ""
        if live_realm.exists:
            installed = action.alias in live.unregistered
            note = "register" if installed else "provider not installed in Keycloak: apply will fail"
        changes.append(Change(KIND, "create", action.alias, diff_fields({}, fields), desired=fields, note=note))
    return changes


def write_required_action(gateway: KeycloakGateway, realm: str, alias: str, fields: Mapping[str, Any]) -> None:
    """Register the action if needed, then overlay `fields` on it; config keys are merged into the live ones."""
    live = {action.alias: action for action in gateway.list_required_actions(realm)}
    if alias not in live:
        providers = {p.provider_id: p for p in gateway.list_unregistered_required_actions(realm)}
        if alias not in providers:
            raise Rejected(f"required action '{alias}' is not installed in Keycloak (realm '{realm}')")
        gateway.register_required_action(realm, alias, providers[alias].name)
        live = {action.alias: action for action in gateway.list_required_actions(realm)}
    current = live[alias]
    changes = dict(fields)
    if "config" in changes:
        changes["config"] = {**current.config, **changes["config"]}
    if diff_fields(live_fields(current), changes):
        gateway.update_required_action(realm, alias, changes)


class RequiredActions:
    name = KIND

    def read(self, live: LiveReader) -> LiveRequiredActions:
        return LiveRequiredActions(live.required_actions, live.unregistered_required_actions)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveRequiredActions) -> list[Change]:
        return plan_required_actions(spec, live_realm, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        write_required_action(gateway, realm, change.key, change.desired)
