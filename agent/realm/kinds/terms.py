"""Terms and conditions: the TERMS_AND_CONDITIONS required action, and a version recorded in the realm whose
raise makes every existing user accept again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from agent.errors import Rejected, Unavailable
from agent.keycloak import KeycloakGateway
from agent.keycloak.base import PAGE_SIZE
from agent.keycloak.models import Component, RequiredAction, stored_by_keycloak
from agent.realm.kinds.base import LiveRealm
from agent.realm.kinds.ldap_federation import friendly_value
from agent.realm.kinds.required_actions import write_required_action
from agent.realm.live import LiveReader
from agent.realm.plan import Action, Change, FieldChange, diff_fields
from agent.realm.spec import RealmSpec, TermsSpec

KIND = "terms"
TERMS_ACTION = "TERMS_AND_CONDITIONS"
VERSION_ATTRIBUTE = "idp-agent.terms.version"


@dataclass(frozen=True)
class LiveTerms:
    action: RequiredAction | None
    recorded_version: int | None
    # Users who would be asked (GET users/count leaves service accounts out, and users Keycloak does not store).
    user_count: int
    # Enabled user federations that do not import their users: those users cannot be asked (`stored_by_keycloak`).
    unimported_federations: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionChange:
    version: int
    ask_users: bool


def recorded_version(attributes: Mapping[str, str]) -> int | None:
    """The terms version last applied, or None when none was recorded (or the record is not a number)."""
    value = attributes.get(VERSION_ATTRIBUTE, "").strip()
    return int(value) if value.isdigit() else None


def asks_users(terms: TermsSpec, recorded: int | None) -> bool:
    """Whether applying `terms` over the `recorded` version adds the action to every existing user."""
    if not terms.required:
        return False
    if recorded is None:
        return terms.first_apply == "all-users"
    return terms.version > recorded


def unimported_federations(user_storage: Iterable[Component]) -> tuple[str, ...]:
    """The names of the enabled federations that leave their users in the directory (import off); Keycloak takes
    either setting as true when it is absent."""
    return tuple(
        federation.name
        for federation in user_storage
        if friendly_value("importEnabled", federation.config.get("importEnabled")) is False
        and friendly_value("enabled", federation.config.get("enabled")) is not False
    )


def version_note(terms: TermsSpec, recorded: int | None, users: int, unimported: tuple[str, ...] = ()) -> str:
    if asks_users(terms, recorded):
        asked = f"{users} users must accept again" if recorded is not None else f"{users} users must accept"
        if not unimported:
            return asked
        return (
            f"{asked}; users of {', '.join(unimported)} cannot be asked: Keycloak keeps required actions only for "
            "users it stores (turn import on to ask them)"
        )
    if not terms.required:
        return "terms not required: nobody is asked"
    if recorded is None:
        return "existing users are not asked; new users accept at their first login"
    return "version lowered: nobody is asked again"


def plan_terms(spec: RealmSpec, live_realm: LiveRealm, live: LiveTerms) -> list[Change]:
    """The action enabled (and default for new users) when required; then the version, recorded last."""
    terms = spec.terms
    if terms is None:
        return []
    changes: list[Change] = []
    wanted = {"enabled": terms.required, "defaultAction": terms.required}
    current = (
        {} if live.action is None else {"enabled": live.action.enabled, "defaultAction": live.action.default_action}
    )
    differing = diff_fields(current, wanted)
    # An unregistered action that is not wanted needs no registering just to be disabled.
    if differing and (terms.required or live.action is not None or not live_realm.exists):
        action: Action = "update" if live.action is not None else "create"
        changes.append(Change(KIND, action, TERMS_ACTION, differing, desired=wanted))
    recorded = live.recorded_version if live_realm.exists else None
    if recorded != terms.version:
        field = FieldChange("version", recorded, terms.version)
        note = version_note(terms, recorded, live.user_count, live.unimported_federations)
        desired = VersionChange(terms.version, asks_users(terms, recorded))
        changes.append(
            Change(KIND, "create" if recorded is None else "update", "version", (field,), desired=desired, note=note)
        )
    return changes


# Passes over the admin API's user listing until one finds nobody left to ask (see ask_every_user).
MAX_LISTING_PASSES = 3


def ask_every_user(gateway: KeycloakGateway, realm: str, *, page_size: int = PAGE_SIZE) -> int:
    """Add the terms action to every user lacking it (service accounts never log in); returns users changed.

    Users already carrying the action are skipped, so an interrupted run is finished by the next one. The plugin
    pack's listing pages by user id: one pass reaches every user present throughout. The admin API's pages by
    offset: a user deleted meanwhile moves the next one into a page already read, so that one would never be
    asked; its passes are repeated until one finds nobody left (users created meanwhile get the action as a
    default action). Unavailable when users still lacked it after MAX_LISTING_PASSES: the version is then not
    recorded, and the next apply asks again. Users Keycloak does not store (see `stored_by_keycloak`) are not asked.
    """
    by_plugin = gateway.plugin_raw_users(realm)
    if by_plugin is not None:
        return _ask(gateway, realm, ((str(raw["id"]), tuple(raw.get("requiredActions") or ())) for raw in by_plugin))
    changed = 0
    for _ in range(MAX_LISTING_PASSES):
        listed = gateway.list_users(realm, brief=False, page_size=page_size)
        in_pass = _ask(
            gateway, realm, ((user.id, user.required_actions) for user in listed if not user.service_account_client_id)
        )
        changed += in_pass
        if in_pass == 0:
            return changed
    raise Unavailable(
        f"users of realm '{realm}' were still being added or removed after {MAX_LISTING_PASSES} passes asking them "
        "to accept the terms again",
        hint="apply again: the terms version is recorded once every user has been asked",
    )


def _ask(gateway: KeycloakGateway, realm: str, users: Iterable[tuple[str, tuple[str, ...]]]) -> int:
    changed = 0
    for user_id, actions in users:
        # Keycloak refuses the others' required actions, on every write: asking them would fail each apply.
        if TERMS_ACTION in actions or not stored_by_keycloak(user_id):
            continue
        try:
            gateway.set_user_required_actions(realm, user_id, (*actions, TERMS_ACTION))
        except Rejected as refused:
            if refused.status != HTTPStatus.NOT_FOUND:
                raise
            continue  # deleted since it was listed: nobody left to ask
        changed += 1
    return changed


class Terms:
    name = KIND

    def read(self, live: LiveReader) -> LiveTerms:
        if not live.realm.exists:
            return LiveTerms(None, None, 0)
        count = live.gateway.count_users(live.name)
        action, recorded = live.required_actions.get(TERMS_ACTION), recorded_version(live.realm.attributes)
        return LiveTerms(action, recorded, count, unimported_federations(live.user_storage))

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: LiveTerms) -> list[Change]:
        return plan_terms(spec, live_realm, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        if change.key == TERMS_ACTION:
            fields: dict[str, Any] = change.desired
            write_required_action(gateway, realm, TERMS_ACTION, fields)
            return
        version: VersionChange = change.desired
        if version.ask_users:
            ask_every_user(gateway, realm)
        # Recorded last: until then the next plan still shows the raise and finishes the users.
        gateway.set_realm_attributes(realm, {VERSION_ATTRIBUTE: str(version.version)})
