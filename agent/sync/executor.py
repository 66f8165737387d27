"""Applies a sync plan through the gateway: joiners in partialImport batches, then each person's steps.

Per person the order is grants, revokes, then the update that records the grant set (so a crash never
records a grant that was not made), then enable or disable. A change Keycloak rejects is recorded and the
run goes on; Keycloak becoming unavailable stops the run, and the next run converges from live state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from agent.errors import Rejected, SourceUnavailable
from agent.keycloak import KeycloakGateway, Role, User
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, GRANTS_ATTRIBUTE, SOURCE_ATTRIBUTE, DesiredUser, Found
from agent.sync.plan import DISABLED_BY_SYNC_ATTRIBUTE, Grants, SyncItem, SyncPlan, desired_grants

IMPORT_BATCH_SIZE = 500
Outcome = Literal["applied", "failed", "skipped"]


@dataclass(frozen=True)
class ItemResult:
    item: SyncItem
    outcome: Outcome
    detail: str = ""
    user_id: str | None = None


@dataclass
class SyncOutcome:
    results: list[ItemResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for result in self.results:
            key = f"{result.item.action}:{result.outcome}"
            totals[key] = totals.get(key, 0) + 1
        return totals

    @property
    def failed(self) -> list[ItemResult]:
        return [result for result in self.results if result.outcome == "failed"]


@dataclass(frozen=True)
class Targets:
    """Grant targets resolved once per run: group ids by path, realm roles, client roles by clientId."""

    group_ids: Mapping[str, str]
    realm_roles: Mapping[str, Role]
    client_roles: Mapping[tuple[str, str], tuple[str, Role]]  # (clientId, role) -> (client uuid, role)


def read_targets(gateway: KeycloakGateway, realm: str, client_ids: Iterable[str]) -> Targets:
    groups = {group.path: group.id for group in gateway.list_groups(realm)}
    realm_roles = {role.name: role for role in gateway.list_realm_roles(realm)}
    client_roles: dict[tuple[str, str], tuple[str, Role]] = {}
    for client_id in sorted(set(client_ids)):
        client = gateway.find_client(realm, client_id)
        if client is not None:
            for role in gateway.list_client_roles(realm, client.id):
                client_roles[(client_id, role.name)] = (client.id, role)
    return Targets(groups, realm_roles, client_roles)


def managed_attributes(desired: DesiredUser, source: str, grants: Grants, names: Iterable[str]) -> dict[str, list[str]]:
    """The attributes the sync owns on a user: copied source attributes and its own bookkeeping."""
    values = {name: list(desired.attributes.get(name, ())) for name in names}
    values.update(
        {EXTERNAL_ID_ATTRIBUTE: [desired.external_id], SOURCE_ATTRIBUTE: [source], GRANTS_ATTRIBUTE: [grants.to_json()]}
    )
    return {name: value for name, value in values.items() if value}


def import_representation(
    desired: DesiredUser, *, source: str, realm: str, enabled: bool, now: datetime,
    attribute_names: Iterable[str], default_actions: Iterable[str],
) -> dict[str, Any]:  # fmt: skip
    grants = desired_grants(desired)
    attributes = managed_attributes(desired, source, grants, attribute_names)
    if not enabled:
        attributes[DISABLED_BY_SYNC_ATTRIBUTE] = [f"not started: created {now.isoformat()}"]
    client_roles: dict[str, list[str]] = {}
    for client_id, role in sorted(desired.client_roles):
        client_roles.setdefault(client_id, []).append(role)
    representation: dict[str, Any] = {
        "username": desired.username.lower(),
        "enabled": enabled,
        "emailVerified": False,
        "attributes": attributes,
        # partialImport gives no default roles and no default required actions: add them here.
        "requiredActions": sorted(set(desired.required_actions) | set(default_actions)),
        "groups": sorted(desired.groups),
        "realmRoles": sorted(desired.realm_roles | {f"default-roles-{realm}"}),
        "clientRoles": client_roles,
    }
    for key, value in (("email", desired.email), ("firstName", desired.first_name), ("lastName", desired.last_name)):
        if value:
            representation[key] = value.lower() if key == "email" else value
    return representation


class SyncExecutor:
    def __init__(
        self,
        gateway: KeycloakGateway,
        plan: SyncPlan,
        *,
        now: datetime,
        attribute_names: tuple[str, ...],
        lookup: Callable[[str], object],
        live_users: Mapping[str, User],
        on_result: Callable[[ItemResult], None] = lambda result: None,
    ) -> None:
        self._gateway = gateway
        self._plan = plan
        self._realm = plan.realm
        self._now = now
        self._attribute_names = attribute_names
        self._lookup = lookup
        self._live = dict(live_users)
        self._on_result = on_result
        self.outcome = SyncOutcome()
        self._targets: Targets | None = None

    def run(self) -> SyncOutcome:
        self._create_joiners(self._plan.of("create"))
        per_person: dict[str, list[SyncItem]] = {}
        for item in self._plan.items:
            if item.action != "create":
                per_person.setdefault(item.external_id, []).append(item)
        for items in per_person.values():
            self._apply_person(items)
        return self.outcome

    def _record(self, item: SyncItem, outcome: Outcome, detail: str = "", user_id: str | None = None) -> None:
        result = ItemResult(item, outcome, detail, user_id or item.user_id)
        self.outcome.results.append(result)
        self._on_result(result)

    @property
    def targets(self) -> Targets:
        if self._targets is None:
            client_ids = {c for item in self._plan.items if item.desired for c, _ in item.desired.client_roles}
            self._targets = read_targets(self._gateway, self._realm, client_ids)
        return self._targets

    # -- joiners --------------------------------------------------------------------------------

    def _create_joiners(self, items: tuple[SyncItem, ...]) -> None:
        default_actions = [
            action.alias
            for action in self._gateway.list_required_actions(self._realm)
            if action.enabled and action.default_action
        ] if items else []  # fmt: skip
        for start in range(0, len(items), IMPORT_BATCH_SIZE):
            batch = items[start : start + IMPORT_BATCH_SIZE]
            representations = []
            for item in batch:
                assert item.desired is not None
                enabled = item.desired.start is None or item.desired.start <= self._now
                representations.append(
                    import_representation(
                        item.desired, source=self._plan.source, realm=self._realm, enabled=enabled, now=self._now,
                        attribute_names=self._attribute_names, default_actions=default_actions,
                    )
                )  # fmt: skip
            try:
                imported = {user.username: user for user in self._gateway.import_users(self._realm, representations)}
            except Rejected as error:
                for item in batch:
                    self._record(item, "failed", f"batch refused by Keycloak: {error}")
                continue
            for item in batch:
                self._settle_import(item, imported.get(item.username))

    def _settle_import(self, item: SyncItem, imported: Any) -> None:
        if imported is None:
            self._record(item, "failed", "not in Keycloak's import answer")
        elif imported.action == "ADDED":
            self._record(item, "applied", "created", imported.id)
        else:
            # SKIPPED: the username exists. Ours (a previous run was cut short) is fine; anyone else's is not.
            existing = self._gateway.get_user(self._realm, imported.id)
            ours = existing is not None and item.external_id in existing.attributes.get(EXTERNAL_ID_ATTRIBUTE, ())
            if ours:
                self._record(item, "applied", "already created by an earlier run", imported.id)
            else:
                self._record(item, "failed", "username already taken by an account the sync does not manage")

    # -- existing people ------------------------------------------------------------------------

    def _apply_person(self, items: list[SyncItem]) -> None:
        order = {"grant": 0, "revoke": 1, "update": 2, "enable": 3, "disable": 4, "confirm-leaver": 5, "delete": 6,
                 "anonymise": 6}  # fmt: skip
        for item in sorted(items, key=lambda step: order[step.action]):
            try:
                self._apply_step(item)
            except Rejected as error:
                self._record(item, "failed", str(error))

    def _apply_step(self, item: SyncItem) -> None:
        assert item.user_id is not None
        if item.action == "grant":
            self._change_grants(item.user_id, item.grants, add=True)
            self._record(item, "applied", ", ".join(item.grants.describe()))
        elif item.action == "revoke":
            self._change_grants(item.user_id, item.grants, add=False)
            self._record(item, "applied", ", ".join(item.grants.describe()))
        elif item.action == "update":
            self._update(item)
        elif item.action == "enable":
            self._enable(item)
        elif item.action == "disable":
            self._disable(item, item.reason)
        elif item.action == "confirm-leaver":
            self._confirm_leaver(item)
        elif item.action == "delete":
            self._gateway.delete_user(self._realm, item.user_id)
            self._record(item, "applied", item.reason)
        elif item.action == "anonymise":
            self._anonymise(item)

    def _change_grants(self, user_id: str, grants: Grants, *, add: bool) -> None:
        targets = self.targets
        for path in sorted(grants.groups):
            group_id = targets.group_ids.get(path)
            if group_id is None:
                raise Rejected(f"group '{path}' does not exist in realm '{self._realm}'")
            if add:
                self._gateway.add_user_to_group(self._realm, user_id, group_id)
            else:
                self._gateway.remove_user_from_group(self._realm, user_id, group_id)
        roles = [targets.realm_roles[name] for name in sorted(grants.realm_roles) if name in targets.realm_roles]
        if len(roles) != len(grants.realm_roles):
            raise Rejected(f"unknown realm role among {sorted(grants.realm_roles)} in realm '{self._realm}'")
        if add:
            self._gateway.add_realm_roles_to_user(self._realm, user_id, roles)
        else:
            self._gateway.remove_realm_roles_from_user(self._realm, user_id, roles)
        for pair in sorted(grants.client_roles):
            client_uuid, role = targets.client_roles[pair]
            if add:
                self._gateway.add_client_roles_to_user(self._realm, user_id, client_uuid, [role])
            else:
                self._gateway.remove_client_roles_from_user(self._realm, user_id, client_uuid, [role])

    def _attributes_with(self, user_id: str, changes: Mapping[str, list[str] | None]) -> dict[str, list[str]]:
        """The user's live attributes with the sync's own changed (None removes one)."""
        live = self._live.get(user_id) or self._gateway.get_user(self._realm, user_id)
        attributes = {key: list(values) for key, values in (live.attributes.items() if live else ())}
        for key, value in changes.items():
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
        return attributes

    def _update(self, item: SyncItem) -> None:
        assert item.user_id is not None and item.desired is not None
        changes: dict[str, Any] = {}
        for name, _, wanted in item.fields:
            if not name.startswith("attributes."):
                changes[name] = wanted
        owned: dict[str, list[str] | None] = dict(
            managed_attributes(item.desired, self._plan.source, desired_grants(item.desired), self._attribute_names)
        )
        for name in self._attribute_names:
            owned.setdefault(name, None)
        changes["attributes"] = self._attributes_with(item.user_id, owned)
        self._gateway.update_user(self._realm, item.user_id, changes)
        self._record(item, "applied", ", ".join(f"{name}: {old} -> {new}" for name, old, new in item.fields))

    def _enable(self, item: SyncItem) -> None:
        assert item.user_id is not None
        if self._gateway.is_locked_out(self._realm, item.user_id):
            # Enabling resets brute-force failures: a locked account is never unlocked by the sync.
            self._record(item, "skipped", "locked by brute-force detection; left as it is")
            return
        attributes = self._attributes_with(item.user_id, {DISABLED_BY_SYNC_ATTRIBUTE: None})
        self._gateway.update_user(self._realm, item.user_id, {"enabled": True, "attributes": attributes})
        self._record(item, "applied", item.reason)

    def _disable(self, item: SyncItem, reason: str) -> None:
        """Disable, end every session, revoke consents and offline tokens (a disable alone leaves them)."""
        assert item.user_id is not None
        marker = {DISABLED_BY_SYNC_ATTRIBUTE: [f"left {self._now.isoformat()}: {reason}"]}
        attributes = self._attributes_with(item.user_id, marker)
        self._gateway.update_user(self._realm, item.user_id, {"enabled": False, "attributes": attributes})
        self._gateway.logout_user(self._realm, item.user_id)
        for client_id in self._gateway.list_consents(self._realm, item.user_id):
            self._gateway.revoke_consent(self._realm, item.user_id, client_id)
        self._record(item, "applied", reason)

    def _anonymise(self, item: SyncItem) -> None:
        """Wipe personal data and the link to the source id: a later rehire gets a new account."""
        assert item.user_id is not None
        wiped: dict[str, Any] = {
            "username": f"anonymised-{item.user_id}",
            "email": None,
            "firstName": None,
            "lastName": None,
            "attributes": {},
            "enabled": False,
        }
        self._gateway.update_user(self._realm, item.user_id, wiped)
        self._record(item, "applied", item.reason)

    def _confirm_leaver(self, item: SyncItem) -> None:
        try:
            answer = self._lookup(item.external_id)
        except SourceUnavailable as error:
            self._record(item, "failed", f"not confirmed, left enabled: {error}")
            return
        if isinstance(answer, Found):
            self._record(item, "skipped", "still in the source (left out of the listing: a scope or filter change?)")
            return
        self._disable(item, "left: absent from the source, confirmed by an exact lookup")
