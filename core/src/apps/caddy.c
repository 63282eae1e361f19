/*
 * An app's route through caddy/ (the admin API client shared with stacks),
 * and the HTTP health probe (libcurl; scripts/check-layers.sh allows it
 * here for it).
 *
 * Each app's route is "@id": "sbx-app-<id>", a reverse_proxy to
 * 127.0.0.1:<host port of the current container>. An app without a domain
 * gets a server of its own listening on its route port; an app with a
 * domain gets a host-matched route in the shared server "serverbox"
 * (--app-domain-listen). Cutover is one change of the route: Caddy applies
 * a change whole or not at all, so a request is served either by the old
 * container or by the new one.
 */
#include "apps.h"

#include "../caddy/caddy.h"

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

int apps_caddy_route(const struct apps_env *e, json_t *app, int upstream_port, struct sb_err *err)
{
    const char *id = json_string_value(json_object_get(app, "id"));
    int route_port = (int)json_integer_value(json_object_get(app, "route_port"));
    char rid[64], dial[32], listen[300] = "";
    snprintf(rid, sizeof rid, "sbx-app-%s", id);
    snprintf(dial, sizeof dial, "127.0.0.1:%d", upstream_port);
    if (route_port > 0)
        snprintf(listen, sizeof listen, "%s:%d", e->route_host ? e->route_host : "", route_port);
    json_t *dials = json_pack("[s]", dial);
    struct caddy_route r = {.id = rid,
                            .host = json_string_value(json_object_get(app, "domain")),
                            .listen = listen,
                            .domain_listen = e->domain_listen,
                            .dials = dials};
    int rc = caddy_route_set(e->caddy_admin, &r, err);
    json_decref(dials);
    return rc;
}

int apps_caddy_unroute(const struct apps_env *e, const char *app_id, struct sb_err *err)
{
    char rid[64];
    snprintf(rid, sizeof rid, "sbx-app-%s", app_id);
    return caddy_route_delete(e->caddy_admin, rid, err);
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
