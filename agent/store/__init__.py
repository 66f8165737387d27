"""The agent's durable state: runs and their items, staged removal sets, source baselines, the journal."""

from agent.store.baselines import Baseline
from agent.store.clock import Clock, ManualClock, system_clock
from agent.store.db import Store, default_store_url, open_store
from agent.store.errors import ApprovalError, ForbiddenValue, SchemaError, StoreConflict, StoreError
from agent.store.journal import JournalEntry, JournalHead, NewEntry, VerifyResult
from agent.store.runs import NewItem, Run, RunItem, count_items
from agent.store.staging import StagedRemoval, StagedSet

__all__ = [
    "ApprovalError",
    "Baseline",
    "Clock",
    "ForbiddenValue",
    "JournalEntry",
    "JournalHead",
    "ManualClock",
    "NewEntry",
    "NewItem",
    "Run",
    "RunItem",
    "SchemaError",
    "StagedRemoval",
    "StagedSet",
    "Store",
    "StoreConflict",
    "StoreError",
    "VerifyResult",
    "count_items",
    "default_store_url",
    "open_store",
    "system_clock",
]
