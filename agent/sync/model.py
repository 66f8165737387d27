"""Values shared by the sync pipeline: source reads -> mapped desired users -> plan -> executor.

sources (I/O) --SourceRead--> mapping (pure) --DesiredUser/RejectedRecord--> plan (pure) --> executor
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal, Protocol, runtime_checkable

FieldValue = str | tuple[str, ...]
# Set on every user the sync manages: the immutable id from the source of truth (never username/email).
EXTERNAL_ID_ATTRIBUTE = "idp-agent.external-id"
# Which source system the user came from (the mapper's name), so two syncs never fight over a user.
SOURCE_ATTRIBUTE = "idp-agent.source"
# Groups and roles the sync itself granted (JSON); a mover loses only these, never grants made by hand.
GRANTS_ATTRIBUTE = "idp-agent.grants"
# Set when the sync disables a user (a leaver, or a hire whose start has not come), so that the sync
# re-enables only what it disabled itself (a rehire, a start date reached), never an admin's disable; and
# so that the end of a sanction does not re-enable a person who left meanwhile (the sync decides then).
DISABLED_BY_SYNC_ATTRIBUTE = "idp-agent.disabled-by-sync"


@dataclass(frozen=True)
class SourceRecord:
    """One record as a source gave it: field name -> value (multi-valued fields as tuples of strings)."""

    source: str
    fields: Mapping[str, FieldValue]
    # Where it came from, for messages: CSV line number, HTTP page number, LDAP DN.
    where: str = ""

    def get(self, name: str) -> FieldValue | None:
        return self.fields.get(name)


@dataclass(frozen=True)
class SourceRead:
    """Everything one read of one source produced. `complete` is False when any part failed, timed out or
    came back cut short: an incomplete read never feeds the leaver phase."""

    source: str
    records: tuple[SourceRecord, ...]
    complete: bool
    problem: str = ""  # why the read is incomplete; never contains a secret
    pages: int = 0


@dataclass(frozen=True)
class Found:
    record: SourceRecord


@dataclass(frozen=True)
class NotFound:
    """The source answered, and has no record with that id."""


@dataclass(frozen=True)
class Left:
    """The source has the record, and the record says the person left (`reason`): found by an exact lookup
    outside a listing that shows only the active."""

    record: SourceRecord
    reason: str


class Source(Protocol):
    """A source of identities. `read` never raises for source trouble: it returns an incomplete read.
    `lookup` asks for exactly one record by immutable id (to confirm a leaver before disabling); it raises
    agent.errors.SourceUnavailable when it cannot tell, which is never taken as "not found"."""

    name: str

    def read(self) -> SourceRead: ...

    def lookup(self, external_id: str) -> Found | NotFound: ...


@runtime_checkable
class BatchLookup(Protocol):
    """A source that can confirm many leavers at once. `lookup_many` answers only the ids it could settle as
    surely as `lookup` would (an id left out is then asked alone); it raises SourceUnavailable like `lookup`."""

    def lookup_many(self, external_ids: Sequence[str]) -> Mapping[str, Found | NotFound]: ...


@dataclass(frozen=True)
class TraceStep:
    """Why a desired user has a value or a grant: which rule or mapping produced it, from which source."""

    what: str  # e.g. "group /finance", "realm role admin", "field email"
    because: str  # e.g. "rule finance-staff: department == Finance (hr)"
    granted: bool = True


@dataclass(frozen=True)
class DesiredUser:
    """A person as the sources say they should be in Keycloak (after mapping and merging)."""

    external_id: str
    source: str
    username: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # Employment in the source of truth: active now, or a future hire / a leaver by dates and status.
    status: Literal["active", "inactive"] = "active"
    start: datetime | None = None  # timezone-aware: the instant access begins
    end: datetime | None = None  # timezone-aware: the termination instant (in the worker's time zone)
    groups: frozenset[str] = frozenset()  # group paths granted by rules
    realm_roles: frozenset[str] = frozenset()
    client_roles: frozenset[tuple[str, str]] = frozenset()  # (clientId, role)
    required_actions: tuple[str, ...] = ()
    trace: tuple[TraceStep, ...] = ()


@dataclass(frozen=True)
class RejectedRecord:
    """A record the mapping refused (missing or duplicate id, bad date, unknown role...), with the reason."""

    source: str
    where: str
    reason: str
    external_id: str | None = None
