"""Source connectors of the identity sync (csv, http-json, scim, ldap) and `build_source` to make one."""

from __future__ import annotations

from agent.sync.model import Source
from agent.sync.sources.config import (
    CsvSourceConfig,
    HttpJsonSourceConfig,
    LdapSourceConfig,
    ScimSourceConfig,
    SourceConfig,
    parse_source_config,
)
from agent.sync.sources.csv_source import CsvSource
from agent.sync.sources.http_json import HttpJsonSource
from agent.sync.sources.ldap_source import LdapSource
from agent.sync.sources.scim import ScimSource


def build_source(config: SourceConfig) -> Source:
    """The connector for one source's config; it reads nothing until `read` or `lookup` is called."""
    match config:
        case CsvSourceConfig():
            return CsvSource(config)
        case HttpJsonSourceConfig():
            return HttpJsonSource(config)
        case ScimSourceConfig():
            return ScimSource(config)
        case LdapSourceConfig():
            return LdapSource(config)


__all__ = [
    "CsvSource",
    "HttpJsonSource",
    "LdapSource",
    "ScimSource",
    "SourceConfig",
    "build_source",
    "parse_source_config",
]
