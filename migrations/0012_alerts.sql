-- Alerts and notifications (issue #18). alert_rules, alert_channels,
-- alert_silences, alerts and alert_deliveries are projections of the
-- alert_rule.*, alert_channel.*, alert_silence.* and alert.* events
-- (store/alerts.c). alert_channel_secrets is not: it holds each channel's
-- secrets (URL with its token, HMAC secret, SMTP password) sealed with the
-- master key, written beside the channel's event (a side write) and removed
-- with the channel. alert_eval_state is the evaluator's cursor into the
-- log (not an event: it moves every round).
CREATE TABLE alert_rules (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    kind        text NOT NULL,
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,  -- metric, op, threshold, for_s, count, window_s …
    severity    text NOT NULL DEFAULT 'warning',
    node_labels jsonb,                               -- the nodes it applies to; NULL = all
    channels    jsonb NOT NULL DEFAULT '[]'::jsonb,  -- channel ids; [] = every enabled channel
    repeat_s    integer NOT NULL DEFAULT 0,          -- re-notify a firing, unacknowledged alert; 0 = never
    enabled     boolean NOT NULL DEFAULT true,
    builtin     boolean NOT NULL DEFAULT false,      -- one of the defaults of a fresh install
    created_by  text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE alert_channels (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    kind         text NOT NULL CHECK (kind IN ('webhook', 'slack', 'discord', 'email', 'ntfy')),
    config       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- clear settings only (url shown masked)
    secret_names jsonb NOT NULL DEFAULT '[]'::jsonb,
    enabled      boolean NOT NULL DEFAULT true,
    created_by   text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE alert_channel_secrets (
    channel_id uuid PRIMARY KEY,
    sealed     text NOT NULL   -- crypto_seal() of a JSON object of the channel's secrets
);

CREATE TABLE alert_silences (
    id          uuid PRIMARY KEY,
    matchers    jsonb NOT NULL DEFAULT '{}'::jsonb,  -- alert field -> value (all must match)
    node_labels jsonb,                               -- and the alert's node must match this selector
    starts_at   timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    comment     text NOT NULL DEFAULT '',
    state       text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'ended', 'deleted')),
    created_by  text,
    created_at  timestamptz NOT NULL,
    ended_at    timestamptz
);

CREATE TABLE alerts (
    id              uuid PRIMARY KEY,
    rule_id         uuid NOT NULL,
    rule_name       text NOT NULL,
    kind            text NOT NULL,
    severity        text NOT NULL,
    target          text NOT NULL,                    -- node/<id>, container/<node>/<cid>, stack/<id>, audit
    node_id         text,
    node_name       text,
    container_id    text,
    container_name  text,
    summary         text NOT NULL,
    value           double precision,
    state           text NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    silenced        boolean NOT NULL DEFAULT false,
    source_seq      bigint,                           -- the event that fired it, if one did
    fired_at        timestamptz NOT NULL,
    fired_seq       bigint NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_reason text,
    last_notified_at timestamptz,
    notifications   integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL
);
-- Deduplication: one open alert per rule and target, whatever the number
-- of daemons (a second alert.fired is refused by the projection).
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, target) WHERE state <> 'resolved';
CREATE INDEX alerts_recent ON alerts (fired_seq DESC);

CREATE TABLE alert_deliveries (
    seq          bigint PRIMARY KEY,                  -- the event that recorded the attempt
    alert_id     uuid,                                -- NULL for a channel's test
    channel_id   uuid NOT NULL,
    channel_name text NOT NULL DEFAULT '',
    notification text NOT NULL,                       -- firing | resolved | repeat | unsilenced | test
    attempt      integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    status       integer,                             -- the receiver's HTTP status or SMTP code
    answer       text NOT NULL DEFAULT '',            -- the receiver's answer (first 1,000 bytes)
    job_id       text,
    at           timestamptz NOT NULL
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id, seq);

-- The evaluator looks for transitions whose delivery jobs were never
-- queued (a crash between the two appends): by the jobs' target.
CREATE INDEX jobs_alert_target ON jobs (target) WHERE kind = 'alert.deliver';

CREATE TABLE alert_eval_state (
    name text PRIMARY KEY,
    seq  bigint NOT NULL
);
-- Event rules judge what is appended from now on: the log before this
-- migration (all of it on an upgrade, nothing on a fresh install) does not alert.
INSERT INTO alert_eval_state (name, seq) SELECT 'events', coalesce(max(seq), 0) FROM events;

CREATE FUNCTION alerts_refuse() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alert event does not apply to the alert''s state'
        USING ERRCODE = '23505', CONSTRAINT = 'alerts_state';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'serverbox_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON alert_rules, alert_channels, alert_channel_secrets,
            alert_silences, alerts, alert_deliveries, alert_eval_state TO serverbox_app;
    END IF;
END
$$;
