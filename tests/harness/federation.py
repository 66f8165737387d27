"""A user federation on a realm, for tests of what changes when one is there (the plugin pack steps aside)."""

from __future__ import annotations

from agent.keycloak import KeycloakGateway


def add_disabled_ldap_federation(gateway: KeycloakGateway, realm: str) -> str:
    """An LDAP user storage provider, disabled and pointing nowhere: its presence is what counts, and a disabled
    one is never asked (an enabled one would add users and members from its directory)."""
    found = gateway.get_realm(realm)
    assert found is not None
    return gateway.create_component(
        realm,
        name="directory",
        provider_id="ldap",
        provider_type="org.keycloak.storage.UserStorageProvider",
        parent_id=found.id,
        config={
            "enabled": ["false"],
            "vendor": ["other"],
            "connectionUrl": ["ldap://127.0.0.1:1"],
            "usersDn": ["ou=people,dc=example,dc=org"],
            "usernameLDAPAttribute": ["uid"],
            "rdnLDAPAttribute": ["uid"],
            "uuidLDAPAttribute": ["entryUUID"],
            "userObjectClasses": ["inetOrgPerson"],
            "authType": ["none"],
            "editMode": ["READ_ONLY"],
        },
    )
