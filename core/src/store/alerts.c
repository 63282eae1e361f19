/*
 * Alerts (migrations/0012_alerts.sql, core/src/alerts/README.md): the
 * projections of the alert_rule.*, alert_channel.*, alert_silence.* and
 * alert.* events, the sealed channel secrets beside them (never in events),
 * the evaluator's cursor, and the queries the evaluator needs (metric
 * windows, event counts).
 *
 * Events (data):
 *   alert_rule.created/updated {id, name, kind, params, severity, node_labels, channels, repeat_s, enabled,
 *                               builtin?, by}
 *   alert_rule.deleted         {id}
 *   alert_channel.created/updated {id, name, kind, enabled, config, secret_names, by}  (+ sealed secrets)
 *   alert_channel.deleted      {id}
 *   alert_channel.test_delivered / test_failed {id, channel_id, channel_name, attempt, status, answer,
 * job_id} alert_silence.created      {id, matchers, node_labels, until (null: none), comment, by,
 * recurrence?} alert_silence.ended /
 * deleted {id} alert.fired        {id, rule_id, rule_name, kind, severity, target, node_id?, node_name?,
 * container_id?, container_name?, summary, value?, silenced, source_seq?} alert.acknowledged {id, node_id?,
 * by}          (refused unless firing) alert.resolved     {id, node_id?, reason}      (refused when resolved)
 *   alert.silenced / unsilenced {id, node_id?}
 *   alert.renotified   {id, node_id?, reason}      (a repeat; refused unless firing)
 *   alert.delivered / delivery_failed {id, node_id?, channel_id, channel_name, notification, attempt, status,
 *                       answer, job_id}
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFUSE_UNLESS_UPDATED " SELECT alerts_refuse() WHERE NOT EXISTS (SELECT 1 FROM u)"

static const char *dstr(const struct store_event *ev, const char *key)
{
    return json_string_value(json_object_get(ev->data, key));
}

static int project_rule(struct store_tx *tx, const struct store_event *ev, const char *t,
                        const char *const *p)
{
    if (strcmp(t, "created") == 0)
        return store_tx_exec(
            tx,
            "INSERT INTO alert_rules (id, name, kind, params, severity, node_labels, channels, repeat_s, "
            "enabled, "
            "builtin, created_by, created_at, updated_at) "
            "SELECT (d->>'id')::uuid, d->>'name', d->>'kind', coalesce(d->'params', '{}'), d->>'severity', "
            "CASE WHEN jsonb_typeof(d->'node_labels') = 'object' THEN d->'node_labels' END, "
            "coalesce(d->'channels', '[]'), coalesce((d->>'repeat_s')::int, 0), "
            "coalesce((d->>'enabled')::boolean, true), coalesce((d->>'builtin')::boolean, false), d->>'by', "
            "$2::timestamptz, $2::timestamptz FROM (SELECT $1::jsonb AS d) x",
            2, p);
    if (strcmp(t, "updated") == 0)
        return store_tx_exec(
            tx,
            "UPDATE alert_rules SET name = d->>'name', params = coalesce(d->'params', '{}'), "
            "severity = d->>'severity', "
            "node_labels = CASE WHEN jsonb_typeof(d->'node_labels') = 'object' THEN d->'node_labels' END, "
            "channels = coalesce(d->'channels', '[]'), repeat_s = coalesce((d->>'repeat_s')::int, 0), "
            "enabled = coalesce((d->>'enabled')::boolean, true), updated_at = $2::timestamptz "
            "FROM (SELECT $1::jsonb AS d) x WHERE id = (d->>'id')::uuid",
            2, p);
    if (strcmp(t, "deleted") == 0)
        return store_tx_exec(tx, "DELETE FROM alert_rules WHERE id = ($1::jsonb->>'id')::uuid", 1, p);
    return 0;
}

static int project_delivery(struct store_tx *tx, const struct store_event *ev, bool test, bool ok)
{
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", (long long)ev->seq);
    char *doc = json_dumps(ev->data, JSON_COMPACT);
    const char *p[5] = {doc, ev->occurred_at, seq, test ? NULL : dstr(ev, "id"), ok ? "delivered" : "failed"};
    int rc = store_tx_exec(
        tx,
        "INSERT INTO alert_deliveries (seq, alert_id, channel_id, channel_name, notification, attempt, "
        "outcome, "
        "status, answer, job_id, at) "
        "SELECT $3::bigint, $4::uuid, (d->>'channel_id')::uuid, coalesce(d->>'channel_name', ''), "
        "coalesce(d->>'notification', 'test'), coalesce((d->>'attempt')::int, 1), $5, (d->>'status')::int, "
        "coalesce(d->>'answer', ''), d->>'job_id', $2::timestamptz FROM (SELECT $1::jsonb AS d) x",
        5, p);
    if (rc == 0 && ok && !test) {
        const char *q[2] = {dstr(ev, "id"), ev->occurred_at};
        rc = store_tx_exec(tx,
                           "UPDATE alerts SET last_notified_at = $2::timestamptz WHERE id = $1::uuid "
                           "AND (last_notified_at IS NULL OR last_notified_at < $2::timestamptz)",
                           2, q);
    }
    free(doc);
    return rc;
}

static int project_alert(struct store_tx *tx, const struct store_event *ev, const char *t,
                         const char *const *p)
{
    if (strcmp(t, "fired") == 0) {
        char seq[24];
        snprintf(seq, sizeof seq, "%lld", (long long)ev->seq);
        const char *q[3] = {p[0], p[1], seq};
        return store_tx_exec(
            tx,
            "INSERT INTO alerts (id, rule_id, rule_name, kind, severity, target, node_id, node_name, "
            "container_id, "
            "container_name, summary, value, state, silenced, source_seq, fired_at, fired_seq, "
            "last_notified_at, notifications, updated_at) "
            "SELECT (d->>'id')::uuid, (d->>'rule_id')::uuid, d->>'rule_name', d->>'kind', d->>'severity', "
            "d->>'target', d->>'node_id', d->>'node_name', d->>'container_id', d->>'container_name', "
            "coalesce(d->>'summary', ''), (d->>'value')::double precision, 'firing', "
            "coalesce((d->>'silenced')::boolean, false), (d->>'source_seq')::bigint, $2::timestamptz, "
            "$3::bigint, NULL, CASE WHEN coalesce((d->>'silenced')::boolean, false) THEN 0 ELSE 1 END, "
            "$2::timestamptz FROM (SELECT $1::jsonb AS d) x",
            3, q);
    }
    if (strcmp(t, "acknowledged") == 0)
        return store_tx_exec(
            tx,
            "WITH u AS (UPDATE alerts SET state = 'acknowledged', acknowledged_at = $2::timestamptz, "
            "acknowledged_by = $1::jsonb->>'by', updated_at = $2::timestamptz "
            "WHERE id = ($1::jsonb->>'id')::uuid AND state = 'firing' RETURNING 1)" REFUSE_UNLESS_UPDATED,
            2, p);
    if (strcmp(t, "resolved") == 0)
        return store_tx_exec(
            tx,
            "WITH u AS (UPDATE alerts SET state = 'resolved', resolved_at = $2::timestamptz, "
            "resolved_reason = $1::jsonb->>'reason', updated_at = $2::timestamptz "
            "WHERE id = ($1::jsonb->>'id')::uuid AND state <> 'resolved' RETURNING 1)" REFUSE_UNLESS_UPDATED,
            2, p);
    if (strcmp(t, "silenced") == 0 || strcmp(t, "unsilenced") == 0) {
        const char *q[3] = {p[0], p[1], strcmp(t, "silenced") == 0 ? "true" : "false"};
        return store_tx_exec(
            tx,
            "WITH u AS (UPDATE alerts SET silenced = $3::boolean, updated_at = $2::timestamptz, "
            "notifications = notifications + CASE WHEN $3::boolean THEN 0 ELSE 1 END "
            "WHERE id = ($1::jsonb->>'id')::uuid AND state <> 'resolved' AND silenced <> $3::boolean "
            "RETURNING 1)" REFUSE_UNLESS_UPDATED,
            3, q);
    }
    if (strcmp(t, "renotified") == 0)
        return store_tx_exec(
            tx,
            "WITH u AS (UPDATE alerts SET notifications = notifications + 1, "
            "last_notified_at = $2::timestamptz, updated_at = $2::timestamptz "
            "WHERE id = ($1::jsonb->>'id')::uuid AND state = 'firing' RETURNING 1)" REFUSE_UNLESS_UPDATED,
            2, p);
    if (strcmp(t, "delivered") == 0 || strcmp(t, "delivery_failed") == 0)
        return project_delivery(tx, ev, false, strcmp(t, "delivered") == 0);
    return 0;
}

int project_alerts(struct store_tx *tx, const struct store_event *ev)
{
    const char *id = dstr(ev, "id");
    if (!id || !uuid_valid(id) || strcmp(ev->outcome, "success") != 0)
        return 0;
    char *doc = json_dumps(ev->data, JSON_COMPACT);
    const char *p[2] = {doc, ev->occurred_at};
    int rc = 0;
    if (strncmp(ev->type, "alert_rule.", 11) == 0) {
        rc = project_rule(tx, ev, ev->type + 11, p);
    } else if (strncmp(ev->type, "alert_channel.", 14) == 0) {
        const char *t = ev->type + 14;
        if (strcmp(t, "created") == 0)
            rc = store_tx_exec(
                tx,
                "INSERT INTO alert_channels (id, name, kind, config, secret_names, enabled, created_by, "
                "created_at, "
                "updated_at) SELECT (d->>'id')::uuid, d->>'name', d->>'kind', coalesce(d->'config', '{}'), "
                "coalesce(d->'secret_names', '[]'), coalesce((d->>'enabled')::boolean, true), d->>'by', "
                "$2::timestamptz, $2::timestamptz FROM (SELECT $1::jsonb AS d) x",
                2, p);
        else if (strcmp(t, "updated") == 0)
            rc = store_tx_exec(
                tx,
                "UPDATE alert_channels SET name = d->>'name', config = coalesce(d->'config', '{}'), "
                "secret_names = coalesce(d->'secret_names', '[]'), "
                "enabled = coalesce((d->>'enabled')::boolean, true), updated_at = $2::timestamptz "
                "FROM (SELECT $1::jsonb AS d) x WHERE id = (d->>'id')::uuid",
                2, p);
        else if (strcmp(t, "deleted") == 0)
            rc = store_tx_exec(tx, "DELETE FROM alert_channels WHERE id = ($1::jsonb->>'id')::uuid", 1, p);
        else if (strcmp(t, "test_delivered") == 0 || strcmp(t, "test_failed") == 0)
            rc = project_delivery(tx, ev, true, strcmp(t, "test_delivered") == 0);
    } else if (strncmp(ev->type, "alert_silence.", 14) == 0) {
        const char *t = ev->type + 14;
        if (strcmp(t, "created") == 0)
            rc = store_tx_exec(
                tx,
                "INSERT INTO alert_silences (id, matchers, node_labels, starts_at, until, comment, state, "
                "created_by, created_at, recurrence) SELECT (d->>'id')::uuid, coalesce(d->'matchers', '{}'), "
                "CASE WHEN jsonb_typeof(d->'node_labels') = 'object' THEN d->'node_labels' END, "
                "$2::timestamptz, "
                "coalesce((d->>'until')::timestamptz, 'infinity'), coalesce(d->>'comment', ''), 'active', "
                "d->>'by', $2::timestamptz, "
                "CASE WHEN jsonb_typeof(d->'recurrence') = 'object' THEN d->'recurrence' END "
                "FROM (SELECT $1::jsonb AS d) x",
                2, p);
        else if (strcmp(t, "ended") == 0 || strcmp(t, "deleted") == 0) {
            const char *q[3] = {doc, ev->occurred_at, strcmp(t, "ended") == 0 ? "ended" : "deleted"};
            rc = store_tx_exec(tx,
                               "UPDATE alert_silences SET state = $3, ended_at = $2::timestamptz "
                               "WHERE id = ($1::jsonb->>'id')::uuid AND state = 'active'",
                               3, q);
        }
    } else if (strncmp(ev->type, "alert.", 6) == 0) {
        rc = project_alert(tx, ev, ev->type + 6, p);
    }
    free(doc);
    return rc;
}

/* ---- queries ------------------------------------------------------------------ */

static int one_json(struct store *st, struct store_stmt *q, int n, const char *const *p, json_t **out,
                    const char *what, struct sb_err *err)
{
    *out = NULL;
    PGresult *r;
    int rc = store_query(st, q, n, p, &r, err);
    if (rc == 0 && (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)))
        rc = sb_error(err, SB_ENOTFOUND, "no such %s", what);
    else if (rc == 0) {
        json_error_t je;
        *out = json_loads(PQgetvalue(r, 0, 0), 0, &je);
        if (!*out)
            rc = sb_error(err, SB_EINTERNAL, "cannot parse a %s row", what);
    }
    PQclear(r);
    return rc;
}

static struct store_stmt q_rules =
    STORE_STMT("SELECT coalesce(json_agg(r ORDER BY r.name), '[]'::json)::text FROM alert_rules r");
static struct store_stmt q_rule =
    STORE_STMT("SELECT row_to_json(r)::text FROM alert_rules r WHERE id = $1::uuid");
static struct store_stmt q_seeded =
    STORE_STMT("SELECT EXISTS (SELECT 1 FROM streams WHERE stream LIKE 'alert\\_rule/%')::text");
static struct store_stmt q_channels =
    STORE_STMT("SELECT coalesce(json_agg(c ORDER BY c.name), '[]'::json)::text FROM alert_channels c");
static struct store_stmt q_channel =
    STORE_STMT("SELECT row_to_json(c)::text FROM alert_channels c WHERE id = $1::uuid");
static struct store_stmt q_channel_secret =
    STORE_STMT("SELECT sealed FROM alert_channel_secrets WHERE channel_id = $1::uuid");
static struct store_stmt q_silences = STORE_STMT(
    "SELECT coalesce(json_agg(s ORDER BY s.created_at DESC), '[]'::json)::text FROM "
    "(SELECT *, until <= now() AS expired FROM alert_silences WHERE ($1::text IS NULL OR state = $1) "
    " ORDER BY created_at DESC LIMIT 500) s");
static struct store_stmt q_silence =
    STORE_STMT("SELECT row_to_json(s)::text FROM (SELECT *, until <= now() AS expired FROM alert_silences "
               "WHERE id = $1::uuid) s");
static struct store_stmt q_alerts = STORE_STMT(
    "SELECT coalesce(json_agg(a ORDER BY a.fired_seq DESC), '[]'::json)::text FROM "
    "(SELECT * FROM alerts WHERE ($1::text IS NULL OR state = $1 OR ($1 = 'open' AND state <> 'resolved')) "
    " ORDER BY fired_seq DESC LIMIT $2::int) a");
static struct store_stmt q_alert =
    STORE_STMT("SELECT row_to_json(a)::text FROM alerts a WHERE id = $1::uuid");
static struct store_stmt q_deliveries = STORE_STMT(
    "SELECT coalesce(json_agg(d ORDER BY d.seq), '[]'::json)::text FROM "
    "(SELECT * FROM alert_deliveries WHERE ($1::uuid IS NULL AND alert_id IS NULL AND channel_id = $2::uuid) "
    " OR alert_id = $1::uuid ORDER BY seq DESC LIMIT 200) d");
static struct store_stmt q_counts =
    STORE_STMT("SELECT coalesce(json_object_agg(severity, n), '{}'::json)::text FROM "
               "(SELECT severity, count(*) AS n FROM alerts WHERE state <> 'resolved' GROUP BY severity) x");
static struct store_stmt q_cursor_get = STORE_STMT("SELECT seq FROM alert_eval_state WHERE name = $1");
static struct store_stmt q_cursor_set =
    STORE_STMT("INSERT INTO alert_eval_state (name, seq) VALUES ($1, $2::bigint) "
               "ON CONFLICT (name) DO UPDATE SET seq = greatest(alert_eval_state.seq, EXCLUDED.seq)");
static struct store_stmt q_count_events =
    STORE_STMT("SELECT count(*) FROM events WHERE stream = $1 AND type = $2 "
               "AND occurred_at > now() - make_interval(secs => $3::int)");

/* The metric windows: one row per node (or container) with samples in the
 * last window_s seconds. */
#define WINDOW_SQL(expr, table, key, name)                                                                   \
    "SELECT coalesce(json_agg(w), '[]'::json)::text FROM (SELECT " key " AS key, " name                      \
    " AS name, min(v) AS min, max(v) AS max, (array_agg(v ORDER BY ts DESC))[1] AS last, "                   \
    "extract(epoch FROM now() - min(ts))::double precision AS age_s, count(*) AS n FROM (SELECT *, " expr    \
    " AS v FROM " table " WHERE ts > now() - make_interval(secs => $1::int)) s WHERE v IS NOT NULL "         \
    "GROUP BY " key ") w"
static struct store_stmt q_win_cpu =
    STORE_STMT(WINDOW_SQL("cpu_pct::double precision", "metrics_raw", "node_id", "NULL::text"));
static struct store_stmt q_win_mem = STORE_STMT(WINDOW_SQL(
    "CASE WHEN mem_total > 0 THEN mem_used * 100.0 / mem_total END", "metrics_raw", "node_id", "NULL::text"));
static struct store_stmt q_win_disk =
    STORE_STMT(WINDOW_SQL("CASE WHEN disk_total > 0 THEN disk_used * 100.0 / disk_total END", "metrics_raw",
                          "node_id", "NULL::text"));
static struct store_stmt q_win_ccpu = STORE_STMT(WINDOW_SQL(
    "cpu_pct::double precision", "metrics_container_raw", "node_id || '/' || container_id", "max(name)"));
static struct store_stmt q_win_cmem =
    STORE_STMT(WINDOW_SQL("CASE WHEN mem_limit > 0 THEN mem_used * 100.0 / mem_limit END",
                          "metrics_container_raw", "node_id || '/' || container_id", "max(name)"));

int store_alert_rules_list(struct store *st, json_t **out, struct sb_err *err)
{
    return one_json(st, &q_rules, 0, NULL, out, "rule", err);
}

int store_alert_rule_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!id || !uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such rule");
    const char *p[1] = {id};
    return one_json(st, &q_rule, 1, p, out, "rule", err);
}

int store_alert_rules_seeded(struct store *st, bool *seeded, struct sb_err *err)
{
    PGresult *r;
    int rc = store_query(st, &q_seeded, 0, NULL, &r, err);
    if (rc == 0)
        *seeded = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "true") == 0;
    PQclear(r);
    return rc;
}

int store_alert_channels_list(struct store *st, json_t **out, struct sb_err *err)
{
    return one_json(st, &q_channels, 0, NULL, out, "channel", err);
}

int store_alert_channel_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!id || !uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such channel");
    const char *p[1] = {id};
    return one_json(st, &q_channel, 1, p, out, "channel", err);
}

int store_alert_channel_secret_get(struct store *st, const char *id, char **sealed, struct sb_err *err)
{
    *sealed = NULL;
    const char *p[1] = {id};
    PGresult *r;
    int rc = store_query(st, &q_channel_secret, 1, p, &r, err);
    if (rc == 0 && PQntuples(r) == 1)
        *sealed = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

int store_alert_channel_append(struct store *st, const struct event_new *ev, const char *id,
                               const char *sealed, struct sb_err *err)
{
    const char *p[2] = {id, sealed};
    struct store_side_write w = {
        sealed ? "INSERT INTO alert_channel_secrets (channel_id, sealed) VALUES ($1::uuid, $2) "
                 "ON CONFLICT (channel_id) DO UPDATE SET sealed = EXCLUDED.sealed"
               : "DELETE FROM alert_channel_secrets WHERE channel_id = $1::uuid",
        sealed ? 2 : 1, p};
    return store_append_with(st, ev, &w, NULL, err);
}

int store_alert_silences_list(struct store *st, const char *state, json_t **out, struct sb_err *err)
{
    const char *p[1] = {state};
    return one_json(st, &q_silences, 1, p, out, "silence", err);
}

int store_alert_silence_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!id || !uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such silence");
    const char *p[1] = {id};
    return one_json(st, &q_silence, 1, p, out, "silence", err);
}

int store_alerts_list(struct store *st, const char *state, int limit, json_t **out, struct sb_err *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 100);
    const char *p[2] = {state, lim};
    return one_json(st, &q_alerts, 2, p, out, "alert", err);
}

int store_alert_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!id || !uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such alert");
    const char *p[1] = {id};
    return one_json(st, &q_alert, 1, p, out, "alert", err);
}

int store_alert_deliveries(struct store *st, const char *alert_id, const char *channel_id, json_t **out,
                           struct sb_err *err)
{
    const char *p[2] = {alert_id, channel_id};
    return one_json(st, &q_deliveries, 2, p, out, "delivery", err);
}

int store_alerts_open_counts(struct store *st, json_t **out, struct sb_err *err)
{
    return one_json(st, &q_counts, 0, NULL, out, "count", err);
}

int store_alert_cursor_get(struct store *st, const char *name, int64_t *seq, bool *found, struct sb_err *err)
{
    const char *p[1] = {name};
    PGresult *r;
    int rc = store_query(st, &q_cursor_get, 1, p, &r, err);
    *found = false;
    if (rc == 0 && PQntuples(r) == 1) {
        *found = true;
        *seq = sb_int64(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return rc;
}

int store_alert_cursor_set(struct store *st, const char *name, int64_t seq, struct sb_err *err)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)seq);
    const char *p[2] = {name, s};
    PGresult *r;
    int rc = store_query(st, &q_cursor_set, 2, p, &r, err);
    PQclear(r);
    return rc;
}

int store_events_count_recent(struct store *st, const char *stream, const char *type, int within_s,
                              int64_t *n, struct sb_err *err)
{
    char w[16];
    snprintf(w, sizeof w, "%d", within_s);
    const char *p[3] = {stream, type, w};
    PGresult *r;
    int rc = store_query(st, &q_count_events, 3, p, &r, err);
    *n = rc == 0 && PQntuples(r) == 1 ? sb_int64(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return rc;
}

int store_metric_windows(struct store *st, const char *metric, int window_s, json_t **out, struct sb_err *err)
{
    struct store_stmt *q = strcmp(metric, "node.cpu") == 0           ? &q_win_cpu
                           : strcmp(metric, "node.memory") == 0      ? &q_win_mem
                           : strcmp(metric, "node.disk") == 0        ? &q_win_disk
                           : strcmp(metric, "container.cpu") == 0    ? &q_win_ccpu
                           : strcmp(metric, "container.memory") == 0 ? &q_win_cmem
                                                                     : NULL;
    if (!q)
        return sb_error(err, SB_EINVAL, "unknown metric");
    char w[16];
    snprintf(w, sizeof w, "%d", window_s);
    const char *p[1] = {w};
    return one_json(st, q, 1, p, out, "window", err);
}
