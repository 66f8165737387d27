"""MFA by role or group: a copy of the built-in browser flow with one conditional OTP sub-flow per role,
bound as the realm's browser flow. A change builds a new copy under a new alias, rebinds, and only then
deletes the old one: a bound flow is never edited or deleted. Owned flows are listed in a realm attribute.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway
from agent.keycloak.models import FlowExecution
from agent.realm.kinds.base import LiveRealm, may_delete
from agent.realm.live import LiveReader
from agent.realm.plan import Change, FieldChange
from agent.realm.spec import MfaSpec, RealmSpec

KIND = "flows"
# Flows carry no attributes, so the aliases of the flows the agent built are kept as a JSON list here.
OWNED_FLOWS_ATTRIBUTE = "idp-agent.flows"
BUILT_IN_BROWSER = "browser"
PASSWORD_FORM = "auth-username-password-form"  # noqa: S105 - an authenticator id
OTP_FORM = "auth-otp-form"
ROLE_CONDITION = "conditional-user-role"
SUBFLOW_CONDITION = "conditional-sub-flow-executed"
# Config keys whose value names a sub-flow of the same flow; kept relative, like sub-flow names.
FLOW_REFERENCE_KEYS = frozenset({"flow_to_check"})
PRIORITY_STEP = 10
REALM_FLOW_BINDINGS = (
    "browserFlow",
    "registrationFlow",
    "directGrantFlow",
    "resetCredentialsFlow",
    "clientAuthenticationFlow",
    "dockerAuthenticationFlow",
    "firstBrokerLoginFlow",
)

Config = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Step:
    """One execution: an authenticator (`provider`), or a sub-flow (`name`) with its own `steps`.

    Sub-flow names are relative: without the `<flow alias> ` prefix Keycloak gives the sub-flows of a copy,
    so a copy compares equal to the flow it was copied from. Ids, priorities and config aliases are not
    part of a step: two flows with equal steps behave the same.
    """

    requirement: str
    provider: str = ""
    name: str = ""
    config: Config = ()
    steps: tuple[Step, ...] = ()

    @property
    def is_flow(self) -> bool:
        return bool(self.name)


Structure = tuple[Step, ...]


def config_of(values: Mapping[str, str]) -> Config:
    return tuple(sorted((str(key), str(value)) for key, value in values.items()))


# -- structure: parse, compile, compare (pure) -------------------------------------------------------


def relative_name(name: str, flow_alias: str) -> str:
    prefix = flow_alias + " "
    return name[len(prefix) :] if name.startswith(prefix) else name


def relative_config(values: Mapping[str, str], flow_alias: str) -> Config:
    return config_of(
        {
            key: relative_name(value, flow_alias) if key in FLOW_REFERENCE_KEYS else value
            for key, value in values.items()
        }
    )


def absolute_config(config: Config, flow_alias: str) -> dict[str, str]:
    return {key: f"{flow_alias} {value}" if key in FLOW_REFERENCE_KEYS else value for key, value in config}


@dataclass(frozen=True)
class Node:
    """A row of a live flow with the rows below it: the tree that `flow_executions` lists flattened."""

    row: FlowExecution
    children: tuple[Node, ...] = ()


def execution_tree(rows: Sequence[FlowExecution]) -> tuple[Node, ...]:
    """Rebuild the tree from Keycloak's flattened rows (parents first, `level` = depth)."""

    def build(start: int, level: int) -> tuple[tuple[Node, ...], int]:
        nodes: list[Node] = []
        position = start
        while position < len(rows) and rows[position].level == level:
            row = rows[position]
            children, position = build(position + 1, level + 1) if row.flow_id else ((), position + 1)
            nodes.append(Node(row, children))
        return tuple(nodes), position

    nodes, end = build(0, 0)
    if end != len(rows):
        raise ValueError(f"execution rows are not a tree: row {end} is at level {rows[end].level}")
    return nodes


def parse_structure(
    rows: Sequence[FlowExecution], configs: Mapping[str, Mapping[str, str]], flow_alias: str
) -> Structure:
    """The steps of a live flow from its rows and the configs they point to (by config id)."""

    def step(node: Node) -> Step:
        row = node.row
        config = relative_config(configs.get(row.config_id or "", {}), flow_alias)
        if row.flow_id:
            name = relative_name(row.display_name, flow_alias)
            return Step(row.requirement, name=name, config=config, steps=tuple(map(step, node.children)))
        return Step(row.requirement, provider=row.provider_id or "", config=config)

    return tuple(step(node) for node in execution_tree(rows))


def _contains(step: Step, provider: str) -> bool:
    return step.provider == provider or any(_contains(child, provider) for child in step.steps)


def mfa_roles(mfa: MfaSpec) -> tuple[str, ...]:
    """Roles whose holders must use OTP, sorted (order carries no meaning, so it must not force a rebuild)."""
    roles = set(mfa.otp_for_roles) | ({mfa.group_role} if mfa.otp_for_groups else set())
    return tuple(sorted(roles))


def otp_subflow(role: str, earlier: Sequence[str]) -> Step:
    """A CONDITIONAL sub-flow asking for OTP when the user holds `role`, unless an `earlier` sub-flow
    already asked: Keycloak would otherwise ask for a second code (and refuse the first one again)."""
    conditions = [Step("REQUIRED", ROLE_CONDITION, config=config_of({"condUserRole": role, "negate": "false"}))]
    conditions += [
        Step("REQUIRED", SUBFLOW_CONDITION, config=config_of({"flow_to_check": name, "check_result": "not-executed"}))
        for name in earlier
    ]
    return Step("CONDITIONAL", name=f"MFA {role}", steps=(*conditions, Step("REQUIRED", OTP_FORM)))


def compile_mfa_flow(base: Structure, roles: Sequence[str]) -> Structure:
    """`base` (the built-in browser flow) with one OTP sub-flow per role appended to its forms sub-flow.

    The realm's own conditional 2FA sub-flow stays first: a user with OTP configured is asked there, once.
    """
    forms = next(
        (i for i, s in enumerate(base) if s.is_flow and any(c.provider == PASSWORD_FORM for c in s.steps)), None
    )
    if forms is None:
        raise Rejected(f"the built-in '{BUILT_IN_BROWSER}' flow has no sub-flow with {PASSWORD_FORM} to extend")
    earlier = [s.name for s in base[forms].steps if s.is_flow and _contains(s, OTP_FORM)]
    added: list[Step] = []
    for role in roles:
        added.append(otp_subflow(role, earlier))
        earlier.append(added[-1].name)
    extended = replace(base[forms], steps=(*base[forms].steps, *added))
    return (*base[:forms], extended, *base[forms + 1 :])


def _as_json(steps: Structure) -> list[Any]:
    return [[s.requirement, s.provider, s.name, [list(pair) for pair in s.config], _as_json(s.steps)] for s in steps]


def structure_digest(steps: Structure) -> str:
    """A short hash of the steps: part of the alias, so each distinct flow gets its own name."""
    return hashlib.sha256(json.dumps(_as_json(steps)).encode()).hexdigest()[:8]


def choose_alias(base_alias: str, digest: str, taken: Iterable[str]) -> str:
    """`<base> <digest>`, or with `-2`, `-3`... when a flow (a hand-edited or unfinished copy) holds it."""
    used = set(taken)
    alias = f"{base_alias} {digest}"
    suffix = 2
    while alias in used:
        alias = f"{base_alias} {digest}-{suffix}"
        suffix += 1
    return alias


def outline(steps: Structure, path: str = "") -> list[str]:
    """One readable line per step, `sub-flow > provider REQUIREMENT (config)`, for plans."""
    lines: list[str] = []
    for step in steps:
        shown = ", ".join(f"{key}={value}" for key, value in step.config)
        label = step.name if step.is_flow else step.provider
        lines.append(f"{path}{label} {step.requirement}" + (f" ({shown})" if shown else ""))
        if step.is_flow:
            lines.extend(outline(step.steps, f"{path}{step.name} > "))
    return lines


def diff_outline(live: Structure, desired: Structure) -> tuple[list[str], list[str]]:
    """Lines only in `live` and lines only in `desired` (as multisets, in their own order)."""
    before, after = outline(live), outline(desired)
    return _only_in(before, after), _only_in(after, before)


def _only_in(lines: list[str], other: list[str]) -> list[str]:
    extra = Counter(lines) - Counter(other)
    kept: list[str] = []
    for line in lines:
        if extra[line] > 0:
            extra[line] -= 1
            kept.append(line)
    return kept


# -- plan ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveFlows:
    """What planning needs: the binding, every top-level flow, the owned ones, and the steps of the
    built-in browser flow, of the bound flow and of each owned flow."""

    bound: str | None
    flows: Mapping[str, str]  # alias -> id
    owned: tuple[str, ...]
    structures: Mapping[str, Structure]
    bound_elsewhere: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FlowBuild:
    """Build a copy under `alias` (None: chosen at apply, for a realm that does not exist yet), then bind it."""

    alias: str | None
    base_alias: str
    roles: tuple[str, ...]
    steps: Structure | None


@dataclass(frozen=True)
class Rebind:
    alias: str


@dataclass(frozen=True)
class OwnedRecord:
    aliases: tuple[str, ...]


def owned_aliases(attributes: Mapping[str, str]) -> tuple[str, ...]:
    raw = attributes.get(OWNED_FLOWS_ATTRIBUTE)
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        return ()
    return tuple(str(alias) for alias in value) if isinstance(value, list) else ()


def roles_in(steps: Structure) -> list[str]:
    """Roles named by role conditions anywhere in a flow, sorted."""
    found: set[str] = set()
    for step in steps:
        if step.provider == ROLE_CONDITION:
            found.update(value for key, value in step.config if key == "condUserRole")
        found.update(roles_in(step.steps))
    return sorted(found)


def build_fields(base: Structure, bound: Structure, roles: Sequence[str]) -> tuple[FieldChange, ...]:
    """What a new flow changes for logins: the roles asked for OTP, and any other step that differs from
    what the bound flow would be for its own roles (a hand edit, or a changed built-in browser flow)."""
    fields = [FieldChange("otp for roles", roles_in(bound), list(roles))]
    removed, added = diff_outline(bound, compile_mfa_flow(base, roles_in(bound)))
    if removed or added:
        fields.append(FieldChange("other steps", removed, added))
    return tuple(fields)


def _build_change(mfa: MfaSpec, live: LiveFlows, roles: tuple[str, ...]) -> Change:
    base = live.structures.get(BUILT_IN_BROWSER)
    if base is None:  # the realm is created by this run: the copy is compiled when it exists
        roles_field = FieldChange("otp for roles", None, list(roles))
        build = FlowBuild(None, mfa.flow_alias, roles, None)
        return Change(KIND, "create", mfa.flow_alias, (roles_field,), desired=build)
    desired = compile_mfa_flow(base, roles)
    alias = choose_alias(mfa.flow_alias, structure_digest(desired), live.flows)
    bound = live.structures.get(live.bound or "", ())
    fields = (*build_fields(base, bound, roles), FieldChange("browserFlow", live.bound, alias))
    note = f"copy of '{BUILT_IN_BROWSER}', bound in place of '{live.bound}' once built"
    return Change(KIND, "create", alias, fields, desired=FlowBuild(alias, mfa.flow_alias, roles, desired), note=note)


def plan_flows(spec: RealmSpec, live: LiveFlows) -> list[Change]:
    """Build (or find) the flow the spec asks for, bind it, then delete the other owned flows.

    `mfa` with no roles and no groups means "no MFA": an owned flow that is bound is replaced by the
    built-in browser flow first. An absent `mfa` is not managed (the engine does not plan this kind).
    """
    owned = [alias for alias in live.owned if alias in live.flows]
    changes: list[Change] = []
    target: str | None = None
    if spec.mfa is not None and mfa_roles(spec.mfa):
        roles = mfa_roles(spec.mfa)
        base = live.structures.get(BUILT_IN_BROWSER)
        desired = compile_mfa_flow(base, roles) if base is not None else None
        matching = sorted(alias for alias in owned if desired is not None and live.structures.get(alias) == desired)
        if live.bound in matching:
            target = live.bound
        elif matching:
            target = matching[0]
            field_change = FieldChange("browserFlow", live.bound, target)
            changes.append(Change(KIND, "update", "browserFlow", (field_change,), desired=Rebind(target)))
        else:
            build = _build_change(spec.mfa, live, roles)
            target = build.desired.alias
            changes.append(build)
    elif live.bound in owned:
        field_change = FieldChange("browserFlow", live.bound, BUILT_IN_BROWSER)
        changes.append(Change(KIND, "update", "browserFlow", (field_change,), desired=Rebind(BUILT_IN_BROWSER)))
    for alias in sorted(owned):
        if alias == target or alias in live.bound_elsewhere:
            continue
        if may_delete(spec.managed.flows, owned=True, protected=False):
            changes.append(Change(KIND, "delete", alias, live=live.flows[alias], note="replaced"))
    ghosts = [alias for alias in live.owned if alias not in live.flows and alias != target]
    if ghosts:
        kept = tuple(alias for alias in live.owned if alias not in ghosts)
        field_change = FieldChange("owned flows", list(live.owned), list(kept))
        changes.append(Change(KIND, "update", "ownership", (field_change,), desired=OwnedRecord(kept)))
    return changes


# -- apply ---------------------------------------------------------------------------------------------


def read_structure(gateway: KeycloakGateway, realm: str, flow_alias: str) -> Structure:
    rows = gateway.flow_executions(realm, flow_alias)
    configs = {row.config_id: gateway.execution_config(realm, row.config_id) or {} for row in rows if row.config_id}
    return parse_structure(rows, configs, flow_alias)


def record_owned(gateway: KeycloakGateway, realm: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
    """Update the realm's list of owned flows from its live value (never from the plan's older copy)."""
    live = gateway.get_realm(realm)
    if live is None:
        raise Rejected(f"realm '{realm}' does not exist")
    attributes = {str(k): str(v) for k, v in (live.representation.get("attributes") or {}).items()}
    current = owned_aliases(attributes)
    dropped = set(remove)
    wanted = [alias for alias in current if alias not in dropped]
    wanted += [alias for alias in add if alias not in wanted]
    if wanted != list(current):
        gateway.set_realm_attributes(realm, {OWNED_FLOWS_ATTRIBUTE: json.dumps(wanted)})


@dataclass(frozen=True)
class FlowBuilder:
    """Appends steps to a fresh copy named `flow_alias`; sub-flows are named `<flow_alias> <name>`."""

    gateway: KeycloakGateway
    realm: str
    flow_alias: str

    def add_step(self, parent: str, step: Step, priority: int) -> None:
        """Append one step (and, for a sub-flow, everything in it) to the flow or sub-flow `parent`."""
        gateway, realm = self.gateway, self.realm
        if step.is_flow:
            execution = gateway.add_flow_subflow(realm, parent, f"{self.flow_alias} {step.name}", priority=priority)
            gateway.set_execution_requirement(realm, parent, execution, step.requirement)
            for index, child in enumerate(step.steps, start=1):
                self.add_step(execution.display_name, child, index * PRIORITY_STEP)
            return
        execution_id = gateway.add_flow_execution(realm, parent, step.provider, priority=priority)
        row = FlowExecution.from_json({"id": execution_id, "providerId": step.provider, "priority": priority})
        gateway.set_execution_requirement(realm, parent, row, step.requirement)
        if step.config:
            alias = f"{parent} {step.provider} {priority}"
            gateway.add_execution_config(realm, execution_id, alias, absolute_config(step.config, self.flow_alias))

    def extend(self, parent: str, nodes: Sequence[Node], steps: Structure) -> None:
        """Append the steps the copy lacks; steps it has are left as copied (compared afterwards)."""
        for index, step in enumerate(steps):
            if index < len(nodes):
                node = nodes[index]
                if step.is_flow and node.row.flow_id:
                    self.extend(node.row.display_name, node.children, step.steps)
                continue
            last = nodes[-1].row.priority if nodes else 0
            self.add_step(parent, step, last + (index - len(nodes) + 1) * PRIORITY_STEP)


def build_flow(gateway: KeycloakGateway, realm: str, build: FlowBuild) -> str:
    """Copy the built-in browser flow, add the OTP sub-flows, check the result; returns its alias.

    Ownership is recorded before the copy exists, so an interrupted build is found and deleted later.
    """
    desired = compile_mfa_flow(read_structure(gateway, realm, BUILT_IN_BROWSER), build.roles)
    if build.steps is not None and desired != build.steps:
        raise Rejected(f"the built-in browser flow of realm '{realm}' changed since the plan; plan again")
    taken = {flow.alias for flow in gateway.list_flows(realm)}
    alias = build.alias or choose_alias(build.base_alias, structure_digest(desired), taken)
    if alias in taken:
        raise Rejected(f"a flow named '{alias}' appeared in realm '{realm}' since the plan; plan again")
    record_owned(gateway, realm, add=[alias])
    gateway.copy_flow(realm, BUILT_IN_BROWSER, alias)
    FlowBuilder(gateway, realm, alias).extend(alias, execution_tree(gateway.flow_executions(realm, alias)), desired)
    if read_structure(gateway, realm, alias) != desired:
        raise Rejected(f"flow '{alias}' in realm '{realm}' came out different from the plan; it stays unbound")
    return alias


def bound_flows(realm: Mapping[str, Any], clients: Iterable[Mapping[str, Any]], ids: Mapping[str, str]) -> set[str]:
    """Aliases of flows bound by the realm (any binding) or overriding a client's flows."""
    aliases = {str(realm.get(binding)) for binding in REALM_FLOW_BINDINGS if realm.get(binding)}
    by_id = {flow_id: alias for alias, flow_id in ids.items()}
    for client in clients:
        for flow_id in (client.get("authenticationFlowBindingOverrides") or {}).values():
            aliases.add(by_id.get(str(flow_id), ""))
    return aliases - {""}


def delete_owned_flow(gateway: KeycloakGateway, realm: str, alias: str) -> None:
    """Delete an owned flow unless anything binds it (Keycloak answers 500 for a bound flow)."""
    flows = {flow.alias: flow.id for flow in gateway.list_flows(realm)}
    if alias in flows:
        live = gateway.get_realm(realm)
        assert live is not None
        clients = [client.representation for client in gateway.list_clients(realm)]
        if alias in bound_flows(live.representation, clients, flows):
            raise Rejected(f"flow '{alias}' in realm '{realm}' is still bound; it is kept")
        gateway.delete_flow(realm, flows[alias])
    record_owned(gateway, realm, remove=[alias])


class Flows:
    """The MFA browser flow (changes to `mfa` are planned here; group grants in `MfaGroups`)."""

    name = KIND

    def read(self, live: LiveReader) -> LiveFlows:
        if not live.realm.exists:
            return LiveFlows(None, {}, (), {})
        gateway, realm = live.gateway, live.name
        flows = {flow.alias: flow.id for flow in gateway.list_flows(realm)}
        bound = live.realm.representation.get("browserFlow")
        owned = owned_aliases(live.realm.attributes)
        wanted = {BUILT_IN_BROWSER, *(alias for alias in owned if alias in flows)}
        if bound in flows:
            wanted.add(str(bound))
        structures = {alias: read_structure(gateway, realm, alias) for alias in sorted(wanted)}
        elsewhere: frozenset[str] = frozenset()
        if any(alias in flows for alias in owned):  # only owned flows are ever deleted: check their bindings
            others = {key: value for key, value in live.realm.representation.items() if key != "browserFlow"}
            clients = [client.representation for client in live.clients.values()]
            elsewhere = frozenset(bound_flows(others, clients, flows))
        return LiveFlows(str(bound) if bound else None, flows, owned, structures, elsewhere)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveFlows) -> list[Change]:
        return plan_flows(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.action == "delete":
            delete_owned_flow(gateway, realm, change.key)
        elif isinstance(change.desired, FlowBuild):
            alias = build_flow(gateway, realm, change.desired)
            gateway.update_realm(realm, {"browserFlow": alias})
        elif isinstance(change.desired, Rebind):
            if change.desired.alias != BUILT_IN_BROWSER and gateway.find_flow(realm, change.desired.alias) is None:
                raise Rejected(f"flow '{change.desired.alias}' vanished from realm '{realm}'; plan again")
            gateway.update_realm(realm, {"browserFlow": change.desired.alias})
        elif isinstance(change.desired, OwnedRecord):
            live = gateway.get_realm(realm)
            assert live is not None
            flows = {flow.alias for flow in gateway.list_flows(realm)}
            ghosts = [a for a in owned_aliases(live.representation.get("attributes") or {}) if a not in flows]
            record_owned(gateway, realm, remove=ghosts)
