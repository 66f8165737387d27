"""Taking a snapshot: read a realm's access in about R + G + N/page requests, never per user.

One partial export (roles with composites, the group tree with its grants, clients, service accounts), the
full user listing in big pages (it carries totp, required actions, attributes, created time, federation
link; read again when the realm changed while it was read, see settled_listing), then the direct members of
every role and every group, paged (a listing longer than a page read again until two readings agree).
Inheritance and composites are expanded in `access.py`. Only privileged accounts without OTP get one more
read each (their WebAuthn credentials), so the count grows with privileged accounts, not with users. The reads
after the export are independent and run a few at a time. Last logins, sanctions and appeals come from the store.

Where the idp-agent plugin is installed in Keycloak (`plugins/keycloak`, part of the local stack's build), the
user listing, the member listings and the credential reads are a few requests instead (the members in one,
the users in pages of thousands): its endpoints answer them from a few database queries. A Keycloak without
it, a realm with user federation or an account the plugin refuses reads through the admin API as above, with
the same result.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from agent.collector import fewer_collections
from agent.keycloak.gateway import KeycloakGateway
from agent.keycloak.models import User, stored_by_keycloak
from agent.keycloak.review_models import AccessExport, ExportedRole, PluginAccess
from agent.review.access import beyond_baseline, expand_access, expand_composites
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

DefaultRoleMembers = Literal["auto", "always"]
# Big pages: each page costs a round trip and Keycloak's per-request overhead; 1000 users of full
# representation stay well under a megabyte.
SNAPSHOT_PAGE_SIZE = 1000
# Reads in flight at once: Keycloak answers several while one is being parsed here; more than a few only
# queue up on a small server (see benchmarks/review_bench.py).
SNAPSHOT_WORKERS = 4
# Readings of the user listing, or of a member listing longer than a page, at most (see settled_listing and
# settled_members): one still changing after that many is taken as the union of them.
MAX_LISTING_PASSES = 3


@fewer_collections()
def take_snapshot(
    gateway: KeycloakGateway,
    store: Store | None,
    realm: str,
    *,
    policy: ReviewPolicy | None = None,
    clock: Clock = system_clock,
    page_size: int = SNAPSHOT_PAGE_SIZE,
    workers: int = SNAPSHOT_WORKERS,
    source_external_ids: frozenset[str] | None = None,
    source_leaver_ids: frozenset[str] | None = None,
    default_role_members: DefaultRoleMembers = "auto",
    use_plugin: bool = True,
) -> Snapshot:
    """Read `realm` into a Snapshot. `policy` says who is privileged (whose WebAuthn credentials are read;
    default: ReviewPolicy()); `store` gives last logins, sanctions and appeals (None: none known). Up to
    `workers` reads run at once (the gateway's transport is shared between threads); 1 reads one by one.
    `source_external_ids`/`source_leaver_ids` (see `sources.read_source_ids`) feed the orphan and leaver
    findings; None: the sources were not read. `default_role_members`: "auto" lists the default role's members
    only when it grants more than the baseline (see Snapshot.default_role), "always" lists them anyway.
    `use_plugin`: ask the idp-agent plugin for users and members first (see `ReviewCalls.plugin_access`), and for
    roles, groups and clients when the account may not export them; False, or a Keycloak without it, reads through
    the admin API."""
    started = time.monotonic()
    requests_before = gateway.stats.requests
    taken_at = clock()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="snapshot") as pool:
        # The plugin's users do not depend on the roles: they are read while the roles and groups are.
        plugin_users = pool.submit(plugin_user_list, gateway, realm) if use_plugin else None
        exported = gateway.export_access(realm, use_plugin=use_plugin)
        roles = expand_composites(role_records(exported))
        default_role = RoleRef(exported.default_role) if exported.default_role else None
        read_default = default_role_members == "always" or needs_default_role_members(default_role, roles)
        skipped: frozenset[RoleRef] = frozenset() if read_default or default_role is None else frozenset({default_role})
        by_plugin = (
            gateway.plugin_access(realm, skip_role_ids=role_ids(exported, skipped), users=plugin_users.result())
            if plugin_users is not None
            else None
        )
        if by_plugin is not None:
            read = plugin_read(by_plugin, exported)
        else:
            read = admin_api_read(gateway, realm, exported, page_size, pool, skipped=skipped)
        users = read.users
        known = {user.id for user in users}
        user_roles = add_service_account_roles(
            {user_id: refs for user_id, refs in read.user_roles.items() if user_id in known}, exported
        )
        groups = tuple(
            replace(group, member_ids=read.group_members.get(group.id, frozenset()) & known)
            for group in group_records(exported)
        )
        access = expand_access(known, roles, groups, user_roles)

        chosen_policy = policy or ReviewPolicy()
        to_read = [u for u in users if needs_credential_read(u) and privileged_grants(access[u.id], chosen_policy)]
        credentials = dict(
            zip(
                (user.id for user in to_read),
                pool.map(lambda user: gateway.user_credential_types(realm, user.id), to_read),
                strict=True,
            )
        )
    with_credentials = [
        replace(user, credential_types=credentials[user.id]) if user.id in credentials else user for user in users
    ]
    credential_reads = len(credentials)

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
        source_leaver_ids=source_leaver_ids,
        default_role=default_role,
        default_role_members_read=read_default,
        stats=SnapshotStats(
            requests=gateway.stats.requests - requests_before,
            seconds=time.monotonic() - started,
            user_pages=read.user_pages,
            credential_reads=credential_reads,
            via_plugin=by_plugin is not None,
        ),
    )


def needs_default_role_members(default_role: RoleRef | None, roles: Iterable[RoleRecord]) -> bool:
    """Whether the default role's members must be listed: only when it (or a composite in it) grants more
    than the baseline. Keycloak gives it to every user it creates, so the listing is as long as the realm."""
    record = next((role for role in roles if role.ref == default_role), None)
    return record is not None and bool(beyond_baseline(record.expanded))


def plugin_user_list(gateway: KeycloakGateway, realm: str) -> list[Mapping[str, Any]] | None:
    """Every user from the idp-agent plugin, all pages read; None where it does not answer."""
    pages = gateway.plugin_raw_users(realm)
    return None if pages is None else list(pages)


def needs_credential_read(user: UserRecord) -> bool:
    """Enabled people without OTP whose credentials are not known yet: only those can show WebAuthn (service
    accounts have none)."""
    return user.credential_types is None and user.enabled and not user.totp and not user.is_service_account


# -- Keycloak values -> snapshot values (pure) ------------------------------------------------------


def user_record(user: User, credential_types: frozenset[str] | None = None) -> UserRecord:
    """`credential_types`: None where they were not read (see needs_credential_read)."""
    return UserRecord(
        id=user.id,
        username=user.username,
        enabled=user.enabled,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        created=created_at(user),
        totp=bool(user.totp),
        attributes=user.attributes,
        service_account_client=user.service_account_client_id,
        federation_link=user.federation_link,
        required_actions=user.required_actions,
        credential_types=credential_types,
    )


# LDAP's GeneralizedTime as directories write createTimestamp: 20261201034020Z, or with a fraction (Active
# Directory: 20261201034020.0Z); a time without Z or an offset is not taken.
GENERALIZED_TIME = re.compile(r"(\d{14})(?:[.,]\d+)?Z")


def created_at(user: User) -> datetime | None:
    """When the account was made. A user Keycloak does not store gets the time it was read as its creation, which
    would make every such account new at every review; the directory's `createTimestamp` (Keycloak's default
    "creation date" mapper) says when it was made, else None."""
    if not stored_by_keycloak(user.id):
        values = user.attributes.get("createTimestamp", ())
        found = GENERALIZED_TIME.fullmatch(values[0]) if values else None
        return datetime.strptime(found.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC) if found else None
    return from_epoch_ms(user.created_timestamp) if user.created_timestamp else None


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


@dataclass(frozen=True)
class ReadAccess:
    """Who is in the realm and what each holds directly, however it was read: every user (people and service
    accounts), direct role mappings by user id, direct members by group id."""

    users: list[UserRecord]
    user_roles: dict[str, set[RoleRef]]
    group_members: dict[str, frozenset[str]]
    user_pages: int = 0


def role_ids(exported: AccessExport, refs: frozenset[RoleRef]) -> list[str]:
    return [item.role.id for item in exported.roles if role_ref(item) in refs]


def plugin_read(found: PluginAccess, exported: AccessExport) -> ReadAccess:
    """The plugin's answer in snapshot values: role ids become the export's role references (a role made after
    the export is not in it and is left out, as the admin API path would), credentials are known for all."""
    refs = {item.role.id: role_ref(item) for item in exported.roles}
    users = [user_record(user, found.credential_types.get(user.id, frozenset())) for user in found.users]
    users.extend(user_record(account.user) for account in exported.service_accounts)
    mapped: dict[str, set[RoleRef]] = {}
    for role_id, members in found.role_members.items():
        ref = refs.get(role_id)
        if ref is not None:
            for user_id in members:
                mapped.setdefault(user_id, set()).add(ref)
    groups = {group_id: frozenset(members) for group_id, members in found.group_members.items()}
    return ReadAccess(users, mapped, groups)


def admin_api_read(
    gateway: KeycloakGateway,
    realm: str,
    exported: AccessExport,
    page_size: int,
    pool: Executor,
    *,
    skipped: frozenset[RoleRef],
) -> ReadAccess:
    """Users in full pages, then one member listing per role (but those `skipped`) and per group, all at once:
    everything here depends only on the export."""
    counted = gateway.count_users(realm)
    pages = submit_user_pages(gateway, realm, counted, page_size, pool)
    members = submit_members(gateway, realm, exported, page_size, pool, skip=skipped)
    first = collect_user_pages(pages, gateway, realm, page_size)
    listed, user_pages = settled_listing(gateway, realm, counted, first, page_size=page_size, pool=pool)
    users = [user_record(user) for user in listed]
    users.extend(user_record(account.user) for account in exported.service_accounts)
    user_roles, group_members = members.collect()
    return ReadAccess(users, user_roles, group_members, user_pages)


def submit_user_pages(
    gateway: KeycloakGateway, realm: str, counted: int, page_size: int, pool: Executor
) -> list[Future[list[User]]]:
    """The pages of the full user listing that Keycloak's count predicts (the last one short or empty)."""
    return [
        pool.submit(gateway.list_users_page, realm, first=first, max_results=page_size, brief=False)
        for first in range(0, counted + 1, page_size)
    ]


def settled_listing(
    gateway: KeycloakGateway, realm: str, counted: int, first: tuple[list[User], int], *, page_size: int, pool: Executor
) -> tuple[list[User], int]:
    """The users of a reading of the listing during which the realm did not change, and the pages read in all.

    The admin API pages its listing by offset in username order: a user deleted or renamed while the pages are
    read shifts the others, and someone on a page boundary is then on no page read, absent from the review. A
    reading is whole when it held still (see `reading_is_whole`); otherwise the listing is read again, up to
    MAX_LISTING_PASSES readings. A realm that keeps changing (people registering all the while) is read as the
    union of the readings: someone present throughout is then missed only if a shift hid them in every one."""
    readings = [first]
    while True:
        listed, _ = readings[-1]
        after = gateway.count_users(realm)
        previous = readings[-2][0] if len(readings) > 1 else None
        if reading_is_whole(listed, previous, counted=counted, after=after):
            return listed, sum(pages for _, pages in readings)
        if len(readings) == MAX_LISTING_PASSES:
            union = {user.id: user for users, _ in readings for user in users}
            return list(union.values()), sum(pages for _, pages in readings)
        counted = after
        readings.append(
            collect_user_pages(submit_user_pages(gateway, realm, counted, page_size, pool), gateway, realm, page_size)
        )


def reading_is_whole(listed: list[User], previous: list[User] | None, *, counted: int, after: int) -> bool:
    """Whether a reading of the user listing missed nobody: Keycloak counted the same before and after it, and
    the reading holds that many users, or the same users as the reading before it. Keycloak's count leaves out
    the users of a federation that does not import them (an LDAP federation with import off: count 0, listing
    everyone), so for such a realm the count never matches and two agreeing readings are what shows it held
    still."""
    if counted != after:
        return False
    if len(listed) == counted:
        return True
    return previous is not None and {user.id for user in listed} == {user.id for user in previous}


def collect_user_pages(
    pages: list[Future[list[User]]], gateway: KeycloakGateway, realm: str, page_size: int
) -> tuple[list[User], int]:
    """Every user and the number of pages read: while the last page comes back full (users were added since
    the count) the next is read. A user seen on two pages (the listing shifted) is kept once."""
    listed = [future.result() for future in pages]
    while len(listed[-1]) == page_size:
        listed.append(gateway.list_users_page(realm, first=len(listed) * page_size, max_results=page_size, brief=False))
    unique = {user.id: user for page in listed for user in page}
    return list(unique.values()), len(listed)


@dataclass(frozen=True)
class MemberReads:
    """Direct-member listings in flight: one per role, one per group."""

    roles: tuple[tuple[RoleRef, Future[list[str]]], ...]
    groups: tuple[tuple[str, Future[list[str]]], ...]

    def collect(self) -> tuple[dict[str, set[RoleRef]], dict[str, frozenset[str]]]:
        """User id -> roles mapped on the user, and group id -> direct member ids."""
        mapped: dict[str, set[RoleRef]] = {}
        for ref, future in self.roles:
            for user_id in future.result():
                mapped.setdefault(user_id, set()).add(ref)
        return mapped, {group_id: frozenset(future.result()) for group_id, future in self.groups}


def submit_members(
    gateway: KeycloakGateway,
    realm: str,
    exported: AccessExport,
    page_size: int,
    pool: Executor,
    *,
    skip: frozenset[RoleRef] = frozenset(),
) -> MemberReads:
    """Start one paged listing of direct members per role (realm and client, but not those in `skip`) and
    per group."""

    def role_members(name: str, client_uuid: str | None) -> list[str]:
        return settled_members(
            lambda: list(gateway.role_member_ids(realm, name, client_uuid=client_uuid, page_size=page_size)), page_size
        )

    def group_members(group_id: str) -> list[str]:
        return settled_members(lambda: list(gateway.group_member_ids(realm, group_id, page_size=page_size)), page_size)

    client_ids = {client.client_id: client.id for client in exported.clients}
    roles = []
    for item in exported.roles:
        client_uuid = client_ids.get(item.client) if item.client is not None else None
        if (item.client is not None and client_uuid is None) or role_ref(item) in skip:
            continue  # a client the export did not list (nothing to ask), or a role not to list
        roles.append((role_ref(item), pool.submit(role_members, item.role.name, client_uuid)))
    groups = tuple((group.id, pool.submit(group_members, group.id)) for group in exported.groups)
    return MemberReads(tuple(roles), groups)


def settled_members(read: Callable[[], list[str]], page_size: int) -> list[str]:
    """A direct-member listing (`read` reads it whole), paged by offset as the user listing is: a member removed
    between two of its pages shifts the rest, and the member on the boundary is then on neither. One page is one
    query, whole; a longer listing is read again until two readings agree (at most MAX_LISTING_PASSES readings),
    else taken as their union."""
    readings = [read()]
    if len(readings[0]) < page_size:
        return readings[0]
    while len(readings) < MAX_LISTING_PASSES:
        readings.append(read())
        if set(readings[-1]) == set(readings[-2]):
            return readings[-1]
    return list(dict.fromkeys(member for reading in readings for member in reading))


def add_service_account_roles(mapped: dict[str, set[RoleRef]], exported: AccessExport) -> dict[str, set[RoleRef]]:
    """The export's own list of service accounts' roles, added to what the role listings said."""
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
