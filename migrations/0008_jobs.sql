-- Jobs (core/src/jobs/README.md): durable long-running work.
--
-- `jobs` is a projection of the job.* events (stream job/<id>), except the
-- lease columns (lease_holder, lease_until), which the daemon running the
-- job renews directly: a renewal is not a state change and not an event.
-- rebuild-projections leaves them NULL (a running job is then taken over).
--
-- `job_duties` is not a projection either: one lease row per singleton duty
-- (node checks, roll-ups, checkpoints…), held by one daemon at a time.
CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    queued_seq       bigint NOT NULL,          -- seq of job.queued: the listing's order and cursor
    kind             text NOT NULL,
    target           text,
    node_id          text,
    concurrency_key  text,
    args             jsonb NOT NULL DEFAULT '{}'::jsonb,
    state            text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    timeout_s        integer NOT NULL,
    run_at           timestamptz NOT NULL,
    cancel_requested boolean NOT NULL DEFAULT false,
    result           jsonb,
    error            jsonb,
    created_by       jsonb,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL,
    lease_holder     text,
    lease_until      timestamptz
);
CREATE INDEX jobs_active ON jobs (run_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_key ON jobs (concurrency_key, queued_seq) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_listing ON jobs (queued_seq DESC);
CREATE INDEX jobs_node ON jobs (node_id, queued_seq DESC);

CREATE TABLE job_duties (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    lease_until timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL
);

-- A job event that does not apply to the row's state (a stale attempt's
-- outcome after a takeover, a start after a cancel) is refused: its append
-- fails with a conflict and it never enters the log.
CREATE FUNCTION jobs_refuse() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'job event does not apply to the job''s state'
        USING ERRCODE = '23505', CONSTRAINT = 'jobs_state';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'serverbox_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON jobs, job_duties TO serverbox_app;
    END IF;
END
$$;
