"""What a harvest report says about a realm's event settings."""

from __future__ import annotations

import pytest

from agent.review.events import HARVESTED_TYPES, EventSettings, HarvestReport


@pytest.mark.parametrize(
    ("settings", "warning"),
    [
        (EventSettings(True, ("LOGIN", "LOGIN_ERROR"), None), ""),
        (EventSettings(True, (), None), ""),  # no list: Keycloak stores every type
        (EventSettings(False, ("LOGIN",), None), "does not store events (eventsEnabled is off)"),
        (EventSettings(True, ("LOGIN", "LOGOUT"), 3600), "does not store LOGIN_ERROR events"),
    ],
)
def test_warning_names_what_is_missing(settings: EventSettings, warning: str) -> None:
    report = HarvestReport("acme", 0, 0, 1, None, settings)
    assert (warning in report.warning) and (bool(report.warning) == bool(warning))
    assert report.describe().startswith("acme: 0 new event(s) of 0 read in 1 page(s); newest none yet")


def test_missing_types() -> None:
    assert EventSettings(False, (), None).missing(HARVESTED_TYPES) == HARVESTED_TYPES
    assert EventSettings(True, ("LOGIN",), None).missing(HARVESTED_TYPES) == ("LOGIN_ERROR",)
