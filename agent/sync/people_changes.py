"""One person's steps (grants, revokes, update, disable) as one change, so that many people's changes go to
Keycloak in one request of the idp-agent plugin (`users/changes`, one transaction) instead of a PUT of the whole
representation per step, a request per group and role mapping, a logout and a consent listing per leaver.

The grant targets (group ids, roles) are resolved here for both ways of writing: the plugin's and the admin
API's, so both refuse an unknown group or role with the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from agent.errors import Rejected
from agent.keycloak import KeycloakGateway, Role
from agent.keycloak.models import RealmOutline, UserChange
from agent.sync.grants import Grants
from agent.sync.plan import SyncItem

# Steps that can be part of one change. Enabling reads the brute-force state first (a locked account is
# never unlocked by the sync); deleting and anonymising are rare: people with those take the admin API.
CHANGE_ACTIONS = frozenset({"grant", "revoke", "update", "disable", "confirm-leaver", "mark-left"})
# People per request: one Keycloak transaction each, a few in flight at once (the executor's WORKERS), so a run's
# changes spread over the workers. Before the plugin wrote in Keycloak's batch mode, a request's cost per person
# grew with its size (400 group moves: 1.6-2.2 s in requests of 100, 0.4-0.7 s of 20); since then requests of
# 20 and of 100 cost about the same per person (measured for commit ce9f149).
PEOPLE_PER_REQUEST = 20

Unit = TypeVar("Unit")


@dataclass(frozen=True)
class Targets:
    """Grant targets resolved once per run: group ids by path, realm roles, client roles by clientId."""

    group_ids: Mapping[str, str]
    realm_roles: Mapping[str, Role]
    client_roles: Mapping[tuple[str, str], tuple[str, Role]]  # (clientId, role) -> (client uuid, role)
    clients_read: frozenset[str] = frozenset()  # clientIds whose roles were read (found or not)


def read_targets(gateway: KeycloakGateway, realm: str, client_ids: Iterable[str]) -> Targets:
    return with_client_roles(gateway, realm, read_realm_targets(gateway, realm), client_ids)


def read_realm_targets(gateway: KeycloakGateway, realm: str) -> Targets:
    """The realm's groups and realm roles (no client roles)."""
    return realm_targets(gateway.read_realm_outline(realm))


def realm_targets(outline: RealmOutline) -> Targets:
    """The realm's groups and realm roles (no client roles) as an outline of it gives them."""
    groups = {group.path: group.id for group in outline.groups}
    return Targets(groups, {role.name: role for role in outline.realm_roles}, {})


def with_client_roles(gateway: KeycloakGateway, realm: str, targets: Targets, client_ids: Iterable[str]) -> Targets:
    """`targets` with the roles of these clients (by clientId) added."""
    client_roles: dict[tuple[str, str], tuple[str, Role]] = dict(targets.client_roles)
    for client_id in sorted(set(client_ids)):
        client = gateway.find_client(realm, client_id)
        if client is not None:
            for role in gateway.list_client_roles(realm, client.id):
                client_roles[(client_id, role.name)] = (client.id, role)
    return replace(targets, client_roles=client_roles, clients_read=targets.clients_read | frozenset(client_ids))


@dataclass(frozen=True)
class ResolvedGrants:
    group_ids: tuple[str, ...]
    realm_roles: tuple[Role, ...]
    client_roles: tuple[tuple[str, Role], ...]  # (client uuid, role)


def resolve_grants(targets: Targets, grants: Grants, realm: str) -> ResolvedGrants:
    """The groups and roles `grants` names, as Keycloak knows them; Rejected when one does not exist."""
    group_ids = []
    for path in sorted(grants.groups):
        group_id = targets.group_ids.get(path)
        if group_id is None:
            raise Rejected(f"group '{path}' does not exist in realm '{realm}'")
        group_ids.append(group_id)
    roles = [targets.realm_roles[name] for name in sorted(grants.realm_roles) if name in targets.realm_roles]
    if len(roles) != len(grants.realm_roles):
        raise Rejected(f"unknown realm role among {sorted(grants.realm_roles)} in realm '{realm}'")
    missing = sorted(pair for pair in grants.client_roles if pair not in targets.client_roles)
    if missing:
        raise Rejected(
            f"unknown client role among {[f'{client}/{role}' for client, role in missing]} in realm '{realm}'"
        )
    client_roles = [targets.client_roles[pair] for pair in sorted(grants.client_roles)]
    return ResolvedGrants(tuple(group_ids), tuple(roles), tuple(client_roles))


def still_existing(targets: Targets, grants: Grants) -> Grants:
    """The part of `grants` the realm still has: what a revoke can remove (a deleted group has no members, a
    deleted role no holders), so a revoke of what is gone is done, not refused at every run."""
    return Grants(
        frozenset(path for path in grants.groups if path in targets.group_ids),
        frozenset(name for name in grants.realm_roles if name in targets.realm_roles),
        # A client whose roles were not read is not known to be gone: kept, so that resolving it says so.
        frozenset(
            pair for pair in grants.client_roles if pair in targets.client_roles or pair[0] not in targets.clients_read
        ),
    )


@dataclass
class ChangeBuilder:
    """One person's change, step by step: a later step's fields and attributes win over an earlier one's, as
    they would if each step were written in turn."""

    user_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, list[str] | None] = field(default_factory=dict)
    joins: list[str] = field(default_factory=list)
    leaves: list[str] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)
    revokes: list[str] = field(default_factory=list)
    client_grants: list[tuple[str, str]] = field(default_factory=list)
    client_revokes: list[tuple[str, str]] = field(default_factory=list)
    end_sessions: bool = False

    def change_grants(self, resolved: ResolvedGrants, *, add: bool) -> None:
        (self.joins if add else self.leaves).extend(resolved.group_ids)
        (self.grants if add else self.revokes).extend(role.name for role in resolved.realm_roles)
        pairs = [(client, role.name) for client, role in resolved.client_roles]
        (self.client_grants if add else self.client_revokes).extend(pairs)

    def set(self, fields: Mapping[str, Any], attributes: Mapping[str, list[str] | None]) -> None:
        self.fields.update(fields)
        self.attributes.update(attributes)

    @property
    def empty(self) -> bool:
        return not (
            self.fields or self.attributes or self.joins or self.leaves or self.grants or self.revokes
            or self.client_grants or self.client_revokes or self.end_sessions
        )  # fmt: skip

    def build(self) -> UserChange:
        return UserChange(
            self.user_id,
            dict(self.fields),
            dict(self.attributes),
            tuple(self.joins),
            tuple(self.leaves),
            tuple(self.grants),
            tuple(self.revokes),
            tuple(self.client_grants),
            tuple(self.client_revokes),
            self.end_sessions,
        )


def split_people(people: Iterable[list[SyncItem]]) -> tuple[list[list[SyncItem]], list[list[SyncItem]]]:
    """People whose steps can all be one change, and the others."""
    together: list[list[SyncItem]] = []
    alone: list[list[SyncItem]] = []
    for steps in people:
        (together if all(step.action in CHANGE_ACTIONS for step in steps) else alone).append(steps)
    return together, alone


def in_groups(units: Sequence[Unit], size: int) -> Iterator[list[Unit]]:
    for start in range(0, len(units), size):
        yield list(units[start : start + size])
