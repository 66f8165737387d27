"""The declarative user profile: attributes with validators, required rules and permissions, groups, and
the unmanaged-attribute policy. One PUT writes the whole profile, so Keycloak checks all of it at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.keycloak import KeycloakGateway
from agent.keycloak.models import UserProfileConfig
from agent.realm.kinds.base import LiveRealm
from agent.realm.live import LiveReader
from agent.realm.plan import Change, FieldChange
from agent.realm.spec import ProfileAttributeSpec, ProfileGroupSpec, RealmSpec, UserProfileSpec

KIND = "user profile"
# Keycloak refuses a profile without username or email; first and last name are kept too, as forms expect them.
BUILT_IN_ATTRIBUTES = ("username", "email", "firstName", "lastName")
UNMANAGED_POLICIES: Mapping[str, str | None] = {
    "disabled": None,
    "enabled": "ENABLED",
    "admin_view": "ADMIN_VIEW",
    "admin_edit": "ADMIN_EDIT",
}
# What a new attribute gets for a permission left out: everyone sees it, only administrators change it.
DEFAULT_VIEW = ("admin", "user")
DEFAULT_EDIT = ("admin",)
# Keys whose values are sets in Keycloak's eyes: order carries no meaning.
SET_VALUED = frozenset({"view", "edit", "roles", "scopes"})
# Keys where an empty object means the same as no object.
EMPTY_MEANS_ABSENT = frozenset({"validations", "annotations"})


def required_of(attribute: ProfileAttributeSpec) -> dict[str, list[str]] | None:
    """Keycloak's `required`, or None for "not required". An empty `required: {}` would mean always."""
    roles: list[str] = sorted(set(attribute.required_for or ()))
    scopes = sorted(set(attribute.required_scopes or ()))
    if not roles and not scopes:
        return None
    required: dict[str, list[str]] = {}
    if roles:
        required["roles"] = roles
    if scopes:
        required["scopes"] = scopes
    return required


def merge_attribute(live: Mapping[str, Any] | None, attribute: ProfileAttributeSpec) -> dict[str, Any]:
    """The attribute as Keycloak should hold it: the written keys laid over the live attribute.

    Keys not written keep their live value (a new attribute gets the defaults); keys we do not model
    (such as `selector`) are carried over untouched.
    """
    merged: dict[str, Any] = {**(live or {}), "name": attribute.name}
    new = live is None
    if attribute.display_name is not None:
        merged["displayName"] = attribute.display_name
    if attribute.group is not None:
        merged["group"] = attribute.group
    if attribute.multivalued is not None or new:
        merged["multivalued"] = bool(attribute.multivalued)
    if attribute.validators is not None:
        merged["validations"] = {validator.name: dict(validator.config) for validator in attribute.validators}
    if attribute.required_for is not None or attribute.required_scopes is not None:
        required = required_of(attribute)
        if required is None:
            merged.pop("required", None)
        else:
            merged["required"] = required
    permissions = dict(merged.get("permissions") or {})
    for key, written, default in (("view", attribute.view, DEFAULT_VIEW), ("edit", attribute.edit, DEFAULT_EDIT)):
        if written is not None:
            permissions[key] = sorted(set(written))
        elif new:
            permissions[key] = list(default)
    merged["permissions"] = permissions
    if attribute.annotations is not None:
        merged["annotations"] = dict(attribute.annotations)
    return merged


def merge_group(live: Mapping[str, Any] | None, group: ProfileGroupSpec) -> dict[str, Any]:
    merged: dict[str, Any] = {**(live or {}), "name": group.name}
    written = {
        "displayHeader": group.display_header,
        "displayDescription": group.display_description,
        "annotations": None if group.annotations is None else dict(group.annotations),
    }
    merged.update({key: value for key, value in written.items() if value is not None})
    return merged


def _by_name(items: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(item.get("name")): item for item in items}


def merge_attributes(live: UserProfileConfig, written: tuple[ProfileAttributeSpec, ...]) -> list[dict[str, Any]]:
    """The written attributes in written order; any other live attribute leaves the profile, except the
    built-ins, which stay as they are, each right after the written attribute it followed live (or first)."""
    names = {attribute.name for attribute in written}
    after: dict[str | None, list[dict[str, Any]]] = {}
    anchor: str | None = None
    for live_attribute in live.attributes:
        name = live_attribute.get("name")
        if name in names:
            anchor = str(name)
        elif name in BUILT_IN_ATTRIBUTES:
            after.setdefault(anchor, []).append(dict(live_attribute))
    current = _by_name(live.attributes)
    merged = list(after.get(None, []))
    for attribute in written:
        merged.append(merge_attribute(current.get(attribute.name), attribute))
        merged.extend(after.get(attribute.name, []))
    return merged


def merge_groups(
    live: UserProfileConfig, written: tuple[ProfileGroupSpec, ...], attributes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The written groups, plus any live group an attribute of the profile still names (Keycloak refuses
    an attribute whose group is missing)."""
    current = _by_name(live.groups)
    names = {group.name for group in written}
    used = {str(attribute["group"]) for attribute in attributes if attribute.get("group")}
    still_used = [dict(group) for group in live.groups if group.get("name") in used - names]
    return [merge_group(current.get(group.name), group) for group in written] + still_used


def merge_profile(live: UserProfileConfig, spec: UserProfileSpec) -> UserProfileConfig:
    """The whole profile to PUT: what is written, laid over the live profile. Pure; idempotent."""
    attributes = (
        [dict(a) for a in live.attributes] if spec.attributes is None else merge_attributes(live, spec.attributes)
    )
    groups = [dict(g) for g in live.groups] if spec.groups is None else merge_groups(live, spec.groups, attributes)
    policy = (
        live.unmanaged_attribute_policy
        if spec.unmanaged_attributes is None
        else UNMANAGED_POLICIES[spec.unmanaged_attributes]
    )
    return UserProfileConfig(tuple(attributes), tuple(groups), policy)


def canonical(value: Any, key: str = "") -> Any:
    """A value as Keycloak means it: scalars as text (`6` is `"6"`), sets sorted, empty objects absent."""
    if isinstance(value, Mapping):
        return {
            str(k): canonical(v, str(k))
            for k, v in value.items()
            if not (str(k) in EMPTY_MEANS_ABSENT and not v) and v is not None
        }
    if isinstance(value, list | tuple):
        items = [canonical(item) for item in value]
        return sorted(set(items)) if key in SET_VALUED else items
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if value is None else str(value)


def canonical_attribute(attribute: Mapping[str, Any]) -> dict[str, Any]:
    """The attribute in a form where equal means "Keycloak behaves the same"."""
    form = canonical(attribute)
    form.setdefault("multivalued", "false")
    permissions = form.setdefault("permissions", {})
    for key in ("view", "edit"):
        permissions.setdefault(key, [])
    if "required" in form:
        required = form["required"]
        # `required: {}` means required in every context, which is what both roles together say.
        if not required.get("roles") and not required.get("scopes"):
            required["roles"] = ["admin", "user"]
        for key in ("roles", "scopes"):
            required.setdefault(key, [])
    result: dict[str, Any] = form
    return result


def _diff_objects(
    prefix: str,
    live: Mapping[str, Mapping[str, Any]],
    desired: Mapping[str, Mapping[str, Any]],
    form: Any = canonical,
) -> list[FieldChange]:
    """Per named object: added, removed, or each differing key as `prefix.name.key`."""
    changes: list[FieldChange] = []
    for name, wanted in desired.items():
        if name not in live:
            changes.append(FieldChange(f"{prefix}.{name}", None, dict(wanted)))
            continue
        current, target = form(live[name]), form(wanted)
        for key in sorted(set(current) | set(target)):
            if current.get(key) != target.get(key):
                changes.append(FieldChange(f"{prefix}.{name}.{key}", live[name].get(key), wanted.get(key)))
    changes.extend(FieldChange(f"{prefix}.{name}", dict(live[name]), None) for name in live if name not in desired)
    return changes


def _order(names: list[str], among: set[str]) -> list[str]:
    return [name for name in names if name in among]


def diff_profiles(live: UserProfileConfig, desired: UserProfileConfig) -> tuple[FieldChange, ...]:
    """Every difference that matters to Keycloak; validator and permission order do not."""
    live_attributes, desired_attributes = _by_name(live.attributes), _by_name(desired.attributes)
    changes = _diff_objects("attributes", live_attributes, desired_attributes, canonical_attribute)
    common = set(live_attributes) & set(desired_attributes)
    live_order, desired_order = _order(list(live_attributes), common), _order(list(desired_attributes), common)
    if live_order != desired_order:
        changes.append(FieldChange("attribute order", live_order, desired_order))
    changes.extend(_diff_objects("groups", _by_name(live.groups), _by_name(desired.groups)))
    if live.unmanaged_attribute_policy != desired.unmanaged_attribute_policy:
        changes.append(
            FieldChange("unmanagedAttributePolicy", live.unmanaged_attribute_policy, desired.unmanaged_attribute_policy)
        )
    return tuple(changes)


def missing_groups(profile: UserProfileConfig) -> list[str]:
    """Groups named by attributes but absent from the profile (Keycloak would refuse it)."""
    groups = {str(group.get("name")) for group in profile.groups}
    return sorted({str(a["group"]) for a in profile.attributes if a.get("group") and a["group"] not in groups})


def _note(live: UserProfileConfig, desired: UserProfileConfig) -> str:
    notes = []
    kept = {str(attribute.get("name")) for attribute in desired.attributes}
    removed = [str(a.get("name")) for a in live.attributes if a.get("name") not in kept]
    if removed:
        notes.append(
            f"removes {', '.join(removed)} from the profile: users keep the values, hidden unless unmanaged "
            "attributes are enabled"
        )
    unknown = missing_groups(desired)
    if unknown:
        notes.append(f"names unknown group(s) {', '.join(unknown)}: Keycloak will refuse this profile")
    return "; ".join(notes)


def plan_user_profile(spec: RealmSpec, live: UserProfileConfig | None) -> list[Change]:
    """One `~ user profile` change listing each attribute, group and policy difference, or nothing.

    A realm created in the same run is planned against an empty profile; apply merges with the real one.
    """
    if spec.user_profile is None:
        return []
    current = live or UserProfileConfig(attributes=())
    desired = merge_profile(current, spec.user_profile)
    changes = diff_profiles(current, desired)
    if not changes:
        return []
    return [Change(KIND, "update", spec.realm, changes, desired=spec.user_profile, note=_note(current, desired))]


def profiles_equal(live: UserProfileConfig, desired: UserProfileConfig) -> bool:
    return not diff_profiles(live, desired)


class UserProfile:
    name = KIND

    def read(self, live: LiveReader) -> UserProfileConfig | None:
        if not live.realm.exists:
            return None
        return live.gateway.get_user_profile(live.name)

    def plan(self, spec: RealmSpec, live_realm: LiveRealm, live: UserProfileConfig | None) -> list[Change]:
        return plan_user_profile(spec, live)

    def apply(self, gateway: KeycloakGateway, realm: str, change: Change) -> None:
        # Merge with the profile as it is now: the realm may have been created in this run.
        live = gateway.get_user_profile(realm)
        desired = merge_profile(live, change.desired)
        if not profiles_equal(live, desired):
            gateway.update_user_profile(realm, desired)
