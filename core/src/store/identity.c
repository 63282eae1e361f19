/*
 * Users and credentials. Users are read here and written by the projection
 * (projections.c) from user.* events; the credential tables are written
 * here directly: they hold verifiers (argon2id strings, sha256 of tokens)
 * that must never be copied into the append-only log.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_OF(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
/* A custom role's permission names as JSON text (NULL for built-in roles). */
/* Whether the user's role needs 2FA and the user has none confirmed. */
#define TOTP_SETUP                                                                                           \
    "(coalesce((SELECT p.require_totp FROM role_policies p WHERE p.role = u.role), false) AND NOT EXISTS "   \
    "(SELECT 1 FROM user_totp z WHERE z.user_id = u.id AND z.confirmed_at IS NOT NULL))"
#define ROLE_PERMS(col) "(SELECT array_to_json(r.permissions)::text FROM roles r WHERE r.name = " col ")"

/* Runs one statement on a pooled connection. Returns the result or NULL. */
static PGresult *run(struct store *st, struct store_stmt *stmt, int n, const char *const *p,
                     struct sb_err *err)
{
    PGresult *r;
    store_query(st, stmt, n, p, &r, err);
    return r;
}

static int run_cmd(struct store *st, struct store_stmt *stmt, int n, const char *const *p, bool need_row,
                   struct sb_err *err)
{
    PGresult *r = run(st, stmt, n, p, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    bool none = need_row && sb_int64(PQcmdTuples(r)) == 0;
    PQclear(r);
    return none ? sb_error(err, SB_ENOTFOUND, "not found") : 0;
}

static json_t *labels_of(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    json_t *v = json_loads(PQgetvalue(r, row, col), 0, NULL);
    if (v && (!json_is_object(v) || json_object_size(v) == 0)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static void us_text(int64_t us, char *out, size_t len)
{
    snprintf(out, len, "%lld", (long long)us);
}

void store_user_release(struct store_user *u)
{
    json_decref(u->node_labels);
    u->node_labels = NULL;
}

void store_credential_release(struct store_credential *c)
{
    json_decref(c->node_labels);
    json_decref(c->user_node_labels);
    json_decref(c->role_permissions);
    json_decref(c->user_role_permissions);
    c->node_labels = NULL;
    c->user_node_labels = NULL;
    c->role_permissions = NULL;
    c->user_role_permissions = NULL;
}

int store_user_count(struct store *st, int64_t *n, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT("SELECT count(*) FROM users");
    PGresult *r = run(st, &q, 0, NULL, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    *n = sb_int64(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

static void user_from(PGresult *r, struct store_user *u)
{
    memset(u, 0, sizeof *u);
    sb_strlcpy(u->id, PQgetvalue(r, 0, 0), sizeof u->id);
    sb_strlcpy(u->username, PQgetvalue(r, 0, 1), sizeof u->username);
    sb_strlcpy(u->role, PQgetvalue(r, 0, 2), sizeof u->role);
    u->disabled = PQgetvalue(r, 0, 3)[0] == 't';
    u->node_labels = labels_of(r, 0, 4);
}

/* One user by the statement's only parameter; column 5, when asked for,
 * is the password hash. */
static int user_get(struct store *st, struct store_stmt *q, const char *key, struct store_user *u,
                    char *password_hash, size_t hash_len, struct sb_err *err)
{
    const char *p[1] = {key};
    PGresult *r = run(st, q, 1, p, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sb_error(err, SB_ENOTFOUND, "no such user");
    }
    user_from(r, u);
    if (password_hash)
        sb_strlcpy(password_hash, PQgetvalue(r, 0, 5), hash_len);
    PQclear(r);
    return 0;
}

int store_user_by_name(struct store *st, const char *username, struct store_user *u, char *password_hash,
                       size_t hash_len, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT u.id, u.username, u.role, u.disabled, u.node_labels::text, coalesce(c.password_hash, '') "
        "FROM users u LEFT JOIN user_credentials c ON c.user_id = u.id WHERE u.username = $1");
    return user_get(st, &q, username, u, password_hash, hash_len, err);
}

int store_user_by_id(struct store *st, const char *id, struct store_user *u, struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("SELECT id, username, role, disabled, node_labels::text FROM users WHERE id = $1::uuid");
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such user");
    return user_get(st, &q, id, u, NULL, 0, err);
}

/* Turns a one-column result of json_agg text into a JSON array. */
static int json_rows(PGresult *r, json_t **out, struct sb_err *err)
{
    const char *text = PQgetisnull(r, 0, 0) ? "[]" : PQgetvalue(r, 0, 0);
    *out = json_loads(text, 0, NULL);
    PQclear(r);
    if (!*out)
        return sb_error(err, SB_EINTERNAL, "unreadable listing");
    return 0;
}

/* Runs a json_agg listing and parses it into *out (caller owns it). */
static int list_json(struct store *st, struct store_stmt *q, int n, const char *const *params, json_t **out,
                     struct sb_err *err)
{
    PGresult *r = run(st, q, n, params, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    return json_rows(r, out, err);
}

int store_users_list(struct store *st, json_t **out, struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("SELECT json_agg(json_build_object('id', id, 'username', "
                   "username, 'role', role, 'disabled', disabled, "
                   "'node_labels', node_labels, 'created_at', created_at, "
                   "'updated_at', updated_at, 'totp_enabled', EXISTS (SELECT 1 FROM "
                   "user_totp t WHERE t.user_id = users.id AND t.confirmed_at IS NOT "
                   "NULL)) ORDER BY username)::text "
                   "FROM users");
    return list_json(st, &q, 0, NULL, out, err);
}

int store_password_set(struct store *st, const struct event_new *ev, const char *user_id,
                       const char *password_hash, struct sb_err *err)
{
    const char *p[2] = {user_id, password_hash};
    struct store_side_write w = {
        "INSERT INTO user_credentials (user_id, password_hash, changed_at) VALUES ($1::uuid, $2, now()) "
        "ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, changed_at = now()",
        2, p};
    return store_append_with(st, ev, &w, NULL, err);
}

int store_credential_lookup(struct store *st, const char *kind, const char *token_sha256,
                            struct store_credential *out, struct sb_err *err)
{
    /* clang-format off */
    static struct store_stmt qs = STORE_STMT(
        "SELECT s.id, s.user_id, u.username, u.username, u.role, u.role, encode(s.csrf_sha256, 'hex'), '', "
        "u.node_labels::text, " US_OF("s.expires_at") ", " US_OF("s.last_seen_at") ", NULL::text, "
        ROLE_PERMS("u.role") ", " ROLE_PERMS("u.role") ", " TOTP_SETUP " "
        "FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.token_sha256 = decode($1, 'hex') AND s.revoked_at IS NULL AND NOT u.disabled "
        "AND s.expires_at > now()");
    /* A token: its own role and selector, and its owner's current ones
     * (auth/ caps the role and intersects the selectors). */
    static struct store_stmt qt = STORE_STMT(
        "SELECT t.id, t.user_id, t.name, u.username, t.role, u.role, '', '', t.node_labels::text, "
        "coalesce(" US_OF("t.expires_at") ", 0), coalesce(" US_OF("t.last_used_at") ", 0), "
        "u.node_labels::text, " ROLE_PERMS("t.role") ", " ROLE_PERMS("u.role") ", false "
        "FROM api_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE t.token_sha256 = decode($1, 'hex') AND t.revoked_at IS NULL AND NOT u.disabled "
        "AND (t.expires_at IS NULL OR t.expires_at > now()) "
        "AND (t.parent_id IS NULL OR NOT EXISTS ("
        "  WITH RECURSIVE up(id, parent_id, revoked_at, expires_at, depth) AS ("
        "    SELECT p.id, p.parent_id, p.revoked_at, p.expires_at, 1 FROM api_tokens p WHERE p.id = t.parent_id "
        "    UNION ALL SELECT p.id, p.parent_id, p.revoked_at, p.expires_at, up.depth + 1 "
        "    FROM api_tokens p JOIN up ON p.id = up.parent_id WHERE up.depth < 64) "
        "  SELECT 1 FROM up WHERE up.revoked_at IS NOT NULL OR up.expires_at <= now()))");
    /* clang-format on */
    static struct store_stmt qg = STORE_STMT(
        "SELECT g.id, '', g.note, '', 'guest', 'guest', '', array_to_string(g.scopes, ','), "
        "g.node_labels::text, " US_OF("g.expires_at") ", 0 FROM guest_links g "
                                                      "WHERE g.token_sha256 = decode($1, 'hex') AND "
                                                      "g.revoked_at IS NULL AND g.expires_at > now()");
    struct store_stmt *q = strcmp(kind, "session") == 0 ? &qs : strcmp(kind, "token") == 0 ? &qt : &qg;
    memset(out, 0, sizeof *out);
    const char *p[1] = {token_sha256};
    PGresult *r = run(st, q, 1, p, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sb_error(err, SB_EAUTH, "invalid or expired credential");
    }
    sb_strlcpy(out->kind, kind, sizeof out->kind);
    sb_strlcpy(out->id, PQgetvalue(r, 0, 0), sizeof out->id);
    sb_strlcpy(out->user_id, PQgetvalue(r, 0, 1), sizeof out->user_id);
    sb_strlcpy(out->name, PQgetvalue(r, 0, 2), sizeof out->name);
    sb_strlcpy(out->username, PQgetvalue(r, 0, 3), sizeof out->username);
    sb_strlcpy(out->role, PQgetvalue(r, 0, 4), sizeof out->role);
    sb_strlcpy(out->user_role, PQgetvalue(r, 0, 5), sizeof out->user_role);
    sb_strlcpy(out->csrf_sha256, PQgetvalue(r, 0, 6), sizeof out->csrf_sha256);
    sb_strlcpy(out->scopes, PQgetvalue(r, 0, 7), sizeof out->scopes);
    out->node_labels = labels_of(r, 0, 8);
    out->expires_us = sb_int64(PQgetvalue(r, 0, 9));
    out->last_seen_us = sb_int64(PQgetvalue(r, 0, 10));
    if (PQnfields(r) > 13) {
        out->user_node_labels = labels_of(r, 0, 11);
        out->role_permissions = PQgetisnull(r, 0, 12) ? NULL : json_loads(PQgetvalue(r, 0, 12), 0, NULL);
        out->user_role_permissions = PQgetisnull(r, 0, 13) ? NULL : json_loads(PQgetvalue(r, 0, 13), 0, NULL);
    }
    if (PQnfields(r) > 14)
        out->totp_setup_required = PQgetvalue(r, 0, 14)[0] == 't';
    PQclear(r);
    return 0;
}

int store_credential_touch(struct store *st, const char *kind, const char *id, struct sb_err *err)
{
    static struct store_stmt qs = STORE_STMT("UPDATE sessions SET last_seen_at = now() WHERE id = $1::uuid");
    static struct store_stmt qt =
        STORE_STMT("UPDATE api_tokens SET last_used_at = now() WHERE id = $1::uuid");
    if (strcmp(kind, "session") != 0 && strcmp(kind, "token") != 0)
        return 0;
    const char *p[1] = {id};
    return run_cmd(st, strcmp(kind, "session") == 0 ? &qs : &qt, 1, p, false, err);
}

int store_session_insert(struct store *st, const struct event_new *ev, const char *id, const char *user_id,
                         const char *token_sha256, const char *csrf_sha256, const char *client_ip,
                         const char *user_agent, int64_t expires_us, struct sb_err *err)
{
    char exp[24];
    us_text(expires_us, exp, sizeof exp);
    const char *p[7] = {id, user_id, token_sha256, csrf_sha256, client_ip, exp, user_agent};
    struct store_side_write w = {
        "INSERT INTO sessions (id, user_id, token_sha256, csrf_sha256, client_ip, expires_at, user_agent) "
        "VALUES ($1::uuid, $2::uuid, decode($3, 'hex'), decode($4, 'hex'), $5, "
        "to_timestamp($6::double precision / 1000000), $7)",
        7, p};
    return store_append_with(st, ev, &w, NULL, err);
}

int store_sessions_list(struct store *st, const char *user_id, int64_t idle_s, json_t **out,
                        struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT json_agg(json_build_object('id', id, 'user_agent', user_agent, 'client_ip', client_ip, "
        "'created_at', created_at, 'last_seen_at', last_seen_at, 'expires_at', expires_at) "
        "ORDER BY last_seen_at DESC, created_at DESC)::text "
        "FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL AND expires_at > now() "
        "AND ($2::bigint <= 0 OR last_seen_at > now() - make_interval(secs => $2::bigint))");
    char idle[24];
    us_text(idle_s, idle, sizeof idle);
    const char *p[2] = {user_id, idle};
    return list_json(st, &q, 2, p, out, err);
}

int store_session_live_hash(struct store *st, const char *user_id, const char *session_id, char hash[65],
                            struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("SELECT encode(token_sha256, 'hex') FROM sessions WHERE id = $1::uuid AND user_id = "
                   "$2::uuid AND revoked_at IS NULL AND expires_at > now()");
    if (!uuid_valid(session_id))
        return sb_error(err, SB_ENOTFOUND, "no such session");
    const char *p[2] = {session_id, user_id};
    PGresult *r = run(st, &q, 2, p, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    int rows = PQntuples(r);
    if (rows)
        sb_strlcpy(hash, PQgetvalue(r, 0, 0), 65);
    PQclear(r);
    return rows ? 0 : sb_error(err, SB_ENOTFOUND, "no such session");
}

int store_session_end(struct store *st, const struct event_new *ev, const char *user_id,
                      const char *session_id, struct sb_err *err)
{
    const char *p[2] = {session_id, user_id};
    struct store_side_write w = {"UPDATE sessions SET revoked_at = now() WHERE id = $1::uuid AND user_id = "
                                 "$2::uuid AND revoked_at IS NULL",
                                 2, p};
    return store_append_with(st, ev, &w, NULL, err);
}

/* Runs a revoking UPDATE … RETURNING encode(token_sha256, 'hex'). */
static int revoke(struct store *st, struct store_stmt *q, int n, const char *const *p, json_t *hashes,
                  bool need_row, struct sb_err *err)
{
    PGresult *r = run(st, q, n, p, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    int rows = PQntuples(r);
    for (int i = 0; hashes && i < rows; i++)
        json_array_append_new(hashes, json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    return need_row && rows == 0 ? sb_error(err, SB_ENOTFOUND, "not found") : 0;
}

int store_session_revoke_hash(struct store *st, const char *token_sha256, char *session_id,
                              struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT("UPDATE sessions SET revoked_at = now() WHERE token_sha256 = "
                                            "decode($1, 'hex') AND revoked_at IS NULL "
                                            "RETURNING id");
    const char *p[1] = {token_sha256};
    PGresult *r = run(st, &q, 1, p, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    int rows = PQntuples(r);
    if (rows && session_id)
        sb_strlcpy(session_id, PQgetvalue(r, 0, 0), 37);
    PQclear(r);
    return rows ? 0 : sb_error(err, SB_ENOTFOUND, "no such session");
}

int store_user_revoke_all(struct store *st, const char *user_id, bool tokens_too, json_t *hashes,
                          struct sb_err *err)
{
    static struct store_stmt qs =
        STORE_STMT("UPDATE sessions SET revoked_at = now() WHERE user_id = $1::uuid AND revoked_at IS NULL "
                   "RETURNING encode(token_sha256, 'hex')");
    static struct store_stmt qt =
        STORE_STMT("UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1::uuid AND revoked_at IS NULL "
                   "RETURNING encode(token_sha256, 'hex')");
    const char *p[1] = {user_id};
    int rc = revoke(st, &qs, 1, p, hashes, false, err);
    if (rc == 0 && tokens_too)
        rc = revoke(st, &qt, 1, p, hashes, false, err);
    return rc;
}

int store_user_revoke_others(struct store *st, const char *user_id, const char *keep_sha256, json_t *hashes,
                             struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("UPDATE sessions SET revoked_at = now() WHERE user_id = $1::uuid AND revoked_at IS NULL "
                   "AND token_sha256 <> decode($2, 'hex') RETURNING encode(token_sha256, 'hex')");
    const char *p[2] = {user_id, keep_sha256};
    return revoke(st, &q, 2, p, hashes, false, err);
}

int store_user_credential_hashes(struct store *st, const char *user_id, json_t *hashes, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT encode(token_sha256, 'hex') FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL "
        "AND expires_at > now() UNION ALL "
        "SELECT encode(token_sha256, 'hex') FROM api_tokens WHERE user_id = $1::uuid AND revoked_at IS NULL");
    const char *p[1] = {user_id};
    return revoke(st, &q, 1, p, hashes, false, err);
}

int store_token_insert(struct store *st, const struct event_new *ev, const char *id, const char *user_id,
                       const char *parent_id, const char *name, const char *role, json_t *node_labels,
                       const char *token_sha256, int64_t expires_us, struct sb_err *err)
{
    char exp[24];
    us_text(expires_us, exp, sizeof exp);
    char *labels = node_labels ? json_dumps(node_labels, JSON_COMPACT) : NULL;
    const char *p[8] = {id,     user_id,      name, role,
                        labels, token_sha256, exp,  parent_id && *parent_id ? parent_id : NULL};
    struct store_side_write w = {
        "INSERT INTO api_tokens (id, user_id, name, role, node_labels, token_sha256, expires_at, parent_id) "
        "VALUES ($1::uuid, $2::uuid, $3, $4, $5::jsonb, decode($6, 'hex'), "
        "CASE WHEN $7::bigint = 0 THEN NULL ELSE to_timestamp($7::double precision / 1000000) END, "
        "$8::uuid)",
        8, p};
    int rc = store_append_with(st, ev, &w, NULL, err);
    free(labels);
    return rc;
}

int store_tokens_list(struct store *st, const char *user_id, json_t **out, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT json_agg(json_build_object('id', t.id, 'name', t.name, 'role', t.role, 'user_id', t.user_id, "
        "'username', u.username, 'node_labels', t.node_labels, 'created_at', t.created_at, "
        "'expires_at', t.expires_at, 'last_used_at', t.last_used_at, 'revoked_at', t.revoked_at, "
        "'parent_id', t.parent_id) "
        "ORDER BY t.created_at)::text "
        "FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id WHERE $1::uuid IS NULL OR t.user_id = "
        "$1::uuid");
    const char *p[1] = {user_id};
    return list_json(st, &q, 1, p, out, err);
}

int store_token_revoke_plan(struct store *st, const char *id, const char *user_id, json_t *hashes,
                            json_t *descendants, struct sb_err *err)
{
    /* The token and every live token made from it, at any depth (children
     * of a revoked token were revoked with it). */
    static struct store_stmt q =
        STORE_STMT("WITH RECURSIVE down(id, token_sha256, depth) AS ("
                   "  SELECT id, token_sha256, 0 FROM api_tokens WHERE id = $1::uuid AND revoked_at IS NULL "
                   "  AND ($2::uuid IS NULL OR user_id = $2::uuid) "
                   "  UNION ALL SELECT t.id, t.token_sha256, down.depth + 1 FROM api_tokens t "
                   "  JOIN down ON t.parent_id = down.id WHERE t.revoked_at IS NULL AND down.depth < 64) "
                   "SELECT encode(token_sha256, 'hex'), id::text FROM down ORDER BY depth");
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such token");
    const char *p[2] = {id, user_id};
    PGresult *r = run(st, &q, 2, p, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    int rows = PQntuples(r);
    bool root = false;
    for (int i = 0; i < rows; i++) {
        if (hashes)
            json_array_append_new(hashes, json_string(PQgetvalue(r, i, 0)));
        if (strcmp(PQgetvalue(r, i, 1), id) == 0)
            root = true;
        else if (descendants)
            json_array_append_new(descendants, json_string(PQgetvalue(r, i, 1)));
    }
    PQclear(r);
    return root ? 0 : sb_error(err, SB_ENOTFOUND, "no such token");
}

int store_token_revoke_commit(struct store *st, const struct event_new *ev, const char *id,
                              json_t *descendants, struct sb_err *err)
{
    struct buf ids;
    buf_init(&ids, 0);
    buf_putc(&ids, '{');
    store_array_add(&ids, id, true);
    size_t i;
    json_t *v;
    json_array_foreach(descendants, i, v)
    {
        if (json_string_value(v))
            store_array_add(&ids, json_string_value(v), false);
    }
    buf_putc(&ids, '}');
    const char *p[1] = {ids.data};
    struct store_side_write w = {
        "UPDATE api_tokens SET revoked_at = now() WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL", 1, p};
    int rc = store_append_with(st, ev, &w, NULL, err);
    buf_release(&ids);
    return rc;
}

int store_guest_insert(struct store *st, const struct event_new *ev, const char *id, const char *created_by,
                       const char *note, json_t *scopes, json_t *node_labels, const char *token_sha256,
                       int64_t expires_us, struct sb_err *err)
{
    struct buf arr;
    buf_init(&arr, 4096);
    buf_putc(&arr, '{');
    size_t i;
    json_t *sv;
    json_array_foreach(scopes, i, sv) store_array_add(&arr, json_string_value(sv), i == 0);
    buf_putc(&arr, '}');
    char exp[24];
    us_text(expires_us, exp, sizeof exp);
    char *labels = node_labels ? json_dumps(node_labels, JSON_COMPACT) : NULL;
    const char *p[7] = {
        id, created_by && *created_by ? created_by : NULL, note, arr.data, labels, token_sha256, exp};
    struct store_side_write w = {
        "INSERT INTO guest_links (id, created_by, note, scopes, node_labels, token_sha256, expires_at) "
        "VALUES ($1::uuid, $2::uuid, $3, $4::text[], $5::jsonb, decode($6, 'hex'), "
        "to_timestamp($7::double precision / 1000000))",
        7, p};
    int rc = store_append_with(st, ev, &w, NULL, err);
    free(labels);
    buf_release(&arr);
    return rc;
}

int store_guests_list(struct store *st, json_t **out, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT("SELECT json_agg(json_build_object('id', id, 'note', note, "
                                            "'scopes', scopes, 'node_labels', node_labels, "
                                            "'created_by', created_by, 'created_at', created_at, "
                                            "'expires_at', expires_at, 'revoked_at', revoked_at) "
                                            "ORDER BY created_at)::text FROM guest_links");
    return list_json(st, &q, 0, NULL, out, err);
}

int store_guest_revoke(struct store *st, const struct event_new *ev, const char *id, json_t *hashes,
                       struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT encode(token_sha256, 'hex') FROM guest_links WHERE id = $1::uuid AND revoked_at IS NULL");
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such guest link");
    const char *p[1] = {id};
    int rc = revoke(st, &q, 1, p, hashes, true, err);
    if (rc)
        return rc;
    struct store_side_write w = {
        "UPDATE guest_links SET revoked_at = now() WHERE id = $1::uuid AND revoked_at IS NULL", 1, p};
    return store_append_with(st, ev, &w, NULL, err);
}

int store_user_created_data(struct store *st, const char *user_id, json_t **data, struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("SELECT data::text FROM events WHERE stream = 'user/' || $1 AND type = 'user.created' "
                   "AND outcome = 'success' ORDER BY seq LIMIT 1");
    *data = NULL;
    const char *p[1] = {user_id};
    PGresult *r = run(st, &q, 1, p, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sb_error(err, SB_ENOTFOUND, "no such user");
    }
    *data = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return *data ? 0 : sb_error(err, SB_EINTERNAL, "unreadable event");
}
