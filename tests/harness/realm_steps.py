"""Steps for realm-as-code scenarios: apply a spec, then prove a second plan is empty and writes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.keycloak import KeycloakGateway
from agent.realm.engine import KINDS, apply_plan, plan_realm
from agent.realm.kinds.base import Kind
from agent.realm.plan import Plan
from agent.realm.spec import RealmSpec
from agent.settings import KeycloakConnection


def spec_of(data: Mapping[str, Any]) -> RealmSpec:
    """A spec as a user writes it in YAML (friendly keys), presets already resolved."""
    return RealmSpec.model_validate(dict(data))


def apply_spec(connection: KeycloakConnection, spec: RealmSpec, kinds: tuple[Kind, ...] = KINDS) -> Plan:
    """Plan and apply; fail on any rejected change; return the plan that was applied."""
    gateway = KeycloakGateway.connect(connection)
    try:
        plan = plan_realm(gateway, spec, kinds)
        result = apply_plan(gateway, plan)
        assert result.ok, f"rejected: {result.failed}"
        return plan
    finally:
        gateway.close()


def assert_converged(connection: KeycloakConnection, spec: RealmSpec, kinds: tuple[Kind, ...] = KINDS) -> None:
    """A second plan is empty, and applying it makes zero writes."""
    gateway = KeycloakGateway.connect(connection)
    try:
        plan = plan_realm(gateway, spec, kinds)
        assert plan.is_empty, f"second plan not empty: {[(c.kind, c.action, c.key, c.fields) for c in plan.changes]}"
        apply_plan(gateway, plan)
        assert gateway.stats.writes == 0
    finally:
        gateway.close()


def apply_and_converge(connection: KeycloakConnection, spec: RealmSpec, kinds: tuple[Kind, ...] = KINDS) -> Plan:
    plan = apply_spec(connection, spec, kinds)
    assert_converged(connection, spec, kinds)
    return plan


def planned(connection: KeycloakConnection, spec: RealmSpec, kinds: tuple[Kind, ...] = KINDS) -> Plan:
    """Plan through a read-only gateway (so planning provably writes nothing)."""
    gateway = KeycloakGateway.connect(connection)
    try:
        return plan_realm(gateway.read_only(), spec, kinds)
    finally:
        gateway.close()
