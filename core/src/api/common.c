/* Helpers shared by the resource files. */
#include "api.h"

#include <string.h>

void api_actor(struct http_request *req, struct event_actor *out)
{
    const struct api_caller *c = req->user;
    out->kind = c ? c->kind : "system";
    out->id = c && c->id[0] ? c->id : NULL;
    out->name = c && c->name[0] ? c->name : "anonymous";
    out->ip = req->client_ip;
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
