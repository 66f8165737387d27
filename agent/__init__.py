"""idp-agent: turns written user-management rules into an enforced Keycloak realm."""

__version__ = "0.1.0"
