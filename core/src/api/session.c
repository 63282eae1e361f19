/*
 * Sessions: login, logout, who am I, and the landing URL of guest links.
 *
 * POST /api/v1/auth/login {"username","password"} -> token, csrf_token, user
 * and a session cookie. A wrong username and a wrong password get the same
 * answer after the same work (argon2id against a dummy hash). Failed logins
 * count against the client address and the username, per minute.
 */
#include "api.h"

#include "../auth/auth.h"
#include "../events/events.h"
#include "../oidc/oidc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COOKIE "sbx_session"

/* A session a successful login makes: written with its auth.login event. */
struct new_session {
    const char *id, *user_id, *token_sha256, *csrf_sha256;
    int64_t expires_us;
    const char *factor; /* password | totp | recovery_code */
};

#define CHALLENGE_TTL_S    300
#define CHALLENGE_ATTEMPTS 5

/* Records a login attempt. With `session`, the session row and the event
 * commit together and the result is returned; otherwise the event is
 * recorded alone (a refused attempt changes nothing else). */
static int login_event(struct http_request *req, const char *user_id, const char *username,
                       const char *outcome, const char *reason, const struct new_session *session,
                       struct sb_err *out_err)
{
    const char *session_id = session ? session->id : NULL;
    struct app *app = req->app;
    char stream[64] = "auth/login";
    if (user_id)
        snprintf(stream, sizeof stream, "user/%s", user_id);
    json_t *data = json_pack("{s:s?}", "username", username);
    if (!data)
        data = json_object();
    if (reason)
        json_object_set_new(data, "reason", json_string(reason));
    if (session_id)
        json_object_set_new(data, "session_id", json_string(session_id));
    if (session && session->factor && strcmp(session->factor, "oidc") == 0)
        json_object_set_new(data, "method", json_string("oidc"));
    else if (session && session->factor && strcmp(session->factor, "password") != 0)
        json_object_set_new(data, "second_factor", json_string(session->factor));
    struct event_new ev = {.stream = stream, .type = "auth.login", .data = data, .outcome = outcome};
    /* The actor of a successful login is the user; of a failed one, nobody
     * yet (the attempted name is in data). */
    ev.actor.kind = user_id && strcmp(outcome, "success") == 0 ? "user" : "system";
    ev.actor.id = user_id && strcmp(outcome, "success") == 0 ? user_id : NULL;
    ev.actor.name = user_id && strcmp(outcome, "success") == 0 ? username : "anonymous";
    ev.actor.ip = req->client_ip;
    struct sb_err err = {0};
    int rc = 0;
    if (session) {
        /* The browser it came from, so its user can tell it apart (not
         * a secret): at most 256 characters, printable ASCII (anything
         * else, which no real User-Agent holds, becomes '?'). */
        char agent[257] = "";
        const char *ua = http_header(req, "User-Agent");
        for (size_t i = 0; ua && ua[i] && i < sizeof agent - 1; i++)
            agent[i] = ua[i] >= 0x20 && ua[i] < 0x7f ? ua[i] : '?';
        rc = store_session_insert(app->store, &ev, session->id, session->user_id, session->token_sha256,
                                  session->csrf_sha256, req->client_ip, agent[0] ? agent : NULL,
                                  session->expires_us, out_err);
    } else if (store_append(app->store, &ev, NULL, &err)) {
        log_warn("audit event not recorded", "type=auth.login detail=\"%s\"", err.msg);
    }
    json_decref(data);
    return rc;
}

static void set_cookie(struct http_request *req, const char *token, int64_t max_age)
{
    char c[256];
    snprintf(c, sizeof c, COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s", token,
             (long long)max_age, http_request_https(req) ? "; Secure" : "");
    http_add_header(req, "Set-Cookie", c);
}

int api_session_open(struct http_request *req, const struct store_user *u, const char *factor,
                     char token_out[80], char csrf[65], int64_t *expires_us, struct sb_err *err)
{
    struct app *app = req->app;
    const struct auth_config *ac = auth_config(app->auth);
    char token[80], token_hash[65], csrf_hash[65], session_id[37];
    auth_token_new("sbs_", token, sizeof token, token_hash);
    random_hex(csrf, 32);
    auth_token_sha256(csrf, csrf_hash);
    uuid_v4(session_id);
    int64_t expires = time_now_us() + ac->session_max_s * 1000000;
    struct new_session ns = {.id = session_id,
                             .user_id = u->id,
                             .token_sha256 = token_hash,
                             .csrf_sha256 = csrf_hash,
                             .expires_us = expires,
                             .factor = factor};
    int rc = login_event(req, u->id, u->username, "success", NULL, &ns, err);
    if (rc == 0)
        set_cookie(req, token, ac->session_max_s);
    if (expires_us)
        *expires_us = expires;
    if (token_out)
        sb_strlcpy(token_out, rc == 0 ? token : "", 80);
    sodium_memzero(token, sizeof token);
    return rc;
}

/* Makes the session of a login that passed every factor, and answers it. */
static void login_finish(struct http_request *req, const struct store_user *u, const char *factor)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    char csrf[65], token[80];
    int64_t expires = 0;
    if (api_session_open(req, u, factor, token, csrf, &expires, &err)) {
        api_fail(req, &err);
        return;
    }
    bool setup_required = false;
    struct store_totp totp = {0};
    if (store_role_requires_totp(app->store, u->role, &setup_required, NULL) == 0 && setup_required)
        setup_required = !(store_totp_get(app->store, u->id, &totp, NULL) == 0 && totp.confirmed);
    store_totp_release(&totp);
    char exp_text[40];
    time_format_rfc3339(expires, exp_text, sizeof exp_text);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "token", token, "csrf_token", csrf, "expires_at",
                  exp_text, "user", "id", u->id, "username", u->username, "role", u->role);
    sodium_memzero(token, sizeof token);
    if (setup_required)
        json_object_set_new(o, "totp_setup_required", json_true());
    http_reply_json(req, 200, o);
}

/* The password was right and the user has 2FA: a challenge (sbc_…, five
 * minutes, a few attempts) that POST /api/v1/auth/login/totp exchanges with
 * a code for the session. */
int api_login_challenge_new(struct http_request *req, const struct store_user *u, char token[80],
                            int64_t *expires_us, struct sb_err *err)
{
    struct app *app = req->app;
    char hash[65], id[37];
    auth_token_new("sbc_", token, 80, hash);
    uuid_v4(id);
    int64_t expires = time_now_us() + CHALLENGE_TTL_S * 1000000;
    char stream[64];
    snprintf(stream, sizeof stream, "user/%s", u->id);
    json_t *data =
        json_pack("{s:s, s:s, s:s}", "username", u->username, "challenge_id", id, "factor", "totp");
    struct event_new ev = {
        .stream = stream, .type = "auth.login_challenge", .data = data, .outcome = "success"};
    ev.actor.kind = "user";
    ev.actor.id = u->id;
    ev.actor.name = u->username;
    ev.actor.ip = req->client_ip;
    int rc = store_challenge_insert(app->store, &ev, id, u->id, hash, req->client_ip, expires, err);
    json_decref(data);
    if (rc)
        sodium_memzero(token, 80);
    if (expires_us)
        *expires_us = expires;
    return rc;
}

static void login_challenge(struct http_request *req, const struct store_user *u)
{
    struct sb_err err = {0};
    char token[80];
    int64_t expires = 0;
    if (api_login_challenge_new(req, u, token, &expires, &err)) {
        api_fail(req, &err);
        return;
    }
    char exp_text[40];
    time_format_rfc3339(expires, exp_text, sizeof exp_text);
    http_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:s, s:s}", "second_factor", "totp", "challenge", token,
                              "expires_at", exp_text, "next",
                              "POST /api/v1/auth/login/totp {challenge, code | recovery_code}"));
    sodium_memzero(token, sizeof token);
}

void api_login(struct http_request *req)
{
    static const char *const allowed[] = {"username", "password", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *username = json_string_value(json_object_get(req->json, "username"));
    const char *password = json_string_value(json_object_get(req->json, "password"));
    if (!username || !*username) {
        sb_field_error(&err, "username", "username is required");
        api_fail(req, &err);
        return;
    }
    if (!password || !*password || strlen(password) > AUTH_PASSWORD_MAX) {
        sb_field_error(&err, "password", "password is required (at most %d characters)", AUTH_PASSWORD_MAX);
        api_fail(req, &err);
        return;
    }
    if (!app->password_login && (!app->break_glass_user || strcmp(username, app->break_glass_user) != 0)) {
        http_reply_error(req, 403, "forbidden", "password login is off here: sign in with %s",
                         app->oidc ? oidc_name(app->oidc) : "single sign-on");
        return;
    }
    bool name_ok = auth_username_valid(username, NULL) == 0;
    const char *logged_name = name_ok ? username : "(invalid)";

    char ip_key[96], user_key[128];
    snprintf(ip_key, sizeof ip_key, "login:ip:%s", req->client_ip);
    snprintf(user_key, sizeof user_key, "login:user:%s", name_ok ? username : "(invalid)");
    const struct auth_config *ac = auth_config(app->auth);
    int retry = 0;
    if (auth_rate_blocked(app->auth, ip_key, ac->login_ip_limit, &retry) ||
        (name_ok && auth_rate_blocked(app->auth, user_key, ac->login_user_limit, &retry))) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry > 0 ? retry : 1);
        http_add_header(req, "Retry-After", ra);
        login_event(req, NULL, logged_name, "denied", "rate_limited", NULL, NULL);
        http_reply_error(req, 429, "rate_limited", "too many failed logins; try again in %s seconds", ra);
        return;
    }

    struct store_user u = {0};
    char hash[AUTH_HASH_MAX] = "";
    int rc = name_ok ? store_user_by_name(app->store, username, &u, hash, sizeof hash, &err) : SB_ENOTFOUND;
    if (rc && rc != SB_ENOTFOUND) {
        api_fail(req, &err);
        return;
    }
    bool ok = auth_password_verify(app->auth, rc == 0 ? hash : NULL, password);
    sodium_memzero(hash, sizeof hash);
    if (!ok || u.disabled) {
        auth_rate_hit(app->auth, ip_key);
        if (name_ok)
            auth_rate_hit(app->auth, user_key);
        login_event(req, rc == 0 ? u.id : NULL, logged_name, "failure", "bad credentials", NULL, NULL);
        store_user_release(&u);
        http_reply_error(req, 401, "invalid_credentials", "invalid username or password");
        return;
    }

    /* With 2FA on, the password only opens a short-lived challenge: the
     * session comes from POST /api/v1/auth/login/totp with a code. */
    struct store_totp totp = {0};
    rc = store_totp_get(app->store, u.id, &totp, &err);
    bool second_factor = rc == 0 && totp.confirmed;
    store_totp_release(&totp);
    if (rc && rc != SB_ENOTFOUND) {
        store_user_release(&u);
        api_fail(req, &err);
        return;
    }
    if (second_factor) {
        login_challenge(req, &u);
        store_user_release(&u);
        return;
    }
    login_finish(req, &u, "password");
    store_user_release(&u);
}

void api_logout(struct http_request *req)
{
    struct app *app = req->app;
    const char *h = http_header(req, "Authorization");
    const char *token = h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : http_cookie(req, COOKIE);
    char session_id[37] = "";
    if (token && strncmp(token, "sbs_", 4) == 0) {
        struct sb_err err = {0};
        if (auth_logout(app->auth, token, session_id, &err) == 0) {
            const struct api_caller *c = req->user;
            char stream[96];
            snprintf(stream, sizeof stream, "user/%s", c->user_id);
            json_t *data = json_pack("{s:s}", "session_id", session_id);
            struct event_new ev = {
                .stream = stream, .type = "auth.logout", .data = data, .outcome = "success"};
            api_actor(req, &ev.actor);
            store_append(app->store, &ev, NULL, NULL);
            json_decref(data);
            events_close_streams_of(app->events, "session", session_id);
        }
    }
    set_cookie(req, "", 0);
    http_reply_json(req, 204, NULL);
}

/* A caller as the API shows it, without the permission list (api_me
 * splices in a precomputed one). */
static json_t *caller_fields(const struct api_caller *c)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s}", "kind", c->kind, "id", c->id, "name", c->name, "role", c->role);
    if (!o)
        return NULL;
    if (c->user_id[0])
        json_object_set_new(o, "user_id", json_string(c->user_id));
    if (c->totp_setup_required)
        json_object_set_new(o, "totp_setup_required", json_true());
    if (c->node_labels)
        json_object_set(o, "node_labels", c->node_labels);
    if (c->expires_us) {
        char t[40];
        time_format_rfc3339(c->expires_us, t, sizeof t);
        json_object_set_new(o, "expires_at", json_string(t));
    }
    if (strcmp(c->kind, "guest") == 0) {
        /* A guest's page asks /me whether its link still works. */
        json_t *scopes = json_array();
        static const char *const names[] = {"view:metrics",     "view:containers", "view:logs",
                                            "view:deployments", "view:audit",      "view:stacks",
                                            "view:recordings"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (c->scopes & auth_scope_bit(names[i]))
                json_array_append_new(scopes, json_string(names[i]));
        json_object_set_new(o, "scopes", scopes);
    }
    return o;
}

static json_t *caller_json(const struct api_caller *c)
{
    json_t *o = caller_fields(c);
    if (o)
        json_object_set_new(o, "permissions", auth_perms_names(&c->perms));
    return o;
}

void api_me(struct http_request *req)
{
    /* Answered on the MHD thread for cached bearer tokens: the permission
     * list is precomputed text, spliced into the rest of the object. */
    const struct api_caller *c = req->user;
    json_t *o = caller_fields(c);
    char *head = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!head) {
        http_reply_error(req, 500, "internal", "cannot encode the caller");
        return;
    }
    struct buf b;
    buf_init(&b, 1 << 16);
    buf_append(&b, head, strlen(head) - 1); /* without the closing brace */
    /* A custom role's (or a token capped by one) is listed from its set. */
    struct auth_perms builtin;
    auth_perms_builtin(c->role, c->scopes, &builtin);
    if (auth_role_builtin(c->role) && auth_perms_equal(&builtin, &c->perms)) {
        buf_printf(&b, ",\"permissions\":%s}", auth_permissions_json(c->role, c->scopes));
    } else {
        json_t *names = auth_perms_names(&c->perms);
        char *t = json_dumps(names, JSON_COMPACT);
        json_decref(names);
        buf_printf(&b, ",\"permissions\":%s}", t ? t : "[]");
        free(t);
    }
    free(head);
    http_reply_text(req, 200, "application/json", b.data, b.len);
    buf_release(&b);
}

/* GET /g/{token}: what a guest link grants. The path holds the secret, so
 * the route logs its pattern, not the path. */
void api_guest_landing(struct http_request *req)
{
    /* A browser opening the link gets the dashboard, which then asks this
     * route for the grant as JSON. */
    if (api_dashboard_wants_page(req)) {
        api_dashboard_page(req);
        return;
    }
    struct app *app = req->app;
    const char *token = http_param(req, "token");
    struct api_caller *c = NULL;
    struct sb_err err = {0};
    int rc = token && strncmp(token, "sbg_", 4) == 0 ? auth_resolve(app->auth, token, &c, NULL, NULL, &err)
                                                     : SB_EAUTH;
    if (rc == SB_EUNAVAIL) {
        http_reply_error(req, 503, "unavailable", "cannot check the link now; try again");
        return;
    }
    if (rc) {
        http_reply_error(req, 401, "unauthenticated", "this link is invalid, expired or revoked");
        return;
    }
    req->user = c;
    req->user_free = api_caller_free;
    api_guest_request_note(req);
    json_t *o = caller_json(c);
    json_object_set_new(o, "usage", json_string("send this link's token as 'Authorization: Bearer <token>'"));
    http_reply_json(req, 200, o);
}

/* POST /api/v1/auth/password {"current_password","new_password"}: a user
 * changes their own password (sessions only: a token cannot). The other
 * sessions of the user end; this one stays. */
void api_password_change(struct http_request *req)
{
    static const char *const allowed[] = {"current_password", "new_password", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct sb_err err = {0};
    if (strcmp(me->kind, "user") != 0) {
        /* Not a permission matter (the route's permission is held): the
         * credential is of the wrong kind for this request. */
        http_reply_error(req, 400, "session_required", "log in as the user to change their password");
        return;
    }
    const char *current = json_string_value(json_object_get(req->json, "current_password"));
    const char *fresh = json_string_value(json_object_get(req->json, "new_password"));
    if (!current || !*current) {
        sb_field_error(&err, "current_password", "current_password is required");
        api_fail(req, &err);
        return;
    }
    if (auth_password_policy(fresh, &err)) {
        char msg[sizeof err.msg];
        sb_strlcpy(msg, err.msg, sizeof msg);
        sb_field_error(&err, "new_password", "%s", msg);
        api_fail(req, &err);
        return;
    }
    struct store_user u = {0};
    char hash[AUTH_HASH_MAX] = "";
    int rc = store_user_by_name(app->store, me->name, &u, hash, sizeof hash, &err);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    bool ok = strcmp(u.id, me->user_id) == 0 && auth_password_verify(app->auth, hash, current);
    sodium_memzero(hash, sizeof hash);
    char stream[96];
    snprintf(stream, sizeof stream, "user/%s", u.id);
    json_t *data = json_pack("{s:s}", "id", u.id);
    struct event_new ev = {.stream = stream, .type = "user.password_changed", .data = data};
    api_actor(req, &ev.actor);
    if (!ok) {
        ev.outcome = "failure";
        store_append(app->store, &ev, NULL, NULL);
        json_decref(data);
        store_user_release(&u);
        sb_field_error(&err, "current_password", "the current password is wrong");
        api_fail(req, &err);
        return;
    }
    rc = auth_password_hash(fresh, hash, &err);
    if (rc == 0) {
        /* The new hash and its event commit together. */
        ev.outcome = "success";
        rc = store_password_set(app->store, &ev, u.id, hash, &err);
    }
    sodium_memzero(hash, sizeof hash);
    json_decref(data);
    if (rc) {
        store_user_release(&u);
        api_fail(req, &err);
        return;
    }
    /* End every other session of the user; this one stays. */
    const char *h = http_header(req, "Authorization");
    const char *token = h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : http_cookie(req, COOKIE);
    char keep[65] = "";
    if (token)
        auth_token_sha256(token, keep);
    json_t *hashes = json_array();
    store_user_revoke_others(app->store, u.id, keep, hashes, NULL);
    auth_forget(app->auth, hashes);
    json_decref(hashes);
    store_user_release(&u);
    http_reply_json(req, 204, NULL);
}

/* POST /api/v1/auth/login/totp {"challenge", "code" | "recovery_code"}: the
 * second step of a login with 2FA. A code is exactly 6 digits and is
 * accepted once: its time step must be after the last one accepted. Wrong
 * codes count against the address and the username like wrong passwords,
 * and a challenge dies after a few of them. */
void api_login_totp(struct http_request *req)
{
    static const char *const allowed[] = {"challenge", "code", "recovery_code", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *challenge = json_string_value(json_object_get(req->json, "challenge"));
    json_t *code_v = json_object_get(req->json, "code"),
           *recovery_v = json_object_get(req->json, "recovery_code");
    const char *code = json_string_value(code_v), *recovery = json_string_value(recovery_v);
    if (!challenge || !*challenge || strlen(challenge) > 100)
        sb_field_error(&err, "challenge", "challenge is required: the one the password step answered");
    else if ((code_v && recovery_v) || (!code_v && !recovery_v))
        sb_field_error(&err, "code", "give either code (6 digits) or recovery_code");
    else if (code_v && !auth_totp_code_valid(code))
        sb_field_error(&err, "code", "a code is exactly %d digits", AUTH_TOTP_DIGITS);
    else if (recovery_v && (!recovery || !*recovery || strlen(recovery) > 64))
        sb_field_error(&err, "recovery_code", "recovery_code is one of the codes shown when 2FA was set up");
    if (err.code) {
        api_fail(req, &err);
        return;
    }
    const struct auth_config *ac = auth_config(app->auth);
    char ip_key[96], user_key[128], ra[16];
    snprintf(ip_key, sizeof ip_key, "login:ip:%s", req->client_ip);
    int retry = 0;
    if (auth_rate_blocked(app->auth, ip_key, ac->login_ip_limit, &retry)) {
        snprintf(ra, sizeof ra, "%d", retry > 0 ? retry : 1);
        http_add_header(req, "Retry-After", ra);
        login_event(req, NULL, "(second factor)", "denied", "rate_limited", NULL, NULL);
        http_reply_error(req, 429, "rate_limited", "too many failed logins; try again in %s seconds", ra);
        return;
    }
    char hash[65];
    auth_token_sha256(challenge, hash);
    struct store_challenge ch;
    int rc = store_challenge_get(app->store, hash, CHALLENGE_ATTEMPTS, &ch, &err);
    if (rc && rc != SB_ENOTFOUND) {
        api_fail(req, &err);
        return;
    }
    if (rc) {
        auth_rate_hit(app->auth, ip_key);
        login_event(req, NULL, "(second factor)", "failure", "unknown or expired challenge", NULL, NULL);
        http_reply_error(req, 401, "invalid_second_factor",
                         "this login challenge is unknown, used or expired: log in with your password again");
        return;
    }
    snprintf(user_key, sizeof user_key, "login:user:%s", ch.username);
    if (auth_rate_blocked(app->auth, user_key, ac->login_user_limit, &retry)) {
        snprintf(ra, sizeof ra, "%d", retry > 0 ? retry : 1);
        http_add_header(req, "Retry-After", ra);
        login_event(req, NULL, ch.username, "denied", "rate_limited", NULL, NULL);
        http_reply_error(req, 429, "rate_limited", "too many failed logins; try again in %s seconds", ra);
        return;
    }
    const char *reason = "wrong code";
    bool ok = false;
    if (code) {
        struct store_totp t = {0};
        struct buf secret;
        buf_init(&secret, 256);
        int64_t counter = 0;
        rc = store_totp_get(app->store, ch.user_id, &t, &err);
        if (rc == 0 && t.confirmed && crypto_open(&app->master_key, t.sealed_secret, &secret, &err) == 0 &&
            auth_totp_check((const uint8_t *)secret.data, secret.len, code, time_now_us() / 1000000,
                            &counter) == 0) {
            if (counter <= t.last_counter)
                reason = "code already used";
            else if (store_totp_use_counter(app->store, ch.user_id, counter, NULL) == 0)
                ok = true;
            else
                reason = "code already used";
        }
        crypto_buf_wipe(&secret);
        buf_release(&secret);
        store_totp_release(&t);
    } else {
        char rhash[65];
        auth_recovery_code_hash(recovery, rhash);
        ok = store_recovery_code_use(app->store, ch.user_id, rhash, NULL) == 0;
        reason = "wrong or used recovery code";
    }
    if (ok && store_challenge_consume(app->store, ch.id, NULL) != 0) {
        ok = false;
        reason = "challenge used meanwhile";
    }
    if (!ok) {
        (void)store_challenge_fail(app->store, ch.id, NULL);
        auth_rate_hit(app->auth, ip_key);
        auth_rate_hit(app->auth, user_key);
        login_event(req, ch.user_id, ch.username, "failure", reason, NULL, NULL);
        http_reply_error(req, 401, "invalid_second_factor", "wrong or already used %s",
                         code ? "code" : "recovery code");
        return;
    }
    struct store_user u = {0};
    if (store_user_by_id(app->store, ch.user_id, &u, &err)) {
        api_fail(req, &err);
        return;
    }
    login_finish(req, &u, code ? "totp" : "recovery_code");
    store_user_release(&u);
}

/* The caller's own sessions (a user's browser or API sessions; a token
 * or a guest has none to manage). */
static bool session_caller(struct http_request *req)
{
    const struct api_caller *me = req->user;
    if (strcmp(me->kind, "user") == 0 && me->user_id[0])
        return true;
    http_reply_error(req, 400, "session_required", "log in as the user to manage their sessions");
    return false;
}

/* GET /api/v1/auth/sessions: the caller's live sessions, the current one
 * marked. */
void api_sessions_list(struct http_request *req)
{
    if (!session_caller(req))
        return;
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct sb_err err = {0};
    json_t *list = NULL;
    if (auth_sessions_list(app->auth, me->user_id, me->session_id, &list, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:o}", "sessions", list));
}

/* DELETE /api/v1/auth/sessions/{id}: end one of the caller's sessions (404
 * for anyone else's). Its streams close and its next request is refused. */
void api_session_end(struct http_request *req)
{
    if (!session_caller(req))
        return;
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    const char *id = http_param(req, "id");
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    if (auth_session_end(app->auth, &actor, me->user_id, id, &err)) {
        if (err.code == SB_ENOTFOUND)
            http_reply_error(req, 404, "not_found", "no such session of yours (ended, expired or unknown)");
        else
            api_fail(req, &err);
        return;
    }
    events_close_streams_of(app->events, "session", id);
    if (strcmp(id, me->session_id) == 0)
        set_cookie(req, "", 0);
    http_reply_json(req, 204, NULL);
}

/* DELETE /api/v1/auth/sessions: end every session of the caller but this
 * one; answers the ids ended. */
void api_sessions_end_others(struct http_request *req)
{
    if (!session_caller(req))
        return;
    struct app *app = req->app;
    const struct api_caller *me = req->user;
    struct event_actor actor;
    api_actor(req, &actor);
    struct sb_err err = {0};
    json_t *ended = json_array();
    int rc = auth_sessions_end_others(app->auth, &actor, me->user_id, me->session_id, ended, &err);
    size_t i;
    json_t *v;
    json_array_foreach(ended, i, v) events_close_streams_of(app->events, "session", json_string_value(v));
    if (rc) {
        json_decref(ended);
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:o}", "ended", ended));
}
