"""The e-mail notice a sanction's level sends: at issue, and again by the enforce passes after it while owed
(the issuing command cut off, the mail server down). Every attempt is journalled; a failure never undoes the
sanction."""

from __future__ import annotations

from collections.abc import Sequence

from agent.errors import AgentError, KeycloakError
from agent.notify.mail import recipient_for
from agent.notify.templates import SanctionNotice
from agent.sanctions.context import SanctionContext, journal
from agent.store.journal import JournalEntry
from agent.store.sanctions import Sanction
from agent.store.values import JsonValue


def notice_template(context: SanctionContext, sanction: Sanction) -> str | None:
    """The notice the sanction's level sends, when there is one and a notifier to send it."""
    template = context.policy.level(sanction.level).actions.notify
    return None if context.notifier is None else template


# A notice is tried at issue and by the enforce passes after it, this many times in all (a mail server that
# refuses it for good must not be asked on every pass for ever); the journal keeps each attempt.
MAX_NOTICE_ATTEMPTS = 5


def notice_owed(entries: Sequence[JournalEntry], sanction_id: str) -> bool:
    """Whether the notice recorded as owed when the sanction was issued (its issue entry names it) has yet to
    go out: neither sent nor skipped (no address), and tried fewer than MAX_NOTICE_ATTEMPTS times. A notice
    sent but not journalled before a kill goes out again: better twice than never."""
    mine = [entry for entry in entries if entry.details.get("sanction_id") == sanction_id]
    if not any(entry.action == "sanction.issue" and "notice" in entry.details for entry in mine):
        return False
    outcomes = [entry.details.get("outcome") for entry in mine if entry.action == "sanction.notify"]
    return not {"applied", "skipped"} & set(outcomes) and outcomes.count("failed") < MAX_NOTICE_ATTEMPTS


def notify_if_owed(context: SanctionContext, sanction: Sanction) -> None:
    """Send a notice owed since the sanction was issued (the issuing command cut off, the mail server down)."""
    if notice_template(context, sanction) is None:
        return
    # By subject only, not also by time: the hosts that issue and enforce may disagree on the time.
    entries = context.store.journal.entries(subject=sanction.username)
    if notice_owed(entries, sanction.id):
        notify(context, sanction)


def notify(context: SanctionContext, sanction: Sanction) -> None:
    """E-mail the notice the level names, when a notifier is configured; a failure is journalled, not fatal
    (the sanction stands whether or not the mail went out), and the next enforce pass tries again."""
    template = notice_template(context, sanction)
    if template is None or context.notifier is None:
        return
    try:
        user = context.gateway.get_user(context.realm, sanction.user_id)
    except KeycloakError as error:
        journal(context, sanction, "sanction.notify", template, _notice_details(sanction, "failed", str(error)))
        return
    recipient = None if user is None else recipient_for(user)
    if recipient is None:
        journal(context, sanction, "sanction.notify", "no e-mail address", _notice_details(sanction, "skipped"))
        return
    notice = SanctionNotice(sanction.id, sanction.reason_code, sanction.until, sanction.note)
    try:
        context.notifier.notify(recipient, notice, template)
    except AgentError as error:
        journal(context, sanction, "sanction.notify", template, _notice_details(sanction, "failed", str(error)))
        return
    journal(context, sanction, "sanction.notify", template, _notice_details(sanction, "applied"))


def _notice_details(sanction: Sanction, outcome: str, error: str = "") -> dict[str, JsonValue]:
    details: dict[str, JsonValue] = {"sanction_id": sanction.id, "outcome": outcome}
    if error:
        details["error"] = error
    return details
