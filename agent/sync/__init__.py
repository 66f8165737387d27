"""Identity sync: HR feeds and LDAP into Keycloak (joiners, movers, leavers), with safety brakes."""
