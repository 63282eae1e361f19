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
    return !c || labels_match(c->node_labels, node_labels);
}

bool api_labels_within(json_t *labels, json_t *ceiling)
{
    return labels_match(ceiling, labels);
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
