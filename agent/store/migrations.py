"""Versioned schema migrations: an ordered tuple, each applied once in its own transaction and recorded in
`schema_version`. Opening an older store migrates it forward; a store newer than this code is refused.

To change the schema, append a Migration with the next version; never edit one that has shipped (stores
in the field have applied it already). SQL here is meant to run on PostgreSQL as well: TEXT/INTEGER/BIGINT
columns, times as fixed-width UTC text, no AUTOINCREMENT or INSERT OR ...; what must differ goes in `run`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.store.connection import Database, Transaction, integer, text
from agent.store.errors import SchemaError
from agent.store.values import utc_text


@dataclass(frozen=True)
class Migration:
    """One schema step: `statements` first, then `run` (for data changes or backend-specific DDL)."""

    version: int
    name: str
    statements: tuple[str, ...] = ()
    run: Callable[[Transaction], None] | None = None


SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""

# The hash before the first journal entry. A literal, not journal.GENESIS_HASH: a shipped migration must not
# change when a constant does.
_GENESIS_HASH = "0" * 64

RUNS = Migration(
    1,
    "runs",
    (
        # Statuses, actions and outcomes are checked in Python, not by CHECK constraints: SQLite cannot
        # alter a CHECK without rebuilding the table, and later issues add values.
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            realm TEXT NOT NULL,
            sources TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            counts TEXT NOT NULL,
            summary TEXT NOT NULL
        )""",
        "CREATE INDEX runs_started ON runs (started_at)",
        "CREATE INDEX runs_kind_started ON runs (kind, started_at)",
        """CREATE TABLE run_items (
            run_id TEXT NOT NULL REFERENCES runs (id),
            seq INTEGER NOT NULL,
            subject TEXT NOT NULL,
            action TEXT NOT NULL,
            before_fields TEXT NOT NULL,
            after_fields TEXT NOT NULL,
            grants TEXT NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
    ),
)

STAGING = Migration(
    2,
    "staging",
    (
        """CREATE TABLE staged_sets (
            run_id TEXT PRIMARY KEY REFERENCES runs (id),
            realm TEXT NOT NULL,
            set_hash TEXT NOT NULL,
            item_count INTEGER NOT NULL,
            staged_at TEXT NOT NULL,
            expires_at TEXT,
            approved_by TEXT,
            approved_at TEXT
        )""",
        # grant_name, not grant: GRANT is a reserved word in SQL.
        """CREATE TABLE staged_items (
            run_id TEXT NOT NULL REFERENCES staged_sets (run_id),
            seq INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            external_id TEXT NOT NULL,
            action TEXT NOT NULL,
            grant_name TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
    ),
)

BASELINES = Migration(
    3,
    "baselines",
    ("CREATE TABLE baselines (source TEXT PRIMARY KEY, record_count BIGINT NOT NULL, read_at TEXT NOT NULL)",),
)


def _journal_append_only(tx: Transaction) -> None:
    """Triggers refuse UPDATE and DELETE on the journal: a guard against our own bugs, not against someone
    who can write the file or owns the tables (they can drop the triggers; `verify` is what catches them)."""
    if tx.dialect.name == "postgresql":
        # Added for PostgreSQL after this migration shipped: no store on PostgreSQL existed before, so no
        # store in the field applied migration 4 without it, and SQLite's DDL below is unchanged.
        # ERRCODE restrict_violation (class 23) makes it an integrity error, as SQLite's RAISE(ABORT) is.
        tx.execute(
            "CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'the journal is append-only' USING ERRCODE = 'restrict_violation'; END $$"
        )
        tx.execute(
            "CREATE TRIGGER journal_no_change BEFORE UPDATE OR DELETE ON journal "
            "FOR EACH ROW EXECUTE FUNCTION journal_append_only()"
        )
        tx.execute(
            "CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal "
            "FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        tx.execute(
            f"CREATE TRIGGER journal_no_{event.lower()} BEFORE {event} ON journal "
            "BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END"
        )


JOURNAL = Migration(
    4,
    "journal",
    (
        # No foreign key to runs: the journal outlives runs that retention deletes, and entries are written
        # by commands (sanctions, appeals) that have no sync run.
        """CREATE TABLE journal (
            seq BIGINT PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            realm TEXT NOT NULL,
            run_id TEXT,
            reason TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX journal_subject ON journal (subject, seq)",
        "CREATE INDEX journal_at ON journal (at)",
        # The last entry's seq and hash, updated in the same transaction as each append: cutting entries off
        # the end of the chain leaves the head pointing past it, which `verify` reports.
        "CREATE TABLE journal_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL)",
        f"INSERT INTO journal_head (id, seq, hash) VALUES (1, 0, '{_GENESIS_HASH}')",  # noqa: S608  # a constant
    ),
    _journal_append_only,
)

SANCTIONS = Migration(
    5,
    "sanctions",
    (
        # One row per sanction; `changes` (JSON) is what it changed on the account, so lifting restores exactly
        # that. Times are UTC text; until_at NULL means until lifted.
        """CREATE TABLE sanctions (
            id TEXT PRIMARY KEY,
            realm TEXT NOT NULL,
            user_id TEXT NOT NULL,
            username TEXT NOT NULL,
            level TEXT NOT NULL,
            requested_level TEXT NOT NULL,
            reason_code TEXT NOT NULL,
            note TEXT NOT NULL,
            evidence TEXT NOT NULL,
            issued_by TEXT NOT NULL,
            issued_at TEXT NOT NULL,
            until_at TEXT,
            state TEXT NOT NULL,
            changes TEXT NOT NULL,
            problem TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            verified_at TEXT,
            ending TEXT,
            ended_at TEXT,
            ended_by TEXT,
            end_note TEXT NOT NULL
        )""",
        "CREATE INDEX sanctions_user ON sanctions (realm, user_id, issued_at)",
        "CREATE INDEX sanctions_state ON sanctions (realm, state)",
    ),
)

LOGIN_EVENTS = Migration(
    6,
    "login_events",
    (
        # LOGIN/LOGIN_ERROR events copied from Keycloak (which expires them) for last-login; no IPs or details.
        """CREATE TABLE login_events (
            realm TEXT NOT NULL,
            event_id TEXT NOT NULL,
            at TEXT NOT NULL,
            type TEXT NOT NULL,
            user_id TEXT,
            client_id TEXT,
            error TEXT,
            PRIMARY KEY (realm, event_id)
        )""",
        "CREATE INDEX login_events_user ON login_events (realm, type, user_id, at)",
        "CREATE INDEX login_events_at ON login_events (realm, at)",
        # Per realm: events at or after high_water_ms (Keycloak epoch ms) are fetched by the next harvest.
        """CREATE TABLE login_harvests (
            realm TEXT PRIMARY KEY,
            high_water_ms BIGINT NOT NULL,
            harvested_at TEXT NOT NULL,
            first_harvest_at TEXT NOT NULL
        )""",
    ),
)

APPEALS = Migration(
    7,
    "appeals",
    (
        # One row per appeal; due dates fixed at opening from the policy then in force. decision NULL: undecided.
        """CREATE TABLE appeals (
            id TEXT PRIMARY KEY,
            sanction_id TEXT NOT NULL REFERENCES sanctions (id),
            realm TEXT NOT NULL,
            username TEXT NOT NULL,
            text TEXT NOT NULL,
            opened_by TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            acknowledge_due TEXT NOT NULL,
            decide_due TEXT NOT NULL,
            acknowledged_at TEXT,
            acknowledged_by TEXT,
            decided_at TEXT,
            decided_by TEXT,
            decision TEXT,
            reduced_to TEXT,
            note TEXT NOT NULL
        )""",
        "CREATE INDEX appeals_sanction ON appeals (sanction_id, opened_at)",
        "CREATE INDEX appeals_opened ON appeals (realm, opened_at)",
    ),
)

REVIEW_CAMPAIGNS = Migration(
    8,
    "review_campaigns",
    (
        """CREATE TABLE review_campaigns (
            name TEXT PRIMARY KEY,
            realm TEXT NOT NULL,
            scope TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            due_at TEXT,
            default_decision TEXT NOT NULL,
            dormant_days INTEGER NOT NULL,
            snapshot_at TEXT NOT NULL,
            closed_at TEXT,
            closed_by TEXT,
            run_id TEXT
        )""",
        # One row per user x entitlement; decision NULL: nobody answered yet. `number` is what sheets name.
        """CREATE TABLE review_items (
            campaign TEXT NOT NULL REFERENCES review_campaigns (name),
            number INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            username TEXT NOT NULL,
            kind TEXT NOT NULL,
            entitlement TEXT NOT NULL,
            client_id TEXT NOT NULL,
            confers TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            recommendation TEXT NOT NULL,
            reason TEXT NOT NULL,
            decision TEXT,
            justification TEXT NOT NULL,
            decided_by TEXT,
            decided_at TEXT,
            decided_how TEXT,
            outcome TEXT NOT NULL,
            outcome_detail TEXT NOT NULL,
            PRIMARY KEY (campaign, number)
        )""",
        "CREATE INDEX review_items_reviewer ON review_items (campaign, reviewer)",
    ),
)

DAEMON_JOBS = Migration(
    9,
    "daemon_jobs",
    (
        # The last run of each daemon job, shared by every daemon on this store: a job one daemon ran is
        # not run again by another within the same slot, and a restart makes at most one catch-up run.
        """CREATE TABLE daemon_jobs (
            job_id TEXT PRIMARY KEY,
            last_run TEXT NOT NULL,
            outcome TEXT NOT NULL,
            holder TEXT NOT NULL
        )""",
    ),
)

SYNC_USER_RECORDS = Migration(
    10,
    "sync_user_records",
    (
        # What each sync last knew of every user of its realm: the brief fields as a key (compared with a
        # brief listing), and the full representation for the users it manages (NULL for the others).
        """CREATE TABLE sync_user_records (
            sync TEXT NOT NULL,
            realm TEXT NOT NULL,
            user_id TEXT NOT NULL,
            brief TEXT NOT NULL,
            representation TEXT,
            PRIMARY KEY (sync, realm, user_id)
        )""",
        # When each sync last read every user in full (the quick read trusts records only so long).
        """CREATE TABLE sync_full_reads (
            sync TEXT NOT NULL,
            realm TEXT NOT NULL,
            read_at TEXT NOT NULL,
            PRIMARY KEY (sync, realm)
        )""",
    ),
)

RUN_LOCKS = Migration(
    11,
    "run_locks",
    (
        # The store lock a run was started under (NULL: none). Whoever takes that lock next knows a run of it
        # still `running` has lost its process (killed, or its machine gone), and ends it as interrupted.
        "ALTER TABLE runs ADD COLUMN lock_name TEXT",
        "CREATE INDEX runs_by_lock ON runs (lock_name, status)",
    ),
)

STAGED_SUPERSEDED = Migration(
    12,
    "staged_superseded",
    (
        # The later run of the same sync that computed the removals again: its set can no longer be approved.
        # A mark, not a time compared with the approver's clock (hosts sharing a store disagree on the time).
        "ALTER TABLE staged_sets ADD COLUMN superseded_by TEXT",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    RUNS, STAGING, BASELINES, JOURNAL, SANCTIONS, LOGIN_EVENTS, APPEALS, REVIEW_CAMPAIGNS, DAEMON_JOBS,
    SYNC_USER_RECORDS, RUN_LOCKS, STAGED_SUPERSEDED,
)  # fmt: skip


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3, ... in order, so that "the store is at version N" means one thing."""
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise SchemaError(f"migrations must be numbered 1, 2, 3, ... in order; got {versions}")


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the migrations the store lacks, each in its own transaction; the version the store is at.
    Idempotent, and safe when several processes open the same store at once."""
    check_sequence(migrations)
    with db.transaction(write=True) as tx:
        tx.execute(SCHEMA_VERSION_TABLE)
        applied = applied_migrations(tx)
    check_applied(applied, migrations, db.name)
    for migration in migrations:
        if migration.version in applied:
            continue
        with db.transaction(write=True) as tx:
            # Another process may have applied it since we looked; the write lock makes this check exact.
            if migration.version in applied_migrations(tx):
                continue
            for statement in migration.statements:
                tx.execute(statement)
            if migration.run is not None:
                migration.run(tx)
            tx.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utc_text(db.now())),
            )
    return migrations[-1].version if migrations else 0


def applied_migrations(tx: Transaction) -> dict[int, str]:
    rows = tx.query("SELECT version, name FROM schema_version ORDER BY version")
    return {integer(row, "version"): text(row, "name") for row in rows}


def check_applied(applied: Mapping[int, str], migrations: Sequence[Migration], path: Path | str) -> None:
    """Refuse a store written by a newer idp-agent, or one whose history differs from ours."""
    known = {migration.version: migration.name for migration in migrations}
    newest_known = max(known, default=0)
    newer = sorted(version for version in applied if version > newest_known)
    if newer:
        raise SchemaError(
            f"store {path} has schema version {newer[-1]}, newer than this idp-agent knows ({newest_known})",
            hint="upgrade idp-agent, or point it at another store",
        )
    for version, name in sorted(applied.items()):
        if known[version] != name:
            raise SchemaError(
                f"store {path} has migration {version} '{name}', but this idp-agent's migration {version} "
                f"is '{known[version]}'",
                hint="the store was written by a different build of idp-agent; use that build or another store",
            )
