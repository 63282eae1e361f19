/*
 * Nodes: queries on the `nodes` projection and the sealed credentials
 * beside it (migrations/0004_nodes.sql). The credentials are stored as the
 * caller sealed them; this file never sees a key in clear.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static struct store_stmt q_get = STORE_STMT("SELECT row_to_json(n)::text FROM nodes n WHERE id = $1::uuid");
static struct store_stmt q_by_name = STORE_STMT("SELECT id::text FROM nodes WHERE name = $1");
static struct store_stmt q_list =
    STORE_STMT("SELECT coalesce(json_agg(n ORDER BY n.name), '[]'::json)::text FROM nodes n");
/* jsonb containment is labels_match (util/labels.c) for string-valued
 * selectors; json_each keeps the row's column order for the kept fields. */
static struct store_stmt q_list_view = STORE_STMT(
    "SELECT '{\"items\":' || coalesce(json_agg(CASE WHEN $4::jsonb IS NULL THEN row_to_json(n) ELSE "
    "(SELECT json_object_agg(e.key, e.value ORDER BY e.ord) FROM json_each(row_to_json(n)) WITH ORDINALITY "
    "AS e(key, value, ord) WHERE $4::jsonb ? e.key) END ORDER BY n.name), '[]'::json)::text || '}' "
    "FROM nodes n WHERE ($1::jsonb IS NULL OR n.labels @> $1::jsonb) "
    "AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce($2::jsonb, '[]'::jsonb)) f "
    "WHERE NOT n.labels @> f) "
    "AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(coalesce($3::jsonb, '[]'::jsonb)) k "
    "WHERE NOT n.labels ? k)");
static struct store_stmt q_cred_put =
    STORE_STMT("INSERT INTO node_credentials (node_id, private_key, passphrase, updated_at) "
               "VALUES ($1::uuid, $2, $3, now()) ON CONFLICT (node_id) DO UPDATE SET "
               "private_key = EXCLUDED.private_key, passphrase = EXCLUDED.passphrase, updated_at = now()");
static struct store_stmt q_cred_get =
    STORE_STMT("SELECT private_key, passphrase FROM node_credentials WHERE node_id = $1::uuid");
static struct store_stmt q_cred_del = STORE_STMT("DELETE FROM node_credentials WHERE node_id = $1::uuid");

static int parse_one(PGresult *r, json_t **out, struct sb_err *err)
{
    const char *text = PQgetvalue(r, 0, 0);
    json_error_t je;
    *out = json_loads(text, 0, &je);
    return *out ? 0 : sb_error(err, SB_EINTERNAL, "cannot parse a node row");
}

int store_node_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such node");
    const char *p[1] = {id};
    PGresult *r;
    int rc = store_query(st, &q_get, 1, p, &r, err);
    if (r && PQntuples(r) == 0)
        rc = sb_error(err, SB_ENOTFOUND, "no such node");
    else if (r)
        rc = parse_one(r, out, err);
    PQclear(r);
    return rc;
}

int store_node_find_name(struct store *st, const char *name, char id[37], struct sb_err *err)
{
    id[0] = '\0';
    const char *p[1] = {name};
    PGresult *r;
    int rc = store_query(st, &q_by_name, 1, p, &r, err);
    if (r && PQntuples(r) == 0)
        rc = SB_ENOTFOUND;
    else if (r)
        sb_strlcpy(id, PQgetvalue(r, 0, 0), 37);
    PQclear(r);
    return rc;
}

int store_node_list(struct store *st, json_t **out, struct sb_err *err)
{
    *out = NULL;
    PGresult *r;
    int rc = store_query(st, &q_list, 0, NULL, &r, err);
    if (rc == 0)
        rc = parse_one(r, out, err);
    PQclear(r);
    return rc;
}

int store_node_list_view(struct store *st, const char *scope, const char *pairs, const char *keys,
                         const char *fields, char **out, size_t *len, struct sb_err *err)
{
    *out = NULL;
    *len = 0;
    const char *p[4] = {scope, pairs, keys, fields};
    PGresult *r;
    int rc = store_query(st, &q_list_view, 4, p, &r, err);
    if (rc == 0) {
        *len = (size_t)PQgetlength(r, 0, 0);
        *out = malloc(*len + 1);
        if (*out)
            memcpy(*out, PQgetvalue(r, 0, 0), *len + 1);
        else
            rc = sb_error(err, SB_ENOMEM, "out of memory");
    }
    PQclear(r);
    return rc;
}

int store_node_credentials_put(struct store *st, const char *id, const char *sealed_key,
                               const char *sealed_pass, struct sb_err *err)
{
    const char *p[3] = {id, sealed_key, sealed_pass};
    PGresult *r;
    int rc = store_query(st, &q_cred_put, 3, p, &r, err);
    PQclear(r);
    return rc;
}

int store_node_credentials_get(struct store *st, const char *id, char **sealed_key, char **sealed_pass,
                               struct sb_err *err)
{
    *sealed_key = *sealed_pass = NULL;
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such node");
    const char *p[1] = {id};
    PGresult *r;
    int rc = store_query(st, &q_cred_get, 1, p, &r, err);
    if (r && PQntuples(r) == 0) {
        rc = sb_error(err, SB_ENOTFOUND, "the node has no stored credentials");
    } else if (r) {
        *sealed_key = strdup(PQgetvalue(r, 0, 0));
        if (!PQgetisnull(r, 0, 1))
            *sealed_pass = strdup(PQgetvalue(r, 0, 1));
        if (!*sealed_key)
            rc = sb_error(err, SB_ENOMEM, "out of memory");
    }
    PQclear(r);
    return rc;
}

int store_node_credentials_delete(struct store *st, const char *id, struct sb_err *err)
{
    const char *p[1] = {id};
    PGresult *r;
    int rc = store_query(st, &q_cred_del, 1, p, &r, err);
    PQclear(r);
    return rc;
}

int store_node_append_with_credentials(struct store *st, const struct event_new *ev, const char *id,
                                       const char *sealed_key, const char *sealed_pass, struct sb_err *err)
{
    const char *p[3] = {id, sealed_key, sealed_pass};
    struct store_side_write w = {
        "INSERT INTO node_credentials (node_id, private_key, passphrase, updated_at) "
        "VALUES ($1::uuid, $2, $3, now()) ON CONFLICT (node_id) DO UPDATE SET "
        "private_key = EXCLUDED.private_key, passphrase = EXCLUDED.passphrase, updated_at = now()",
        3, p};
    return store_append_with(st, ev, &w, NULL, err);
}
