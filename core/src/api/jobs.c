/*
 * The jobs API: durable long-running work (core/src/jobs/README.md).
 *
 * GET  /api/v1/jobs?kind=&state=&target=&before=&limit=   newest first, paged by `before`
 * GET  /api/v1/jobs/{id}
 * POST /api/v1/jobs/{id}/cancel
 * POST /api/v1/jobs/test  only with --job-test-kinds (black-box tests); 404 otherwise
 *
 * A caller with a node-label selector sees only jobs of nodes in its scope
 * (a job of no node is outside every scope).
 */
#include "api.h"

#include "../jobs/jobs.h"

#include <string.h>

static bool scoped(const struct http_request *req)
{
    const struct api_caller *c = req->user;
    return c && c->node_labels && json_object_size(c->node_labels) > 0;
}

/* Replies 404 (and returns false) when the caller may not see this job. */
static bool job_visible(struct http_request *req, json_t *job)
{
    if (!scoped(req))
        return true;
    const char *node = json_string_value(json_object_get(job, "node_id"));
    json_t *row = NULL;
    struct app *app = req->app;
    struct sb_err err = {0};
    bool ok = node && store_node_get(app->store, node, &row, &err) == 0 &&
              api_node_visible(req, json_object_get(row, "labels"));
    json_decref(row);
    if (!ok)
        http_reply_error(req, 404, "not_found", "no such job");
    return ok;
}

static bool filter_ok(struct http_request *req, const char *name, const char *v, size_t max)
{
    if (!v)
        return true;
    size_t n = strlen(v);
    bool ok = n > 0 && n <= max;
    for (const char *p = v; ok && *p; p++)
        ok = (unsigned char)*p >= 0x20;
    if (!ok)
        http_reply_error(req, 400, "bad_parameter",
                         "query parameter '%s' must be 1 to %zu printable characters", name, max);
    return ok;
}

void api_jobs_list(struct http_request *req)
{
    struct app *app = req->app;
    const char *kind = http_query(req, "kind"), *state = http_query(req, "state"),
               *target = http_query(req, "target");
    if (!filter_ok(req, "kind", kind, 63) || !filter_ok(req, "state", state, 16) ||
        !filter_ok(req, "target", target, 200))
        return;
    static const char *const states[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    bool known = !state;
    for (size_t i = 0; !known && i < sizeof states / sizeof states[0]; i++)
        known = strcmp(state, states[i]) == 0;
    if (!known) {
        http_reply_error(req, 400, "bad_parameter",
                         "state must be one of queued, running, succeeded, failed, cancelled");
        return;
    }
    long before, limit;
    if (http_query_int(req, "before", 0, 0, INT64_MAX / 2, &before) ||
        http_query_int(req, "limit", 50, 1, 500, &limit))
        return;
    struct sb_err err = {0};
    json_t *visible = NULL;
    if (scoped(req)) {
        json_t *nodes = NULL;
        if (store_node_list(app->store, &nodes, &err)) {
            api_fail(req, &err);
            return;
        }
        visible = json_array();
        size_t i;
        json_t *n;
        json_array_foreach(nodes, i, n) if (api_node_visible(req, json_object_get(n, "labels")))
            json_array_append(visible, json_object_get(n, "id"));
        json_decref(nodes);
    }
    struct store_jobs_filter f = {.kind = kind,
                                  .state = state,
                                  .target = target,
                                  .node_ids = visible,
                                  .before_seq = before,
                                  .limit = (int)limit};
    json_t *jobs = NULL;
    int rc = jobs_list(app->jobs, &f, &jobs, &err);
    json_decref(visible);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    size_t n = json_array_size(jobs);
    json_t *last = n == (size_t)limit ? json_object_get(json_array_get(jobs, n - 1), "seq") : NULL;
    json_t *o = json_pack("{s:o, s:O}", "jobs", jobs, "next_before", last ? last : json_null());
    http_reply_json(req, 200, o);
}

void api_job_get(struct http_request *req)
{
    struct app *app = req->app;
    json_t *job = NULL;
    struct sb_err err = {0};
    if (jobs_get(app->jobs, http_param(req, "id"), &job, &err)) {
        api_fail(req, &err);
        return;
    }
    if (job_visible(req, job))
        http_reply_json(req, 200, json_pack("{s:o}", "job", job));
    else
        json_decref(job);
}

void api_job_cancel(struct http_request *req)
{
    struct app *app = req->app;
    json_t *job = NULL;
    struct sb_err err = {0};
    const char *id = http_param(req, "id");
    if (jobs_get(app->jobs, id, &job, &err)) {
        api_fail(req, &err);
        return;
    }
    bool ok = job_visible(req, job);
    json_decref(job);
    if (!ok)
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    if (jobs_cancel(app->jobs, id, &actor, &job, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:o}", "job", job));
}

/* Test kinds (--job-test-kinds): {"kind": "test.sleep", "args": {...},
 * "concurrency_key": "...", "node_id": "..."}. */
void api_job_test_create(struct http_request *req)
{
    struct app *app = req->app;
    if (!app->job_test_kinds) {
        http_reply_error(req, 404, "not_found", "test job kinds are not enabled");
        return;
    }
    static const char *const allowed[] = {"kind", "args", "concurrency_key", "target", NULL};
    if (api_check_fields(req, allowed))
        return;
    json_t *body = req->json;
    const char *kind = json_string_value(json_object_get(body, "kind"));
    json_t *args = json_object_get(body, "args");
    if (!kind || strncmp(kind, "test.", 5) != 0) {
        http_reply_error(req, 422, "invalid", "kind must be a test kind");
        return;
    }
    if (args && !json_is_object(args)) {
        http_reply_error(req, 422, "invalid", "args must be an object");
        return;
    }
    struct jobs_new in = {.kind = kind,
                          .target = json_string_value(json_object_get(body, "target")),
                          .concurrency_key = json_string_value(json_object_get(body, "concurrency_key")),
                          .args = args};
    api_actor(req, &in.actor);
    json_t *job = NULL;
    struct sb_err err = {0};
    if (jobs_enqueue(app->jobs, &in, &job, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 202, json_pack("{s:o}", "job", job));
}
