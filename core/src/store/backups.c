/*
 * Backups: the projection of the backup.* events
 * (migrations/0014_backups.sql), its queries, and the sealed repository
 * secrets beside it (never in events).
 *
 * Events (data):
 *   backup.repository_created {id, name, kind, location, by}   (+ sealed secrets, side write)
 *   backup.repository_deleted {id}
 *   backup.plan_created       {id, name, repository_id, what, node_id?, schedule?, retention, by}
 *   backup.plan_updated       {id, changes{name?, schedule?, restore_test?, retention?, paused?, volumes?},
 * node_id?, by} backup.plan_deleted       {id} backup.plan_fired         {id, at, job_id} (the schedule
 * fired) backup.run_started        {id, plan_id, repository_id, node_id?, trigger, attempt}
 *   backup.run_succeeded      {id, plan_id, snapshots, bytes, added, duration_ms, checked}
 *   backup.run_failed         {id, plan_id, reason, duration_ms}   (outcome failure)
 *   backup.services_paused    {id (run), plan_id, node_id, containers}   (before the pause)
 *   backup.services_unpaused  {id (run), plan_id, node_id, containers, by: run|sweep}
 *   backup.restore_test_fired {id, at}                          (the restore-test schedule fired)
 *   backup.restore_test_succeeded / backup.restore_test_failed (outcome failure)
 *                             {id (job), plan_id, run_id?, snapshot, snapshots, duration_ms, reason?}
 *   backup.restore_*, backup.checked: no projection (the job and the log hold them)
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int project_backups(struct store_tx *tx, const struct store_event *ev)
{
    const char *type;
    const char *id = project_subject(ev, 7, "run_failed", &type);
    /* A failed restore test is a failure the plan's row shows too. */
    if (!id && strcmp(ev->type, "backup.restore_test_failed") == 0)
        id = project_subject(ev, 7, "restore_test_failed", &type);
    if (!id)
        return 0;
    char *doc = json_dumps(ev->data, JSON_COMPACT);
    const char *p[2] = {doc, ev->occurred_at};
    int rc = 0;
    if (strcmp(type, "repository_created") == 0) {
        rc = store_tx_exec(
            tx,
            "INSERT INTO backup_repositories (id, name, kind, location, created_by, created_at) "
            "SELECT (d->>'id')::uuid, d->>'name', d->>'kind', d->'location', d->>'by', "
            "$2::timestamptz FROM (SELECT $1::jsonb AS d) x",
            2, p);
    } else if (strcmp(type, "repository_deleted") == 0) {
        const char *q[1] = {id};
        rc = store_tx_exec(tx, "DELETE FROM backup_repositories WHERE id = $1::uuid", 1, q);
        if (rc == 0)
            rc = store_tx_exec(tx, "DELETE FROM backup_repository_secrets WHERE repository_id = $1::uuid", 1,
                               q);
    } else if (strcmp(type, "plan_created") == 0) {
        rc = store_tx_exec(
            tx,
            "INSERT INTO backup_plans (id, name, repository_id, what, node_id, schedule, retention, "
            "restore_test, pause_services, created_by, "
            "created_at, updated_at) SELECT (d->>'id')::uuid, d->>'name', (d->>'repository_id')::uuid, "
            "d->'what', "
            "d->>'node_id', d->>'schedule', coalesce(d->'retention', '{}'), d->>'restore_test', "
            "coalesce((d->>'pause_services')::boolean, false), d->>'by', "
            "$2::timestamptz, $2::timestamptz FROM (SELECT $1::jsonb AS d) x",
            2, p);
    } else if (strcmp(type, "plan_updated") == 0) {
        /* A new schedule, or a plan resumed, counts from now: no catch-up fire. */
        rc = store_tx_exec(
            tx,
            "UPDATE backup_plans p SET name = coalesce(c->>'name', p.name), "
            "schedule = CASE WHEN c ? 'schedule' THEN c->>'schedule' ELSE p.schedule END, "
            "restore_test = CASE WHEN c ? 'restore_test' THEN c->>'restore_test' ELSE p.restore_test END, "
            "retention = coalesce(c->'retention', p.retention), "
            "paused = coalesce((c->>'paused')::boolean, p.paused), "
            "pause_services = coalesce((c->>'pause_services')::boolean, p.pause_services), "
            "what = CASE WHEN NOT c ? 'volumes' THEN p.what WHEN jsonb_typeof(c->'volumes') = 'null' "
            "THEN p.what - 'volumes' ELSE jsonb_set(p.what, '{volumes}', c->'volumes') END, "
            "last_fired_at = CASE WHEN c ? 'schedule' OR c->>'paused' = 'false' THEN $2::timestamptz "
            "ELSE p.last_fired_at END, "
            "restore_test_fired_at = CASE WHEN c ? 'restore_test' OR c->>'paused' = 'false' "
            "THEN $2::timestamptz ELSE p.restore_test_fired_at END, updated_at = $2::timestamptz "
            "FROM (SELECT $1::jsonb->'changes' AS c) x WHERE p.id = ($1::jsonb->>'id')::uuid",
            2, p);
    } else if (strcmp(type, "plan_deleted") == 0) {
        const char *q[1] = {id};
        rc = store_tx_exec(tx, "DELETE FROM backup_plans WHERE id = $1::uuid", 1, q);
    } else if (strcmp(type, "plan_fired") == 0 || strcmp(type, "restore_test_fired") == 0) {
        rc = store_tx_exec(
            tx,
            strcmp(type, "plan_fired") == 0
                ? "UPDATE backup_plans SET last_fired_at = ($1::jsonb->>'at')::timestamptz "
                  "WHERE id = ($1::jsonb->>'id')::uuid"
                : "UPDATE backup_plans SET restore_test_fired_at = ($1::jsonb->>'at')::timestamptz "
                  "WHERE id = ($1::jsonb->>'id')::uuid",
            1, p);
    } else if (strcmp(type, "services_paused") == 0 || strcmp(type, "services_unpaused") == 0) {
        const char *q[2] = {doc, strcmp(type, "services_paused") == 0 ? "t" : "f"};
        rc = store_tx_exec(tx,
                           "UPDATE backup_runs SET paused_containers = CASE WHEN $2::boolean THEN "
                           "$1::jsonb->'containers' END WHERE id = ($1::jsonb->>'id')::uuid",
                           2, q);
    } else if (strcmp(type, "restore_test_succeeded") == 0 || strcmp(type, "restore_test_failed") == 0) {
        const char *q[3] = {doc, ev->occurred_at,
                            strcmp(type, "restore_test_failed") == 0 ? "failed" : "succeeded"};
        rc = store_tx_exec(
            tx,
            "UPDATE backup_plans SET last_verified_at = $2::timestamptz, last_verified_status = $3, "
            "last_verified_snapshot = $1::jsonb->>'snapshot', "
            "last_verified_reason = $1::jsonb->>'reason' WHERE id = ($1::jsonb->>'plan_id')::uuid",
            3, q);
    } else if (strcmp(type, "run_started") == 0) {
        rc = store_tx_exec(
            tx,
            "INSERT INTO backup_runs (id, plan_id, repository_id, node_id, trigger, status, attempt, "
            "started_at) "
            "SELECT (d->>'id')::uuid, (d->>'plan_id')::uuid, (d->>'repository_id')::uuid, d->>'node_id', "
            "coalesce(d->>'trigger', 'manual'), 'running', coalesce((d->>'attempt')::int, 1), "
            "$2::timestamptz "
            "FROM (SELECT $1::jsonb AS d) x ON CONFLICT (id) DO UPDATE SET status = 'running', "
            "attempt = EXCLUDED.attempt, started_at = EXCLUDED.started_at, finished_at = NULL, reason = NULL",
            2, p);
        if (rc == 0)
            rc = store_tx_exec(tx,
                               "UPDATE backup_plans SET last_run_id = ($1::jsonb->>'id')::uuid, "
                               "last_status = 'running' WHERE id = ($1::jsonb->>'plan_id')::uuid",
                               1, p);
    } else if (strcmp(type, "run_succeeded") == 0 || strcmp(type, "run_failed") == 0) {
        const char *q[3] = {doc, ev->occurred_at, strcmp(type, "run_failed") == 0 ? "failed" : "succeeded"};
        rc = store_tx_exec(
            tx,
            "UPDATE backup_runs SET status = $3, finished_at = $2::timestamptz, "
            "snapshots = coalesce($1::jsonb->'snapshots', snapshots), bytes = ($1::jsonb->>'bytes')::bigint, "
            "added = ($1::jsonb->>'added')::bigint, duration_ms = ($1::jsonb->>'duration_ms')::bigint, "
            "checked = ($1::jsonb->>'checked')::boolean, reason = $1::jsonb->>'reason' "
            "WHERE id = ($1::jsonb->>'id')::uuid",
            3, q);
        if (rc == 0)
            rc = store_tx_exec(
                tx,
                "UPDATE backup_plans SET last_run_id = ($1::jsonb->>'id')::uuid, last_status = $3, "
                "last_bytes = coalesce(($1::jsonb->>'bytes')::bigint, last_bytes), "
                "last_finished_at = $2::timestamptz WHERE id = ($1::jsonb->>'plan_id')::uuid",
                3, q);
    }
    free(doc);
    return rc;
}

static struct store_stmt q_repo_get =
    STORE_STMT("SELECT row_to_json(r)::text FROM backup_repositories r WHERE id = $1::uuid");
static struct store_stmt q_repo_list =
    STORE_STMT("SELECT coalesce(json_agg(r ORDER BY r.name), '[]'::json)::text FROM backup_repositories r");
static struct store_stmt q_plan_get =
    STORE_STMT("SELECT row_to_json(p)::text FROM backup_plans p WHERE id = $1::uuid");
static struct store_stmt q_plan_list =
    STORE_STMT("SELECT coalesce(json_agg(p ORDER BY p.name), '[]'::json)::text FROM backup_plans p");
static struct store_stmt q_run_get =
    STORE_STMT("SELECT row_to_json(r)::text FROM backup_runs r WHERE id = $1::uuid");
static struct store_stmt q_run_list =
    STORE_STMT("SELECT coalesce(json_agg(r ORDER BY r.started_at DESC), '[]'::json)::text FROM (SELECT * "
               "FROM backup_runs "
               "WHERE $1::uuid IS NULL OR plan_id = $1::uuid ORDER BY started_at DESC LIMIT $2::int) r");
static struct store_stmt q_run_paused =
    STORE_STMT("SELECT coalesce(json_agg(r), '[]'::json)::text FROM (SELECT * FROM backup_runs "
               "WHERE paused_containers IS NOT NULL AND status <> 'running' LIMIT 100) r");
static struct store_stmt q_secrets_get = STORE_STMT(
    "SELECT sealed_password, sealed_key FROM backup_repository_secrets WHERE repository_id = $1::uuid");

static int one_json(struct store *st, struct store_stmt *q, int n, const char *const *p, json_t **out,
                    const char *what, struct sb_err *err)
{
    *out = NULL;
    PGresult *r;
    int rc = store_query(st, q, n, p, &r, err);
    if (rc == 0 && PQntuples(r) == 0)
        rc = sb_error(err, SB_ENOTFOUND, "no such %s", what);
    else if (rc == 0) {
        *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
        if (!*out)
            rc = sb_error(err, SB_EINTERNAL, "cannot parse a %s row", what);
    }
    PQclear(r);
    return rc;
}

int store_backup_get(struct store *st, const char *what, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    bool repo = strcmp(what, "repository") == 0, plan = strcmp(what, "plan") == 0;
    if (!id || !uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such %s", what);
    const char *p[1] = {id};
    return one_json(st, repo ? &q_repo_get : plan ? &q_plan_get : &q_run_get, 1, p, out, what, err);
}

int store_backup_list(struct store *st, const char *what, const char *plan_id, int limit, json_t **out,
                      struct sb_err *err)
{
    if (strcmp(what, "repository") == 0)
        return one_json(st, &q_repo_list, 0, NULL, out, what, err);
    if (strcmp(what, "plan") == 0)
        return one_json(st, &q_plan_list, 0, NULL, out, what, err);
    if (strcmp(what, "paused") == 0)
        return one_json(st, &q_run_paused, 0, NULL, out, what, err);
    if (plan_id && !uuid_valid(plan_id)) {
        *out = json_array();
        return 0;
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 50);
    const char *p[2] = {plan_id, lim};
    return one_json(st, &q_run_list, 2, p, out, what, err);
}

int store_backup_repo_create(struct store *st, const struct event_new *ev, const char *id,
                             const char *sealed_password, const char *sealed_key, struct sb_err *err)
{
    const char *p[3] = {id, sealed_password, sealed_key};
    struct store_side_write w = {
        .sql = "INSERT INTO backup_repository_secrets (repository_id, sealed_password, sealed_key) "
               "VALUES ($1::uuid, $2, $3)",
        .n = 3,
        .params = p};
    int64_t seq;
    return store_append_with(st, ev, &w, &seq, err);
}

int store_backup_repo_secrets(struct store *st, const char *id, char **sealed_password, char **sealed_key,
                              struct sb_err *err)
{
    *sealed_password = *sealed_key = NULL;
    const char *p[1] = {id};
    PGresult *r;
    int rc = store_query(st, &q_secrets_get, 1, p, &r, err);
    if (rc == 0 && PQntuples(r) == 0)
        rc = sb_error(err, SB_ENOTFOUND, "the repository's password is not stored");
    else if (rc == 0) {
        *sealed_password = strdup(PQgetvalue(r, 0, 0));
        if (!PQgetisnull(r, 0, 1))
            *sealed_key = strdup(PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return rc;
}

int store_url_env(const char *url, json_t **env, struct sb_err *err)
{
    *env = NULL;
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url ? url : "", &msg);
    if (!opts) {
        int rc = sb_error(err, SB_EINVAL, "bad database URL: %s", msg ? msg : "unparseable");
        PQfreemem(msg);
        return rc;
    }
    static const struct {
        const char *key, *var;
    } map[] = {
        {"host", "PGHOST"},       {"hostaddr", "PGHOSTADDR"},       {"port", "PGPORT"},
        {"user", "PGUSER"},       {"password", "PGPASSWORD"},       {"dbname", "PGDATABASE"},
        {"sslmode", "PGSSLMODE"}, {"sslrootcert", "PGSSLROOTCERT"}, {"sslcert", "PGSSLCERT"},
        {"sslkey", "PGSSLKEY"},   {"passfile", "PGPASSFILE"},       {"connect_timeout", "PGCONNECT_TIMEOUT"},
        {"options", "PGOPTIONS"}};
    *env = json_object();
    for (PQconninfoOption *o = opts; o->keyword; o++)
        for (size_t i = 0; o->val && i < sizeof map / sizeof map[0]; i++)
            if (strcmp(o->keyword, map[i].key) == 0)
                json_object_set_new(*env, map[i].var, json_string(o->val));
    PQconninfoFree(opts);
    return 0;
}

/* job.failed / job.cancelled: a run whose daemon died (lease_lost) never
 * recorded its end; its job's does. A run that recorded it is not running. */
int project_backup_job_end(struct store_tx *tx, const struct store_event *ev)
{
    const char *id = json_string_value(json_object_get(ev->data, "id"));
    if (!id || !uuid_valid(id))
        return 0;
    json_t *e = json_object_get(ev->data, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *p[3] = {id, ev->occurred_at, msg ? msg : "the run's job ended without it"};
    int rc = store_tx_exec(tx,
                           "UPDATE backup_runs SET status = 'failed', finished_at = $2::timestamptz, "
                           "reason = coalesce(reason, $3) WHERE id = $1::uuid AND status = 'running'",
                           3, p);
    if (rc == 0)
        rc = store_tx_exec(
            tx,
            "UPDATE backup_plans SET last_status = 'failed', last_finished_at = $2::timestamptz "
            "WHERE last_run_id = $1::uuid AND last_status = 'running'",
            2, p);
    return rc;
}

/* ---- the restore test ------------------------------------------------------ */

int store_event_hash_at(struct store *st, int64_t seq, uint8_t hash[32], struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT("SELECT encode(hash, 'hex') FROM events WHERE seq = $1::bigint");
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)seq);
    const char *p[1] = {s};
    PGresult *r;
    int rc = store_query(st, &q, 1, p, &r, err);
    if (rc == 0 && PQntuples(r) != 1)
        rc = sb_error(err, SB_ENOTFOUND, "no event %lld", (long long)seq);
    else if (rc == 0 && hex_decode(PQgetvalue(r, 0, 0), hash, 32))
        rc = sb_error(err, SB_EINTERNAL, "event %lld has a bad hash", (long long)seq);
    PQclear(r);
    return rc;
}

int store_scratch_database(const char *admin_url, const char *name, bool create, struct sb_err *err)
{
    if (!name || !*name || strlen(name) > 63 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
        return sb_error(err, SB_EINVAL, "bad scratch database name");
    struct store_conn *c = store_conn_open(admin_url, err);
    if (!c)
        return SB_EUNAVAIL;
    /* CREATE and DROP DATABASE take no parameters: the name is quoted by
     * libpq as an identifier (and is ours, never input). */
    char *ident = PQescapeIdentifier(c->pg, name, strlen(name));
    int rc = 0;
    if (!ident) {
        rc = sb_error(err, SB_EINTERNAL, "cannot quote the scratch database's name");
    } else {
        struct buf sql;
        buf_init(&sql, 512);
        if (create)
            buf_printf(&sql, "CREATE DATABASE %s ENCODING 'UTF8' TEMPLATE template0", ident);
        else
            buf_printf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
        PGresult *r = PQexecParams(c->pg, sql.data, 0, NULL, NULL, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = store_result_error(c->pg, r, err);
        PQclear(r);
        buf_release(&sql);
        PQfreemem(ident);
    }
    store_conn_close(c);
    return rc;
}

static void conninfo_value(struct buf *out, const char *v)
{
    buf_puts(out, "'");
    for (const char *p = v; *p; p++) {
        if (*p == '\'' || *p == '\\')
            buf_puts(out, "\\");
        buf_append(out, p, 1);
    }
    buf_puts(out, "'");
}

int store_url_with_database(const char *url, const char *dbname, struct buf *out, struct sb_err *err)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url ? url : "", &msg);
    if (!opts) {
        int rc = sb_error(err, SB_EINVAL, "bad database URL: %s", msg ? msg : "unparseable");
        PQfreemem(msg);
        return rc;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "dbname") == 0 || !o->val)
            continue;
        buf_printf(out, "%s=", o->keyword);
        conninfo_value(out, o->val);
        buf_puts(out, " ");
    }
    buf_puts(out, "dbname=");
    conninfo_value(out, dbname);
    PQconninfoFree(opts);
    return 0;
}
