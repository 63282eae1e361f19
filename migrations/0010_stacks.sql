-- Compose stacks (issue #22). `stacks` and `stack_revisions` are
-- projections of the stack.* events (store/stacks.c); `stack_secrets` is
-- not: it holds each revision's secret variables sealed with the master key
-- (secrets never enter events), written by the API before the event and
-- removed by the stack.deleted projection. rebuild-projections leaves it.
CREATE TABLE stacks (
    id                uuid PRIMARY KEY,
    name              text NOT NULL,
    node_id           text NOT NULL,
    revision          integer NOT NULL,           -- the latest revision saved
    deployed_revision integer,                    -- the revision the last good deploy ran
    pending_revision  integer,                    -- the revision a queued or running deploy applies
    pending_job       text,
    status            text NOT NULL DEFAULT 'created'
                      CHECK (status IN ('created', 'deploying', 'deployed', 'failed', 'stopped', 'down')),
    status_reason     text,
    scale             jsonb NOT NULL DEFAULT '{}'::jsonb, -- service -> replicas set by /scale
    created_by        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (node_id, name)
);

CREATE TABLE stack_revisions (
    stack_id       uuid NOT NULL,
    revision       integer NOT NULL,
    compose        text NOT NULL,
    variables      jsonb NOT NULL DEFAULT '{}'::jsonb, -- clear values only
    secret_names   jsonb NOT NULL DEFAULT '[]'::jsonb, -- names of the sealed ones
    env_files      jsonb NOT NULL DEFAULT '{}'::jsonb,
    pinned_digests jsonb,                              -- a rollback's image ids, used without pulling
    rollback_of    integer,
    plan           jsonb,
    digests        jsonb,                              -- image id per service after the deploy
    deploy_status  text,                               -- deployed | failed | rolled_back
    deploy_reason  text,
    deployed_at    timestamptz,
    created_by     text,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (stack_id, revision)
);

CREATE TABLE stack_secrets (
    stack_id   uuid NOT NULL,
    revision   integer NOT NULL,
    sealed     text NOT NULL,  -- crypto_seal() of a JSON object name -> value
    PRIMARY KEY (stack_id, revision)
);
