"""Login events copied from Keycloak (LOGIN, LOGIN_ERROR), so last-login outlives Keycloak's event expiration,
and each realm's harvest high-water mark. Kept: event id, time, type, user id, client id, error code; no IP
addresses or details."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent.store.connection import Database, integer, optional_text, text
from agent.store.errors import StoreError
from agent.store.values import check_text, parse_utc, utc_text

LOGIN = "LOGIN"


@dataclass(frozen=True)
class StoredLoginEvent:
    event_id: str
    at: datetime
    type: str
    user_id: str | None
    client_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class HarvestMark:
    """Where the last harvest of a realm stopped: events at or after `high_water_ms` are fetched next time."""

    realm: str
    high_water_ms: int
    harvested_at: datetime
    first_harvest_at: datetime


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_epoch_ms(ms: int) -> datetime:
    """Keycloak's epoch milliseconds as an exact UTC time (no float rounding)."""
    return EPOCH + timedelta(milliseconds=ms)


class LoginEvents:
    """Harvested login events by realm; inserting an event twice keeps one row."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, realm: str, events: Sequence[StoredLoginEvent], high_water_ms: int) -> int:
        """Store `events` (those already stored are skipped) and move the realm's high-water mark forward to
        `high_water_ms`, in one transaction; the number of events new to the store."""
        check_text(realm, "realm", empty=False)
        for event in events:
            check_text(event.event_id, "event id", empty=False)
        added = 0
        with self._db.transaction(write=True) as tx:
            for event in events:
                added += tx.execute(
                    "INSERT INTO login_events (realm, event_id, at, type, user_id, client_id, error)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (realm, event_id) DO NOTHING",
                    (
                        realm,
                        event.event_id,
                        utc_text(event.at),
                        event.type,
                        event.user_id,
                        event.client_id,
                        event.error,
                    ),
                )
            now = utc_text(self._db.now())
            tx.execute(
                "INSERT INTO login_harvests (realm, high_water_ms, harvested_at, first_harvest_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (realm) DO UPDATE SET harvested_at = excluded.harvested_at,"
                " high_water_ms = CASE WHEN excluded.high_water_ms > login_harvests.high_water_ms"
                " THEN excluded.high_water_ms ELSE login_harvests.high_water_ms END",
                (realm, high_water_ms, now, now),
            )
        return added

    def mark(self, realm: str) -> HarvestMark | None:
        with self._db.transaction() as tx:
            row = tx.query_one(
                "SELECT realm, high_water_ms, harvested_at, first_harvest_at FROM login_harvests WHERE realm = ?",
                (realm,),
            )
        if row is None:
            return None
        return HarvestMark(
            text(row, "realm"),
            integer(row, "high_water_ms"),
            parse_utc(text(row, "harvested_at")),
            parse_utc(text(row, "first_harvest_at")),
        )

    def last_logins(self, realm: str) -> dict[str, datetime]:
        """User id -> time of the user's latest successful LOGIN stored for the realm."""
        with self._db.transaction() as tx:
            rows = tx.query(
                "SELECT user_id, MAX(at) AS last_at FROM login_events"
                " WHERE realm = ? AND type = ? AND user_id IS NOT NULL GROUP BY user_id",
                (realm, LOGIN),
            )
        return {text(row, "user_id"): parse_utc(text(row, "last_at")) for row in rows}

    def known_since(self, realm: str) -> datetime | None:
        """Since when logins are known: the oldest stored event or the first harvest, whichever is earlier (a
        retention pass that deletes a realm's older events moves its first harvest up to its cut); None when
        the realm was never harvested."""
        mark = self.mark(realm)
        if mark is None:
            return None
        with self._db.transaction() as tx:
            row = tx.query_one("SELECT MIN(at) AS oldest FROM login_events WHERE realm = ?", (realm,))
        oldest = None if row is None else optional_text(row, "oldest")
        return min(mark.first_harvest_at, parse_utc(oldest)) if oldest else mark.first_harvest_at

    def logins_per_day(self, realm: str, since: datetime) -> list[tuple[str, int, int]]:
        """(YYYY-MM-DD, logins, failed logins) per day since `since`, oldest first (for charts)."""
        with self._db.transaction() as tx:
            rows = tx.query(
                "SELECT SUBSTR(at, 1, 10) AS day, type, COUNT(*) AS n FROM login_events"
                " WHERE realm = ? AND at >= ? GROUP BY SUBSTR(at, 1, 10), type ORDER BY day",
                (realm, utc_text(since)),
            )
        days: dict[str, list[int]] = {}
        for row in rows:
            counts = days.setdefault(text(row, "day"), [0, 0])
            counts[0 if text(row, "type") == LOGIN else 1] += integer(row, "n")
        return [(day, ok, failed) for day, (ok, failed) in days.items()]

    def count(self, realm: str) -> int:
        with self._db.transaction() as tx:
            row = tx.query_one("SELECT COUNT(*) AS n FROM login_events WHERE realm = ?", (realm,))
        if row is None:
            raise StoreError("COUNT returned no row")
        return integer(row, "n")
