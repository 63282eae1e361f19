/*
 * Roles (issue #20). The built-in roles (admin, operator, viewer) come from
 * the RBAC table and cannot be changed; an admin defines custom roles as
 * sets of the permissions the route table declares, and gives them to users
 * and tokens like the built-in ones. Every custom role also holds
 * `authenticated` and `self:read` (log out, change one's password, /me).
 *
 * GET    /api/v1/permissions   what a custom role may hold, with descriptions and routes
 * GET    /api/v1/roles         built-in and custom roles
 * POST   /api/v1/roles         {"name","description"?,"permissions":[…]}
 * GET    /api/v1/roles/{name}
 * PATCH  /api/v1/roles/{name}  {"description"?,"permissions"?}
 * DELETE /api/v1/roles/{name}  (409 while a user or live token holds it)
 *
 * A change takes effect at once: the credentials of the role's holders are
 * dropped from the caches and their event streams end (they reconnect under
 * the new permissions; other daemons do the same when they see the event).
 */
#include "api.h"

#include "../auth/auth.h"
#include "../events/events.h"

#include <stdio.h>
#include <string.h>

#define DESCRIPTION_MAX 200
#define ROLE_PERMS_MAX  128

static const char *const builtin_roles[] = {"admin", "operator", "viewer"};

static const char *const builtin_descriptions[] = {
    "everything",
    "everything but user and guest-link administration, deletions and the core's own engine",
    "read-only: every *:read permission, the audit log and events",
};

int api_role_perms(struct http_request *req, const char *role, const char *field, struct auth_perms *out,
                   struct sb_err *err)
{
    struct app *app = req->app;
    memset(out, 0, sizeof *out);
    if (!role || !*role)
        return sb_field_error(err, field, "%s is required: admin, operator, viewer or a custom role", field);
    if (auth_role_valid(role)) {
        auth_perms_builtin(role, 0, out);
        return 0;
    }
    if (auth_role_builtin(role) || auth_role_name_valid(role, field, NULL))
        return sb_field_error(err, field, "%s must be admin, operator, viewer or a custom role", field);
    json_t *r = NULL;
    int rc = store_role_get(app->store, role, &r, err);
    if (rc == SB_ENOTFOUND)
        return sb_field_error(err, field, "no role named '%s' (see GET /api/v1/roles)", role);
    if (rc)
        return rc;
    auth_perms_custom(json_object_get(r, "permissions"), out);
    json_decref(r);
    return 0;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* Checks "permissions": an array of assignable permission names. Returns
 * them normalized (table order, no duplicates) in *out (caller owns). */
static int check_permissions(json_t *v, const struct api_caller *me, json_t **out, struct sb_err *err)
{
    *out = NULL;
    if (!json_is_array(v))
        return sb_field_error(err, "permissions", "permissions must be an array of permission names");
    if (json_array_size(v) > ROLE_PERMS_MAX)
        return sb_field_error(err, "permissions", "at most %d permissions", ROLE_PERMS_MAX);
    size_t i;
    json_t *p;
    json_array_foreach(v, i, p)
    {
        const char *name = json_string_value(p);
        if (!name)
            return sb_field_error(err, "permissions", "permissions must be strings");
        if (strcmp(name, "authenticated") == 0 || strcmp(name, "self:read") == 0)
            continue; /* every custom role holds them */
        if (!auth_permission_assignable(name))
            return sb_field_error(err, "permissions",
                                  "unknown permission '%.80s' (see GET /api/v1/permissions)", name);
    }
    struct auth_perms set;
    auth_perms_custom(v, &set);
    if (!auth_perms_within(&set, &me->perms))
        return sb_field_error(err, "permissions", "a role cannot hold a permission you do not hold");
    /* Normalized: the table's order, without the implicit ones. */
    json_t *names = auth_perms_names(&set), *norm = json_array();
    json_array_foreach(names, i, p)
    {
        if (auth_permission_assignable(json_string_value(p)))
            json_array_append(norm, p);
    }
    json_decref(names);
    *out = norm;
    return 0;
}

static int check_description(json_t *v, struct sb_err *err)
{
    const char *d = json_string_value(v);
    if (!json_is_string(v) || strlen(d) > DESCRIPTION_MAX || !printable(d))
        return sb_field_error(err, "description", "description is text of at most %d printable characters",
                              DESCRIPTION_MAX);
    return 0;
}

static json_t *builtin_json(size_t i)
{
    struct auth_perms p;
    auth_perms_builtin(builtin_roles[i], 0, &p);
    return json_pack("{s:s, s:s, s:b, s:o}", "name", builtin_roles[i], "description", builtin_descriptions[i],
                     "builtin", true, "permissions", auth_perms_names(&p));
}

/* A custom role as the API shows it: with the implicit permissions
 * (effective) and its holders. */
static void custom_decorate(struct http_request *req, json_t *role)
{
    struct app *app = req->app;
    struct auth_perms p;
    auth_perms_custom(json_object_get(role, "permissions"), &p);
    json_object_set_new(role, "builtin", json_false());
    json_object_set_new(role, "effective_permissions", auth_perms_names(&p));
    int64_t users = 0, tokens = 0;
    if (store_role_usage(app->store, json_string_value(json_object_get(role, "name")), &users, &tokens, NULL,
                         NULL, NULL) == 0) {
        json_object_set_new(role, "users", json_integer(users));
        json_object_set_new(role, "tokens", json_integer(tokens));
    }
}

void api_permissions_list(struct http_request *req)
{
    json_t *cat = auth_permission_catalog();
    size_t i;
    json_t *p;
    json_array_foreach(cat, i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        json_t *routes = json_array();
        for (size_t r = 0; r < api_n_routes; r++) {
            if (strcmp(api_routes[r].permission, name) != 0)
                continue;
            char line[300];
            snprintf(line, sizeof line, "%s %s", api_routes[r].method, api_routes[r].pattern);
            json_array_append_new(routes, json_string(line));
        }
        json_object_set_new(p, "routes", routes);
    }
    json_t *implicit = json_pack("[s, s]", "authenticated", "self:read");
    http_reply_json(req, 200, json_pack("{s:o, s:o}", "permissions", cat, "implicit", implicit));
}

void api_roles_list(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *custom = NULL;
    if (store_roles_list(app->store, &custom, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *all = json_array();
    for (size_t i = 0; i < sizeof builtin_roles / sizeof builtin_roles[0]; i++)
        json_array_append_new(all, builtin_json(i));
    size_t i;
    json_t *r;
    json_array_foreach(custom, i, r)
    {
        custom_decorate(req, r);
        json_array_append(all, r);
    }
    json_decref(custom);
    http_reply_json(req, 200, json_pack("{s:o}", "roles", all));
}

void api_role_get(struct http_request *req)
{
    struct app *app = req->app;
    const char *name = http_param(req, "name");
    for (size_t i = 0; i < sizeof builtin_roles / sizeof builtin_roles[0]; i++)
        if (strcmp(name, builtin_roles[i]) == 0) {
            http_reply_json(req, 200, builtin_json(i));
            return;
        }
    struct sb_err err = {0};
    json_t *r = NULL;
    if (auth_role_name_valid(name, "name", NULL) || store_role_get(app->store, name, &r, &err)) {
        if (!err.code || err.code == SB_ENOTFOUND)
            sb_error(&err, SB_ENOTFOUND, "no such role");
        api_fail(req, &err);
        return;
    }
    custom_decorate(req, r);
    http_reply_json(req, 200, r);
}

/* Appends a role event made by this request. */
static int role_event(struct http_request *req, const char *name, const char *type, json_t *data,
                      struct sb_err *err)
{
    struct app *app = req->app;
    char stream[96];
    snprintf(stream, sizeof stream, "role/%s", name);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
    api_actor(req, &ev.actor);
    return store_append(app->store, &ev, NULL, err);
}

/* After a change: the holders' cached credentials go, and their streams
 * end (they reconnect under the new permissions). */
static void holders_refresh(struct http_request *req, json_t *user_ids, json_t *hashes)
{
    struct app *app = req->app;
    auth_forget(app->auth, hashes);
    size_t i;
    json_t *v;
    json_array_foreach(user_ids, i, v) events_close_streams_of(app->events, "user", json_string_value(v));
}

void api_role_create(struct http_request *req)
{
    static const char *const allowed[] = {"name", "description", "permissions", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *name = json_string_value(json_object_get(req->json, "name"));
    json_t *desc = json_object_get(req->json, "description");
    json_t *perms = NULL;
    if (auth_role_name_valid(name, "name", &err) || (desc && check_description(desc, &err)) ||
        check_permissions(json_object_get(req->json, "permissions"), req->user, &perms, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *data = json_pack("{s:s, s:s, s:O}", "name", name, "description",
                             desc ? json_string_value(desc) : "", "permissions", perms);
    int rc = role_event(req, name, "role.created", data, &err);
    json_decref(data);
    json_decref(perms);
    if (rc == SB_ECONFLICT)
        sb_error(&err, SB_ECONFLICT, "a role named '%s' exists", name);
    json_t *r = NULL;
    if (rc || store_role_get(app->store, name, &r, &err)) {
        api_fail(req, &err);
        return;
    }
    custom_decorate(req, r);
    http_reply_json(req, 201, r);
}

/* The custom role named by the path, or a reply (404, or 409 for a
 * built-in one). */
static int load_custom(struct http_request *req, json_t **out)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *name = http_param(req, "name");
    if (auth_role_builtin(name)) {
        http_reply_error(req, 409, "conflict", "'%s' is a built-in role: it cannot be changed", name);
        return -1;
    }
    if (auth_role_name_valid(name, "name", NULL) || store_role_get(app->store, name, out, &err)) {
        if (!err.code || err.code == SB_ENOTFOUND)
            sb_error(&err, SB_ENOTFOUND, "no such role");
        return api_fail(req, &err);
    }
    return 0;
}

void api_role_update(struct http_request *req)
{
    static const char *const allowed[] = {"description", "permissions", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *role = NULL;
    if (load_custom(req, &role))
        return;
    const char *name = http_param(req, "name");
    json_t *desc = json_object_get(req->json, "description");
    json_t *given = json_object_get(req->json, "permissions"), *perms = NULL;
    if ((desc && check_description(desc, &err)) ||
        (given && check_permissions(given, req->user, &perms, &err))) {
        json_decref(role);
        api_fail(req, &err);
        return;
    }
    json_decref(role);
    json_t *user_ids = json_array(), *hashes = json_array();
    int rc = store_role_usage(app->store, name, NULL, NULL, user_ids, hashes, &err);
    if (rc == 0) {
        json_t *data = json_pack("{s:s}", "name", name);
        if (desc)
            json_object_set(data, "description", desc);
        if (perms) {
            json_object_set(data, "permissions", perms);
            /* So every daemon ends the holders' streams (events/bus.c). */
            json_object_set(data, "users", user_ids);
        }
        rc = role_event(req, name, "role.updated", data, &err);
        json_decref(data);
    }
    if (rc == 0 && perms)
        holders_refresh(req, user_ids, hashes);
    json_decref(perms);
    json_decref(user_ids);
    json_decref(hashes);
    json_t *r = NULL;
    if (rc || store_role_get(app->store, name, &r, &err)) {
        api_fail(req, &err);
        return;
    }
    custom_decorate(req, r);
    http_reply_json(req, 200, r);
}

void api_role_delete(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *role = NULL;
    if (load_custom(req, &role))
        return;
    json_decref(role);
    const char *name = http_param(req, "name");
    int64_t users = 0, tokens = 0;
    int rc = store_role_usage(app->store, name, &users, &tokens, NULL, NULL, &err);
    if (rc == 0 && (users || tokens)) {
        http_reply_error(req, 409, "conflict",
                         "role '%s' is held by %lld user(s) and %lld token(s): give them another role first",
                         name, (long long)users, (long long)tokens);
        return;
    }
    if (rc == 0) {
        json_t *data = json_pack("{s:s}", "name", name);
        rc = role_event(req, name, "role.deleted", data, &err);
        json_decref(data);
    }
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 204, NULL);
}
