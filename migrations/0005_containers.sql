-- Projection: the containers of every node's engine, as the engine's own
-- events (and reconciliation after a reconnect) describe them. Updated from
-- container.* events in store/projections.c; rebuilt from the log.
CREATE TABLE containers (
    node_id      text NOT NULL,
    container_id text NOT NULL,
    name         text NOT NULL DEFAULT '',
    image        text NOT NULL DEFAULT '',
    state        text NOT NULL DEFAULT 'unknown',
    labels       jsonb NOT NULL DEFAULT '{}',
    exit_code    integer,
    health       text,
    updated_seq  bigint NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (node_id, container_id)
);
CREATE INDEX containers_state ON containers (node_id, state);
