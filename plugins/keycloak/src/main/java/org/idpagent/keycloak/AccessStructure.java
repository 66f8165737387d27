package org.idpagent.keycloak;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.keycloak.models.ClientModel;
import org.keycloak.models.GroupModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.RoleMapperModel;
import org.keycloak.models.RoleModel;
import org.keycloak.models.UserModel;
import org.keycloak.models.utils.ModelToRepresentation;

/**
 * What the admin API's partial export says about access, in the export's own shape: roles with their direct
 * composites, the group tree with each group's grants, the clients, the service accounts with their grants and
 * groups, and the default role. The export is for manage-realm only because it carries secrets; this carries none
 * (no client secret, no credential, no configuration), only what the view roles already show one listing at a
 * time. Read through the model API, as the export is, so federated and cached data look as they do there.
 */
final class AccessStructure {

    private AccessStructure() {}

    static Map<String, Object> of(KeycloakSession session, RealmModel realm) {
        List<ClientModel> clients = realm.getClientsStream().toList();
        Map<String, Object> clientRoles = new LinkedHashMap<>();
        for (ClientModel client : clients) {
            List<Map<String, Object>> found = client.getRolesStream().map(AccessStructure::role).toList();
            if (!found.isEmpty()) {
                clientRoles.put(client.getClientId(), found);
            }
        }
        Map<String, Object> roles = new LinkedHashMap<>();
        roles.put("realm", realmRoles(realm));
        roles.put("client", clientRoles);
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("roles", roles);
        body.put("groups", groups(session, realm));
        body.put("clients", clients.stream().map(AccessStructure::client).toList());
        body.put("users", clients.stream()
                .filter(ClientModel::isServiceAccountsEnabled)
                .map(client -> serviceAccount(session, realm, client))
                .filter(Objects::nonNull)
                .toList());
        RoleModel defaultRole = realm.getDefaultRole();
        body.put("defaultRole", defaultRole == null ? null : Map.of("id", defaultRole.getId(), "name", defaultRole.getName()));
        return body;
    }

    /** The realm's roles, each as the export shows it. */
    static List<Map<String, Object>> realmRoles(RealmModel realm) {
        return realm.getRolesStream().map(AccessStructure::role).toList();
    }

    /** The group tree from its top-level groups, each group as the export shows it. */
    static List<Map<String, Object>> groups(KeycloakSession session, RealmModel realm) {
        return session.groups().getTopLevelGroupsStream(realm).map(AccessStructure::group).toList();
    }

    private static Map<String, Object> role(RoleModel role) {
        Map<String, Object> found = new LinkedHashMap<>();
        found.put("id", role.getId());
        found.put("name", role.getName());
        found.put("description", role.getDescription());
        found.put("composite", role.isComposite());
        found.put("clientRole", role.isClientRole());
        found.put("containerId", role.getContainerId());
        found.put("attributes", role.getAttributes());
        if (role.isComposite()) {
            Map<String, Object> composites = new LinkedHashMap<>();
            composites.put("realm", realmRoleNames(role.getCompositesStream()));
            composites.put("client", clientRoleNames(role.getCompositesStream()));
            found.put("composites", composites);
        }
        return found;
    }

    private static Map<String, Object> group(GroupModel group) {
        Map<String, Object> found = new LinkedHashMap<>();
        found.put("id", group.getId());
        found.put("name", group.getName());
        found.put("path", ModelToRepresentation.buildGroupPath(group));
        found.put("attributes", group.getAttributes());
        grants(found, group);
        found.put("subGroups", group.getSubGroupsStream().map(AccessStructure::group).toList());
        return found;
    }

    private static Map<String, Object> client(ClientModel client) {
        Map<String, Object> found = new LinkedHashMap<>();
        found.put("id", client.getId());
        found.put("clientId", client.getClientId());
        found.put("name", client.getName());
        found.put("enabled", client.isEnabled());
        found.put("publicClient", client.isPublicClient());
        found.put("bearerOnly", client.isBearerOnly());
        found.put("serviceAccountsEnabled", client.isServiceAccountsEnabled());
        found.put("protocol", client.getProtocol());
        return found;
    }

    private static Map<String, Object> serviceAccount(KeycloakSession session, RealmModel realm, ClientModel client) {
        UserModel user = session.users().getServiceAccount(client);
        if (user == null) {
            return null;
        }
        Map<String, Object> found = new LinkedHashMap<>();
        found.put("id", user.getId());
        found.put("username", user.getUsername());
        found.put("email", user.getEmail());
        found.put("firstName", user.getFirstName());
        found.put("lastName", user.getLastName());
        found.put("emailVerified", user.isEmailVerified());
        found.put("enabled", user.isEnabled());
        found.put("createdTimestamp", user.getCreatedTimestamp());
        found.put("serviceAccountClientId", client.getClientId());
        found.put("attributes", customAttributes(user, AdminAttributes.of(session)));
        found.put("requiredActions", user.getRequiredActionsStream().toList());
        grants(found, user);
        found.put("groups", user.getGroupsStream().map(ModelToRepresentation::buildGroupPath).toList());
        return found;
    }

    /**
     * The user's own attributes, as the export has them (the model's map also holds the profile's fields: username,
     * email, names, which the representation carries apart), and as the admin API shows them: those the user
     * profile hides from admins left out.
     */
    private static Map<String, List<String>> customAttributes(UserModel user, AdminAttributes shown) {
        Map<String, List<String>> attributes = new TreeMap<>(user.getAttributes());
        attributes.keySet().removeAll(PROFILE_FIELDS);
        attributes.keySet().removeIf(name -> !shown.readable(name));
        return attributes;
    }

    private static final Set<String> PROFILE_FIELDS = Set.of(
            UserModel.USERNAME, UserModel.EMAIL, UserModel.FIRST_NAME, UserModel.LAST_NAME, UserModel.EMAIL_VERIFIED);

    /** A user's or group's direct role mappings as the export names them: realmRoles and clientRoles. */
    private static void grants(Map<String, Object> found, RoleMapperModel holder) {
        found.put("realmRoles", realmRoleNames(holder.getRoleMappingsStream()));
        found.put("clientRoles", clientRoleNames(holder.getRoleMappingsStream()));
    }

    private static List<String> realmRoleNames(Stream<RoleModel> roles) {
        return roles.filter(role -> !role.isClientRole()).map(RoleModel::getName).sorted().toList();
    }

    /** Client roles by their client's clientId (the export's key), names sorted. */
    private static Map<String, List<String>> clientRoleNames(Stream<RoleModel> roles) {
        Map<String, List<String>> named = new TreeMap<>();
        roles.filter(RoleModel::isClientRole).forEach(role -> named
                .computeIfAbsent(((ClientModel) role.getContainer()).getClientId(), key -> new ArrayList<>())
                .add(role.getName()));
        named.values().forEach(names -> names.sort(null));
        return named;
    }
}
