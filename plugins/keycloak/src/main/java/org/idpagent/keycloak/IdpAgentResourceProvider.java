package org.idpagent.keycloak;

import jakarta.ws.rs.Path;
import org.keycloak.models.KeycloakSession;
import org.keycloak.services.resource.RealmResourceProvider;

/** One request's provider: the root of {@code /realms/{realm}/idp-agent}, bound to the realm named in the URL. */
public final class IdpAgentResourceProvider implements RealmResourceProvider {

    private final KeycloakSession session;

    IdpAgentResourceProvider(KeycloakSession session) {
        this.session = session;
    }

    @Override
    public Object getResource() {
        return this;
    }

    /** {@code /realms/{realm}/idp-agent/access}: see {@link AccessResource}. */
    @Path("access")
    public AccessResource access() {
        return new AccessResource(session, session.getContext().getRealm());
    }

    /** {@code /realms/{realm}/idp-agent/users}: see {@link UserChanges}. */
    @Path("users")
    public UserChanges users() {
        return new UserChanges(session, session.getContext().getRealm());
    }

    @Override
    public void close() {
    }
}
