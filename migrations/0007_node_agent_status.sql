-- Two views of a node, kept apart: `status` is what the core's SSH health
-- check sees (can it reach the node), `agent_status` what the collector's
-- batches say (is the agent on the node reporting; NULL = never reported).
-- Both are moved by node.online / node.offline events; those of the
-- collector carry "source":"collector" (store/projections.c).
ALTER TABLE nodes
    ADD COLUMN agent_status text CHECK (agent_status IN ('online', 'offline')),
    ADD COLUMN agent_status_changed_at timestamptz,
    -- the interval the collector last reported: how long a restarted core
    -- waits before it calls a silent collector offline
    ADD COLUMN agent_interval_ms integer;
