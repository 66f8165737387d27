"""Writing planned steps to Keycloak, one journal entry per write (intent, outcome); thin I/O only.

A step that fails is journalled with its error and the others still run: the pass then verifies against
Keycloak, and whatever did not take leaves the sanction pending for the next pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.errors import KeycloakError, Rejected
from agent.keycloak import KeycloakGateway
from agent.sanctions.plan import Step
from agent.store.journal import NewEntry
from agent.store.sanctions import Sanction
from agent.store.values import JsonValue


@dataclass(frozen=True)
class StepResult:
    step: Step
    error: str = ""  # empty when Keycloak accepted the write

    @property
    def ok(self) -> bool:
        return not self.error


# What Keycloak said, after the request line the gateway's errors begin with.
KEYCLOAK_ANSWER = re.compile(r"answered \d{3}: (?P<message>.+)$", re.DOTALL)


def failures(results: Sequence[StepResult]) -> str:
    """Why writes failed, each reason once ('' when none did): what the check then finds missing says what did
    not take, this says why (Keycloak refuses to disable a user of a read-only LDAP federation, for one)."""
    reasons = dict.fromkeys(_answer(result.error) for result in results if not result.ok)
    return f"writes failed: {' / '.join(reasons)}" if reasons else ""


def _answer(error: str) -> str:
    found = KEYCLOAK_ANSWER.search(error)
    return found.group("message").strip() if found else error


@dataclass(frozen=True)
class Writer:
    """Who writes, in which realm and run, and where journal entries go."""

    gateway: KeycloakGateway
    realm: str
    actor: str
    run_id: str | None
    journal: Callable[[NewEntry], None]


def apply_steps(writer: Writer, sanction: Sanction, steps: Sequence[Step], reason: str) -> list[StepResult]:
    """Write each step for the sanction's user; every write is journalled, its intent before it is sent and its
    outcome after (a process killed in between leaves an intent without an outcome, and the next pass, which
    finds Keycloak already as the step left it, plans no step: the journal still tells of the write)."""
    results = []
    for step in steps:
        writer.journal(_entry(writer, sanction, StepResult(step), reason, intent=True))
        try:
            _write(writer.gateway, writer.realm, sanction.user_id, step)
            result = StepResult(step)
        except KeycloakError as error:
            result = StepResult(step, str(error) or type(error).__name__)
        writer.journal(_entry(writer, sanction, result, reason))
        results.append(result)
    return results


def _write(gateway: KeycloakGateway, realm: str, user_id: str, step: Step) -> None:
    kind = step.kind
    if kind in {"disable", "enable"}:
        gateway.update_user(realm, user_id, {"enabled": kind == "enable"})
    elif kind in {"remove-role", "add-role"}:
        role = gateway.get_realm_role(realm, step.target)
        if role is None:
            raise Rejected(f"realm role '{step.target}' does not exist in realm '{realm}'")
        change = gateway.add_realm_roles_to_user if kind == "add-role" else gateway.remove_realm_roles_from_user
        change(realm, user_id, [role])
    elif kind in {"remove-client-role", "add-client-role"}:
        _write_client_role(gateway, realm, user_id, step)
    elif kind in {"join-group", "leave-group"}:
        group = gateway.find_group_by_path(realm, step.target)
        if group is None:
            raise Rejected(f"group {step.target} does not exist in realm '{realm}'")
        move = gateway.add_user_to_group if kind == "join-group" else gateway.remove_user_from_group
        move(realm, user_id, group.id)
    elif kind == "set-attributes":
        gateway.set_user_attributes(realm, user_id, step.attributes)
    elif kind in {"add-required-actions", "remove-required-actions"}:
        gateway.set_user_required_actions(realm, user_id, step.required_actions)
    elif kind == "logout":
        gateway.logout_user(realm, user_id)
    elif kind == "revoke-consent":
        gateway.revoke_consent(realm, user_id, step.target)
    else:  # pragma: no cover - StepKind is closed
        raise AssertionError(kind)


def _write_client_role(gateway: KeycloakGateway, realm: str, user_id: str, step: Step) -> None:
    client = gateway.find_client(realm, step.client_id)
    if client is None:
        raise Rejected(f"client '{step.client_id}' does not exist in realm '{realm}'")
    role = gateway.get_client_role(realm, client.id, step.target)
    if role is None:
        raise Rejected(f"client '{step.client_id}' has no role '{step.target}' in realm '{realm}'")
    if step.kind == "add-client-role":
        gateway.add_client_roles_to_user(realm, user_id, client.id, [role])
    else:
        gateway.remove_client_roles_from_user(realm, user_id, client.id, [role])


_TARGET_KEYS = {
    "remove-role": "role",
    "add-role": "role",
    "remove-client-role": "role",
    "add-client-role": "role",
    "join-group": "group",
    "leave-group": "group",
    "revoke-consent": "client_id",
}


def _entry(writer: Writer, sanction: Sanction, result: StepResult, reason: str, *, intent: bool = False) -> NewEntry:
    step = result.step
    outcome = "intent" if intent else "applied" if result.ok else "failed"
    details: dict[str, JsonValue] = {"sanction_id": sanction.id, "level": sanction.level, "id": sanction.user_id,
                                     "outcome": outcome}  # fmt: skip
    if step.kind in _TARGET_KEYS:
        details[_TARGET_KEYS[step.kind]] = step.target
    if step.client_id:
        details["client_id"] = step.client_id
    if step.kind == "set-attributes":
        details["fields"] = {name: list(values) for name, values in sorted(step.attributes.items())}
    if step.kind.endswith("required-actions"):
        details["required_actions"] = list(step.required_actions)
    if step.drift:
        details["drift"] = True
    if not result.ok:
        details["error"] = result.error
    return NewEntry(
        actor=writer.actor,
        action=f"sanction.{step.kind}",
        subject=sanction.username,
        realm=writer.realm,
        run_id=writer.run_id,
        reason=reason,
        details=details,
    )
