/*
 * The dashboard: the static site of --dashboard-dir served at "/" from
 * memory (static/), with the security headers a browser needs to keep a
 * control panel from being framed or from running injected script.
 *
 * Client routes of the single-page app (/audit, /nodes/<id>, /g/<token>…)
 * get index.html; any other path that is not a file is a 404: the app (whose
 * not-found page says so) for a browser asking for a page, the API's JSON
 * otherwise. Nothing under /api/ is ever answered with a page.
 */
#include "api.h"

#include "../static/static.h"

#include <string.h>

/* 'wasm-unsafe-eval' lets asciinema-player compile its terminal emulator
 * (WebAssembly served from 'self'); it allows no JavaScript eval. */
#define CSP                                                                                                  \
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; "     \
    "connect-src 'self'; "                                                                                   \
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/* First path segments the app routes itself (dashboard/js/app.js). */
/* clang-format off */
static const char *const client_routes[] = {"login",       "overview",   "audit",      "users",  "tokens",
                                            "guest-links", "nodes",      "containers", "stacks", "g",
                                            "terminal",    "recordings", "settings",   "roles",  "backups",
                                            "deployments",
                                            "account", "images", "volumes", "networks", "fleet",
                                            NULL};
/* clang-format on */

static bool is_client_route(const char *path)
{
    const char *seg = path + 1;
    size_t n = strcspn(seg, "/");
    for (size_t i = 0; client_routes[i]; i++)
        if (strlen(client_routes[i]) == n && strncmp(seg, client_routes[i], n) == 0)
            return true;
    return false;
}

/* status 200 (cacheable, with its ETag) or 404 (the app's not-found page). */
static void reply_file_status(struct http_request *req, const struct static_file *f, int status)
{
    const char *inm = http_header(req, "If-None-Match");
    if (status != 200)
        http_reply_text(req, status, f->content_type, f->data, f->len);
    else if (inm && strstr(inm, f->etag))
        http_reply_text(req, 304, NULL, NULL, 0);
    else
        http_reply_text(req, 200, f->content_type, f->data, f->len);
    if (status == 200)
        http_add_header(req, "ETag", f->etag);
    http_add_header(req, "Cache-Control",
                    status != 200  ? "no-store"
                    : f->immutable ? "public, max-age=31536000, immutable"
                                   : "no-cache");
    http_add_header(req, "Content-Security-Policy", CSP);
    http_add_header(req, "X-Frame-Options", "DENY");
    http_add_header(req, "Referrer-Policy", "no-referrer");
}

static void reply_file(struct http_request *req, const struct static_file *f)
{
    reply_file_status(req, f, 200);
}

static void reply_index_status(struct http_request *req, int status)
{
    struct app *app = req->app;
    const struct static_file *f = static_site_find(app->dashboard, "/index.html");
    if (!f) {
        http_reply_error(req, 404, "not_found", "no dashboard is installed (see --dashboard-dir)");
        return;
    }
    reply_file_status(req, f, status);
}

static void reply_index(struct http_request *req)
{
    reply_index_status(req, 200);
}

bool api_dashboard_wants_page(const struct http_request *req)
{
    const char *accept = http_header(req, "Accept");
    return accept && strstr(accept, "text/html") && ((struct app *)req->app)->dashboard;
}

void api_dashboard_page(struct http_request *req)
{
    reply_index(req);
}

void api_dashboard(struct http_request *req)
{
    struct app *app = req->app;
    const char *path = req->path;
    if (strcmp(path, "/api") == 0 || strncmp(path, "/api/", 5) == 0) {
        http_reply_error(req, 404, "not_found", "no such route");
        return;
    }
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        reply_index(req);
        return;
    }
    const struct static_file *f = static_site_find(app->dashboard, path);
    if (f) {
        reply_file(req, f);
        return;
    }
    /* A client route, but never a traversal attempt dressed as one. */
    if (!strstr(path, "..") && !strchr(path, '\\') && is_client_route(path)) {
        reply_index(req);
        return;
    }
    /* A page a browser asked for that does not exist: the app says so in
     * its own words (a 404 all the same). */
    if (strcmp(req->method, "GET") == 0 && api_dashboard_wants_page(req)) {
        reply_index_status(req, 404);
        return;
    }
    http_reply_error(req, 404, "not_found", "no such route");
}

/* GET /g/{token}/{*page}: a reload of a guest sub-page. A route of its own so
 * that the secret in the path is logged as the pattern; only browsers get the
 * app, anything else the API's 404 (the token is checked by the API calls the
 * app then makes). */
void api_dashboard_guest_page(struct http_request *req)
{
    if (api_dashboard_wants_page(req))
        reply_index(req);
    else
        http_reply_error(req, 404, "not_found", "no such route");
}
