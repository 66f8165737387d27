package org.idpagent.keycloak;

import jakarta.ws.rs.NotAuthorizedException;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.Map;
import org.keycloak.common.util.Encode;
import org.keycloak.jose.jws.JWSInput;
import org.keycloak.jose.jws.JWSInputException;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.representations.AccessToken;
import org.keycloak.services.managers.AppAuthManager;
import org.keycloak.services.managers.AuthenticationManager.AuthResult;
import org.keycloak.services.resources.admin.AdminAuth;
import org.keycloak.storage.UserStorageProvider;

/** Who is calling, and whether the realm's users all live in Keycloak's database: shared by every endpoint. */
final class Callers {

    private Callers() {
    }

    /**
     * The caller's admin identity, checked the way the admin API checks it: the bearer token is verified by the
     * realm that issued it (master for the console's admins, the realm itself for its own service accounts).
     */
    static AdminAuth authenticate(KeycloakSession session, RealmModel realm) {
        String tokenString = AppAuthManager.extractAuthorizationHeaderToken(session.getContext().getHttpRequest().getHttpHeaders());
        if (tokenString == null) {
            throw new NotAuthorizedException("Bearer");
        }
        AccessToken token;
        try {
            token = new JWSInput(tokenString).readJsonContent(AccessToken.class);
        } catch (JWSInputException e) {
            throw new NotAuthorizedException("Bearer token format error");
        }
        String issuer = token.getIssuer();
        // The issuer ends in the realm's name as a URL path segment: decoded, as the admin API does.
        RealmModel tokenRealm = issuer == null
                ? null
                : session.realms().getRealmByName(Encode.decodePath(issuer.substring(issuer.lastIndexOf('/') + 1)));
        if (tokenRealm == null) {
            throw new NotAuthorizedException("Unknown realm in token");
        }
        session.getContext().setRealm(tokenRealm);
        try {
            AuthResult result = new AppAuthManager.BearerTokenAuthenticator(session)
                    .setRealm(tokenRealm)
                    .setConnection(session.getContext().getConnection())
                    .setHeaders(session.getContext().getHttpRequest().getHttpHeaders())
                    .authenticate();
            if (result == null) {
                throw new NotAuthorizedException("Bearer");
            }
            return new AdminAuth(tokenRealm, result.token(), result.user(), result.client());
        } finally {
            session.getContext().setRealm(realm);
        }
    }

    /** 409 for a realm with a user storage provider (LDAP, Kerberos, custom): the caller uses the admin API. */
    static void refuseFederation(RealmModel realm) {
        if (realm.getComponentsStream(realm.getId(), UserStorageProvider.class.getName()).findAny().isPresent()) {
            throw new WebApplicationException(
                    Response.status(Response.Status.CONFLICT)
                            .entity(Map.of("error", "realm has user federation; use the admin API"))
                            .type(MediaType.APPLICATION_JSON)
                            .build());
        }
    }
}
