-- Collector enrollment and node metrics (issue #7).
--
-- Node ids are text without a foreign key to `nodes`: samples of a deleted
-- node age out with their partitions instead of blocking the delete, and the
-- node.deleted projection revokes its collector keys.

-- Projection (agent.enroll_token_issued, agent.enrolled): one-time tokens,
-- stored only as the SHA-256 of the token.
CREATE TABLE agent_enroll_tokens (
    token_sha256 text PRIMARY KEY,
    node_id      text NOT NULL,
    expires_at   timestamptz NOT NULL,
    issued_at    timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX agent_enroll_tokens_node ON agent_enroll_tokens (node_id);

-- Projection (agent.enrolled): the public keys collectors sign with.
CREATE TABLE agent_keys (
    fingerprint text PRIMARY KEY,
    node_id     text NOT NULL,
    public_key  text NOT NULL,          -- 64 hex characters (Ed25519)
    enrolled_at timestamptz NOT NULL,
    revoked_at  timestamptz,
    token_sha256 text UNIQUE          -- the token it consumed: a token enrolls once
);
CREATE INDEX agent_keys_node ON agent_keys (node_id);

-- Ingest state (not a projection: samples are not events): the highest
-- batch sequence number accepted per node, so a resent batch is ignored.
CREATE TABLE agent_ingest (
    node_id  text PRIMARY KEY,
    last_seq bigint NOT NULL,
    last_at  timestamptz NOT NULL
);

-- Time series. Partitioned by day; partitions are made ahead and dropped
-- whole when past retention by metrics_maintain().
CREATE TABLE metrics_raw (
    node_id        text NOT NULL,
    ts             timestamptz NOT NULL,
    seq            bigint NOT NULL,
    cpu_pct        real,
    mem_total      bigint,
    mem_used       bigint,
    swap_total     bigint,
    swap_used      bigint,
    load1          real,
    load5          real,
    load15         real,
    procs          integer,
    uptime_s       bigint,
    disk_total     bigint,
    disk_used      bigint,
    disk_read_bps  real,
    disk_write_bps real,
    net_rx_bps     real,
    net_tx_bps     real,
    detail         jsonb,
    PRIMARY KEY (node_id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_container_raw (
    node_id       text NOT NULL,
    container_id  text NOT NULL,
    ts            timestamptz NOT NULL,
    name          text NOT NULL,
    cpu_pct       real,
    mem_used      bigint,
    mem_limit     bigint,
    net_rx_bps    real,
    net_tx_bps    real,
    blk_read_bps  real,
    blk_write_bps real,
    PRIMARY KEY (node_id, container_id, ts)
) PARTITION BY RANGE (ts);

-- One-minute roll-ups (averages; maxima for CPU).
CREATE TABLE metrics_1m (
    node_id        text NOT NULL,
    ts             timestamptz NOT NULL,
    samples        integer NOT NULL,
    cpu_pct        real,
    cpu_pct_max    real,
    mem_total      bigint,
    mem_used       bigint,
    swap_total     bigint,
    swap_used      bigint,
    load1          real,
    load5          real,
    load15         real,
    procs          integer,
    uptime_s       bigint,
    disk_total     bigint,
    disk_used      bigint,
    disk_read_bps  real,
    disk_write_bps real,
    net_rx_bps     real,
    net_tx_bps     real,
    PRIMARY KEY (node_id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE metrics_container_1m (
    node_id       text NOT NULL,
    container_id  text NOT NULL,
    ts            timestamptz NOT NULL,
    name          text NOT NULL,
    samples       integer NOT NULL,
    cpu_pct       real,
    mem_used      bigint,
    mem_limit     bigint,
    net_rx_bps    real,
    net_tx_bps    real,
    blk_read_bps  real,
    blk_write_bps real,
    PRIMARY KEY (node_id, container_id, ts)
) PARTITION BY RANGE (ts);

-- Creates the daily partitions from `days_back` days ago to two days ahead
-- and drops those wholly older than the retention. SECURITY DEFINER: the
-- daemon's role may neither create nor drop tables, the owner may. Returns
-- the number of partitions dropped.
CREATE FUNCTION metrics_maintain(raw_days integer, rollup_days integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    t text;
    keep integer;
    d date;
    part record;
    upper_bound timestamptz;
    dropped integer := 0;
BEGIN
    IF raw_days < 1 OR rollup_days < 1 THEN
        RAISE EXCEPTION 'retention must be at least one day';
    END IF;
    FOREACH t IN ARRAY ARRAY['metrics_raw', 'metrics_container_raw', 'metrics_1m', 'metrics_container_1m'] LOOP
        keep := CASE WHEN t LIKE '%\_1m' THEN rollup_days ELSE raw_days END;
        FOR d IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - 2,
                                        (now() AT TIME ZONE 'UTC')::date + 2, '1 day')::date LOOP
            IF to_regclass(format('%s_p%s', t, to_char(d, 'YYYYMMDD'))) IS NULL THEN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               format('%s_p%s', t, to_char(d, 'YYYYMMDD')), t,
                               (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
            END IF;
        END LOOP;
        FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = t::regclass LOOP
            IF part.relname ~ '_p[0-9]{8}$' THEN
                upper_bound := (to_date(right(part.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC';
                IF upper_bound < now() - make_interval(days => keep) THEN
                    EXECUTE format('DROP TABLE %I', part.relname);
                    dropped := dropped + 1;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
    RETURN dropped;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'serverbox_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON agent_enroll_tokens, agent_keys, agent_ingest,
            metrics_raw, metrics_container_raw, metrics_1m, metrics_container_1m TO serverbox_app;
        REVOKE ALL ON FUNCTION metrics_maintain(integer, integer) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION metrics_maintain(integer, integer) TO serverbox_app;
    END IF;
END
$$;

SELECT metrics_maintain(7, 90);
