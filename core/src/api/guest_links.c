/*
 * Guest links for auditors (guest_links:admin): read-only scopes, at most
 * seven days, revocable. The link is /g/<token>; the token also works as a
 * bearer token. Expiry and revocation are checked on every request, and
 * every request made with a link is an audit event (api_guard).
 *
 * POST   /api/v1/guest-links {"scopes":[…],"ttl_seconds":N,"note"?,"node_labels"?}
 * GET    /api/v1/guest-links
 * DELETE /api/v1/guest-links/{id}
 */
#include "api.h"

#include "../auth/auth.h"
#include "../events/events.h"

#include <stdio.h>
#include <string.h>

#define TTL_MAX_S (7 * 86400)

/* The event of a link change made by this request (stream: 96 bytes); the
 * store writes it with the link's row, in one transaction. */
static struct event_new link_event(struct http_request *req, const char *id, const char *type, json_t *data,
                                   char *stream)
{
    snprintf(stream, 96, "guest_link/%s", id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
    api_actor(req, &ev.actor);
    return ev;
}

void api_guest_link_create(struct http_request *req)
{
    static const char *const allowed[] = {"scopes", "ttl_seconds", "note", "node_labels", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct sb_err err = {0};
    json_t *scopes = json_object_get(req->json, "scopes");
    json_t *ttl = json_object_get(req->json, "ttl_seconds");
    json_t *note_v = json_object_get(req->json, "note");
    json_t *labels = json_object_get(req->json, "node_labels");
    const char *note = note_v ? json_string_value(note_v) : "";
    if (!json_is_array(scopes) || json_array_size(scopes) == 0 || json_array_size(scopes) > 6) {
        sb_field_error(&err, "scopes",
                       "scopes is a non-empty list of view:metrics, view:containers, view:logs, "
                       "view:deployments, view:audit, view:stacks, view:recordings");
    } else {
        size_t i;
        json_t *s;
        json_array_foreach(scopes, i, s)
        {
            if (!auth_scope_bit(json_string_value(s))) {
                sb_field_error(&err, "scopes",
                               "unknown scope; use view:metrics, view:containers, view:logs, "
                               "view:deployments, view:audit, view:stacks or view:recordings");
                break;
            }
        }
    }
    if (err.code) {
        /* already named */
    } else if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 || json_integer_value(ttl) > TTL_MAX_S)
        sb_field_error(&err, "ttl_seconds", "ttl_seconds is from 1 to %d (seven days)", TTL_MAX_S);
    else if (!note || strlen(note) > 200)
        sb_field_error(&err, "note", "note is a string of at most 200 characters");
    else if (api_check_node_labels(labels, &err) == 0 && json_is_object(labels) &&
             !api_labels_within(labels, me->node_labels))
        sb_field_error(&err, "node_labels", "a guest link's node scope cannot be wider than its creator's");
    for (const char *p = note ? note : ""; !err.code && *p; p++)
        if ((unsigned char)*p < 0x20)
            sb_field_error(&err, "note", "note may not hold control characters");
    if (err.code) {
        api_fail(req, &err);
        return;
    }
    /* No selector given: the link takes its creator's (a scoped admin's link
     * sees no more than the admin). */
    json_t *scope = json_is_object(labels) && json_object_size(labels)     ? labels
                    : me->node_labels && json_object_size(me->node_labels) ? me->node_labels
                                                                           : NULL;
    int64_t expires = time_now_us() + json_integer_value(ttl) * 1000000;
    char id[37], token[80], hash[65];
    uuid_v4(id);
    auth_token_new("sbg_", token, sizeof token, hash);
    char t[40];
    time_format_rfc3339(expires, t, sizeof t);
    json_t *o = json_pack("{s:s, s:O, s:s, s:s}", "id", id, "scopes", scopes, "note", note, "expires_at", t);
    json_object_set(o, "node_labels", scope ? scope : json_null());
    char stream[96];
    struct event_new ev = link_event(req, id, "guest_link.created", o, stream);
    int rc = store_guest_insert(app->store, &ev, id, me->user_id, note, scopes, scope, hash, expires, &err);
    if (rc) {
        json_decref(o);
        sodium_memzero(token, sizeof token);
        api_fail(req, &err);
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "/g/%s", token);
    json_object_set_new(o, "token", json_string(token));
    json_object_set_new(o, "url", json_string(url));
    sodium_memzero(token, sizeof token);
    sodium_memzero(url, sizeof url);
    http_reply_json(req, 201, o);
}

void api_guest_links_list(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *list = NULL;
    if (store_guests_list(app->store, &list, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:o}", "guest_links", list));
}

void api_guest_link_revoke(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *id = http_param(req, "id");
    json_t *hashes = json_array();
    json_t *d = json_pack("{s:s}", "id", id);
    char stream[96];
    struct event_new ev = link_event(req, id, "guest_link.revoked", d, stream);
    int rc = store_guest_revoke(app->store, &ev, id, hashes, &err);
    json_decref(d);
    if (rc == 0)
        auth_forget(app->auth, hashes);
    json_decref(hashes);
    if (rc) {
        if (rc == SB_ENOTFOUND)
            sb_error(&err, SB_ENOTFOUND, "no such guest link");
        api_fail(req, &err);
        return;
    }
    events_close_streams_of(app->events, "guest", id);
    http_reply_json(req, 204, NULL);
}
