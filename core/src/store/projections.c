/*
 * Projections: tables derived from the event log. Each is updated from the
 * events alone, inside the transaction that appends them, so
 * `rebuild-projections` (truncate, then replay every event in seq order)
 * reproduces them exactly. A projection never reads the clock or anything
 * but the events.
 *
 * projections_apply gets a whole group of events (in seq order), so that a
 * projection touched by every event (streams) writes once per group, while
 * per-type projections can still handle one event at a time.
 *
 * To add one: write its apply function, call it from projections_apply, and
 * list its tables in projection_tables.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* streams: one row per stream with its first and last seq and its length.
 * The group is folded into one row per distinct stream (in the SQL), so the
 * statement is the same whatever the group's size. */
static int project_streams(struct store_tx *tx, const struct store_event *evs, int n)
{
    struct buf col[4];
    for (int k = 0; k < 4; k++) {
        buf_init(&col[k], 0);
        buf_putc(&col[k], '{');
    }
    for (int i = 0; i < n; i++) {
        char seq[24];
        snprintf(seq, sizeof seq, "%lld", (long long)evs[i].seq);
        store_array_add(&col[0], evs[i].stream, i == 0);
        store_array_add(&col[1], seq, i == 0);
        store_array_add(&col[2], evs[i].type, i == 0);
        store_array_add(&col[3], evs[i].occurred_at, i == 0);
    }
    const char *p[4];
    for (int k = 0; k < 4; k++) {
        buf_putc(&col[k], '}');
        p[k] = col[k].data;
    }
    int rc = store_tx_exec(
        tx,
        "INSERT INTO streams (stream, first_seq, last_seq, event_count, last_type, updated_at) "
        "SELECT u.stream, min(u.seq), max(u.seq), count(*), "
        "       (array_agg(u.type ORDER BY u.seq DESC))[1], (array_agg(u.at ORDER BY u.seq DESC))[1] "
        "FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[]) AS u(stream, seq, type, at) "
        "GROUP BY u.stream "
        "ON CONFLICT (stream) DO UPDATE SET last_seq = EXCLUDED.last_seq, "
        "  event_count = streams.event_count + EXCLUDED.event_count, "
        "  last_type = EXCLUDED.last_type, updated_at = EXCLUDED.updated_at",
        4, p);
    for (int k = 0; k < 4; k++)
        buf_release(&col[k]);
    return rc;
}

/* users: user.created {id, username, role, node_labels?}, user.updated {id,
 * role?, disabled?, node_labels?} (only the keys present change),
 * user.deleted {id}. Password hashes are not in events (identity.c). */
static int project_user(struct store_tx *tx, const struct store_event *ev)
{
    if (strcmp(ev->outcome, "success") != 0)
        return 0;
    json_t *d = ev->data;
    const char *id = json_string_value(json_object_get(d, "id"));
    if (!id)
        return 0;
    json_t *labels = json_object_get(d, "node_labels");
    char *labels_text = json_is_object(labels) ? json_dumps(labels, JSON_COMPACT) : NULL;
    int rc = 0;
    if (strcmp(ev->type, "user.created") == 0) {
        const char *p[5] = {id, json_string_value(json_object_get(d, "username")),
                            json_string_value(json_object_get(d, "role")), labels_text, ev->occurred_at};
        rc = store_tx_exec(tx,
                           "INSERT INTO users (id, username, role, node_labels, created_at, updated_at) "
                           "VALUES ($1::uuid, $2, $3, $4::jsonb, $5::timestamptz, $5::timestamptz)",
                           5, p);
    } else if (strcmp(ev->type, "user.updated") == 0) {
        json_t *disabled = json_object_get(d, "disabled");
        const char *p[6] = {id,
                            json_string_value(json_object_get(d, "role")),
                            json_is_boolean(disabled) ? (json_is_true(disabled) ? "true" : "false") : NULL,
                            json_object_get(d, "node_labels") ? "1" : NULL,
                            labels_text,
                            ev->occurred_at};
        rc = store_tx_exec(
            tx,
            "UPDATE users SET role = coalesce($2, role), disabled = coalesce($3::boolean, disabled), "
            "node_labels = CASE WHEN $4::text IS NULL THEN node_labels ELSE $5::jsonb END, "
            "updated_at = $6::timestamptz WHERE id = $1::uuid",
            6, p);
    } else if (strcmp(ev->type, "user.deleted") == 0) {
        const char *p[1] = {id};
        rc = store_tx_exec(tx, "DELETE FROM users WHERE id = $1::uuid", 1, p);
    }
    free(labels_text);
    return rc;
}

/* nodes: node.registered inserts, node.updated changes the fields it names,
 * node.deleted removes the row (and the sealed credentials beside it, which
 * are not a projection but must not outlive the node) and revokes the node's
 * collector keys, and the health events set the status (the collector's
 * presence events, "source":"collector", set agent_status instead; the
 * engine's, node.docker_reachable/unreachable, docker_status). Only
 * successful events count. */
static int project_node(struct store_tx *tx, const struct store_event *ev)
{
    if (strncmp(ev->type, "node.", 5) != 0 || strcmp(ev->outcome, "success") != 0)
        return 0;
    const char *id = json_string_value(json_object_get(ev->data, "id"));
    if (!id)
        return 0;
    const char *type = ev->type + 5;
    if (strcmp(type, "registered") == 0) {
        char *doc = json_dumps(ev->data, JSON_COMPACT);
        const char *p[2] = {doc, ev->occurred_at};
        int rc = store_tx_exec(
            tx,
            "INSERT INTO nodes (id, name, host, port, ssh_user, labels, docker, host_key_fingerprint, "
            "key_type, "
            "  public_key, status, status_reason, status_changed_at, created_at, updated_at, "
            "  connection, tunnel_port, tunnel_public_key) "
            "SELECT (d->>'id')::uuid, d->>'name', d->>'host', (d->>'port')::int, d->>'ssh_user', "
            "  coalesce(d->'labels', '{}'::jsonb), coalesce(d->>'docker', 'ssh'), "
            "d->>'host_key_fingerprint', "
            "  d->>'key_type', d->>'public_key', coalesce(d->>'status', 'online'), d->>'reason', "
            "  $2::timestamptz, $2::timestamptz, $2::timestamptz, "
            "  coalesce(d->>'connection', 'direct'), (d->>'tunnel_port')::int, d->>'tunnel_public_key' "
            "FROM (SELECT $1::jsonb AS d) AS x",
            2, p);
        free(doc);
        return rc;
    }
    if (strcmp(type, "updated") == 0) {
        json_t *changes = json_object_get(ev->data, "changes");
        if (!json_is_object(changes))
            return 0;
        char *doc = json_dumps(changes, JSON_COMPACT);
        const char *p[3] = {id, doc, ev->occurred_at};
        int rc = store_tx_exec(
            tx,
            "UPDATE nodes SET name = coalesce($2::jsonb->>'name', name), host = coalesce($2::jsonb->>'host', "
            "host), "
            "  port = coalesce(($2::jsonb->>'port')::int, port), "
            "  ssh_user = coalesce($2::jsonb->>'ssh_user', ssh_user), "
            "  labels = coalesce($2::jsonb->'labels', labels), docker = coalesce($2::jsonb->>'docker', "
            "docker), "
            "  host_key_fingerprint = coalesce($2::jsonb->>'host_key_fingerprint', host_key_fingerprint), "
            "  key_type = CASE WHEN $2::jsonb ? 'key_type' THEN $2::jsonb->>'key_type' ELSE key_type END, "
            "  public_key = CASE WHEN $2::jsonb ? 'key_type' THEN $2::jsonb->>'public_key' ELSE public_key "
            "END, "
            "  status = CASE WHEN $2::jsonb ? 'host_key_fingerprint' AND status = 'hostkey_mismatch' "
            "    THEN 'offline' ELSE status END, "
            "  updated_at = $3::timestamptz WHERE id = $1::uuid",
            3, p);
        free(doc);
        return rc;
    }
    if (strcmp(type, "deleted") == 0) {
        const char *p[1] = {id};
        int rc = store_tx_exec(tx, "DELETE FROM nodes WHERE id = $1::uuid", 1, p);
        if (rc == 0)
            rc = store_tx_exec(tx, "DELETE FROM node_credentials WHERE node_id = $1::uuid", 1, p);
        /* A collector of a deleted node must not keep reporting. */
        const char *r[2] = {id, ev->occurred_at};
        return rc ? rc
                  : store_tx_exec(tx,
                                  "UPDATE agent_keys SET revoked_at = $2::timestamptz "
                                  "WHERE node_id = $1 AND revoked_at IS NULL",
                                  2, r);
    }
    /* A tunnel's state: up since when, and how often it came back. */
    if (strcmp(type, "tunnel_up") == 0 || strcmp(type, "tunnel_down") == 0) {
        const char *t[3] = {id, type + 7, ev->occurred_at};
        return store_tx_exec(
            tx,
            "UPDATE nodes SET tunnel_reconnects = tunnel_reconnects + "
            "  CASE WHEN $2 = 'up' AND tunnel_status = 'down' AND tunnel_first_up_at IS NOT NULL "
            "  THEN 1 ELSE 0 END, "
            "  tunnel_first_up_at = CASE WHEN $2 = 'up' THEN coalesce(tunnel_first_up_at, "
            "$3::timestamptz) ELSE tunnel_first_up_at END, "
            "  tunnel_status = $2, tunnel_status_changed_at = $3::timestamptz, "
            "  tunnel_connected_since = CASE WHEN $2 = 'up' THEN $3::timestamptz END "
            "WHERE id = $1::uuid",
            3, t);
    }
    if (strcmp(type, "docker_reachable") == 0 || strcmp(type, "docker_unreachable") == 0) {
        const char *d[4] = {id, type + 7, json_string_value(json_object_get(ev->data, "reason")),
                            ev->occurred_at};
        return store_tx_exec(tx,
                             "UPDATE nodes SET docker_status = $2, docker_reason = $3, "
                             "docker_status_changed_at = $4::timestamptz WHERE id = $1::uuid",
                             4, d);
    }
    const char *status = strcmp(type, "online") == 0             ? "online"
                         : strcmp(type, "offline") == 0          ? "offline"
                         : strcmp(type, "hostkey_mismatch") == 0 ? "hostkey_mismatch"
                                                                 : NULL;
    if (!status)
        return 0;
    const char *source = json_string_value(json_object_get(ev->data, "source"));
    if (source && strcmp(source, "collector") == 0) {
        json_t *iv = json_object_get(ev->data, "interval_ms");
        char interval[24] = "";
        if (json_is_integer(iv))
            snprintf(interval, sizeof interval, "%lld", (long long)json_integer_value(iv));
        const char *a[4] = {id, status, ev->occurred_at, interval[0] ? interval : NULL};
        return store_tx_exec(tx,
                             "UPDATE nodes SET agent_status = $2, agent_status_changed_at = $3::timestamptz, "
                             "agent_interval_ms = coalesce($4::int, agent_interval_ms) WHERE id = $1::uuid",
                             4, a);
    }
    const char *p[4] = {id, status, json_string_value(json_object_get(ev->data, "reason")), ev->occurred_at};
    return store_tx_exec(
        tx,
        "UPDATE nodes SET status = $2, status_reason = $3, status_changed_at = $4::timestamptz "
        "WHERE id = $1::uuid",
        4, p);
}

static const char *data_str(const struct store_event *ev, const char *key)
{
    return json_string_value(json_object_get(ev->data, key));
}

/* agent_enroll_tokens and agent_keys (collector enrollment, issue #7). A
 * token enrolls once: agent_keys.token_sha256 is unique, so a second
 * agent.enrolled with the same token fails its append with a conflict. */
static int project_agent(struct store_tx *tx, const struct store_event *ev)
{
    if (strcmp(ev->outcome, "success") != 0)
        return 0;
    if (strcmp(ev->type, "agent.enroll_token_issued") == 0) {
        const char *p[4] = {data_str(ev, "token_sha256"), data_str(ev, "node_id"), data_str(ev, "expires_at"),
                            ev->occurred_at};
        return store_tx_exec(tx,
                             "INSERT INTO agent_enroll_tokens (token_sha256, node_id, expires_at, issued_at) "
                             "VALUES ($1, $2, $3, $4)",
                             4, p);
    }
    if (strcmp(ev->type, "agent.enrolled") == 0) {
        const char *p[5] = {data_str(ev, "fingerprint"), data_str(ev, "node_id"), data_str(ev, "public_key"),
                            ev->occurred_at, data_str(ev, "token_sha256")};
        int rc = store_tx_exec(
            tx,
            "INSERT INTO agent_keys (fingerprint, node_id, public_key, enrolled_at, token_sha256) "
            "VALUES ($1, $2, $3, $4, $5)",
            5, p);
        if (rc)
            return rc;
        const char *u[2] = {p[4], ev->occurred_at};
        return store_tx_exec(tx, "UPDATE agent_enroll_tokens SET used_at = $2 WHERE token_sha256 = $1", 2, u);
    }
    return 0;
}

const char *project_subject(const struct store_event *ev, size_t prefix, const char *failure_type,
                            const char **type)
{
    const char *id = json_string_value(json_object_get(ev->data, "id"));
    if (!id || !uuid_valid(id))
        return NULL;
    *type = ev->type + prefix;
    if (strcmp(ev->outcome, "success") == 0)
        return id;
    return strcmp(*type, failure_type) == 0 && strcmp(ev->outcome, "failure") == 0 ? id : NULL;
}

const char *const projection_tables[] = {"streams",
                                         "users",
                                         "containers",
                                         "nodes",
                                         "agent_enroll_tokens",
                                         "agent_keys",
                                         "jobs",
                                         "stacks",
                                         "stack_revisions",
                                         "recordings",
                                         "roles",
                                         "role_policies",
                                         "alert_rules",
                                         "alert_channels",
                                         "alert_silences",
                                         "alerts",
                                         "alert_deliveries",
                                         "backup_repositories",
                                         "backup_plans",
                                         "backup_runs",
                                         "apps",
                                         "app_deployments",
                                         NULL};

int projections_apply(struct store_tx *tx, const struct store_event *evs, int n)
{
    if (n <= 0)
        return 0;
    int rc = project_streams(tx, evs, n);
    for (int i = 0; i < n && rc == 0; i++)
        if (strncmp(evs[i].type, "user.", 5) == 0)
            rc = project_user(tx, &evs[i]);
        else if (strncmp(evs[i].type, "node.", 5) == 0)
            rc = project_node(tx, &evs[i]);
        else if (strncmp(evs[i].type, "agent.", 6) == 0)
            rc = project_agent(tx, &evs[i]);
        else if (strncmp(evs[i].type, "stack.", 6) == 0)
            rc = project_stacks(tx, &evs[i]);
        else if (strncmp(evs[i].type, "app.", 4) == 0)
            rc = project_apps(tx, &evs[i]);
        else if (strncmp(evs[i].type, "job.", 4) == 0) {
            rc = project_jobs(tx, &evs[i]);
            if (rc == 0 &&
                (strcmp(evs[i].type, "job.failed") == 0 || strcmp(evs[i].type, "job.cancelled") == 0))
                rc = project_backup_job_end(tx, &evs[i]);
        } else if (strncmp(evs[i].type, "backup.", 7) == 0)
            rc = project_backups(tx, &evs[i]);
        else if (strncmp(evs[i].type, "terminal.", 9) == 0)
            rc = project_terminal(tx, &evs[i]);
        else if (strncmp(evs[i].type, "role.", 5) == 0)
            rc = project_role(tx, &evs[i]);
        else if (strncmp(evs[i].type, "alert", 5) == 0)
            rc = project_alerts(tx, &evs[i]);
        else
            rc = project_containers(tx, &evs[i]);
    return rc;
}
