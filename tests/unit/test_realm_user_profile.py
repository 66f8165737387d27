"""The user profile kind's pure parts: merging written attributes over the live profile, and diffing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from agent.keycloak.models import UserProfileConfig
from agent.realm.kinds.user_profile import (
    BUILT_IN_ATTRIBUTES,
    KIND,
    diff_profiles,
    merge_attribute,
    merge_profile,
    plan_user_profile,
    required_of,
)
from agent.realm.native import friendly_federation_and_profile
from agent.realm.spec import ProfileAttributeSpec, RealmSpec, UserProfileSpec


def attribute(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "permissions": {"view": ["admin", "user"], "edit": ["admin", "user"]}, **extra}


# Keycloak 26's default profile, as `GET users/profile` answers for a new realm.
DEFAULT = UserProfileConfig(
    attributes=(
        attribute("username", validations={"length": {"min": 3, "max": 255}}, multivalued=False),
        attribute("email", validations={"email": {}, "length": {"max": 255}}, required={"roles": ["user"]}),
        attribute("firstName", validations={"length": {"max": 255}}, required={"roles": ["user"]}),
        attribute("lastName", validations={"length": {"max": 255}}, required={"roles": ["user"]}),
    ),
    groups=({"name": "user-metadata", "displayHeader": "User metadata"},),
)
PHONE = {
    "name": "phone",
    "validators": {"pattern": {"pattern": "^[0-9 +]+$", "error-message": "invalid-phone"}, "length": {"max": 20}},
}


def profile_spec(**data: Any) -> UserProfileSpec:
    return UserProfileSpec.model_validate(data)


def names(config: UserProfileConfig) -> list[str]:
    return [str(a["name"]) for a in config.attributes]


@pytest.mark.parametrize(
    ("required_for", "scopes", "expected"),
    [
        (None, None, None),
        ((), (), None),
        (("user",), None, {"roles": ["user"]}),
        (("user", "admin"), None, {"roles": ["admin", "user"]}),
        (None, ("profile",), {"scopes": ["profile"]}),
        (("admin",), ("phone",), {"roles": ["admin"], "scopes": ["phone"]}),
    ],
)
def test_required_never_becomes_the_always_required_empty_object(
    required_for: tuple[str, ...] | None, scopes: tuple[str, ...] | None, expected: dict[str, list[str]] | None
) -> None:
    spec = ProfileAttributeSpec.model_validate({"name": "a", "required_for": required_for, "required_scopes": scopes})
    assert required_of(spec) == expected


@pytest.mark.parametrize(
    ("live", "written", "expected"),
    [
        # A new attribute gets the defaults: single-valued, everyone views, administrators edit.
        (None, {}, {"name": "a", "multivalued": False, "permissions": {"view": ["admin", "user"], "edit": ["admin"]}}),
        # Keys not written keep their live value, keys we do not model are carried over.
        (
            attribute("a", validations={"length": {"max": 5}}, selector={"scopes": ["x"]}),
            {"view": ["admin"]},
            attribute(
                "a",
                validations={"length": {"max": 5}},
                selector={"scopes": ["x"]},
                permissions={"view": ["admin"], "edit": ["admin", "user"]},
            ),
        ),
        # Validators written replace the live ones whole; an empty list removes them.
        (attribute("a", validations={"length": {"max": 5}}), {"validators": []}, attribute("a", validations={})),
        # Writing required_for: [] makes it optional again (the key goes, `{}` would mean "always").
        (attribute("a", required={"roles": ["user"]}), {"required_for": []}, attribute("a")),
        (
            attribute("a"),
            {"annotations": {"inputType": "html5-tel"}},
            attribute("a", annotations={"inputType": "html5-tel"}),
        ),
    ],
)
def test_merge_attribute_overlays_written_keys(
    live: dict[str, Any] | None, written: dict[str, Any], expected: dict[str, Any]
) -> None:
    spec = ProfileAttributeSpec.model_validate({"name": "a", **written})
    assert merge_attribute(live, spec) == expected


@pytest.mark.parametrize(
    ("live_order", "written", "expected"),
    [
        (list(BUILT_IN_ATTRIBUTES), ["phone"], [*BUILT_IN_ATTRIBUTES, "phone"]),
        (list(BUILT_IN_ATTRIBUTES), ["email"], list(BUILT_IN_ATTRIBUTES)),
        (list(BUILT_IN_ATTRIBUTES), ["lastName", "username"], ["lastName", "username", "email", "firstName"]),
        # A live attribute that is not a built-in and not written leaves the profile.
        ([*BUILT_IN_ATTRIBUTES, "legacy"], ["phone"], [*BUILT_IN_ATTRIBUTES, "phone"]),
        (
            ["username", "phone", "email", "firstName", "lastName"],
            ["phone"],
            ["username", "phone", *BUILT_IN_ATTRIBUTES[1:]],
        ),
        (list(BUILT_IN_ATTRIBUTES), [], list(BUILT_IN_ATTRIBUTES)),
    ],
)
def test_built_ins_stay_in_place_and_other_unwritten_attributes_go(
    live_order: list[str], written: list[str], expected: list[str]
) -> None:
    live = UserProfileConfig(tuple(attribute(name) for name in live_order))
    merged = merge_profile(live, profile_spec(attributes=[{"name": name} for name in written]))
    assert names(merged) == expected
    # Idempotent: merging again over the merged profile changes nothing.
    assert diff_profiles(merged, merge_profile(merged, profile_spec(attributes=[{"name": n} for n in written]))) == ()


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (None, ["user-metadata"]),
        ([], []),
        ([{"name": "identity", "display_header": "Identity"}], ["identity"]),
    ],
)
def test_written_groups_are_the_whole_list(written: list[dict[str, Any]] | None, expected: list[str]) -> None:
    merged = merge_profile(DEFAULT, profile_spec(groups=written))
    assert [group["name"] for group in merged.groups] == expected


def test_a_group_still_used_by_a_kept_attribute_is_kept() -> None:
    live = UserProfileConfig((attribute("username", group="meta"),), groups=({"name": "meta"},))
    merged = merge_profile(live, profile_spec(groups=[{"name": "other"}]))
    assert [group["name"] for group in merged.groups] == ["other", "meta"]


@pytest.mark.parametrize(
    ("written", "live_policy", "expected"),
    [
        (None, "ADMIN_VIEW", "ADMIN_VIEW"),
        ("disabled", "ADMIN_VIEW", None),
        ("enabled", None, "ENABLED"),
        ("admin_edit", None, "ADMIN_EDIT"),
    ],
)
def test_unmanaged_attribute_policy(written: str | None, live_policy: str | None, expected: str | None) -> None:
    live = UserProfileConfig(DEFAULT.attributes, DEFAULT.groups, live_policy)
    assert merge_profile(live, profile_spec(unmanaged_attributes=written)).unmanaged_attribute_policy == expected


SAME = [
    # Order of validators and of permission roles carries no meaning.
    (
        attribute("a", validations={"length": {"max": 5}, "pattern": {"pattern": "x"}}),
        attribute("a", validations={"pattern": {"pattern": "x"}, "length": {"max": 5}}),
    ),
    (
        {"name": "a", "permissions": {"view": ["user", "admin"], "edit": ["admin"]}},
        {"name": "a", "permissions": {"view": ["admin", "user"], "edit": ["admin"]}},
    ),
    # Keycloak keeps `6` and `"6"` as written; both mean six.
    (attribute("a", validations={"length": {"min": "6"}}), attribute("a", validations={"length": {"min": 6}})),
    (attribute("a", multivalued=False), attribute("a")),
    (attribute("a", annotations={}, validations={}), attribute("a")),
]
DIFFERENT = [
    (attribute("a", required={}), attribute("a")),  # `required: {}` is "always required"
    (attribute("a", validations={"length": {"max": 5}}), attribute("a", validations={"length": {"max": 6}})),
    (
        attribute("a", validations={"options": {"options": ["a", "b"]}}),
        attribute("a", validations={"options": {"options": ["b", "a"]}}),
    ),
    (attribute("a", multivalued=True), attribute("a")),
]


@pytest.mark.parametrize(("left", "right"), SAME)
def test_equal_as_keycloak_means_them(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert diff_profiles(UserProfileConfig((left,)), UserProfileConfig((right,))) == ()


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_different_as_keycloak_means_them(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert diff_profiles(UserProfileConfig((left,)), UserProfileConfig((right,))) != ()


def test_diff_names_each_attribute_key_group_and_policy() -> None:
    live = UserProfileConfig(
        (attribute("a"), attribute("b"), attribute("gone")), ({"name": "g1"},), unmanaged_attribute_policy=None
    )
    desired = UserProfileConfig(
        (attribute("b", displayName="B"), attribute("a"), attribute("new")),
        ({"name": "g2"},),
        unmanaged_attribute_policy="ENABLED",
    )
    changes = [(c.field, c.live, c.desired) for c in diff_profiles(live, desired)]
    assert changes == [
        ("attributes.b.displayName", None, "B"),
        ("attributes.new", None, attribute("new")),
        ("attributes.gone", attribute("gone"), None),
        ("attribute order", ["a", "b"], ["b", "a"]),
        ("groups.g2", None, {"name": "g2"}),
        ("groups.g1", {"name": "g1"}, None),
        ("unmanagedAttributePolicy", None, "ENABLED"),
    ]


def realm_spec(**profile: Any) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "acme", "user_profile": profile})


def test_plan_is_one_change_with_a_note_for_removed_attributes() -> None:
    live = UserProfileConfig((*DEFAULT.attributes, attribute("legacy")), DEFAULT.groups)
    [change] = plan_user_profile(realm_spec(attributes=[PHONE]), live)
    assert (change.kind, change.action, change.key) == (KIND, "update", "acme")
    assert [field.field for field in change.fields] == ["attributes.phone", "attributes.legacy"]
    assert "removes legacy from the profile" in change.note


def test_plan_is_empty_once_applied_and_when_not_written() -> None:
    spec = realm_spec(attributes=[PHONE], unmanaged_attributes="admin_view")
    assert spec.user_profile is not None
    applied = merge_profile(DEFAULT, spec.user_profile)
    assert plan_user_profile(spec, applied) == []
    assert plan_user_profile(RealmSpec.model_validate({"realm": "acme"}), DEFAULT) == []


def test_plan_for_a_new_realm_lists_written_attributes() -> None:
    [change] = plan_user_profile(realm_spec(attributes=[PHONE]), None)
    assert [field.field for field in change.fields] == ["attributes.phone"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"attributes": [{"name": "a"}, {"name": "a"}]}, "'a' is listed twice"),
        ({"attributes": [{"name": "a", "validators": [{"name": "length"}, {"name": "length"}]}]}, "listed twice"),
        ({"attributes": [{"name": "a", "group": "nope"}], "groups": [{"name": "g"}]}, "names group 'nope'"),
        ({"attributes": [{"name": "a b"}]}, "should match pattern"),
        ({"attributes": [{"name": "a", "view": ["everyone"]}]}, "'user' or 'admin'"),
        ({"unmanaged_attributes": "ADMIN_VIEW"}, "unmanaged_attributes"),
    ],
)
def test_invalid_profiles_are_config_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UserProfileSpec.model_validate(data)


def test_validators_may_be_written_as_keycloak_writes_them() -> None:
    spec = ProfileAttributeSpec.model_validate(PHONE)
    assert [(v.name, v.config) for v in spec.validators or ()] == [
        ("pattern", {"pattern": "^[0-9 +]+$", "error-message": "invalid-phone"}),
        ("length", {"max": 20}),
    ]


def test_exported_profile_plans_empty_against_itself() -> None:
    live = UserProfileConfig(
        (
            *DEFAULT.attributes,
            attribute("phone", validations={"pattern": {"pattern": "^[0-9]+$"}}, annotations={"inputType": "tel"}),
            {
                "name": "nationalId",
                "group": "identity",
                "required": {},
                "permissions": {"view": ["admin"], "edit": []},
                "multivalued": True,
            },
        ),
        (*DEFAULT.groups, {"name": "identity", "displayHeader": "Identity"}),
        "ADMIN_VIEW",
    )
    export = {
        "components": {
            "org.keycloak.userprofile.UserProfileProvider": [
                {
                    "providerId": "declarative-user-profile",
                    "config": {"kc.user.profile.config": [json.dumps(live.to_json())]},
                }
            ]
        }
    }
    friendly = friendly_federation_and_profile(export)
    assert friendly["user_profile"]["unmanaged_attributes"] == "admin_view"
    assert friendly["user_profile"]["attributes"][-1]["required_for"] == ["admin", "user"]
    assert plan_user_profile(realm_spec(**friendly["user_profile"]), live) == []


def test_a_realm_with_the_default_profile_exports_no_profile() -> None:
    assert "user_profile" not in friendly_federation_and_profile({"components": {}})
