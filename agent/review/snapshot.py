"""Taking a snapshot: read a realm's access in about R + G + N/page requests, never per user.

One partial export (roles with composites, the group tree with its grants, clients, service accounts), the
full user listing in big pages (it carries totp, required actions, attributes, created time, federation
link), then the direct members of every role and every group, paged. Inheritance and composites are
expanded in `access.py`. Only privileged accounts without OTP get one more read each (their WebAuthn
credentials), so the count grows with privileged accounts, not with users. Last logins, sanctions and
appeals come from the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from agent.keycloak.gateway import KeycloakGateway
from agent.keycloak.models import AccessExport, ExportedRole, User
from agent.review.access import expand_access, expand_composites
from agent.review.findings import privileged_grants
from agent.review.model import (
    AppealSummary,
    GroupRecord,
    RoleRecord,
    RoleRef,
    SanctionSummary,
    Snapshot,
    SnapshotStats,
    UserRecord,
)
from agent.review.policy import ReviewPolicy
from agent.store import Store
from agent.store.clock import Clock, system_clock
from agent.store.logins import from_epoch_ms

# Big pages: each page costs a round trip and Keycloak's per-request overhead; 1000 users of full
# representation stay well under a megabyte.
SNAPSHOT_PAGE_SIZE = 1000


def take_snapshot(
    gateway: KeycloakGateway,
    store: Store | None,
    realm: str,
    *,
    policy: ReviewPolicy | None = None,
    clock: Clock = system_clock,
    page_size: int = SNAPSHOT_PAGE_SIZE,
    source_external_ids: frozenset[str] | None = None,
) -> Snapshot:
    """Read `realm` into a Snapshot. `policy` says who is privileged (whose WebAuthn credentials are read;
    default: ReviewPolicy()); `store` gives last logins, sanctions and appeals (None: none known)."""
    started = time.monotonic()
    requests_before = gateway.stats.requests
    taken_at = clock()
    exported = gateway.export_access(realm)
    users = [user_record(user) for user in gateway.list_users(realm, brief=False, page_size=page_size)]
    user_pages = len(users) // page_size + 1  # paging stops at the first short (possibly empty) page
    users.extend(user_record(account.user) for account in exported.service_accounts)
    known = {user.id for user in users}

    roles = expand_composites(role_records(exported))
    user_roles = direct_role_members(gateway, realm, exported, known, page_size)
    groups = tuple(
        replace(group, member_ids=frozenset(gateway.group_member_ids(realm, group.id, page_size=page_size)) & known)
        for group in group_records(exported)
    )
    access = expand_access(known, roles, groups, user_roles)

    chosen_policy = policy or ReviewPolicy()
    credential_reads = 0
    with_credentials: list[UserRecord] = []
    for user in users:
        if needs_credential_read(user) and privileged_grants(access[user.id], chosen_policy):
            credential_reads += 1
            with_credentials.append(replace(user, credential_types=gateway.user_credential_types(realm, user.id)))
        else:
            with_credentials.append(user)

    ledger = read_ledger(store, realm)
    logins = getattr(store, "logins", None) if store is not None else None
    return Snapshot(
        taken_at=taken_at,
        realm=realm,
        users=tuple(sorted(with_credentials, key=lambda user: user.username)),
        roles=tuple(sorted(roles, key=lambda role: role.ref)),
        groups=tuple(sorted(groups, key=lambda group: group.path)),
        access=MappingProxyType(access),
        last_login=MappingProxyType(logins.last_logins(realm) if logins is not None else {}),
        logins_known_since=logins.known_since(realm) if logins is not None else None,
        sanctions=ledger[0],
        appeals=ledger[1],
        ledger_read=ledger[2],
        source_external_ids=source_external_ids,
        stats=SnapshotStats(
            requests=gateway.stats.requests - requests_before,
            seconds=time.monotonic() - started,
            user_pages=user_pages,
            credential_reads=credential_reads,
        ),
    )


def needs_credential_read(user: UserRecord) -> bool:
    """Enabled people without OTP: only their credentials can show WebAuthn (service accounts have none)."""
    return user.enabled and not user.totp and not user.is_service_account


# -- Keycloak values -> snapshot values (pure) ------------------------------------------------------


def user_record(user: User) -> UserRecord:
    return UserRecord(
        id=user.id,
        username=user.username,
        enabled=user.enabled,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        created=from_epoch_ms(user.created_timestamp) if user.created_timestamp else None,
        totp=bool(user.totp),
        attributes=user.attributes,
        service_account_client=user.service_account_client_id,
        federation_link=user.federation_link,
        required_actions=user.required_actions,
    )


def role_ref(exported: ExportedRole) -> RoleRef:
    return RoleRef(exported.role.name, exported.client)


def role_records(exported: AccessExport) -> list[RoleRecord]:
    """Every realm and client role with its direct composites (not yet expanded)."""
    records = []
    for item in exported.roles:
        composites = {RoleRef(name) for name in item.composite_realm_roles}
        composites.update(
            RoleRef(name, client) for client, names in item.composite_client_roles.items() for name in names
        )
        records.append(
            RoleRecord(
                ref=role_ref(item),
                id=item.role.id,
                description=item.role.description,
                composites=frozenset(composites),
                attributes=item.role.attributes,
            )
        )
    return records


def group_records(exported: AccessExport) -> list[GroupRecord]:
    """The group tree with each group's direct role grants (members are read separately)."""
    paths = {group.id: group.path for group in exported.groups}
    records = []
    for group in exported.groups:
        roles = {RoleRef(name) for name in group.realm_roles}
        roles.update(RoleRef(name, client) for client, names in group.client_roles.items() for name in names)
        records.append(
            GroupRecord(
                id=group.id,
                name=group.name,
                path=group.path,
                parent_id=group.parent_id,
                parent_path=paths.get(group.parent_id) if group.parent_id else None,
                attributes=group.attributes,
                roles=frozenset(roles),
            )
        )
    return records


def direct_role_members(
    gateway: KeycloakGateway, realm: str, exported: AccessExport, known: set[str], page_size: int
) -> dict[str, set[RoleRef]]:
    """User id -> roles mapped on the user directly: one paged listing per role, plus what the export says
    about service accounts."""
    client_ids = {client.client_id: client.id for client in exported.clients}
    mapped: dict[str, set[RoleRef]] = {}
    for item in exported.roles:
        ref = role_ref(item)
        client_uuid = client_ids.get(item.client) if item.client is not None else None
        if item.client is not None and client_uuid is None:
            continue  # a client the export did not list: nothing to ask
        for user_id in gateway.role_member_ids(realm, item.role.name, client_uuid=client_uuid, page_size=page_size):
            if user_id in known:
                mapped.setdefault(user_id, set()).add(ref)
    for account in exported.service_accounts:
        refs = mapped.setdefault(account.user.id, set())
        refs.update(RoleRef(name) for name in account.realm_roles)
        refs.update(RoleRef(name, client) for client, names in account.client_roles.items() for name in names)
    return mapped


# -- the ledger, read defensively (the sanctions and appeals stores may be absent) ------------------


def read_ledger(store: Store | None, realm: str) -> tuple[tuple[SanctionSummary, ...], tuple[AppealSummary, ...], bool]:
    """Sanctions and appeals of `realm`, and whether a ledger was there to read."""
    sanctions_area = getattr(store, "sanctions", None)
    if store is None or sanctions_area is None:
        return (), (), False
    sanctions = tuple(sanction_summary(item) for item in sanctions_area.list(realm=realm))
    user_of = {sanction.id: sanction.user_id for sanction in sanctions}
    appeals_area = getattr(store, "appeals", None)
    raw_appeals: Iterable[Any] = appeals_area.list(realm=realm) if appeals_area is not None else ()
    appeals = tuple(appeal_summary(item, user_of) for item in raw_appeals)
    return sanctions, appeals, True


def sanction_summary(raw: Any) -> SanctionSummary:
    return SanctionSummary(
        id=str(raw.id),
        user_id=str(raw.user_id),
        level=str(raw.level),
        state=str(raw.state),
        started_at=_optional_time(getattr(raw, "issued_at", None)),
        until=_optional_time(getattr(raw, "until", None)),
        reason_code=getattr(raw, "reason_code", None),
    )


def appeal_summary(raw: Any, user_of: Mapping[str, str]) -> AppealSummary:
    sanction_id = str(raw.sanction_id)
    return AppealSummary(
        id=str(raw.id),
        sanction_id=sanction_id,
        user_id=str(getattr(raw, "user_id", None) or user_of.get(sanction_id, "")),
        state=str(getattr(raw, "status", None) or getattr(raw, "state", "")),
        opened_at=raw.opened_at,
        acknowledged_at=_optional_time(getattr(raw, "acknowledged_at", None)),
        decided_at=_optional_time(getattr(raw, "decided_at", None)),
        acknowledge_due=_optional_time(getattr(raw, "acknowledge_due", None)),
        decide_due=_optional_time(getattr(raw, "decide_due", None)),
    )


def _optional_time(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
