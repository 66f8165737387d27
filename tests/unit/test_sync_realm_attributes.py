"""Which user profiles the sync refuses to write into: those that drop its attributes, and those that let
users edit its bookkeeping (a user could then take their account out of the sync's hands)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.keycloak.models import UserProfileConfig
from agent.sync.live import attribute_problems
from agent.sync.model import EXTERNAL_ID_ATTRIBUTE, GRANTS_ATTRIBUTE, SOURCE_ATTRIBUTE

MAPPED = ("department",)


def profile(policy: str | None, *declared: dict[str, Any]) -> UserProfileConfig:
    return UserProfileConfig(attributes=tuple(declared), unmanaged_attribute_policy=policy)


def declared(name: str, *edit: str) -> dict[str, Any]:
    return {"name": name, "permissions": {"view": ["admin", "user"], "edit": list(edit)}}


def test_admin_edit_keeps_every_attribute_from_users() -> None:
    assert attribute_problems(profile("ADMIN_EDIT"), MAPPED) == []


@pytest.mark.parametrize("policy", [None, "ADMIN_VIEW"])
def test_a_policy_that_drops_unmanaged_attributes_is_refused(policy: str | None) -> None:
    (problem,) = attribute_problems(profile(policy), MAPPED)
    assert problem.startswith("would silently drop") and "department" in problem and SOURCE_ATTRIBUTE in problem


def test_enabled_lets_users_edit_the_bookkeeping_and_is_refused() -> None:
    (problem,) = attribute_problems(profile("ENABLED"), MAPPED)
    assert problem.startswith("lets users edit the sync's bookkeeping") and EXTERNAL_ID_ATTRIBUTE in problem
    assert "department" not in problem  # a mapped field a user edits is only written again by the next run


def test_declared_attributes_count_with_their_permissions() -> None:
    everything = [declared(name, "admin") for name in (*MAPPED, SOURCE_ATTRIBUTE, EXTERNAL_ID_ATTRIBUTE)]
    everything += [declared(GRANTS_ATTRIBUTE, "admin"), declared("idp-agent.disabled-by-sync", "admin")]
    assert attribute_problems(profile(None, *everything), MAPPED) == []
    everything[1] = declared(SOURCE_ATTRIBUTE, "admin", "user")
    (problem,) = attribute_problems(profile(None, *everything), MAPPED)
    assert problem == f"lets users edit the sync's bookkeeping ({SOURCE_ATTRIBUTE}) from the account console"
