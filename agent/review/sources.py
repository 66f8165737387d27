"""What the sources of truth say about a realm's people, for the orphan and leaver findings: the external
ids they still list and the ids they mark as leavers. Reads the sources exactly as a sync would (same
configs, same mapping), and answers None when any read was incomplete: absence from a broken feed proves
nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from agent.sync.agent_config import AgentConfig
from agent.sync.mapper_file import load_mapper
from agent.sync.mapping import MappingResult, map_sources
from agent.sync.sources import build_source


@dataclass(frozen=True)
class SourceIds:
    listed: frozenset[str]  # every external id a source still has a record for
    leavers: frozenset[str]  # those whose employment ended (status inactive)


def ids_from_mapping(mapping: MappingResult) -> SourceIds:
    users = {user.external_id for user in mapping.users}
    leavers = {user.external_id for user in mapping.users if user.status == "inactive"}
    return SourceIds(frozenset(users | mapping.listed_ids), frozenset(leavers))


def targets_realm(config: AgentConfig, realm: str, env: Mapping[str, str]) -> bool:
    """Whether any sync of `config` maps its sources into `realm` (only its mapper files are read)."""
    return any(load_mapper(config.mapper_path(sync), env).realm == realm for sync in config.syncs)


def read_source_ids(config: AgentConfig, realm: str, env: Mapping[str, str], now: datetime) -> SourceIds | None:
    """The ids of every sync that targets `realm`, merged; None when no sync targets it or a read failed."""
    listed: set[str] = set()
    leavers: set[str] = set()
    targeted = False
    for sync in config.syncs:
        mapper = load_mapper(config.mapper_path(sync), env)
        if mapper.realm != realm:
            continue
        targeted = True
        reads = [build_source(cfg).read() for cfg in config.sources if cfg.name in sync.sources]
        if not all(read.complete for read in reads):
            return None
        found = ids_from_mapping(map_sources(reads, mapper, now, traced=False))
        listed |= found.listed
        leavers |= found.leavers
    return SourceIds(frozenset(listed), frozenset(leavers)) if targeted else None
