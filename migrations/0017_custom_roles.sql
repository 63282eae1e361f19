-- Custom roles (issue #20): an admin defines a role as a set of the
-- permissions the route table declares and assigns it to users and tokens.
-- The built-in roles (admin, operator, viewer) are not rows: they cannot be
-- edited. `roles` is a projection of role.created / role.updated /
-- role.deleted; users.role and api_tokens.role now name a built-in role or
-- a custom one (the API checks that it exists).
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_name CHECK (role ~ '^[a-z][a-z0-9_-]{0,31}$');
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_name CHECK (role ~ '^[a-z][a-z0-9_-]{0,31}$');

CREATE TABLE roles (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'
                                        AND name NOT IN ('admin', 'operator', 'viewer', 'guest')),
    description text NOT NULL DEFAULT '',
    permissions text[] NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX users_role ON users (role);
CREATE INDEX api_tokens_role ON api_tokens (role) WHERE revoked_at IS NULL;
