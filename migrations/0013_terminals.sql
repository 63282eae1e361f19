-- Terminal recordings (issue #16): a projection of terminal.closed events.
-- The recording itself is an asciicast v2 file in the core's data dir
-- (recordings/<id>.cast); its SHA-256 is in the event, so the audit chain
-- vouches for the file. Retention removes files, never rows or events.
CREATE TABLE recordings (
    id          uuid PRIMARY KEY,
    terminal_id uuid NOT NULL,
    node_id     text NOT NULL,  -- a node uuid, or 'local' (the core's own engine: container consoles)
    session     text NOT NULL,
    container   text,           -- container consoles: the container id
    opened_by   text NOT NULL DEFAULT '',
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz NOT NULL,
    reason      text NOT NULL,
    bytes       bigint NOT NULL,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    truncated   boolean NOT NULL DEFAULT false,
    closed_seq  bigint NOT NULL
);
CREATE INDEX recordings_node ON recordings (node_id, closed_at DESC);
