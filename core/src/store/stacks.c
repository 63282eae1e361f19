/*
 * Stacks: the projection of the stack.* events (migrations/0010_stacks.sql),
 * its queries, and the sealed secret variables beside it (never in events).
 *
 * Events (data):
 *   stack.created          {id, name, node_id, revision, compose, variables, secret_names, env_files, by}
 *   stack.updated          {id, revision, compose, variables, secret_names, env_files, by,
 *                           pinned_digests?, rollback_of?}
 *   stack.deploy_requested {id, revision}            (by the API, before the job is queued)
 *   stack.deploy_started   {id, revision, job_id}    (by the job, each attempt)
 *   stack.deployed         {id, revision, plan, digests, job_id}
 *   stack.deploy_failed    {id, revision, plan?, reason, rolled_back, job_id}   (outcome failure)
 *   stack.scaled           {id, service, replicas}
 *   stack.restarted        {id, service}
 *   stack.stopped / stack.started {id}
 *   stack.down             {id, volumes, removed}
 *   stack.deleted          {id}
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int project_stacks(struct store_tx *tx, const struct store_event *ev)
{
    const char *type;
    const char *id = project_subject(ev, 6, "deploy_failed", &type);
    if (!id)
        return 0;
    char *doc = json_dumps(ev->data, JSON_COMPACT);
    const char *p[2] = {doc, ev->occurred_at};
    int rc = 0;
    if (strcmp(type, "created") == 0) {
        rc = store_tx_exec(
            tx,
            "INSERT INTO stacks (id, name, node_id, revision, status, created_by, created_at, "
            "updated_at) SELECT (d->>'id')::uuid, d->>'name', d->>'node_id', (d->>'revision')::int, "
            "'created', d->>'by', $2::timestamptz, $2::timestamptz FROM (SELECT $1::jsonb AS d) x",
            2, p);
    }
    if (rc == 0 && (strcmp(type, "created") == 0 || strcmp(type, "updated") == 0)) {
        rc = store_tx_exec(
            tx,
            "INSERT INTO stack_revisions (stack_id, revision, compose, variables, secret_names, env_files, "
            "pinned_digests, rollback_of, created_by, created_at) "
            "SELECT (d->>'id')::uuid, (d->>'revision')::int, d->>'compose', coalesce(d->'variables', '{}'), "
            "coalesce(d->'secret_names', '[]'), coalesce(d->'env_files', '{}'), d->'pinned_digests', "
            "(d->>'rollback_of')::int, d->>'by', $2::timestamptz FROM (SELECT $1::jsonb AS d) x",
            2, p);
        if (rc == 0 && strcmp(type, "updated") == 0)
            rc = store_tx_exec(tx,
                               "UPDATE stacks SET revision = ($1::jsonb->>'revision')::int, scale = '{}', "
                               "updated_at = $2::timestamptz WHERE id = ($1::jsonb->>'id')::uuid",
                               2, p);
    } else if (strcmp(type, "deploy_requested") == 0 || strcmp(type, "deploy_started") == 0) {
        rc = store_tx_exec(
            tx,
            "UPDATE stacks SET status = 'deploying', status_reason = NULL, updated_at = $2::timestamptz, "
            "pending_revision = ($1::jsonb->>'revision')::int, "
            "pending_job = coalesce($1::jsonb->>'job_id', pending_job) "
            "WHERE id = ($1::jsonb->>'id')::uuid",
            2, p);
    } else if (strcmp(type, "deployed") == 0) {
        rc = store_tx_exec(
            tx,
            "UPDATE stacks SET status = 'deployed', status_reason = NULL, pending_revision = NULL, "
            "pending_job = NULL, "
            "deployed_revision = ($1::jsonb->>'revision')::int, updated_at = $2::timestamptz "
            "WHERE id = ($1::jsonb->>'id')::uuid",
            2, p);
        if (rc == 0)
            rc = store_tx_exec(
                tx,
                "UPDATE stack_revisions SET plan = $1::jsonb->'plan', digests = $1::jsonb->'digests', "
                "deploy_status = 'deployed', deploy_reason = NULL, deployed_at = $2::timestamptz "
                "WHERE stack_id = ($1::jsonb->>'id')::uuid AND revision = ($1::jsonb->>'revision')::int",
                2, p);
    } else if (strcmp(type, "deploy_failed") == 0) {
        rc = store_tx_exec(tx,
                           "UPDATE stacks SET status = 'failed', status_reason = $1::jsonb->>'reason', "
                           "pending_revision = NULL, pending_job = NULL, "
                           "updated_at = $2::timestamptz WHERE id = ($1::jsonb->>'id')::uuid",
                           2, p);
        if (rc == 0)
            rc = store_tx_exec(
                tx,
                "UPDATE stack_revisions SET plan = coalesce($1::jsonb->'plan', plan), "
                "deploy_status = CASE WHEN ($1::jsonb->>'rolled_back')::boolean THEN 'rolled_back' ELSE "
                "'failed' END, "
                "deploy_reason = $1::jsonb->>'reason' "
                "WHERE stack_id = ($1::jsonb->>'id')::uuid AND revision = ($1::jsonb->>'revision')::int",
                1, p);
    } else if (strcmp(type, "scaled") == 0) {
        rc = store_tx_exec(tx,
                           "UPDATE stacks SET scale = scale || jsonb_build_object($1::jsonb->>'service', "
                           "($1::jsonb->>'replicas')::int), updated_at = $2::timestamptz "
                           "WHERE id = ($1::jsonb->>'id')::uuid",
                           2, p);
    } else if (strcmp(type, "stopped") == 0 || strcmp(type, "started") == 0 || strcmp(type, "down") == 0) {
        const char *q[3] = {doc, ev->occurred_at,
                            strcmp(type, "stopped") == 0 ? "stopped"
                            : strcmp(type, "down") == 0  ? "down"
                                                         : "deployed"};
        rc = store_tx_exec(tx,
                           "UPDATE stacks SET status = $3, updated_at = $2::timestamptz "
                           "WHERE id = ($1::jsonb->>'id')::uuid",
                           3, q);
    } else if (strcmp(type, "deleted") == 0) {
        const char *q[1] = {id};
        rc = store_tx_exec(tx, "DELETE FROM stacks WHERE id = $1::uuid", 1, q);
        if (rc == 0)
            rc = store_tx_exec(tx, "DELETE FROM stack_revisions WHERE stack_id = $1::uuid", 1, q);
        if (rc == 0)
            rc = store_tx_exec(tx, "DELETE FROM stack_secrets WHERE stack_id = $1::uuid", 1, q);
    }
    free(doc);
    return rc;
}

static struct store_stmt q_get = STORE_STMT("SELECT row_to_json(s)::text FROM stacks s WHERE id = $1::uuid");
static struct store_stmt q_list =
    STORE_STMT("SELECT coalesce(json_agg(s ORDER BY s.name, s.node_id), '[]'::json)::text FROM stacks s");
static struct store_stmt q_rev = STORE_STMT(
    "SELECT row_to_json(r)::text FROM stack_revisions r WHERE stack_id = $1::uuid AND revision = $2::int");
static struct store_stmt q_revs = STORE_STMT(
    "SELECT coalesce(json_agg(json_build_object('revision', revision, 'created_at', created_at, "
    "'created_by', created_by, 'deploy_status', deploy_status, 'deploy_reason', deploy_reason, "
    "'deployed_at', deployed_at, 'rollback_of', rollback_of, 'digests', digests) ORDER BY revision DESC), "
    "'[]'::json)::text FROM stack_revisions WHERE stack_id = $1::uuid");
static struct store_stmt q_secret_put =
    STORE_STMT("INSERT INTO stack_secrets (stack_id, revision, sealed) VALUES ($1::uuid, $2::int, $3) "
               "ON CONFLICT (stack_id, revision) DO UPDATE SET sealed = EXCLUDED.sealed");
static struct store_stmt q_secret_get =
    STORE_STMT("SELECT sealed FROM stack_secrets WHERE stack_id = $1::uuid AND revision = $2::int");
static struct store_stmt q_secret_del =
    STORE_STMT("DELETE FROM stack_secrets WHERE stack_id = $1::uuid AND revision = $2::int");

static int one_json(struct store *st, struct store_stmt *q, int n, const char *const *p, json_t **out,
                    const char *what, struct sb_err *err)
{
    *out = NULL;
    PGresult *r;
    int rc = store_query(st, q, n, p, &r, err);
    if (rc == 0 && PQntuples(r) == 0)
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

int store_stack_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such stack");
    const char *p[1] = {id};
    return one_json(st, &q_get, 1, p, out, "stack", err);
}

int store_stack_list(struct store *st, json_t **out, struct sb_err *err)
{
    return one_json(st, &q_list, 0, NULL, out, "stack", err);
}

int store_stack_revision_get(struct store *st, const char *id, int revision, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!uuid_valid(id) || revision < 1)
        return sb_error(err, SB_ENOTFOUND, "no such revision");
    char rev[16];
    snprintf(rev, sizeof rev, "%d", revision);
    const char *p[2] = {id, rev};
    return one_json(st, &q_rev, 2, p, out, "revision", err);
}

int store_stack_revisions_list(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    const char *p[1] = {id};
    return one_json(st, &q_revs, 1, p, out, "stack", err);
}

int store_stack_secret_put(struct store *st, const char *id, int revision, const char *sealed,
                           struct sb_err *err)
{
    char rev[16];
    snprintf(rev, sizeof rev, "%d", revision);
    const char *p[3] = {id, rev, sealed};
    PGresult *r;
    int rc = store_query(st, &q_secret_put, 3, p, &r, err);
    PQclear(r);
    return rc;
}

int store_stack_secret_delete(struct store *st, const char *id, int revision, struct sb_err *err)
{
    char rev[16];
    snprintf(rev, sizeof rev, "%d", revision);
    const char *p[2] = {id, rev};
    PGresult *r;
    int rc = store_query(st, &q_secret_del, 2, p, &r, err);
    PQclear(r);
    return rc;
}

int store_stack_secret_get(struct store *st, const char *id, int revision, char **sealed, struct sb_err *err)
{
    *sealed = NULL;
    char rev[16];
    snprintf(rev, sizeof rev, "%d", revision);
    const char *p[2] = {id, rev};
    PGresult *r;
    int rc = store_query(st, &q_secret_get, 2, p, &r, err);
    if (rc == 0 && PQntuples(r) == 1)
        *sealed = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}
