package org.idpagent.keycloak;

import org.keycloak.Config;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.services.resource.RealmResourceProvider;
import org.keycloak.services.resource.RealmResourceProviderFactory;

/** Registers the idp-agent endpoints under {@code /realms/{realm}/idp-agent}. */
public final class IdpAgentResourceProviderFactory implements RealmResourceProviderFactory {

    public static final String ID = "idp-agent";

    @Override
    public RealmResourceProvider create(KeycloakSession session) {
        return new IdpAgentResourceProvider(session);
    }

    @Override
    public void init(Config.Scope config) {
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {
    }

    @Override
    public void close() {
    }

    @Override
    public String getId() {
        return ID;
    }
}
