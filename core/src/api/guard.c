/*
 * The guard: every non-public route passes here before its handler. One
 * place decides who the caller is (Authorization: Bearer, or the session
 * cookie with X-CSRF-Token for mutations) and whether the route's declared
 * permission is theirs (auth_caller_allows over the RBAC table). Denials (401, 403,
 * 429) and guest requests are audited through the windowed summarizer
 * (audit/audit.h): every one is counted, the first few per key and window
 * are events of their own, the rest end up in one summary event.
 *
 * Keys: unauthenticated denials (no credential, a bad one, an address over
 * --anon-ip-limit) are keyed by client address (an IPv6 /64) alone;
 * anonymous ones are never recorded one by one. A credential over its rate
 * is keyed by the credential (one event per window); CSRF and permission
 * denials by credential and route family. Guest requests by link, and
 * reading one's own grant (/me, permission self:read) is not a request worth
 * an event.
 */
#include "api.h"

#include "../audit/audit.h"
#include "../auth/auth.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PATH_PREFIX_MAX 128

/* The data of a denial or guest request event: the route pattern and a
 * bounded, escaped prefix of the path, never the whole of an outsider's URL. */
static json_t *request_data(struct http_request *req, int status, const char *reason)
{
    char path[PATH_PREFIX_MAX + 1];
    bool cut = audit_path_prefix(http_loggable_path(req), path, PATH_PREFIX_MAX);
    json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "method", req->method, "route", req->route->pattern,
                             "path", path, "permission", req->route->permission);
    if (!data)
        data = json_object();
    if (cut)
        json_object_set_new(data, "path_truncated", json_true());
    if (status)
        json_object_set_new(data, "status", json_integer(status));
    if (reason)
        json_object_set_new(data, "reason", json_string(reason));
    return data;
}

static void append_event(struct http_request *req, const char *type, const char *outcome, json_t *data)
{
    struct app *app = req->app;
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
}

/* The client address as a key: IPv4 as is, IPv6 by its /64 (one host
 * holds a whole /64). */
static void address_key(const char *ip, char *out, size_t outlen)
{
    struct in6_addr a6;
    if (strchr(ip, ':') && inet_pton(AF_INET6, ip, &a6) == 1) {
        memset(a6.s6_addr + 8, 0, 8);
        char text[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a6, text, sizeof text);
        snprintf(out, outlen, "%s/64", text);
        return;
    }
    sb_strlcpy(out, ip, outlen);
}

enum deny_key { KEY_ADDRESS, KEY_CREDENTIAL, KEY_CREDENTIAL_FAMILY };

static int deny(struct http_request *req, int status, const char *code, const char *message,
                const char *reason, enum deny_key keying, int allowance)
{
    struct app *app = req->app;
    const struct api_caller *c = req->user;
    char source[160], family[64];
    if (keying == KEY_ADDRESS || !c)
        address_key(req->client_ip, source, sizeof source);
    else
        snprintf(source, sizeof source, "%s:%s", c->kind, c->id);
    audit_route_family(req->route->pattern, family, sizeof family);
    json_t *data = request_data(req, status, reason);
    struct audit_occurrence o = {.kind = AUDIT_DENIAL,
                                 .source = source,
                                 .family = family,
                                 .per_family = keying == KEY_CREDENTIAL_FAMILY,
                                 .reason = reason,
                                 .allowance = allowance,
                                 .route = req->route->pattern,
                                 .sample = data};
    api_actor(req, &o.actor);
    if (!app->audit || audit_note(app->audit, &o))
        append_event(req, "access.denied", "denied", data);
    json_decref(data);
    http_reply_error(req, status, code, "%s", message);
    return -1;
}

int api_deny_unauthenticated(struct http_request *req, const char *message, const char *reason)
{
    return deny(req, 401, "unauthenticated", message, reason, KEY_ADDRESS, 3);
}

/* Whether requests of a guest on this route are audited. */
static bool guest_audited(const struct http_route *route)
{
    return strcmp(route->permission, "self:read") != 0;
}

void api_guest_request_note(struct http_request *req)
{
    struct app *app = req->app;
    const struct api_caller *c = req->user;
    if (!c)
        return;
    char source[96], family[64];
    snprintf(source, sizeof source, "guest:%s", c->id);
    audit_route_family(req->route->pattern, family, sizeof family);
    json_t *data = request_data(req, 0, NULL);
    struct audit_occurrence o = {.kind = AUDIT_GUEST,
                                 .source = source,
                                 .family = family,
                                 .reason = "request",
                                 .allowance = 1,
                                 .route = req->route->pattern,
                                 .sample = data};
    api_actor(req, &o.actor);
    if (!app->audit || audit_note(app->audit, &o))
        append_event(req, "guest.request", "success", data);
    json_decref(data);
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

    /* Per-address limit on unauthenticated requests, before any other work:
     * an address that sent too many requests without a valid credential
     * gets 429, unless its credential is one already known in memory. */
    char limit_key[200] = "";
    if (app->anon_ip_limit > 0) {
        char addr[160];
        address_key(req->client_ip, addr, sizeof addr);
        snprintf(limit_key, sizeof limit_key, "anon:%s", addr);
        int retry_after = 60;
        /* A request with a credential consults this daemon's counters only,
         * so authenticated traffic never waits on Redis for this. */
        bool has_credential = token && *token;
        if (has_credential ? auth_rate_blocked_here(app->auth, limit_key, app->anon_ip_limit, &retry_after)
                           : auth_rate_blocked(app->auth, limit_key, app->anon_ip_limit, &retry_after)) {
            struct api_caller *known = NULL;
            if (has_credential && auth_resolve_cached(app->auth, token, &known) == 0) {
                api_caller_free(known);
            } else {
                char ra[16];
                snprintf(ra, sizeof ra, "%d", retry_after > 0 ? retry_after : 1);
                http_add_header(req, "Retry-After", ra);
                return deny(req, 429, "rate_limited",
                            "too many unauthenticated requests from this address; slow down",
                            "address limited", KEY_ADDRESS, 0);
            }
        }
    }
    if (!token || !*token) {
        if (limit_key[0])
            auth_rate_hit(app->auth, limit_key);
        return deny(req, 401, "unauthenticated", "authentication required", "no credential", KEY_ADDRESS, 0);
    }

    struct api_caller *caller = NULL;
    char csrf[65] = "";
    bool limited = false;
    struct sb_err err = {0};
    int rc = auth_resolve(app->auth, token, &caller, csrf, &limited, &err);
    if (rc == SB_EUNAVAIL || rc == SB_ETIMEOUT) {
        http_reply_error(req, 503, "unavailable", "cannot check credentials now; try again");
        return -1;
    }
    if (rc) {
        if (limit_key[0])
            auth_rate_hit(app->auth, limit_key);
        return deny(req, 401, "unauthenticated", "invalid or expired credential", "invalid credential",
                    KEY_ADDRESS, 3);
    }
    req->user = caller;
    req->user_free = api_caller_free;

    if (limited) {
        http_add_header(req, "Retry-After", "1");
        return deny(req, 429, "rate_limited", "too many requests for this credential; slow down",
                    "rate limited", KEY_CREDENTIAL, 1);
    }
    if (from_cookie && !is_safe_method(req->method)) {
        const char *given = http_header(req, "X-CSRF-Token");
        char given_hash[65];
        if (given)
            auth_token_sha256(given, given_hash);
        if (!given || !csrf[0] || sodium_memcmp(given_hash, csrf, 64) != 0)
            return deny(req, 403, "csrf_failed",
                        "a cookie-authenticated change needs a valid X-CSRF-Token header", "csrf",
                        KEY_CREDENTIAL_FAMILY, 3);
    }
    if (!auth_caller_allows(caller, perm))
        return deny(req, 403, "forbidden", "this credential does not allow that", "permission",
                    KEY_CREDENTIAL_FAMILY, 3);
    if (strcmp(caller->kind, "guest") == 0 && guest_audited(req->route))
        api_guest_request_note(req);
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
    /* A guest request that is audited takes the worker path. */
    if (!auth_caller_allows(caller, perm) ||
        (strcmp(caller->kind, "guest") == 0 && guest_audited(req->route))) {
        api_caller_free(caller);
        return 0;
    }
    req->user = caller;
    req->user_free = api_caller_free;
    return 1;
}
