/*
 * Users (users:admin). A user is a projection of user.* events; the
 * password hash is kept beside it (store/identity.c), never in an event.
 *
 * GET    /api/v1/users
 * POST   /api/v1/users       {"username","password","role","node_labels"?}
 * PATCH  /api/v1/users/{id}  {"role"?, "disabled"?, "password"?, "node_labels"?}
 * DELETE /api/v1/users/{id}
 */
#include "api.h"

#include "../auth/auth.h"
#include "../events/events.h"

#include <stdio.h>
#include <string.h>

/* node_labels: null, or an object of up to 16 string labels. */
int api_check_node_labels(json_t *labels, struct sb_err *err)
{
    static const struct labels_rule rule = {"node_labels", 16, 100, 100, NULL, true};
    return labels_check(labels, &rule, err);
}

/* Appends a user event made by this request; with password_hash, the
 * user's password is stored in the same transaction. */
static int user_event(struct http_request *req, const char *id, const char *type, json_t *data,
                      const char *password_hash, struct sb_err *err)
{
    struct app *app = req->app;
    char stream[96];
    snprintf(stream, sizeof stream, "user/%s", id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
    api_actor(req, &ev.actor);
    if (password_hash)
        return store_password_set(app->store, &ev, id, password_hash, err);
    return store_append(app->store, &ev, NULL, err);
}

static json_t *user_json(const struct store_user *u)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "id", u->id, "username", u->username, "role", u->role,
                          "disabled", u->disabled);
    json_object_set(o, "node_labels", u->node_labels ? u->node_labels : json_null());
    return o;
}

/* Revokes what a user holds and drops it from every cache. */
static void revoke_user(struct app *app, const char *user_id, bool tokens_too)
{
    json_t *hashes = json_array();
    struct sb_err err = {0};
    if (store_user_revoke_all(app->store, user_id, tokens_too, hashes, &err))
        log_warn("revoking credentials failed", "user=%s detail=\"%s\"", user_id, err.msg);
    auth_forget(app->auth, hashes);
    json_decref(hashes);
    /* After the revocation, so a stream that reconnects is refused. */
    events_close_streams_of(app->events, tokens_too ? "user" : "user_sessions", user_id);
}

void api_users_list(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *users = NULL;
    if (store_users_list(app->store, &users, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:o}", "users", users));
}

void api_user_create(struct http_request *req)
{
    static const char *const allowed[] = {"username", "password", "role", "node_labels", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *username = json_string_value(json_object_get(req->json, "username"));
    const char *password = json_string_value(json_object_get(req->json, "password"));
    const char *role = json_string_value(json_object_get(req->json, "role"));
    json_t *labels = json_object_get(req->json, "node_labels");
    if (auth_username_valid(username, &err) || auth_password_policy(password, &err) ||
        api_check_node_labels(labels, &err)) {
        api_fail(req, &err);
        return;
    }
    struct auth_perms role_perms;
    if (api_role_perms(req, role, "role", &role_perms, &err) ||
        (!auth_perms_within(&role_perms, &((const struct api_caller *)req->user)->perms) &&
         sb_field_error(&err, "role", "you cannot give a role that holds more than yours"))) {
        api_fail(req, &err);
        return;
    }
    char hash[AUTH_HASH_MAX];
    if (auth_password_hash(password, hash, &err)) {
        api_fail(req, &err);
        return;
    }
    char id[37];
    uuid_v4(id);
    json_t *data = json_pack("{s:s, s:s, s:s}", "id", id, "username", username, "role", role);
    if (json_is_object(labels) && json_object_size(labels))
        json_object_set(data, "node_labels", labels);
    int rc = user_event(req, id, "user.created", data, hash, &err);
    json_decref(data);
    if (rc == SB_ECONFLICT)
        sb_error(&err, SB_ECONFLICT, "username '%s' is taken", username);
    sodium_memzero(hash, sizeof hash);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    struct store_user u = {0};
    if (store_user_by_id(app->store, id, &u, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 201, user_json(&u));
    store_user_release(&u);
}

void api_user_update(struct http_request *req)
{
    static const char *const allowed[] = {"role", "disabled", "password", "node_labels", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct sb_err err = {0};
    struct store_user u = {0};
    if (store_user_by_id(app->store, http_param(req, "id"), &u, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *role = json_object_get(req->json, "role");
    json_t *disabled = json_object_get(req->json, "disabled");
    json_t *password = json_object_get(req->json, "password");
    json_t *labels = json_object_get(req->json, "node_labels");
    bool self = strcmp(me->user_id, u.id) == 0;
    struct auth_perms role_perms;
    if (role && api_role_perms(req, json_string_value(role), "role", &role_perms, &err)) {
        /* named by the check */
    } else if (role && !auth_perms_within(&role_perms, &me->perms))
        sb_field_error(&err, "role", "you cannot give a role that holds more than yours");
    else if (disabled && !json_is_boolean(disabled))
        sb_field_error(&err, "disabled", "disabled must be true or false");
    else if ((password && auth_password_policy(json_string_value(password), &err)) ||
             (labels && api_check_node_labels(labels, &err))) {
        /* named by the check */
    } else if (self && ((role && strcmp(json_string_value(role), u.role) != 0) || json_is_true(disabled)))
        sb_field_error(&err, role ? "role" : "disabled", "you cannot demote or disable yourself");
    if (err.code) {
        store_user_release(&u);
        api_fail(req, &err);
        return;
    }
    int rc = 0;
    if (password) {
        char hash[AUTH_HASH_MAX];
        rc = auth_password_hash(json_string_value(password), hash, &err);
        if (rc == 0) {
            json_t *d = json_pack("{s:s}", "id", u.id);
            rc = user_event(req, u.id, "user.password_changed", d, hash, &err);
            json_decref(d);
        }
        sodium_memzero(hash, sizeof hash);
        if (rc == 0) {
            if (!self)
                revoke_user(app, u.id, false); /* a reset ends the user's sessions */
        }
    }
    if (rc == 0 && (role || disabled || labels)) {
        json_t *d = json_pack("{s:s}", "id", u.id);
        if (role)
            json_object_set(d, "role", role);
        if (disabled)
            json_object_set(d, "disabled", disabled);
        if (labels)
            json_object_set(d, "node_labels", json_is_object(labels) ? labels : json_null());
        rc = user_event(req, u.id, "user.updated", d, NULL, &err);
        json_decref(d);
        if (rc == 0) {
            if (json_is_true(disabled))
                revoke_user(app, u.id, true);
            else {
                /* Cached callers (here and in Redis) carry the old role and labels. */
                json_t *hashes = json_array();
                store_user_credential_hashes(app->store, u.id, hashes, NULL);
                auth_forget(app->auth, hashes);
                json_decref(hashes);
            }
        }
    }
    store_user_release(&u);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    if (store_user_by_id(app->store, http_param(req, "id"), &u, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, user_json(&u));
    store_user_release(&u);
}

void api_user_delete(struct http_request *req)
{
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct sb_err err = {0};
    struct store_user u = {0};
    if (store_user_by_id(app->store, http_param(req, "id"), &u, &err)) {
        api_fail(req, &err);
        return;
    }
    if (strcmp(me->user_id, u.id) == 0) {
        store_user_release(&u);
        http_reply_error(req, 409, "conflict", "you cannot delete yourself");
        return;
    }
    json_t *d = json_pack("{s:s, s:s}", "id", u.id, "username", u.username);
    int rc = user_event(req, u.id, "user.deleted", d, NULL, &err);
    json_decref(d);
    if (rc == 0)
        revoke_user(app, u.id, true);
    store_user_release(&u);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 204, NULL);
}
