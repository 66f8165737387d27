"""Creates that never replay a POST blindly (GatewayBase._create), against scripted answers to each POST (no server):
an object whose answer was lost is adopted by lookup, and a resend that meets the first POST committed late (409)
adopts that one: exactly one object (RELIABILITY.md S10)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from agent.errors import Conflict, OutcomeUnknown
from agent.keycloak.authentication import AuthenticationCalls
from agent.keycloak.base import GatewayBase
from agent.keycloak.models import RequiredAction
from agent.keycloak.transport import Response

pytestmark = pytest.mark.unit

Step = Callable[["ScriptedCreates"], Response]
PATH = "/admin/realms/r/users"


class ScriptedCreates(GatewayBase):
    """Answers each POST with the next step of a script; the lookup finds `committed`, which a step may set (Keycloak
    committed a POST whose answer never came)."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)  # no transport
        self.committed: str | None = None
        self.posts = 0
        self.lookups = 0

    def _write(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Response:
        self.posts += 1
        return self.steps.pop(0)(self)

    def find(self) -> str | None:
        self.lookups += 1
        return self.committed

    def create(self) -> str:
        return self._create(PATH, {"username": "ada"}, self.find)


def created(gateway: ScriptedCreates) -> Response:
    return Response(201, None, f"http://kc{PATH}/new-id")


def lost_uncommitted(gateway: ScriptedCreates) -> Response:
    raise OutcomeUnknown("connection lost before the answer")


def lost_committed(gateway: ScriptedCreates) -> Response:
    gateway.committed = "committed-id"
    raise OutcomeUnknown("connection lost before the answer")


def conflict_with_late_first_post(gateway: ScriptedCreates) -> Response:
    gateway.committed = "late-id"  # the first, slow POST committed after the lookup
    raise Conflict("POST answered 409", status=409)


def conflict_with_something_else(gateway: ScriptedCreates) -> Response:
    raise Conflict("POST answered 409: User exists with same email", status=409)


def test_a_lost_answer_is_adopted_without_a_resend() -> None:
    gateway = ScriptedCreates(lost_committed)
    assert gateway.create() == "committed-id"
    assert gateway.posts == 1


def test_a_lost_answer_to_an_uncommitted_post_is_sent_once_more() -> None:
    gateway = ScriptedCreates(lost_uncommitted, created)
    assert gateway.create() == "new-id"
    assert (gateway.posts, gateway.lookups) == (2, 1)


def test_a_resend_that_meets_the_late_first_post_adopts_it() -> None:
    gateway = ScriptedCreates(lost_uncommitted, conflict_with_late_first_post)
    assert gateway.create() == "late-id"
    assert gateway.posts == 2


def test_a_resend_whose_answer_is_lost_too_adopts_what_the_lookup_finds() -> None:
    gateway = ScriptedCreates(lost_uncommitted, lost_committed)
    assert gateway.create() == "committed-id"
    assert gateway.posts == 2


@pytest.mark.parametrize(
    ("second", "error"),
    [(conflict_with_something_else, Conflict), (lost_uncommitted, OutcomeUnknown)],
    ids=["409 for another object", "lost again"],
)
def test_a_resend_that_fails_with_nothing_to_adopt_raises(second: Step, error: type[Exception]) -> None:
    gateway = ScriptedCreates(lost_uncommitted, second)
    with pytest.raises(error):
        gateway.create()
    assert gateway.lookups == 2


def test_a_409_to_the_first_post_stays_a_conflict() -> None:
    # The object was there before this call: not ours to adopt (tests/integration/test_gateway.py).
    gateway = ScriptedCreates(conflict_with_late_first_post)
    with pytest.raises(Conflict):
        gateway.create()
    assert gateway.lookups == 0


class ScriptedRegistration(AuthenticationCalls):
    """register_required_action against scripted POST answers and a listing that finds nothing."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.committed: str | None = None
        self.posts = 0

    def _write(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Response:
        self.posts += 1
        return self.steps.pop(0)(self)  # type: ignore[arg-type]

    def list_required_actions(self, realm: str) -> list[RequiredAction]:
        return []


def test_a_registration_resent_after_a_lost_answer_that_meets_the_late_first_is_done() -> None:
    gateway = ScriptedRegistration(lost_uncommitted, conflict_with_late_first_post)
    gateway.register_required_action("r", "idp-agent-terms", "Terms")  # the 409 means: registered
    assert gateway.posts == 2
