/*
 * /api/v1/stacks — compose stacks (stacks/). Handlers parse, check, call
 * the stacks service and reply; deploys and scaling run as jobs (202).
 *
 * A stack lives on one node. A caller whose node-label scope does not cover
 * that node does not see the stack (404), in lists as in every route.
 * Variables marked secret are sealed with the master key and answered as
 * STACKS_SECRET_MASK; they never enter events.
 */
#include "api.h"

#include "../docker/docker.h"
#include "../jobs/jobs.h"
#include "docker_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_stacks_list(struct http_request *req);
void api_stack_create(struct http_request *req);
void api_stack_get(struct http_request *req);
void api_stack_update(struct http_request *req);
void api_stack_delete(struct http_request *req);
void api_stack_plan(struct http_request *req);
void api_stack_deploy(struct http_request *req);
void api_stack_revisions(struct http_request *req);
void api_stack_revision(struct http_request *req);
void api_stack_diff(struct http_request *req);
void api_stack_rollback(struct http_request *req);
void api_stack_scale(struct http_request *req);
void api_stack_service_restart(struct http_request *req);
void api_stack_stop(struct http_request *req);
void api_stack_start(struct http_request *req);
void api_stack_down(struct http_request *req);
void api_stack_service_logs(struct http_request *req);

#define ENV_FILES_MAX 20

/* The policy keys and removing volumes need the permission, not a role
 * name: a custom role may be granted it, and no name implies it. */
static bool caller_stacks_admin(struct http_request *req)
{
    return auth_caller_allows(req->user, "stacks:admin");
}

static bool node_visible(struct http_request *req, const char *node_id)
{
    struct app *app = req->app;
    if (!node_id)
        return false;
    if (strcmp(node_id, DOCKER_LOCAL_NODE) == 0)
        return api_node_visible(req, NULL);
    json_t *n = NULL;
    struct sb_err err = {0};
    bool ok = store_node_get(app->store, node_id, &n, &err) == 0 &&
              api_node_visible(req, json_object_get(n, "labels"));
    json_decref(n);
    return ok;
}

/* The {id} stack if the caller may see it; else replies and returns -1. */
static int stack_load(struct http_request *req, json_t **stack)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    int rc = store_stack_get(app->store, http_param(req, "id"), stack, &err);
    if (rc == 0 && !node_visible(req, json_string_value(json_object_get(*stack, "node_id")))) {
        json_decref(*stack);
        *stack = NULL;
        rc = sb_error(&err, SB_ENOTFOUND, "no such stack");
    }
    return rc ? api_fail(req, &err) : 0;
}

static int record(struct http_request *req, const char *id, const char *type, json_t *data,
                  const char *outcome, struct sb_err *err)
{
    struct app *app = req->app;
    char stream[64];
    snprintf(stream, sizeof stream, "stack/%s", id);
    json_object_set_new(data, "id", json_string(id));
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = outcome};
    api_actor(req, &ev.actor);
    int64_t seq;
    return store_append(app->store, &ev, &seq, err);
}

static json_t *requested_by(struct http_request *req)
{
    struct event_actor a;
    api_actor(req, &a);
    return json_pack("{s:s,s:s,s:s}", "kind", a.kind, "id", a.id ? a.id : "", "name", a.name ? a.name : "");
}

/* The stack as answered: the row, and with a revision its compose and
 * masked variables. */
static json_t *stack_view(json_t *stack, json_t *rev)
{
    json_t *v = json_deep_copy(stack);
    json_object_del(v, "pending_job");
    if (rev) {
        json_object_set(v, "compose", json_object_get(rev, "compose"));
        json_object_set_new(
            v, "variables",
            stacks_variables_masked(json_object_get(rev, "variables"), json_object_get(rev, "secret_names")));
        json_object_set(v, "secret_names", json_object_get(rev, "secret_names"));
        json_t *names = json_array();
        const char *k;
        json_t *x;
        json_object_foreach(json_object_get(rev, "env_files"), k, x)
            json_array_append_new(names, json_string(k));
        json_object_set_new(v, "env_files", names);
    }
    return v;
}

static int check_env_files(json_t *v, struct sb_err *err)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) > ENV_FILES_MAX)
        return sb_field_error(err, "env_files", "env_files is an object of at most %d file name -> content",
                              ENV_FILES_MAX);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        if (!stacks_object_name_ok(k))
            return sb_field_error(err, "env_files", "env_files: bad file name (letters, digits, _ . -)");
        if (!json_is_string(x) || json_string_length(x) > 65536)
            return sb_field_error(err, "env_files", "env_files.%.60s: content is a string of at most 64 KiB",
                                  k);
    }
    return 0;
}

/* compose + variables (clear and secret) + env files → model, checked
 * against the policy for this caller. Replies and returns -1 on failure. */
static int validate(struct http_request *req, const char *node_id, const char *compose, json_t *clear,
                    json_t *secret, json_t *env_files, json_t **model)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *vars = json_deep_copy(clear);
    json_object_update(vars, secret);
    int rc = stacks_compose_parse(compose, strlen(compose), vars, env_files, model, &err);
    json_decref(vars);
    if (rc == 0 &&
        ((rc = stacks_policy_check(*model, app->stacks.bind_base, caller_stacks_admin(req), &err)) ||
         (rc = stacks_routes_check(&app->stacks, *model, node_id, &err)))) {
        json_decref(*model);
        *model = NULL;
    }
    if (rc && strcmp(err.field, "compose") == 0 && err.code == SB_EINVAL) {
        /* YAML errors: keep the position in the message, name the field */
        return api_fail(req, &err);
    }
    return rc ? api_fail(req, &err) : 0;
}

static const char *compose_of(struct http_request *req)
{
    json_t *c = json_object_get(req->json, "compose");
    return json_string_value(c);
}

/* ---- list / get --------------------------------------------------------- */

static json_t *health_of(struct app *app, json_t *stack, json_t *model)
{
    char socket[DOCKER_SOCKET_MAX];
    struct sb_err err = {0};
    json_t *st = NULL;
    if (stacks_node_socket(&app->stacks, json_string_value(json_object_get(stack, "node_id")), socket,
                           sizeof socket, &err) ||
        stacks_status(socket, json_string_value(json_object_get(stack, "name")), model, &st, &err))
        return json_pack("{s:s,s:s}", "health", "unknown", "reason", err.msg);
    int want = 0, healthy = 0, running = 0;
    const char *k;
    json_t *s;
    json_object_foreach(st, k, s)
    {
        want += (int)json_integer_value(json_object_get(s, "desired"));
        healthy += (int)json_integer_value(json_object_get(s, "healthy"));
        running += (int)json_integer_value(json_object_get(s, "running"));
    }
    const char *h = running == 0                              ? (want ? "down" : "empty")
                    : (healthy >= want && running == healthy) ? "healthy"
                                                              : "degraded";
    return json_pack("{s:s,s:i,s:i,s:i,s:o}", "health", h, "desired", want, "running", running, "healthy",
                     healthy, "services", st);
}

static json_t *model_of(struct app *app, json_t *stack, json_t **rev_out)
{
    json_t *rev = NULL, *model = NULL;
    struct sb_err err = {0};
    if (store_stack_revision_get(app->store, json_string_value(json_object_get(stack, "id")),
                                 (int)json_integer_value(json_object_get(stack, "revision")), &rev,
                                 &err) == 0)
        stacks_revision_model(&app->stacks, stack, rev, &model, &err);
    if (rev_out)
        *rev_out = rev;
    else
        json_decref(rev);
    return model;
}

void api_stacks_list(struct http_request *req)
{
    struct app *app = req->app;
    json_t *list = NULL;
    struct sb_err err = {0};
    if (store_stack_list(app->store, &list, &err)) {
        api_fail(req, &err);
        return;
    }
    const char *node = http_query(req, "node_id");
    json_t *out = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        const char *nid = json_string_value(json_object_get(s, "node_id"));
        if (!node_visible(req, nid) || (node && strcmp(node, nid) != 0))
            continue;
        json_t *v = stack_view(s, NULL);
        json_t *model = model_of(app, s, NULL);
        json_t *h = health_of(app, s, model);
        json_object_set(v, "health", json_object_get(h, "health"));
        json_object_set_new(v, "services", json_incref(json_object_get(h, "services")) ?: json_object());
        json_decref(h);
        json_decref(model);
        json_array_append_new(out, v);
    }
    json_decref(list);
    http_reply_json(req, 200, json_pack("{s:o}", "stacks", out));
}

void api_stack_get(struct http_request *req)
{
    struct app *app = req->app;
    json_t *stack;
    if (stack_load(req, &stack))
        return;
    json_t *rev = NULL;
    json_t *model = model_of(app, stack, &rev);
    json_t *v = stack_view(stack, rev);
    json_t *h = health_of(app, stack, model);
    json_object_update(v, h);
    json_decref(h);
    json_decref(model);
    json_decref(rev);
    json_decref(stack);
    http_reply_json(req, 200, v);
}

/* ---- create / update ------------------------------------------------------ */

void api_stack_create(struct http_request *req)
{
    static const char *const allowed[] = {"name", "node_id", "compose", "variables", "env_files", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *name = json_string_value(json_object_get(req->json, "name"));
    const char *node_id = json_string_value(json_object_get(req->json, "node_id"));
    const char *compose = compose_of(req);
    if (!stacks_project_name_ok(name)) {
        sb_field_error(&err, "name", "name is 1 to %d of a-z 0-9 _ - starting with a letter or digit",
                       STACKS_NAME_MAX);
        api_fail(req, &err);
        return;
    }
    if (!node_visible(req, node_id)) {
        sb_field_error(&err, "node_id",
                       "node_id names no node you can see (\"local\" is this daemon's engine)");
        api_fail(req, &err);
        return;
    }
    if (!compose) {
        sb_field_error(&err, "compose", "compose is the compose file's text");
        api_fail(req, &err);
        return;
    }
    json_t *env_files = json_object_get(req->json, "env_files");
    if (check_env_files(env_files, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *clear, *secret, *model = NULL;
    if (stacks_variables_split(json_object_get(req->json, "variables"), NULL, &clear, &secret, &err)) {
        api_fail(req, &err);
        return;
    }
    if (validate(req, node_id, compose, clear, secret, env_files, &model))
        goto out;
    char id[37];
    uuid_v4(id);
    if (stacks_revision_secrets_put(&app->stacks, id, 1, secret, &err)) {
        api_fail(req, &err);
        goto out;
    }
    json_t *names = json_array();
    const char *k;
    json_t *x;
    json_object_foreach(secret, k, x) json_array_append_new(names, json_string(k));
    struct event_actor a;
    api_actor(req, &a);
    json_t *data =
        json_pack("{s:s,s:s,s:i,s:s,s:O,s:o,s:o,s:s}", "name", name, "node_id", node_id, "revision", 1,
                  "compose", compose, "variables", clear, "secret_names", names, "env_files",
                  env_files ? json_incref(env_files) : json_object(), "by", a.name ? a.name : "");
    if (record(req, id, "stack.created", data, "success", &err)) {
        struct sb_err ignore = {0};
        store_stack_secret_delete(app->store, id, 1, &ignore);
        json_decref(data);
        if (err.code == SB_ECONFLICT)
            sb_field_error(&err, "name", "a stack named %s exists on that node", name);
        if (err.code == SB_EINVAL)
            err.code = SB_ECONFLICT;
        api_fail(req, &err);
        goto out;
    }
    json_decref(data);
    json_t *stack = NULL, *rev = NULL;
    if (store_stack_get(app->store, id, &stack, &err) ||
        store_stack_revision_get(app->store, id, 1, &rev, &err)) {
        api_fail(req, &err);
    } else {
        json_t *v = stack_view(stack, rev);
        json_object_set_new(v, "services", json_deep_copy(json_object_get(model, "services")));
        http_reply_json(req, 201, v);
    }
    json_decref(stack);
    json_decref(rev);
out:
    json_decref(model);
    json_decref(clear);
    json_decref(secret);
}

/* Appends revision `revision` = the latest + 1 with this content. */
static int new_revision(struct http_request *req, json_t *stack, const char *compose, json_t *clear,
                        json_t *secret, json_t *env_files, json_t *pinned, int rollback_of, int *revision,
                        struct sb_err *err)
{
    struct app *app = req->app;
    const char *id = json_string_value(json_object_get(stack, "id"));
    int rev = (int)json_integer_value(json_object_get(stack, "revision")) + 1;
    int rc = stacks_revision_secrets_put(&app->stacks, id, rev, secret, err);
    if (rc)
        return rc;
    json_t *names = json_array();
    const char *k;
    json_t *x;
    json_object_foreach(secret, k, x) json_array_append_new(names, json_string(k));
    struct event_actor a;
    api_actor(req, &a);
    json_t *data = json_pack("{s:i,s:s,s:O,s:o,s:O,s:s}", "revision", rev, "compose", compose, "variables",
                             clear, "secret_names", names, "env_files", env_files ? env_files : json_object(),
                             "by", a.name ? a.name : "");
    if (pinned)
        json_object_set(data, "pinned_digests", pinned);
    if (rollback_of)
        json_object_set_new(data, "rollback_of", json_integer(rollback_of));
    rc = record(req, id, "stack.updated", data, "success", err);
    json_decref(data);
    if (rc) {
        struct sb_err ignore = {0};
        store_stack_secret_delete(app->store, id, rev, &ignore);
        if (rc == SB_ECONFLICT)
            sb_error(err, SB_ECONFLICT, "the stack changed meanwhile; try again");
        return rc;
    }
    *revision = rev;
    return 0;
}

/* The latest revision and its secrets. Replies and returns -1 on failure. */
static int latest(struct http_request *req, json_t *stack, int revision, json_t **rev, json_t **secret)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *id = json_string_value(json_object_get(stack, "id"));
    if (revision <= 0)
        revision = (int)json_integer_value(json_object_get(stack, "revision"));
    if (store_stack_revision_get(app->store, id, revision, rev, &err))
        return api_fail(req, &err);
    if (secret && stacks_revision_secrets(&app->stacks, id, revision, secret, &err)) {
        json_decref(*rev);
        *rev = NULL;
        return api_fail(req, &err);
    }
    return 0;
}

/* For PATCH and plan: the edited content from the body over the latest
 * revision. */
static int edited(struct http_request *req, json_t *rev, json_t *old_secret, const char **compose,
                  json_t **clear, json_t **secret, json_t **env_files)
{
    struct sb_err err = {0};
    *compose = compose_of(req);
    if (json_object_get(req->json, "compose") && !*compose) {
        sb_field_error(&err, "compose", "compose is the compose file's text");
        return api_fail(req, &err);
    }
    if (!*compose)
        *compose = json_string_value(json_object_get(rev, "compose"));
    *env_files = json_object_get(req->json, "env_files");
    if (check_env_files(*env_files, &err))
        return api_fail(req, &err);
    if (!*env_files)
        *env_files = json_object_get(rev, "env_files");
    json_t *vars = json_object_get(req->json, "variables");
    if (vars) {
        if (stacks_variables_split(vars, old_secret, clear, secret, &err))
            return api_fail(req, &err);
    } else {
        *clear = json_deep_copy(json_object_get(rev, "variables"));
        *secret = json_deep_copy(old_secret);
    }
    return 0;
}

void api_stack_update(struct http_request *req)
{
    static const char *const allowed[] = {"compose", "variables", "env_files", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    json_t *stack, *rev = NULL, *old_secret = NULL, *clear = NULL, *secret = NULL, *model = NULL, *env_files;
    const char *compose;
    if (stack_load(req, &stack))
        return;
    if (latest(req, stack, 0, &rev, &old_secret) ||
        edited(req, rev, old_secret, &compose, &clear, &secret, &env_files) ||
        validate(req, json_string_value(json_object_get(stack, "node_id")), compose, clear, secret, env_files,
                 &model))
        goto out;
    int revision;
    struct sb_err err = {0};
    if (new_revision(req, stack, compose, clear, secret, env_files, NULL, 0, &revision, &err)) {
        api_fail(req, &err);
        goto out;
    }
    json_decref(stack);
    json_decref(rev);
    stack = rev = NULL;
    if (store_stack_get(app->store, http_param(req, "id"), &stack, &err) ||
        store_stack_revision_get(app->store, http_param(req, "id"), revision, &rev, &err))
        api_fail(req, &err);
    else
        http_reply_json(req, 200, stack_view(stack, rev));
out:
    json_decref(stack);
    json_decref(rev);
    json_decref(old_secret);
    json_decref(clear);
    json_decref(secret);
    json_decref(model);
}

/* ---- plan / deploy ---------------------------------------------------------- */

void api_stack_plan(struct http_request *req)
{
    static const char *const allowed[] = {"compose", "variables", "env_files", "revision", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    json_t *stack, *rev = NULL, *old_secret = NULL, *clear = NULL, *secret = NULL, *model = NULL, *env_files,
                   *plan = NULL;
    const char *compose;
    struct sb_err err = {0};
    if (stack_load(req, &stack))
        return;
    json_t *rv = json_object_get(req->json, "revision");
    if (rv && (!json_is_integer(rv) || json_integer_value(rv) < 1)) {
        sb_field_error(&err, "revision", "revision is a revision number");
        api_fail(req, &err);
        goto out;
    }
    if (latest(req, stack, rv ? (int)json_integer_value(rv) : 0, &rev, &old_secret) ||
        edited(req, rev, old_secret, &compose, &clear, &secret, &env_files) ||
        validate(req, json_string_value(json_object_get(stack, "node_id")), compose, clear, secret, env_files,
                 &model))
        goto out;
    /* the stack's /scale overrides hold until the next revision */
    if (!json_object_get(req->json, "compose")) {
        const char *svc;
        json_t *n;
        json_object_foreach(json_object_get(stack, "scale"), svc, n)
        {
            json_t *s = json_object_get(json_object_get(model, "services"), svc);
            if (s)
                json_object_set(s, "replicas", n);
        }
    }
    if (stacks_dry_plan(&app->stacks, stack, model, json_object_get(rev, "pinned_digests"), &plan, &err)) {
        api_fail(req, &err);
        goto out;
    }
    http_reply_json(req, 200,
                    json_pack("{s:O,s:o}", "revision", json_object_get(rev, "revision"), "plan", plan));
out:
    json_decref(stack);
    json_decref(rev);
    json_decref(old_secret);
    json_decref(clear);
    json_decref(secret);
    json_decref(model);
}

static void enqueue_deploy(struct http_request *req, json_t *stack, int revision, int status, json_t *extra)
{
    struct app *app = req->app;
    const char *id = json_string_value(json_object_get(stack, "id"));
    char target[64];
    snprintf(target, sizeof target, "stack/%s", id);
    struct sb_err err = {0};
    /* recorded before the job exists, so it can never land after the job's
     * own stack.deployed */
    json_t *d = json_pack("{s:i}", "revision", revision);
    int rc = record(req, id, "stack.deploy_requested", d, "success", &err);
    json_decref(d);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    json_t *args =
        json_pack("{s:s,s:i,s:o}", "stack_id", id, "revision", revision, "requested_by", requested_by(req));
    struct jobs_new in = {.kind = "stack.deploy",
                          .target = target,
                          .node_id = json_string_value(json_object_get(stack, "node_id")),
                          .concurrency_key = target,
                          .args = args};
    api_actor(req, &in.actor);
    json_t *job = NULL;
    rc = jobs_enqueue(app->jobs, &in, &job, &err);
    json_decref(args);
    if (rc) {
        json_t *f = json_pack("{s:i,s:s,s:b}", "revision", revision, "reason", err.msg, "rolled_back", 0);
        struct sb_err e2 = {0};
        record(req, id, "stack.deploy_failed", f, "failure", &e2);
        json_decref(f);
        api_fail(req, &err);
        return;
    }
    json_t *body = json_pack("{s:o,s:i}", "job", job, "revision", revision);
    if (extra)
        json_object_update(body, extra);
    http_reply_json(req, status, body);
}

void api_stack_deploy(struct http_request *req)
{
    static const char *const allowed[] = {"revision", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    json_t *stack, *rev = NULL, *model = NULL;
    struct sb_err err = {0};
    if (stack_load(req, &stack))
        return;
    json_t *rv = json_object_get(req->json, "revision");
    if (rv && (!json_is_integer(rv) || json_integer_value(rv) < 1)) {
        sb_field_error(&err, "revision", "revision is a revision number");
        api_fail(req, &err);
        goto out;
    }
    if (latest(req, stack, rv ? (int)json_integer_value(rv) : 0, &rev, NULL))
        goto out;
    /* what it would run must pass this caller's policy now */
    if (stacks_revision_model(&app->stacks, stack, rev, &model, &err) ||
        stacks_policy_check(model, app->stacks.bind_base, caller_stacks_admin(req), &err) ||
        stacks_routes_check(&app->stacks, model, json_string_value(json_object_get(stack, "node_id")),
                            &err)) {
        api_fail(req, &err);
        goto out;
    }
    enqueue_deploy(req, stack, (int)json_integer_value(json_object_get(rev, "revision")), 202, NULL);
out:
    json_decref(stack);
    json_decref(rev);
    json_decref(model);
}

/* ---- revisions ------------------------------------------------------------- */

void api_stack_revisions(struct http_request *req)
{
    struct app *app = req->app;
    json_t *stack, *list = NULL;
    struct sb_err err = {0};
    if (stack_load(req, &stack))
        return;
    if (store_stack_revisions_list(app->store, json_string_value(json_object_get(stack, "id")), &list, &err))
        api_fail(req, &err);
    else
        http_reply_json(req, 200, json_pack("{s:o}", "revisions", list));
    json_decref(stack);
}

static int revision_param(struct http_request *req, const char *s, int *out)
{
    char *end;
    long n = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || n < 1 || n > 1000000) {
        http_reply_error(req, 404, "not_found", "no such revision");
        return -1;
    }
    *out = (int)n;
    return 0;
}

void api_stack_revision(struct http_request *req)
{
    json_t *stack, *rev = NULL;
    int n;
    if (stack_load(req, &stack))
        return;
    if (revision_param(req, http_param(req, "n"), &n) == 0 && latest(req, stack, n, &rev, NULL) == 0) {
        json_t *v = json_deep_copy(rev);
        json_object_set_new(
            v, "variables",
            stacks_variables_masked(json_object_get(rev, "variables"), json_object_get(rev, "secret_names")));
        http_reply_json(req, 200, v);
    }
    json_decref(rev);
    json_decref(stack);
}

/* A line diff (longest common subsequence), bounded. */
#define DIFF_LINES_MAX 3000
static json_t *split_lines(const char *s)
{
    json_t *arr = json_array();
    while (s && *s) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        json_array_append_new(arr, json_stringn(s, n));
        s += n + (e ? 1 : 0);
    }
    return arr;
}

static json_t *line_diff(const char *a, const char *b)
{
    json_t *la = split_lines(a), *lb = split_lines(b), *out = json_array();
    size_t n = json_array_size(la), m = json_array_size(lb);
    if (n > DIFF_LINES_MAX || m > DIFF_LINES_MAX) {
        json_array_append_new(out, json_string("@@ too many lines to diff @@"));
        goto done;
    }
    unsigned short *t = calloc((n + 1) * (m + 1), sizeof *t);
    if (!t)
        goto done;
#define T(i, j) t[(i) * (m + 1) + (j)]
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            T(i, j) = json_equal(json_array_get(la, i), json_array_get(lb, j)) ? T(i + 1, j + 1) + 1
                      : T(i + 1, j) > T(i, j + 1)                              ? T(i + 1, j)
                                                                               : T(i, j + 1);
    size_t i = 0, j = 0;
    struct buf line;
    buf_init(&line, 1 << 20);
    while (i < n || j < m) {
        buf_reset(&line);
        if (i < n && j < m && json_equal(json_array_get(la, i), json_array_get(lb, j))) {
            buf_printf(&line, " %s", json_string_value(json_array_get(la, i)));
            i++, j++;
        } else if (j < m && (i == n || T(i, j + 1) >= T(i + 1, j))) {
            buf_printf(&line, "+%s", json_string_value(json_array_get(lb, j)));
            j++;
        } else {
            buf_printf(&line, "-%s", json_string_value(json_array_get(la, i)));
            i++;
        }
        json_array_append_new(out, json_string(line.data));
    }
#undef T
    buf_release(&line);
    free(t);
done:
    json_decref(la);
    json_decref(lb);
    return out;
}

static json_t *object_diff(json_t *a, json_t *b)
{
    json_t *d = json_pack("{s:[],s:[],s:[]}", "added", "removed", "changed");
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        json_t *o = json_object_get(a, k);
        if (!o)
            json_array_append_new(json_object_get(d, "added"), json_string(k));
        else if (!json_equal(o, v))
            json_array_append_new(json_object_get(d, "changed"), json_string(k));
    }
    json_object_foreach(a, k, v) if (!json_object_get(b, k))
        json_array_append_new(json_object_get(d, "removed"), json_string(k));
    return d;
}

void api_stack_diff(struct http_request *req)
{
    struct app *app = req->app;
    json_t *stack, *ra = NULL, *rb = NULL, *sa = NULL, *sb = NULL;
    long from, to;
    if (stack_load(req, &stack))
        return;
    long latest_rev = (long)json_integer_value(json_object_get(stack, "revision"));
    if (http_query_int(req, "from", latest_rev > 1 ? latest_rev - 1 : 1, 1, 1000000, &from) ||
        http_query_int(req, "to", latest_rev, 1, 1000000, &to))
        goto out;
    if (latest(req, stack, (int)from, &ra, &sa) || latest(req, stack, (int)to, &rb, &sb))
        goto out;
    /* variables by name only: values of secrets are never answered */
    json_t *va = json_deep_copy(json_object_get(ra, "variables")),
           *vb = json_deep_copy(json_object_get(rb, "variables"));
    json_object_update(va, sa);
    json_object_update(vb, sb);
    json_t *digests = json_object();
    const char *k;
    json_t *v;
    json_t *da = json_object_get(ra, "digests"), *db = json_object_get(rb, "digests");
    json_object_foreach(db, k, v) if (!json_equal(v, json_object_get(da, k))) json_object_set_new(
        digests, k, json_pack("{s:O,s:O}", "from", json_object_get(da, k) ?: json_null(), "to", v));
    json_object_foreach(da, k, v) if (!json_object_get(db, k))
        json_object_set_new(digests, k, json_pack("{s:O,s:n}", "from", v, "to"));
    http_reply_json(req, 200,
                    json_pack("{s:I,s:I,s:o,s:o,s:o,s:o}", (const char *)"from", (json_int_t)from, "to",
                              (json_int_t)to, "compose",
                              line_diff(json_string_value(json_object_get(ra, "compose")),
                                        json_string_value(json_object_get(rb, "compose"))),
                              "variables", object_diff(va, vb), "env_files",
                              object_diff(json_object_get(ra, "env_files"), json_object_get(rb, "env_files")),
                              "digests", digests));
    json_decref(va);
    json_decref(vb);
    (void)app;
out:
    json_decref(stack);
    json_decref(ra);
    json_decref(rb);
    json_decref(sa);
    json_decref(sb);
}

void api_stack_rollback(struct http_request *req)
{
    static const char *const allowed[] = {"revision", NULL};
    if (api_check_fields(req, allowed))
        return;
    json_t *stack, *rev = NULL, *secret = NULL, *model = NULL;
    struct sb_err err = {0};
    if (stack_load(req, &stack))
        return;
    json_t *rv = json_object_get(req->json, "revision");
    if (!json_is_integer(rv) || json_integer_value(rv) < 1) {
        sb_field_error(&err, "revision", "revision is the revision number to roll back to");
        api_fail(req, &err);
        goto out;
    }
    if (latest(req, stack, (int)json_integer_value(rv), &rev, &secret))
        goto out;
    json_t *digests = json_object_get(rev, "digests");
    if (!json_is_object(digests)) {
        sb_error(&err, SB_ECONFLICT,
                 "revision %d was never deployed: it has no image digests to roll back to",
                 (int)json_integer_value(rv));
        api_fail(req, &err);
        goto out;
    }
    if (validate(req, json_string_value(json_object_get(stack, "node_id")),
                 json_string_value(json_object_get(rev, "compose")), json_object_get(rev, "variables"),
                 secret, json_object_get(rev, "env_files"), &model))
        goto out;
    int revision;
    if (new_revision(req, stack, json_string_value(json_object_get(rev, "compose")),
                     json_object_get(rev, "variables"), secret, json_object_get(rev, "env_files"), digests,
                     (int)json_integer_value(rv), &revision, &err)) {
        api_fail(req, &err);
        goto out;
    }
    json_t *extra = json_pack("{s:O}", "rollback_of", rv);
    enqueue_deploy(req, stack, revision, 202, extra);
    json_decref(extra);
out:
    json_decref(stack);
    json_decref(rev);
    json_decref(secret);
    json_decref(model);
}

/* ---- services, stop/start, down, delete ------------------------------------- */

static int stack_socket(struct http_request *req, json_t *stack, char *socket, size_t len)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    if (stacks_node_socket(&app->stacks, json_string_value(json_object_get(stack, "node_id")), socket, len,
                           &err))
        return api_fail(req, &err);
    return 0;
}

void api_stack_scale(struct http_request *req)
{
    static const char *const allowed[] = {"replicas", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    json_t *stack, *model = NULL;
    struct sb_err err = {0};
    if (stack_load(req, &stack))
        return;
    const char *service = http_param(req, "service");
    json_t *r = json_object_get(req->json, "replicas");
    if (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) > STACKS_REPLICAS_MAX) {
        sb_field_error(&err, "replicas", "replicas is an integer from 0 to %d", STACKS_REPLICAS_MAX);
        api_fail(req, &err);
        goto out;
    }
    model = model_of(app, stack, NULL);
    json_t *svc = json_object_get(json_object_get(model, "services"), service);
    if (!svc) {
        http_reply_error(req, 404, "not_found", "no such service in this stack");
        goto out;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(svc, "ports"), i,
                       p) if (json_integer_value(json_object_get(p, "published")) &&
                              json_integer_value(r) > 1)
    {
        sb_field_error(&err, "replicas", "%s publishes a host port: it cannot run more than one replica",
                       service);
        api_fail(req, &err);
        goto out;
    }
    const char *id = json_string_value(json_object_get(stack, "id"));
    char target[64];
    snprintf(target, sizeof target, "stack/%s", id);
    json_t *args =
        json_pack("{s:s,s:s,s:O,s:O,s:o}", "stack_id", id, "service", service, "replicas", r, "revision",
                  json_object_get(stack, "revision"), "requested_by", requested_by(req));
    struct jobs_new in = {.kind = "stack.scale",
                          .target = target,
                          .node_id = json_string_value(json_object_get(stack, "node_id")),
                          .concurrency_key = target,
                          .args = args};
    api_actor(req, &in.actor);
    json_t *job = NULL;
    if (jobs_enqueue(app->jobs, &in, &job, &err))
        api_fail(req, &err);
    else
        http_reply_json(req, 202, json_pack("{s:o}", "job", job));
    json_decref(args);
out:
    json_decref(model);
    json_decref(stack);
}

static void containers_action(struct http_request *req, const char *service, const char *action,
                              const char *type)
{
    json_t *stack;
    char socket[DOCKER_SOCKET_MAX];
    struct sb_err err = {0};
    if (stack_load(req, &stack))
        return;
    if (stack_socket(req, stack, socket, sizeof socket))
        goto out;
    const char *id = json_string_value(json_object_get(stack, "id"));
    int rc = stacks_containers_action(socket, json_string_value(json_object_get(stack, "name")), service,
                                      action, &err);
    json_t *d = service ? json_pack("{s:s}", "service", service) : json_object();
    if (rc)
        json_object_set_new(d, "reason", json_string(err.msg));
    struct sb_err e2 = {0};
    record(req, id, type, d, rc ? "failure" : "success", &e2);
    json_decref(d);
    if (rc)
        api_fail(req, &err);
    else
        http_reply_json(req, 200, json_pack("{s:s,s:s}", "id", id, "done", action));
out:
    json_decref(stack);
}

void api_stack_service_restart(struct http_request *req)
{
    struct app *app = req->app;
    json_t *stack;
    if (stack_load(req, &stack))
        return;
    json_t *model = model_of(app, stack, NULL);
    bool known = json_object_get(json_object_get(model, "services"), http_param(req, "service")) != NULL;
    json_decref(model);
    json_decref(stack);
    if (!known) {
        http_reply_error(req, 404, "not_found", "no such service in this stack");
        return;
    }
    containers_action(req, http_param(req, "service"), "restart", "stack.restarted");
}

void api_stack_stop(struct http_request *req)
{
    containers_action(req, NULL, "stop", "stack.stopped");
}

void api_stack_start(struct http_request *req)
{
    containers_action(req, NULL, "start", "stack.started");
}

static int down(struct http_request *req, json_t *stack, bool volumes, json_t **removed)
{
    struct app *app = req->app;
    char socket[DOCKER_SOCKET_MAX];
    struct sb_err err = {0};
    /* Here, for down and delete alike: removing volumes deletes their data. */
    if (volumes && !caller_stacks_admin(req)) {
        sb_error(&err, SB_EDENIED, "removing a stack's volumes deletes their data: it needs an admin");
        sb_strlcpy(err.field, "volumes", sizeof err.field);
        return api_fail(req, &err);
    }
    if (stack_socket(req, stack, socket, sizeof socket))
        return -1;
    /* the routes first: no request is sent to a container that stops */
    if (stacks_routes_remove(&app->stacks, json_string_value(json_object_get(stack, "id")), &err))
        return api_fail(req, &err);
    if (stacks_down(socket, json_string_value(json_object_get(stack, "name")), volumes, removed, &err))
        return api_fail(req, &err);
    return 0;
}

void api_stack_down(struct http_request *req)
{
    static const char *const allowed[] = {"volumes", NULL};
    if (api_check_fields(req, allowed))
        return;
    json_t *stack, *removed = NULL;
    struct sb_err err = {0};
    json_t *vol = json_object_get(req->json, "volumes");
    if (vol && !json_is_boolean(vol)) {
        sb_field_error(&err, "volumes", "volumes is true or false");
        api_fail(req, &err);
        return;
    }
    bool volumes = json_is_true(vol);
    if (stack_load(req, &stack))
        return;
    if (down(req, stack, volumes, &removed))
        goto out;
    const char *id = json_string_value(json_object_get(stack, "id"));
    json_t *d = json_pack("{s:b,s:O}", "volumes", volumes, "removed", removed);
    if (record(req, id, "stack.down", d, "success", &err))
        api_fail(req, &err);
    else
        http_reply_json(req, 200, json_pack("{s:s,s:O}", "id", id, "removed", removed));
    json_decref(d);
out:
    json_decref(removed);
    json_decref(stack);
}

void api_stack_delete(struct http_request *req)
{
    json_t *stack, *removed = NULL;
    struct sb_err err = {0};
    if (stack_load(req, &stack))
        return;
    bool volumes = false;
    if (api_query_bool(req, "volumes", false, &volumes))
        goto out;
    if (down(req, stack, volumes, &removed))
        goto out;
    const char *id = json_string_value(json_object_get(stack, "id"));
    json_t *d = json_pack("{s:O,s:s,s:s}", "removed", removed, "name",
                          json_string_value(json_object_get(stack, "name")), "node_id",
                          json_string_value(json_object_get(stack, "node_id")));
    if (record(req, id, "stack.deleted", d, "success", &err))
        api_fail(req, &err);
    else
        http_reply_json(req, 204, NULL);
    json_decref(d);
out:
    json_decref(removed);
    json_decref(stack);
}

/* ---- logs per service ------------------------------------------------------- */

void api_stack_service_logs(struct http_request *req)
{
    struct app *app = req->app;
    json_t *stack, *containers = NULL, *lines = NULL;
    char socket[DOCKER_SOCKET_MAX];
    struct sb_err err = {0};
    if (!auth_caller_allows(req->user, "logs:read")) {
        http_reply_error(req, 403, "forbidden",
                         "reading a stack's logs needs logs:read as well as stacks:read");
        return;
    }
    bool follow, timestamps;
    long tail;
    if (api_query_bool(req, "follow", false, &follow) ||
        api_query_bool(req, "timestamps", false, &timestamps) ||
        http_query_int(req, "tail", follow ? 0 : 200, 0, STACKS_LOG_TAIL_MAX, &tail))
        return;
    if (stack_load(req, &stack))
        return;
    const char *service = http_param(req, "service");
    json_t *model = model_of(app, stack, NULL);
    bool known = json_object_get(json_object_get(model, "services"), service) != NULL;
    json_decref(model);
    if (stack_socket(req, stack, socket, sizeof socket))
        goto out;
    const char *project = json_string_value(json_object_get(stack, "name"));
    /* the lines (with follow, only to learn the containers) */
    if (stacks_service_logs(socket, project, service, follow ? 0 : (int)tail, &containers, &lines, &err)) {
        api_fail(req, &err);
        goto out;
    }
    if (!known && !json_array_size(containers)) {
        http_reply_error(req, 404, "not_found", "no such service in this stack");
        goto out;
    }
    if (!follow) {
        struct buf body;
        buf_init(&body, (size_t)16 << 20);
        size_t i;
        json_t *l;
        json_array_foreach(lines, i, l)
        {
            if (!timestamps)
                json_object_del(l, "ts");
            char *j = json_dumps(l, JSON_COMPACT);
            if (j) {
                buf_puts(&body, j);
                buf_putc(&body, '\n');
            }
            free(j);
        }
        struct buf hv;
        buf_init(&hv, 4096);
        json_array_foreach(containers, i, l)
            buf_printf(&hv, "%s%s", i ? "," : "", json_string_value(json_object_get(l, "name")));
        http_add_header(req, "X-Containers", hv.data);
        http_reply_text(req, 200, "application/x-ndjson", body.data, body.len);
        buf_release(&hv);
        buf_release(&body);
        goto out;
    }
    /* follow: one container, named or the only one */
    const char *want = http_query(req, "container");
    const char *pick = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(containers, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        if (want ? strcmp(want, name) == 0 : json_array_size(containers) == 1)
            pick = name;
    }
    if (!pick) {
        struct buf names;
        buf_init(&names, 4096);
        json_array_foreach(containers, i, c)
            buf_printf(&names, "%s%s", i ? ", " : "", json_string_value(json_object_get(c, "name")));
        sb_field_error(&err, "container", "follow=1 follows one container: container is one of %s",
                       names.len ? names.data : "(none)");
        buf_release(&names);
        api_fail(req, &err);
        goto out;
    }
    char path[400];
    int n = snprintf(path, sizeof path, "/containers/%s/logs?stdout=1&stderr=1&timestamps=%d&follow=1", pick,
                     timestamps);
    if (tail)
        snprintf(path + n, sizeof path - (size_t)n, "&tail=%ld", tail);
    else
        snprintf(path + n, sizeof path - (size_t)n, "&tail=0");
    struct MHD_Response *resp = NULL;
    if (docker_follow_logs(app->docker, socket, path, false, timestamps, req->conn, &resp, &err)) {
        api_fail(req, &err);
        goto out;
    }
    http_add_header(req, "X-Containers", pick);
    http_reply_response(req, 200, resp);
out:
    json_decref(containers);
    json_decref(lines);
    json_decref(stack);
}
