"""A realm plan applied under a run in the store, each change journalled as Keycloak accepts or refuses it:
what `idp-agent apply` and the daemon's drift job (with `apply: true`) leave for auditors (N6 of RELIABILITY.md).
A journal entry names the object and the action, never a value (a secret may be among them)."""

from __future__ import annotations

from collections.abc import Callable

from agent.keycloak import KeycloakGateway
from agent.realm.engine import ApplyResult, apply_plan
from agent.realm.plan import Change, Plan
from agent.store.db import Store
from agent.store.journal import NewEntry
from agent.store.locks import store_lock
from agent.store.runs import Run

STOPPED = "stopped; the next apply converges from the live realm"


def _ignore_applied(change: Change) -> None:
    pass


def _ignore_failed(change: Change, why: str) -> None:
    pass


def _nothing() -> None:
    pass


def apply_journalled(
    gateway: KeycloakGateway,
    plan: Plan,
    store: Store,
    *,
    run_kind: str,
    actor: str,
    reason: str,
    summary: str = "",
    on_applied: Callable[[Change], None] = _ignore_applied,
    on_failed: Callable[[Change, str], None] = _ignore_failed,
    checkpoint: Callable[[], None] = _nothing,
) -> tuple[ApplyResult, Run]:
    """`apply_plan` under a run of `run_kind`, holding the store's lock of the realm (two applies of one realm,
    CLI or daemon, never interleave; Locked names the holder): succeeded when every change was applied, failed
    when Keycloak refused one or the apply stopped (Keycloak unavailable: the error is raised after the run is
    ended; a process killed meanwhile has its run ended as interrupted by the next holder of the lock).
    `checkpoint` is called after each journal entry (the daemon's stop request). Returns the result and the
    finished run."""
    with store_lock(store, f"realm-{plan.realm}"):
        run = store.runs.start_run(run_kind, plan.realm, summary=summary)

        def journal(change: Change, why: str = "") -> None:
            entry = NewEntry(
                actor=actor,
                action=f"realm.{change.action}",
                subject=f"{change.kind} {change.key}",
                realm=plan.realm,
                run_id=run.id,
                reason=f"refused by Keycloak: {why}" if why else reason,
            )
            store.journal.append_many([entry])
            checkpoint()

        def applied(change: Change) -> None:
            journal(change)
            on_applied(change)

        def failed(change: Change, why: str) -> None:
            journal(change, why)
            on_failed(change, why)

        try:
            result = apply_plan(gateway, plan, on_applied=applied, on_failed=failed)
        except BaseException:
            store.runs.finish_run(run.id, "failed", summary=STOPPED)
            raise
        return result, store.runs.finish_run(run.id, "succeeded" if result.ok else "failed")
