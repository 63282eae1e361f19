/*
 * GitOps apps: the projection of the app.* events (migrations/0015_apps.sql),
 * its queries, the sealed secrets beside it and the deployments' logs
 * (neither of which is a projection).
 *
 * Events (stream app/<id>, data):
 *   app.created          {id, name, node_id, repo_url, branch, subdir, port, health_path,
 *                         health_timeout_s, domain, route_port, memory, nano_cpus, variables, secret_names,
 * by} app.updated          {id, and any of the fields above that changed} app.deleted          {id, name}
 *   app.deploy_requested {id, deployment_id, kind, trigger, rollback_of?, commit?, image?,
 *                         image_id?, requested_by}
 *   app.deploy_step      {id, deployment_id, job_id, step, commit?, detector?, dockerfile?,
 *                         image?, image_id?, container_id?, host_port?}
 *   app.deployed         {id, deployment_id, job_id, commit, image, image_id, container_id, host_port}
 *   app.deploy_failed    {id, deployment_id, job_id?, step, reason, rolled_back, log_tail}
 *                        (outcome failure)
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int project_apps(struct store_tx *tx, const struct store_event *ev)
{
    const char *type;
    const char *id = project_subject(ev, 4, "deploy_failed", &type);
    if (!id)
        return 0;
    char *doc = json_dumps(ev->data, JSON_COMPACT);
    /* $3 is the time as text for the steps list: a parameter's type comes
     * from its first use, and $2 is also used as a timestamptz */
    const char *p[3] = {doc, ev->occurred_at, ev->occurred_at};
    int rc = 0;
    if (strcmp(type, "created") == 0) {
        rc = store_tx_exec(
            tx,
            "INSERT INTO apps (id, name, node_id, repo_url, branch, subdir, port, health_path, "
            "health_timeout_s, domain, route_port, memory, nano_cpus, variables, secret_names, created_by, "
            "created_at, "
            "updated_at) SELECT (d->>'id')::uuid, d->>'name', d->>'node_id', d->>'repo_url', d->>'branch', "
            "coalesce(d->>'subdir', ''), (d->>'port')::int, d->>'health_path', "
            "(d->>'health_timeout_s')::int, "
            "d->>'domain', (d->>'route_port')::int, (d->>'memory')::bigint, (d->>'nano_cpus')::bigint, "
            "coalesce(d->'variables', '{}'), "
            "coalesce(d->'secret_names', '[]'), d->>'by', $2::timestamptz, $2::timestamptz "
            "FROM (SELECT $1::jsonb AS d) x",
            2, p);
        if (rc == 0)
            rc =
                store_tx_exec(tx,
                              "UPDATE apps SET deploy_key_public = $1::jsonb->>'deploy_key_public', "
                              "git_host_key = $1::jsonb->>'git_host_key' WHERE id = ($1::jsonb->>'id')::uuid",
                              1, p);
    } else if (strcmp(type, "updated") == 0) {
        rc = store_tx_exec(
            tx,
            "UPDATE apps a SET name = coalesce(d->>'name', a.name), repo_url = coalesce(d->>'repo_url', "
            "a.repo_url), branch = coalesce(d->>'branch', a.branch), subdir = coalesce(d->>'subdir', "
            "a.subdir), "
            "port = coalesce((d->>'port')::int, a.port), health_path = coalesce(d->>'health_path', "
            "a.health_path), health_timeout_s = coalesce((d->>'health_timeout_s')::int, a.health_timeout_s), "
            "domain = CASE WHEN d ? 'domain' THEN d->>'domain' ELSE a.domain END, "
            "route_port = CASE WHEN d ? 'route_port' THEN (d->>'route_port')::int ELSE a.route_port END, "
            "memory = CASE WHEN d ? 'memory' THEN (d->>'memory')::bigint ELSE a.memory END, "
            "nano_cpus = CASE WHEN d ? 'nano_cpus' THEN (d->>'nano_cpus')::bigint ELSE a.nano_cpus END, "
            "variables = coalesce(d->'variables', a.variables), "
            "secret_names = coalesce(d->'secret_names', a.secret_names), "
            "deploy_key_public = CASE WHEN d ? 'deploy_key_public' THEN d->>'deploy_key_public' "
            "ELSE a.deploy_key_public END, "
            "git_host_key = CASE WHEN d ? 'git_host_key' THEN d->>'git_host_key' ELSE a.git_host_key END, "
            "updated_at = $2::timestamptz "
            "FROM (SELECT $1::jsonb AS d) x WHERE a.id = (d->>'id')::uuid",
            2, p);
    } else if (strcmp(type, "host_key_pinned") == 0) {
        rc = store_tx_exec(
            tx,
            "UPDATE apps SET git_host_key = $1::jsonb->>'git_host_key', updated_at = $2::timestamptz "
            "WHERE id = ($1::jsonb->>'id')::uuid",
            2, p);
    } else if (strcmp(type, "deleted") == 0) {
        const char *q[1] = {id};
        rc = store_tx_exec(tx, "DELETE FROM apps WHERE id = $1::uuid", 1, q);
        if (rc == 0)
            rc = store_tx_exec(tx,
                               "DELETE FROM app_deployment_logs WHERE deployment_id IN "
                               "(SELECT id FROM app_deployments WHERE app_id = $1::uuid)",
                               1, q);
        if (rc == 0)
            rc = store_tx_exec(tx, "DELETE FROM app_deployments WHERE app_id = $1::uuid", 1, q);
        if (rc == 0)
            rc = store_tx_exec(tx, "DELETE FROM app_secrets WHERE app_id = $1::uuid", 1, q);
    } else if (strcmp(type, "deploy_requested") == 0) {
        rc = store_tx_exec(
            tx,
            "INSERT INTO app_deployments (id, app_id, kind, trigger, rollback_of, status, commit, image, "
            "image_id, requested_by, steps, created_at) SELECT (d->>'deployment_id')::uuid, "
            "(d->>'id')::uuid, "
            "d->>'kind', d->>'trigger', (d->>'rollback_of')::uuid, 'queued', d->>'commit', d->>'image', "
            "d->>'image_id', d->'requested_by', jsonb_build_array(jsonb_build_object('step', 'queued', "
            "'at', $3::text)), $2::timestamptz FROM (SELECT $1::jsonb AS d) x",
            3, p);
        if (rc == 0)
            rc = store_tx_exec(tx,
                               "UPDATE apps SET status = 'deploying', status_reason = NULL, "
                               "updated_at = $2::timestamptz WHERE id = ($1::jsonb->>'id')::uuid",
                               2, p);
    } else if (strcmp(type, "deploy_step") == 0) {
        rc = store_tx_exec(
            tx,
            "UPDATE app_deployments a SET status = 'running', step = d->>'step', "
            "job_id = coalesce(d->>'job_id', a.job_id), commit = coalesce(d->>'commit', a.commit), "
            "detector = coalesce(d->>'detector', a.detector), dockerfile = coalesce(d->>'dockerfile', "
            "a.dockerfile), image = coalesce(d->>'image', a.image), image_id = coalesce(d->>'image_id', "
            "a.image_id), container_id = coalesce(d->>'container_id', a.container_id), "
            "host_port = coalesce((d->>'host_port')::int, a.host_port), "
            "steps = a.steps || jsonb_build_array((d - 'id' - 'deployment_id' - 'job_id' - 'dockerfile') "
            "|| jsonb_build_object('at', $2::text)) "
            "FROM (SELECT $1::jsonb AS d) x WHERE a.id = (d->>'deployment_id')::uuid",
            2, p);
    } else if (strcmp(type, "deployed") == 0) {
        rc = store_tx_exec(
            tx,
            "UPDATE app_deployments a SET status = 'succeeded', step = 'done', reason = NULL, "
            "commit = coalesce(d->>'commit', a.commit), image = coalesce(d->>'image', a.image), "
            "image_id = coalesce(d->>'image_id', a.image_id), container_id = d->>'container_id', "
            "host_port = (d->>'host_port')::int, finished_at = $2::timestamptz, "
            "steps = a.steps || jsonb_build_array(jsonb_build_object('step', 'done', 'at', $3::text)) "
            "FROM (SELECT $1::jsonb AS d) x WHERE a.id = (d->>'deployment_id')::uuid",
            3, p);
        if (rc == 0)
            rc = store_tx_exec(
                tx,
                "UPDATE apps a SET status = 'running', status_reason = NULL, current_deployment = "
                "(d->>'deployment_id')::uuid, current_commit = d->>'commit', current_image = d->>'image', "
                "current_container = d->>'container_id', host_port = (d->>'host_port')::int, "
                "updated_at = $2::timestamptz FROM (SELECT $1::jsonb AS d) x WHERE a.id = (d->>'id')::uuid",
                2, p);
    } else if (strcmp(type, "deploy_failed") == 0) {
        rc = store_tx_exec(
            tx,
            "UPDATE app_deployments a SET status = 'failed', reason = d->>'reason', "
            "step = coalesce(d->>'step', a.step), rolled_back = coalesce((d->>'rolled_back')::boolean, "
            "false), "
            "log_tail = d->'log_tail', finished_at = $2::timestamptz, "
            "steps = a.steps || jsonb_build_array(jsonb_build_object('step', 'failed', 'at', $3::text)) "
            "FROM (SELECT $1::jsonb AS d) x WHERE a.id = (d->>'deployment_id')::uuid",
            3, p);
        /* the app keeps serving its current deployment, if it has one */
        if (rc == 0)
            rc = store_tx_exec(tx,
                               "UPDATE apps SET status = CASE WHEN current_deployment IS NULL THEN 'failed' "
                               "ELSE 'running' END, status_reason = $1::jsonb->>'reason', "
                               "updated_at = $2::timestamptz WHERE id = ($1::jsonb->>'id')::uuid",
                               2, p);
    }
    free(doc);
    return rc;
}

static struct store_stmt q_get = STORE_STMT("SELECT row_to_json(a)::text FROM apps a WHERE id = $1::uuid");
static struct store_stmt q_list =
    STORE_STMT("SELECT coalesce(json_agg(a ORDER BY a.name), '[]'::json)::text FROM apps a");
static struct store_stmt q_dep =
    STORE_STMT("SELECT row_to_json(d)::text FROM app_deployments d WHERE id = $1::uuid");
static struct store_stmt q_deps =
    STORE_STMT("SELECT coalesce(json_agg(d ORDER BY d.created_at DESC), '[]'::json)::text FROM "
               "(SELECT id, app_id, kind, trigger, rollback_of, job_id, status, step, commit, image, "
               "image_id, detector, "
               "container_id, host_port, reason, rolled_back, requested_by, created_at, finished_at "
               "FROM app_deployments WHERE app_id = $1::uuid ORDER BY created_at DESC LIMIT $2::int) d");
static struct store_stmt q_secret_put =
    STORE_STMT("INSERT INTO app_secrets (app_id, sealed) VALUES ($1::uuid, $2) "
               "ON CONFLICT (app_id) DO UPDATE SET sealed = EXCLUDED.sealed");
static struct store_stmt q_secret_get = STORE_STMT("SELECT sealed FROM app_secrets WHERE app_id = $1::uuid");
static struct store_stmt q_secret_del = STORE_STMT("DELETE FROM app_secrets WHERE app_id = $1::uuid");
static struct store_stmt q_log_put =
    STORE_STMT("INSERT INTO app_deployment_logs (deployment_id, log) VALUES ($1::uuid, $2) "
               "ON CONFLICT (deployment_id) DO UPDATE SET log = EXCLUDED.log");
static struct store_stmt q_log_get =
    STORE_STMT("SELECT log FROM app_deployment_logs WHERE deployment_id = $1::uuid");

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

static int one_text(struct store *st, struct store_stmt *q, const char *id, char **out, struct sb_err *err)
{
    *out = NULL;
    const char *p[1] = {id};
    PGresult *r;
    int rc = store_query(st, q, 1, p, &r, err);
    if (rc == 0 && PQntuples(r) == 1) {
        *out = strdup(PQgetvalue(r, 0, 0));
        if (!*out)
            rc = sb_error(err, SB_ENOMEM, "out of memory");
    }
    PQclear(r);
    return rc;
}

static int exec_simple(struct store *st, struct store_stmt *q, int n, const char *const *p,
                       struct sb_err *err)
{
    PGresult *r;
    int rc = store_query(st, q, n, p, &r, err);
    PQclear(r);
    return rc;
}

int store_app_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!id || !uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such app");
    const char *p[1] = {id};
    return one_json(st, &q_get, 1, p, out, "app", err);
}

int store_app_list(struct store *st, json_t **out, struct sb_err *err)
{
    return one_json(st, &q_list, 0, NULL, out, "app", err);
}

int store_app_deployment_get(struct store *st, const char *id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!id || !uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such deployment");
    const char *p[1] = {id};
    return one_json(st, &q_dep, 1, p, out, "deployment", err);
}

int store_app_deployments_list(struct store *st, const char *app_id, int limit, json_t **out,
                               struct sb_err *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 50);
    const char *p[2] = {app_id, lim};
    return one_json(st, &q_deps, 2, p, out, "app", err);
}

int store_app_secret_put(struct store *st, const char *app_id, const char *sealed, struct sb_err *err)
{
    const char *p[2] = {app_id, sealed};
    return exec_simple(st, &q_secret_put, 2, p, err);
}

int store_app_secret_get(struct store *st, const char *app_id, char **sealed, struct sb_err *err)
{
    return one_text(st, &q_secret_get, app_id, sealed, err);
}

int store_app_secret_delete(struct store *st, const char *app_id, struct sb_err *err)
{
    const char *p[1] = {app_id};
    return exec_simple(st, &q_secret_del, 1, p, err);
}

int store_app_log_put(struct store *st, const char *deployment_id, const char *log, struct sb_err *err)
{
    const char *p[2] = {deployment_id, log};
    return exec_simple(st, &q_log_put, 2, p, err);
}

int store_app_log_get(struct store *st, const char *deployment_id, char **log, struct sb_err *err)
{
    return one_text(st, &q_log_get, deployment_id, log, err);
}
