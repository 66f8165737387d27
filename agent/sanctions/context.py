"""What a sanction operation acts with (Keycloak, the store, the realm's policy, the notifier, the clock), and
its journal entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.keycloak import KeycloakGateway
from agent.notify.mail import Notifier
from agent.sanctions.policy import SanctionPolicy
from agent.store.clock import Clock
from agent.store.db import Store
from agent.store.journal import NewEntry
from agent.store.sanctions import Sanction
from agent.store.values import JsonValue


@dataclass(frozen=True)
class SanctionContext:
    gateway: KeycloakGateway
    store: Store
    realm: str
    policy: SanctionPolicy
    notifier: Notifier | None
    clock: Clock
    actor: str = "idp-agent"
    run_id: str | None = None


def journal(
    context: SanctionContext, sanction: Sanction, action: str, reason: str, details: Mapping[str, JsonValue]
) -> None:
    """One entry about the sanctioned user, in the operation's run, by its actor."""
    entry = NewEntry(
        actor=context.actor, action=action, subject=sanction.username, realm=context.realm, run_id=context.run_id,
        reason=reason, details=details,
    )  # fmt: skip
    context.store.journal.append_many([entry])
