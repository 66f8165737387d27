"""Errors of the store, under agent.errors.AgentError.

StoreError             the store could not do what was asked (busy, closed, a bug in the caller)
├── SchemaError        the file's schema is newer than this idp-agent, or from another branch: upgrade
├── StoreConflict      a unique key already exists (a run id, a staged set)
├── ApprovalError      a staged set cannot be approved: missing, approved already, expired or changed
└── ForbiddenValue     a value may not be stored: a Secret, a key off the allow-list, not JSON
"""

from __future__ import annotations

from agent.errors import AgentError


class StoreError(AgentError):
    """The store failed; messages name the store file or the row, never a value that was written."""


class SchemaError(StoreError):
    """The store's schema does not match what this idp-agent knows."""


class StoreConflict(StoreError):
    """A row with this key exists already."""


class ApprovalError(StoreError):
    """A staged removal set cannot be approved."""


class ForbiddenValue(StoreError, ValueError):
    """A value was refused before it reached the store."""
