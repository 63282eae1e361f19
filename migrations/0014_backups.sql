-- Backups (issue #19): restic repositories, plans and runs. The three tables
-- are projections of the backup.* events (store/backups.c);
-- `backup_repository_secrets` is not: it holds each repository's restic
-- password and SFTP key sealed with the master key (secrets never enter
-- events), written with the repository's event and removed by
-- backup.repository_deleted. rebuild-projections leaves it.
CREATE TABLE backup_repositories (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    kind       text NOT NULL CHECK (kind IN ('local', 'sftp')),
    location   jsonb NOT NULL,          -- {path} | {host, port, user, path, known_hosts}
    created_by text,
    created_at timestamptz NOT NULL
);

CREATE TABLE backup_repository_secrets (
    repository_id   uuid PRIMARY KEY,
    sealed_password text NOT NULL,      -- crypto_seal() of the restic password
    sealed_key      text                -- crypto_seal() of the SFTP private key
);

CREATE TABLE backup_plans (
    id               uuid PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    repository_id    uuid NOT NULL,
    what             jsonb NOT NULL,    -- {control_plane: bool, stack_id?, volumes?: [names]}
    node_id          text,              -- the stack's node (label scope), NULL for the control plane alone
    schedule         text,              -- cron (5 fields or @daily …), NULL = on demand only
    retention        jsonb NOT NULL DEFAULT '{}'::jsonb, -- {daily, weekly, monthly}
    created_by       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    last_fired_at    timestamptz,       -- the last time the schedule fired
    last_run_id      uuid,
    last_status      text,
    last_bytes       bigint,
    last_finished_at timestamptz
);

CREATE TABLE backup_runs (
    id            uuid PRIMARY KEY,     -- the job's id
    plan_id       uuid NOT NULL,
    repository_id uuid NOT NULL,
    node_id       text,
    trigger       text NOT NULL,        -- manual | schedule
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempt       integer NOT NULL DEFAULT 1,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    snapshots     jsonb NOT NULL DEFAULT '[]'::jsonb, -- [{id, part, bytes, added}]
    bytes         bigint,
    added         bigint,
    duration_ms   bigint,
    checked       boolean,
    reason        text
);
CREATE INDEX backup_runs_plan ON backup_runs (plan_id, started_at DESC);
