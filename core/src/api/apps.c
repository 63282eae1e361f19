/*
 * /api/v1/apps, /api/v1/deployments and the git webhook — GitOps apps
 * (apps/). Handlers parse, check, call the apps service and reply; deploys
 * and rollbacks run as jobs (202 {"job", "deployment_id"}).
 *
 * An app lives on one node: a caller whose node-label scope does not cover
 * that node does not see the app or its deployments (404), in lists as in
 * every route. Variables marked secret and the webhook secret are sealed
 * with the master key and answered as APPS_SECRET_MASK; they never enter
 * events.
 */
#include "api.h"

#include "../apps/apps.h"
#include "../docker/docker.h"
#include "../jobs/jobs.h"
#include "../ssh/ssh.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_apps_list(struct http_request *req);
void api_app_create(struct http_request *req);
void api_app_get(struct http_request *req);
void api_app_update(struct http_request *req);
void api_app_delete(struct http_request *req);
void api_app_deploy(struct http_request *req);
void api_app_deployments(struct http_request *req);
void api_deployment_get(struct http_request *req);
void api_deployment_rollback(struct http_request *req);
void api_git_hook(struct http_request *req);

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

/* The app `id` if the caller may see it; else replies and returns -1. */
static int app_load(struct http_request *req, const char *id, json_t **out)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    int rc = store_app_get(app->store, id, out, &err);
    if (rc == 0 && !node_visible(req, json_string_value(json_object_get(*out, "node_id")))) {
        json_decref(*out);
        *out = NULL;
        rc = sb_error(&err, SB_ENOTFOUND, "no such app");
    }
    return rc ? api_fail(req, &err) : 0;
}

static int record(struct http_request *req, const char *id, const char *type, json_t *data,
                  struct sb_err *err)
{
    struct app *app = req->app;
    char stream[64];
    snprintf(stream, sizeof stream, "app/%s", id);
    json_object_set_new(data, "id", json_string(id));
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
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

/* The app as answered: secrets masked, the webhook URL path named. */
static json_t *app_view(json_t *row)
{
    json_t *v = json_deep_copy(row);
    json_object_set_new(
        v, "variables",
        stacks_variables_masked(json_object_get(row, "variables"), json_object_get(row, "secret_names")));
    char hook[128];
    snprintf(hook, sizeof hook, "/api/v1/hooks/git/%s", json_string_value(json_object_get(row, "id")));
    json_object_set_new(v, "webhook_path", json_string(hook));
    json_object_set_new(v, "webhook_secret", json_string(APPS_SECRET_MASK));
    json_t *np = json_object_get(row, "nano_cpus");
    json_object_set_new(v, "cpus",
                        json_is_integer(np) ? json_real((double)json_integer_value(np) / 1e9) : json_null());
    return v;
}

static json_t *names_of(json_t *obj)
{
    json_t *names = json_array();
    const char *k;
    json_t *x;
    json_object_foreach(obj, k, x) json_array_append_new(names, json_string(k));
    return names;
}

static int webhook_secret_of(json_t *body, char out[129], struct sb_err *err)
{
    json_t *w = json_object_get(body, "webhook_secret");
    if (!w || json_is_null(w)) {
        unsigned char raw[24];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2hex(out, 129, raw, sizeof raw);
        return 0;
    }
    if (!json_is_string(w) || json_string_length(w) < 16 || json_string_length(w) > 128)
        return sb_field_error(err, "webhook_secret", "webhook_secret is a string of 16 to 128 characters");
    sb_strlcpy(out, json_string_value(w), 129);
    return 0;
}

/* The deploy key of an ssh repository: the body's "deploy_key" (an
 * ed25519 or ECDSA private key in OpenSSH format; *pub stays NULL: libssh2
 * derives it) or, with `generate`, a fresh ed25519 key. *priv and *pub are
 * malloc'd (NULL when none). */
static int deploy_key_of(json_t *body, const char *name, bool generate, char **priv, char **pub,
                         struct sb_err *err)
{
    *priv = *pub = NULL;
    json_t *k = json_object_get(body, "deploy_key");
    if (k && !json_is_null(k)) {
        if (!json_is_string(k) || json_string_length(k) > 16384)
            return sb_field_error(err, "deploy_key", "deploy_key is an OpenSSH private key (at most 16 KiB)");
        char type[64];
        ssh_key_type(json_string_value(k), json_string_length(k), type, sizeof type);
        if (strcmp(type, "ssh-rsa") == 0)
            return sb_field_error(
                err, "deploy_key",
                "deploy_key: RSA keys cannot log in to current OpenSSH servers from here (libssh2 "
                "1.10 signs with SHA-1): use an ed25519 or ECDSA key");
        if (strcmp(type, "ssh-ed25519") != 0 && strncmp(type, "ecdsa-sha2-", 11) != 0)
            return sb_field_error(err, "deploy_key",
                                  "deploy_key is an unencrypted OpenSSH private key (ed25519 or ECDSA)");
        *priv = strdup(json_string_value(k));
        return *priv ? 0 : sb_error(err, SB_ENOMEM, "out of memory");
    }
    if (!generate)
        return 0;
    struct buf bpriv, bpub;
    buf_init(&bpriv, 16384);
    buf_init(&bpub, 4096);
    char comment[96];
    snprintf(comment, sizeof comment, "serverbox-app-%s", name ? name : "app");
    int rc = ssh_key_generate_ed25519(comment, &bpriv, &bpub, err);
    if (rc == 0) {
        while (bpub.len && (bpub.data[bpub.len - 1] == '\n' || bpub.data[bpub.len - 1] == '\r'))
            bpub.data[--bpub.len] = '\0';
        *priv = buf_detach(&bpriv, NULL);
        *pub = buf_detach(&bpub, NULL);
    }
    crypto_buf_wipe(&bpriv);
    buf_release(&bpub);
    return rc;
}

static void key_free(char *k)
{
    if (k) {
        sodium_memzero(k, strlen(k));
        free(k);
    }
}

/* ---- list / get ------------------------------------------------------------ */

void api_apps_list(struct http_request *req)
{
    struct app *app = req->app;
    json_t *list = NULL;
    struct sb_err err = {0};
    if (store_app_list(app->store, &list, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) if (node_visible(req, json_string_value(json_object_get(a, "node_id"))))
        json_array_append_new(out, app_view(a));
    json_decref(list);
    http_reply_json(req, 200, json_pack("{s:o}", "apps", out));
}

void api_app_get(struct http_request *req)
{
    json_t *a;
    if (app_load(req, http_param(req, "id"), &a))
        return;
    http_reply_json(req, 200, app_view(a));
    json_decref(a);
}

/* ---- create / update / delete ------------------------------------------------- */

static const char *const app_fields[] = {"name",           "node_id",    "repo_url",     "branch",
                                         "subdir",         "port",       "health_path",  "health_timeout_s",
                                         "domain",         "memory",     "cpus",         "variables",
                                         "webhook_secret", "deploy_key", "git_host_key", NULL};

void api_app_create(struct http_request *req)
{
    if (api_check_fields(req, app_fields))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *cfg = NULL, *clear = NULL, *secret = NULL, *secrets = NULL, *row = NULL;
    char *key_priv = NULL, *key_pub = NULL;
    char hook[129] = "";
    if (apps_config_check(req->json, true, &cfg, &err))
        goto fail;
    const char *node_id = json_string_value(json_object_get(cfg, "node_id"));
    if (!node_visible(req, node_id)) {
        sb_field_error(&err, "node_id",
                       "node_id names no node you can see (\"local\" is this daemon's engine)");
        goto fail;
    }
    if (webhook_secret_of(req->json, hook, &err))
        goto fail;
    if (stacks_variables_split(json_object_get(req->json, "variables"), NULL, &clear, &secret, &err))
        goto fail;
    int route_port = 0;
    if (json_is_null(json_object_get(cfg, "domain")) && apps_route_port_pick(&app->apps, &route_port, &err))
        goto fail;
    bool ssh = apps_repo_is_ssh(json_string_value(json_object_get(cfg, "repo_url")));
    if (!ssh && json_object_get(req->json, "deploy_key")) {
        sb_field_error(&err, "deploy_key", "deploy_key is for repositories fetched over ssh");
        goto fail;
    }
    if (ssh && deploy_key_of(req->json, json_string_value(json_object_get(cfg, "name")), true, &key_priv,
                             &key_pub, &err))
        goto fail;
    char id[37];
    uuid_v4(id);
    secrets = json_pack("{s:O,s:s}", "env", secret, "webhook", hook);
    if (key_priv)
        json_object_set_new(secrets, "deploy_key", json_string(key_priv));
    if (apps_secrets_seal(&app->apps, id, secrets, &err))
        goto fail;
    struct event_actor a;
    api_actor(req, &a);
    json_t *data = json_deep_copy(cfg);
    json_object_set(data, "variables", clear);
    json_object_set_new(data, "secret_names", names_of(secret));
    json_object_set_new(data, "by", json_string(a.name ? a.name : ""));
    if (route_port)
        json_object_set_new(data, "route_port", json_integer(route_port));
    if (key_pub)
        json_object_set_new(data, "deploy_key_public", json_string(key_pub));
    int rc = record(req, id, "app.created", data, &err);
    json_decref(data);
    if (rc) {
        struct sb_err ignore = {0};
        store_app_secret_delete(app->store, id, &ignore);
        if (err.code == SB_ECONFLICT)
            sb_field_error(&err, "name", "an app named %s exists",
                           json_string_value(json_object_get(cfg, "name")));
        err.code = err.code == SB_EINVAL ? SB_ECONFLICT : err.code;
        goto fail;
    }
    if (store_app_get(app->store, id, &row, &err))
        goto fail;
    json_t *v = app_view(row);
    json_object_set_new(v, "webhook_secret", json_string(hook)); /* shown once */
    http_reply_json(req, 201, v);
    goto out;
fail:
    api_fail(req, &err);
out:
    sodium_memzero(hook, sizeof hook);
    key_free(key_priv);
    free(key_pub);
    json_decref(cfg);
    json_decref(clear);
    json_decref(secret);
    json_decref(secrets);
    json_decref(row);
}

void api_app_update(struct http_request *req)
{
    if (api_check_fields(req, app_fields))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *row, *cfg = NULL, *secrets = NULL, *clear = NULL, *secret = NULL;
    if (app_load(req, http_param(req, "id"), &row))
        return;
    char id[37];
    sb_strlcpy(id, json_string_value(json_object_get(row, "id")), sizeof id);
    if (json_object_get(req->json, "node_id")) {
        sb_field_error(&err, "node_id", "an app cannot move to another node: create a new one");
        goto fail;
    }
    if (apps_config_check(req->json, false, &cfg, &err))
        goto fail;
    bool vars = json_object_get(req->json, "variables") != NULL;
    bool hook = json_object_get(req->json, "webhook_secret") != NULL;
    const char *url = json_string_value(json_object_get(cfg, "repo_url"));
    if (!url)
        url = json_string_value(json_object_get(row, "repo_url"));
    bool ssh = apps_repo_is_ssh(url);
    bool key = json_object_get(req->json, "deploy_key") != NULL || (ssh && json_object_get(cfg, "repo_url"));
    if (!ssh && json_object_get(req->json, "deploy_key")) {
        sb_field_error(&err, "deploy_key", "deploy_key is for repositories fetched over ssh");
        goto fail;
    }
    if (vars || hook || key) {
        if (apps_secrets_open(&app->apps, id, &secrets, &err))
            goto fail;
        if (key) {
            char *priv = NULL, *pub = NULL;
            bool have = json_string_value(json_object_get(secrets, "deploy_key")) != NULL;
            bool given = json_object_get(req->json, "deploy_key") != NULL;
            if (deploy_key_of(req->json, json_string_value(json_object_get(row, "name")), !have && !given,
                              &priv, &pub, &err))
                goto fail;
            if (priv) {
                json_object_set_new(secrets, "deploy_key", json_string(priv));
                json_object_set_new(cfg, "deploy_key_public", pub ? json_string(pub) : json_null());
            }
            key_free(priv);
            free(pub);
        }
        if (vars) {
            if (stacks_variables_split(json_object_get(req->json, "variables"),
                                       json_object_get(secrets, "env"), &clear, &secret, &err))
                goto fail;
            json_object_set(secrets, "env", secret);
            json_object_set(cfg, "variables", clear);
            json_object_set_new(cfg, "secret_names", names_of(secret));
        }
        if (hook) {
            char h[129];
            if (webhook_secret_of(req->json, h, &err))
                goto fail;
            json_object_set_new(secrets, "webhook", json_string(h));
            sodium_memzero(h, sizeof h);
            json_object_set_new(cfg, "webhook_secret_changed", json_true());
        }
        if (apps_secrets_seal(&app->apps, id, secrets, &err))
            goto fail;
    }
    if (json_object_get(cfg, "domain") && json_is_null(json_object_get(cfg, "domain")) &&
        !json_integer_value(json_object_get(row, "route_port"))) {
        int port = 0;
        if (apps_route_port_pick(&app->apps, &port, &err))
            goto fail;
        if (port)
            json_object_set_new(cfg, "route_port", json_integer(port));
    }
    json_object_set(cfg, "node_id", json_object_get(row, "node_id")); /* scopes the event */
    if (record(req, id, "app.updated", cfg, &err)) {
        if (err.code == SB_ECONFLICT)
            sb_field_error(&err, "name", "an app with that name exists");
        goto fail;
    }
    json_decref(row);
    row = NULL;
    if (store_app_get(app->store, id, &row, &err))
        goto fail;
    http_reply_json(req, 200, app_view(row));
    goto out;
fail:
    api_fail(req, &err);
out:
    json_decref(row);
    json_decref(cfg);
    json_decref(secrets);
    json_decref(clear);
    json_decref(secret);
}

void api_app_delete(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *row;
    if (app_load(req, http_param(req, "id"), &row))
        return;
    const char *id = json_string_value(json_object_get(row, "id"));
    if (apps_teardown(&app->apps, row, &err)) {
        api_fail(req, &err);
    } else {
        json_t *d = json_pack("{s:O,s:O}", "name", json_object_get(row, "name"), "node_id",
                              json_object_get(row, "node_id"));
        if (record(req, id, "app.deleted", d, &err))
            api_fail(req, &err);
        else
            http_reply_json(req, 204, NULL);
        json_decref(d);
    }
    json_decref(row);
}

/* ---- deploy / deployments / rollback -------------------------------------------- */

static void deploy(struct http_request *req, json_t *row, const char *kind, const char *trigger, json_t *of)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    struct event_actor a;
    api_actor(req, &a);
    json_t *job = NULL, *by = requested_by(req);
    char dep[37];
    if (apps_deploy_request(&app->apps, row, kind, trigger, of, &a, by, &job, dep, &err))
        api_fail(req, &err);
    else
        http_reply_json(req, 202, json_pack("{s:o,s:s}", "job", job, "deployment_id", dep));
    json_decref(by);
}

void api_app_deploy(struct http_request *req)
{
    json_t *row;
    if (app_load(req, http_param(req, "id"), &row))
        return;
    deploy(req, row, "deploy", "manual", NULL);
    json_decref(row);
}

void api_app_deployments(struct http_request *req)
{
    struct app *app = req->app;
    json_t *row, *list = NULL;
    struct sb_err err = {0};
    long limit;
    if (app_load(req, http_param(req, "id"), &row))
        return;
    if (http_query_int(req, "limit", 50, 1, 500, &limit) == 0) {
        if (store_app_deployments_list(app->store, json_string_value(json_object_get(row, "id")), (int)limit,
                                       &list, &err))
            api_fail(req, &err);
        else
            http_reply_json(req, 200, json_pack("{s:o}", "deployments", list));
    }
    json_decref(row);
}

/* The deployment {id} and its app, if the caller may see the app. */
static int deployment_load(struct http_request *req, json_t **dep, json_t **row)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    *row = NULL;
    if (store_app_deployment_get(app->store, http_param(req, "id"), dep, &err))
        return api_fail(req, &err);
    struct sb_err e2 = {0};
    int rc = store_app_get(app->store, json_string_value(json_object_get(*dep, "app_id")), row, &e2);
    if (rc == 0 && !node_visible(req, json_string_value(json_object_get(*row, "node_id"))))
        rc = SB_ENOTFOUND;
    if (rc) {
        json_decref(*dep);
        json_decref(*row);
        *dep = *row = NULL;
        if (rc == SB_ENOTFOUND)
            return api_fail(req, &(struct sb_err){.code = SB_ENOTFOUND, .msg = "no such deployment"});
        return api_fail(req, &e2);
    }
    return 0;
}

void api_deployment_get(struct http_request *req)
{
    struct app *app = req->app;
    json_t *dep, *row;
    if (deployment_load(req, &dep, &row))
        return;
    char *log = NULL;
    struct sb_err err = {0};
    if (store_app_log_get(app->store, json_string_value(json_object_get(dep, "id")), &log, &err)) {
        api_fail(req, &err);
    } else {
        json_t *s = log ? json_string(log) : json_string("");
        json_object_set_new(dep, "log", s ? s : json_string("<the log is not UTF-8>"));
        json_object_set(dep, "app_name", json_object_get(row, "name"));
        http_reply_json(req, 200, json_incref(dep));
    }
    free(log);
    json_decref(dep);
    json_decref(row);
}

void api_deployment_rollback(struct http_request *req)
{
    json_t *dep, *row;
    if (deployment_load(req, &dep, &row))
        return;
    if (strcmp(json_string_value(json_object_get(dep, "status")) ?: "", "succeeded") != 0 ||
        !json_string_value(json_object_get(dep, "image_id"))) {
        struct sb_err err = {0};
        sb_error(&err, SB_ECONFLICT,
                 "only a deployment that succeeded can be rolled back to (this one is %s)",
                 json_string_value(json_object_get(dep, "status")) ?: "unknown");
        api_fail(req, &err);
    } else {
        deploy(req, row, "rollback", "rollback", dep);
    }
    json_decref(dep);
    json_decref(row);
}

/* ---- the git webhook ----------------------------------------------------------------
 * Public: the request proves itself with the app's webhook secret (GitHub
 * X-Hub-Signature-256 over the raw body, or GitLab X-Gitlab-Token). Anything
 * else — no such app included, so ids cannot be probed — is the audited,
 * bounded 401 of every denial. A push to the app's branch deploys. */
void api_git_hook(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *row = NULL, *secrets = NULL;
    const char *gh = http_header(req, "X-Hub-Signature-256"), *gl = http_header(req, "X-Gitlab-Token");
    if (store_app_get(app->store, http_param(req, "app_id"), &row, &err)) {
        if (err.code != SB_ENOTFOUND)
            api_fail(req, &err);
        else
            api_deny_unauthenticated(req, "the webhook signature does not verify", "bad webhook signature");
        return;
    }
    if (apps_secrets_open(&app->apps, json_string_value(json_object_get(row, "id")), &secrets, &err)) {
        api_fail(req, &err);
        goto out;
    }
    const char *secret = json_string_value(json_object_get(secrets, "webhook"));
    bool ok = gh ? apps_github_signature_ok(secret, req->body.data, req->body.len, gh)
                 : apps_gitlab_token_ok(secret, gl);
    if (!ok) {
        api_deny_unauthenticated(req, "the webhook signature does not verify", "bad webhook signature");
        goto out;
    }
    const char *event = gh ? http_header(req, "X-GitHub-Event") : http_header(req, "X-Gitlab-Event");
    bool push = event && (strcmp(event, "push") == 0 || strcmp(event, "Push Hook") == 0);
    const char *branch = json_string_value(json_object_get(row, "branch"));
    if (!push || !apps_push_matches(req->json, branch)) {
        http_reply_json(req, 200,
                        json_pack("{s:b,s:s}", "deployed", 0, "reason",
                                  !push ? "not a push event" : "the push is not to the app's branch"));
        goto out;
    }
    char name[64];
    snprintf(name, sizeof name, "webhook:%s", gh ? "github" : "gitlab");
    struct event_actor a = {.kind = "system", .id = NULL, .name = name, .ip = req->client_ip};
    json_t *by = json_pack("{s:s,s:s,s:s,s:O}", "kind", "webhook", "name", name, "id", "", "after",
                           json_object_get(req->json, "after") ?: json_null());
    json_t *job = NULL;
    char dep[37];
    if (apps_deploy_request(&app->apps, row, "deploy", "webhook", NULL, &a, by, &job, dep, &err))
        api_fail(req, &err);
    else
        http_reply_json(req, 202,
                        json_pack("{s:b,s:o,s:s}", "deployed", 1, "job", job, "deployment_id", dep));
    json_decref(by);
out:
    json_decref(secrets);
    json_decref(row);
}
