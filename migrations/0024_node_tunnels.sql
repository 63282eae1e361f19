-- Nodes behind NAT (issue #21): a node either is reached directly at its
-- host and port (`connection = 'direct'`) or holds a reverse SSH tunnel to
-- the core's tunnel sshd (`'tunnel'`), whose forward listens on
-- 127.0.0.1:<tunnel_port> of the core's host; its host and port are then
-- 127.0.0.1 and that port. `tunnel_public_key` is the node's tunnel key
-- (ed25519; a public key, so it may live in events), pinned in the tunnel
-- sshd's authorized_keys with a permitlisten for exactly its own port.
-- The state columns are moved by node.tunnel_up / node.tunnel_down
-- (store/projections.c), which the health checker records on a change.
ALTER TABLE nodes
    ADD COLUMN connection text NOT NULL DEFAULT 'direct' CHECK (connection IN ('direct', 'tunnel')),
    ADD COLUMN tunnel_port integer UNIQUE CHECK (tunnel_port BETWEEN 1 AND 65535),
    ADD COLUMN tunnel_public_key text,
    ADD COLUMN tunnel_status text CHECK (tunnel_status IN ('up', 'down')),
    ADD COLUMN tunnel_status_changed_at timestamptz,
    ADD COLUMN tunnel_connected_since timestamptz,  -- NULL while down
    ADD COLUMN tunnel_first_up_at timestamptz,      -- the first time it was up
    ADD COLUMN tunnel_reconnects integer NOT NULL DEFAULT 0, -- times it came back after the first
    ADD CONSTRAINT nodes_tunnel_fields CHECK (
        (connection = 'direct' AND tunnel_port IS NULL AND tunnel_public_key IS NULL) OR
        (connection = 'tunnel' AND tunnel_port IS NOT NULL AND tunnel_public_key IS NOT NULL));
