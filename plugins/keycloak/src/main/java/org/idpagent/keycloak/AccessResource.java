package org.idpagent.keycloak;

import jakarta.persistence.EntityManager;
import jakarta.persistence.TypedQuery;
import jakarta.ws.rs.BadRequestException;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.MediaType;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.hibernate.jpa.HibernateHints;
import org.keycloak.connections.jpa.JpaConnectionProvider;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.utils.ModelToRepresentation;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;
import org.keycloak.services.resources.admin.fgap.AdminPermissions;
import org.keycloak.userprofile.UserProfileProvider;

/**
 * Bulk reads for access reviews and the sync. Through the admin API a review lists users page by page and then asks
 * "who holds this role" and "who is in this group" one role and one group per request, each member as a user
 * representation, plus each privileged user's credentials one user at a time; a sync pages through the full user
 * listing, where Keycloak builds each user's representation through its user profile. Here {@code users-by-id}
 * gives pages of users with what those reads carry ({@code users-by-id/bounds}: where the pages end, to read several
 * at once), {@code memberships} every role's and group's direct members by id, each from a handful of database
 * queries, {@code direct-grants} the roles and groups some users hold directly (what a sync checks before it grants
 * anything), and {@code structure} roles, groups, clients and service accounts, all under the permissions of the admin
 * API reads they replace.
 *
 * <p>{@code users-by-id}, {@code memberships} and {@code direct-grants} are only for realms whose users all live in Keycloak's database: a
 * user storage provider (LDAP, Kerberos, custom) can add users, attributes and members from elsewhere, so for such
 * a realm they answer 409 and the caller uses the admin API.
 */
public final class AccessResource {

    /** The most users a page holds, and the size of a page not asked for: a few MB of JSON. */
    static final int MAX_PAGE = 5000;

    // People only: the admin API's user listing leaves service accounts out too. Pages go by user id, each after the
    // last id of the one before: an id never changes, so a user renamed while the realm is read stays in its range
    // (paged by username, it could move into a range already read and be missed), and a page's attributes, required
    // actions and credentials are selected by the ids of its users.
    private static final String PEOPLE = " where u.realmId = :realmId and u.serviceAccountClientLink is null";
    private static final String USERS = "select u.id, u.username, u.email, u.emailVerified, u.firstName, u.lastName,"
            + " u.enabled, u.createdTimestamp, u.federationLink from UserEntity u" + PEOPLE;
    // Added only when a page starts after an id: the first page's lower bound is no bound at all (an empty string
    // would be NULL on Oracle, and no id compares greater than NULL).
    private static final String AFTER = " and u.id > :after";
    private static final String BY_ID = " order by u.id";
    // Ids alone, in order: where ranges of a page each end (see bounds).
    private static final String IDS = "select u.id from UserEntity u" + PEOPLE + BY_ID;
    // The rows of the page's users, by their ids. Not by the page's id range joined to the users' realm: H2 scans
    // the realm's users by its realm index for such a join, so each page of a 100k realm read all 100k users in
    // each of these three queries (2-3 s a page; PostgreSQL read the whole realm in 5-6 s). By id, each row is one
    // index lookup on any database; the ids are the realm's, read by the users query.
    private static final String OF_USERS = " where x.user.id in ";
    private static final String ATTRIBUTES = "select x.user.id, x.name, x.value, x.longValue from UserAttributeEntity x"
            + OF_USERS;
    private static final String REQUIRED_ACTIONS = "select x.user.id, x.action from UserRequiredActionEntity x"
            + OF_USERS;
    // Credential types only: no secret, salt or credential data is selected.
    private static final String CREDENTIAL_TYPES = "select distinct x.user.id, x.type from CredentialEntity x"
            + OF_USERS;
    /**
     * Rows per round trip to the database. Keycloak's default of 100 makes a page of 1,000 users with five
     * attributes each some 60 round trips; every row these queries select is read.
     */
    static final int FETCH_SIZE = 5000;
    private static final String ROLE_MAPPINGS =
            "select m.user.id, m.roleId from UserRoleMappingEntity m where m.user.realmId = :realmId";
    private static final String GROUP_MEMBERSHIPS =
            "select m.user.id, m.groupId from UserGroupMembershipEntity m where m.user.realmId = :realmId";

    // The same rows for some users only (the people a sync is about to grant something to).
    private static final String USERS_ROLE_MAPPINGS = ROLE_MAPPINGS + " and m.user.id in ";
    private static final String USERS_GROUP_MEMBERSHIPS = GROUP_MEMBERSHIPS + " and m.user.id in ";
    /** The most users {@code direct-grants} takes at once: their ids fit in a request line Keycloak accepts. */
    static final int MAX_IDS = 80;

    private final KeycloakSession session;
    private final RealmModel realm;

    AccessResource(KeycloakSession session, RealmModel realm) {
        this.session = session;
        this.realm = realm;
    }

    /**
     * {"users": [user]}: up to {@code max} users (at most {@link #MAX_PAGE}) whose id sorts after {@code after}
     * (none: from the first) and, with {@code until}, not after it, ordered by id, service accounts left out, each
     * with attributes (those the user profile lets admins see), required actions and the types of its stored
     * credentials. A page shorter than asked for is the last. With {@code bounds}, the answer also holds what
     * {@code users-by-id/bounds} gives for {@code every} = bounds: a reader's first page and bounds in one request.
     * The admin API asks view-users for its full user listing, and so does this. (Earlier packs paged by
     * username under {@code users}: that path is gone, so an older agent gets 404 and reads the admin API, rather
     * than sending usernames where ids are compared.)
     */
    @GET
    @Path("users-by-id")
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> users(
            @QueryParam("after") String after, @QueryParam("until") String until, @QueryParam("max") Integer max,
            @QueryParam("bounds") Integer every) {
        requireViewUsers();
        int size = pageSize(max);
        List<Map<String, Object>> users = page(after == null || after.isEmpty() ? null : after, until, size);
        if (every == null) {
            return Map.of("users", users);
        }
        // The first page of a realm that fits in it: no run of `every` (as many or more) users ends anywhere.
        boolean wholeRealm = (after == null || after.isEmpty()) && until == null && users.size() < size;
        return Map.of("users", users, "bounds", wholeRealm && pageSize(every) >= size ? List.of() : pageEnds(every));
    }

    /**
     * {"bounds": [id]}: the ids that end each run of {@code every} users (at most {@link #MAX_PAGE}) in the order
     * {@code users-by-id} pages by, so a reader can ask for the ranges (before the first], (first, second], ...
     * (last, end) at once instead of one page after another. Ranges that grew meanwhile are paged on within the range
     * with {@code after}; together the ranges cover every id, so no user present throughout is missed.
     */
    @GET
    @Path("users-by-id/bounds")
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> bounds(@QueryParam("every") Integer every) {
        requireViewUsers();
        return Map.of("bounds", pageEnds(every));
    }

    private List<String> pageEnds(Integer every) {
        int size = pageSize(every);
        List<String> bounds = new ArrayList<>();
        int[] position = {0};
        query(IDS, String.class).forEach(id -> {
            if (++position[0] % size == 0) {
                bounds.add(id);
            }
        });
        return bounds;
    }

    private void requireViewUsers() {
        callerPermissions().users().requireView();
        Callers.refuseFederation(realm);
    }

    /** What the request's caller (an admin API token, checked here) may do in this realm. */
    private AdminPermissionEvaluator callerPermissions() {
        return AdminPermissions.evaluator(session, realm, Callers.authenticate(session, realm));
    }

    private static int pageSize(Integer asked) {
        return asked == null || asked <= 0 ? MAX_PAGE : Math.min(asked, MAX_PAGE);
    }

    /**
     * {"roles": {roleId: [userId]}, "groups": {groupId: [userId]}}: the users each realm and client role is mapped
     * on directly (service accounts included), and each group's direct members. Roles and groups without members are
     * absent. Roles named by {@code skipRole} (ids) are left out: the default role holds every user the realm
     * created, and a review reads it only when it grants more than the baseline.
     */
    @GET
    @Path("memberships")
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> memberships(@QueryParam("skipRole") List<String> skipRole) {
        AdminPermissionEvaluator permissions = callerPermissions();
        // What the admin API asks for the role and group member listings this replaces.
        permissions.realm().requireViewRealm();
        permissions.clients().requireView();
        permissions.users().requireView();
        Callers.refuseFederation(realm);
        Set<String> skipped = skipRole == null ? Set.of() : Set.copyOf(skipRole);
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("roles", byContainer(query(ROLE_MAPPINGS).filter(row -> !skipped.contains((String) row[1]))));
        body.put("groups", byContainer(query(GROUP_MEMBERSHIPS)));
        return body;
    }

    /**
     * {"roles": {userId: [roleId]}, "groups": {userId: [groupId]}}: the realm and client roles mapped on each user
     * named by {@code id} (at most {@link #MAX_IDS}) directly, and the groups each is a direct member of. Users
     * without any, or that do not exist, are absent. The admin API gives the same one user and two requests at a
     * time ({@code role-mappings}, {@code groups}), under view-users, as does this.
     */
    @GET
    @Path("direct-grants")
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> directGrants(@QueryParam("id") List<String> ids) {
        requireViewUsers();
        List<String> wanted = ids == null ? List.of() : ids;
        if (wanted.size() > MAX_IDS) {
            throw new BadRequestException("at most " + MAX_IDS + " ids a request, not " + wanted.size());
        }
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("roles", wanted.isEmpty() ? Map.of() : byUser(usersQuery(USERS_ROLE_MAPPINGS, wanted)));
        body.put("groups", wanted.isEmpty() ? Map.of() : byUser(usersQuery(USERS_GROUP_MEMBERSHIPS, wanted)));
        return body;
    }

    /**
     * What a sync reads of the realm before it plans, in one request: {"realm": the realm's representation as the
     * admin API's realm read gives it, "groups": the group tree and "roles": the realm roles, as the partial export
     * gives them, "requiredActions": the registered required actions, "userProfile": the user profile's
     * configuration}. Through the admin API these are four or five requests (the export needs manage-realm, for the
     * secrets it carries), each a few milliseconds of Keycloak's CPU however small its answer. Asks view-realm and
     * view-users, as those reads do.
     */
    @GET
    @Path("sync-outline")
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> syncOutline() {
        AdminPermissionEvaluator permissions = callerPermissions();
        permissions.realm().requireViewRealm();
        permissions.users().requireView();
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("realm", ModelToRepresentation.toRepresentation(session, realm, false));
        body.put("groups", AccessStructure.groups(session, realm));
        body.put("roles", AccessStructure.realmRoles(realm));
        body.put("requiredActions",
                realm.getRequiredActionProvidersStream().map(ModelToRepresentation::toRepresentation).toList());
        body.put("userProfile", session.getProvider(UserProfileProvider.class).getConfiguration());
        return body;
    }

    /**
     * The realm's access structure in the partial export's shape, without its secrets (see {@link AccessStructure}):
     * roles with composites, groups with grants, clients, service accounts, the default role. The admin API shows
     * the same through its role, client, group and service-account listings, one request per client, composite
     * role and service account, under view-realm, view-clients and view-users; so does this, in one. Federation
     * does not matter here: the structure is read through the model API, as the export reads it.
     */
    @GET
    @Path("structure")
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> structure() {
        AdminPermissionEvaluator permissions = callerPermissions();
        permissions.realm().requireViewRealm();
        permissions.clients().requireView();
        permissions.users().requireView();
        return AccessStructure.of(session, realm);
    }

    /** Up to {@code size} users with an id in (after, until]; no lower bound when after is null, no upper one when
     *  until is. */
    private List<Map<String, Object>> page(String after, String until, int size) {
        String jpql = USERS + (after == null ? "" : AFTER) + (until == null ? "" : " and u.id <= :until") + BY_ID;
        TypedQuery<Object[]> usersQuery = createQuery(jpql, Object[].class)
                .setParameter("realmId", realm.getId());
        if (after != null) {
            usersQuery.setParameter("after", after);
        }
        if (until != null) {
            usersQuery.setParameter("until", until);
        }
        List<Object[]> rows = usersQuery.setMaxResults(size).getResultList();
        if (rows.isEmpty()) {
            return List.of();
        }
        List<String> ids = rows.stream().map(row -> (String) row[0]).toList();
        Map<String, Map<String, List<String>>> attributes = new HashMap<>();
        // As the admin API shows them: attributes the user profile hides from admins are left out.
        AdminAttributes shown = AdminAttributes.of(session);
        rowsOf(ATTRIBUTES, ids).filter(row -> shown.readable((String) row[1])).forEach(row -> attributes
                .computeIfAbsent((String) row[0], key -> new TreeMap<>())
                .computeIfAbsent((String) row[1], key -> new ArrayList<>())
                // Long values (over 255 characters) are kept in their own column.
                .add(row[2] != null ? (String) row[2] : (String) row[3]));
        Map<String, List<String>> actions = byUser(rowsOf(REQUIRED_ACTIONS, ids));
        Map<String, List<String>> credentials = byUser(rowsOf(CREDENTIAL_TYPES, ids));
        List<Map<String, Object>> users = new ArrayList<>(rows.size());
        for (Object[] row : rows) {
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
        }
        return users;
    }

    private EntityManager entityManager() {
        return session.getProvider(JpaConnectionProvider.class).getEntityManager();
    }

    /** A query that takes its rows from the database {@link #FETCH_SIZE} at a time. */
    private <T> TypedQuery<T> createQuery(String jpql, Class<T> type) {
        return entityManager().createQuery(jpql, type).setHint(HibernateHints.HINT_FETCH_SIZE, FETCH_SIZE);
    }

    private Stream<Object[]> query(String jpql) {
        return query(jpql, Object[].class);
    }

    private <T> Stream<T> query(String jpql, Class<T> type) {
        return createQuery(jpql, type).setParameter("realmId", realm.getId()).getResultStream();
    }

    /** The rows of {@code jpql} (ending in "in ") for the users {@code ids} (at most {@link #MAX_IDS}). */
    private Stream<Object[]> usersQuery(String jpql, List<String> ids) {
        return ValueLists.bind(createQuery(ValueLists.in(jpql, ids), Object[].class), ids)
                .setParameter("realmId", realm.getId())
                .getResultStream();
    }

    /** The rows of {@code jpql} (ending in "in ") for the users {@code ids}, one query per
     *  {@link ValueLists#MAX_VALUES} of them. */
    private Stream<Object[]> rowsOf(String jpql, List<String> ids) {
        List<Object[]> rows = new ArrayList<>();
        for (int start = 0; start < ids.size(); start += ValueLists.MAX_VALUES) {
            List<String> chunk = ids.subList(start, Math.min(start + ValueLists.MAX_VALUES, ids.size()));
            TypedQuery<Object[]> query = createQuery(ValueLists.in(jpql, chunk), Object[].class);
            rows.addAll(ValueLists.bind(query, chunk).getResultList());
        }
        return rows.stream();
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
}
