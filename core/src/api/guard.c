/*
 * The guard: every non-public route passes here before its handler. One
 * place decides who the caller is (Authorization: Bearer, or the session
 * cookie with X-CSRF-Token for mutations) and whether the route's declared
 * permission is theirs (auth_allows over the RBAC table). Denials (401, 403,
 * 429) are audit events; so is every request made with a guest link.
 */
#include "api.h"

#include "../auth/auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void audit_request(struct http_request *req, const char *type, const char *outcome, int status,
                          const char *reason)
{
    struct app *app = req->app;
    json_t *data = json_pack("{s:s, s:s, s:s}", "method", req->method, "path", http_loggable_path(req),
                             "permission", req->route->permission);
    if (!data)
        data = json_object(); /* a path that is not UTF-8 */
    if (status)
        json_object_set_new(data, "status", json_integer(status));
    if (reason)
        json_object_set_new(data, "reason", json_string(reason));
    const struct api_caller *c = req->user;
    char stream[96];
    if (c && strcmp(c->kind, "guest") == 0)
        snprintf(stream, sizeof stream, "guest_link/%s", c->id);
    else
        snprintf(stream, sizeof stream, "access");
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = outcome};
    api_actor(req, &ev.actor);
    struct sb_err err = {0};
    if (store_append(app->store, &ev, NULL, &err))
        log_warn("audit event not recorded", "type=%s detail=\"%s\"", type, err.msg);
    json_decref(data);
}

static int deny(struct http_request *req, int status, const char *code, const char *message,
                const char *reason)
{
    audit_request(req, "access.denied", "denied", status, reason);
    http_reply_error(req, status, code, "%s", message);
    return -1;
}

/* The credential of the request; *from_cookie says where it came from. */
static const char *credential(struct http_request *req, bool *from_cookie)
{
    *from_cookie = false;
    const char *h = http_header(req, "Authorization");
    if (h) {
        if (strncasecmp(h, "Bearer ", 7) != 0)
            return "";
        h += 7;
        while (*h == ' ')
            h++;
        return h;
    }
    const char *c = http_cookie(req, "sbx_session");
    if (c)
        *from_cookie = true;
    return c;
}

static bool is_safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0;
}

int api_guard(struct http_request *req)
{
    const char *perm = req->route->permission;
    if (strcmp(perm, "public") == 0 || strcmp(perm, "agent") == 0)
        return 0;
    struct app *app = req->app;
    bool from_cookie;
    const char *token = credential(req, &from_cookie);
    if (!token || !*token)
        return deny(req, 401, "unauthenticated", "authentication required", "no credential");

    struct api_caller *caller = NULL;
    char csrf[65] = "";
    bool limited = false;
    struct sb_err err = {0};
    int rc = auth_resolve(app->auth, token, &caller, csrf, &limited, &err);
    if (rc == SB_EUNAVAIL || rc == SB_ETIMEOUT) {
        http_reply_error(req, 503, "unavailable", "cannot check credentials now; try again");
        return -1;
    }
    if (rc)
        return deny(req, 401, "unauthenticated", "invalid or expired credential", "invalid credential");
    req->user = caller;
    req->user_free = api_caller_free;

    if (limited) {
        http_add_header(req, "Retry-After", "1");
        return deny(req, 429, "rate_limited", "too many requests for this credential; slow down",
                    "rate limited");
    }
    if (from_cookie && !is_safe_method(req->method)) {
        const char *given = http_header(req, "X-CSRF-Token");
        char given_hash[65];
        if (given)
            auth_token_sha256(given, given_hash);
        if (!given || !csrf[0] || sodium_memcmp(given_hash, csrf, 64) != 0)
            return deny(req, 403, "csrf_failed",
                        "a cookie-authenticated change needs a valid X-CSRF-Token header", "csrf");
    }
    if (!auth_allows(caller->role, caller->scopes, perm))
        return deny(req, 403, "forbidden", "this credential does not allow that", "permission");
    if (strcmp(caller->kind, "guest") == 0)
        audit_request(req, "guest.request", "success", 0, NULL);
    return 0;
}

int api_fast_guard(struct http_request *req)
{
    /* Only the plain case: a bearer credential already cached and allowed.
     * Everything else (cookies, guests, denials that need an audit event)
     * takes the worker path through api_guard. */
    const char *perm = req->route->permission;
    if (strcmp(perm, "public") == 0 || strcmp(perm, "agent") == 0)
        return 0;
    bool from_cookie;
    const char *token = credential(req, &from_cookie);
    if (!token || !*token || from_cookie)
        return 0;
    struct app *app = req->app;
    struct api_caller *caller = NULL;
    if (auth_resolve_cached(app->auth, token, &caller))
        return 0;
    if (!auth_allows(caller->role, caller->scopes, perm)) {
        api_caller_free(caller);
        return 0;
    }
    req->user = caller;
    req->user_free = api_caller_free;
    return 1;
}
