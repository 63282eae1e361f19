/*
 * Terminal recordings (migrations/0013_terminals.sql): the projection of
 * terminal.closed events and the queries the API needs. The event's data:
 * {terminal_id, node_id, session, opened_by, opened_at, reason, killed,
 *  recording: {id, sha256, bytes, truncated}}.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static struct store_stmt q_list = STORE_STMT(
    "SELECT coalesce(json_agg(json_build_object('id', r.id, 'terminal_id', r.terminal_id, 'node_id', "
    "r.node_id, "
    "  'node_name', n.name, 'node_labels', coalesce(n.labels, '{}'::jsonb), 'session', r.session, "
    "'container', r.container, "
    "  'opened_by', r.opened_by, 'opened_at', r.opened_at, 'closed_at', r.closed_at, 'reason', r.reason, "
    "  'bytes', r.bytes, 'sha256', r.sha256, 'truncated', r.truncated, 'closed_seq', r.closed_seq) "
    "  ORDER BY r.closed_at DESC), '[]'::json)::text "
    "FROM (SELECT * FROM recordings WHERE ($1::text IS NULL OR node_id = $1) "
    "      ORDER BY closed_at DESC LIMIT $2::int) r LEFT JOIN nodes n ON n.id::text = r.node_id");
static struct store_stmt q_get = STORE_STMT(
    "SELECT json_build_object('id', r.id, 'terminal_id', r.terminal_id, 'node_id', r.node_id, "
    "  'node_name', n.name, 'node_labels', coalesce(n.labels, '{}'::jsonb), 'session', r.session, "
    "'container', r.container, "
    "  'opened_by', r.opened_by, 'opened_at', r.opened_at, 'closed_at', r.closed_at, 'reason', r.reason, "
    "  'bytes', r.bytes, 'sha256', r.sha256, 'truncated', r.truncated, 'closed_seq', r.closed_seq)::text "
    "FROM recordings r LEFT JOIN nodes n ON n.id::text = r.node_id WHERE r.id = $1::uuid");

int project_terminal(struct store_tx *tx, const struct store_event *ev)
{
    if (strcmp(ev->type, "terminal.closed") != 0 || strcmp(ev->outcome, "success") != 0)
        return 0;
    json_t *rec = json_object_get(ev->data, "recording");
    if (!json_is_object(rec))
        return 0;
    char bytes[32], seq[32];
    snprintf(bytes, sizeof bytes, "%lld", (long long)json_integer_value(json_object_get(rec, "bytes")));
    snprintf(seq, sizeof seq, "%lld", (long long)ev->seq);
    const char *opened_at = json_string_value(json_object_get(ev->data, "opened_at"));
    const char *opened_by = json_string_value(json_object_get(ev->data, "opened_by"));
    const char *p[11] = {json_string_value(json_object_get(rec, "id")),
                         json_string_value(json_object_get(ev->data, "terminal_id")),
                         json_string_value(json_object_get(ev->data, "node_id")),
                         json_string_value(json_object_get(ev->data, "session")),
                         opened_by ? opened_by : "",
                         opened_at ? opened_at : ev->occurred_at,
                         ev->occurred_at,
                         json_string_value(json_object_get(ev->data, "reason")),
                         bytes,
                         json_string_value(json_object_get(rec, "sha256")),
                         json_is_true(json_object_get(rec, "truncated")) ? "true" : "false"};
    const char *q[12];
    memcpy(q, p, sizeof p);
    q[11] = seq;
    return store_tx_exec(
        tx,
        "INSERT INTO recordings (id, terminal_id, node_id, session, opened_by, opened_at, "
        "closed_at, reason, bytes, sha256, truncated, closed_seq) VALUES ($1, $2, $3, $4, $5, "
        "$6, $7, coalesce($8, 'closed'), $9::bigint, $10, $11::boolean, $12::bigint)",
        12, q);
}

int store_recordings_list(struct store *st, const char *node_id, int limit, json_t **out, struct sb_err *err)
{
    *out = NULL;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 100);
    const char *p[2] = {node_id, lim};
    PGresult *r;
    int rc = store_query(st, &q_list, 2, p, &r, err);
    if (rc == 0) {
        *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
        if (!*out)
            rc = sb_error(err, SB_EINTERNAL, "cannot parse the recordings");
    }
    PQclear(r);
    return rc;
}

int store_recording_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such recording");
    const char *p[1] = {id};
    PGresult *r;
    int rc = store_query(st, &q_get, 1, p, &r, err);
    if (rc == 0 && PQntuples(r) == 0)
        rc = sb_error(err, SB_ENOTFOUND, "no such recording");
    else if (rc == 0 && !(*out = json_loads(PQgetvalue(r, 0, 0), 0, NULL)))
        rc = sb_error(err, SB_EINTERNAL, "cannot parse the recording");
    PQclear(r);
    return rc;
}
