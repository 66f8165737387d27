"""The pure parts of the terms kind: who can be asked to accept a raised version, and what the plan says."""

from __future__ import annotations

from agent.keycloak.models import USER_STORAGE_PROVIDER, Component, stored_by_keycloak
from agent.realm.kinds.terms import unimported_federations, version_note
from agent.realm.spec import TermsSpec


def federation(name: str, **config: str) -> Component:
    return Component(
        id=f"id-{name}",
        name=name,
        provider_id="ldap",
        provider_type=USER_STORAGE_PROVIDER,
        config={key: (value,) for key, value in config.items()},
    )


def test_only_enabled_federations_that_leave_their_users_in_the_directory_are_named() -> None:
    found = [
        federation("corp", importEnabled="false"),
        federation("imported", importEnabled="true"),
        federation("default-import"),  # Keycloak imports unless told not to
        federation("off", importEnabled="false", enabled="false"),
        federation("shouting", importEnabled="FALSE"),
    ]
    assert unimported_federations(found) == ("corp", "shouting")


def test_users_of_a_federation_without_import_are_not_stored_by_keycloak() -> None:
    assert stored_by_keycloak("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    assert not stored_by_keycloak("f:9c1f0e34-0000-4000-8000-000000000000:acarter")


def test_the_plan_names_the_federations_whose_users_cannot_be_asked() -> None:
    terms = TermsSpec(version=2)
    assert version_note(terms, 1, 3) == "3 users must accept again"
    assert version_note(terms, 1, 3, ("corp",)) == (
        "3 users must accept again; users of corp cannot be asked: Keycloak keeps required actions only for users "
        "it stores (turn import on to ask them)"
    )
    # Nobody is asked: nothing to say about who could not be.
    assert version_note(TermsSpec(version=1), None, 3, ("corp",)) == (
        "existing users are not asked; new users accept at their first login"
    )
