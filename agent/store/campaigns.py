"""Access-review campaigns in the store: a campaign (realm, scope, due date, default decision) and its items, one
per user x entitlement, each with a reviewer, a recommendation with its reason, the decision and justification,
and what closing the campaign did with it.

Items are numbered 1..n within their campaign; reviewers' sheets name items by that number. Decisions are
recorded all-or-nothing per sheet; a closed campaign is final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from agent.store.connection import Database, Row, Transaction, integer, optional_text, text
from agent.store.errors import StoreConflict, StoreError
from agent.store.values import check_text, parse_utc, utc_text

Decision = Literal["keep", "revoke"]
DECISIONS: frozenset[str] = frozenset(get_args(Decision))
EntitlementKind = Literal["role", "group"]
CampaignStatus = Literal["open", "closed"]
# What closing did with an item: "" (not closed yet), applied (revoked in Keycloak), kept, skipped (nothing left
# to revoke), failed (Keycloak refused; the campaign stays open and a new close retries).
ItemOutcome = Literal["", "applied", "kept", "skipped", "failed"]
DecidedHow = Literal["reviewer", "default"]


@dataclass(frozen=True)
class NewCampaign:
    name: str
    realm: str
    scope: str
    created_by: str
    default_decision: Decision
    dormant_days: int
    snapshot_at: datetime
    due_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("name", "realm", "scope", "created_by"):
            check_text(getattr(self, name), f"campaign {name}", empty=False)
        if self.default_decision not in DECISIONS:
            raise StoreError(f"a campaign's default decision is keep or revoke, not '{self.default_decision}'")


@dataclass(frozen=True, kw_only=True)
class Campaign(NewCampaign):
    status: CampaignStatus
    created_at: datetime
    item_count: int
    closed_at: datetime | None = None
    closed_by: str | None = None
    run_id: str | None = None  # the run that applied its revocations

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class NewReviewItem:
    """One user x entitlement to review. `client_id` is set for a client role (entitlement `client/role`)."""

    user_id: str
    username: str
    kind: EntitlementKind
    entitlement: str  # a role label (`admin`, `app/viewer`) or a group path
    reviewer: str
    recommendation: Decision
    reason: str
    client_id: str = ""
    confers: str = ""  # what it gives, e.g. "admin, employee" for a group

    def __post_init__(self) -> None:
        for name in ("user_id", "username", "entitlement", "reviewer", "reason"):
            check_text(getattr(self, name), f"review item {name}", empty=False)
        if self.kind not in ("role", "group") or self.recommendation not in DECISIONS:
            raise StoreError(f"review item {self.username}: bad kind '{self.kind}' or '{self.recommendation}'")

    @property
    def grant(self) -> str:
        """`role admin`, `role app/viewer` or `group /finance`, as runs and staged sets name grants."""
        return f"{self.kind} {self.entitlement}"


@dataclass(frozen=True, kw_only=True)
class ReviewItem(NewReviewItem):
    campaign: str
    number: int
    decision: Decision | None = None
    justification: str = ""
    decided_by: str | None = None
    decided_at: datetime | None = None
    decided_how: DecidedHow | None = None
    outcome: ItemOutcome = ""
    outcome_detail: str = ""


@dataclass(frozen=True)
class RecordedDecision:
    number: int
    decision: Decision
    justification: str
    decided_by: str
    decided_how: DecidedHow = "reviewer"


class Campaigns:
    """Review campaigns and their items."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, campaign: NewCampaign, items: Sequence[NewReviewItem]) -> Campaign:
        """Store a new campaign with its items (numbered 1..n in the order given); a taken name is refused."""
        created_at = self._db.now()
        try:
            with self._db.transaction(write=True) as tx:
                tx.execute(
                    "INSERT INTO review_campaigns (name, realm, scope, status, created_at, created_by, due_at,"
                    " default_decision, dormant_days, snapshot_at, closed_at, closed_by, run_id)"
                    " VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                    (
                        campaign.name, campaign.realm, campaign.scope, utc_text(created_at), campaign.created_by,
                        None if campaign.due_at is None else utc_text(campaign.due_at), campaign.default_decision,
                        campaign.dormant_days, utc_text(campaign.snapshot_at),
                    ),
                )  # fmt: skip
                tx.execute_many(
                    "INSERT INTO review_items (campaign, number, user_id, username, kind, entitlement, client_id,"
                    " confers, reviewer, recommendation, reason, decision, justification, decided_by, decided_at,"
                    " decided_how, outcome, outcome_detail)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', NULL, NULL, NULL, '', '')",
                    [
                        (
                            campaign.name, number, item.user_id, item.username, item.kind, item.entitlement,
                            item.client_id, item.confers, item.reviewer, item.recommendation, item.reason,
                        )
                        for number, item in enumerate(items, start=1)
                    ],
                )  # fmt: skip
                stored = _campaign(tx, campaign.name)
        except StoreConflict:
            raise StoreConflict(f"a campaign named '{campaign.name}' exists already") from None
        assert stored is not None
        return stored

    def get(self, name: str) -> Campaign | None:
        with self._db.transaction() as tx:
            return _campaign(tx, name)

    def all(self) -> list[Campaign]:
        """Every campaign, newest first."""
        with self._db.transaction() as tx:
            names = [text(row, "name") for row in tx.query("SELECT name FROM review_campaigns")]
            campaigns = [found for found in (_campaign(tx, name) for name in names) if found is not None]
        return sorted(campaigns, key=lambda campaign: (campaign.created_at, campaign.name), reverse=True)

    def items(self, name: str, reviewer: str | None = None) -> list[ReviewItem]:
        """The campaign's items in number order (only `reviewer`'s when given)."""
        with self._db.transaction() as tx:
            if reviewer is None:
                rows = tx.query("SELECT * FROM review_items WHERE campaign = ? ORDER BY number", (name,))
            else:
                rows = tx.query(
                    "SELECT * FROM review_items WHERE campaign = ? AND reviewer = ? ORDER BY number", (name, reviewer)
                )
        return [_item(row) for row in rows]

    def record_decisions(self, name: str, decisions: Sequence[RecordedDecision]) -> int:
        """Record every decision, or none (one transaction); the campaign must be open. Returns how many."""
        now = utc_text(self._db.now())
        with self._db.transaction(write=True) as tx:
            _require_open(tx, name)
            for decision in decisions:
                changed = tx.execute(
                    "UPDATE review_items SET decision = ?, justification = ?, decided_by = ?, decided_at = ?,"
                    " decided_how = ? WHERE campaign = ? AND number = ?",
                    (
                        decision.decision, decision.justification, decision.decided_by, now, decision.decided_how,
                        name, decision.number,
                    ),
                )  # fmt: skip
                if changed != 1:
                    raise StoreError(f"campaign '{name}' has no item {decision.number}")
        return len(decisions)

    def record_outcome(self, name: str, number: int, outcome: ItemOutcome, detail: str = "") -> None:
        with self._db.transaction(write=True) as tx:
            _require_open(tx, name)
            tx.execute(
                "UPDATE review_items SET outcome = ?, outcome_detail = ? WHERE campaign = ? AND number = ?",
                (outcome, detail, name, number),
            )

    def mark_closed(self, name: str, closed_by: str, run_id: str | None) -> Campaign:
        """Close the campaign (once): its decisions and outcomes are final from now on."""
        with self._db.transaction(write=True) as tx:
            _require_open(tx, name)
            tx.execute(
                "UPDATE review_campaigns SET status = 'closed', closed_at = ?, closed_by = ?, run_id = ?"
                " WHERE name = ? AND status = 'open'",
                (utc_text(self._db.now()), closed_by, run_id, name),
            )
            closed = _campaign(tx, name)
        assert closed is not None
        return closed


def _require_open(tx: Transaction, name: str) -> Campaign:
    campaign = _campaign(tx, name)
    if campaign is None:
        raise StoreError(f"no campaign named '{name}'", hint="`idp-agent review list` shows the campaigns")
    if not campaign.is_open:
        raise StoreError(f"campaign '{name}' is closed; its decisions are final")
    return campaign


def _optional_time(row: Row, column: str) -> datetime | None:
    value = optional_text(row, column)
    return None if value is None else parse_utc(value)


def _campaign(tx: Transaction, name: str) -> Campaign | None:
    row = tx.query_one("SELECT * FROM review_campaigns WHERE name = ?", (name,))
    if row is None:
        return None
    count = tx.query_one("SELECT COUNT(*) AS n FROM review_items WHERE campaign = ?", (name,))
    return Campaign(
        name=text(row, "name"),
        realm=text(row, "realm"),
        scope=text(row, "scope"),
        created_by=text(row, "created_by"),
        default_decision=text(row, "default_decision"),  # type: ignore[arg-type]  # NewCampaign checks it
        dormant_days=integer(row, "dormant_days"),
        snapshot_at=parse_utc(text(row, "snapshot_at")),
        due_at=_optional_time(row, "due_at"),
        status="open" if text(row, "status") == "open" else "closed",
        created_at=parse_utc(text(row, "created_at")),
        item_count=integer(count, "n") if count else 0,
        closed_at=_optional_time(row, "closed_at"),
        closed_by=optional_text(row, "closed_by"),
        run_id=optional_text(row, "run_id"),
    )


def _item(row: Row) -> ReviewItem:
    decision = optional_text(row, "decision")
    return ReviewItem(
        campaign=text(row, "campaign"),
        number=integer(row, "number"),
        user_id=text(row, "user_id"),
        username=text(row, "username"),
        kind=text(row, "kind"),  # type: ignore[arg-type]  # NewReviewItem checks it
        entitlement=text(row, "entitlement"),
        client_id=text(row, "client_id"),
        confers=text(row, "confers"),
        reviewer=text(row, "reviewer"),
        recommendation=text(row, "recommendation"),  # type: ignore[arg-type]
        reason=text(row, "reason"),
        decision=decision if decision in DECISIONS else None,  # type: ignore[arg-type]  # checked just here
        justification=text(row, "justification"),
        decided_by=optional_text(row, "decided_by"),
        decided_at=_optional_time(row, "decided_at"),
        decided_how=optional_text(row, "decided_how"),  # type: ignore[arg-type]
        outcome=text(row, "outcome"),  # type: ignore[arg-type]
        outcome_detail=text(row, "outcome_detail"),
    )
