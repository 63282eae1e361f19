/*
 * Caddy's admin API (2.6) over libcurl: TCP or a unix socket
 * (scripts/check-layers.sh allows libcurl here). See caddy.h.
 */
#include "caddy.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX ((size_t)1 << 20)

static bool off(const char *admin)
{
    return !admin || !*admin;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    buf_append(b, ptr, size * nmemb); /* capped: the rest is dropped */
    return size * nmemb;
}

/* One request to the admin API. *status the answer's status; body (may be
 * NULL) gets at most BODY_MAX bytes of it. */
static int request(const char *admin, const char *method, const char *path, json_t *payload, long *status,
                   struct buf *body, struct sb_err *err)
{
    *status = 0;
    CURL *c = curl_easy_init();
    if (!c)
        return sb_error(err, SB_ENOMEM, "out of memory");
    char url[1024];
    struct curl_slist *h = NULL;
    if (strncmp(admin, "unix/", 5) == 0) {
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, admin + 5);
        snprintf(url, sizeof url, "http://localhost%s", path);
        h = curl_slist_append(h, "Host;"); /* over a socket Caddy wants an empty Host */
    } else {
        snprintf(url, sizeof url, "%s%s", admin, path);
    }
    char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    if (text)
        h = curl_slist_append(h, "Content-Type: application/json");
    struct buf sink;
    buf_init(&sink, BODY_MAX);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (text) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through an environment proxy */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body ? body : &sink);
    CURLcode cr = curl_easy_perform(c);
    int rc = 0;
    if (cr != CURLE_OK)
        rc = sb_error(err, SB_EUNAVAIL, "caddy's admin API is unreachable: %s", curl_easy_strerror(cr));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (rc == 0 && (*status < 200 || *status >= 300) && !(*status == 404 || *status == 400))
        log_debug("caddy admin answer", "method=%s path=%s status=%ld body=\"%.200s\"", method, path, *status,
                  (body ? body : &sink)->data);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(text);
    buf_release(&sink);
    return rc;
}

static int request_ok(const char *admin, const char *method, const char *path, json_t *payload,
                      struct sb_err *err)
{
    long st;
    struct buf body;
    buf_init(&body, BODY_MAX);
    int rc = request(admin, method, path, payload, &st, &body, err);
    if (rc == 0 && (st < 200 || st >= 300))
        rc = sb_error(err, SB_EUPSTREAM, "caddy refused %s %s (%ld): %.200s", method, path, st, body.data);
    buf_release(&body);
    return rc;
}

/* GET of a config path: *doc the value (NULL when absent or null). */
static int get(const char *admin, const char *path, json_t **doc, struct sb_err *err)
{
    *doc = NULL;
    long st;
    struct buf body;
    buf_init(&body, BODY_MAX);
    int rc = request(admin, "GET", path, NULL, &st, &body, err);
    if (rc == 0 && st == 200 && body.len) {
        json_error_t je;
        *doc = json_loadb(body.data, body.len, JSON_DECODE_ANY, &je);
        if (json_is_null(*doc)) {
            json_decref(*doc);
            *doc = NULL;
        }
    }
    buf_release(&body);
    return rc;
}

static int exists(const char *admin, const char *path, bool *yes, struct sb_err *err)
{
    json_t *doc;
    int rc = get(admin, path, &doc, err);
    *yes = doc != NULL;
    json_decref(doc);
    return rc;
}

/* /config/apps/http/servers exists afterwards. */
static int ensure_servers(const char *admin, struct sb_err *err)
{
    static const char *const levels[] = {"/config/apps", "/config/apps/http", "/config/apps/http/servers"};
    for (int i = 0; i < 3; i++) {
        bool yes;
        int rc = exists(admin, levels[i], &yes, err);
        if (rc)
            return rc;
        if (yes)
            continue;
        json_t *v = i == 0   ? json_pack("{s:{s:{}}}", "http", "servers")
                    : i == 1 ? json_pack("{s:{}}", "servers")
                             : json_object();
        rc = request_ok(admin, "POST", levels[i], v, err);
        json_decref(v);
        return rc;
    }
    return 0;
}

static json_t *route_json(const struct caddy_route *r)
{
    json_t *ups = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(r->dials, i, d) json_array_append_new(ups, json_pack("{s:O}", "dial", d));
    json_t *o = json_pack("{s:s,s:[{s:s,s:o}],s:b}", "@id", r->id, "handle", "handler", "reverse_proxy",
                          "upstreams", ups, "terminal", 1);
    if (r->host)
        json_object_set_new(o, "match", json_pack("[{s:[s]}]", "host", r->host));
    return o;
}

int caddy_route_set(const char *admin, const struct caddy_route *r, struct sb_err *err)
{
    if (off(admin))
        return 0;
    if (!json_array_size(r->dials))
        return sb_error(err, SB_EINVAL, "route %s has no upstream", r->id);
    char path[512];
    snprintf(path, sizeof path, "/id/%s", r->id);
    bool yes;
    int rc = exists(admin, path, &yes, err);
    if (rc)
        return rc;
    json_t *route = route_json(r);
    if (yes) {
        /* the cutover: one change of the whole route */
        rc = request_ok(admin, "PATCH", path, route, err);
        json_decref(route);
        return rc;
    }
    if ((rc = ensure_servers(admin, err))) {
        json_decref(route);
        return rc;
    }
    if (r->host) {
        rc = exists(admin, "/config/apps/http/servers/" CADDY_SERVER, &yes, err);
        if (rc == 0 && yes) {
            rc = request_ok(admin, "POST", "/config/apps/http/servers/" CADDY_SERVER "/routes", route, err);
        } else if (rc == 0) {
            json_t *srv = json_pack("{s:[s],s:[O]}", "listen", r->domain_listen ? r->domain_listen : ":80",
                                    "routes", route);
            rc = request_ok(admin, "POST", "/config/apps/http/servers/" CADDY_SERVER, srv, err);
            json_decref(srv);
        }
    } else if (!r->listen || !*r->listen) {
        rc = sb_error(err, SB_EINVAL, "route %s has neither a host nor an address to listen on", r->id);
    } else {
        json_t *srv = json_pack("{s:[s],s:[O],s:{s:b}}", "listen", r->listen, "routes", route,
                                "automatic_https", "disable", 1);
        snprintf(path, sizeof path, "/config/apps/http/servers/%s", r->id);
        rc = request_ok(admin, "POST", path, srv, err);
        json_decref(srv);
    }
    json_decref(route);
    return rc;
}

int caddy_route_delete(const char *admin, const char *id, struct sb_err *err)
{
    if (off(admin))
        return 0;
    char path[512];
    long st;
    snprintf(path, sizeof path, "/config/apps/http/servers/%s", id);
    bool yes;
    int rc = exists(admin, path, &yes, err);
    if (rc == 0 && yes)
        return request_ok(admin, "DELETE", path, NULL, err);
    snprintf(path, sizeof path, "/id/%s", id);
    if (rc == 0)
        rc = request(admin, "DELETE", path, NULL, &st, NULL, err);
    return rc;
}

/* Calls fn for each route of the shared server, with its "@id" (NULL when it has none). */
static int shared_routes_each(const char *admin, void (*fn)(json_t *route, const char *id, void *ctx),
                              void *ctx, struct sb_err *err)
{
    if (off(admin))
        return 0;
    json_t *routes;
    int rc = get(admin, "/config/apps/http/servers/" CADDY_SERVER "/routes", &routes, err);
    size_t i;
    json_t *r;
    json_array_foreach(routes, i, r)
    {
        fn(r, json_string_value(json_object_get(r, "@id")), ctx);
    }
    json_decref(routes);
    return rc;
}

struct route_ids {
    json_t *ids;
    const char *prefix;
};

static void route_ids_add(json_t *route, const char *id, void *ctx)
{
    (void)route;
    struct route_ids *c = ctx;
    if (id && strncmp(id, c->prefix, strlen(c->prefix)) == 0)
        json_array_append_new(c->ids, json_string(id));
}

int caddy_route_ids(const char *admin, const char *prefix, json_t **ids, struct sb_err *err)
{
    *ids = json_array();
    struct route_ids c = {*ids, prefix};
    return shared_routes_each(admin, route_ids_add, &c, err);
}

struct host_owner {
    const char *host, *own_prefix;
    char *owner;
    size_t len;
};

static void host_owner_check(json_t *route, const char *id, void *ctx)
{
    struct host_owner *c = ctx;
    if (id && strncmp(id, c->own_prefix, strlen(c->own_prefix)) == 0)
        return;
    size_t j, k;
    json_t *m, *h;
    json_array_foreach(json_object_get(route, "match"), j, m)
        json_array_foreach(json_object_get(m, "host"), k, h)
    {
        if (json_string_value(h) && strcasecmp(json_string_value(h), c->host) == 0)
            sb_strlcpy(c->owner, id ? id : "(a route without an id)", c->len);
    }
}

int caddy_host_owner(const char *admin, const char *host, const char *own_prefix, char *owner, size_t len,
                     struct sb_err *err)
{
    owner[0] = 0;
    struct host_owner c = {host, own_prefix, owner, len};
    return shared_routes_each(admin, host_owner_check, &c, err);
}

bool caddy_host_ok(const char *host)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || n > 253)
        return false;
    if (strcmp(host, "localhost") == 0)
        return true;
    int labels = 0;
    bool last_numeric = true;
    const char *p = host;
    while (*p) {
        size_t len = strcspn(p, ".");
        if (len == 0 || len > 63 || p[0] == '-' || p[len - 1] == '-')
            return false;
        last_numeric = true;
        for (size_t i = 0; i < len; i++) {
            char c = p[i];
            if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-'))
                return false;
            if (!isdigit((unsigned char)c))
                last_numeric = false;
        }
        labels++;
        p += len;
        if (*p == '.') {
            p++;
            if (!*p)
                return false; /* a trailing dot */
        }
    }
    return labels >= 2 && !last_numeric;
}
