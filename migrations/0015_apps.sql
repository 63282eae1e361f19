-- GitOps apps (issue #15). `apps` and `app_deployments` are projections of
-- the app.* events (store/apps.c). `app_secrets` is not: it holds an app's
-- secret variables and its webhook secret sealed with the master key
-- (secrets never enter events), written by the API beside the event and
-- removed by the app.deleted projection. `app_deployment_logs` is not
-- either: the build and run log of a deployment, written by its job (a log
-- is output, not a state change; the events carry the steps and the last
-- lines of a failure). rebuild-projections leaves both.
CREATE TABLE apps (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    node_id            text NOT NULL,
    repo_url           text NOT NULL,
    branch             text NOT NULL,
    subdir             text NOT NULL DEFAULT '',
    port               integer NOT NULL,          -- the port the app listens on in its container
    health_path        text NOT NULL,
    health_timeout_s   integer NOT NULL,
    domain             text,
    route_port         integer,                   -- the Caddy port of an app without a domain
    memory             bigint,                    -- bytes; NULL = no limit
    nano_cpus          bigint,
    variables          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- clear values only
    secret_names       jsonb NOT NULL DEFAULT '[]'::jsonb,
    status             text NOT NULL DEFAULT 'created'
                       CHECK (status IN ('created', 'deploying', 'running', 'failed')),
    status_reason      text,
    current_deployment uuid,
    current_commit     text,
    current_image      text,
    current_container  text,
    host_port          integer,
    created_by         text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);

CREATE TABLE app_deployments (
    id           uuid PRIMARY KEY,
    app_id       uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('deploy', 'rollback')),
    trigger      text NOT NULL,                   -- manual | webhook | rollback
    rollback_of  uuid,
    job_id       text,
    status       text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    step         text,
    steps        jsonb NOT NULL DEFAULT '[]'::jsonb, -- [{step, at, …}]
    commit       text,
    image        text,
    image_id     text,
    detector     text,
    dockerfile   text,                               -- the generated one, when detected
    container_id text,
    host_port    integer,
    reason       text,
    rolled_back  boolean NOT NULL DEFAULT false,
    log_tail     jsonb,
    requested_by jsonb,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
CREATE INDEX app_deployments_app ON app_deployments (app_id, created_at DESC);

CREATE TABLE app_secrets (
    app_id uuid PRIMARY KEY,
    sealed text NOT NULL   -- crypto_seal() of {"env":{name:value}, "webhook":"…"}
);

CREATE TABLE app_deployment_logs (
    deployment_id uuid PRIMARY KEY,
    log           text NOT NULL
);
