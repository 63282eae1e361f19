/*
 * Custom roles: the roles projection (role.* events) and its reads.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* roles: role.created {name, description, permissions}, role.updated
 * {name, description?, permissions?} (only the keys present change),
 * role.deleted {name}. */
int project_role(struct store_tx *tx, const struct store_event *ev)
{
    if (strcmp(ev->outcome, "success") != 0)
        return 0;
    if (strcmp(ev->type, "role.policy_set") == 0) {
        const char *p[3] = {json_string_value(json_object_get(ev->data, "role")),
                            json_is_true(json_object_get(ev->data, "require_totp")) ? "true" : "false",
                            ev->occurred_at};
        if (!p[0])
            return 0;
        return store_tx_exec(tx,
                             "INSERT INTO role_policies (role, require_totp, updated_at) "
                             "VALUES ($1, $2::boolean, $3::timestamptz) ON CONFLICT (role) DO UPDATE SET "
                             "require_totp = EXCLUDED.require_totp, updated_at = EXCLUDED.updated_at",
                             3, p);
    }
    const char *name = json_string_value(json_object_get(ev->data, "name"));
    if (!name)
        return 0;
    json_t *perms = json_object_get(ev->data, "permissions");
    char *perms_text = json_is_array(perms) ? json_dumps(perms, JSON_COMPACT) : NULL;
    const char *desc = json_string_value(json_object_get(ev->data, "description"));
    int rc = 0;
    if (strcmp(ev->type, "role.created") == 0) {
        const char *p[4] = {name, desc ? desc : "", perms_text ? perms_text : "[]", ev->occurred_at};
        rc = store_tx_exec(tx,
                           "INSERT INTO roles (name, description, permissions, created_at, updated_at) "
                           "SELECT $1, $2, coalesce(array_agg(x ORDER BY o), '{}'), $4::timestamptz, "
                           "$4::timestamptz FROM jsonb_array_elements_text($3::jsonb) WITH ORDINALITY AS "
                           "a(x, o)",
                           4, p);
    } else if (strcmp(ev->type, "role.updated") == 0) {
        const char *p[4] = {name, desc, perms_text, ev->occurred_at};
        rc = store_tx_exec(
            tx,
            "UPDATE roles SET description = coalesce($2, description), "
            "permissions = CASE WHEN $3::jsonb IS NULL THEN permissions ELSE "
            "coalesce((SELECT array_agg(x ORDER BY o) FROM jsonb_array_elements_text($3::jsonb) "
            "WITH ORDINALITY AS a(x, o)), '{}') END, "
            "updated_at = $4::timestamptz WHERE name = $1",
            4, p);
    } else if (strcmp(ev->type, "role.deleted") == 0) {
        const char *p[1] = {name};
        rc = store_tx_exec(tx, "DELETE FROM roles WHERE name = $1", 1, p);
        if (rc == 0)
            rc = store_tx_exec(tx, "DELETE FROM role_policies WHERE role = $1", 1, p);
    }
    free(perms_text);
    return rc;
}

#define ROLE_JSON                                                                                            \
    "json_build_object('name', name, 'description', description, 'permissions', "                            \
    "array_to_json(permissions), "                                                                           \
    "'created_at', created_at, 'updated_at', updated_at, 'require_totp', "                                   \
    "coalesce((SELECT p.require_totp FROM role_policies p WHERE p.role = roles.name), false))"

static int one_json(struct store *st, struct store_stmt *q, int n, const char *const *p, json_t **out,
                    struct sb_err *err)
{
    PGresult *r = NULL;
    *out = NULL;
    if (store_query(st, q, n, p, &r, err))
        return err ? err->code : SB_EINTERNAL;
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return sb_error(err, SB_ENOTFOUND, "not found");
    }
    *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return *out ? 0 : sb_error(err, SB_EINTERNAL, "unreadable role");
}

int store_role_get(struct store *st, const char *name, json_t **out, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT("SELECT " ROLE_JSON "::text FROM roles WHERE name = $1");
    const char *p[1] = {name};
    int rc = one_json(st, &q, 1, p, out, err);
    return rc == SB_ENOTFOUND ? sb_error(err, SB_ENOTFOUND, "no such role") : rc;
}

int store_roles_list(struct store *st, json_t **out, struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("SELECT coalesce(json_agg(" ROLE_JSON " ORDER BY name), '[]')::text FROM roles");
    return one_json(st, &q, 0, NULL, out, err);
}

int store_role_usage(struct store *st, const char *name, int64_t *users, int64_t *tokens, json_t *user_ids,
                     json_t *hashes, struct sb_err *err)
{
    /* One row per holder: kind ('user' | 'token'), the user id, and the
     * hashes of the live credentials whose permissions it decides. */
    static struct store_stmt q = STORE_STMT(
        "SELECT 'user', u.id::text, encode(s.token_sha256, 'hex') FROM users u "
        "LEFT JOIN sessions s ON s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > now() "
        "WHERE u.role = $1 "
        "UNION ALL SELECT 'owner', t.user_id::text, encode(t.token_sha256, 'hex') FROM api_tokens t "
        "JOIN users u ON u.id = t.user_id WHERE u.role = $1 AND t.revoked_at IS NULL "
        "UNION ALL SELECT 'token', t.user_id::text, encode(t.token_sha256, 'hex') FROM api_tokens t "
        "WHERE t.role = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())");
    const char *p[1] = {name};
    PGresult *r = NULL;
    if (store_query(st, &q, 1, p, &r, err))
        return err ? err->code : SB_EINTERNAL;
    json_t *seen = json_object(), *holders = json_object();
    int64_t nt = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *kind = PQgetvalue(r, i, 0), *uid = PQgetvalue(r, i, 1);
        if (strcmp(kind, "token") == 0)
            nt++;
        if (strcmp(kind, "user") == 0)
            json_object_set_new(holders, uid, json_true());
        if (!json_object_get(seen, uid)) {
            json_object_set_new(seen, uid, json_true());
            if (user_ids)
                json_array_append_new(user_ids, json_string(uid));
        }
        if (hashes && !PQgetisnull(r, i, 2))
            json_array_append_new(hashes, json_string(PQgetvalue(r, i, 2)));
    }
    PQclear(r);
    int64_t nu = (int64_t)json_object_size(holders);
    json_decref(seen);
    json_decref(holders);
    if (users)
        *users = nu;
    if (tokens)
        *tokens = nt;
    return 0;
}
