"""One sync run, end to end: read sources, map, read Keycloak, plan, check the brakes, apply, journal.

The CLI (`idp-agent sync ...`) and the daemon both call these functions. Planning makes no write; a run
that the brakes stop or stage applies nothing; `approve_staged` applies exactly a staged removal set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from agent.collector import fewer_collections
from agent.errors import ConfigError, Interrupted, SourceUnavailable
from agent.keycloak import KeycloakGateway, User
from agent.sanctions.policy import SanctionPolicy
from agent.sanctions.service import access_held, sanctioned_user_ids
from agent.store.db import Store
from agent.store.journal import NewEntry
from agent.store.runs import ItemAction, NewItem, Run, RunStatus
from agent.store.staging import RemovalAction, StagedRemoval, StagedSet
from agent.store.sync_records import SyncRecords
from agent.sync.agent_config import AgentConfig, SyncSpec
from agent.sync.config_files import SyncFiles, load_sync_files
from agent.sync.executor import SyncExecutor
from agent.sync.found_held import settle_found_held
from agent.sync.grants import Grants
from agent.sync.guard import Verdict, check_safety
from agent.sync.leavers import LeaverLookup, listed_controls
from agent.sync.live import check_profile_keeps_attributes
from agent.sync.mapper_spec import MapperSpec
from agent.sync.mapping import MappingResult, map_sources
from agent.sync.model import DISABLED_BY_SYNC_ATTRIBUTE, EXTERNAL_ID_ATTRIBUTE, SOURCE_ATTRIBUTE, Source, SourceRead
from agent.sync.outcomes import ItemResult, SyncOutcome
from agent.sync.people_changes import Targets, realm_targets, with_client_roles
from agent.sync.plan import (
    ABSENT_FROM_SOURCES,
    NEVER_TOUCHED,
    LiveUser,
    SyncAction,
    SyncContext,
    SyncItem,
    SyncPlan,
    never_touched,
    plan_sync,
)
from agent.sync.quick_read import (
    LiveRead,
    needs_full_read,
    read_by_plugin,
    read_full,
    read_quick,
    refresh,
    usernames_editable,
)
from agent.sync.representations import default_action_aliases
from agent.sync.sources import build_source

# Plan, refresh the users it would change from records, plan again: a refresh can only reveal changes to
# those users, but a changed name could make another collide; past this many rounds, read all in full.
MAX_REFRESH_ROUNDS = 3


@dataclass(frozen=True)
class Prepared:
    """Everything a run decided before writing anything."""

    sync: SyncSpec
    mapper: MapperSpec
    reads: Mapping[str, SourceRead]
    mapping: MappingResult
    plan: SyncPlan
    verdict: Verdict
    live_users: Mapping[str, User]
    sources: Mapping[str, Source]
    live_read: LiveRead | None = None
    # The realm's groups and roles as read for the plan; None: the executor reads them (approving a staged set).
    targets: Targets | None = None
    # Which sanction levels hold access (None: every open sanction does).
    policy: SanctionPolicy | None = None
    # The realm's representation as read for the plan (its default role, brute-force detection); None: the
    # executor reads it when a step first needs it (approving a staged set).
    realm_settings: Mapping[str, Any] | None = None
    # The required actions the realm gives new users, as read for the plan; None: the executor reads them.
    default_actions: tuple[str, ...] | None = None


def known_targets(
    gateway: KeycloakGateway, realm: str, mapping: MappingResult, in_realm: Targets, managed: Iterable[LiveUser] = ()
) -> Targets:
    """`in_realm` with the roles of the clients the desired grants name, and of those the sync recorded giving
    (a revoke names them): the plan rejects grants of groups and roles that are missing, and the executor
    resolves the others with these (not read again)."""
    client_ids = {client for user in mapping.users for client, _ in user.client_roles}
    client_ids |= {client for live in managed for client, _ in live.recorded_grants.client_roles}
    return with_client_roles(gateway, realm, in_realm, client_ids)


@fewer_collections()
def prepare_sync(
    config: AgentConfig,
    sync: SyncSpec,
    gateway: KeycloakGateway,
    store: Store,
    *,
    now: datetime,
    env: Mapping[str, str],
    sanctioned: frozenset[str] = frozenset(),
    full_read: bool = False,
) -> Prepared:
    """Read the sources and Keycloak, and plan. Keycloak is read briefly with the records of the last run
    (see agent/sync/quick_read.py) unless `full_read`, or the last full read is `full_read_every` old."""
    files = load_sync_files(config, sync, env)
    mapper = files.mapper
    sources = {cfg.name: build_source(cfg) for cfg in config.sources if cfg.name in sync.sources}
    attribute_names = tuple(mapper.attributes)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="keycloak-read") as pool:
        # Keycloak is read while the sources are, its parts side by side: each waits on its own server. The
        # store (one connection, one thread) is left to this thread, so a read that needs the last run's
        # records comes after. The realm's outline (settings, groups, realm roles, required actions, user profile:
        # one request to the plugin) needs no mapping (known_targets adds the client roles); what the plugin
        # reads of users is all of the sync's users, always full and fresh.
        outline = pool.submit(gateway.read_realm_outline, mapper.realm, use_plugin=sync.keycloak_read == "plugin")
        by_plugin = None
        if sync.keycloak_read == "plugin":
            by_plugin = pool.submit(read_by_plugin, gateway, mapper.realm, sync.name)
        reads = {name: source.read() for name, source in sources.items()}
        mapping = map_sources(list(reads.values()), mapper, now, traced=False)  # traces serve `sync explain`
        realm_read = outline.result()
        # A realm that would drop what the sync writes fails the run before the rest.
        check_profile_keeps_attributes(mapper.realm, realm_read.user_profile, attribute_names)
        groups_and_roles = realm_targets(realm_read)
        read_by_pack = by_plugin.result() if by_plugin else None
    read = read_by_pack or read_keycloak(gateway, mapper.realm, sync, store.sync_records, now=now, full_read=full_read)
    known = known_targets(gateway, mapper.realm, mapping, groups_and_roles, read.directory.managed)
    context = SyncContext(
        realm=mapper.realm,
        source=sync.name,
        now=now,
        # S19: users under a sanction that holds their access keep it as the sanction engine set it.
        sanctioned=sanctioned | sanctioned_user_ids(store, mapper.realm, files.policy),
        deny_usernames=sync.denied,
        managed_attributes=attribute_names,
        complete=all(source_read.complete for source_read in reads.values()),
        usernames_editable=usernames_editable(realm_read.settings),
        still_listed=mapping.listed_ids,
        known_groups=frozenset(known.group_ids),
        known_realm_roles=frozenset(known.realm_roles),
        known_client_roles=frozenset(known.client_roles),
        retention=config.retention(sync),
    )
    plan = plan_sync(mapping.users, mapping.rejected, read.directory.managed, read.directory.all_users, context)
    for _ in range(MAX_REFRESH_ROUNDS):
        changing = {item.user_id for item in plan.items if item.user_id} & read.from_records
        if not changing:
            break
        read = refresh(gateway, mapper.realm, sync.name, read, changing)
        plan = plan_sync(mapping.users, mapping.rejected, read.directory.managed, read.directory.all_users, context)
    else:
        read = read_full(gateway, mapper.realm, sync.name)
        plan = plan_sync(mapping.users, mapping.rejected, read.directory.managed, read.directory.all_users, context)
    # After the refreshes: the people granted something are read as they are now, just before the writes.
    plan = settle_found_held(gateway, plan, sync=sync.name, journal_of=store.journal.entries, targets=known)
    verdict = check_safety(plan, reads, store.baselines.last_good_counts(), sync.safety.limits())
    return Prepared(
        sync, mapper, reads, mapping, plan, verdict, read.directory.by_user_id(), sources, read, known, files.policy,
        realm_read.settings, default_action_aliases(realm_read.required_actions),
    )  # fmt: skip


def read_keycloak(
    gateway: KeycloakGateway,
    realm: str,
    sync: SyncSpec,
    records: SyncRecords,
    *,
    now: datetime,
    full_read: bool,
) -> LiveRead:
    """The sync's users in Keycloak by the admin API (the plugin did not answer or is not asked for): a full
    listing when one is due or asked for, else the quick read with the last run's records."""
    full = needs_full_read(records.last_full_read(sync.name, realm), now, sync.full_read_interval(), asked=full_read)
    if full:
        return read_full(gateway, realm, sync.name)
    return read_quick(gateway, realm, sync.name, records)


def _store_item(result: ItemResult) -> NewItem:
    item = result.item
    action: ItemAction = "disable" if item.action == "confirm-leaver" else item.action
    if result.outcome == "skipped" and item.action in {"confirm-leaver", "mark-left"}:
        action = "skip"  # still in the source: nothing was done
    before = {name: old for name, old, _ in item.fields if old is not None}
    after = {name: new for name, _, new in item.fields if new is not None}
    after["external_id"] = item.external_id
    grants = item.grants.describe()
    return NewItem(
        subject=item.username,
        action=action,
        outcome=result.outcome,
        before=before,
        after=after,
        granted=tuple(grants) if item.action in {"grant", "create"} else (),
        revoked=tuple(grants) if item.action == "revoke" else (),
        error=result.detail if result.outcome != "applied" else "",
    )


def _journal_entry(result: ItemResult, sync: str, realm: str, run_id: str) -> NewEntry:
    details: dict[str, str] = {"outcome": result.outcome}
    if result.user_id:
        details["id"] = result.user_id
    if result.outcome != "applied":
        details["error"] = result.detail
    return NewEntry(
        actor=f"sync:{sync}",
        action=f"user.{result.item.action}",
        subject=result.item.username,
        realm=realm,
        run_id=run_id,
        reason=result.item.reason or result.detail,
        details=details,
    )


def intent_entry(item: SyncItem, sync: str, realm: str, run_id: str) -> NewEntry:
    """Recorded before the write is sent: a crash between the two leaves an intent without an outcome."""
    details: dict[str, str] = {"outcome": "intent"}
    if item.user_id:
        details["id"] = item.user_id
    return NewEntry(
        actor=f"sync:{sync}",
        action=f"user.{item.action}",
        subject=item.username,
        realm=realm,
        run_id=run_id,
        reason=item.reason or "",
        details=details,
    )


Progress = Callable[[int, int], None]


@fewer_collections()
def execute(
    prepared: Prepared, gateway: KeycloakGateway, store: Store, run: Run, *, now: datetime,
    progress: Progress | None = None, should_stop: Callable[[], bool] = lambda: False,
) -> SyncOutcome:  # fmt: skip
    """Apply the plan, recording every item in the run and every write in the journal as it happens."""
    realm = prepared.plan.realm
    total = len(prepared.plan.items)
    done = 0
    via_plugin = prepared.live_read is not None and prepared.live_read.via_plugin

    def record(results: Sequence[ItemResult]) -> None:
        # One store transaction per chunk of results, not per result (a disk flush each): the run's items, the
        # journal's outcomes and the records all, or none of them.
        nonlocal done
        with store.atomic():
            store.runs.add_items(run.id, [_store_item(result) for result in results])
            # Skipped steps too: each closes an intent recorded before the step ran.
            store.journal.append_many([_journal_entry(r, prepared.sync.name, realm, run.id) for r in results])
            # Users created now, as Keycloak accepted them: the next run's quick read needs no full read of them.
            created = [result.created for result in results if result.created is not None]
            if created and not via_plugin:
                store.sync_records.update(prepared.sync.name, realm, upsert=created, forget=())
        done += len(results)
        if progress is not None:
            progress(done, total)

    def intend(items: Sequence[SyncItem]) -> None:
        store.journal.append_many([intent_entry(item, prepared.sync.name, realm, run.id) for item in items])

    lookup = LeaverLookup(prepared.sources, prepared.mapper, listed_controls(prepared.reads, prepared.mapper), now=now)
    # Leavers are confirmed by source in batches first (while the joiners are created); each is still confirmed
    # before it is disabled.
    lookup.start_prefetch([item.external_id for item in prepared.plan.to_confirm])
    executor = SyncExecutor(
        gateway,
        prepared.plan,
        now=now,
        attribute_names=tuple(prepared.mapper.attributes),
        lookup=lookup,
        live_users=prepared.live_users,
        on_results=record,
        on_intents=intend,
        should_stop=should_stop,
        in_bulk=prepared.sync.keycloak_write == "plugin",
        targets=prepared.targets,
        sanctioned=lambda user_id: access_held(store, realm, user_id, prepared.policy),
        realm_settings=prepared.realm_settings,
        default_actions=prepared.default_actions,
    )
    try:
        return executor.run()
    finally:
        lookup.join_prefetch()  # no thread outlives the run


def _rejects_as_items(prepared: Prepared) -> list[NewItem]:
    return [
        NewItem(subject=r.external_id or r.where or "(no id)", action="reject", outcome="skipped", error=r.reason)
        for r in prepared.plan.rejected
    ]


def staged_grant_names(grants: Grants) -> list[str]:
    """One text per grant, as a staged revoke keeps it: "group /x", "role x" (realm), and a client role as
    'client-role ["client id", "role"]' (JSON: a client id may hold '/', as SAML clients' URLs do)."""
    return sorted(
        [f"group {path}" for path in grants.groups]
        + [f"role {name}" for name in grants.realm_roles]
        + [f"client-role {json.dumps([client, name])}" for client, name in grants.client_roles]
    )


def staged_grant(text: str, realm_has_role: Callable[[str], bool]) -> Grants:
    """The grant a staged revoke names (see staged_grant_names). A set staged before client roles were kept
    apart says "role app/x" for both kinds: a realm role of that name if the realm has one, else the client
    role after the last '/' (client ids may hold '/', role names seldom do)."""
    kind, _, target = text.partition(" ")
    if kind == "group":
        return Grants(groups=frozenset({target}))
    if kind == "client-role":
        client, name = json.loads(target)
        return Grants(client_roles=frozenset({(str(client), str(name))}))
    if "/" in target and not realm_has_role(target):
        client, _, name = target.rpartition("/")
        return Grants(client_roles=frozenset({(client, name)}))
    return Grants(realm_roles=frozenset({target}))


def staged_removals(plan: SyncPlan) -> list[StagedRemoval]:
    removals = []
    for item in plan.removals:
        assert item.user_id is not None
        if item.action == "revoke":
            removals += [
                StagedRemoval(item.user_id, item.external_id, "revoke", item.reason or "revoke", grant)
                for grant in staged_grant_names(item.grants)
            ]
        elif item.action in {"delete", "anonymise", "confirm-leaver"}:
            action = cast(RemovalAction, item.action)
            removals.append(StagedRemoval(item.user_id, item.external_id, action, item.reason or item.action))
        else:  # the sources say employment ended: disabled on approval without a lookup, as a run would
            removals.append(StagedRemoval(item.user_id, item.external_id, "disable", item.reason or "leaver"))
    return removals


def remember_reads(store: Store, prepared: Prepared, *, now: datetime) -> Prepared:
    """Keep what this run read of Keycloak for the next run's quick read, before anything is written. The users
    the plan changes are left out (and their old records dropped): the next run reads them afresh. Returns
    `prepared` without the records, which need not stay in memory through the writes."""
    read = prepared.live_read
    if read is None:
        return prepared
    realm, source = prepared.plan.realm, prepared.sync.name
    if read.via_plugin:
        # Records older than this read would mislead a later quick read: that run reads all users in full.
        store.sync_records.forget_realm(source, realm)
        return prepared
    planned = {item.user_id for item in prepared.plan.items if item.user_id}
    fresh = (record for record in read.fresh if record.user_id not in planned)
    if read.full:
        store.sync_records.replace_all(source, realm, fresh, now)
    else:
        store.sync_records.update(source, realm, upsert=fresh, forget=[*read.gone, *planned])
    return replace(prepared, live_read=replace(read, fresh=()))


def _touched(outcome: SyncOutcome) -> set[str]:
    return {user_id for result in outcome.results if (user_id := result.user_id or result.item.user_id)}


def run_sync(
    config: AgentConfig,
    sync: SyncSpec,
    gateway: KeycloakGateway,
    store: Store,
    *,
    now: datetime,
    env: Mapping[str, str],
    sanctioned: frozenset[str] = frozenset(),
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    full_read: bool = False,
) -> tuple[Run, Prepared, SyncOutcome | None]:
    """One run. `should_stop` (the daemon's SIGTERM) is asked before each item: once true, the items under
    way finish and are journalled, no other starts, and Interrupted is raised."""
    prepared = prepare_sync(config, sync, gateway, store, now=now, env=env, sanctioned=sanctioned, full_read=full_read)
    run = store.runs.start_run("sync", prepared.plan.realm, sources=tuple(prepared.reads))
    store.runs.add_items(run.id, _rejects_as_items(prepared))
    prepared = remember_reads(store, prepared, now=now)
    verdict = prepared.verdict
    if verdict.stop:
        return store.runs.finish_run(run.id, "stopped", summary="; ".join(verdict.reasons)), prepared, None
    # A stopped run's reads are not trusted, so it leaves earlier sets as they are; any other computed its plan
    # anew (one whose read was incomplete, without the leaver phase: the next complete run stages those again).
    _supersede_staged(store, run.id, prepared)
    if verdict.stage:
        store.staging.stage_removals(run.id, prepared.plan.realm, staged_removals(prepared.plan))
        summary = "; ".join(verdict.reasons) + f". Nothing applied. Review, then: idp-agent sync approve {run.id}"
        return store.runs.finish_run(run.id, "staged", summary=summary), prepared, None
    try:
        outcome = execute(prepared, gateway, store, run, now=now, progress=progress, should_stop=should_stop)
    except Interrupted:
        store.runs.finish_run(run.id, "failed", summary="interrupted between items; the next run converges")
        raise
    except Exception:
        store.runs.finish_run(run.id, "failed", summary="stopped by an error; the next run converges")
        raise
    for name, read in prepared.reads.items():
        if read.complete:
            store.baselines.record_good_read(name, len(read.records), now)
    status: RunStatus = "failed" if outcome.failed else "succeeded"
    return store.runs.finish_run(run.id, status, summary=run_summary(prepared)), prepared, outcome


def _supersede_staged(store: Store, run_id: str, prepared: Prepared) -> None:
    """Earlier sets of this sync still awaiting approval can no longer be approved, each journalled as such."""
    with store.atomic():
        superseded = store.staging.supersede(run_id)
        store.journal.append_many(_superseded_entries(superseded, run_id, prepared))


def _superseded_entries(superseded: list[str], run_id: str, prepared: Prepared) -> list[NewEntry]:
    return [
        NewEntry(
            actor=f"sync:{prepared.sync.name}", action="sync.staged-superseded", subject=old_run,
            realm=prepared.plan.realm, run_id=run_id,
            reason=f"run {run_id} computed the removals again; the set staged by {old_run} can no longer be approved",
        )
        for old_run in superseded
    ]  # fmt: skip


# Why a sync set to read through the plugin pack read the admin API: said in the run's summary, as the run is
# right but slower (a pack older than the agent, say, until it is deployed again).
NO_PLUGIN_READ = (
    "Keycloak read through the admin API: the idp-agent plugin pack did not answer (not installed, older than "
    "this agent, a realm with user federation, or an account it refuses)"
)


def run_summary(prepared: Prepared) -> str:
    """What the run's summary says besides its counts: sources read incompletely, and a plugin read that fell
    back to the admin API."""
    notes: list[str] = []
    incomplete = [name for name, read in prepared.reads.items() if not read.complete]
    if incomplete:
        notes.append(f"incomplete read of {', '.join(incomplete)}: leaver phase skipped")
    read = prepared.live_read
    if prepared.sync.keycloak_read == "plugin" and read is not None and not read.via_plugin:
        notes.append(NO_PLUGIN_READ)
    return "; ".join(notes)


def approve_staged(
    run_id: str,
    *,
    approver: str,
    config: AgentConfig,
    sync: SyncSpec,
    gateway: KeycloakGateway,
    store: Store,
    now: datetime,
    env: Mapping[str, str],
) -> tuple[Run, SyncOutcome]:
    """Apply exactly the removal set staged by `run_id`: absent leavers still confirmed by exact lookup, and
    each removal left out when its user changed since in a way that forbids it (see `changed_since_staged`)."""
    # Both files are read before the approval is recorded: a broken one must not use up the approval.
    files = load_sync_files(config, sync, env)
    mapper = files.mapper
    waiting = store.staging.staged(run_id)
    if waiting is not None and waiting.realm != mapper.realm:
        raise ConfigError(
            f"run {run_id} staged removals in realm '{waiting.realm}'; sync '{sync.name}' works on '{mapper.realm}'",
            hint="name the sync that staged them with --sync",
        )
    sources = {cfg.name: build_source(cfg) for cfg in config.sources if cfg.name in sync.sources}
    # Keycloak is read for the set before the approval is recorded: an outage now must not use it up. A set
    # missing or approved already is not read: the approval below refuses it with why (and a changed one).
    read = None if waiting is None or waiting.approved else _read_for_approval(waiting, gateway, store, sync, files)
    # The approval, its journal entry and the run that applies it, together: an agent stopped in between
    # neither uses up the approval without a run nor leaves a run without its approval.
    with store.atomic():
        staged = store.staging.approve(run_id, approver)
        store.journal.append(
            actor=approver, action="sync.approve", subject=run_id, realm=staged.realm, run_id=run_id,
            reason=f"approved {len(staged.items)} staged removal(s)",
        )  # fmt: skip
        assert read is not None  # approve refused a set missing or approved already
        items, left_out, users = read
        run = store.runs.start_run("sync-approve", staged.realm, sources=tuple(sources), summary=f"approves {run_id}")
        store.runs.add_items(run.id, left_out)
    plan = SyncPlan(staged.realm, sync.name, tuple(items))
    prepared = Prepared(sync, mapper, {}, MappingResult((), ()), plan, Verdict(False, False, ()), users, sources)
    try:
        outcome = execute(prepared, gateway, store, run, now=now)
    except Exception:
        # What was applied is in the run and the journal; the next sync run plans the rest again.
        summary = f"stopped by an error while applying the set staged by {run_id}; the next sync run converges"
        store.runs.finish_run(run.id, "failed", summary=summary)
        raise
    store.sync_records.update(sync.name, staged.realm, upsert=(), forget=_touched(outcome))
    status: RunStatus = "failed" if outcome.failed else "succeeded"
    return store.runs.finish_run(run.id, status, summary=f"applied the set staged by {run_id}"), outcome


def _read_for_approval(
    staged: StagedSet, gateway: KeycloakGateway, store: Store, sync: SyncSpec, files: SyncFiles
) -> tuple[list[SyncItem], list[NewItem], dict[str, User]]:
    holds = ApprovalHolds(sync, sanctioned_user_ids(store, staged.realm, files.policy))
    return _items_from_staged(staged.items, gateway, staged.realm, holds)


@dataclass(frozen=True)
class ApprovalHolds:
    """What an approval checks each staged user against, as the planner would now."""

    sync: SyncSpec
    sanctioned: frozenset[str]  # Keycloak user ids under a sanction that holds their access


def changed_since_staged(removal: StagedRemoval, user: User, holds: ApprovalHolds) -> str | None:
    """Why a staged removal must not be applied to `user` as Keycloak has them now, or None. The set was
    computed for the users as they were; an approval applies that set, never to an account that has since
    left the sync's hands, come under a sanction, or been disabled or re-enabled by someone else."""
    attributes = user.attributes
    if attributes.get(SOURCE_ATTRIBUTE) != (holds.sync.name,) or attributes.get(EXTERNAL_ID_ATTRIBUTE) != (
        removal.external_id,
    ):
        return "no longer this sync's account for that id since it was staged"
    if never_touched(user, holds.sync.denied):
        return NEVER_TOUCHED
    if removal.action != "revoke" and user.id in holds.sanctioned:
        # As the planner holds them: a sanctioned user is neither disabled nor deleted until the sanction ends.
        return "under a sanction since it was staged: only the sanction engine changes this user's access"
    if removal.action in {"disable", "confirm-leaver"} and not user.enabled:
        return "disabled since it was staged: nothing to do"
    if removal.action in {"delete", "anonymise"} and (user.enabled or DISABLED_BY_SYNC_ATTRIBUTE not in attributes):
        return "enabled again since it was staged (a rehire, or an admin): not removed"
    return None


def _items_from_staged(
    staged: tuple[StagedRemoval, ...], gateway: KeycloakGateway, realm: str, holds: ApprovalHolds
) -> tuple[list[SyncItem], list[NewItem], dict[str, User]]:
    """The staged removals as plan items, the ones left out (as skipped run items, with why), and the users
    as read for them (the executor writes on from these: an approved revoke also updates their grants record)."""
    items: list[SyncItem] = []
    left_out: list[NewItem] = []
    users: dict[str, User] = {}
    for removal in staged:
        user = users.get(removal.user_id) or gateway.get_user(realm, removal.user_id)
        if user is None:
            continue  # gone since: nothing left to remove
        users[user.id] = user
        why = changed_since_staged(removal, user, holds)
        if why is not None:
            action: ItemAction = "disable" if removal.action == "confirm-leaver" else removal.action
            left_out.append(NewItem(user.username, action, "skipped", error=why))
            continue
        if removal.action == "revoke":
            grants = staged_grant(removal.grant, lambda name: gateway.get_realm_role(realm, name) is not None)
            items.append(
                SyncItem("revoke", removal.external_id, user.username, user.id, grants=grants, reason=removal.reason)
            )
            continue
        legacy_candidate = removal.action == "disable" and removal.reason == ABSENT_FROM_SOURCES
        step: SyncAction = "confirm-leaver" if legacy_candidate else removal.action
        items.append(SyncItem(step, removal.external_id, user.username, user.id, reason=removal.reason))
    return items, left_out, users


__all__ = ["Prepared", "SourceUnavailable", "approve_staged", "prepare_sync", "run_sync"]
