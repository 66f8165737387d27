"""What policies/review.yaml tells the controls matrix: the training attribute and the review rules in one line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agent.review.policy import DAY_SECONDS, REVIEW_POLICY_FILE, load_review_policy


def review_policy_facts(policies_dir: Path, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(training attribute or None, a description of the review policy or None without review.yaml)."""
    path = policies_dir / REVIEW_POLICY_FILE.name
    if not path.is_file():
        return None, None
    policy = load_review_policy(path, env)
    training = policy.training.attribute if policy.training is not None else None
    description = f"{path}: dormant after {policy.dormant.after // DAY_SECONDS} days without a login"
    return training, description
