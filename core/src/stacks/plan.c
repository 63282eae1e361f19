/*
 * The config hash, the start order and the plan: pure functions of the
 * model, the image ids and the containers that exist (their labels).
 *
 * Per service:
 *   create      no container of the service exists
 *   unchanged   every container carries the desired hash, and as many as
 *               the replica count
 *   scale       the hash matches but the count differs
 *   recreate    some container carries another hash: start-first (new one
 *               started and health-gated before the old one stops) unless
 *               the service publishes a host port, which two containers
 *               cannot hold at once: stop-first, with the expected gap
 *   remove      containers of a service the model no longer has
 */
#include "internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stacks_config_hash(json_t *service, const char *image_id, char out[65])
{
    json_t *s = json_deep_copy(service);
    json_object_del(s, "replicas");
    /* the route is Caddy's, not the container's: changing it re-routes */
    json_t *x = json_object_get(s, "x-serverbox");
    if (json_object_get(x, "route")) {
        json_object_del(x, "route");
        if (!json_object_size(x))
            json_object_del(s, "x-serverbox");
    }
    if (image_id && image_id[0])
        json_object_set_new(s, "image", json_string(image_id));
    char *text = json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS);
    uint8_t h[32];
    crypto_hash_sha256(h, (const unsigned char *)(text ? text : ""), text ? strlen(text) : 0);
    hex_encode(h, 32, out);
    free(text);
    json_decref(s);
}

int stacks_order(json_t *model, json_t **order, struct sb_err *err)
{
    json_t *services = json_object_get(model, "services");
    json_t *out = json_array(), *done = json_object();
    size_t total = json_object_size(services);
    /* Kahn's algorithm, in name order among the ready ones for a stable plan */
    while (json_array_size(out) < total) {
        const char *best = NULL;
        const char *name;
        json_t *s;
        json_object_foreach(services, name, s)
        {
            if (json_object_get(done, name))
                continue;
            bool ready = true;
            const char *dep;
            json_t *cond;
            json_object_foreach(json_object_get(s, "depends_on"), dep, cond) if (!json_object_get(done, dep))
                ready = false;
            if (ready && (!best || strcmp(name, best) < 0))
                best = name;
        }
        if (!best) {
            /* name one service on the cycle */
            json_object_foreach(services, name, s) if (!json_object_get(done, name))
            {
                best = name;
                break;
            }
            char path[600];
            snprintf(path, sizeof path, "services.%s.depends_on", best);
            sb_field_error(err, path, "%s: dependency cycle", path);
            json_decref(out);
            json_decref(done);
            return SB_EINVAL;
        }
        json_array_append_new(out, json_string(best));
        json_object_set_new(done, best, json_true());
    }
    json_decref(done);
    *order = out;
    return 0;
}

static bool publishes_host_port(json_t *svc)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(svc, "ports"), i,
                       p) if (json_integer_value(json_object_get(p, "published"))) return true;
    return false;
}

/* Worst-case seconds a stop-first service is down: the stop grace (10 s),
 * then the new container's start and its health gate (start period plus
 * one interval, or about a second without a healthcheck). */
static int expected_gap_s(json_t *svc)
{
    json_t *hc = json_object_get(svc, "healthcheck");
    long long s = 10;
    if (hc && strcmp(json_string_value(json_array_get(json_object_get(hc, "test"), 0)), "NONE") != 0)
        s += (json_integer_value(json_object_get(hc, "start_period_ns")) +
              json_integer_value(json_object_get(hc, "interval_ns"))) /
             1000000000LL;
    else
        s += 1;
    return (int)s;
}

static const char *label_of(json_t *container, const char *k)
{
    return json_string_value(json_object_get(json_object_get(container, "labels"), k));
}

int stacks_plan(json_t *model, const char *project, json_t *image_ids, json_t *containers, json_t **plan,
                struct sb_err *err)
{
    json_t *order;
    int rc = stacks_order(model, &order, err);
    if (rc)
        return rc;
    json_t *services = json_object_get(model, "services");
    json_t *steps = json_array();
    size_t i;
    json_t *nv;
    json_array_foreach(order, i, nv)
    {
        const char *name = json_string_value(nv);
        json_t *svc = json_object_get(services, name);
        char hash[65];
        stacks_config_hash(svc, json_string_value(json_object_get(image_ids, name)), hash);
        int replicas = (int)json_integer_value(json_object_get(svc, "replicas"));
        int existing = 0, matching = 0;
        json_t *stale = json_array(), *current = json_array();
        size_t j;
        json_t *ct;
        json_array_foreach(containers, j, ct)
        {
            const char *svc_label = label_of(ct, LABEL_SERVICE);
            if (!svc_label || strcmp(svc_label, name) != 0)
                continue;
            existing++;
            const char *h = label_of(ct, LABEL_HASH);
            const char *id = json_string_value(json_object_get(ct, "id"));
            if (h && strcmp(h, hash) == 0) {
                matching++;
                json_array_append_new(current, json_string(id));
            } else {
                json_array_append_new(stale, json_string(id));
            }
        }
        const char *action, *strategy = NULL, *reason;
        int gap = 0;
        if (existing == 0) {
            action = replicas ? "create" : "unchanged";
            reason = replicas ? "new service" : "zero replicas";
        } else if (json_array_size(stale)) {
            action = "recreate";
            reason = "configuration or image changed";
            if (publishes_host_port(svc)) {
                strategy = "stop-first";
                gap = expected_gap_s(svc);
            } else {
                strategy = "start-first";
            }
        } else if (matching != replicas) {
            action = "scale";
            reason = matching < replicas ? "more replicas wanted" : "fewer replicas wanted";
        } else {
            action = "unchanged";
            reason = "up to date";
        }
        json_t *step = json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:o,s:o}", "service", name, "action", action,
                                 "reason", reason, "replicas", replicas, "existing", existing, "config_hash",
                                 hash, "remove", stale, "keep", current);
        if (strategy)
            json_object_set_new(step, "strategy", json_string(strategy));
        if (strcmp(action, "recreate") == 0 && strcmp(strategy, "stop-first") == 0) {
            json_object_set_new(step, "expected_gap_s", json_integer(gap));
            char why[200];
            snprintf(why, sizeof why,
                     "publishes a host port, which two containers cannot hold: the service is down for up "
                     "to about %d s while it is recreated",
                     gap);
            json_object_set_new(step, "note", json_string(why));
        }
        json_array_append_new(steps, step);
    }
    /* services that are gone */
    json_t *gone = json_object();
    size_t j;
    json_t *ct;
    json_array_foreach(containers, j, ct)
    {
        const char *svc_label = label_of(ct, LABEL_SERVICE);
        if (!svc_label || json_object_get(services, svc_label))
            continue;
        json_t *ids = json_object_get(gone, svc_label);
        if (!ids) {
            ids = json_array();
            json_object_set_new(gone, svc_label, ids);
        }
        json_array_append_new(ids, json_string(json_string_value(json_object_get(ct, "id"))));
    }
    const char *gname;
    json_t *ids;
    json_object_foreach(gone, gname, ids)
    {
        json_array_append_new(steps,
                              json_pack("{s:s,s:s,s:s,s:i,s:I,s:O}", "service", gname, "action", "remove",
                                        "reason", "no longer in the compose file", "replicas", 0, "existing",
                                        (json_int_t)json_array_size(ids), "remove", ids));
    }
    json_decref(gone);
    /* networks and volumes the services use */
    json_t *nets = json_array(), *vols = json_array();
    json_t *used_nets = json_object();
    const char *name;
    json_t *svc;
    json_object_foreach(services, name, svc)
    {
        size_t k;
        json_t *n;
        json_array_foreach(json_object_get(svc, "networks"), k, n)
            json_object_set_new(used_nets, json_string_value(n), json_true());
    }
    const char *nn;
    json_t *nvv;
    json_object_foreach(used_nets, nn, nvv)
    {
        json_t *decl = json_object_get(json_object_get(model, "networks"), nn);
        char full[200];
        stacks_object_name(project, nn, full, sizeof full);
        json_array_append_new(nets, json_pack("{s:s,s:s,s:b}", "network", nn, "name",
                                              json_is_true(json_object_get(decl, "external")) ? nn : full,
                                              "external", json_is_true(json_object_get(decl, "external"))));
    }
    json_decref(used_nets);
    json_object_foreach(json_object_get(model, "volumes"), nn, nvv)
    {
        char full[200];
        stacks_object_name(project, nn, full, sizeof full);
        bool ext = json_is_true(json_object_get(nvv, "external"));
        json_array_append_new(
            vols, json_pack("{s:s,s:s,s:b}", "volume", nn, "name", ext ? nn : full, "external", ext));
    }
    json_decref(order);
    *plan = json_pack("{s:s,s:o,s:o,s:o}", "project", project, "services", steps, "networks", nets, "volumes",
                      vols);
    return 0;
}

void stacks_plan_summary(json_t *plan, struct buf *out)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(plan, "services"), i, s)
    {
        const char *strategy = json_string_value(json_object_get(s, "strategy"));
        buf_printf(out, "%s%s: %s%s%s", i ? ", " : "", json_string_value(json_object_get(s, "service")),
                   json_string_value(json_object_get(s, "action")), strategy ? " " : "",
                   strategy ? strategy : "");
    }
}
