/*
 * Single sign-on (issue #20): the browser side of the OpenID Connect
 * authorization code flow with PKCE. The state, nonce and code verifier
 * between start and callback live in a cookie sealed with the master key
 * (ten minutes, this path only), so an unauthenticated start writes
 * nothing. The callback verifies the ID token (oidc/), maps its claims to
 * a role and node labels, creates the user on first sign-in (user.created
 * with source "oidc" and the hash of issuer and subject, which later
 * sign-ins must match) or brings their role and labels up to date, opens a
 * session and sends the browser to the dashboard. Failures are auth.login
 * events and come back to the login page with the reason.
 *
 * GET /api/v1/auth/oidc            whether SSO is on, its name, whether passwords work
 * GET /api/v1/auth/oidc/start      302 to the provider
 * GET /api/v1/auth/oidc/callback   the provider's redirect back
 */
#include "api.h"

#include "../auth/auth.h"
#include "../crypto/crypto.h"
#include "../oidc/oidc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_COOKIE "sbx_oidc"
#define PENDING_TTL_S  600
#define COOKIE_PATH    "/api/v1/auth/oidc"

void api_oidc_info(struct http_request *req)
{
    struct app *app = req->app;
    json_t *o = json_pack("{s:b, s:b}", "enabled", app->oidc != NULL, "password_login", app->password_login);
    if (app->oidc) {
        json_object_set_new(o, "name", json_string(oidc_name(app->oidc)));
        json_object_set_new(o, "start", json_string(COOKIE_PATH "/start"));
    }
    http_reply_json(req, 200, o);
}

static void redirect_uri(struct http_request *req, char *out, size_t len)
{
    struct app *app = req->app;
    if (app->oidc_redirect_uri && *app->oidc_redirect_uri) {
        sb_strlcpy(out, app->oidc_redirect_uri, len);
        return;
    }
    const char *host = http_header(req, "Host");
    snprintf(out, len, "%s://%s" COOKIE_PATH "/callback", http_request_https(req) ? "https" : "http",
             host ? host : "localhost");
}

static void redirect(struct http_request *req, const char *location)
{
    http_add_header(req, "Location", location);
    http_add_header(req, "Cache-Control", "no-store");
    http_reply_text(req, 302, "text/plain", "", 0);
}

static void pending_cookie(struct http_request *req, const char *value, int max_age)
{
    char c[2048];
    snprintf(c, sizeof c, PENDING_COOKIE "=%s; Path=" COOKIE_PATH "; HttpOnly; SameSite=Lax; Max-Age=%d%s",
             value, max_age, http_request_https(req) ? "; Secure" : "");
    http_add_header(req, "Set-Cookie", c);
}

void api_oidc_start(struct http_request *req)
{
    struct app *app = req->app;
    if (!app->oidc) {
        http_reply_error(req, 404, "not_found", "single sign-on is not configured");
        return;
    }
    struct sb_err err = {0};
    char ruri[1024];
    redirect_uri(req, ruri, sizeof ruri);
    struct oidc_pending p;
    struct buf url;
    buf_init(&url, 8192);
    if (oidc_begin(app->oidc, ruri, &p, &url, &err)) {
        buf_release(&url);
        api_fail(req, &err);
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "s", p.state, "n", p.nonce, "v", p.verifier, "r", ruri,
                          "e", (json_int_t)(time_now_us() / 1000000 + PENDING_TTL_S));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char *sealed = text ? crypto_seal(&app->master_key, text, strlen(text)) : NULL;
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    sodium_memzero(&p, sizeof p);
    if (!sealed) {
        buf_release(&url);
        http_reply_error(req, 500, "internal", "cannot seal the sign-in state");
        return;
    }
    pending_cookie(req, sealed, PENDING_TTL_S);
    free(sealed);
    redirect(req, url.data);
    buf_release(&url);
}

/* Back to the login page with the reason, recorded as a failed login. */
static void fail(struct http_request *req, const char *who, const char *reason)
{
    struct app *app = req->app;
    char stream[] = "auth/login";
    json_t *data =
        json_pack("{s:s, s:s, s:s}", "username", who ? who : "(sso)", "method", "oidc", "reason", reason);
    struct event_new ev = {.stream = stream, .type = "auth.login", .data = data, .outcome = "failure"};
    ev.actor.kind = "system";
    ev.actor.name = "anonymous";
    ev.actor.ip = req->client_ip;
    if (store_append(app->store, &ev, NULL, NULL))
        log_warn("audit event not recorded", "type=auth.login method=oidc");
    json_decref(data);
    char key[96];
    snprintf(key, sizeof key, "login:ip:%s", req->client_ip);
    auth_rate_hit(app->auth, key);
    pending_cookie(req, "", 0);
    struct buf loc;
    buf_init(&loc, 4096);
    buf_puts(&loc, "/login#sso_error=");
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)reason; *c; c++)
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
            *c == '.' || *c == '_')
            buf_putc(&loc, (char)*c);
        else
            buf_printf(&loc, "%%%c%c", hex[*c >> 4], hex[*c & 15]);
    redirect(req, loc.data);
    buf_release(&loc);
}

/* A username from the claims: readable, and tied to issuer and subject by
 * a suffix of their hash ("ann.3f2a1c"). */
static void username_for(json_t *claims, const char *subject_hash, char *out, size_t len)
{
    const char *pref = json_string_value(json_object_get(claims, "preferred_username"));
    const char *email = json_string_value(json_object_get(claims, "email"));
    const char *src = pref && *pref ? pref : email && *email ? email : "user";
    char base[48];
    size_t n = 0;
    for (const char *c = src; *c && *c != '@' && n < 40; c++) {
        char ch = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                  (n > 0 && (ch == '.' || ch == '_' || ch == '-'));
        if (ok && !(ch == '.' && n > 0 && base[n - 1] == '.'))
            base[n++] = ch;
    }
    while (n > 0 && (base[n - 1] == '.' || base[n - 1] == '-' || base[n - 1] == '_'))
        n--;
    base[n] = '\0';
    snprintf(out, len, "%s.%.6s", n ? base : "user", subject_hash);
}

void api_oidc_callback(struct http_request *req)
{
    struct app *app = req->app;
    if (!app->oidc) {
        http_reply_error(req, 404, "not_found", "single sign-on is not configured");
        return;
    }
    struct sb_err err = {0};
    char ip_key[96];
    int retry = 0;
    snprintf(ip_key, sizeof ip_key, "login:ip:%s", req->client_ip);
    if (auth_rate_blocked(app->auth, ip_key, auth_config(app->auth)->login_ip_limit, &retry)) {
        fail(req, NULL, "too many failed sign-ins from your address: wait a minute");
        return;
    }
    const char *idp_error = http_query(req, "error");
    if (idp_error) {
        char why[300];
        const char *desc = http_query(req, "error_description");
        snprintf(why, sizeof why, "the identity provider refused: %.100s%s%.150s", idp_error,
                 desc ? " — " : "", desc ? desc : "");
        fail(req, NULL, why);
        return;
    }
    const char *code = http_query(req, "code"), *state = http_query(req, "state");
    const char *cookie = http_cookie(req, PENDING_COOKIE);
    struct buf plain;
    buf_init(&plain, 4096);
    json_t *pending = NULL;
    if (cookie && *cookie && crypto_open(&app->master_key, cookie, &plain, NULL) == 0)
        pending = json_loadb(plain.data, plain.len, 0, NULL);
    crypto_buf_wipe(&plain);
    buf_release(&plain);
    const char *ps = json_string_value(json_object_get(pending, "s"));
    if (!pending || !ps || json_integer_value(json_object_get(pending, "e")) < time_now_us() / 1000000) {
        json_decref(pending);
        fail(req, NULL, "the sign-in expired or was started in another browser: try again");
        return;
    }
    if (!code || !state || strlen(state) != strlen(ps) || sodium_memcmp(state, ps, strlen(ps)) != 0) {
        json_decref(pending);
        fail(req, NULL, "the sign-in's state does not match: try again");
        return;
    }
    json_t *claims = NULL;
    int rc = oidc_finish(app->oidc, code, json_string_value(json_object_get(pending, "r")),
                         json_string_value(json_object_get(pending, "v")),
                         json_string_value(json_object_get(pending, "n")), &claims, &err);
    json_decref(pending);
    if (rc) {
        fail(req, NULL, err.msg);
        return;
    }
    /* Who: issuer and subject, hashed (never a name the provider lets users pick). */
    char idtext[600], subject_hash[65];
    snprintf(idtext, sizeof idtext, "%s\n%s", oidc_issuer(app->oidc),
             json_string_value(json_object_get(claims, "sub")));
    auth_token_sha256(idtext, subject_hash);
    char username[64], role[AUTH_ROLE_MAX + 8];
    username_for(claims, subject_hash, username, sizeof username);
    json_t *labels = NULL;
    struct auth_perms perms;
    if (oidc_map(app->oidc, claims, role, sizeof role, &labels, &err) ||
        api_role_perms(req, role, "role", &perms, &err)) {
        json_decref(claims);
        json_decref(labels);
        fail(req, username,
             err.code == SB_EDENIED ? err.msg : "the role mapped for you does not exist: ask an admin");
        return;
    }
    json_decref(claims);
    struct store_user u = {0};
    rc = store_user_by_name(app->store, username, &u, NULL, 0, &err);
    if (rc == SB_ENOTFOUND) {
        /* First sign-in: the user is made now (no password: only SSO logs them in). */
        char id[37], stream[96];
        uuid_v4(id);
        json_t *d =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "username", username, "role", role,
                      "source", "oidc", "issuer", oidc_issuer(app->oidc), "oidc_subject", subject_hash);
        if (labels)
            json_object_set(d, "node_labels", labels);
        snprintf(stream, sizeof stream, "user/%s", id);
        struct event_new ev = {.stream = stream, .type = "user.created", .data = d, .outcome = "success"};
        ev.actor.kind = "system";
        ev.actor.name = "oidc";
        ev.actor.ip = req->client_ip;
        rc = store_append(app->store, &ev, NULL, &err);
        json_decref(d);
        if (rc == 0)
            rc = store_user_by_id(app->store, id, &u, &err);
    } else if (rc == 0) {
        /* The same person: the account must have been made for this subject. */
        json_t *made = NULL;
        const char *sh = NULL;
        if (store_user_created_data(app->store, u.id, &made, NULL) == 0)
            sh = json_string_value(json_object_get(made, "oidc_subject"));
        bool same = sh && strcmp(sh, subject_hash) == 0;
        json_decref(made);
        if (!same) {
            store_user_release(&u);
            json_decref(labels);
            fail(req, username,
                 "an account with your name exists that was not made by single sign-on: ask an admin");
            return;
        }
        if (u.disabled) {
            store_user_release(&u);
            json_decref(labels);
            fail(req, username, "your account is disabled");
            return;
        }
        bool labels_same =
            (!labels && !u.node_labels) || (labels && u.node_labels && json_equal(labels, u.node_labels));
        if (strcmp(u.role, role) != 0 || !labels_same) {
            /* The provider's groups decide: bring role and labels up to date. */
            char stream[96];
            json_t *d = json_pack("{s:s, s:s, s:o}", "id", u.id, "role", role, "node_labels",
                                  labels ? json_incref(labels) : json_null());
            snprintf(stream, sizeof stream, "user/%s", u.id);
            struct event_new ev = {.stream = stream, .type = "user.updated", .data = d, .outcome = "success"};
            ev.actor.kind = "system";
            ev.actor.name = "oidc";
            ev.actor.ip = req->client_ip;
            rc = store_append(app->store, &ev, NULL, &err);
            json_decref(d);
            if (rc == 0) {
                json_t *hashes = json_array();
                store_user_credential_hashes(app->store, u.id, hashes, NULL);
                auth_forget(app->auth, hashes);
                json_decref(hashes);
                char id[37];
                sb_strlcpy(id, u.id, sizeof id);
                store_user_release(&u);
                rc = store_user_by_id(app->store, id, &u, &err);
            }
        }
    }
    json_decref(labels);
    /* A user with 2FA gives their code after the provider too. */
    struct store_totp totp = {0};
    bool second = rc == 0 && store_totp_get(app->store, u.id, &totp, NULL) == 0 && totp.confirmed;
    store_totp_release(&totp);
    if (second) {
        char challenge[80], loc[160];
        rc = api_login_challenge_new(req, &u, challenge, NULL, &err);
        store_user_release(&u);
        if (rc) {
            fail(req, username, "cannot sign you in now: try again");
            return;
        }
        pending_cookie(req, "", 0);
        snprintf(loc, sizeof loc, "/login#totp=%s", challenge);
        sodium_memzero(challenge, sizeof challenge);
        redirect(req, loc);
        return;
    }
    char csrf[65];
    if (rc == 0)
        rc = api_session_open(req, &u, "oidc", NULL, csrf, NULL, &err);
    store_user_release(&u);
    if (rc) {
        fail(req, username, err.msg[0] ? err.msg : "cannot sign you in now: try again");
        return;
    }
    pending_cookie(req, "", 0);
    /* The dashboard keeps the CSRF token (it belongs to the session cookie). */
    char loc[160];
    snprintf(loc, sizeof loc, "/login#sso=%s", csrf);
    sodium_memzero(csrf, sizeof csrf);
    redirect(req, loc);
}
