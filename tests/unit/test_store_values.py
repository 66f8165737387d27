"""What may go into the store: JSON only, allow-listed keys, never a Secret; canonical JSON; UTC text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.secrets import Secret
from agent.store import ForbiddenValue
from agent.store.values import (
    SECRET_LIKE_KEY,
    allowed_mapping,
    canonical_json,
    check_text,
    parse_utc,
    to_json_value,
    utc_text,
)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("text", "text"),
        (3, 3),
        (1.5, 1.5),
        (True, True),
        (None, None),
        (("a", "b"), ["a", "b"]),
        ({"groups": ("/a", "/b"), "n": {"x": 1}}, {"groups": ["/a", "/b"], "n": {"x": 1}}),
    ],
)
def test_json_values_are_stored_as_plain_json(value: Any, stored: Any) -> None:
    assert to_json_value(value, "v") == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Secret("canary-123"), r"v is a Secret"),
        ({"nested": [Secret("canary-123")]}, r"v\['nested'\]\[0\] is a Secret"),
        ({"password": "canary-123"}, "names a credential"),
        ({"outer": {"client_secret": "canary-123"}}, "names a credential"),
        ({"bindCredential": "canary-123"}, "names a credential"),
        ({"refresh_token": "canary-123"}, "names a credential"),
        ({"api-key": "canary-123"}, "names a credential"),
        (b"canary-123", "is a bytes"),
        ({1: "canary-123"}, "keys must be strings"),
        (float("nan"), "only finite numbers"),
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "is a datetime"),
    ],
)
def test_secrets_and_non_json_values_are_refused_without_showing_them(value: Any, message: str) -> None:
    with pytest.raises(ForbiddenValue, match=message) as caught:
        to_json_value(value, "v")
    assert "canary-123" not in str(caught.value)


def test_allow_list_names_the_unknown_keys_and_the_allowed_ones() -> None:
    allowed = allowed_mapping(
        {"email": "a@x", "attributes.department": "Finance"}, {"email"}, "after", ("attributes.",)
    )
    assert allowed == {"email": "a@x", "attributes.department": "Finance"}
    with pytest.raises(
        ForbiddenValue, match=r"after: 'phone', 'ssn' not in the allow-list \(email, attributes.<name>\)"
    ):
        allowed_mapping({"email": "a@x", "ssn": "1", "phone": "2"}, {"email"}, "after", ("attributes.",))
    with pytest.raises(ForbiddenValue, match="names a credential"):
        allowed_mapping({"attributes.password": "x"}, {"email"}, "after", ("attributes.",))


def test_allowed_mapping_is_a_read_only_copy() -> None:
    source = {"email": "a@x"}
    copy = allowed_mapping(source, {"email"}, "after")
    source["email"] = "changed"
    assert copy == {"email": "a@x"}
    with pytest.raises(TypeError):
        copy["email"] = "b"  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "empty", "message"),
    [
        (Secret("s"), True, "is a Secret"),
        (3, True, "must be text"),
        ("", False, "must not be empty"),
        ("bob\x00", True, "contains a NUL character"),
    ],
)
def test_check_text(value: object, empty: bool, message: str) -> None:
    with pytest.raises(ForbiddenValue, match=message):
        check_text(value, "field", empty=empty)


def test_canonical_json_is_one_text_per_value() -> None:
    assert canonical_json({"b": [1, "é"], "a": None}) == '{"a":null,"b":[1,"é"]}'
    assert canonical_json({"a": ("x",)}) == canonical_json({"a": ["x"]})


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 29, 16, 55, 1, tzinfo=UTC), "2026-11-29T16:55:01.000000Z"),
        (datetime(2026, 11, 29, 17, 55, 1, 5, tzinfo=timezone(timedelta(hours=1))), "2026-11-29T16:55:01.000005Z"),
        (datetime(9, 1, 2, tzinfo=UTC), "0009-01-02T00:00:00.000000Z"),
    ],
)
def test_times_are_fixed_width_utc_text(moment: datetime, text: str) -> None:
    assert utc_text(moment) == text
    assert parse_utc(text) == moment


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        utc_text(datetime(2026, 1, 1))


_KEYS = st.text(min_size=1, max_size=8).filter(lambda key: SECRET_LIKE_KEY.search(key) is None)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_any_json_value_is_stored_as_its_plain_json(value: Any) -> None:
    assert to_json_value(value, "v") == json.loads(json.dumps(value))


@given(_JSON, st.lists(_KEYS, min_size=1, max_size=3), st.sampled_from([Secret("canary-123"), b"x", float("inf")]))
def test_a_refused_value_anywhere_is_named_by_its_path(value: Any, path: list[str], bad: object) -> None:
    """The value put at `path` inside maps is refused, and the error says where it is."""
    nested: Any = bad
    for key in reversed(path):
        nested = {key: nested}
    with pytest.raises(ForbiddenValue) as caught:
        to_json_value([value, nested], "v")
    assert str(caught.value).startswith("v[1]" + "".join(f"[{key!r}]" for key in path) + " is ")
    assert "canary-123" not in str(caught.value)
