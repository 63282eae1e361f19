-- Nodes: hosts reached over SSH. `nodes` is a projection of the node.*
-- events; `node_credentials` is not (secrets never enter events): it holds
-- the private key and passphrase sealed with the master key, written by the
-- registration and key-change commands and removed by the node.deleted
-- projection. rebuild-projections leaves it alone.
CREATE TABLE nodes (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL UNIQUE,
    host                 text NOT NULL,
    port                 integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    ssh_user             text NOT NULL,
    labels               jsonb NOT NULL DEFAULT '{}'::jsonb,
    docker               text NOT NULL DEFAULT 'ssh' CHECK (docker IN ('local', 'ssh')),
    host_key_fingerprint text NOT NULL,
    key_type             text,
    public_key           text,
    status               text NOT NULL DEFAULT 'online'
                         CHECK (status IN ('online', 'offline', 'hostkey_mismatch')),
    status_reason        text,
    status_changed_at    timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX nodes_labels ON nodes USING gin (labels);

CREATE TABLE node_credentials (
    node_id           uuid PRIMARY KEY,
    private_key       text NOT NULL,  -- crypto_seal() output, never clear text
    passphrase        text,           -- crypto_seal() output or NULL
    updated_at        timestamptz NOT NULL DEFAULT now()
);
