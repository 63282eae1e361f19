/* Helpers shared by the resource files. */
#include "api.h"

#include <stdlib.h>
#include <string.h>

void api_actor(struct http_request *req, struct event_actor *out)
{
    const struct api_caller *c = req->user;
    out->kind = c ? c->kind : "system";
    out->id = c && c->id[0] ? c->id : NULL;
    out->name = c && c->name[0] ? c->name : "anonymous";
    out->ip = req->client_ip;
}

bool api_node_visible(const struct http_request *req, json_t *node_labels)
{
    const struct api_caller *c = req->user;
    if (!c || !c->node_labels || json_object_size(c->node_labels) == 0)
        return true;
    const char *key;
    json_t *want;
    json_object_foreach(c->node_labels, key, want)
    {
        json_t *have = json_object_get(node_labels, key);
        if (!json_is_string(have) || !json_equal(have, want))
            return false;
    }
    return true;
}

bool api_labels_within(json_t *labels, json_t *ceiling)
{
    if (!ceiling || json_object_size(ceiling) == 0)
        return true;
    const char *k;
    json_t *v;
    json_object_foreach(ceiling, k, v)
    {
        if (!json_equal(json_object_get(labels, k), v))
            return false;
    }
    return true;
}

int api_node_load_visible(struct http_request *req, const char *id, json_t **node)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    int rc = store_node_get(app->store, id, node, &err);
    if (rc == 0 && !api_node_visible(req, json_object_get(*node, "labels"))) {
        json_decref(*node);
        *node = NULL;
        rc = sb_error(&err, SB_ENOTFOUND, "no such node");
    }
    return rc ? api_fail(req, &err) : 0;
}

int api_check_fields(struct http_request *req, const char *const *allowed)
{
    struct sb_err err = {0};
    if (http_json_check_fields(req->json, allowed, &err) == 0)
        return 0;
    return api_fail(req, &err);
}

int api_fail(struct http_request *req, const struct sb_err *err)
{
    http_reply_sb_err(req, err);
    return -1;
}
