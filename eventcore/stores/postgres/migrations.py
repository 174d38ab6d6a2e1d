"""The migration scripts of the PostgreSQL store, in order: tables, triggers, the append
function and every later change. :mod:`eventcore.stores.postgres.schema` runs them (and
re-exports :data:`MIGRATIONS`).

>>> [version for version, _, _ in MIGRATIONS] == sorted({v for v, _, _ in MIGRATIONS})
True
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS"]

# Each script is formatted with {schema} (an Identifier), {prefix} (the lock-key prefix of
# streams, a Literal), {key_prefix} (the lock-key prefix of idempotency keys, a Literal),
# {global_key} (the text hashed into the schema-wide write lock, a Literal) and {channel}
# (the NOTIFY channel, a Literal). Literal braces are doubled.
_V1: Final = """
CREATE TABLE {schema}.events (
    position        bigint      PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL CHECK (length(stream_id) BETWEEN 1 AND 255),
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- stream reads use the unique (stream_id, stream_version) index; global reads the primary key
CREATE INDEX events_type_position ON {schema}.events (event_type, position);
CREATE INDEX events_stream_prefix ON {schema}.events (stream_id text_pattern_ops, position);

CREATE FUNCTION {schema}.reject_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'eventcore events are immutable: % is not allowed', TG_OP
        USING ERRCODE = 'EC002',
              HINT = 'append a compensating event instead of changing history';
END
$fn$;

CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON {schema}.events
    FOR EACH ROW EXECUTE FUNCTION {schema}.reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.reject_change();

-- The append, in one round trip. Streams are locked in a fixed (sorted key) order, so two
-- writers never deadlock; every participant's version is checked after its lock, in a fresh
-- READ COMMITTED snapshot; then the schema-wide write lock, held until commit, makes
-- positions commit-ordered and gapless.
CREATE FUNCTION {schema}.eventcore_append(
    p_streams         text[],
    p_expected        bigint[],
    p_event_ids       uuid[],
    p_event_streams   text[],
    p_types           text[],
    p_schema_versions integer[],
    p_data            text[],
    p_metadata        text,
    p_recorded_at     timestamptz[]
) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    v_key       bigint;
    v_conflicts jsonb;
    v_first     bigint;
    v_count     integer := coalesce(cardinality(p_event_ids), 0);
    v_inserted  integer;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'eventcore appends need READ COMMITTED, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'EC003';
    END IF;

    FOR v_key IN
        SELECT DISTINCT hashtextextended({prefix} || s, 0) FROM unnest(p_streams) AS s ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;

    SELECT jsonb_agg(jsonb_build_object(
               'stream', c.stream_id, 'expected', c.expected, 'actual', c.actual)
               ORDER BY c.ord)
      INTO v_conflicts
      FROM (SELECT x.stream_id, x.expected, x.ord,
                   coalesce((SELECT max(e.stream_version) FROM {schema}.events e
                              WHERE e.stream_id = x.stream_id), 0) AS actual
              FROM unnest(p_streams, p_expected) WITH ORDINALITY AS x(stream_id, expected, ord)
           ) AS c
     WHERE c.actual <> c.expected;
    IF v_conflicts IS NOT NULL THEN
        RAISE EXCEPTION 'eventcore version conflict' USING ERRCODE = 'EC001',
            DETAIL = v_conflicts::text;
    END IF;

    IF v_count = 0 THEN
        RETURN 0;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended({global_key}, 0));
    SELECT coalesce(max(position), 0) + 1 INTO v_first FROM {schema}.events;

    INSERT INTO {schema}.events (position, event_id, stream_id, stream_version, event_type,
                                 schema_version, data, metadata, recorded_at)
    SELECT v_first + r.ord - 1, r.event_id, r.stream_id,
           x.expected + row_number() OVER (PARTITION BY r.stream_id ORDER BY r.ord),
           r.event_type, r.schema_version, r.data::jsonb, p_metadata::jsonb, r.recorded_at
      FROM unnest(p_event_ids, p_event_streams, p_types, p_schema_versions, p_data,
                  p_recorded_at)
           WITH ORDINALITY AS r(event_id, stream_id, event_type, schema_version, data,
                                recorded_at, ord)
      JOIN unnest(p_streams, p_expected) AS x(stream_id, expected) USING (stream_id);
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    IF v_inserted <> v_count THEN
        RAISE EXCEPTION 'eventcore append: % of % events target undeclared streams',
            v_count - v_inserted, v_count USING ERRCODE = 'EC004';
    END IF;

    PERFORM pg_notify({channel}, (v_first + v_count - 1)::text);
    RETURN v_first;
END
$fn$;
"""

_V2_CORRELATION: Final = """
-- read_correlation(): every event of one business flow, in position order
CREATE INDEX events_correlation ON {schema}.events ((metadata->>'correlation_id'), position);
"""

_V4_SNAPSHOTS: Final = """
-- command-state snapshots: a cache, one row per snapshot id; saves never regress (the
-- comparison with the stored versions runs in the upsert itself)
CREATE TABLE {schema}.snapshots (
    snapshot_id text        PRIMARY KEY,
    versions    jsonb       NOT NULL,
    data        text        NOT NULL,
    saved_at    timestamptz NOT NULL
);
"""

_V3_PROJECTIONS: Final = """
-- projections: checkpoints (never moved backwards by the library) and dead letters.
-- Leadership needs no table: it is a session advisory lock. IF NOT EXISTS keeps the script
-- safe to re-run by hand.
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
    projection  text        NOT NULL,
    position    bigint      NOT NULL,
    event_id    uuid        NOT NULL,
    stream_id   text        NOT NULL,
    event_type  text        NOT NULL,
    error_type  text        NOT NULL,
    message     text        NOT NULL,
    traceback   text        NOT NULL,
    attempts    integer     NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (projection, position)
);
"""


_V5_EXACT: Final = """
-- Payloads and metadata kept as the exact text written (json, not jsonb): jsonb normalises
-- numbers (-0.0 became 0.0, 1e16 an integer), reorders keys and refuses the NUL escape, so
-- PostgreSQL read back something other than what memory and SQLite keep. The correlation id gets a
-- column of its own (an index on metadata->>'correlation_id' would have to parse the json
-- of every row, and fails on a NUL escape anywhere in it); rows written before are filled in
-- once, with the immutability trigger off for that statement only.
ALTER TABLE {schema}.events ADD COLUMN correlation_id uuid;
ALTER TABLE {schema}.events DISABLE TRIGGER events_no_update;
UPDATE {schema}.events SET correlation_id = (metadata->>'correlation_id')::uuid
 WHERE metadata->>'correlation_id' IS NOT NULL;
ALTER TABLE {schema}.events ENABLE TRIGGER events_no_update;
DROP INDEX {schema}.events_correlation;
CREATE INDEX events_correlation ON {schema}.events (correlation_id, position);
ALTER TABLE {schema}.events
    ALTER COLUMN data TYPE json USING data::json,
    ALTER COLUMN metadata TYPE json USING metadata::json;

-- Filtered reads scan position windows of the primary key; an index by stream prefix let a
-- planner without statistics read a whole category per page.
DROP INDEX IF EXISTS {schema}.events_stream_prefix;

-- write_end: the last position of the same atomic write (NULL for events written before
-- this migration: each counts as its own write), so a page can end on a write boundary.
ALTER TABLE {schema}.events ADD COLUMN write_end bigint;

-- Idempotency keys: one row per key, written in the transaction of its append.
CREATE TABLE {schema}.idempotency (
    key             text        PRIMARY KEY,
    fingerprint     text        NOT NULL,
    first_position  bigint      NOT NULL,
    last_position   bigint      NOT NULL,
    recorded_at     timestamptz NOT NULL
);

DROP FUNCTION {schema}.eventcore_append(
    text[], bigint[], uuid[], text[], text[], integer[], text[], text, timestamptz[]);

-- The append, in one round trip. An idempotency key is locked and looked up first (a known
-- key with the same fingerprint returns the positions it wrote, o_replayed = true). Streams
-- are locked in a fixed (sorted key) order, so two writers never deadlock; every
-- participant's version is checked after its lock, in a fresh READ COMMITTED snapshot; then
-- the schema-wide write lock, held until commit, makes positions commit-ordered and gapless.
CREATE FUNCTION {schema}.eventcore_append(
    p_streams         text[],
    p_expected        bigint[],
    p_event_ids       uuid[],
    p_event_streams   text[],
    p_types           text[],
    p_schema_versions integer[],
    p_data            text[],
    p_metadata        text,
    p_correlation_id  uuid,
    p_recorded_at     timestamptz[],
    p_key             text,
    p_fingerprint     text,
    OUT o_first       bigint,
    OUT o_last        bigint,
    OUT o_replayed    boolean
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_key       bigint;
    v_conflicts jsonb;
    v_count     integer := coalesce(cardinality(p_event_ids), 0);
    v_inserted  integer;
    v_stored    {schema}.idempotency%ROWTYPE;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'eventcore appends need READ COMMITTED, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'EC003';
    END IF;
    o_first := 0;
    o_last := 0;
    o_replayed := false;

    IF p_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended({key_prefix} || p_key, 0));
        SELECT * INTO v_stored FROM {schema}.idempotency WHERE key = p_key;
        IF FOUND THEN
            IF v_stored.fingerprint <> p_fingerprint THEN
                RAISE EXCEPTION 'eventcore idempotency key reused' USING ERRCODE = 'EC005',
                    DETAIL = jsonb_build_object('key', p_key, 'stored', v_stored.fingerprint,
                                                'given', p_fingerprint)::text;
            END IF;
            o_first := v_stored.first_position;
            o_last := v_stored.last_position;
            o_replayed := true;
            RETURN;
        END IF;
    END IF;

    FOR v_key IN
        SELECT DISTINCT hashtextextended({prefix} || s, 0) FROM unnest(p_streams) AS s ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;

    SELECT jsonb_agg(jsonb_build_object(
               'stream', c.stream_id, 'expected', c.expected, 'actual', c.actual)
               ORDER BY c.ord)
      INTO v_conflicts
      FROM (SELECT x.stream_id, x.expected, x.ord,
                   coalesce((SELECT max(e.stream_version) FROM {schema}.events e
                              WHERE e.stream_id = x.stream_id), 0) AS actual
              FROM unnest(p_streams, p_expected) WITH ORDINALITY AS x(stream_id, expected, ord)
           ) AS c
     WHERE c.actual <> c.expected;
    IF v_conflicts IS NOT NULL THEN
        RAISE EXCEPTION 'eventcore version conflict' USING ERRCODE = 'EC001',
            DETAIL = v_conflicts::text;
    END IF;

    IF v_count = 0 THEN
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended({global_key}, 0));
    SELECT coalesce(max(position), 0) + 1 INTO o_first FROM {schema}.events;
    o_last := o_first + v_count - 1;

    INSERT INTO {schema}.events (position, event_id, stream_id, stream_version, event_type,
                                 schema_version, data, metadata, correlation_id,
                                 recorded_at, write_end)
    SELECT o_first + r.ord - 1, r.event_id, r.stream_id,
           x.expected + row_number() OVER (PARTITION BY r.stream_id ORDER BY r.ord),
           r.event_type, r.schema_version, r.data::json, p_metadata::json, p_correlation_id,
           r.recorded_at, o_last
      FROM unnest(p_event_ids, p_event_streams, p_types, p_schema_versions, p_data,
                  p_recorded_at)
           WITH ORDINALITY AS r(event_id, stream_id, event_type, schema_version, data,
                                recorded_at, ord)
      JOIN unnest(p_streams, p_expected) AS x(stream_id, expected) USING (stream_id);
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    IF v_inserted <> v_count THEN
        RAISE EXCEPTION 'eventcore append: % of % events target undeclared streams',
            v_count - v_inserted, v_count USING ERRCODE = 'EC004';
    END IF;

    IF p_key IS NOT NULL THEN
        INSERT INTO {schema}.idempotency (key, fingerprint, first_position, last_position,
                                          recorded_at)
        VALUES (p_key, p_fingerprint, o_first, o_last, p_recorded_at[1]);
    END IF;

    PERFORM pg_notify({channel}, o_last::text);
END
$fn$;
"""

_V6_LOCKS: Final = """
-- Pessimistic sessions: lock streams up front, in the append's fixed (sorted key) order, so
-- that a command reads, decides and appends with no other writer on those streams.
CREATE FUNCTION {schema}.eventcore_lock_streams(p_streams text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_key bigint;
BEGIN
    FOR v_key IN
        SELECT DISTINCT hashtextextended({prefix} || s, 0) FROM unnest(p_streams) AS s ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;
END
$fn$;
"""

_V7_KEYS: Final = """
-- Data keys of data subjects (eventcore.crypto), wrapped under the application's master key
-- (never stored); the probe lets a key store refuse a wrong master key. A forgotten
-- subject keeps only its tombstone row.
CREATE TABLE {schema}.subject_keys (
    subject     text        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    wrapped     bytea       NOT NULL,
    created_at  text        NOT NULL,
    PRIMARY KEY (subject, version)
);
CREATE TABLE {schema}.forgotten_subjects (
    subject      text PRIMARY KEY,
    forgotten_at text NOT NULL
);
CREATE TABLE {schema}.key_master (
    id          integer PRIMARY KEY CHECK (id = 1),
    probe       bytea   NOT NULL,
    created_at  text    NOT NULL
);
"""

_V8_RETENTION: Final = """
-- Tombstones: the statement trigger after an insert refuses any event for a stream already
-- closed (only a deletion may follow a closure) or closed earlier in the same statement
-- (imports), then records the closing events of the statement. Raw SQL and imports are
-- held to it as much as appends.
CREATE TABLE {schema}.tombstones (
    stream_id   text        PRIMARY KEY,
    state       text        NOT NULL CHECK (state IN ('closed', 'deleted')),
    position    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    reason      text        NOT NULL
);

CREATE FUNCTION {schema}.eventcore_tombstones() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    v_hit record;
BEGIN
    SELECT t.stream_id, t.state, t.position, t.recorded_at, t.reason INTO v_hit
      FROM new_rows n JOIN {schema}.tombstones t ON t.stream_id = n.stream_id
     WHERE NOT (t.state = 'closed' AND n.event_type = 'eventcore.StreamDeletion')
     ORDER BY n.position LIMIT 1;
    IF NOT FOUND THEN
        SELECT m.stream_id,
               CASE m.event_type WHEN 'eventcore.StreamDeletion' THEN 'deleted'
                                 ELSE 'closed' END AS state,
               m.position, m.recorded_at, coalesce(m.data->>'reason', '') AS reason
          INTO v_hit
          FROM new_rows n JOIN new_rows m
            ON m.stream_id = n.stream_id AND m.position < n.position
         WHERE m.event_type IN ('eventcore.StreamClosure', 'eventcore.StreamDeletion')
           AND NOT (m.event_type = 'eventcore.StreamClosure'
                    AND n.event_type = 'eventcore.StreamDeletion')
         ORDER BY n.position LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'eventcore stream % is %', v_hit.stream_id, v_hit.state
            USING ERRCODE = 'EC008',
                  DETAIL = jsonb_build_object('stream', v_hit.stream_id, 'state', v_hit.state,
                                              'position', v_hit.position,
                                              'at', v_hit.recorded_at,
                                              'reason', v_hit.reason)::text,
                  HINT = 'a closed stream takes no more events: write to a new stream';
    END IF;
    INSERT INTO {schema}.tombstones (stream_id, state, position, recorded_at, reason)
    SELECT DISTINCT ON (stream_id) stream_id,
           CASE event_type WHEN 'eventcore.StreamDeletion' THEN 'deleted' ELSE 'closed' END,
           position, recorded_at, coalesce(data->>'reason', '')
      FROM new_rows
     WHERE event_type IN ('eventcore.StreamClosure', 'eventcore.StreamDeletion')
     ORDER BY stream_id, position DESC
    ON CONFLICT (stream_id) DO UPDATE
       SET state = EXCLUDED.state, position = EXCLUDED.position,
           recorded_at = EXCLUDED.recorded_at, reason = EXCLUDED.reason;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER events_tombstones AFTER INSERT ON {schema}.events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.eventcore_tombstones();

-- Retention: DELETE stays refused unless the transaction set eventcore.retention to this
-- schema's guard text (apply_retention() does, with set_config(..., true): for its own
-- transaction only). UPDATE and TRUNCATE stay refused always.
CREATE OR REPLACE FUNCTION {schema}.reject_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('eventcore.retention', true) = {retention_guard}
    THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'eventcore events are immutable: % is not allowed', TG_OP
        USING ERRCODE = 'EC002',
              HINT = 'append a compensating event instead of changing history';
END
$fn$;

-- Tenants: the tenant of a stream '@acme/...' is 'acme' (NULL for other streams), kept in a
-- generated column. Row-level security over it is off until
-- eventcore.tenants.postgres.enable_isolation() turns it on: then a role listed in
-- tenant_roles reads only its tenant's rows (the owner, which the library connects as,
-- is not subject to it).
ALTER TABLE {schema}.events ADD COLUMN tenant text GENERATED ALWAYS AS (
    CASE WHEN stream_id LIKE '@%/%' THEN split_part(substr(stream_id, 2), '/', 1) END
) STORED;
CREATE INDEX events_tenant_position ON {schema}.events (tenant, position)
    WHERE tenant IS NOT NULL;
CREATE TABLE {schema}.tenant_roles (
    tenant  text PRIMARY KEY,
    role    name NOT NULL UNIQUE
);
-- The tenant a role reads for; SECURITY DEFINER so that tenant roles need no grant on
-- tenant_roles (the policy passes the caller's current_user).
CREATE FUNCTION {schema}.eventcore_tenant_of(p_role name) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $fn$
    SELECT tenant FROM {schema}.tenant_roles WHERE role = p_role
$fn$;
CREATE POLICY events_of_the_tenant ON {schema}.events FOR SELECT
    USING (tenant = {schema}.eventcore_tenant_of(current_user));
CREATE POLICY tombstones_of_the_tenant ON {schema}.tombstones FOR SELECT
    USING (starts_with(stream_id, '@' || {schema}.eventcore_tenant_of(current_user) || '/'));

CREATE TABLE {schema}.retention_runs (
    run             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_position  bigint      NOT NULL,
    last_position   bigint      NOT NULL,
    events          bigint      NOT NULL,
    applied_at      timestamptz NOT NULL
);
"""

MIGRATIONS: Final[tuple[tuple[int, str, str], ...]] = (
    (1, "events table, immutability triggers, eventcore_append()", _V1),
    (2, "index on metadata->>'correlation_id'", _V2_CORRELATION),
    (3, "projection checkpoints and dead letters", _V3_PROJECTIONS),
    (4, "command-state snapshots table", _V4_SNAPSHOTS),
    (5, "exact payloads, write boundaries, idempotency keys, new eventcore_append()", _V5_EXACT),
    (6, "eventcore_lock_streams() for pessimistic sessions", _V6_LOCKS),
    (7, "data keys of data subjects (eventcore.crypto)", _V7_KEYS),
    (8, "tombstones, retention guard and runs, tenant column and policies", _V8_RETENTION),
)
"""Every migration: (version, description, script)."""
