"""The I/O edge of the controls matrix: read one realm's live values through the gateway, and what realm-config/,
policies/ and idp-agent.yaml configure for it. Reads only: a read-only gateway is enough."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

from agent.config.source import Document
from agent.keycloak import KeycloakGateway
from agent.realm.kinds.flows import read_structure, roles_in
from agent.realm.loader import load_realms
from agent.review.reports.controls import ConfiguredControls, LiveControls, PolicyFacts
from agent.store.db import Store

SANCTIONS_FILE = "sanctions.yaml"
UNSET_FOR_REPORTS = "(not set: a report reads no secret)"
RETENTION_FILE = "retention.yaml"
REVIEW_FILE = "review.yaml"


def read_live_controls(gateway: KeycloakGateway, realm: str) -> LiveControls:
    """The realm's settings, roles, group grants, required actions, bound browser flow and user profile."""
    found = gateway.get_realm(realm)
    if found is None:
        return LiveControls(realm, exists=False)
    settings = found.representation
    browser_flow = settings.get("browserFlow")
    flows = {flow.alias for flow in gateway.list_flows(realm)}
    bound = read_structure(gateway, realm, str(browser_flow)) if browser_flow in flows else ()
    profile = gateway.get_user_profile(realm)
    groups = gateway.list_groups(realm)
    actions = gateway.list_required_actions(realm)
    return LiveControls(
        realm=realm,
        settings=settings,
        realm_roles=frozenset(role.name for role in gateway.list_realm_roles(realm)),
        group_roles=MappingProxyType({group.path: frozenset(group.realm_roles) for group in groups}),
        required_actions=MappingProxyType({action.alias: action.enabled for action in actions}),
        browser_flow=str(browser_flow) if browser_flow else None,
        otp_roles=frozenset(roles_in(bound)),
        unmanaged_attribute_policy=profile.unmanaged_attribute_policy,
        profile_attributes=frozenset(str(attribute.get("name")) for attribute in profile.attributes),
    )


class ReportEnvironment(Mapping[str, str]):
    """The environment for loading realm-config/ in a report: a variable that is not set (a client secret the
    report never uses) reads as a placeholder instead of stopping the report."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __getitem__(self, name: str) -> str:
        return self._env.get(name, UNSET_FOR_REPORTS)

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def configured_realms(config_dir: Path, policies_dir: Path, env: Mapping[str, str]) -> dict[str, ConfiguredControls]:
    """Every realm of realm-config/ by name (validated like `idp-agent validate`; errors raise ConfigErrors)."""
    if not config_dir.exists():
        return {}
    realms = load_realms([config_dir], policies_dir=policies_dir, env=ReportEnvironment(env))
    return {
        sourced.spec.realm: ConfiguredControls(
            sourced.spec.realm, sourced.spec, _source_name(sourced.owner_of.get("realm"))
        )
        for sourced in realms
    }


def _source_name(document: Document | None) -> str:
    """`realm-config/workforce` for a realm folder, the file itself for a one-file realm."""
    if document is None:
        return "realm-config"
    path = Path(document.name)
    return str(path.parent) if path.name in ("realm.yaml", "realm.yml") else str(path)


def _days(span: timedelta) -> str:
    return f"{span.days}d" if span.days else f"{int(span.total_seconds())}s"


def sanction_facts(policies_dir: Path, env: Mapping[str, str]) -> tuple[tuple[str, ...] | None, str | None]:
    """Sanction levels (mildest first) and the appeal deadlines, or (None, None) without policies/sanctions.yaml."""
    path = policies_dir / SANCTIONS_FILE
    if not path.is_file():
        return None, None
    from agent.sanctions.policy import load_sanction_policy

    policy = load_sanction_policy(path, env)
    appeals = policy.appeals
    deadlines = f"acknowledge within {_days(appeals.acknowledge_within)}, decide within {_days(appeals.decide_within)}"
    return tuple(level.name for level in policy.levels), deadlines


def retention_by_realm(agent_config: Path, env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """`sync NAME: PRESET (keep Nd, then delete)` for each sync of idp-agent.yaml that names a retention preset,
    under the realm its mapper feeds."""
    if not agent_config.is_file():
        return {}
    from agent.sync.agent_config import load_agent_config
    from agent.sync.mapper_file import load_mapper

    config = load_agent_config(agent_config, env)
    facts: dict[str, tuple[str, ...]] = {}
    for sync in config.syncs:
        retention = config.retention(sync)
        if retention is None or sync.retention is None:
            continue
        realm = load_mapper(config.mapper_path(sync), env).realm
        text = f"sync {sync.name}: {sync.retention} (keep {_days(retention.keep_for)}, then {retention.then})"
        facts[realm] = (*facts.get(realm, ()), text)
    return facts


def journal_facts(store: Store | None) -> tuple[str | None, bool | None]:
    if store is None:
        return None, None
    result = store.journal.verify()
    if result.ok:
        return f"journal verified: {result.checked} entries, chain intact", True
    return f"journal broken at entry {result.first_bad_seq}: {result.problem}", False


def policy_facts(
    policies_dir: Path,
    env: Mapping[str, str],
    *,
    store: Store | None = None,
    training_attribute: str | None = None,
    review_policy: str | None = None,
) -> PolicyFacts:
    levels, deadlines = sanction_facts(policies_dir, env)
    journal, journal_ok = journal_facts(store)
    return PolicyFacts(
        sanction_levels=levels,
        appeal_deadlines=deadlines,
        training_attribute=training_attribute,
        review_policy=review_policy,
        journal=journal,
        journal_ok=journal_ok,
    )
