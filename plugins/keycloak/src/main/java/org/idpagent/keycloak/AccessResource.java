package org.idpagent.keycloak;

import jakarta.persistence.EntityManager;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.NotAuthorizedException;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.keycloak.connections.jpa.JpaConnectionProvider;
import org.keycloak.jose.jws.JWSInput;
import org.keycloak.jose.jws.JWSInputException;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.representations.AccessToken;
import org.keycloak.services.managers.AppAuthManager;
import org.keycloak.services.managers.AuthenticationManager.AuthResult;
import org.keycloak.services.resources.admin.AdminAuth;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;
import org.keycloak.services.resources.admin.fgap.AdminPermissions;
import org.keycloak.storage.UserStorageProvider;

/**
 * Bulk reads for access reviews. Through the admin API a review lists users page by page and then asks "who holds
 * this role" and "who is in this group" one role and one group per request, each member as a user representation,
 * plus each privileged user's credentials one user at a time. This answers all of it in one request, a handful of
 * database queries, under the permissions a reviewer needs for those listings. {@code access/users} gives the users
 * alone, for a sync that would otherwise page through the full user listing.
 *
 * <p>Only for realms whose users all live in Keycloak's database: a user storage provider (LDAP, Kerberos, custom)
 * can add users, attributes and members from elsewhere, so for such a realm this answers 409 and the caller uses
 * the admin API.
 */
public final class AccessResource {

    // People only: the admin API's user listing leaves service accounts out too.
    private static final String USERS = "select u.id, u.username, u.email, u.emailVerified, u.firstName, u.lastName,"
            + " u.enabled, u.createdTimestamp, u.federationLink from UserEntity u"
            + " where u.realmId = :realmId and u.serviceAccountClientLink is null order by u.username";
    private static final String ATTRIBUTES = "select a.user.id, a.name, a.value, a.longValue from UserAttributeEntity a"
            + " where a.user.realmId = :realmId and a.user.serviceAccountClientLink is null";
    private static final String REQUIRED_ACTIONS = "select r.user.id, r.action from UserRequiredActionEntity r"
            + " where r.user.realmId = :realmId and r.user.serviceAccountClientLink is null";
    // Credential types only: no secret, salt or credential data is selected.
    private static final String CREDENTIAL_TYPES = "select distinct c.user.id, c.type from CredentialEntity c"
            + " where c.user.realmId = :realmId and c.user.serviceAccountClientLink is null";
    private static final String ROLE_MAPPINGS =
            "select m.user.id, m.roleId from UserRoleMappingEntity m where m.user.realmId = :realmId";
    private static final String GROUP_MEMBERSHIPS =
            "select m.user.id, m.groupId from UserGroupMembershipEntity m where m.user.realmId = :realmId";

    private final KeycloakSession session;
    private final RealmModel realm;

    AccessResource(KeycloakSession session, RealmModel realm) {
        this.session = session;
        this.realm = realm;
    }

    /**
     * {"users": [user], "roles": {roleId: [userId]}, "groups": {groupId: [userId]}}: every user but service
     * accounts, ordered by username, with attributes, required actions and the types of their stored credentials;
     * the users each realm and client role is mapped on directly (service accounts included), and each group's
     * direct members. Roles and groups without members are absent. Roles named by {@code skipRole} (ids) are left
     * out: the default role holds every user the realm created, and a review reads it only when it grants more
     * than the baseline.
     */
    @GET
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> access(@QueryParam("skipRole") List<String> skipRole) {
        AdminPermissionEvaluator permissions = AdminPermissions.evaluator(session, realm, authenticate());
        // What the admin API asks for the user, role member and group member listings this replaces.
        permissions.realm().requireViewRealm();
        permissions.clients().requireView();
        permissions.users().requireView();
        refuseFederation();
        Set<String> skipped = skipRole == null ? Set.of() : Set.copyOf(skipRole);
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("users", users());
        body.put("roles", byContainer(query(ROLE_MAPPINGS).filter(row -> !skipped.contains((String) row[1]))));
        body.put("groups", byContainer(query(GROUP_MEMBERSHIPS)));
        return body;
    }

    /**
     * {"users": [user]}: the users alone, as {@link #access} gives them, for a sync that compares every user with
     * its sources. The admin API asks view-users for its full listing, and so does this.
     */
    @GET
    @Path("users")
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> usersOnly() {
        AdminPermissions.evaluator(session, realm, authenticate()).users().requireView();
        refuseFederation();
        return Map.of("users", users());
    }

    private void refuseFederation() {
        if (realm.getComponentsStream(realm.getId(), UserStorageProvider.class.getName()).findAny().isPresent()) {
            throw new WebApplicationException(
                    Response.status(Response.Status.CONFLICT)
                            .entity(Map.of("error", "realm has user federation; read it through the admin API"))
                            .type(MediaType.APPLICATION_JSON)
                            .build());
        }
    }

    private List<Map<String, Object>> users() {
        Map<String, Map<String, List<String>>> attributes = new HashMap<>();
        query(ATTRIBUTES).forEach(row -> attributes
                .computeIfAbsent((String) row[0], key -> new TreeMap<>())
                .computeIfAbsent((String) row[1], key -> new ArrayList<>())
                // Long values (over 255 characters) are kept in their own column.
                .add(row[2] != null ? (String) row[2] : (String) row[3]));
        Map<String, List<String>> actions = byUser(query(REQUIRED_ACTIONS));
        Map<String, List<String>> credentials = byUser(query(CREDENTIAL_TYPES));
        List<Map<String, Object>> users = new ArrayList<>();
        query(USERS).forEach(row -> {
            String id = (String) row[0];
            Map<String, Object> user = new LinkedHashMap<>();
            user.put("id", id);
            user.put("username", row[1]);
            user.put("email", row[2]);
            user.put("emailVerified", row[3]);
            user.put("firstName", row[4]);
            user.put("lastName", row[5]);
            user.put("enabled", row[6]);
            user.put("createdTimestamp", row[7]);
            user.put("federationLink", row[8]);
            user.put("attributes", attributes.getOrDefault(id, Map.of()));
            user.put("requiredActions", actions.getOrDefault(id, List.of()));
            user.put("credentialTypes", credentials.getOrDefault(id, List.of()));
            users.add(user);
        });
        return users;
    }

    private Stream<Object[]> query(String jpql) {
        EntityManager entityManager = session.getProvider(JpaConnectionProvider.class).getEntityManager();
        return entityManager.createQuery(jpql, Object[].class).setParameter("realmId", realm.getId()).getResultStream();
    }

    /** (userId, value) rows as userId -> [value]. */
    private static Map<String, List<String>> byUser(Stream<Object[]> rows) {
        Map<String, List<String>> values = new HashMap<>();
        rows.forEach(row -> values.computeIfAbsent((String) row[0], key -> new ArrayList<>()).add((String) row[1]));
        return values;
    }

    /** (userId, roleId or groupId) rows as roleId or groupId -> [userId]. */
    private static Map<String, List<String>> byContainer(Stream<Object[]> rows) {
        Map<String, List<String>> members = new LinkedHashMap<>();
        rows.forEach(row -> members.computeIfAbsent((String) row[1], key -> new ArrayList<>()).add((String) row[0]));
        return members;
    }

    /**
     * The caller's admin identity, checked the way the admin API checks it: the bearer token is verified by the
     * realm that issued it (master for the console's admins, the reviewed realm for its own service accounts).
     */
    private AdminAuth authenticate() {
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
        RealmModel tokenRealm = issuer == null ? null : session.realms().getRealmByName(issuer.substring(issuer.lastIndexOf('/') + 1));
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
}
