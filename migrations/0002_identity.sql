-- Identity and access: users (a projection of user.* events), and the
-- credential stores that hold secret verifiers. Password hashes and token
-- hashes never enter the event log (events name credentials, never hold
-- them), so the credential tables are written directly by the store and are
-- not projections: rebuild-projections leaves them alone.

-- Projection of user.created / user.updated / user.deleted.
CREATE TABLE users (
    id          uuid PRIMARY KEY,
    username    text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled    boolean NOT NULL DEFAULT false,
    node_labels jsonb,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);

-- argon2id hashes (crypto_pwhash_str format), one per user.
CREATE TABLE user_credentials (
    user_id       uuid PRIMARY KEY,
    password_hash text NOT NULL,
    changed_at    timestamptz NOT NULL DEFAULT now()
);

-- Browser and API sessions. Only sha256(token) is kept.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    csrf_sha256  bytea NOT NULL CHECK (length(csrf_sha256) = 32),
    client_ip    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

-- API tokens for CI (sbx_…). Only sha256(token) is kept.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    node_labels  jsonb,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Guest links for auditors (sbg_…): read-only scopes, bounded lifetime.
CREATE TABLE guest_links (
    id           uuid PRIMARY KEY,
    created_by   uuid,
    note         text NOT NULL DEFAULT '',
    scopes       text[] NOT NULL,
    node_labels  jsonb,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

-- Signed checkpoints of the audit chain (see docs/events.md).
CREATE TABLE checkpoints (
    seq        bigint PRIMARY KEY,
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    signed_at  timestamptz NOT NULL,
    signature  bytea NOT NULL CHECK (length(signature) = 64),
    public_key bytea NOT NULL CHECK (length(public_key) = 32)
);

CREATE INDEX events_actor_kind_seq ON events (actor_kind, seq);
CREATE INDEX events_outcome_seq ON events (outcome, seq);
