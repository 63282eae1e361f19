/*
 * Nodes: the REST resource of the registry (nodes/nodes.h), which does the
 * work; this file parses, checks the caller's scope, calls and replies.
 *
 * POST   /api/v1/nodes              register (connects once to verify)
 * GET    /api/v1/nodes[?label=k=v]  list (label filters, caller's scope)
 * GET    /api/v1/nodes/{id}         one node with its pool figures
 * PATCH  /api/v1/nodes/{id}         change fields (reconnects to verify)
 * DELETE /api/v1/nodes/{id}
 * POST   /api/v1/nodes/{id}/exec    run a command
 * POST   /api/v1/nodes/{id}/check   run the health check now
 */
#include "api.h"

#include "../auth/auth.h"
#include "../nodes/nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#define COMMAND_MAX 65536

/* Replies to a connection failure with a status that names the cause. */
static void reply_ssh_failure(struct http_request *req, const struct ssh_diag *d, const struct sb_err *err)
{
    switch (d->failure) {
    case SSH_FAIL_HOSTKEY:
        http_reply_error(req, 502, "hostkey_mismatch", "%s", err->msg);
        return;
    case SSH_FAIL_AUTH:
        http_reply_error(req, 502, "ssh_auth_failed", "%s", err->msg);
        return;
    case SSH_FAIL_KEY:
        http_reply_error(req, 502, "ssh_key_unreadable", "%s", err->msg);
        return;
    case SSH_FAIL_RESOLVE:
    case SSH_FAIL_CONNECT:
    case SSH_FAIL_HANDSHAKE:
        http_reply_error(req, 502, "ssh_unreachable", "%s", err->msg);
        return;
    case SSH_FAIL_POLICY:
        http_reply_error(req, 422, "validation_failed", "%s", err->msg);
        return;
    case SSH_FAIL_BUSY:
        http_add_header(req, "Retry-After", "1");
        http_reply_error(req, 503, "ssh_pool_busy", "%s", err->msg);
        return;
    default:
        api_fail(req, err);
    }
}

/* Maps a failed verification connection at registration or change. */
static void reply_verify_failure(struct http_request *req, const struct ssh_diag *d, struct sb_err *err)
{
    char msg[sizeof err->msg];
    sb_strlcpy(msg, err->msg, sizeof msg);
    if (d->failure == SSH_FAIL_HOSTKEY) {
        http_reply_error(req, 422, "validation_failed", "%s", err->msg);
        return;
    }
    if (d->failure == SSH_FAIL_POLICY) {
        sb_field_error(err, "host", "%s", msg);
        api_fail(req, err);
        return;
    }
    if (d->failure == SSH_FAIL_KEY) {
        sb_field_error(err, "private_key", "%s", msg);
        api_fail(req, err);
        return;
    }
    if (d->failure == SSH_FAIL_AUTH && strcmp(d->key_type, "ssh-rsa") == 0) {
        sb_field_error(err, "private_key", "%s", msg);
        api_fail(req, err);
        return;
    }
    reply_ssh_failure(req, d, err);
}

/* Which engine a node reaches is a privilege: "local" is the core's own
 * Docker engine (every container of the control plane), so only a caller
 * holding nodes:local_engine (admins) may point a node at it, on
 * registration and on every change. Replies 403 and returns -1. */
static int check_engine_allowed(struct http_request *req, json_t *docker, json_t *current)
{
    const char *want = json_string_value(docker);
    if (!want || strcmp(want, "local") != 0)
        return 0;
    const char *have = json_string_value(current);
    if (have && strcmp(have, "local") == 0)
        return 0; /* unchanged */
    const struct api_caller *c = req->user;
    if (c && auth_caller_allows(c, "nodes:local_engine"))
        return 0;
    http_reply_error(req, 403, "forbidden",
                     "only an admin may point a node at the core's local Docker engine (docker: \"local\")");
    return -1;
}

/* ---- POST /api/v1/nodes --------------------------------------------------- */

static const char *const node_fields[] = {"name",
                                          "host",
                                          "port",
                                          "ssh_user",
                                          "private_key",
                                          "passphrase",
                                          "labels",
                                          "docker",
                                          "generate_key",
                                          "host_key_fingerprint",
                                          "connection",
                                          "tunnel_public_key",
                                          NULL};

/* Replies to a failed registry command. */
static void reply_command_failure(struct http_request *req, const struct ssh_diag *d, struct sb_err *err)
{
    if (d->failure != SSH_FAIL_NONE)
        reply_verify_failure(req, d, err);
    else
        api_fail(req, err);
}

void api_node_create(struct http_request *req)
{
    if (api_check_fields(req, node_fields))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    struct nodes_input in;
    if (nodes_input_read(req->json, true, &in, &err)) {
        api_fail(req, &err);
        return;
    }
    if (in.labels && !api_node_visible(req, in.labels)) {
        http_reply_error(req, 403, "forbidden", "the node's labels are outside your scope");
        return;
    }
    if (check_engine_allowed(req, in.docker, NULL))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    json_t *node = NULL;
    struct ssh_diag d;
    if (nodes_register(app->nodes, &in, &actor, &node, &d, &err)) {
        reply_command_failure(req, &d, &err);
        return;
    }
    nodes_add_pool(app->nodes, node);
    nodes_add_tunnel(app->nodes, node);
    http_reply_json(req, 201, node);
}

/* ---- GET ------------------------------------------------------------------- */

/* What a caller without nodes:connection (a guest: an auditor) sees of a
 * node: what it is and how it is doing, never how to reach it (no SSH host,
 * port, user, host key or key, no check error text, which names the
 * address, and no uname, which names the host). */
static const char *const PUBLIC_FIELDS[] = {"id",
                                            "name",
                                            "labels",
                                            "docker",
                                            "status",
                                            "status_changed_at",
                                            "agent_status",
                                            "agent_status_changed_at",
                                            "agent_interval_ms",
                                            "docker_status",
                                            "docker_status_changed_at",
                                            "created_at",
                                            "updated_at",
                                            "last_check",
                                            "connection",
                                            "tunnel_status",
                                            "tunnel_status_changed_at",
                                            "tunnel_connected_since",
                                            "tunnel_first_up_at",
                                            "tunnel_reconnects",
                                            NULL};

/* PUBLIC_FIELDS as the JSON array store_node_list_view takes: made once,
 * not per request. */
static char *public_fields_text;
static void public_fields_make(void)
{
    json_t *a = json_array();
    for (size_t i = 0; PUBLIC_FIELDS[i]; i++)
        json_array_append_new(a, json_string(PUBLIC_FIELDS[i]));
    public_fields_text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
}

static const char *public_fields_json(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, public_fields_make);
    return public_fields_text;
}

static bool sees_connection(const struct http_request *req)
{
    const struct api_caller *c = req->user;
    return c && auth_caller_allows(c, "nodes:connection");
}

static void node_without_connection(const struct http_request *req, json_t *node)
{
    if (sees_connection(req))
        return;
    const char *const *keep = PUBLIC_FIELDS;
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(node, tmp, k, v)
    {
        bool kept = false;
        for (size_t i = 0; keep[i] && !kept; i++)
            kept = strcmp(keep[i], k) == 0;
        if (!kept)
            json_object_del(node, k);
    }
    json_t *check = json_object_get(node, "last_check");
    json_object_del(check, "reason");
    json_object_del(check, "uname");
    json_object_del(json_object_get(check, "docker"), "reason");
}

/* The list is PostgreSQL's JSON passed through: the scope, the filter and
 * the fields a caller may see are all applied in the query (issue #23: the
 * parse and re-serialization were most of the cost). */
void api_node_list(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *filter = http_query(req, "label");
    if (filter && strlen(filter) > 500) {
        http_reply_error(req, 400, "bad_parameter", "label filter is too long");
        return;
    }
    const struct api_caller *c = req->user;
    char *scope = c && c->node_labels ? json_dumps(c->node_labels, JSON_COMPACT) : NULL;
    json_t *pairs, *keys;
    nodes_label_filter_parse(filter, &pairs, &keys);
    char *pairs_text = json_array_size(pairs) ? json_dumps(pairs, JSON_COMPACT) : NULL;
    char *keys_text = json_array_size(keys) ? json_dumps(keys, JSON_COMPACT) : NULL;
    const char *fields_text = sees_connection(req) ? NULL : public_fields_json();
    char *body = NULL;
    size_t len = 0;
    int rc = nodes_list_view(app->nodes, scope, pairs_text, keys_text, fields_text, &body, &len, &err);
    free(scope);
    free(pairs_text);
    free(keys_text);
    json_decref(pairs);
    json_decref(keys);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_take(req, 200, "application/json", body, len);
}

void api_node_get(struct http_request *req)
{
    struct app *app = req->app;
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    nodes_add_pool(app->nodes, node);
    nodes_add_last_check(app->nodes, node);
    nodes_add_tunnel(app->nodes, node);
    node_without_connection(req, node);
    http_reply_json(req, 200, node);
}

/* ---- PATCH ------------------------------------------------------------------ */

void api_node_update(struct http_request *req)
{
    if (api_check_fields(req, node_fields))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    struct nodes_input in;
    if (nodes_input_read(req->json, false, &in, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    if (in.labels && !api_node_visible(req, in.labels)) {
        json_decref(node);
        http_reply_error(req, 403, "forbidden", "the new labels are outside your scope");
        return;
    }
    if (check_engine_allowed(req, in.docker, json_object_get(node, "docker"))) {
        json_decref(node);
        return;
    }
    struct event_actor actor;
    api_actor(req, &actor);
    json_t *updated = NULL;
    struct ssh_diag d;
    int rc = nodes_update(app->nodes, node, &in, &actor, &updated, &d, &err);
    json_decref(node);
    if (rc) {
        reply_command_failure(req, &d, &err);
        return;
    }
    nodes_add_pool(app->nodes, updated);
    http_reply_json(req, 200, updated);
}

/* ---- DELETE ------------------------------------------------------------------ */

void api_node_delete(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    int rc = nodes_delete(app->nodes, node, &actor, &err);
    json_decref(node);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 204, NULL);
}

/* ---- POST /exec ---------------------------------------------------------------- */

void api_node_exec(struct http_request *req)
{
    static const char *const allowed[] = {"command", "timeout_seconds", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *cmd = json_object_get(req->json, "command");
    json_t *tmo = json_object_get(req->json, "timeout_seconds");
    if (!json_is_string(cmd) || json_string_length(cmd) == 0 || json_string_length(cmd) > COMMAND_MAX ||
        strlen(json_string_value(cmd)) != json_string_length(cmd)) {
        sb_field_error(&err, "command", "command must be a non-empty string of at most %d bytes without NUL",
                       COMMAND_MAX);
        api_fail(req, &err);
        return;
    }
    if (tmo && (!json_is_integer(tmo) || json_integer_value(tmo) < 1 || json_integer_value(tmo) > 3600)) {
        sb_field_error(&err, "timeout_seconds", "timeout_seconds must be a whole number from 1 to 3600");
        api_fail(req, &err);
        return;
    }
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    struct nodes_exec x = {.command = json_string_value(cmd),
                           .timeout_ms = (int)(tmo ? json_integer_value(tmo) : 60) * 1000};
    json_t *out = NULL;
    struct ssh_diag d;
    if (nodes_exec_run(app->nodes, node, &x, &actor, &out, &d, &err)) {
        reply_ssh_failure(req, &d, &err);
        return;
    }
    http_reply_json(req, 200, out);
}

/* ---- POST /check ---------------------------------------------------------------- */

void api_node_check(struct http_request *req)
{
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    json_t *out = NULL;
    nodes_check_now(((struct app *)req->app)->nodes, node, &out);
    json_decref(node);
    http_reply_json(req, 200, out);
}
