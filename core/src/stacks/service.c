/*
 * The service layer: stored stacks (store/stacks.c) turned into models,
 * secret variables sealed with the master key, and the job handlers that
 * deploy and scale. Job args never hold a secret: the handler opens the
 * revision's sealed variables itself.
 *
 * A deploy job is safe to run again (a retry, or a daemon that took over
 * the lease after a crash): it recomputes the plan from the containers that
 * exist, so what the first attempt finished is not done twice.
 */
#include "internal.h"

#include "../caddy/caddy.h"
#include "../docker/docker.h"
#include "../jobs/jobs.h"
#include "../store/store.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool var_name_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 128 || !(isalpha((unsigned char)k[0]) || k[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)k[i]) || k[i] == '_'))
            return false;
    return true;
}

int stacks_variables_split(json_t *in, json_t *old_secret, json_t **clear, json_t **secret,
                           struct sb_err *err)
{
    *clear = json_object();
    *secret = json_object();
    if (!in || json_is_null(in))
        return 0;
    if (!json_is_object(in) || json_object_size(in) > STACKS_VARS_MAX) {
        json_decref(*clear);
        json_decref(*secret);
        *clear = *secret = NULL;
        return sb_field_error(err, "variables", "variables must be an object of at most %d names",
                              STACKS_VARS_MAX);
    }
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        char field[200];
        snprintf(field, sizeof field, "variables.%.150s", k);
        const char *value = NULL;
        bool is_secret = false;
        if (!var_name_ok(k)) {
            sb_field_error(err, field, "%s: a variable name is letters, digits and _ (at most 128)", field);
            goto bad;
        }
        if (json_is_string(v)) {
            value = json_string_value(v);
        } else if (json_is_object(v)) {
            const char *kk;
            json_t *vv;
            json_object_foreach(v, kk, vv) if (strcmp(kk, "value") != 0 && strcmp(kk, "secret") != 0)
            {
                sb_field_error(err, field, "%s: unknown field %.40s (value, secret)", field, kk);
                goto bad;
            }
            value = json_string_value(json_object_get(v, "value"));
            json_t *sv = json_object_get(v, "secret");
            if (sv && !json_is_boolean(sv)) {
                sb_field_error(err, field, "%s: secret must be true or false", field);
                goto bad;
            }
            is_secret = json_is_true(sv);
        }
        if (!value || strlen(value) > 65536) {
            sb_field_error(err, field, "%s: a value is a string of at most 64 KiB", field);
            goto bad;
        }
        if (is_secret) {
            const char *old = json_string_value(json_object_get(old_secret, k));
            if (strcmp(value, STACKS_SECRET_MASK) == 0) {
                if (!old) {
                    sb_field_error(err, field, "%s: the masked value names no stored secret", field);
                    goto bad;
                }
                value = old;
            }
            json_object_set_new(*secret, k, json_string(value));
        } else {
            json_object_set_new(*clear, k, json_string(value));
        }
    }
    return 0;
bad:
    json_decref(*clear);
    json_decref(*secret);
    *clear = *secret = NULL;
    return SB_EINVAL;
}

json_t *stacks_variables_masked(json_t *clear, json_t *secret_names)
{
    json_t *out = json_is_object(clear) ? json_deep_copy(clear) : json_object();
    size_t i;
    json_t *n;
    json_array_foreach(secret_names, i, n)
        json_object_set_new(out, json_string_value(n), json_string(STACKS_SECRET_MASK));
    return out;
}

int stacks_revision_secrets(const struct stacks_env *e, const char *stack_id, int revision, json_t **secret,
                            struct sb_err *err)
{
    *secret = NULL;
    char *sealed = NULL;
    int rc = store_stack_secret_get(e->store, stack_id, revision, &sealed, err);
    if (rc)
        return rc;
    if (!sealed) {
        *secret = json_object();
        return 0;
    }
    struct buf plain;
    buf_init(&plain, 1 << 24);
    rc = crypto_open(e->key, sealed, &plain, err);
    free(sealed);
    if (rc == 0) {
        json_error_t je;
        *secret = json_loadb(plain.data, plain.len, 0, &je);
        if (!json_is_object(*secret)) {
            json_decref(*secret);
            *secret = NULL;
            rc = sb_error(err, SB_EINTERNAL, "the sealed variables of revision %d cannot be read", revision);
        }
    } else {
        rc = sb_error(err, SB_EINTERNAL, "the sealed variables of revision %d cannot be opened", revision);
    }
    crypto_buf_wipe(&plain);
    return rc;
}

int stacks_revision_secrets_put(const struct stacks_env *e, const char *stack_id, int revision,
                                json_t *secret, struct sb_err *err)
{
    if (!json_object_size(secret))
        return 0;
    char *text = json_dumps(secret, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return sb_error(err, SB_ENOMEM, "out of memory");
    char *sealed = crypto_seal(e->key, text, strlen(text));
    sodium_memzero(text, strlen(text));
    free(text);
    if (!sealed)
        return sb_error(err, SB_ENOMEM, "cannot seal the variables");
    int rc = store_stack_secret_put(e->store, stack_id, revision, sealed, err);
    free(sealed);
    return rc;
}

int stacks_revision_model(const struct stacks_env *e, json_t *stack, json_t *rev, json_t **model,
                          struct sb_err *err)
{
    *model = NULL;
    const char *id = json_string_value(json_object_get(stack, "id"));
    int revision = (int)json_integer_value(json_object_get(rev, "revision"));
    json_t *secret = NULL;
    int rc = stacks_revision_secrets(e, id, revision, &secret, err);
    if (rc)
        return rc;
    json_t *vars = json_deep_copy(json_object_get(rev, "variables"));
    if (!json_is_object(vars)) {
        json_decref(vars);
        vars = json_object();
    }
    json_object_update(vars, secret);
    const char *compose = json_string_value(json_object_get(rev, "compose"));
    rc = stacks_compose_parse(compose ? compose : "", compose ? strlen(compose) : 0, vars,
                              json_object_get(rev, "env_files"), model, err);
    json_decref(vars);
    json_decref(secret);
    if (rc)
        return rc;
    const char *svc;
    json_t *n;
    json_object_foreach(json_object_get(stack, "scale"), svc, n)
    {
        json_t *s = json_object_get(json_object_get(*model, "services"), svc);
        if (s && json_is_integer(n))
            json_object_set(s, "replicas", n);
    }
    return 0;
}

int stacks_node_socket(const struct stacks_env *e, const char *node_id, char *socket, size_t len,
                       struct sb_err *err)
{
    char name[128];
    return docker_endpoint_for_node(e->docker, node_id, socket, len, name, sizeof name, err);
}

int stacks_dry_plan(const struct stacks_env *e, json_t *stack, json_t *model, json_t *pinned, json_t **plan,
                    struct sb_err *err)
{
    *plan = NULL;
    char socket[DOCKER_SOCKET_MAX];
    const char *project = json_string_value(json_object_get(stack, "name"));
    int rc = stacks_node_socket(e, json_string_value(json_object_get(stack, "node_id")), socket,
                                sizeof socket, err);
    json_t *ids = NULL, *missing = NULL, *containers = NULL;
    if (rc == 0)
        rc = stacks_resolve_images(socket, model, pinned, false, &ids, &missing, err);
    if (rc == 0)
        rc = stacks_containers(socket, project, &containers, err);
    if (rc == 0)
        rc = stacks_plan(model, project, ids, containers, plan, err);
    if (rc == 0) {
        json_object_set(*plan, "images_to_pull", missing);
        json_object_set(*plan, "image_ids", ids);
    }
    json_decref(ids);
    json_decref(missing);
    json_decref(containers);
    return rc;
}

/* ---- routes ---------------------------------------------------------------- */

void stacks_route_prefix(const char *stack_id, char *out, size_t len)
{
    snprintf(out, len, "sbx-stack-%s-", stack_id);
}

int stacks_routes_check(const struct stacks_env *e, json_t *model, const char *node_id, struct sb_err *err)
{
    const char *name;
    json_t *svc;
    json_object_foreach(json_object_get(model, "services"), name, svc)
    {
        if (!json_object_get(json_object_get(svc, "x-serverbox"), "route"))
            continue;
        char field[200];
        snprintf(field, sizeof field, "services.%s.x-serverbox.route", name);
        if (!e->caddy_admin || !*e->caddy_admin)
            return sb_field_error(err, field,
                                  "%s: routing is off on this daemon (--app-caddy-admin is empty)", field);
        if (!node_id || strcmp(node_id, DOCKER_LOCAL_NODE) != 0)
            return sb_field_error(err, field,
                                  "%s: routes are served by the local node's Caddy only (a remote node's "
                                  "Caddy is not reached yet)",
                                  field);
    }
    return 0;
}

int stacks_routes_remove(const struct stacks_env *e, const char *stack_id, struct sb_err *err)
{
    if (!e->caddy_admin || !*e->caddy_admin)
        return 0;
    char prefix[80];
    stacks_route_prefix(stack_id, prefix, sizeof prefix);
    json_t *ids = NULL;
    int rc = caddy_route_ids(e->caddy_admin, prefix, &ids, err);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) if (rc == 0) rc =
        caddy_route_delete(e->caddy_admin, json_string_value(v), err);
    json_decref(ids);
    return rc;
}

/* ---- jobs ------------------------------------------------------------------ */

struct hook_ctx {
    struct job_ctx *job;
};

static void on_progress(void *ctx, int percent, const char *step)
{
    job_progress(((struct hook_ctx *)ctx)->job, percent, step);
}

static void on_log(void *ctx, const char *line)
{
    job_log(((struct hook_ctx *)ctx)->job, "%s", line);
}

static bool on_cancelled(void *ctx)
{
    return job_cancelled(((struct hook_ctx *)ctx)->job);
}

static void record(const struct stacks_env *e, struct job_ctx *job, const char *id, const char *type,
                   const char *outcome, json_t *data)
{
    char stream[64];
    snprintf(stream, sizeof stream, "stack/%s", id);
    json_object_set_new(data, "id", json_string(id));
    json_object_set_new(data, "job_id", json_string(job_id(job)));
    struct event_new ev = {.stream = stream,
                           .type = type,
                           .data = data,
                           .actor = {.kind = "system", .id = job_id(job), .name = "stacks"},
                           .outcome = outcome};
    struct sb_err err = {0};
    int64_t seq;
    if (store_append(e->store, &ev, &seq, &err))
        log_warn("stack event not recorded", "type=%s stack=%s detail=\"%s\"", type, id, err.msg);
}

/* record() with data stolen. */
static void record_new(const struct stacks_env *e, struct job_ctx *job, const char *id, const char *type,
                       const char *outcome, json_t *data)
{
    record(e, job, id, type, outcome, data);
    json_decref(data);
}

static bool retryable(int rc)
{
    return rc == SB_EUNAVAIL || rc == SB_ETIMEOUT;
}

#define DEPLOY_ATTEMPTS 3

/* Loads the stack, its revision, model, socket and image ids. */
struct run {
    json_t *stack, *rev, *model, *ids;
    char socket[DOCKER_SOCKET_MAX];
};

static void run_release(struct run *r)
{
    json_decref(r->stack);
    json_decref(r->rev);
    json_decref(r->model);
    json_decref(r->ids);
}

static int run_load(const struct stacks_env *e, struct job_ctx *job, const char *id, int revision, bool pull,
                    struct run *r, struct sb_err *err)
{
    memset(r, 0, sizeof *r);
    int rc = store_stack_get(e->store, id, &r->stack, err);
    if (rc == 0 && revision <= 0)
        revision = (int)json_integer_value(json_object_get(r->stack, "revision"));
    if (rc == 0)
        rc = store_stack_revision_get(e->store, id, revision, &r->rev, err);
    if (rc == 0)
        rc = stacks_revision_model(e, r->stack, r->rev, &r->model, err);
    if (rc == 0)
        rc = stacks_node_socket(e, json_string_value(json_object_get(r->stack, "node_id")), r->socket,
                                sizeof r->socket, err);
    if (rc == 0) {
        job_progress(job, 2, pull ? "images" : "checking images");
        rc = stacks_resolve_images(r->socket, r->model, json_object_get(r->rev, "pinned_digests"), pull,
                                   &r->ids, NULL, err);
    }
    return rc;
}

static int deploy_run(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct stacks_env *e = job_kind_ctx(job);
    const char *id = json_string_value(json_object_get(args, "stack_id"));
    int revision = (int)json_integer_value(json_object_get(args, "revision"));
    if (!id)
        return sb_error(err, SB_EINVAL, "stack.deploy needs a stack_id");
    record_new(e, job, id, "stack.deploy_started", "success",
               json_pack("{s:i,s:i}", "revision", revision, "attempt", job_attempt(job)));
    struct run r;
    json_t *plan = NULL, *res = NULL, *containers = NULL;
    int rc = run_load(e, job, id, revision, true, &r, err);
    if (rc == SB_ENOTFOUND && !r.stack)
        return rc; /* the stack was deleted meanwhile */
    const char *project = json_string_value(json_object_get(r.stack, "name"));
    if (rc == 0)
        rc = stacks_routes_check(e, r.model, json_string_value(json_object_get(r.stack, "node_id")), err);
    if (rc == 0)
        rc = stacks_containers(r.socket, project, &containers, err);
    if (rc == 0)
        rc = stacks_plan(r.model, project, r.ids, containers, &plan, err);
    json_decref(containers);
    if (rc == 0) {
        struct buf sum;
        buf_init(&sum, 4096);
        stacks_plan_summary(plan, &sum);
        job_log(job, "revision %d: %s", revision, sum.data);
        buf_release(&sum);
        struct hook_ctx hc = {.job = job};
        char files[96], prefix[80];
        snprintf(files, sizeof files, "serverbox:stack/%s/revision/%d", id, revision);
        stacks_route_prefix(id, prefix, sizeof prefix);
        struct stacks_apply a = {.socket = r.socket,
                                 .project = project,
                                 .model = r.model,
                                 .image_ids = r.ids,
                                 .plan = plan,
                                 .config_files = files,
                                 .working_dir = "/",
                                 .health_timeout_s = e->health_timeout_s,
                                 .caddy_admin = e->caddy_admin,
                                 .domain_listen = e->domain_listen,
                                 .route_prefix = prefix,
                                 .hooks = {on_progress, on_log, on_cancelled, &hc}};
        rc = stacks_apply_run(&a, &res, err);
    }
    if (rc == 0) {
        record_new(e, job, id, "stack.deployed", "success",
                   json_pack("{s:i,s:O,s:O,s:O}", "revision", revision, "plan", plan, "digests", r.ids,
                             "requested_by", json_object_get(args, "requested_by") ?: json_null()));
        *result = json_pack("{s:i,s:O,s:O}", "revision", revision, "plan", plan, "result", res);
    } else if (!retryable(rc) || job_attempt(job) >= DEPLOY_ATTEMPTS) {
        json_t *d = json_pack("{s:i,s:s,s:b,s:O}", "revision", revision, "reason", err->msg, "rolled_back",
                              json_is_true(json_object_get(res, "rolled_back")), "requested_by",
                              json_object_get(args, "requested_by") ?: json_null());
        if (plan)
            json_object_set(d, "plan", plan);
        if (json_object_get(res, "failed_service"))
            json_object_set(d, "service", json_object_get(res, "failed_service"));
        if (err->field[0])
            json_object_set_new(d, "field", json_string(err->field));
        record(e, job, id, "stack.deploy_failed", "failure", d);
        json_decref(d);
        if (retryable(rc)) /* the last attempt: fail for good */
            rc = SB_EUPSTREAM;
        *result = json_pack("{s:i,s:O,s:s}", "revision", revision, "result", res ?: json_null(), "reason",
                            err->msg);
    }
    json_decref(res);
    json_decref(plan);
    run_release(&r);
    return rc;
}

static int scale_run(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct stacks_env *e = job_kind_ctx(job);
    const char *id = json_string_value(json_object_get(args, "stack_id"));
    const char *service = json_string_value(json_object_get(args, "service"));
    int replicas = (int)json_integer_value(json_object_get(args, "replicas"));
    if (!id || !service)
        return sb_error(err, SB_EINVAL, "stack.scale needs a stack_id and a service");
    struct run r;
    json_t *res = NULL;
    int rc = run_load(e, job, id, (int)json_integer_value(json_object_get(args, "revision")), false, &r, err);
    if (rc == 0)
        rc = stacks_routes_check(e, r.model, json_string_value(json_object_get(r.stack, "node_id")), err);
    if (rc == 0) {
        struct hook_ctx hc = {.job = job};
        char prefix[80];
        stacks_route_prefix(id, prefix, sizeof prefix);
        struct stacks_apply a = {.socket = r.socket,
                                 .project = json_string_value(json_object_get(r.stack, "name")),
                                 .caddy_admin = e->caddy_admin,
                                 .domain_listen = e->domain_listen,
                                 .route_prefix = prefix,
                                 .model = r.model,
                                 .image_ids = r.ids,
                                 .config_files = "serverbox",
                                 .working_dir = "/",
                                 .health_timeout_s = e->health_timeout_s,
                                 .hooks = {on_progress, on_log, on_cancelled, &hc}};
        rc = stacks_scale(&a, service, replicas, &res, err);
    }
    if (rc == 0 || !retryable(rc) || job_attempt(job) >= DEPLOY_ATTEMPTS) {
        json_t *d = json_pack("{s:s,s:i,s:O}", "service", service, "replicas", replicas, "requested_by",
                              json_object_get(args, "requested_by") ?: json_null());
        if (rc)
            json_object_set_new(d, "reason", json_string(err->msg));
        record(e, job, id, "stack.scaled", rc ? "failure" : "success", d);
        json_decref(d);
        if (rc && retryable(rc))
            rc = SB_EUPSTREAM;
    }
    *result = res ? res : json_null();
    run_release(&r);
    return rc;
}

int stacks_jobs_register(struct jobs *j, struct stacks_env *e, struct sb_err *err)
{
    struct jobs_kind deploy = {.kind = "stack.deploy",
                               .run = deploy_run,
                               .ctx = e,
                               .max_attempts = DEPLOY_ATTEMPTS,
                               .timeout_s = 1800};
    struct jobs_kind scale = {
        .kind = "stack.scale", .run = scale_run, .ctx = e, .max_attempts = DEPLOY_ATTEMPTS, .timeout_s = 900};
    int rc = jobs_register(j, &deploy, err);
    return rc ? rc : jobs_register(j, &scale, err);
}
