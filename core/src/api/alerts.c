/*
 * /api/v1/alerts — alerts, rules, silences and notification channels
 * (alerts/). Handlers parse, check scope, call the alerts service, reply.
 *
 * Node scope: an alert about a node exists for a label-scoped caller only
 * when the node is in its scope (alerts about no node — the audit chain —
 * only for unscoped callers). Rules and silences carry a node selector: a
 * scoped caller sees those that apply to all nodes or lie within its scope,
 * and changes only the latter (what it makes takes its scope). Channels are
 * shared by every scope: scoped callers read and test them, unscoped ones
 * change them. Secrets are answered masked.
 */
#include "api.h"

#include "../alerts/alerts.h"
#include "../jobs/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_alerts_list(struct http_request *req);
void api_alert_get(struct http_request *req);
void api_alert_ack(struct http_request *req);
void api_alert_rules_list(struct http_request *req);
void api_alert_rule_create(struct http_request *req);
void api_alert_rule_get(struct http_request *req);
void api_alert_rule_update(struct http_request *req);
void api_alert_rule_delete(struct http_request *req);
void api_alert_silences_list(struct http_request *req);
void api_alert_silence_create(struct http_request *req);
void api_alert_silence_get(struct http_request *req);
void api_alert_silence_delete(struct http_request *req);
void api_alert_channels_list(struct http_request *req);
void api_alert_channel_create(struct http_request *req);
void api_alert_channel_get(struct http_request *req);
void api_alert_channel_update(struct http_request *req);
void api_alert_channel_delete(struct http_request *req);
void api_alert_channel_test(struct http_request *req);

static json_t *scope_of(struct http_request *req)
{
    const struct api_caller *c = req->user;
    return c && json_is_object(c->node_labels) && json_object_size(c->node_labels) ? c->node_labels : NULL;
}

static bool ready(struct http_request *req)
{
    struct app *app = req->app;
    if (app->alerts)
        return true;
    http_reply_error(req, 503, "unavailable", "alerts are not running");
    return false;
}

/* ---- alerts ------------------------------------------------------------------ */

/* Node id → labels of every node, for filtering lists by scope. */
static json_t *node_labels_map(struct app *app)
{
    json_t *nodes = NULL, *map = json_object();
    struct sb_err err = {0};
    if (store_node_list(app->store, &nodes, &err) == 0) {
        size_t i;
        json_t *n;
        json_array_foreach(nodes, i, n)
            json_object_set(map, json_string_value(json_object_get(n, "id")), json_object_get(n, "labels"));
    }
    json_decref(nodes);
    return map;
}

static bool alert_visible(struct http_request *req, json_t *alert, json_t *labels_map)
{
    if (!scope_of(req))
        return true;
    const char *node = json_string_value(json_object_get(alert, "node_id"));
    json_t *labels = node ? json_object_get(labels_map, node) : NULL;
    return labels && api_node_visible(req, labels);
}

/* The {id} alert if the caller may see it; else replies and returns -1. */
static int alert_load(struct http_request *req, json_t **alert)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    if (store_alert_get(app->store, http_param(req, "id"), alert, &err))
        return api_fail(req, &err);
    json_t *map = scope_of(req) ? node_labels_map(app) : NULL;
    bool ok = alert_visible(req, *alert, map);
    json_decref(map);
    if (!ok) {
        json_decref(*alert);
        *alert = NULL;
        http_reply_error(req, 404, "not_found", "no such alert");
        return -1;
    }
    return 0;
}

void api_alerts_list(struct http_request *req)
{
    struct app *app = req->app;
    const char *state = http_query(req, "state");
    if (state && strcmp(state, "firing") != 0 && strcmp(state, "acknowledged") != 0 &&
        strcmp(state, "resolved") != 0 && strcmp(state, "open") != 0) {
        http_reply_error(req, 400, "bad_parameter", "state must be firing, acknowledged, resolved or open");
        return;
    }
    long limit;
    if (http_query_int(req, "limit", 100, 1, 1000, &limit))
        return;
    json_t *rows = NULL;
    struct sb_err err = {0};
    if (store_alerts_list(app->store, state, (int)limit, &rows, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *map = scope_of(req) ? node_labels_map(app) : NULL;
    json_t *out = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(rows, i, a)
    {
        if (alert_visible(req, a, map))
            json_array_append(out, a);
    }
    json_decref(map);
    json_decref(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "alerts", out));
}

void api_alert_get(struct http_request *req)
{
    struct app *app = req->app;
    json_t *alert;
    if (alert_load(req, &alert))
        return;
    json_t *deliveries = NULL;
    struct sb_err err = {0};
    if (store_alert_deliveries(app->store, json_string_value(json_object_get(alert, "id")), NULL, &deliveries,
                               &err)) {
        json_decref(alert);
        api_fail(req, &err);
        return;
    }
    json_object_set_new(alert, "deliveries", deliveries);
    http_reply_json(req, 200, alert);
}

void api_alert_ack(struct http_request *req)
{
    struct app *app = req->app;
    json_t *alert, *out = NULL;
    if (!ready(req) || alert_load(req, &alert))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    int rc = alerts_ack(app->alerts, alert, &actor, &out, &err);
    json_decref(alert);
    if (rc)
        api_fail(req, &err);
    else
        http_reply_json(req, 200, out);
}

/* ---- rules and silences (a node selector each) -------------------------------------- */

/* Visible: applies to every node, or lies within the caller's scope. */
static bool selector_visible(struct http_request *req, json_t *obj)
{
    json_t *scope = scope_of(req), *sel = json_object_get(obj, "node_labels");
    return !scope || !json_is_object(sel) || json_object_size(sel) == 0 || labels_match(scope, sel);
}

static bool selector_writable(struct http_request *req, json_t *obj)
{
    json_t *scope = scope_of(req), *sel = json_object_get(obj, "node_labels");
    return !scope || (json_is_object(sel) && labels_match(scope, sel));
}

void api_alert_rules_list(struct http_request *req)
{
    struct app *app = req->app;
    json_t *rows = NULL;
    struct sb_err err = {0};
    if (store_alert_rules_list(app->store, &rows, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        if (selector_visible(req, r))
            json_array_append(out, r);
    }
    json_decref(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "rules", out));
}

static int rule_load(struct http_request *req, json_t **rule)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    if (store_alert_rule_get(app->store, http_param(req, "id"), rule, &err))
        return api_fail(req, &err);
    if (!selector_visible(req, *rule)) {
        json_decref(*rule);
        *rule = NULL;
        http_reply_error(req, 404, "not_found", "no such rule");
        return -1;
    }
    return 0;
}

static int must_write(struct http_request *req, json_t *obj, const char *what)
{
    if (selector_writable(req, obj))
        return 0;
    http_reply_error(req, 403, "forbidden", "this %s applies beyond your node scope", what);
    return -1;
}

static void reply_result(struct http_request *req, int rc, int status, json_t *out, struct sb_err *err)
{
    if (rc == 0)
        http_reply_json(req, status, out);
    else if (err->code == SB_EDENIED)
        http_reply_error(req, 403, "forbidden", "%s", err->msg);
    else
        api_fail(req, err);
}

void api_alert_rule_create(struct http_request *req)
{
    struct app *app = req->app;
    if (!ready(req))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    json_t *out = NULL;
    struct sb_err err = {0};
    int rc = alerts_rule_create(app->alerts, req->json, scope_of(req), &actor, &out, &err);
    reply_result(req, rc, 201, out, &err);
}

void api_alert_rule_get(struct http_request *req)
{
    json_t *rule;
    if (rule_load(req, &rule) == 0)
        http_reply_json(req, 200, rule);
}

void api_alert_rule_update(struct http_request *req)
{
    struct app *app = req->app;
    json_t *rule, *out = NULL;
    if (!ready(req) || rule_load(req, &rule))
        return;
    if (must_write(req, rule, "rule")) {
        json_decref(rule);
        return;
    }
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    int rc = alerts_rule_update(app->alerts, rule, req->json, scope_of(req), &actor, &out, &err);
    json_decref(rule);
    reply_result(req, rc, 200, out, &err);
}

void api_alert_rule_delete(struct http_request *req)
{
    struct app *app = req->app;
    json_t *rule;
    if (!ready(req) || rule_load(req, &rule))
        return;
    if (must_write(req, rule, "rule")) {
        json_decref(rule);
        return;
    }
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    int rc = alerts_rule_delete(app->alerts, rule, &actor, &err);
    json_decref(rule);
    reply_result(req, rc, 204, NULL, &err);
}

void api_alert_silences_list(struct http_request *req)
{
    struct app *app = req->app;
    const char *state = http_query(req, "state");
    if (state && strcmp(state, "active") != 0 && strcmp(state, "ended") != 0 &&
        strcmp(state, "deleted") != 0) {
        http_reply_error(req, 400, "bad_parameter", "state must be active, ended or deleted");
        return;
    }
    json_t *rows = NULL;
    struct sb_err err = {0};
    if (store_alert_silences_list(app->store, state, &rows, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(rows, i, s)
    {
        if (selector_visible(req, s))
            json_array_append(out, s);
    }
    json_decref(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "silences", out));
}

static int silence_load(struct http_request *req, json_t **s)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    if (store_alert_silence_get(app->store, http_param(req, "id"), s, &err))
        return api_fail(req, &err);
    if (!selector_visible(req, *s)) {
        json_decref(*s);
        *s = NULL;
        http_reply_error(req, 404, "not_found", "no such silence");
        return -1;
    }
    return 0;
}

void api_alert_silence_create(struct http_request *req)
{
    struct app *app = req->app;
    if (!ready(req))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    json_t *out = NULL;
    struct sb_err err = {0};
    int rc = alerts_silence_create(app->alerts, req->json, scope_of(req), &actor, &out, &err);
    reply_result(req, rc, 201, out, &err);
}

void api_alert_silence_get(struct http_request *req)
{
    json_t *s;
    if (silence_load(req, &s) == 0)
        http_reply_json(req, 200, s);
}

void api_alert_silence_delete(struct http_request *req)
{
    struct app *app = req->app;
    json_t *s;
    if (!ready(req) || silence_load(req, &s))
        return;
    if (must_write(req, s, "silence")) {
        json_decref(s);
        return;
    }
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    int rc = alerts_silence_delete(app->alerts, s, &actor, &err);
    json_decref(s);
    reply_result(req, rc, 204, NULL, &err);
}

/* ---- channels ------------------------------------------------------------------- */

static int channel_load(struct http_request *req, json_t **c)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    if (store_alert_channel_get(app->store, http_param(req, "id"), c, &err))
        return api_fail(req, &err);
    return 0;
}

static int unscoped_only(struct http_request *req)
{
    if (!scope_of(req))
        return 0;
    http_reply_error(req, 403, "forbidden",
                     "channels are shared by every node scope: only an unscoped caller "
                     "changes them");
    return -1;
}

void api_alert_channels_list(struct http_request *req)
{
    struct app *app = req->app;
    json_t *rows = NULL;
    struct sb_err err = {0};
    if (store_alert_channels_list(app->store, &rows, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(rows, i, c) json_array_append_new(out, alerts_channel_view(c));
    json_decref(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "channels", out));
}

void api_alert_channel_create(struct http_request *req)
{
    struct app *app = req->app;
    if (!ready(req) || unscoped_only(req))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    json_t *out = NULL;
    struct sb_err err = {0};
    int rc = alerts_channel_create(app->alerts, req->json, &actor, &out, &err);
    reply_result(req, rc, 201, out, &err);
}

void api_alert_channel_get(struct http_request *req)
{
    struct app *app = req->app;
    json_t *c;
    if (channel_load(req, &c))
        return;
    json_t *v = alerts_channel_view(c), *tests = NULL;
    struct sb_err err = {0};
    if (store_alert_deliveries(app->store, NULL, json_string_value(json_object_get(c, "id")), &tests, &err) ==
        0)
        json_object_set_new(v, "tests", tests);
    json_decref(c);
    http_reply_json(req, 200, v);
}

void api_alert_channel_update(struct http_request *req)
{
    struct app *app = req->app;
    json_t *c, *out = NULL;
    if (!ready(req) || unscoped_only(req) || channel_load(req, &c))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    int rc = alerts_channel_update(app->alerts, c, req->json, &actor, &out, &err);
    json_decref(c);
    reply_result(req, rc, 200, out, &err);
}

void api_alert_channel_delete(struct http_request *req)
{
    struct app *app = req->app;
    json_t *c;
    if (!ready(req) || unscoped_only(req) || channel_load(req, &c))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    int rc = alerts_channel_delete(app->alerts, c, &actor, &err);
    json_decref(c);
    reply_result(req, rc, 204, NULL, &err);
}

void api_alert_channel_test(struct http_request *req)
{
    struct app *app = req->app;
    json_t *c, *job = NULL;
    if (!ready(req) || channel_load(req, &c))
        return;
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    int rc = alerts_channel_test(app->alerts, c, &actor, &job, &err);
    json_decref(c);
    if (rc)
        api_fail(req, &err);
    else
        http_reply_json(req, 202, json_pack("{s:o}", "job", job));
}
