"""Planning realm settings: what a `~ realm` change compares and shows."""

from __future__ import annotations

from agent.realm.kinds.base import LiveRealm
from agent.realm.kinds.realm_settings import plan_realm_settings
from agent.realm.spec import RealmSpec

FINGERPRINT = "idp-agent.fingerprint.smtp.password"


def test_a_plan_of_realm_attributes_leaves_out_the_agents_bookkeeping() -> None:
    """Fingerprints are hashes of stored secrets and client.secret.* Keycloak's records: not the user's to
    manage, and never shown, on either side of the change."""
    live = LiveRealm(
        "acme",
        exists=True,
        id="realm-uuid",
        representation={
            "attributes": {
                "frontendUrl": "https://old.example.org",
                FINGERPRINT: "hmac-of-the-smtp-password",
                "idp-agent.managed.component.c1": "true",
                "client.secret.creation.time.c2": "1700000000",
            }
        },
    )
    spec = RealmSpec.model_validate(
        {
            "realm": "acme",
            "keycloak": {
                "attributes": {"frontendUrl": "https://new.example.org"}  # bookkeeping may not be written here
            },
        }
    )

    [change] = plan_realm_settings(spec, live)

    [field] = change.fields
    assert field.field == "attributes"
    assert field.shown() == ({"frontendUrl": "https://old.example.org"}, {"frontendUrl": "https://new.example.org"})
