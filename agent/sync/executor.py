"""Applies a sync plan through the gateway: joiners in partialImport batches, then each person's steps.

Per person the order is grants, revokes, then the update that records the grant set (so a crash never
records a grant that was not made), then enable or disable. A change Keycloak rejects is recorded and the
run goes on; Keycloak becoming unavailable stops the run, and the next run converges from live state.

Speed: import batches and people are applied by a few worker threads (Keycloak runs concurrent requests
in parallel; one at a time leaves it mostly idle), kept busy without a pause, from the first import batch to
the last person. Intents are recorded in windows of about RECORD_CHUNK items (one store transaction), each
before the window's first unit is sent; results are recorded in plan order, RECORD_CHUNK at a time (one more
transaction). So every write has a
journal record before it is sent, even if the agent is killed mid-window (an intent without an outcome:
sent or not, the next run converges), at two disk flushes per window rather than two per write. When a
step fails with Keycloak unavailable, nothing new is started; what was already running finishes and is
recorded, then the error is raised. The worker map is agent/sync/worker_map.py; people's changes made in bulk
through the plugin, agent/sync/people_changes.py; what a created user's representation holds,
agent/sync/representations.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from agent.errors import Conflict, Interrupted, Rejected, SourceUnavailable, Unavailable
from agent.keycloak import KeycloakGateway, User
from agent.keycloak.models import UserChange, default_role_name
from agent.sync.grants import GrantRecord, Grants, grant_record
from agent.sync.live import full_representation
from agent.sync.model import DISABLED_BY_SYNC_ATTRIBUTE, EXTERNAL_ID_ATTRIBUTE, GRANTS_ATTRIBUTE, Found, Left
from agent.sync.outcomes import Done, ItemResult, SyncOutcome, Work, settled, with_every_outcome
from agent.sync.people_changes import (
    PEOPLE_PER_REQUEST,
    ChangeBuilder,
    Targets,
    in_groups,
    read_targets,
    resolve_grants,
    split_people,
    still_existing,
)
from agent.sync.plan import REHIRED, STARTS_AGAIN, SyncItem, SyncPlan, desired_grants
from agent.sync.quick_read import realm_settings, user_record
from agent.sync.representations import default_action_aliases, import_representation, managed_attributes
from agent.sync.worker_map import ordered_map, windows

# partialImport runs a batch in one transaction whose cost per user grows with the batch size
# (10k users: batches of 500 took 3.7x as long as batches of 50). Small batches, several at a time.
IMPORT_BATCH_SIZE = 20
# Concurrent requests to Keycloak (imports, per-person updates, leaver lookups); a handful is enough to keep
# its worker threads busy without crowding other clients out.
WORKERS = 4
# Items per window: intents, then results, each recorded in one store transaction (one disk flush each).
RECORD_CHUNK = 100
# Why an enable planned before a sanction was issued is not made.
SANCTIONED_SINCE_PLAN = "under a sanction issued since the plan was made: only the sanction engine enables it"
# Fields of a user's representation that say whether and how they may log in; written only on purpose.
ACCOUNT_STATE_FIELDS = frozenset({"enabled", "requiredActions"})


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
        on_results: Callable[[Sequence[ItemResult]], None] | None = None,
        on_intents: Callable[[Sequence[SyncItem]], None] = lambda items: None,
        workers: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        in_bulk: bool = True,
        targets: Targets | None = None,
        sanctioned: Callable[[str], bool] = lambda user_id: False,
        realm_settings: Mapping[str, Any] | None = None,
        default_actions: Sequence[str] | None = None,
    ) -> None:
        """`on_results` receives results in chunks (one store transaction each); else `on_result` one by one.
        `on_intents` receives each window's items before any of them is written. All are called on the thread
        that calls `run`. `lookup` must be safe to call from several threads. `in_bulk`: people's changes go
        to the plugin many at a time where it takes them (see agent/sync/people_changes.py). `targets`: the realm's
        groups and roles as the plan saw them, else read here when a grant or revoke needs them. `sanctioned`
        says whether a sanction holds a user's access now: asked again before an account is enabled, as a
        sanction may have been issued since the plan was made. It must be safe to call from several threads.
        `realm_settings`: the realm's representation as the plan read it, else read here when a step needs it;
        `default_actions`: the required actions it gives new users, likewise."""
        self._gateway = gateway
        self._plan = plan
        self._realm = plan.realm
        self._now = now
        self._attribute_names = attribute_names
        self._lookup = lookup
        self._live = live_users
        self._on_results = on_results or _one_by_one(on_result)
        self._on_intents = on_intents
        self._workers = WORKERS if workers is None else workers
        self._should_stop = should_stop
        self.outcome = SyncOutcome()
        self._targets = targets
        self._sanctioned = sanctioned
        # Until the plugin turns a bulk change down: then the admin API for the rest of the run.
        self._in_bulk = in_bulk
        self._unrecorded: list[ItemResult] = []
        self._realm_read = realm_settings
        self._default_actions = default_actions

    @property
    def in_bulk(self) -> bool:
        """Whether people's changes still go to the plugin in bulk (it took all it was given so far)."""
        return self._in_bulk

    def run(self) -> SyncOutcome:
        try:
            # By account, not by external id: two accounts carrying one id (both leavers) are changed apart.
            per_person: dict[str, list[SyncItem]] = {}
            for item in self._plan.items:
                if item.action != "create":
                    per_person.setdefault(item.user_id or item.external_id, []).append(item)
            if any(item.action in {"grant", "revoke"} for item in self._plan.items):
                _ = self.targets  # read once here, not raced for by the workers
            together, alone = split_people(per_person.values()) if self._in_bulk else ([], list(per_person.values()))
            # One stream, joiners first: a joiner is one create and nothing else, so no person's change waits
            # for an import; the workers go from the last import batches to the first changes without a pause.
            self._apply_all(
                itertools.chain(
                    (Work(partial(self._import_batch, batch), [item for item, _ in batch])
                     for batch in self._import_batches()),
                    (Work(partial(self._apply_people, group), [step for steps in group for step in steps])
                     for group in in_groups(together, PEOPLE_PER_REQUEST)),
                    (Work(partial(self._apply_person, steps), steps) for steps in alone),
                )
            )  # fmt: skip
        finally:
            self._flush()
        return self.outcome

    def _apply_all(self, units: Iterable[Work]) -> None:
        """Run every unit on the workers without a pause between windows: a window's intents are recorded
        (one transaction) when its first unit is about to be sent, while earlier units are still running, and
        results are recorded in plan order as they come back (one transaction per RECORD_CHUNK)."""

        def unless_stopping(unit: Work) -> Done:
            # Asked to stop (SIGTERM): no new unit starts; those under way finish and are recorded.
            if self._should_stop():
                return with_every_outcome(
                    unit, Done(error=Interrupted("stopped between items: the agent is shutting down"))
                )
            return with_every_outcome(unit, unit.send())

        cut_short = False

        def announced() -> Iterator[Work]:
            nonlocal cut_short
            for window in windows(units, lambda unit: unit.items, RECORD_CHUNK):
                if self._should_stop():
                    cut_short = True
                    return
                self._on_intents([item for unit in window for item in unit.items])
                yield from window

        error: Exception | None = None
        for done in ordered_map(unless_stopping, announced(), workers=self._workers):
            for result in done.results:
                self._record(result)
            error = error or done.error
        self._flush()
        if error is not None:
            raise error
        if cut_short:
            raise Interrupted("stopped between items: the agent is shutting down")

    def _record(self, result: ItemResult) -> None:
        self.outcome.results.append(result)
        self._unrecorded.append(result)
        if len(self._unrecorded) >= RECORD_CHUNK:
            self._flush()

    def _flush(self) -> None:
        chunk, self._unrecorded = self._unrecorded, []
        if chunk:
            self._on_results(chunk)

    @property
    def targets(self) -> Targets:
        if self._targets is None:
            # An approval's revokes carry no desired user: their grants name the clients too.
            client_ids = {c for item in self._plan.items if item.desired for c, _ in item.desired.client_roles}
            client_ids |= {c for item in self._plan.items for c, _ in item.grants.client_roles}
            self._targets = read_targets(self._gateway, self._realm, client_ids)
        return self._targets

    # -- joiners --------------------------------------------------------------------------------

    def _import_batches(self) -> Iterator[list[tuple[SyncItem, dict[str, Any]]]]:
        """Joiners with their import representations, IMPORT_BATCH_SIZE at a time (built as they are sent)."""
        items = self._plan.of("create")
        if not items:
            return
        default_actions = self._default_actions
        if default_actions is None:
            default_actions = default_action_aliases(self._gateway.list_required_actions(self._realm))
        # A renamed realm keeps its first name's default role: the realm says which it is.
        default_role = (self._realm_settings().get("defaultRole") or {}).get("name") or default_role_name(self._realm)
        for start in range(0, len(items), IMPORT_BATCH_SIZE):
            batch = []
            for item in items[start : start + IMPORT_BATCH_SIZE]:
                assert item.desired is not None
                enabled = item.desired.start is None or item.desired.start <= self._now
                representation = import_representation(
                    item.desired, source=self._plan.source, default_role=default_role, enabled=enabled, now=self._now,
                    attribute_names=self._attribute_names, default_actions=default_actions,
                )  # fmt: skip
                batch.append((item, representation))
            yield batch

    def _import_batch(self, batch: list[tuple[SyncItem, dict[str, Any]]]) -> Done:
        done = Done()
        try:
            answer = self._gateway.import_users(self._realm, [representation for _, representation in batch])
        except (Rejected, Conflict) as error:
            return self._import_one_by_one(batch, error)
        except Unavailable as error:
            if error.status != 500:  # Keycloak unreachable or overloaded: the run stops, the next one goes on
                done.error = error
                return done
            return self._import_one_by_one(batch, error)  # failed inside Keycloak, the transaction rolled back
        except Exception as error:  # noqa: BLE001 - handed to the calling thread, which raises it
            done.error = error
            return done
        imported = {user.username: user for user in answer}
        settled: dict[int, ItemResult] = {}
        # What Keycloak created is settled without a call, first: an error settling a skipped one (which
        # needs a read) must not lose the record of users already made.
        for index, (item, representation) in enumerate(batch):
            user = imported.get(item.username)
            if user is None or user.action == "ADDED":
                settled[index] = self._settle_import(item, user, representation)
        for index, (item, representation) in enumerate(batch):
            if index in settled:
                continue
            try:
                settled[index] = self._settle_import(item, imported[item.username], representation)
            except Exception as error:  # noqa: BLE001 - as above
                done.error = error
                break
        done.results = [settled[index] for index in sorted(settled)]
        return done

    def _import_one_by_one(self, batch: list[tuple[SyncItem, dict[str, Any]]], error: Exception) -> Done:
        """A batch is one transaction, so one joiner Keycloak cannot create (a group deleted since the plan was
        made, a value it cannot keep) fails all of it; the batches are the same at every run, so its batch-mates
        would never be created. Alone, each joiner ends as it would on its own."""
        if len(batch) == 1:
            return Done([ItemResult(batch[0][0], "failed", f"refused by Keycloak: {error}")])
        done = Done()
        for pair in batch:
            alone = self._import_batch([pair])
            done.results.extend(alone.results)
            if alone.error is not None:
                done.error = alone.error
                break
        return done

    def _settle_import(self, item: SyncItem, imported: Any, representation: Mapping[str, Any]) -> ItemResult:
        if imported is None:
            return ItemResult(item, "failed", "not in Keycloak's import answer")
        if imported.action == "ADDED":
            record = user_record({**representation, "id": imported.id}, self._plan.source)
            return ItemResult(item, "applied", "created", imported.id, record)
        # SKIPPED: the username exists. Ours (a previous run was cut short) is fine; anyone else's is not.
        existing = self._gateway.get_user(self._realm, imported.id)
        ours = existing is not None and item.external_id in existing.attributes.get(EXTERNAL_ID_ATTRIBUTE, ())
        if ours:
            return ItemResult(item, "applied", "already created by an earlier run", imported.id)
        return ItemResult(item, "failed", "username already taken by an account the sync does not manage")

    # -- existing people ------------------------------------------------------------------------

    def _apply_people(self, group: list[list[SyncItem]]) -> Done:
        """Several people's steps in one request to the plugin, each person's steps one change (made whole or
        refused whole, every step of it failed then). Where the plugin does not take them (not installed, a
        federated realm), this group and the rest of the run go through the admin API, person by person."""
        if self._in_bulk:
            prepared: list[tuple[_Person, Done]] = []
            for steps in group:
                person = _Person(self._live.get(steps[0].user_id or ""), ChangeBuilder(steps[0].user_id or ""))
                done = self._apply_steps(steps, person)
                if done.error is not None:
                    return Done(error=done.error)  # nothing was written yet
                prepared.append((person, done))
            changes = [person.change.build() for person, _ in prepared if person.change and not person.change.empty]
            try:
                refused = self._gateway.change_users(self._realm, changes) if changes else {}
            except Exception as error:  # noqa: BLE001 - handed to the calling thread, which raises it
                return Done(error=error)
            if refused is not None:
                return Done([result for person, done in prepared for result in settled(done.results, refused)])
            self._in_bulk = False
        done = Done()
        for steps in group:
            if self._should_stop():
                done.error = Interrupted("stopped between items: the agent is shutting down")
                break
            alone = self._apply_person(steps)
            done.results.extend(alone.results)
            if alone.error is not None:
                done.error = alone.error
                break
        return done

    def _apply_person(self, items: list[SyncItem]) -> Done:
        """One person's steps in order through the admin API, on a worker thread."""
        return self._apply_steps(items, _Person(self._live.get(items[0].user_id or "")))

    def _apply_steps(self, items: list[SyncItem], person: _Person) -> Done:
        """One person's steps in order; the person's representation is carried from one write to the next, so
        a later step never writes back what an earlier one changed."""
        order = {"grant": 0, "revoke": 1, "update": 2, "enable": 3, "disable": 4, "confirm-leaver": 5, "mark-left": 5,
                 "delete": 6, "anonymise": 6}  # fmt: skip
        done = Done()
        for item in sorted(items, key=lambda step: order[step.action]):
            try:
                done.results.append(self._apply_step(item, person))
            except (Rejected, Conflict) as error:
                # This person's change only (an e-mail or username another account holds answers 409): the
                # others' changes go on, and the next run tries it again.
                done.results.append(ItemResult(item, "failed", str(error), item.user_id))
                person.note_failed(item)
            except Exception as error:  # noqa: BLE001 - handed to the calling thread, which raises it
                done.error = error
                break
        return done

    def _apply_step(self, item: SyncItem, person: _Person) -> ItemResult:
        assert item.user_id is not None
        if item.action in {"grant", "revoke"}:
            self._change_grants(item.user_id, item.grants, person, add=item.action == "grant")
            if item.action == "revoke" and item.desired is None:
                self._forget_revoked(item, person)
            return ItemResult(item, "applied", ", ".join(item.grants.describe()), item.user_id)
        if item.action == "update":
            return self._update(item, person)
        if item.action == "enable":
            return self._enable(item, person)
        if item.action == "disable":
            return self._disable(item, item.reason, person)
        if item.action == "confirm-leaver":
            return self._confirm_leaver(item, person)
        if item.action == "mark-left":
            return self._mark_left(item, person)
        if item.action == "delete":
            self._gateway.delete_user(self._realm, item.user_id)
            return ItemResult(item, "applied", item.reason, item.user_id)
        return self._anonymise(item)

    def _change_grants(self, user_id: str, grants: Grants, person: _Person, *, add: bool) -> None:
        wanted = grants if add else still_existing(self.targets, grants)
        resolved = resolve_grants(self.targets, wanted, self._realm)
        if person.change is not None:
            person.change.change_grants(resolved, add=add)
            return
        for group_id in resolved.group_ids:
            if add:
                self._gateway.add_user_to_group(self._realm, user_id, group_id)
            else:
                self._gateway.remove_user_from_group(self._realm, user_id, group_id)
        if add:
            self._gateway.add_realm_roles_to_user(self._realm, user_id, list(resolved.realm_roles))
        else:
            self._gateway.remove_realm_roles_from_user(self._realm, user_id, list(resolved.realm_roles))
        for client_uuid, role in resolved.client_roles:
            if add:
                self._gateway.add_client_roles_to_user(self._realm, user_id, client_uuid, [role])
            else:
                self._gateway.remove_client_roles_from_user(self._realm, user_id, client_uuid, [role])

    def _forget_revoked(self, item: SyncItem, person: _Person) -> None:
        """An approved revoke (a staged removal, applied without the run's desired state): the sync's record of
        what it granted forgets the grant too, in the same write as the revoke where people go in bulk. The plan
        compares the record with the rules, so a record left as it was would plan, and stage, the same revoke
        at every run after, and the brakes would hold back everything else."""
        assert item.user_id is not None
        if person.recorded is None:
            live = self._gateway.get_user(self._realm, item.user_id)
            if live is None:
                raise Rejected(f"user {item.user_id} no longer exists in realm '{self._realm}'")
            person.recorded = grant_record(live)
        person.recorded = GrantRecord(person.recorded.given - item.grants, person.recorded.held)
        self._put(item.user_id, person, {}, {GRANTS_ATTRIBUTE: [person.recorded.to_json()]})

    def _put(self, user_id: str, person: _Person, changes: Mapping[str, Any], attributes: Mapping[str, Any]) -> None:
        """Write the person whole: their current representation with `changes` and the sync's own attributes
        changed (None removes one). Read first only when the listing did not give it (an approval run).

        Account state (`enabled`, required actions) is sent only when this step changes it: Keycloak keeps what
        a PUT leaves out, so a sanction or an admin that disabled the user after the listing was read is never
        undone by a stale copy (precedence: sanction > lock > leaver > source data). In a bulk change only
        `changes` and `attributes` are sent: nothing else is written back at all."""
        if person.change is not None:
            person.change.set(changes, attributes)
            return
        if person.representation is None:
            live = self._gateway.get_user(self._realm, user_id)
            if live is None:
                raise Rejected(f"user {user_id} no longer exists in realm '{self._realm}'")
            person.representation = full_representation(live)
        profile = {key: value for key, value in person.representation.items() if key not in ACCOUNT_STATE_FIELDS}
        body = {**profile, **changes}
        merged = dict(person.representation.get("attributes") or {})
        for key, value in attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        body["attributes"] = merged
        self._gateway.replace_user(self._realm, user_id, body)
        person.representation = body

    def _update(self, item: SyncItem, person: _Person) -> ItemResult:
        assert item.user_id is not None
        changes = {name: wanted for name, _, wanted in item.fields if not name.startswith("attributes.")}
        if item.desired is None:
            # A leaver's reissued email released (plan._release_email): the account is not in the sources, so
            # nothing else of it is written.
            self._put(item.user_id, person, changes, {})
            return ItemResult(item, "applied", item.reason, item.user_id)
        # Grants the person holds by other means are recorded apart: the sync never removes them.
        recorded = GrantRecord(person.recordable(desired_grants(item.desired) - item.found_held), item.found_held)
        owned: dict[str, list[str] | None] = dict(
            managed_attributes(item.desired, self._plan.source, recorded, self._attribute_names)
        )
        for name in self._attribute_names:
            owned.setdefault(name, None)
        self._put(item.user_id, person, changes, owned)
        detail = ", ".join(f"{name}: {old} -> {new}" for name, old, new in item.fields)
        return ItemResult(item, "applied", detail, item.user_id)

    def _enable(self, item: SyncItem, person: _Person) -> ItemResult:
        assert item.user_id is not None
        if self._sanctioned(item.user_id):
            # Precedence sanction > source data: the plan held sanctioned users, but not one sanctioned since.
            return ItemResult(item, "skipped", SANCTIONED_SINCE_PLAN, item.user_id)
        if self._locked(item.user_id):
            # Enabling resets brute-force failures: a locked account is never unlocked by the sync.
            return ItemResult(item, "skipped", "locked by brute-force detection; left as it is", item.user_id)
        if item.reason in (REHIRED, STARTS_AGAIN):
            # Sessions kept from before the disable would resume once enabled, were it cut off between the
            # disable and the logout: the person starts with none.
            self._end_sessions(item.user_id, person)
        self._put(item.user_id, person, {"enabled": True}, {DISABLED_BY_SYNC_ATTRIBUTE: None})
        return ItemResult(item, "applied", item.reason, item.user_id)

    def _end_sessions(self, user_id: str, person: _Person) -> None:
        """Log the user out everywhere, revoke consents and offline tokens: in the person's bulk change (one
        transaction with the rest of it), or through the admin API."""
        if person.change is not None:
            person.change.end_sessions = True
            return
        self._gateway.logout_user(self._realm, user_id)
        for client_id in self._gateway.list_consents(self._realm, user_id):
            self._gateway.revoke_consent(self._realm, user_id, client_id)

    def _disable(self, item: SyncItem, reason: str, person: _Person) -> ItemResult:
        """Disable, end every session, revoke consents and offline tokens (a disable alone leaves them)."""
        assert item.user_id is not None
        if self._locked(item.user_id):
            # Precedence sanction > lock > leaver: the lock decides for now; a later run disables once it ends.
            reason = "locked by brute-force detection; left as it is until the lock ends"
            return ItemResult(item, "skipped", reason, item.user_id)
        marker = {DISABLED_BY_SYNC_ATTRIBUTE: [f"left {self._now.isoformat()}: {reason}"]}
        self._put(item.user_id, person, {"enabled": False}, marker)
        self._end_sessions(item.user_id, person)
        return ItemResult(item, "applied", reason, item.user_id)

    def _realm_settings(self) -> Mapping[str, Any]:
        """The realm's representation, read once when a step first needs it (two threads may both read it)."""
        if self._realm_read is None:
            self._realm_read = realm_settings(self._gateway, self._realm)
        return self._realm_read

    def _locked(self, user_id: str) -> bool:
        """Whether brute-force detection holds the user locked; asked only where the realm detects brute force."""
        detected = bool(self._realm_settings().get("bruteForceProtected"))
        return detected and self._gateway.is_locked_out(self._realm, user_id)

    def _anonymise(self, item: SyncItem) -> ItemResult:
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
        try:
            self._gateway.update_user(self._realm, item.user_id, wiped)
        except Rejected as refused:
            if not self._anonymised_by_plugin(item.user_id, wiped):
                hint = "anonymising renames the user: allow username changes or install the plugin pack"
                raise Rejected(f"{refused}; {hint}") from None
        return ItemResult(item, "applied", item.reason, item.user_id)

    def _anonymised_by_plugin(self, user_id: str, wiped: Mapping[str, Any]) -> bool:
        """The same wipe through the plugin pack, which writes the user as stored: the admin API refuses a new
        username where the realm lets no one change usernames, and erasing personal data may not wait on that
        setting. False where the plugin does not take it; Rejected where Keycloak refuses it."""
        live = self._gateway.get_user(self._realm, user_id)
        if live is None:
            raise Rejected(f"user {user_id} no longer exists in realm '{self._realm}'")
        fields = {name: value for name, value in wiped.items() if name != "attributes"}
        change = UserChange(user_id, fields, dict.fromkeys(live.attributes), end_sessions=True)
        refused = self._gateway.change_users(self._realm, [change])
        if refused is None:
            return False
        if user_id in refused:
            raise Rejected(f"refused by Keycloak: {refused[user_id]}")
        return True

    def _confirm_leaver(self, item: SyncItem, person: _Person) -> ItemResult:
        gone = self._confirmed_gone(item, "left enabled")
        if isinstance(gone, ItemResult):
            return gone
        return self._disable(item, gone, person)

    def _mark_left(self, item: SyncItem, person: _Person) -> ItemResult:
        """Mark a leaver's account that someone else disabled (no change of access); one absent from the
        sources (no `desired`) once a lookup confirms."""
        assert item.user_id is not None
        if item.desired is None:
            gone = self._confirmed_gone(item, "not marked")
            if isinstance(gone, ItemResult):
                return gone
        self._put(
            item.user_id, person, {}, {DISABLED_BY_SYNC_ATTRIBUTE: [f"left {self._now.isoformat()}: {item.reason}"]}
        )
        return ItemResult(item, "applied", item.reason, item.user_id)

    def _confirmed_gone(self, item: SyncItem, outcome: str) -> ItemResult | str:
        """Why a leaver candidate is gone, as an exact lookup confirms it (absent, or found saying they left);
        or the result for one it does not confirm (found active, or not answered)."""
        try:
            answer = self._lookup(item.external_id)
        except SourceUnavailable as error:
            return ItemResult(item, "failed", f"not confirmed, {outcome}: {error}", item.user_id)
        if isinstance(answer, Left):
            return f"left: {answer.reason} (found by an exact lookup outside the listing)"
        if isinstance(answer, Found):
            reason = "still in the source (left out of the listing: a scope or filter change?)"
            return ItemResult(item, "skipped", reason, item.user_id)
        return "left: absent from the source, confirmed by an exact lookup"


def _one_by_one(on_result: Callable[[ItemResult], None]) -> Callable[[Sequence[ItemResult]], None]:
    def on_results(results: Sequence[ItemResult]) -> None:
        for result in results:
            on_result(result)

    return on_results


class _Person:
    """One person's representation as last written (None: not known yet, read before the first write); or,
    written in bulk, the change their steps make (`change`), sent with other people's."""

    def __init__(self, live: User | None, change: ChangeBuilder | None = None) -> None:
        self.change = change
        # Never the representation read for the plan: a PUT writes every attribute, so one written since (a
        # sanction's, an admin's) would be undone; it is read again before the person's first write.
        self.representation: dict[str, Any] | None = None
        # What the sync's record says it granted, as read (None: not read); kept up to date by approved revokes.
        self.recorded: GrantRecord | None = None if live is None else grant_record(live)
        self.grants_refused = Grants()
        self.revokes_refused = Grants()

    def note_failed(self, item: SyncItem) -> None:
        if item.action == "grant":
            self.grants_refused |= item.grants
        elif item.action == "revoke":
            self.revokes_refused |= item.grants

    def recordable(self, desired: Grants) -> Grants:
        """The grants to record as the sync's: the plan compares with the record, not with Keycloak, so a grant
        refused this run must not be recorded as given (or it is never tried again), and a revoke refused must
        stay recorded (or the grant becomes an admin's, never removed)."""
        return (desired - self.grants_refused) | self.revokes_refused
