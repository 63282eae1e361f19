/*
 * /api/v1/backups — restic repositories, plans, runs, snapshots and volume
 * restores (backups/). Handlers parse, check scope, call the service and
 * reply; runs, restores and checks are jobs (202 {"job"}).
 *
 * Scope: a plan or run of a stack lives on the stack's node; a caller whose
 * node-label scope does not cover it does not see it (404), in lists as in
 * every route, nor the snapshots of that node. The control plane and the
 * repositories are the whole fleet's: a label-scoped caller may read the
 * repositories (they name no node) but not add or remove one, and sees no
 * control-plane plan, run or snapshot.
 *
 * The repository password is answered as "********", never in events.
 */
#include "api.h"

#include "../docker/docker.h"

#include <stdio.h>
#include <string.h>

void api_backup_repos_list(struct http_request *req);
void api_backup_repo_create(struct http_request *req);
void api_backup_repo_delete(struct http_request *req);
void api_backup_repo_check(struct http_request *req);
void api_backup_snapshots(struct http_request *req);
void api_backup_plans_list(struct http_request *req);
void api_backup_plan_create(struct http_request *req);
void api_backup_plan_get(struct http_request *req);
void api_backup_plan_delete(struct http_request *req);
void api_backup_plan_run(struct http_request *req);
void api_backup_runs_list(struct http_request *req);
void api_backup_run_get(struct http_request *req);
void api_backup_restore(struct http_request *req);
void api_backup_plan_restore_test(struct http_request *req);
void api_backup_plan_update(struct http_request *req);

static bool scoped(const struct http_request *req)
{
    const struct api_caller *c = req->user;
    return c && c->node_labels && json_object_size(c->node_labels) > 0;
}

static bool node_visible(struct http_request *req, const char *node_id)
{
    struct app *app = req->app;
    if (!node_id)
        return !scoped(req); /* the control plane: the whole fleet's */
    if (strcmp(node_id, DOCKER_LOCAL_NODE) == 0)
        return api_node_visible(req, NULL);
    json_t *n = NULL;
    struct sb_err err = {0};
    bool ok = store_node_get(app->store, node_id, &n, &err) == 0 &&
              api_node_visible(req, json_object_get(n, "labels"));
    json_decref(n);
    return ok;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool fleet_only(struct http_request *req)
{
    if (!scoped(req))
        return true;
    http_reply_error(
        req, 403, "forbidden",
        "repositories and the control plane are the whole fleet's: a caller limited to some nodes "
        "cannot change them");
    return false;
}

/* Loads {id} of `what` if the caller may see it; else replies. */
static int load(struct http_request *req, const char *what, json_t **out)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    int rc = store_backup_get(app->store, what, http_param(req, "id"), out, &err);
    if (rc == 0 && strcmp(what, "repository") != 0 && !node_visible(req, str(*out, "node_id"))) {
        json_decref(*out);
        *out = NULL;
        rc = sb_error(&err, SB_ENOTFOUND, "no such %s", what);
    }
    return rc ? api_fail(req, &err) : 0;
}

/* ---- repositories --------------------------------------------------------- */

void api_backup_repos_list(struct http_request *req)
{
    struct app *app = req->app;
    json_t *rows = NULL;
    struct sb_err err = {0};
    if (store_backup_list(app->store, "repository", NULL, 0, &rows, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) json_array_append_new(out, backups_repo_view(r));
    json_decref(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "repositories", out));
}

void api_backup_repo_create(struct http_request *req)
{
    static const char *const allowed[] = {"name", "kind",        "path",        "host",     "port",
                                          "user", "private_key", "known_hosts", "password", NULL};
    if (api_check_fields(req, allowed) || !fleet_only(req))
        return;
    struct app *app = req->app;
    struct event_actor a;
    api_actor(req, &a);
    json_t *out = NULL;
    struct sb_err err = {0};
    if (backups_repo_create(&app->backups, req->json, &a, &out, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 201, out);
}

void api_backup_repo_delete(struct http_request *req)
{
    if (!fleet_only(req))
        return;
    struct app *app = req->app;
    json_t *repo = NULL;
    if (load(req, "repository", &repo))
        return;
    json_decref(repo);
    struct event_actor a;
    api_actor(req, &a);
    struct sb_err err = {0};
    if (backups_repo_delete(&app->backups, http_param(req, "id"), &a, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:s,s:b}", "id", http_param(req, "id"), "deleted", 1));
}

void api_backup_repo_check(struct http_request *req)
{
    if (!fleet_only(req))
        return;
    struct app *app = req->app;
    json_t *repo = NULL;
    if (load(req, "repository", &repo))
        return;
    json_decref(repo);
    struct event_actor a;
    api_actor(req, &a);
    json_t *job = NULL;
    struct sb_err err = {0};
    if (backups_check(&app->backups, http_param(req, "id"), &a, &job, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 202, json_pack("{s:o}", "job", job));
}

static json_t *visible_snapshots(struct http_request *req, json_t *all)
{
    json_t *out = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s) if (node_visible(req, str(s, "node_id"))) json_array_append(out, s);
    return out;
}

void api_backup_snapshots(struct http_request *req)
{
    struct app *app = req->app;
    json_t *repo = NULL;
    if (load(req, "repository", &repo))
        return;
    json_decref(repo);
    json_t *all = NULL;
    struct sb_err err = {0};
    if (backups_snapshots(&app->backups, http_param(req, "id"), &all, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = visible_snapshots(req, all);
    json_decref(all);
    http_reply_json(req, 200, json_pack("{s:o}", "snapshots", out));
}

/* ---- plans ------------------------------------------------------------------ */

void api_backup_plans_list(struct http_request *req)
{
    struct app *app = req->app;
    json_t *rows = NULL;
    struct sb_err err = {0};
    if (store_backup_list(app->store, "plan", NULL, 0, &rows, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(rows, i, p) if (node_visible(req, str(p, "node_id")))
        json_array_append_new(out, backups_plan_view(p));
    json_decref(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "plans", out));
}

void api_backup_plan_create(struct http_request *req)
{
    static const char *const allowed[] = {
        "name",     "repository_id", "control_plane", "stack_id",       "volumes",
        "schedule", "retention",     "restore_test",  "pause_services", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *stack = NULL;
    json_t *sid = json_object_get(req->json, "stack_id");
    if (sid && !json_is_null(sid)) {
        if (!json_is_string(sid) || store_stack_get(app->store, json_string_value(sid), &stack, &err) ||
            !node_visible(req, str(stack, "node_id"))) {
            json_decref(stack);
            http_reply_error(req, 422, "validation_failed", "stack_id names no stack");
            return;
        }
    }
    if (json_is_true(json_object_get(req->json, "control_plane")) && !fleet_only(req)) {
        json_decref(stack);
        return;
    }
    struct event_actor a;
    api_actor(req, &a);
    json_t *out = NULL;
    int rc = backups_plan_create(&app->backups, req->json, stack, &a, &out, &err);
    json_decref(stack);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 201, out);
}

void api_backup_plan_get(struct http_request *req)
{
    struct app *app = req->app;
    json_t *plan = NULL;
    if (load(req, "plan", &plan))
        return;
    json_t *runs = NULL;
    struct sb_err err = {0};
    if (store_backup_list(app->store, "run", str(plan, "id"), 20, &runs, &err)) {
        json_decref(plan);
        api_fail(req, &err);
        return;
    }
    json_t *v = backups_plan_view(plan);
    json_decref(plan);
    json_object_set_new(v, "runs", runs);
    http_reply_json(req, 200, v);
}

void api_backup_plan_update(struct http_request *req)
{
    static const char *const allowed[] = {"name",   "schedule", "restore_test",   "retention",
                                          "paused", "volumes",  "pause_services", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    json_t *plan = NULL;
    if (load(req, "plan", &plan))
        return;
    /* Its retention and schedule are the control plane's too: fleet-wide callers only. */
    if (json_is_true(json_object_get(json_object_get(plan, "what"), "control_plane")) && !fleet_only(req)) {
        json_decref(plan);
        return;
    }
    struct event_actor a;
    api_actor(req, &a);
    json_t *out = NULL;
    struct sb_err err = {0};
    int rc = backups_plan_update(&app->backups, plan, req->json, &a, &out, &err);
    json_decref(plan);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, out);
}

void api_backup_plan_delete(struct http_request *req)
{
    struct app *app = req->app;
    json_t *plan = NULL;
    if (load(req, "plan", &plan))
        return;
    json_decref(plan);
    struct event_actor a;
    api_actor(req, &a);
    struct sb_err err = {0};
    if (backups_plan_delete(&app->backups, http_param(req, "id"), &a, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:s,s:b}", "id", http_param(req, "id"), "deleted", 1));
}

typedef int (*plan_job_fn)(struct backups_env *e, json_t *plan, const char *trigger,
                           const struct event_actor *actor, json_t **job, struct sb_err *err);

/* Queues a job about the plan of the path, asked for by the caller: 202 {job}. */
static void plan_job_reply(struct http_request *req, plan_job_fn fn)
{
    struct app *app = req->app;
    json_t *plan = NULL;
    if (load(req, "plan", &plan))
        return;
    struct event_actor a;
    api_actor(req, &a);
    json_t *job = NULL;
    struct sb_err err = {0};
    int rc = fn(&app->backups, plan, "manual", &a, &job, &err);
    json_decref(plan);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 202, json_pack("{s:o}", "job", job));
}

void api_backup_plan_run(struct http_request *req)
{
    plan_job_reply(req, backups_plan_run);
}

void api_backup_plan_restore_test(struct http_request *req)
{
    plan_job_reply(req, backups_plan_restore_test);
}

/* ---- runs ---------------------------------------------------------------------- */

void api_backup_runs_list(struct http_request *req)
{
    struct app *app = req->app;
    const char *plan = http_query(req, "plan_id");
    if (plan && !uuid_valid(plan)) {
        http_reply_error(req, 400, "bad_parameter", "plan_id is a plan's id");
        return;
    }
    long limit;
    if (http_query_int(req, "limit", 50, 1, 500, &limit))
        return;
    json_t *rows = NULL;
    struct sb_err err = {0};
    if (store_backup_list(app->store, "run", plan, (int)limit, &rows, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) if (node_visible(req, str(r, "node_id"))) json_array_append(out, r);
    json_decref(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "runs", out));
}

void api_backup_run_get(struct http_request *req)
{
    json_t *run = NULL;
    if (load(req, "run", &run))
        return;
    http_reply_json(req, 200, run);
}

/* ---- restore --------------------------------------------------------------------- */

void api_backup_restore(struct http_request *req)
{
    static const char *const allowed[] = {"repository_id", "snapshot_id", "node_id", "volume", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    const char *repo_id = str(req->json, "repository_id"), *snap_id = str(req->json, "snapshot_id"),
               *node_id = str(req->json, "node_id"), *volume = str(req->json, "volume");
    struct sb_err err = {0};
    json_t *repo = NULL;
    if (!repo_id || store_backup_get(app->store, "repository", repo_id, &repo, &err)) {
        http_reply_error(req, 422, "validation_failed", "repository_id names no repository");
        return;
    }
    json_decref(repo);
    if (!snap_id || strlen(snap_id) < 8 || strlen(snap_id) > 64 ||
        strspn(snap_id, "0123456789abcdef") != strlen(snap_id)) {
        http_reply_error(req, 422, "validation_failed", "snapshot_id is a snapshot's id (hex)");
        return;
    }
    if (json_object_get(req->json, "volume") &&
        (!volume || !*volume || strlen(volume) > 200 ||
         strspn(volume, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_.-") != strlen(volume) ||
         volume[0] == '.' || volume[0] == '-')) {
        http_reply_error(req, 422, "validation_failed", "volume is a volume name");
        return;
    }
    json_t *all = NULL;
    if (backups_snapshots(&app->backups, repo_id, &all, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *snap = NULL;
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s) if (!snap && (strcmp(str(s, "id"), snap_id) == 0 ||
                                                strncmp(str(s, "id"), snap_id, strlen(snap_id)) == 0)) snap =
        s;
    if (!snap || !node_visible(req, str(snap, "node_id"))) {
        json_decref(all);
        http_reply_error(req, 404, "not_found", "no such snapshot");
        return;
    }
    if (!str(snap, "volume") || !str(snap, "node_id")) {
        json_decref(all);
        http_reply_error(req, 422, "validation_failed",
                         "snapshot_id is a control-plane snapshot: restore it with `serverbox-core restore` "
                         "(docs in core/src/backups/README.md)");
        return;
    }
    const char *target_node = node_id ? node_id : str(snap, "node_id");
    if (!node_visible(req, target_node) ||
        (strcmp(target_node, DOCKER_LOCAL_NODE) != 0 && !uuid_valid(target_node))) {
        json_decref(all);
        http_reply_error(req, 422, "validation_failed", "node_id names no node");
        return;
    }
    struct event_actor a;
    api_actor(req, &a);
    json_t *job = NULL;
    int rc = backups_restore(&app->backups, repo_id, str(snap, "id"), target_node,
                             volume ? volume : str(snap, "volume"), &a, &job, &err);
    json_decref(all);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 202, json_pack("{s:o}", "job", job));
}
