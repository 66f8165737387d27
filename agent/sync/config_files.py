"""What one sync reads besides the agent config: its mapper, and the sanction policy beside the config (which
sanctions hold an account's access). Both are read and checked together, before the store or Keycloak is
touched, so that every problem of both files is reported in one round."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.config.diagnostics import ConfigErrors, collected
from agent.sanctions.policy import SanctionPolicy, load_sanction_policy
from agent.sanctions.wiring import policy_path_for
from agent.sync.agent_config import AgentConfig, SyncSpec
from agent.sync.mapper_file import load_sync_mapper
from agent.sync.mapper_spec import MapperSpec


@dataclass(frozen=True)
class SyncFiles:
    mapper: MapperSpec
    # None when there is no policies/sanctions.yaml: then every open sanction holds the account's `enabled`.
    policy: SanctionPolicy | None


def load_sync_files(config: AgentConfig, sync: SyncSpec, env: Mapping[str, str]) -> SyncFiles:
    """The sync's mapper (checked against the sources the sync reads) and the sanction policy, if there is one;
    raises ConfigErrors with the problems of both."""
    mapper, problems = collected(lambda: load_sync_mapper(config.mapper_path(sync), env, sync.name, sync.sources))
    policy: SanctionPolicy | None = None
    policy_path = policy_path_for(config)
    if policy_path.is_file():
        policy, policy_problems = collected(lambda: load_sanction_policy(policy_path, env))
        problems += policy_problems
    if problems or mapper is None:
        raise ConfigErrors(problems)
    return SyncFiles(mapper, policy)
