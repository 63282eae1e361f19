-- Token lineage (issue #13 finding 5): a token made with a token records its
-- parent; it expires no later than the parent (enforced at creation) and is
-- revoked with it (revocation follows parent_id down; a lookup also refuses
-- a token whose ancestor is revoked or expired, for the daemon that has not
-- heard of the revocation yet).
ALTER TABLE api_tokens ADD COLUMN parent_id uuid;
CREATE INDEX api_tokens_parent ON api_tokens (parent_id) WHERE parent_id IS NOT NULL;
