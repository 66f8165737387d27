package org.idpagent.keycloak;

import java.util.HashSet;
import java.util.Set;
import org.keycloak.models.KeycloakSession;
import org.keycloak.representations.userprofile.config.UPAttribute;
import org.keycloak.representations.userprofile.config.UPAttributePermissions;
import org.keycloak.representations.userprofile.config.UPConfig;
import org.keycloak.representations.userprofile.config.UPConfig.UnmanagedAttributePolicy;
import org.keycloak.userprofile.UserProfileProvider;

/**
 * Which user attributes the realm's user profile lets administrators see and change: what the admin API shows and
 * takes (its user-profile context). An attribute in the profile is seen by admins when its view or edit permissions
 * name "admin", changed when its edit permissions do; one without permissions by no admin. An attribute not in the
 * profile (unmanaged) is seen under the ENABLED, ADMIN_VIEW and ADMIN_EDIT policies, changed under ENABLED and
 * ADMIN_EDIT, and neither without a policy. Read once a request: it depends on the realm's configuration only.
 */
final class AdminAttributes {

    private static final String ADMIN = "admin";

    private final Set<String> configured = new HashSet<>();
    private final Set<String> readable = new HashSet<>();
    private final Set<String> editable = new HashSet<>();
    private final boolean unmanagedReadable;
    private final boolean unmanagedEditable;

    private AdminAttributes(UPConfig config) {
        for (UPAttribute attribute : config.getAttributes()) {
            configured.add(attribute.getName());
            UPAttributePermissions permissions = attribute.getPermissions();
            boolean edit = permissions != null && permissions.getEdit() != null && permissions.getEdit().contains(ADMIN);
            boolean view = edit || permissions != null && permissions.getView() != null && permissions.getView().contains(ADMIN);
            if (edit) {
                editable.add(attribute.getName());
            }
            if (view) {
                readable.add(attribute.getName());
            }
        }
        UnmanagedAttributePolicy policy = config.getUnmanagedAttributePolicy();
        unmanagedReadable = policy != null;
        unmanagedEditable = policy == UnmanagedAttributePolicy.ENABLED || policy == UnmanagedAttributePolicy.ADMIN_EDIT;
    }

    static AdminAttributes of(KeycloakSession session) {
        return new AdminAttributes(session.getProvider(UserProfileProvider.class).getConfiguration());
    }

    boolean readable(String name) {
        return configured.contains(name) ? readable.contains(name) : unmanagedReadable;
    }

    boolean editable(String name) {
        return configured.contains(name) ? editable.contains(name) : unmanagedEditable;
    }
}
