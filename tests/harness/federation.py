"""A user federation on a realm, for tests of what changes when one is there (the plugin pack steps aside)."""

from __future__ import annotations

from agent.keycloak import KeycloakGateway
from agent.settings import LdapConnection


def add_disabled_ldap_federation(gateway: KeycloakGateway, realm: str) -> str:
    """An LDAP user storage provider, disabled and pointing nowhere: its presence is what counts, and a disabled
    one is never asked (an enabled one would add users and members from its directory)."""
    config = {"enabled": ["false"], "connectionUrl": ["ldap://127.0.0.1:1"], "authType": ["none"]}
    return add_federation(gateway, realm, "directory", "ou=people,dc=example,dc=org", config)


def add_ldap_federation(gateway: KeycloakGateway, realm: str, ldap: LdapConnection, *, import_users: bool) -> str:
    """An enabled LDAP federation on `ldap`'s people (read only), importing its users into Keycloak or not."""
    config = {
        "enabled": ["true"],
        "connectionUrl": [ldap.url],
        "authType": ["simple"],
        "bindDn": [ldap.bind_dn],
        "bindCredential": [ldap.bind_password.reveal()],
        "importEnabled": [str(import_users).lower()],
    }
    return add_federation(gateway, realm, "corp", f"ou=people,{ldap.base_dn}", config)


def add_federation(gateway: KeycloakGateway, realm: str, name: str, users_dn: str, config: dict[str, list[str]]) -> str:
    found = gateway.get_realm(realm)
    assert found is not None
    return gateway.create_component(
        realm,
        name=name,
        provider_id="ldap",
        provider_type="org.keycloak.storage.UserStorageProvider",
        parent_id=found.id,
        config={
            "vendor": ["other"],
            "usersDn": [users_dn],
            "usernameLDAPAttribute": ["uid"],
            "rdnLDAPAttribute": ["uid"],
            "uuidLDAPAttribute": ["entryUUID"],
            "userObjectClasses": ["inetOrgPerson"],
            "editMode": ["READ_ONLY"],
            **config,
        },
    )
