/*
 * API tokens for CI (tokens:manage). The secret ("sbx_…") is shown once, at
 * creation; only its sha256 is stored. A token's role never exceeds its
 * creator's, and its node scope is never wider.
 *
 * POST   /api/v1/tokens      {"name","role"?,"expires_in"?,"node_labels"?}
 * GET    /api/v1/tokens      the caller's tokens (every token for user admins)
 * DELETE /api/v1/tokens/{id}
 */
#include "api.h"

#include "../auth/auth.h"
#include "../events/events.h"

#include <stdio.h>
#include <string.h>

#define EXPIRES_MAX_S (366LL * 86400)

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* The event of a token change made by this request (stream: 96 bytes);
 * the store writes it with the token's row, in one transaction. */
static struct event_new token_event(struct http_request *req, const char *id, const char *type, json_t *data,
                                    char *stream)
{
    snprintf(stream, 96, "token/%s", id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
    api_actor(req, &ev.actor);
    return ev;
}

void api_token_create(struct http_request *req)
{
    static const char *const allowed[] = {"name", "role", "expires_in", "node_labels", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct sb_err err = {0};
    const char *name = json_string_value(json_object_get(req->json, "name"));
    json_t *role_v = json_object_get(req->json, "role");
    const char *role = role_v ? json_string_value(role_v) : me->role;
    json_t *expires_in = json_object_get(req->json, "expires_in");
    json_t *labels = json_object_get(req->json, "node_labels");
    struct auth_perms role_perms;
    if (!name || !*name || strlen(name) > 100 || !printable(name))
        sb_field_error(&err, "name", "name is required: 1 to 100 printable characters");
    else if (api_role_perms(req, role, "role", &role_perms, &err)) {
        /* named by the check */
    } else if (!auth_perms_within(&role_perms, &me->perms))
        sb_field_error(&err, "role", "a token cannot hold more than its creator (%s)", me->role);
    else if (expires_in && !json_is_null(expires_in) &&
             (!json_is_integer(expires_in) || json_integer_value(expires_in) < 1 ||
              json_integer_value(expires_in) > EXPIRES_MAX_S))
        sb_field_error(&err, "expires_in", "expires_in is seconds from 1 to %lld, or null for never",
                       EXPIRES_MAX_S);
    else if (api_check_node_labels(labels, &err)) {
        /* named by the check */
    } else if (json_is_object(labels) && !api_labels_within(labels, me->node_labels))
        sb_field_error(&err, "node_labels", "a token's node scope cannot be wider than its creator's");
    if (err.code || !me->user_id[0]) {
        if (!err.code)
            sb_error(&err, SB_EDENIED, "only users and their tokens can make tokens");
        api_fail(req, &err);
        return;
    }
    /* No selector given: the token inherits the creator's. */
    json_t *scope = json_is_object(labels) && json_object_size(labels) ? labels : me->node_labels;
    int64_t expires =
        json_is_integer(expires_in) ? time_now_us() + json_integer_value(expires_in) * 1000000 : 0;
    /* A token made with a token is its child: it expires no later than its
     * parent (a later or absent expiry is cut to the parent's) and is
     * revoked with it. */
    const char *parent = strcmp(me->kind, "token") == 0 ? me->id : NULL;
    if (parent && me->expires_us && (expires == 0 || expires > me->expires_us))
        expires = me->expires_us;
    char id[37], token[80], hash[65];
    uuid_v4(id);
    auth_token_new("sbx_", token, sizeof token, hash);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s}", "id", id, "name", name, "role", role, "user_id", me->user_id);
    if (expires) {
        char t[40];
        time_format_rfc3339(expires, t, sizeof t);
        json_object_set_new(o, "expires_at", json_string(t));
    } else {
        json_object_set_new(o, "expires_at", json_null());
    }
    json_object_set(o, "node_labels", scope ? scope : json_null());
    json_object_set_new(o, "parent_id", parent ? json_string(parent) : json_null());
    char stream[96];
    struct event_new ev = token_event(req, id, "token.created", o, stream);
    if (store_token_insert(app->store, &ev, id, me->user_id, parent, name, role, scope, hash, expires,
                           &err)) {
        json_decref(o);
        sodium_memzero(token, sizeof token);
        api_fail(req, &err);
        return;
    }
    json_object_set_new(o, "token", json_string(token));
    sodium_memzero(token, sizeof token);
    http_reply_json(req, 201, o);
}

void api_tokens_list(struct http_request *req)
{
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct sb_err err = {0};
    json_t *list = NULL;
    bool all = auth_caller_allows(me, "users:admin");
    if (store_tokens_list(app->store, all ? NULL : me->user_id, &list, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:o}", "tokens", list));
}

void api_token_revoke(struct http_request *req)
{
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct sb_err err = {0};
    const char *id = http_param(req, "id");
    bool all = auth_caller_allows(me, "users:admin");
    json_t *hashes = json_array(), *descendants = json_array();
    int rc = store_token_revoke_plan(app->store, id, all ? NULL : me->user_id, hashes, descendants, &err);
    if (rc == 0) {
        /* The event names the tokens revoked with it, so every daemon ends
         * their streams too (events/bus.c); it commits with the revocation. */
        json_t *d = json_pack("{s:s, s:O}", "id", id, "descendants", descendants);
        char stream[96];
        struct event_new ev = token_event(req, id, "token.revoked", d, stream);
        rc = store_token_revoke_commit(app->store, &ev, id, descendants, &err);
        json_decref(d);
    }
    if (rc == 0)
        auth_forget(app->auth, hashes);
    json_decref(hashes);
    if (rc) {
        json_decref(descendants);
        if (rc == SB_ENOTFOUND)
            sb_error(&err, SB_ENOTFOUND, "no such token");
        api_fail(req, &err);
        return;
    }
    events_close_streams_of(app->events, "token", id);
    size_t i;
    json_t *v;
    json_array_foreach(descendants, i, v) events_close_streams_of(app->events, "token", json_string_value(v));
    json_decref(descendants);
    http_reply_json(req, 204, NULL);
}
