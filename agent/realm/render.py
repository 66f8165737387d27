"""Plans as text for people (`+` create, `~` update with `field: old -> new`, `-` delete) and as stable JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agent.realm.plan import ACTION_SYMBOL, Change, Plan

MAX_VALUE_CHARS = 200


def format_value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _change_lines(change: Change) -> list[str]:
    lines = [
        f"  {ACTION_SYMBOL[change.action]} {change.kind} {change.key}" + (f"  ({change.note})" if change.note else "")
    ]
    for field in change.fields:
        live, desired = field.shown()
        if change.action == "create":
            lines.append(f"      {field.field}: {format_value(desired)}")
        else:
            lines.append(f"      {field.field}: {format_value(live)} -> {format_value(desired)}")
    return lines


def render_text(plans: Sequence[Plan]) -> str:
    lines: list[str] = []
    totals = {"create": 0, "update": 0, "delete": 0}
    for plan in plans:
        state = "" if plan.realm_exists else " (new realm)"
        if plan.is_empty:
            lines.append(f"realm {plan.realm}: no changes")
            continue
        lines.append(f"realm {plan.realm}{state}:")
        for change in plan.changes:
            lines.extend(_change_lines(change))
        for action, count in plan.counts().items():
            totals[action] += count
    lines.append(f"Plan: {totals['create']} to create, {totals['update']} to update, {totals['delete']} to delete.")
    return "\n".join(lines)


def plan_as_json(plan: Plan) -> dict[str, Any]:
    return {
        "realm": plan.realm,
        "realm_exists": plan.realm_exists,
        "counts": plan.counts(),
        "changes": [
            {
                "kind": change.kind,
                "action": change.action,
                "key": change.key,
                "note": change.note,
                "fields": [
                    {
                        "field": field.field,
                        "live": field.shown()[0],
                        "desired": field.shown()[1],
                        "secret": field.secret,
                    }
                    for field in change.fields
                ],
            }
            for change in plan.changes
        ],
    }


def render_json(plans: Sequence[Plan]) -> str:
    return json.dumps({"plans": [plan_as_json(plan) for plan in plans]}, indent=2, sort_keys=True, default=str)
