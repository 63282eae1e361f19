-- Two-factor authentication with TOTP (issue #20). Like passwords, the
-- secrets and their verifiers are credential tables written by the store
-- beside their events, never in the log: the TOTP secret sealed with the
-- master key, recovery codes as SHA-256, and the short-lived login
-- challenges that sit between the password and the code. role_policies is a
-- projection of role.policy_set (which roles must use 2FA).
CREATE TABLE user_totp (
    user_id       uuid PRIMARY KEY,
    sealed_secret text NOT NULL,
    confirmed_at  timestamptz,              -- NULL while enrolling
    last_counter  bigint NOT NULL DEFAULT 0, -- the last accepted time step: never again, nor any before
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_recovery_codes (
    user_id     uuid NOT NULL,
    code_sha256 bytea NOT NULL CHECK (length(code_sha256) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    PRIMARY KEY (user_id, code_sha256)
);

CREATE TABLE login_challenges (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    client_ip    text,
    attempts     int NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX login_challenges_expiry ON login_challenges (expires_at);

CREATE TABLE role_policies (
    role         text PRIMARY KEY,
    require_totp boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL
);
