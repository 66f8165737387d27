"""Source ids for the orphan and leaver findings, from a sync's mapping result."""

from __future__ import annotations

from agent.review.sources import ids_from_mapping
from agent.sync.mapping import LeftOut, MappingResult
from agent.sync.model import DesiredUser, RejectedRecord


def test_listed_ids_include_rejected_and_left_out_records_and_leavers_are_inactive_users() -> None:
    mapping = MappingResult(
        users=(
            DesiredUser("e-1", "hr", "alice"),
            DesiredUser("e-2", "hr", "bob", status="inactive"),
        ),
        rejected=(RejectedRecord("hr", "line 4", "bad date", external_id="e-3"),),
        left_out=(LeftOut("e-4", "hr", "line 5", "future-start", "starts later"),),
    )
    ids = ids_from_mapping(mapping)
    assert ids.listed == {"e-1", "e-2", "e-3", "e-4"}
    assert ids.leavers == {"e-2"}
