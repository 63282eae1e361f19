/*
 * Jobs (migrations/0008_jobs.sql, core/src/jobs/README.md): the `jobs`
 * projection of the job.* events, and the lease queries that are not events
 * (claim, renewal, release; the singleton duties' lease rows).
 *
 * Every job event's projection names the state (and, for an attempt's
 * outcome, the attempt) it applies to; an event that does not apply is
 * refused (jobs_refuse() raises a conflict), so a stale attempt that lost
 * its lease can never record an outcome over its successor.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The job as the API shows it. */
#define JOB_JSON                                                                                             \
    "json_build_object('id', j.id, 'kind', j.kind, 'target', j.target, 'node_id', j.node_id, "               \
    "'concurrency_key', j.concurrency_key, 'args', j.args, 'state', j.state, 'attempt', j.attempt, "         \
    "'max_attempts', j.max_attempts, 'timeout_s', j.timeout_s, 'run_at', j.run_at, "                         \
    "'cancel_requested', j.cancel_requested, 'result', j.result, 'error', j.error, "                         \
    "'created_by', j.created_by, 'created_at', j.created_at, 'started_at', j.started_at, "                   \
    "'finished_at', j.finished_at, 'updated_at', j.updated_at, 'seq', j.queued_seq, "                        \
    "'lease', CASE WHEN j.lease_until > now() THEN json_build_object('holder', j.lease_holder, "             \
    "'until', j.lease_until) END)"

/* Refuses the event when the guarded UPDATE (the CTE u) changed no row. */
#define REFUSE_UNLESS_UPDATED " SELECT jobs_refuse() WHERE NOT EXISTS (SELECT 1 FROM u)"

static const char *dstr(const struct store_event *ev, const char *key)
{
    return json_string_value(json_object_get(ev->data, key));
}

static void dint(const struct store_event *ev, const char *key, char out[24])
{
    snprintf(out, 24, "%lld", (long long)json_integer_value(json_object_get(ev->data, key)));
}

/* A member as JSON text (malloc'd) or NULL when absent or null. */
static char *djson(const struct store_event *ev, const char *key)
{
    json_t *v = json_object_get(ev->data, key);
    return v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

int project_jobs(struct store_tx *tx, const struct store_event *ev)
{
    if (strcmp(ev->outcome, "success") != 0)
        return 0;
    const char *t = ev->type + 4;
    if (strcmp(t, "pruned") == 0) {
        /* Retention (jobs/README.md): the finished jobs the event names go,
         * by id, so a rebuild deletes exactly the same rows. */
        char *ids = djson(ev, "ids");
        const char *p[1] = {ids ? ids : "[]"};
        int rc = store_tx_exec(
            tx,
            "DELETE FROM jobs WHERE id IN (SELECT x::uuid FROM json_array_elements_text($1::json) x) "
            "  AND state IN ('succeeded', 'failed', 'cancelled')",
            1, p);
        free(ids);
        return rc;
    }
    const char *id = dstr(ev, "id");
    if (!id)
        return 0;
    char attempt[24], seq[24];
    dint(ev, "attempt", attempt);
    snprintf(seq, sizeof seq, "%lld", (long long)ev->seq);
    int rc = 0;
    if (strcmp(t, "queued") == 0) {
        char *args = djson(ev, "args");
        char *actor = djson(ev, "created_by");
        char maxa[24], tmo[24];
        dint(ev, "max_attempts", maxa);
        dint(ev, "timeout_s", tmo);
        const char *p[12] = {id,
                             seq,
                             dstr(ev, "kind"),
                             dstr(ev, "target"),
                             dstr(ev, "node_id"),
                             dstr(ev, "concurrency_key"),
                             args ? args : "{}",
                             maxa,
                             tmo,
                             dstr(ev, "run_at") ? dstr(ev, "run_at") : ev->occurred_at,
                             actor,
                             ev->occurred_at};
        rc = store_tx_exec(
            tx,
            "INSERT INTO jobs (id, queued_seq, kind, target, node_id, concurrency_key, args, state, "
            "  max_attempts, timeout_s, run_at, created_by, created_at, updated_at) "
            "VALUES ($1::uuid, $2::bigint, $3, $4, $5, $6, $7::jsonb, 'queued', $8::int, $9::int, "
            "  $10::timestamptz, $11::jsonb, $12::timestamptz, $12::timestamptz)",
            12, p);
        free(args);
        free(actor);
    } else if (strcmp(t, "started") == 0) {
        const char *p[3] = {id, attempt, ev->occurred_at};
        rc = store_tx_exec(tx,
                           "WITH u AS (UPDATE jobs SET state = 'running', attempt = $2::int, "
                           "  started_at = $3::timestamptz, updated_at = $3::timestamptz "
                           "  WHERE id = $1::uuid AND state IN ('queued', 'running') AND attempt < $2::int "
                           "  AND $2::int <= max_attempts RETURNING 1)" REFUSE_UNLESS_UPDATED,
                           3, p);
    } else if (strcmp(t, "retrying") == 0) {
        char *error = djson(ev, "error");
        const char *p[5] = {id, attempt, dstr(ev, "run_at"), error, ev->occurred_at};
        rc = store_tx_exec(tx,
                           "WITH u AS (UPDATE jobs SET state = 'queued', run_at = $3::timestamptz, "
                           "  error = $4::jsonb, updated_at = $5::timestamptz, lease_holder = NULL, "
                           "  lease_until = NULL "
                           "  WHERE id = $1::uuid AND state = 'running' AND attempt = $2::int "
                           "  AND NOT cancel_requested RETURNING 1)" REFUSE_UNLESS_UPDATED,
                           5, p);
        free(error);
    } else if (strcmp(t, "succeeded") == 0 || strcmp(t, "failed") == 0) {
        char *result = djson(ev, "result");
        char *error = djson(ev, "error");
        const char *p[6] = {id, attempt, t, result, error, ev->occurred_at};
        rc = store_tx_exec(tx,
                           "WITH u AS (UPDATE jobs SET state = $3, result = $4::jsonb, "
                           "  error = coalesce($5::jsonb, error), finished_at = $6::timestamptz, "
                           "  updated_at = $6::timestamptz, lease_holder = NULL, lease_until = NULL "
                           "  WHERE id = $1::uuid AND state = 'running' AND attempt = $2::int RETURNING "
                           "1)" REFUSE_UNLESS_UPDATED,
                           6, p);
        free(result);
        free(error);
    } else if (strcmp(t, "cancel_requested") == 0) {
        const char *p[2] = {id, ev->occurred_at};
        rc = store_tx_exec(tx,
                           "WITH u AS (UPDATE jobs SET cancel_requested = true, updated_at = $2::timestamptz "
                           "  WHERE id = $1::uuid AND state = 'running' AND NOT cancel_requested RETURNING "
                           "1)" REFUSE_UNLESS_UPDATED,
                           2, p);
    } else if (strcmp(t, "cancelled") == 0) {
        /* From queued (not yet started again) or from running (the attempt
         * that saw the request, or a queued retry). */
        const char *p[4] = {id, attempt, ev->occurred_at, dstr(ev, "from")};
        rc = store_tx_exec(tx,
                           "WITH u AS (UPDATE jobs SET state = 'cancelled', cancel_requested = true, "
                           "  finished_at = $3::timestamptz, updated_at = $3::timestamptz, "
                           "  lease_holder = NULL, lease_until = NULL "
                           "  WHERE id = $1::uuid AND state = coalesce($4, 'queued') AND attempt = $2::int "
                           "  RETURNING 1)" REFUSE_UNLESS_UPDATED,
                           4, p);
    }
    return rc;
}

/* ---- queries ---------------------------------------------------------- */

static struct store_stmt q_get = STORE_STMT("SELECT " JOB_JSON "::text FROM jobs j WHERE j.id = $1::uuid");
static struct store_stmt q_list = STORE_STMT(
    "SELECT coalesce(json_agg(x.o ORDER BY x.queued_seq DESC), '[]'::json)::text FROM ("
    "  SELECT " JOB_JSON " AS o, j.queued_seq FROM jobs j "
    "  WHERE ($1::text IS NULL OR j.kind = $1) AND ($2::text IS NULL OR j.state = $2) "
    "    AND ($3::text IS NULL OR j.target = $3) AND ($4::text[] IS NULL OR j.node_id = ANY($4::text[])) "
    "    AND ($5::bigint IS NULL OR j.queued_seq < $5::bigint) "
    "  ORDER BY j.queued_seq DESC LIMIT $6::int) x");

int store_job_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such job");
    const char *p[1] = {id};
    PGresult *r;
    int rc = store_query(st, &q_get, 1, p, &r, err);
    if (rc == 0 && PQntuples(r) == 0)
        rc = sb_error(err, SB_ENOTFOUND, "no such job");
    else if (rc == 0) {
        json_error_t je;
        *out = json_loads(PQgetvalue(r, 0, 0), 0, &je);
        if (!*out)
            rc = sb_error(err, SB_EINTERNAL, "cannot parse a job row");
    }
    PQclear(r);
    return rc;
}

int store_jobs_list(struct store *st, const struct store_jobs_filter *f, json_t **out, struct sb_err *err)
{
    *out = NULL;
    struct buf nodes;
    buf_init(&nodes, 0);
    if (f->node_ids) {
        buf_putc(&nodes, '{');
        size_t i;
        json_t *v;
        json_array_foreach(f->node_ids, i, v) store_array_add(&nodes, json_string_value(v), i == 0);
        buf_putc(&nodes, '}');
    }
    char before[24], limit[24];
    snprintf(before, sizeof before, "%lld", (long long)f->before_seq);
    snprintf(limit, sizeof limit, "%d", f->limit > 0 ? f->limit : 100);
    const char *p[6] = {
        f->kind, f->state, f->target, f->node_ids ? nodes.data : NULL, f->before_seq > 0 ? before : NULL,
        limit};
    PGresult *r;
    int rc = store_query(st, &q_list, 6, p, &r, err);
    if (rc == 0) {
        json_error_t je;
        *out = json_loads(PQgetvalue(r, 0, 0), 0, &je);
        if (!*out)
            rc = sb_error(err, SB_EINTERNAL, "cannot parse job rows");
    }
    PQclear(r);
    buf_release(&nodes);
    return rc;
}

/* ---- leases --------------------------------------------------------------- */

static struct store_stmt q_begin = STORE_STMT("BEGIN");
static struct store_stmt q_commit = STORE_STMT("COMMIT");
static struct store_stmt q_claim_lock = STORE_STMT("SELECT pg_advisory_xact_lock($1::bigint)");
/* The oldest job this daemon can run that is due: queued, or running under
 * a lapsed lease (its daemon died: taken over as a new attempt). A job with
 * a concurrency key waits while an older job of that key is active, or
 * another holds a live lease on the key. Claims are serialized by the
 * advisory lock so two daemons cannot both pass the key check; SKIP LOCKED
 * keeps a claim from waiting on a row another statement holds. */
static struct store_stmt q_claim = STORE_STMT(
    "UPDATE jobs j SET lease_holder = $1, lease_until = now() + $2::int * interval '1 millisecond' "
    "WHERE j.id = (SELECT c.id FROM jobs c "
    "  WHERE c.kind = ANY($3::text[]) AND c.state IN ('queued', 'running') "
    "    AND (c.state = 'running' OR c.run_at <= now()) "
    "    AND (c.lease_until IS NULL OR c.lease_until < now()) "
    "    AND (c.concurrency_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs o "
    "         WHERE o.concurrency_key = c.concurrency_key AND o.id <> c.id "
    "           AND o.state IN ('queued', 'running') "
    "           AND (o.queued_seq < c.queued_seq OR o.lease_until >= now()))) "
    "  ORDER BY c.run_at, c.queued_seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "RETURNING j.id::text, j.kind, j.args::text, j.attempt, j.max_attempts, j.timeout_s, "
    "  coalesce(j.node_id, ''), j.state, j.cancel_requested");
static struct store_stmt q_renew =
    STORE_STMT("UPDATE jobs SET lease_until = now() + $3::int * interval '1 millisecond' "
               "WHERE id = $1::uuid AND lease_holder = $2 AND state IN ('queued', 'running') "
               "RETURNING cancel_requested");
static struct store_stmt q_release =
    STORE_STMT("UPDATE jobs SET lease_until = NULL WHERE id = $1::uuid AND lease_holder = $2");

#define STORE_LOCK_JOBS 0x5342584a4f425321LL /* "SBXJOBS!" */

int store_job_claim(struct store *st, const char *holder, int lease_ms, const char *kinds_array,
                    struct store_job_claim *out, bool *found, struct sb_err *err)
{
    *found = false;
    memset(out, 0, sizeof *out);
    struct store_conn *c = store_acquire(st, err);
    if (!c)
        return err ? err->code : SB_EUNAVAIL;
    char lockkey[24], lease[24];
    snprintf(lockkey, sizeof lockkey, "%lld", (long long)STORE_LOCK_JOBS);
    snprintf(lease, sizeof lease, "%d", lease_ms);
    int rc = 0;
    PGresult *r = store_exec(c, &q_begin, 0, NULL, err);
    if (!r) {
        rc = err->code;
        goto out;
    }
    PQclear(r);
    const char *lp[1] = {lockkey};
    r = store_exec(c, &q_claim_lock, 1, lp, err);
    if (!r) {
        rc = err->code;
        goto out;
    }
    PQclear(r);
    const char *p[3] = {holder, lease, kinds_array};
    r = store_exec(c, &q_claim, 3, p, err);
    if (!r) {
        rc = err->code;
        goto out;
    }
    if (PQntuples(r) == 1) {
        *found = true;
        sb_strlcpy(out->id, PQgetvalue(r, 0, 0), sizeof out->id);
        sb_strlcpy(out->kind, PQgetvalue(r, 0, 1), sizeof out->kind);
        out->args = strdup(PQgetvalue(r, 0, 2));
        out->attempt = (int)strtol(PQgetvalue(r, 0, 3), NULL, 10);
        out->max_attempts = (int)strtol(PQgetvalue(r, 0, 4), NULL, 10);
        out->timeout_s = (int)strtol(PQgetvalue(r, 0, 5), NULL, 10);
        sb_strlcpy(out->node_id, PQgetvalue(r, 0, 6), sizeof out->node_id);
        out->was_running = strcmp(PQgetvalue(r, 0, 7), "running") == 0;
        out->cancel_requested = PQgetvalue(r, 0, 8)[0] == 't';
    }
    PQclear(r);
    r = store_exec(c, &q_commit, 0, NULL, err);
    if (!r) {
        rc = err->code;
        *found = false;
        free(out->args);
        out->args = NULL;
        goto out;
    }
    PQclear(r);
out:
    if (rc && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
    store_release(st, c);
    return rc;
}

int store_job_renew(struct store *st, const char *id, const char *holder, int lease_ms, bool *held,
                    bool *cancel_requested, struct sb_err *err)
{
    char lease[24];
    snprintf(lease, sizeof lease, "%d", lease_ms);
    const char *p[3] = {id, holder, lease};
    PGresult *r;
    int rc = store_query(st, &q_renew, 3, p, &r, err);
    if (rc == 0) {
        *held = PQntuples(r) == 1;
        *cancel_requested = *held && PQgetvalue(r, 0, 0)[0] == 't';
    }
    PQclear(r);
    return rc;
}

int store_job_release(struct store *st, const char *id, const char *holder, struct sb_err *err)
{
    const char *p[2] = {id, holder};
    PGresult *r;
    int rc = store_query(st, &q_release, 2, p, &r, err);
    PQclear(r);
    return rc;
}

/* A duty's lease: taken when free or lapsed, renewed by its holder. */
static struct store_stmt q_duty = STORE_STMT(
    "INSERT INTO job_duties AS d (name, holder, lease_until, acquired_at) "
    "VALUES ($1, $2, now() + $3::int * interval '1 millisecond', now()) "
    "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until, "
    "  acquired_at = CASE WHEN d.holder = EXCLUDED.holder THEN d.acquired_at ELSE now() END "
    "WHERE d.holder = EXCLUDED.holder OR d.lease_until < now() RETURNING 1");
static struct store_stmt q_prunable =
    STORE_STMT("SELECT coalesce(json_agg(x.id ORDER BY x.finished_at, x.id), '[]'::json)::text FROM ("
               "  SELECT id, finished_at FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') "
               "    AND finished_at < $1::timestamptz ORDER BY finished_at, id LIMIT $2::int) x");

int store_jobs_prunable(struct store *st, const char *finished_before, int limit, json_t **ids,
                        struct sb_err *err)
{
    *ids = NULL;
    char lim[24];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[2] = {finished_before, lim};
    PGresult *r;
    int rc = store_query(st, &q_prunable, 2, p, &r, err);
    if (rc == 0) {
        json_error_t je;
        *ids = json_loads(PQgetvalue(r, 0, 0), 0, &je);
        if (!*ids)
            rc = sb_error(err, SB_EINTERNAL, "cannot parse the prunable jobs");
    }
    PQclear(r);
    return rc;
}

static struct store_stmt q_duty_release =
    STORE_STMT("DELETE FROM job_duties WHERE name = $1 AND holder = $2");

int store_duty_acquire(struct store *st, const char *name, const char *holder, int lease_ms, bool *held,
                       struct sb_err *err)
{
    char lease[24];
    snprintf(lease, sizeof lease, "%d", lease_ms);
    const char *p[3] = {name, holder, lease};
    PGresult *r;
    int rc = store_query(st, &q_duty, 3, p, &r, err);
    if (rc == 0)
        *held = PQntuples(r) == 1;
    PQclear(r);
    return rc;
}

int store_duty_release(struct store *st, const char *name, const char *holder, struct sb_err *err)
{
    const char *p[2] = {name, holder};
    PGresult *r;
    int rc = store_query(st, &q_duty_release, 2, p, &r, err);
    PQclear(r);
    return rc;
}
