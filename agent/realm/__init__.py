"""Desired realm state: specs read from realm-config/ and policies/, and their compilation for Keycloak."""
