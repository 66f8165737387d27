"""Wiring: the CLI and the daemon build a sanction context from the agent config (the policy beside it, its
notifier)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agent.errors import ConfigError
from agent.keycloak import KeycloakGateway
from agent.notify.mail import SmtpNotifier, build_notifier
from agent.notify.templates import notice_template_problems
from agent.sanctions.context import SanctionContext
from agent.sanctions.policy import DEFAULT_POLICY_FILE, load_sanction_policy
from agent.store.clock import Clock
from agent.store.db import Store
from agent.sync.agent_config import AgentConfig


def policy_path_for(config: AgentConfig) -> Path:
    """policies/sanctions.yaml beside the agent config."""
    return config.base_dir / DEFAULT_POLICY_FILE


def build_sanction_context(
    config: AgentConfig,
    gateway: KeycloakGateway,
    store: Store,
    realm: str,
    *,
    env: Mapping[str, str],
    clock: Clock,
    actor: str = "idp-agent",
    policy_path: Path | None = None,
) -> SanctionContext:
    """The context for `realm`: the policy beside the config (or `policy_path`) and the config's notifier, whose
    templates for the policy's notices are checked now, before anything is enforced."""
    policy = load_sanction_policy(policy_path or policy_path_for(config), env)
    notifier = build_notifier(config)
    if isinstance(notifier, SmtpNotifier):
        notices = [level.actions.notify for level in policy.levels if level.actions.notify]
        problems = notice_template_problems(notifier.templates_dir, notices)
        if problems:
            hint = "fix the templates under smtp.templates, or the levels' notify:"
            raise ConfigError("; ".join(problems), hint=hint)
    return SanctionContext(gateway, store, realm, policy, notifier, clock, actor=actor)
