-- The event log and its first projection. See docs/events.md for the
-- contract: gapless seq, canonical JSON body, sha256 hash chain.

-- The daemon's role: it may read and append history, never change it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'serverbox_app') THEN
        CREATE ROLE serverbox_app NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create role serverbox_app; grants are skipped';
END
$$;

CREATE TABLE events (
    seq         bigint PRIMARY KEY CHECK (seq > 0),
    stream      text NOT NULL,
    type        text NOT NULL,
    body        text NOT NULL,
    data        jsonb GENERATED ALWAYS AS ((body::jsonb) -> 'data') STORED,
    actor_kind  text NOT NULL CHECK (actor_kind IN ('user', 'token', 'guest', 'agent', 'system')),
    outcome     text NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    occurred_at timestamptz NOT NULL,
    prev_hash   bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX events_stream_seq ON events (stream, seq);
CREATE INDEX events_type_seq ON events (type, seq);
CREATE INDEX events_occurred_at ON events (occurred_at);

CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Projection: one row per stream.
CREATE TABLE streams (
    stream      text PRIMARY KEY,
    first_seq   bigint NOT NULL,
    last_seq    bigint NOT NULL,
    event_count bigint NOT NULL,
    last_type   text NOT NULL,
    updated_at  timestamptz NOT NULL
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'serverbox_app') THEN
        GRANT USAGE ON SCHEMA public TO serverbox_app;
        GRANT SELECT ON schema_migrations TO serverbox_app;
        GRANT SELECT, INSERT ON events TO serverbox_app;
        -- Projections and later tables: read and write, but no TRUNCATE.
        GRANT SELECT, INSERT, UPDATE, DELETE ON streams TO serverbox_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO serverbox_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT USAGE, SELECT ON SEQUENCES TO serverbox_app;
    END IF;
END
$$;
