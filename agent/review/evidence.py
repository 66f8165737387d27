"""The evidence bundle of a closed campaign, for auditors: an HTML report, a CSV of every decision, the same as
JSON, and a manifest with the SHA-256 of each file (plus SHA256SUMS, checkable with `sha256sum -c`).

Renderers are pure functions of (campaign, items); `write_evidence` writes the files and the manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.review.reports import html
from agent.review.reports.csv_cells import csv_text
from agent.store.campaigns import Campaign, ReviewItem
from agent.store.journal import JournalHead

DECISION_HEADERS = (
    "item", "user", "kind", "entitlement", "confers", "reviewer", "recommendation", "reason", "decision",
    "decided by", "decided how", "decided at", "justification", "outcome", "outcome detail",
)  # fmt: skip
MANIFEST = "manifest.json"
CHECKSUMS = "SHA256SUMS"


def _when(item: ReviewItem) -> str:
    return item.decided_at.isoformat() if item.decided_at else ""


def decision_rows(items: Sequence[ReviewItem]) -> list[tuple[str, ...]]:
    return [
        (
            str(item.number), item.username, item.kind, item.entitlement, item.confers, item.reviewer,
            item.recommendation, item.reason, item.decision or "", item.decided_by or "", item.decided_how or "",
            _when(item), item.justification, item.outcome, item.outcome_detail,
        )
        for item in items
    ]  # fmt: skip


def decisions_csv(items: Sequence[ReviewItem]) -> str:
    return csv_text(DECISION_HEADERS, decision_rows(items))


def campaign_facts(campaign: Campaign) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "realm": campaign.realm,
        "scope": campaign.scope,
        "status": campaign.status,
        "created_at": campaign.created_at.isoformat(),
        "created_by": campaign.created_by,
        "due_at": campaign.due_at.isoformat() if campaign.due_at else None,
        "default_decision": campaign.default_decision,
        "dormant_days": campaign.dormant_days,
        "snapshot_at": campaign.snapshot_at.isoformat(),
        "closed_at": campaign.closed_at.isoformat() if campaign.closed_at else None,
        "closed_by": campaign.closed_by,
        "run_id": campaign.run_id,
    }


def tally(items: Sequence[ReviewItem]) -> dict[str, int]:
    """Counts an auditor asks for first: items, decisions, defaults, what was revoked."""
    decisions = Counter(item.decision or "undecided" for item in items)
    outcomes = Counter(item.outcome or "open" for item in items)
    return {
        "items": len(items),
        "reviewers": len({item.reviewer for item in items}),
        "kept": decisions.get("keep", 0),
        "revoked": decisions.get("revoke", 0),
        "undecided": decisions.get("undecided", 0),
        "by default": sum(1 for item in items if item.decided_how == "default"),
        "revocations applied": outcomes.get("applied", 0),
        "already gone": outcomes.get("skipped", 0),
        "failed": outcomes.get("failed", 0),
    }


def campaign_json(campaign: Campaign, items: Sequence[ReviewItem]) -> str:
    document = {
        "campaign": campaign_facts(campaign),
        "summary": tally(items),
        "items": [dict(zip(DECISION_HEADERS, row, strict=True)) for row in decision_rows(items)],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def campaign_html(campaign: Campaign, items: Sequence[ReviewItem]) -> str:
    counts = tally(items)
    by_reviewer = Counter(item.reviewer for item in items if item.decision == "revoke")
    recommended = Counter(f"recommended {item.recommendation}, decided {item.decision or '-'}" for item in items)
    facts = campaign_facts(campaign)
    body = [
        '<section id="summary"><h2>Summary</h2>',
        html.cards([html.Card(label, str(value)) for label, value in counts.items()]),
        '<div class="charts">',
        html.bar_chart("Recommendation against decision", sorted(recommended.items()), "chart-recommendations"),
        html.bar_chart("Revocations by reviewer", sorted(by_reviewer.items()), "chart-revocations"),
        "</div>",
        html.table("campaign-facts", ("Fact", "Value"), [(key, str(value or "")) for key, value in facts.items()]),
        "</section>",
        '<section id="decisions"><h2>Decisions</h2>',
        html.table("decisions-table", DECISION_HEADERS, decision_rows(items)),
        "</section>",
    ]
    subtitle = f"Realm {campaign.realm}, scope {campaign.scope}, {campaign.status}"
    if campaign.closed_at:
        subtitle += f" at {campaign.closed_at.isoformat()} by {campaign.closed_by}"
    return html.page(f"Access review campaign {campaign.name}", subtitle, body)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_json(campaign: Campaign, files: Mapping[str, bytes], journal_head: JournalHead) -> str:
    """The manifest: which campaign, the journal's head when the bundle was written, and each file's hash."""
    document = {
        "campaign": campaign.name,
        "realm": campaign.realm,
        "closed_at": campaign.closed_at.isoformat() if campaign.closed_at else None,
        "run_id": campaign.run_id,
        "journal_head": {"seq": journal_head.seq, "hash": journal_head.hash},
        "files": [
            {"name": name, "sha256": sha256_of(data), "bytes": len(data)} for name, data in sorted(files.items())
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def bundle_files(campaign: Campaign, items: Sequence[ReviewItem]) -> dict[str, bytes]:
    return {
        "report.html": campaign_html(campaign, items).encode("utf-8"),
        "decisions.csv": decisions_csv(items).encode("utf-8"),
        "decisions.json": campaign_json(campaign, items).encode("utf-8"),
    }


def write_evidence(out: Path, campaign: Campaign, items: Sequence[ReviewItem], journal_head: JournalHead) -> Path:
    """Write the bundle into `out` (created, mode 0700: it names people); returns the manifest's path."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = bundle_files(campaign, items)
    for name, data in files.items():
        (out / name).write_bytes(data)
    manifest = manifest_json(campaign, files, journal_head).encode("utf-8")
    (out / MANIFEST).write_bytes(manifest)
    sums = {**files, MANIFEST: manifest}
    (out / CHECKSUMS).write_text("".join(f"{sha256_of(data)}  {name}\n" for name, data in sorted(sums.items())))
    return out / MANIFEST
