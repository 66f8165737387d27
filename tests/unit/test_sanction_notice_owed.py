"""Whether a sanction's notice is still owed, from the journal: owed once its issue entry names a notice,
until it was sent or skipped (no address), and no more after MAX_NOTICE_ATTEMPTS failed tries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.sanctions.notices import MAX_NOTICE_ATTEMPTS, notice_owed
from agent.store.journal import JournalEntry

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def entry(action: str, sanction_id: str = "S-1", **details: str) -> JournalEntry:
    return JournalEntry(
        actor="ops", action=action, subject="erin", realm="acme", details={"sanction_id": sanction_id, **details},
        seq=1, at=AT, prev_hash="", hash="",
    )  # fmt: skip


ISSUED = entry("sanction.issue", notice="warning")


def test_owed_from_an_issue_entry_naming_a_notice_until_it_goes_out() -> None:
    assert notice_owed([ISSUED], "S-1")
    assert notice_owed([ISSUED, entry("sanction.notify", outcome="failed")], "S-1")
    assert not notice_owed(
        [ISSUED, entry("sanction.notify", outcome="failed"), entry("sanction.notify", outcome="applied")], "S-1"
    )
    assert not notice_owed([ISSUED, entry("sanction.notify", outcome="skipped")], "S-1")


def test_never_owed_without_a_notice_at_issue() -> None:
    """Issued with no notifier, or before notices were recorded as owed: a mail server set up later does not
    mail every sanction ever issued."""
    assert not notice_owed([entry("sanction.issue")], "S-1")
    assert not notice_owed([], "S-1")


def test_another_sanctions_entries_do_not_count() -> None:
    others = [entry("sanction.issue", "S-2", notice="ban"), entry("sanction.notify", "S-2", outcome="applied")]
    assert notice_owed([ISSUED, *others], "S-1")
    assert not notice_owed([ISSUED, *others], "S-3")


@pytest.mark.parametrize(("failures", "owed"), [(MAX_NOTICE_ATTEMPTS - 1, True), (MAX_NOTICE_ATTEMPTS, False)])
def test_tries_stop_after_the_most_attempts(failures: int, owed: bool) -> None:
    failed = [entry("sanction.notify", outcome="failed")] * failures
    assert notice_owed([ISSUED, *failed], "S-1") is owed
