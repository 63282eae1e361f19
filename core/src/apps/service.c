/*
 * The service layer: an app's sealed secrets, deployment requests (the
 * event, then the job), teardown and route ports.
 */
#include "internal.h"

#include "../docker/docker.h"
#include "../jobs/jobs.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int apps_secrets_open(const struct apps_env *e, const char *app_id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    char *sealed = NULL;
    int rc = store_app_secret_get(e->store, app_id, &sealed, err);
    if (rc)
        return rc;
    if (!sealed) {
        *out = json_pack("{s:{},s:s}", "env", "webhook", "");
        return 0;
    }
    struct buf plain;
    buf_init(&plain, 1 << 24);
    rc = crypto_open(e->key, sealed, &plain, err);
    free(sealed);
    if (rc == 0) {
        json_error_t je;
        *out = json_loadb(plain.data, plain.len, 0, &je);
        if (!json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = sb_error(err, SB_EINTERNAL, "the app's sealed secrets cannot be read");
        } else {
            if (!json_is_object(json_object_get(*out, "env")))
                json_object_set_new(*out, "env", json_object());
            if (!json_is_string(json_object_get(*out, "webhook")))
                json_object_set_new(*out, "webhook", json_string(""));
        }
    } else {
        rc = sb_error(err, SB_EINTERNAL, "the app's sealed secrets cannot be opened");
    }
    crypto_buf_wipe(&plain);
    return rc;
}

int apps_secrets_seal(const struct apps_env *e, const char *app_id, json_t *secrets, struct sb_err *err)
{
    char *text = json_dumps(secrets, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return sb_error(err, SB_ENOMEM, "out of memory");
    char *sealed = crypto_seal(e->key, text, strlen(text));
    sodium_memzero(text, strlen(text));
    free(text);
    if (!sealed)
        return sb_error(err, SB_ENOMEM, "cannot seal the app's secrets");
    int rc = store_app_secret_put(e->store, app_id, sealed, err);
    free(sealed);
    return rc;
}

int apps_deploy_request(const struct apps_env *e, json_t *app, const char *kind, const char *trigger,
                        json_t *of, const struct event_actor *actor, json_t *requested_by, json_t **job,
                        char deployment_id[37], struct sb_err *err)
{
    *job = NULL;
    const char *id = json_string_value(json_object_get(app, "id"));
    uuid_v4(deployment_id);
    json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:O}", "id", id, "deployment_id", deployment_id, "kind", kind,
                          "trigger", trigger, "requested_by", requested_by ? requested_by : json_null());
    json_object_set(d, "node_id", json_object_get(app, "node_id")); /* scopes the event */
    if (of) {
        json_object_set(d, "rollback_of", json_object_get(of, "id"));
        json_object_set(d, "commit", json_object_get(of, "commit"));
        json_object_set(d, "image", json_object_get(of, "image"));
        json_object_set(d, "image_id", json_object_get(of, "image_id"));
    }
    char stream[64];
    snprintf(stream, sizeof stream, "app/%s", id);
    struct event_new ev = {
        .stream = stream, .type = "app.deploy_requested", .data = d, .actor = *actor, .outcome = "success"};
    int64_t seq;
    /* recorded before the job exists, so it never lands after the job's own
     * outcome */
    int rc = store_append(e->store, &ev, &seq, err);
    if (rc) {
        json_decref(d);
        return rc;
    }
    json_t *args = json_pack("{s:s,s:s}", "app_id", id, "deployment_id", deployment_id);
    struct jobs_new in = {.kind = "app.deploy",
                          .target = stream,
                          .node_id = json_string_value(json_object_get(app, "node_id")),
                          .concurrency_key = stream,
                          .args = args,
                          .actor = *actor};
    rc = jobs_enqueue(e->jobs, &in, job, err);
    json_decref(args);
    if (rc) {
        json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:b,s:[]}", "id", id, "deployment_id", deployment_id, "step",
                              "queued", "reason", err->msg, "rolled_back", 0, "log_tail");
        json_object_set(f, "node_id", json_object_get(app, "node_id"));
        struct event_new fe = {
            .stream = stream, .type = "app.deploy_failed", .data = f, .actor = *actor, .outcome = "failure"};
        struct sb_err e2 = {0};
        store_append(e->store, &fe, &seq, &e2);
        json_decref(f);
    }
    json_decref(d);
    return rc;
}

int apps_teardown(const struct apps_env *e, json_t *app, struct sb_err *err)
{
    const char *id = json_string_value(json_object_get(app, "id"));
    char socket[DOCKER_SOCKET_MAX], name[128];
    int rc = docker_endpoint_for_node(e->docker, json_string_value(json_object_get(app, "node_id")), socket,
                                      sizeof socket, name, sizeof name, err);
    if (rc)
        return rc;
    struct buf path;
    buf_init(&path, 4096);
    char filter[160];
    snprintf(filter, sizeof filter, "{\"label\":[\"%s=%s\"]}", APPS_LABEL_APP, id);
    buf_puts(&path, "/containers/json?all=1&filters=");
    docker_urlencode(filter, &path);
    json_t *list = NULL;
    rc = docker_call(socket, "GET", path.data, NULL, 0, &list, NULL, err);
    buf_release(&path);
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        char p[200];
        snprintf(p, sizeof p, "/containers/%s?force=1", json_string_value(json_object_get(c, "Id")));
        struct sb_err e2 = {0};
        if (docker_call(socket, "DELETE", p, NULL, 0, NULL, NULL, &e2) && e2.code != SB_ENOTFOUND && rc == 0)
            rc = sb_error(err, e2.code, "%s", e2.msg);
    }
    json_decref(list);
    if (rc == 0 && strcmp(json_string_value(json_object_get(app, "node_id")), DOCKER_LOCAL_NODE) == 0)
        rc = apps_caddy_unroute(e, id, err);
    return rc;
}

int apps_route_port_pick(const struct apps_env *e, int *port, struct sb_err *err)
{
    *port = 0;
    if (!e->caddy_admin || !*e->caddy_admin || e->route_port_min <= 0)
        return 0;
    json_t *list = NULL;
    int rc = store_app_list(e->store, &list, err);
    if (rc)
        return rc;
    for (int p = e->route_port_min; p <= e->route_port_max; p++) {
        bool taken = false;
        size_t i;
        json_t *a;
        json_array_foreach(list, i, a) if (json_integer_value(json_object_get(a, "route_port")) == p) taken =
            true;
        if (!taken) {
            *port = p;
            break;
        }
    }
    json_decref(list);
    if (!*port)
        return sb_error(err, SB_ECONFLICT, "every route port of --app-route-ports is taken");
    return 0;
}
