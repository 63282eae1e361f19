/*
 * Two-factor authentication: the TOTP secret (sealed by the caller), the
 * recovery code hashes and the login challenges. Credential tables like
 * sessions: written beside their events (a side write), never in the log.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PGresult *run(struct store *st, struct store_stmt *q, int n, const char *const *p, struct sb_err *err)
{
    PGresult *r = NULL;
    store_query(st, q, n, p, &r, err);
    return r;
}

/* Runs a statement; SB_ENOTFOUND when it touched no row. */
static int run_rows(struct store *st, struct store_stmt *q, int n, const char *const *p, struct sb_err *err)
{
    PGresult *r = run(st, q, n, p, err);
    if (!r)
        return err && err->code ? err->code : SB_EINTERNAL;
    bool none = sb_int64(PQcmdTuples(r)) == 0;
    PQclear(r);
    return none ? sb_error(err, SB_ENOTFOUND, "not found") : 0;
}

void store_totp_release(struct store_totp *t)
{
    free(t->sealed_secret);
    t->sealed_secret = NULL;
}

int store_totp_get(struct store *st, const char *user_id, struct store_totp *out, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT t.sealed_secret, t.confirmed_at IS NOT NULL, t.last_counter, "
        "coalesce(to_char(t.confirmed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
        "(SELECT count(*) FROM user_recovery_codes c WHERE c.user_id = t.user_id AND c.used_at IS NULL) "
        "FROM user_totp t WHERE t.user_id = $1::uuid");
    memset(out, 0, sizeof *out);
    if (!uuid_valid(user_id))
        return sb_error(err, SB_ENOTFOUND, "no 2FA");
    const char *p[1] = {user_id};
    PGresult *r = run(st, &q, 1, p, err);
    if (!r)
        return err && err->code ? err->code : SB_EINTERNAL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sb_error(err, SB_ENOTFOUND, "no 2FA");
    }
    out->sealed_secret = strdup(PQgetvalue(r, 0, 0));
    out->confirmed = PQgetvalue(r, 0, 1)[0] == 't';
    out->last_counter = sb_int64(PQgetvalue(r, 0, 2));
    sb_strlcpy(out->confirmed_at, PQgetvalue(r, 0, 3), sizeof out->confirmed_at);
    out->recovery_codes_left = sb_int64(PQgetvalue(r, 0, 4));
    PQclear(r);
    return out->sealed_secret ? 0 : sb_error(err, SB_ENOMEM, "out of memory");
}

int store_totp_begin(struct store *st, const struct event_new *ev, const char *user_id,
                     const char *sealed_secret, struct sb_err *err)
{
    const char *p[2] = {user_id, sealed_secret};
    struct store_side_write w = {
        "INSERT INTO user_totp (user_id, sealed_secret) VALUES ($1::uuid, $2) "
        "ON CONFLICT (user_id) DO UPDATE SET sealed_secret = EXCLUDED.sealed_secret, created_at = now(), "
        "last_counter = 0 WHERE user_totp.confirmed_at IS NULL",
        2, p};
    return store_append_with(st, ev, &w, NULL, err);
}

int store_totp_confirm(struct store *st, const struct event_new *ev, const char *user_id, int64_t counter,
                       json_t *code_hashes, struct sb_err *err)
{
    struct buf arr;
    buf_init(&arr, 4096);
    buf_putc(&arr, '{');
    size_t i;
    json_t *v;
    json_array_foreach(code_hashes, i, v) store_array_add(&arr, json_string_value(v), i == 0);
    buf_putc(&arr, '}');
    char ctr[24];
    snprintf(ctr, sizeof ctr, "%lld", (long long)counter);
    const char *p[3] = {user_id, ctr, arr.data};
    struct store_side_write w = {
        "WITH t AS (UPDATE user_totp SET confirmed_at = now(), last_counter = $2::bigint "
        "  WHERE user_id = $1::uuid AND confirmed_at IS NULL AND last_counter < $2::bigint RETURNING "
        "user_id), "
        "d AS (DELETE FROM user_recovery_codes WHERE user_id = $1::uuid) "
        "INSERT INTO user_recovery_codes (user_id, code_sha256) "
        "SELECT t.user_id, decode(c, 'hex') FROM t, unnest($3::text[]) AS c",
        3, p};
    int rc = store_append_with(st, ev, &w, NULL, err);
    buf_release(&arr);
    return rc;
}

int store_totp_use_counter(struct store *st, const char *user_id, int64_t counter, struct sb_err *err)
{
    /* The check and the write are one statement: two requests with the
     * same code cannot both pass. */
    static struct store_stmt q =
        STORE_STMT("UPDATE user_totp SET last_counter = $2::bigint WHERE user_id = $1::uuid "
                   "AND confirmed_at IS NOT NULL AND last_counter < $2::bigint");
    char ctr[24];
    snprintf(ctr, sizeof ctr, "%lld", (long long)counter);
    const char *p[2] = {user_id, ctr};
    int rc = run_rows(st, &q, 2, p, err);
    return rc == SB_ENOTFOUND ? sb_error(err, SB_ECONFLICT, "code already used") : rc;
}

int store_recovery_code_use(struct store *st, const char *user_id, const char *code_sha256,
                            struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "UPDATE user_recovery_codes SET used_at = now() WHERE user_id = $1::uuid "
        "AND code_sha256 = decode($2, 'hex') AND used_at IS NULL "
        "AND EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = $1::uuid AND t.confirmed_at IS NOT NULL)");
    const char *p[2] = {user_id, code_sha256};
    return run_rows(st, &q, 2, p, err);
}

int store_totp_delete(struct store *st, const struct event_new *ev, const char *user_id, struct sb_err *err)
{
    const char *p[1] = {user_id};
    struct store_side_write w = {"WITH a AS (DELETE FROM user_totp WHERE user_id = $1::uuid) "
                                 "DELETE FROM user_recovery_codes WHERE user_id = $1::uuid",
                                 1, p};
    return store_append_with(st, ev, &w, NULL, err);
}

int store_challenge_insert(struct store *st, const struct event_new *ev, const char *id, const char *user_id,
                           const char *token_sha256, const char *client_ip, int64_t expires_us,
                           struct sb_err *err)
{
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", (long long)expires_us);
    const char *p[5] = {id, user_id, token_sha256, client_ip, exp};
    struct store_side_write w = {
        "INSERT INTO login_challenges (id, user_id, token_sha256, client_ip, expires_at) "
        "VALUES ($1::uuid, $2::uuid, decode($3, 'hex'), $4, to_timestamp($5::double precision / 1000000))",
        5, p};
    return store_append_with(st, ev, &w, NULL, err);
}

int store_challenge_get(struct store *st, const char *token_sha256, int max_attempts,
                        struct store_challenge *out, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT c.id, c.user_id, u.username FROM login_challenges c JOIN users u ON u.id = c.user_id "
        "WHERE c.token_sha256 = decode($1, 'hex') AND c.used_at IS NULL AND c.expires_at > now() "
        "AND c.attempts < $2::int AND NOT u.disabled");
    memset(out, 0, sizeof *out);
    char max[16];
    snprintf(max, sizeof max, "%d", max_attempts);
    const char *p[2] = {token_sha256, max};
    PGresult *r = run(st, &q, 2, p, err);
    if (!r)
        return err && err->code ? err->code : SB_EINTERNAL;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sb_error(err, SB_ENOTFOUND, "no such challenge");
    }
    sb_strlcpy(out->id, PQgetvalue(r, 0, 0), sizeof out->id);
    sb_strlcpy(out->user_id, PQgetvalue(r, 0, 1), sizeof out->user_id);
    sb_strlcpy(out->username, PQgetvalue(r, 0, 2), sizeof out->username);
    PQclear(r);
    return 0;
}

int store_challenge_fail(struct store *st, const char *id, struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("UPDATE login_challenges SET attempts = attempts + 1 WHERE id = $1::uuid");
    const char *p[1] = {id};
    return run_rows(st, &q, 1, p, err);
}

int store_challenge_consume(struct store *st, const char *id, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT("UPDATE login_challenges SET used_at = now() WHERE id = $1::uuid "
                                            "AND used_at IS NULL AND expires_at > now()");
    const char *p[1] = {id};
    return run_rows(st, &q, 1, p, err);
}

int store_role_requires_totp(struct store *st, const char *role, bool *required, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT("SELECT require_totp FROM role_policies WHERE role = $1");
    const char *p[1] = {role};
    *required = false;
    PGresult *r = run(st, &q, 1, p, err);
    if (!r)
        return err && err->code ? err->code : SB_EINTERNAL;
    *required = PQntuples(r) > 0 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return 0;
}
