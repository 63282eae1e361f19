-- A third view of a node, apart from `status` (can the core reach it over
-- SSH) and `agent_status` (is its collector reporting): `docker_status`,
-- whether the node's Docker engine answers (through the SSH bridge, or the
-- local socket for docker = 'local'); NULL until the first check. Moved by
-- node.docker_reachable / node.docker_unreachable (store/projections.c),
-- which the health checker records on a change; `docker_reason` says why in
-- words ("Docker socket /var/run/docker.sock not found on the node").
ALTER TABLE nodes
    ADD COLUMN docker_status text CHECK (docker_status IN ('reachable', 'unreachable')),
    ADD COLUMN docker_reason text,
    ADD COLUMN docker_status_changed_at timestamptz;
