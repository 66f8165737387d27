"""Harvesting login events: copy LOGIN and LOGIN_ERROR events from Keycloak into the store, so last-login
survives Keycloak's event expiration. Resumes at the realm's high-water mark; re-fetching is harmless (events
are kept once by id). The CLI (`idp-agent events harvest`) and the daemon call `harvest_events`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.errors import Rejected
from agent.keycloak.gateway import KeycloakGateway
from agent.keycloak.review_models import LoginEvent
from agent.store import Store
from agent.store.logins import StoredLoginEvent, from_epoch_ms

HARVESTED_TYPES: tuple[str, ...] = ("LOGIN", "LOGIN_ERROR")
EVENT_PAGE_SIZE = 1000
# Each harvest starts this far before the mark: an event whose time was stamped before the last harvest but
# committed after it is still picked up (events already stored are skipped by id).
OVERLAP_MS = 60_000


@dataclass(frozen=True)
class EventSettings:
    """What the realm stores: without eventsEnabled and LOGIN among the stored types there is nothing to
    harvest, and last-login findings stay unknown."""

    enabled: bool
    types: tuple[str, ...]  # empty: Keycloak stores every type
    expiration_seconds: int | None

    def missing(self, wanted: Sequence[str]) -> tuple[str, ...]:
        if not self.enabled:
            return tuple(wanted)
        return tuple(kind for kind in wanted if self.types and kind not in self.types)


@dataclass(frozen=True)
class HarvestReport:
    realm: str
    fetched: int  # events read from Keycloak (including ones the store already had)
    stored: int  # events new to the store
    pages: int
    high_water: datetime | None  # the newest event time harvested so far (None: never any event)
    settings: EventSettings

    @property
    def warning(self) -> str:
        """Why last logins may be incomplete ('' when events are stored as needed)."""
        missing = self.settings.missing(HARVESTED_TYPES)
        if not self.settings.enabled:
            return f"realm {self.realm} does not store events (eventsEnabled is off): no logins to harvest"
        if missing:
            return f"realm {self.realm} does not store {', '.join(missing)} events (enabledEventTypes)"
        return ""

    def describe(self) -> str:
        newest = self.high_water.isoformat() if self.high_water else "none yet"
        text = (
            f"{self.realm}: {self.stored} new event(s) of {self.fetched} read in {self.pages} page(s); newest {newest}"
        )
        return f"{text}\nwarning: {self.warning}" if self.warning else text


def event_settings(gateway: KeycloakGateway, realm: str) -> EventSettings:
    live = gateway.get_realm(realm)
    if live is None:
        raise Rejected(f"realm '{realm}' does not exist")
    raw = live.representation
    expiration = raw.get("eventsExpiration")
    return EventSettings(
        enabled=bool(raw.get("eventsEnabled", False)),
        types=tuple(str(kind) for kind in raw.get("enabledEventTypes") or ()),
        expiration_seconds=int(expiration) if expiration else None,
    )


def stored_event(event: LoginEvent) -> StoredLoginEvent:
    return StoredLoginEvent(
        event_id=event.id,
        at=from_epoch_ms(event.time_ms),
        type=event.type,
        user_id=event.user_id,
        client_id=event.client_id,
        error=event.error,
    )


def harvest_events(
    gateway: KeycloakGateway,
    store: Store,
    realm: str,
    *,
    page_size: int = EVENT_PAGE_SIZE,
    types: Sequence[str] = HARVESTED_TYPES,
) -> HarvestReport:
    """Copy the realm's login events at or after the high-water mark into the store, page by page, oldest
    first; each page is stored with the new mark in one transaction, so an interrupted harvest resumes."""
    settings = event_settings(gateway, realm)
    mark = store.logins.mark(realm)
    newest = mark.high_water_ms if mark is not None else 0
    since = max(0, newest - OVERLAP_MS)
    fetched = stored = pages = first = 0
    while True:
        page = gateway.list_login_events(realm, types, since_ms=since, first=first, max_results=page_size)
        pages += 1
        fetched += len(page)
        usable = [event for event in page if event.id]  # an event without an id cannot be kept once
        newest = max([newest, *(event.time_ms for event in page)])
        stored += store.logins.record(realm, [stored_event(event) for event in usable], high_water_ms=newest)
        if len(page) < page_size:
            break
        first += page_size
    return HarvestReport(
        realm=realm,
        fetched=fetched,
        stored=stored,
        pages=pages,
        high_water=from_epoch_ms(newest) if newest else None,
        settings=settings,
    )
