"""What the sync sends Keycloak for a user it owns: the attributes it manages (source attributes and its own
bookkeeping) and a joiner's representation for partialImport. Pure: no calls."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from agent.keycloak.models import RequiredAction
from agent.sync.grants import GrantRecord
from agent.sync.model import (
    DISABLED_BY_SYNC_ATTRIBUTE,
    EXTERNAL_ID_ATTRIBUTE,
    GRANTS_ATTRIBUTE,
    SOURCE_ATTRIBUTE,
    DesiredUser,
)
from agent.sync.plan import NOT_STARTED_MARK, desired_grants


def managed_attributes(
    desired: DesiredUser, source: str, record: GrantRecord, names: Iterable[str]
) -> dict[str, list[str]]:
    """The attributes the sync owns on a user: copied source attributes and its own bookkeeping."""
    values = {name: list(desired.attributes.get(name, ())) for name in names}
    values.update(
        {EXTERNAL_ID_ATTRIBUTE: [desired.external_id], SOURCE_ATTRIBUTE: [source], GRANTS_ATTRIBUTE: [record.to_json()]}
    )
    return {name: value for name, value in values.items() if value}


def default_action_aliases(actions: Iterable[RequiredAction]) -> tuple[str, ...]:
    """The required actions a realm gives each new user (partialImport does not: the sync adds them)."""
    return tuple(action.alias for action in actions if action.enabled and action.default_action)


def import_representation(
    desired: DesiredUser, *, source: str, default_role: str, enabled: bool, now: datetime,
    attribute_names: Iterable[str], default_actions: Iterable[str],
) -> dict[str, Any]:  # fmt: skip
    # A joiner's grants are all the sync's: it creates the account with them.
    attributes = managed_attributes(desired, source, GrantRecord(desired_grants(desired)), attribute_names)
    if not enabled:
        attributes[DISABLED_BY_SYNC_ATTRIBUTE] = [f"{NOT_STARTED_MARK}: created {now.isoformat()}"]
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
        "realmRoles": sorted(desired.realm_roles | {default_role}),
        "clientRoles": client_roles,
    }
    for key, value in (("email", desired.email), ("firstName", desired.first_name), ("lastName", desired.last_name)):
        if value:
            representation[key] = value.lower() if key == "email" else value
    return representation
