package org.idpagent.keycloak;

import jakarta.persistence.EntityManager;
import jakarta.ws.rs.BadRequestException;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.PUT;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.stream.Collectors;
import org.keycloak.common.util.Time;
import org.keycloak.connections.jpa.JpaConnectionProvider;
import org.keycloak.connections.jpa.support.EntityManagers;
import org.keycloak.events.admin.OperationType;
import org.keycloak.events.admin.ResourceType;
import org.keycloak.models.AdminRoles;
import org.keycloak.models.ClientModel;
import org.keycloak.models.GroupModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.RoleModel;
import org.keycloak.models.UserConsentModel;
import org.keycloak.models.UserModel;
import org.keycloak.models.UserSessionModel;
import org.keycloak.models.cache.CachedUserModel;
import org.keycloak.models.cache.UserCache;
import org.keycloak.models.jpa.UserAdapter;
import org.keycloak.models.jpa.entities.UserEntity;
import org.keycloak.models.utils.KeycloakModelUtils;
import org.keycloak.services.managers.AuthenticationManager;
import org.keycloak.services.managers.UserConsentManager;
import org.keycloak.services.managers.UserSessionManager;
import org.keycloak.services.resources.admin.AdminAuth;
import org.keycloak.services.resources.admin.AdminEventBuilder;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;
import org.keycloak.services.resources.admin.fgap.AdminPermissions;

/**
 * Many users' changes in one request and one transaction. Through the admin API a sync changes a user with a PUT of
 * the whole representation (run through the user profile), one request per group joined or left, per role mapping,
 * a logout and a consent listing: about ten milliseconds of Keycloak's time each. Here each change names only what
 * it changes: profile fields, the attributes to set or remove, groups to join or leave, realm and client roles to
 * grant or revoke, and whether to end the user's sessions, consents and offline tokens (as the admin API's logout
 * and consent revocation do).
 *
 * <p>A change is checked whole before any of it is made: the user exists and is not a service account, every group
 * and role named exists, a new email or username is not another user's, no group is both joined and left and no
 * role both granted and revoked, the user has no other change in the request (then none of them is made), and no
 * earlier change of the request takes the same new username or email. One that fails is reported and left out; the
 * rest are made. Group membership is direct membership, as in the admin API. Permissions are those of the admin API
 * calls it replaces, checked before what the answers could tell: query users (for the request), manage the user
 * (before its change is looked at), manage its group membership and each group's, map roles on it and each role.
 * Applying the same changes again leaves the same state, so the request is a PUT. Only for realms without user
 * federation (409 otherwise): a federated user's changes may have to reach LDAP, which the admin API handles.
 */
public final class UserChanges {

    /** The most changes one request may carry: one transaction, a few hundred users. */
    static final int MAX_CHANGES = 500;

    /** One user's change; absent parts are left as they are. */
    public static final class Change {
        public String id;
        /** username, email, firstName, lastName (null clears), enabled, emailVerified. */
        public Map<String, Object> fields;
        /** Attribute name to its values; null removes the attribute. */
        public Map<String, List<String>> attributes;
        public List<String> joinGroups;
        public List<String> leaveGroups;
        public List<String> grantRealmRoles;
        public List<String> revokeRealmRoles;
        public List<ClientRole> grantClientRoles;
        public List<ClientRole> revokeClientRoles;
        /** Log out of every session, revoke every consent and offline token. */
        public boolean endSessions;
    }

    /** A client role: the client's id (not its clientId) and the role's name. */
    public static final class ClientRole {
        public String client;
        public String role;
    }

    /** The request's body. */
    public static final class Batch {
        public List<Change> users;
    }

    private static final Set<String> FIELDS = Set.of("username", "email", "firstName", "lastName", "enabled", "emailVerified");
    // Each ends in an IN list written by ValueLists (a request's ids and emails fit in one: MAX_CHANGES).
    private static final String USERS_BY_ID = "select u from UserEntity u where u.realmId = :realmId and u.id in ";
    private static final String EMAIL_HOLDERS =
            "select u.email, u.id from UserEntity u where u.realmId = :realmId and u.email in ";

    private final KeycloakSession session;
    private final RealmModel realm;
    private AdminAttributes adminAttributes;

    UserChanges(KeycloakSession session, RealmModel realm) {
        this.session = session;
        this.realm = realm;
    }

    /** {"users": [{"id", "error"}]}: the changes that were not made, and why; every other change was made. */
    @PUT
    @Path("changes")
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces(MediaType.APPLICATION_JSON)
    public Map<String, Object> apply(Batch batch) {
        AdminAuth auth = Callers.authenticate(session, realm);
        AdminPermissionEvaluator permissions = AdminPermissions.evaluator(session, realm, auth);
        // First, as the admin API: a caller who may not even query users learns nothing from the answers (which
        // ids, emails, usernames, groups or roles exist), nor about the realm's federation.
        permissions.users().requireQuery();
        Callers.refuseFederation(realm);
        List<Change> changes = batch == null || batch.users == null ? List.of() : batch.users;
        if (changes.size() > MAX_CHANGES) {
            throw new BadRequestException("at most " + MAX_CHANGES + " changes a request");
        }
        adminAttributes = AdminAttributes.of(session);
        // In Keycloak's batch mode, as its realm import writes users: its JPA code leaves out the flush after each
        // insert, and queries do not flush first. Each of those flushes walks every entity the request has loaded,
        // so a request's cost grew with the square of its size. Nothing here reads what it wrote: each user comes
        // once, and no change joins and leaves one group or grants and revokes one role (see resolve).
        List<Resolved> checked = new ArrayList<>(changes.size());
        EntityManagers.runInBatch(session, () -> {
            // Every change is checked, and every permission, before the first write: a refusal (403) writes nothing.
            checked.addAll(checkAll(changes, permissions));
            writeAll(checked, auth);
        }, false);
        List<Map<String, String>> refused = new ArrayList<>();
        for (Resolved resolved : checked) {
            if (resolved.problem != null) {
                Map<String, String> failure = new LinkedHashMap<>();
                failure.put("id", resolved.change.id);
                failure.put("error", resolved.problem);
                refused.add(failure);
            }
        }
        return Map.of("users", refused);
    }

    private List<Resolved> checkAll(List<Change> changes, AdminPermissionEvaluator permissions) {
        List<Resolved> checked = new ArrayList<>(changes.size());
        Map<String, Integer> changesOf = new HashMap<>();
        changes.forEach(change -> changesOf.merge(String.valueOf(change.id), 1, Integer::sum));
        Allowed allowed = new Allowed(permissions);
        Map<String, UserModel> loaded = loadUsers(changes.stream().map(change -> change.id).filter(Objects::nonNull)
                .collect(Collectors.toSet()));
        Map<String, Set<String>> emailHolders = emailHolders(changes);
        Set<String> claimed = new HashSet<>();
        for (Change change : changes) {
            // A user named twice: neither change is made, so the answer "refused" for that id is true of all of it.
            Resolved resolved = changesOf.get(String.valueOf(change.id)) > 1
                    ? twice(change) : check(change, loaded.get(change.id), allowed, emailHolders);
            if (resolved.problem == null) {
                resolved.problem = claim(change, claimed);
            }
            checked.add(resolved);
        }
        return checked;
    }

    /**
     * The request's users, read from the database in one query rather than one lookup each through the user cache
     * (which would first cache each user only to drop it at the write). Left out, so looked up as the admin API
     * does: federated users (the lookup validates them with their provider) and every user of a realm with
     * organizations (the lookup makes an organization's managed members read-only). The cache entries of the
     * users written are evicted at the write, as the cache's own adapter does.
     */
    private Map<String, UserModel> loadUsers(Set<String> ids) {
        Map<String, UserModel> users = new HashMap<>();
        if (ids.isEmpty() || realm.isOrganizationsEnabled()) {
            return users;
        }
        EntityManager entityManager = session.getProvider(JpaConnectionProvider.class).getEntityManager();
        List<String> listed = List.copyOf(ids);
        ValueLists.bind(entityManager.createQuery(ValueLists.in(USERS_BY_ID, listed), UserEntity.class), listed)
                .setParameter("realmId", realm.getId())
                .getResultStream()
                .filter(entity -> entity.getFederationLink() == null)
                .forEach(entity -> users.put(entity.getId(), new UserAdapter(session, realm, entityManager, entity)));
        return users;
    }

    /**
     * The new username and email a change takes, unless an earlier change of the request took one of them: both
     * checks against the database see it as it was before the request, and two changes taking one name would fail
     * the whole request at commit.
     */
    private String claim(Change change, Set<String> claimed) {
        List<String> names = new ArrayList<>(2);
        if (change.fields != null && change.fields.get("username") instanceof String username) {
            names.add("username " + KeycloakModelUtils.toLowerCaseSafe(username));
        }
        if (change.fields != null && change.fields.get("email") instanceof String email && !email.isBlank()
                && !realm.isDuplicateEmailsAllowed()) {
            names.add("email " + KeycloakModelUtils.toLowerCaseSafe(email));
        }
        for (String name : names) {
            if (claimed.contains(name)) {
                return name + " is taken by another change in this request";
            }
        }
        claimed.addAll(names);
        return null;
    }

    /**
     * Who holds each new email the changes name (lowercased, as Keycloak keeps emails): one query for the request
     * instead of a lookup per change. Read before any write, as each lookup was.
     */
    private Map<String, Set<String>> emailHolders(List<Change> changes) {
        Set<String> emails = new HashSet<>();
        if (!realm.isDuplicateEmailsAllowed()) {
            for (Change change : changes) {
                if (change.fields != null && change.fields.get("email") instanceof String text && !text.isBlank()) {
                    emails.add(KeycloakModelUtils.toLowerCaseSafe(text));
                }
            }
        }
        Map<String, Set<String>> holders = new HashMap<>();
        if (emails.isEmpty()) {
            return holders;
        }
        List<String> listed = List.copyOf(emails);
        EntityManager entityManager = session.getProvider(JpaConnectionProvider.class).getEntityManager();
        ValueLists.bind(entityManager.createQuery(ValueLists.in(EMAIL_HOLDERS, listed), Object[].class), listed)
                .setParameter("realmId", realm.getId())
                .getResultStream()
                .forEach(row -> holders.computeIfAbsent((String) row[0], key -> new HashSet<>()).add((String) row[1]));
        return holders;
    }

    /** The changes that passed their checks, each with an admin event as the admin API leaves for its own writes
     * (kept where the realm keeps admin events), the change as its representation. */
    private void writeAll(List<Resolved> checked, AdminAuth auth) {
        AdminEventBuilder events = new AdminEventBuilder(realm, auth, session, session.getContext().getConnection())
                .resource(ResourceType.USER);
        for (Resolved resolved : checked) {
            if (resolved.problem == null) {
                write(resolved);
                events.clone(session).operation(OperationType.UPDATE).resourcePath("users", resolved.user.getId())
                        .representation(resolved.change).detail("via", "idp-agent users/changes").success();
            }
        }
    }

    /** The change with what it names found in the realm, or the problem that keeps it from being made. */
    private Resolved check(Change change, UserModel loaded, Allowed allowed, Map<String, Set<String>> emailHolders) {
        Resolved resolved = new Resolved(change);
        resolved.user = loaded != null || change.id == null ? loaded : session.users().getUserById(realm, change.id);
        if (resolved.user == null) {
            resolved.problem = "no user with id " + change.id;
            return resolved;
        }
        // Before anything about the change is looked up: a caller who may not manage this user learns nothing more.
        allowed.requireManage(resolved.user);
        if (resolved.user.getServiceAccountClientLink() != null) {
            resolved.problem = "a service account is changed through its client";
            return resolved;
        }
        resolved.problem = resolve(change, resolved.user, resolved, emailHolders);
        if (resolved.problem != null) {
            return resolved;
        }
        if (!resolved.joins.isEmpty() || !resolved.leaves.isEmpty()) {
            allowed.requireManageGroupMembership(resolved.user);
            resolved.joins.forEach(allowed::requireManageMembership);
            resolved.leaves.forEach(allowed::requireManageMembership);
        }
        if (!resolved.grants.isEmpty() || !resolved.revokes.isEmpty()) {
            // Both, as the admin API's role mapping asks: mapping roles on this user, and mapping each role.
            allowed.requireMapRoles(resolved.user);
        }
        resolved.grants.forEach(allowed::requireMapRole);
        resolved.revokes.forEach(allowed::requireMapRole);
        return resolved;
    }

    private void write(Resolved resolved) {
        Change change = resolved.change;
        // The cache's adapter registers the user's invalidation at its first write and from then on passes every
        // call to the database's adapter. Taken at once, the reads below (attributes, groups, roles) come from the
        // rows being written, instead of first filling the cache with what is about to change.
        UserModel user = resolved.user instanceof CachedUserModel cached ? cached.getDelegateForUpdate() : evicted(resolved.user);
        setFields(user, change.fields);
        if (change.attributes != null) {
            // An attribute written costs a delete and an insert per value: only those that differ are written.
            change.attributes.forEach((name, values) -> {
                List<String> current = user.getAttributeStream(name).collect(Collectors.toList());
                if (values == null && !current.isEmpty()) {
                    user.removeAttribute(name);
                } else if (values != null && !values.equals(current)) {
                    user.setAttribute(name, values);
                }
            });
        }
        if (!resolved.joins.isEmpty() || !resolved.leaves.isEmpty()) {
            // Direct membership, as the admin API's group join and leave check it: isMemberOf also counts the
            // subgroups, so a member of /staff/engineering would never be made a direct member of /staff.
            Set<String> direct = user.getGroupsStream().map(GroupModel::getId).collect(Collectors.toSet());
            resolved.joins.stream().filter(group -> !direct.contains(group.getId())).forEach(user::joinGroup);
            resolved.leaves.stream().filter(group -> direct.contains(group.getId())).forEach(user::leaveGroup);
        }
        resolved.grants.stream().filter(role -> !user.hasDirectRole(role)).forEach(user::grantRole);
        resolved.revokes.stream().filter(user::hasDirectRole).forEach(user::deleteRoleMapping);
        if (change.endSessions) {
            endSessions(user);
        }
    }

    /** A user read from the database (see loadUsers), its cache entries evicted before the write: by id, and by
     *  the username and email it has until then. */
    private UserModel evicted(UserModel user) {
        UserCache cache = session.getProvider(UserCache.class);
        if (cache != null) {
            cache.evict(realm, user);
        }
        return user;
    }

    /** The groups and roles a change names, and its new email and username checked: the first problem found. */
    private String resolve(Change change, UserModel user, Resolved resolved, Map<String, Set<String>> emailHolders) {
        if (change.fields != null) {
            for (Map.Entry<String, Object> field : change.fields.entrySet()) {
                String problem = fieldProblem(field.getKey(), field.getValue());
                if (problem != null) {
                    return problem;
                }
            }
            String problem = checkUnique(change.fields, user, emailHolders);
            if (problem != null) {
                return problem;
            }
        }
        if (change.attributes != null) {
            for (Map.Entry<String, List<String>> attribute : change.attributes.entrySet()) {
                String name = attribute.getKey();
                // Keycloak stores these as the user's fields when set as attributes: written that way they would
                // skip the checks above (a username taken or emptied).
                if (FIELDS.contains(name)) {
                    return "'" + name + "' is a field, not an attribute: change it under fields";
                }
                // As the admin API takes them; removing one stays possible (erasing personal data).
                if (attribute.getValue() != null && !adminAttributes.editable(name)) {
                    return "attribute '" + name + "' is not editable by administrators in the realm's user profile";
                }
            }
        }
        for (String id : orEmpty(change.joinGroups)) {
            String problem = group(id, resolved.joins);
            if (problem != null) {
                return problem;
            }
        }
        for (String id : orEmpty(change.leaveGroups)) {
            String problem = group(id, resolved.leaves);
            if (problem != null) {
                return problem;
            }
        }
        String problem = realmRoles(change.grantRealmRoles, resolved.grants);
        problem = problem != null ? problem : realmRoles(change.revokeRealmRoles, resolved.revokes);
        problem = problem != null ? problem : clientRoles(change.grantClientRoles, resolved.grants);
        problem = problem != null ? problem : clientRoles(change.revokeClientRoles, resolved.revokes);
        return problem != null ? problem : contradiction(resolved);
    }

    /** A change that would both join and leave a group, or grant and revoke a role, says nothing clear. */
    private static String contradiction(Resolved resolved) {
        for (GroupModel group : resolved.joins) {
            if (resolved.leaves.contains(group)) {
                return "group " + group.getId() + " is both joined and left";
            }
        }
        for (RoleModel role : resolved.grants) {
            if (resolved.revokes.contains(role)) {
                return "role " + role.getName() + " is both granted and revoked";
            }
        }
        return null;
    }

    /** A second change of a user in one request: refused, as which of the two should win is not said. */
    private static Resolved twice(Change change) {
        Resolved resolved = new Resolved(change);
        resolved.problem = "user " + change.id + " is changed twice in one request";
        return resolved;
    }

    private String checkUnique(Map<String, Object> fields, UserModel user, Map<String, Set<String>> emailHolders) {
        Object email = fields.get("email");
        if (email instanceof String text && !text.isBlank() && !realm.isDuplicateEmailsAllowed()) {
            Set<String> holders = emailHolders.getOrDefault(KeycloakModelUtils.toLowerCaseSafe(text), Set.of());
            if (holders.stream().anyMatch(holder -> !holder.equals(user.getId()))) {
                return "email " + text + " belongs to another user";
            }
        }
        Object username = fields.get("username");
        if (username != null) {
            if (!(username instanceof String text) || text.isBlank()) {
                return "a username cannot be empty";
            }
            UserModel holder = session.users().getUserByUsername(realm, text);
            if (holder != null && !holder.getId().equals(user.getId())) {
                return "username " + text + " belongs to another user";
            }
        }
        return null;
    }

    /** A field the change may set, with a value of its type: a flag given as text must not read as false. */
    private static String fieldProblem(String name, Object value) {
        if (!FIELDS.contains(name)) {
            return "unknown field '" + name + "'";
        }
        boolean flag = name.equals("enabled") || name.equals("emailVerified");
        if (flag ? !(value instanceof Boolean) : value != null && !(value instanceof String)) {
            return "field '" + name + "' must be " + (flag ? "true or false" : "text or null");
        }
        return null;
    }

    /** The group of an id, unless it is an organization's: the admin API keeps those to the Organizations
     *  API (manage-organizations), and manage-users must not reach around it. */
    private String group(String id, Set<GroupModel> into) {
        GroupModel group = realm.getGroupById(id);
        if (group == null) {
            return "no group with id " + id;
        }
        if (group.getType() == GroupModel.Type.ORGANIZATION) {
            return "group " + id + " is an organization's: change its members through the Organizations API";
        }
        into.add(group);
        return null;
    }

    private String realmRoles(List<String> names, Set<RoleModel> into) {
        for (String name : orEmpty(names)) {
            RoleModel role = realm.getRole(name);
            if (role == null) {
                return "no realm role " + name;
            }
            into.add(role);
        }
        return null;
    }

    private String clientRoles(List<ClientRole> roles, Set<RoleModel> into) {
        for (ClientRole wanted : orEmpty(roles)) {
            ClientModel client = wanted.client == null ? null : realm.getClientById(wanted.client);
            RoleModel role = client == null || wanted.role == null ? null : client.getRole(wanted.role);
            if (role == null) {
                return "no client role " + wanted.role + " of client " + wanted.client;
            }
            into.add(role);
        }
        return null;
    }

    private static void setFields(UserModel user, Map<String, Object> fields) {
        if (fields == null) {
            return;
        }
        fields.forEach((name, value) -> {
            String text = value == null ? null : value.toString();
            switch (name) {
                case "username" -> user.setUsername(text);
                case "email" -> user.setEmail(text == null || text.isBlank() ? null : text);
                case "firstName" -> user.setFirstName(text);
                case "lastName" -> user.setLastName(text);
                case "enabled" -> user.setEnabled(Boolean.TRUE.equals(value));
                case "emailVerified" -> user.setEmailVerified(Boolean.TRUE.equals(value));
                default -> throw new IllegalStateException("unchecked field " + name);
            }
        });
    }

    /**
     * What the admin API's logout and consent revocation do: tokens issued before now are refused, every session is
     * logged out (back-channel to the clients that asked for it), every consent and offline token is revoked.
     */
    private void endSessions(UserModel user) {
        session.users().setNotBeforeForUser(realm, user, Math.toIntExact(Time.currentTimeSeconds()));
        List<UserSessionModel> sessions = session.sessions().getUserSessionsStream(realm, user).collect(Collectors.toList());
        for (UserSessionModel userSession : sessions) {
            AuthenticationManager.backchannelLogout(session, realm, userSession, session.getContext().getUri(),
                    session.getContext().getConnection(), session.getContext().getHttpRequest().getHttpHeaders(), true);
        }
        Set<ClientModel> clients = new LinkedHashSet<>(new UserSessionManager(session).findClientsWithOfflineToken(realm, user));
        UserConsentManager.getConsentsStream(session, realm, user)
                .map(UserConsentModel::getClient)
                .filter(Objects::nonNull)
                .forEach(clients::add);
        for (ClientModel client : clients) {
            UserConsentManager.revokeConsentToClient(session, client, user);
        }
    }

    private static <T> List<T> orEmpty(List<T> values) {
        return values == null ? List.of() : values;
    }

    /**
     * The admin API's permission checks without the repeats a request of many users makes: whether the caller may
     * manage a group's membership or map a role depends on the caller and that group or role only, so each is checked
     * once; the manage-users role allows managing every user and their group membership (the admin API's own checks
     * ask for it first), so a caller holding it is not asked again for each user.
     */
    private static final class Allowed {
        private final AdminPermissionEvaluator permissions;
        private final boolean managesEveryUser;
        private final Set<String> groups = new HashSet<>();
        private final Set<String> roles = new HashSet<>();

        Allowed(AdminPermissionEvaluator permissions) {
            this.permissions = permissions;
            this.managesEveryUser = permissions.hasOneAdminRole(AdminRoles.MANAGE_USERS);
        }

        void requireManage(UserModel user) {
            if (!managesEveryUser) {
                permissions.users().requireManage(user);
            }
        }

        void requireManageGroupMembership(UserModel user) {
            if (!managesEveryUser) {
                permissions.users().requireManageGroupMembership(user);
            }
        }

        void requireMapRoles(UserModel user) {
            if (!managesEveryUser) {
                permissions.users().requireMapRoles(user);
            }
        }

        void requireManageMembership(GroupModel group) {
            if (!groups.contains(group.getId())) {
                permissions.groups().requireManageMembership(group);
                groups.add(group.getId());
            }
        }

        void requireMapRole(RoleModel role) {
            if (!roles.contains(role.getId())) {
                permissions.roles().requireMapRole(role);
                roles.add(role.getId());
            }
        }
    }

    /** What a change names, found in the realm. */
    private static final class Resolved {
        final Change change;
        UserModel user;
        String problem;
        final Set<GroupModel> joins = new LinkedHashSet<>();
        final Set<GroupModel> leaves = new LinkedHashSet<>();
        final Set<RoleModel> grants = new LinkedHashSet<>();
        final Set<RoleModel> revokes = new LinkedHashSet<>();

        Resolved(Change change) {
            this.change = change;
        }
    }
}
