/*
 * Routes through Caddy's admin API (2.6), and the health probe: the two
 * plain HTTP clients of apps/ (libcurl; scripts/check-layers.sh allows it
 * here for these).
 *
 * Each app's route is an object with "@id": "sbx-app-<id>" whose first
 * handler is a reverse_proxy to 127.0.0.1:<host port of the current
 * container>. An app without a domain gets a server of its own listening
 * on its route port; an app with a domain gets a host-matched route in the
 * shared server "serverbox" (--app-domain-listen). Cutover is one PATCH of
 * the upstreams: Caddy applies a change whole or not at all, so a request
 * is served either by the old container or by the new one.
 */
#include "apps.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    buf_append(b, ptr, size * nmemb); /* capped: the rest is dropped */
    return size * nmemb;
}

/* One request to the admin API. *status the answer's status; body (may be
 * NULL) gets at most 1 MiB of it. */
static int admin(const struct apps_env *e, const char *method, const char *path, json_t *payload,
                 long *status, struct buf *body, struct sb_err *err)
{
    *status = 0;
    CURL *c = curl_easy_init();
    if (!c)
        return sb_error(err, SB_ENOMEM, "out of memory");
    char url[1024];
    struct curl_slist *h = NULL;
    if (strncmp(e->caddy_admin, "unix/", 5) == 0) {
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->caddy_admin + 5);
        snprintf(url, sizeof url, "http://localhost%s", path);
        h = curl_slist_append(h, "Host;"); /* over a socket Caddy wants an empty Host */
    } else {
        snprintf(url, sizeof url, "%s%s", e->caddy_admin, path);
    }
    char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    if (text)
        h = curl_slist_append(h, "Content-Type: application/json");
    struct buf sink;
    buf_init(&sink, 1 << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (text) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
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

static int admin_ok(const struct apps_env *e, const char *method, const char *path, json_t *payload,
                    struct sb_err *err)
{
    long st;
    struct buf body;
    buf_init(&body, 1 << 20);
    int rc = admin(e, method, path, payload, &st, &body, err);
    if (rc == 0 && (st < 200 || st >= 300))
        rc = sb_error(err, SB_EUPSTREAM, "caddy refused %s %s (%ld): %.200s", method, path, st, body.data);
    buf_release(&body);
    return rc;
}

/* Whether a config path holds something (GET answers non-null). */
static int exists(const struct apps_env *e, const char *path, bool *yes, struct sb_err *err)
{
    long st;
    struct buf body;
    buf_init(&body, 1 << 20);
    int rc = admin(e, "GET", path, NULL, &st, &body, err);
    *yes = rc == 0 && st == 200 && body.len && strncmp(body.data, "null", 4) != 0;
    buf_release(&body);
    return rc;
}

/* /config/apps/http/servers exists afterwards. */
static int ensure_servers(const struct apps_env *e, struct sb_err *err)
{
    static const char *const levels[] = {"/config/apps", "/config/apps/http", "/config/apps/http/servers"};
    for (int i = 0; i < 3; i++) {
        bool yes;
        int rc = exists(e, levels[i], &yes, err);
        if (rc)
            return rc;
        if (yes)
            continue;
        json_t *v = i == 0   ? json_pack("{s:{s:{}}}", "http", "servers")
                    : i == 1 ? json_pack("{s:{}}", "servers")
                             : json_object();
        rc = admin_ok(e, "POST", levels[i], v, err);
        json_decref(v);
        return rc;
    }
    return 0;
}

static json_t *route_of(const char *app_id, const char *domain, int upstream_port)
{
    char id[64], dial[32];
    snprintf(id, sizeof id, "sbx-app-%s", app_id);
    snprintf(dial, sizeof dial, "127.0.0.1:%d", upstream_port);
    json_t *r = json_pack("{s:s,s:[{s:s,s:[{s:s}]}],s:b}", "@id", id, "handle", "handler", "reverse_proxy",
                          "upstreams", "dial", dial, "terminal", 1);
    if (domain)
        json_object_set_new(r, "match", json_pack("[{s:[s]}]", "host", domain));
    return r;
}

int apps_caddy_route(const struct apps_env *e, json_t *app, int upstream_port, struct sb_err *err)
{
    if (!e->caddy_admin || !*e->caddy_admin)
        return 0;
    const char *id = json_string_value(json_object_get(app, "id"));
    const char *domain = json_string_value(json_object_get(app, "domain"));
    int route_port = (int)json_integer_value(json_object_get(app, "route_port"));
    char path[256];
    snprintf(path, sizeof path, "/id/sbx-app-%s", id);
    bool yes;
    int rc = exists(e, path, &yes, err);
    if (rc)
        return rc;
    if (yes) {
        /* the cutover: one change */
        snprintf(path, sizeof path, "/id/sbx-app-%s/handle/0/upstreams", id);
        char dial[32];
        snprintf(dial, sizeof dial, "127.0.0.1:%d", upstream_port);
        json_t *up = json_pack("[{s:s}]", "dial", dial);
        rc = admin_ok(e, "PATCH", path, up, err);
        json_decref(up);
        return rc;
    }
    if ((rc = ensure_servers(e, err)))
        return rc;
    json_t *route = route_of(id, domain, upstream_port);
    if (domain) {
        rc = exists(e, "/config/apps/http/servers/serverbox", &yes, err);
        if (rc == 0 && yes) {
            rc = admin_ok(e, "POST", "/config/apps/http/servers/serverbox/routes", route, err);
        } else if (rc == 0) {
            json_t *srv = json_pack("{s:[s],s:[O]}", "listen", e->domain_listen, "routes", route);
            rc = admin_ok(e, "POST", "/config/apps/http/servers/serverbox", srv, err);
            json_decref(srv);
        }
    } else if (route_port <= 0) {
        rc = sb_error(err, SB_EINVAL, "the app has neither a domain nor a route port");
    } else {
        char listen[300];
        snprintf(listen, sizeof listen, "%s:%d", e->route_host ? e->route_host : "", route_port);
        json_t *srv = json_pack("{s:[s],s:[O],s:{s:b}}", "listen", listen, "routes", route, "automatic_https",
                                "disable", 1);
        snprintf(path, sizeof path, "/config/apps/http/servers/sbx-app-%s", id);
        rc = admin_ok(e, "POST", path, srv, err);
        json_decref(srv);
    }
    json_decref(route);
    return rc;
}

int apps_caddy_unroute(const struct apps_env *e, const char *app_id, struct sb_err *err)
{
    if (!e->caddy_admin || !*e->caddy_admin)
        return 0;
    char path[256];
    long st;
    snprintf(path, sizeof path, "/config/apps/http/servers/sbx-app-%s", app_id);
    bool yes;
    int rc = exists(e, path, &yes, err);
    if (rc == 0 && yes)
        return admin_ok(e, "DELETE", path, NULL, err);
    snprintf(path, sizeof path, "/id/sbx-app-%s", app_id);
    if (rc == 0)
        rc = admin(e, "DELETE", path, NULL, &st, NULL, err);
    return rc;
}

int apps_http_probe(int port, const char *path, long timeout_ms, long *status, struct sb_err *err)
{
    *status = 0;
    CURL *c = curl_easy_init();
    if (!c)
        return sb_error(err, SB_ENOMEM, "out of memory");
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct buf sink;
    buf_init(&sink, 4096);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through an environment proxy */
    CURLcode cr = curl_easy_perform(c);
    int rc;
    if (cr != CURLE_OK) {
        rc = sb_error(err, SB_EUNAVAIL, "no answer: %s", curl_easy_strerror(cr));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        rc = *status >= 200 && *status < 400 ? 0 : sb_error(err, SB_EUPSTREAM, "answered %ld", *status);
    }
    curl_easy_cleanup(c);
    buf_release(&sink);
    return rc;
}
