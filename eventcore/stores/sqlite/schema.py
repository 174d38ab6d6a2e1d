"""Every table EventCore keeps in an SQLite file, as numbered migrations.

One list for the whole database — events, checkpoints, dead letters, snapshots, idempotency
keys — applied by :class:`~eventcore.stores.sqlite.SqliteDatabase` when it opens (or by
``eventcore migrate``). Each migration is applied once and recorded in
``eventcore_migrations``; a migration missing from the record is applied even if a later
one is present. Tables are named ``eventcore_*`` so the file can also hold your read models.
"""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = ["CORRELATION", "MIGRATIONS", "SCHEMA_VERSION", "TRIGGERS", "statements"]

CORRELATION: Final = (
    "(CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$.correlation_id') END)"
)
"""The indexed expression of ``read_correlation``. The guard keeps a corrupt metadata row
readable (and reported as such) instead of making the table unwritable."""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "events table, immutability triggers",
        """
        CREATE TABLE eventcore_events (
            position        INTEGER PRIMARY KEY,
            event_id        TEXT    NOT NULL,
            stream_id       TEXT    NOT NULL,
            stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
            event_type      TEXT    NOT NULL,
            schema_version  INTEGER NOT NULL,
            data            TEXT    NOT NULL,
            metadata        TEXT    NOT NULL,
            recorded_at     TEXT    NOT NULL,
            UNIQUE (stream_id, stream_version)
        );
        CREATE UNIQUE INDEX eventcore_events_event_id ON eventcore_events (event_id);
        CREATE INDEX eventcore_events_type ON eventcore_events (event_type, position);
        CREATE TRIGGER eventcore_events_no_update BEFORE UPDATE ON eventcore_events
        BEGIN SELECT RAISE(ABORT, 'eventcore events are immutable: UPDATE is not allowed'); END;
        CREATE TRIGGER eventcore_events_no_delete BEFORE DELETE ON eventcore_events
        BEGIN SELECT RAISE(ABORT, 'eventcore events are immutable: DELETE is not allowed'); END;
        """,
    ),
    (
        2,
        "index on the correlation id",
        f"CREATE INDEX eventcore_events_correlation ON eventcore_events ({CORRELATION}, position);",
    ),
    (
        3,
        "projection checkpoints and dead letters",
        # IF NOT EXISTS: files written before these tables became migrations already have them.
        """
        CREATE TABLE IF NOT EXISTS eventcore_checkpoints (
            name        TEXT    PRIMARY KEY,
            position    INTEGER NOT NULL CHECK (position >= 0),
            updated_at  TEXT    NOT NULL
        );
        CREATE TABLE IF NOT EXISTS eventcore_dead_letters (
            projection  TEXT    NOT NULL,
            position    INTEGER NOT NULL,
            event_id    TEXT    NOT NULL,
            stream_id   TEXT    NOT NULL,
            event_type  TEXT    NOT NULL,
            error_type  TEXT    NOT NULL,
            message     TEXT    NOT NULL,
            traceback   TEXT    NOT NULL,
            attempts    INTEGER NOT NULL,
            recorded_at TEXT    NOT NULL,
            PRIMARY KEY (projection, position)
        );
        """,
    ),
    (
        4,
        "command-state snapshots",
        """
        CREATE TABLE IF NOT EXISTS eventcore_snapshots (
            snapshot_id TEXT PRIMARY KEY,
            versions    TEXT NOT NULL,
            data        TEXT NOT NULL,
            saved_at    TEXT NOT NULL
        );
        """,
    ),
    (
        5,
        "write boundaries and idempotency keys",
        # write_end: the position of the last event of the same atomic write, so that a page
        # can be extended to the end of the write it would otherwise cut (NULL for events
        # written before this migration: each counts as its own write).
        """
        ALTER TABLE eventcore_events ADD COLUMN write_end INTEGER;
        CREATE TABLE eventcore_idempotency (
            key             TEXT    PRIMARY KEY,
            fingerprint     TEXT    NOT NULL,
            first_position  INTEGER NOT NULL,
            last_position   INTEGER NOT NULL,
            recorded_at     TEXT    NOT NULL
        );
        """,
    ),
    (
        6,
        "data keys of data subjects (eventcore.crypto)",
        # Wrapped under the application's master key (never stored); the probe lets a key
        # store refuse a wrong master key. A forgotten subject keeps only its tombstone row.
        """
        CREATE TABLE eventcore_subject_keys (
            subject     TEXT    NOT NULL,
            version     INTEGER NOT NULL CHECK (version > 0),
            wrapped     BLOB    NOT NULL,
            created_at  TEXT    NOT NULL,
            PRIMARY KEY (subject, version)
        );
        CREATE TABLE eventcore_forgotten_subjects (
            subject      TEXT PRIMARY KEY,
            forgotten_at TEXT NOT NULL
        );
        CREATE TABLE eventcore_key_master (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            probe       BLOB    NOT NULL,
            created_at  TEXT    NOT NULL
        );
        """,
    ),
)

TRIGGERS: Final = ("eventcore_events_no_update", "eventcore_events_no_delete")
"""The immutability triggers of migration 1 (``verify`` checks they are present)."""
# Migration 6 belongs to another change (serializers and encryption); migrations are applied
# by number, so a missing number in between is fine.
MIGRATIONS += (
    (
        7,
        "tombstones, the retention guard and the record of retention runs",
        # Tombstones: the trigger after an insert records each closing event, the trigger
        # before refuses any event for a closed stream (only a deletion may follow a closure),
        # so raw SQL and imports are held to it too. Retention: DELETE stays refused unless
        # the guard row exists, which apply_retention() inserts and removes inside its one
        # transaction; UPDATE stays refused always.
        """
        CREATE TABLE eventcore_tombstones (
            stream_id   TEXT    PRIMARY KEY,
            state       TEXT    NOT NULL CHECK (state IN ('closed', 'deleted')),
            position    INTEGER NOT NULL,
            recorded_at TEXT    NOT NULL,
            reason      TEXT    NOT NULL
        );
        CREATE TRIGGER eventcore_events_tombstoned BEFORE INSERT ON eventcore_events
        WHEN EXISTS (
            SELECT 1 FROM eventcore_tombstones t
             WHERE t.stream_id = NEW.stream_id
               AND NOT (t.state = 'closed' AND NEW.event_type = 'eventcore.StreamDeletion')
        )
        BEGIN SELECT RAISE(ABORT, 'eventcore stream is closed: no event can follow it'); END;
        CREATE TRIGGER eventcore_events_tombstone AFTER INSERT ON eventcore_events
        WHEN NEW.event_type IN ('eventcore.StreamClosure', 'eventcore.StreamDeletion')
        BEGIN
            INSERT OR REPLACE INTO eventcore_tombstones
                (stream_id, state, position, recorded_at, reason)
            VALUES (NEW.stream_id,
                    CASE NEW.event_type WHEN 'eventcore.StreamDeletion' THEN 'deleted'
                                        ELSE 'closed' END,
                    NEW.position, NEW.recorded_at,
                    coalesce(CASE WHEN json_valid(NEW.data)
                                  THEN json_extract(NEW.data, '$.reason') END, ''));
        END;
        CREATE TABLE eventcore_retention_guard (
            armed INTEGER PRIMARY KEY CHECK (armed = 1)
        );
        CREATE TABLE eventcore_retention_runs (
            run             INTEGER PRIMARY KEY,
            first_position  INTEGER NOT NULL,
            last_position   INTEGER NOT NULL,
            events          INTEGER NOT NULL,
            applied_at      TEXT    NOT NULL
        );
        DROP TRIGGER eventcore_events_no_delete;
        CREATE TRIGGER eventcore_events_no_delete BEFORE DELETE ON eventcore_events
        WHEN NOT EXISTS (SELECT 1 FROM eventcore_retention_guard)
        BEGIN SELECT RAISE(ABORT, 'eventcore events are immutable: DELETE is not allowed'); END;
        """,
    ),
)

SCHEMA_VERSION: Final = max(version for version, _, _ in MIGRATIONS)


def statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers keep their inner ``;``)."""
    out: list[str] = []
    buffer = ""
    for line in script.strip().splitlines():
        buffer += line + "\n"
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        out.append(buffer.strip())
    return out
