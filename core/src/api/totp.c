/*
 * Two-factor authentication (TOTP, RFC 6238) for one's own account, and its
 * administration. The secret is sealed with the master key at rest and
 * shown once (as base32 and an otpauth:// URI the dashboard draws as a QR
 * code); enrollment ends with a code from the app, which also turns on the
 * ten single-use recovery codes (shown once, kept as SHA-256).
 *
 * GET  /api/v1/auth/totp           whether 2FA is on, pending, required
 * POST /api/v1/auth/totp           begin (or restart) enrollment: secret + URI
 * POST /api/v1/auth/totp/confirm   {"code"}: 2FA on; the recovery codes
 * POST /api/v1/auth/totp/disable   {"code" | "recovery_code"}: 2FA off (unless the role requires it)
 * DELETE /api/v1/users/{id}/totp   an admin resets a user's 2FA (audited)
 * PUT  /api/v1/roles/{name}/policy {"require_totp"}: an admin requires 2FA for a role
 */
#include "api.h"

#include "../auth/auth.h"
#include "../crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISSUER "Serverbox"

/* The session user this is about, or a reply (400 for tokens and guests). */
static const struct api_caller *session_user(struct http_request *req)
{
    const struct api_caller *me = req->user;
    if (!me || strcmp(me->kind, "user") != 0) {
        http_reply_error(req, 400, "session_required", "log in as the user to manage their 2FA");
        return NULL;
    }
    return me;
}

static struct event_new user_event(struct http_request *req, const char *user_id, const char *type,
                                   json_t *data, char *stream)
{
    snprintf(stream, 96, "user/%s", user_id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
    api_actor(req, &ev.actor);
    return ev;
}

/* Drops the cached credentials of a user (their 2FA state changed). */
static void forget_user(struct app *app, const char *user_id)
{
    json_t *hashes = json_array();
    store_user_credential_hashes(app->store, user_id, hashes, NULL);
    auth_forget(app->auth, hashes);
    json_decref(hashes);
}

/* Checks a code (or recovery code) of a user's confirmed or pending 2FA.
 * 0 when right, with the matched time step taken (a code counts once). */
static int verify(struct http_request *req, const char *user_id, const struct store_totp *t, const char *code,
                  const char *recovery, int64_t *counter)
{
    struct app *app = req->app;
    *counter = 0;
    if (recovery) {
        char h[65];
        auth_recovery_code_hash(recovery, h);
        return t->confirmed ? store_recovery_code_use(app->store, user_id, h, NULL) : SB_EAUTH;
    }
    struct buf secret;
    buf_init(&secret, 256);
    int rc = crypto_open(&app->master_key, t->sealed_secret, &secret, NULL);
    if (rc == 0)
        rc =
            auth_totp_check((const uint8_t *)secret.data, secret.len, code, time_now_us() / 1000000, counter);
    crypto_buf_wipe(&secret);
    buf_release(&secret);
    if (rc == 0 && *counter <= t->last_counter)
        rc = SB_ECONFLICT; /* replayed */
    if (rc == 0 && t->confirmed)
        rc = store_totp_use_counter(app->store, user_id, *counter, NULL);
    return rc;
}

/* Rate limit on code checks of a signed-in user, like logins. */
static bool limited(struct http_request *req, const char *user_id, char *key, size_t keylen)
{
    struct app *app = req->app;
    snprintf(key, keylen, "totp:user:%s", user_id);
    int retry = 0;
    if (!auth_rate_blocked(app->auth, key, auth_config(app->auth)->login_user_limit, &retry))
        return false;
    char ra[16];
    snprintf(ra, sizeof ra, "%d", retry > 0 ? retry : 1);
    http_add_header(req, "Retry-After", ra);
    http_reply_error(req, 429, "rate_limited", "too many wrong codes; try again in %s seconds", ra);
    return true;
}

static json_t *status_json(struct app *app, const struct api_caller *me)
{
    struct store_totp t = {0};
    int rc = store_totp_get(app->store, me->user_id, &t, NULL);
    bool required = false;
    (void)store_role_requires_totp(app->store, me->role, &required, NULL);
    json_t *o = json_pack("{s:b, s:b, s:b}", "enabled", rc == 0 && t.confirmed, "pending",
                          rc == 0 && !t.confirmed, "required", required);
    if (rc == 0 && t.confirmed) {
        json_object_set_new(o, "confirmed_at", json_string(t.confirmed_at));
        json_object_set_new(o, "recovery_codes_left", json_integer(t.recovery_codes_left));
    }
    store_totp_release(&t);
    return o;
}

void api_totp_status(struct http_request *req)
{
    const struct api_caller *me = session_user(req);
    if (me)
        http_reply_json(req, 200, status_json(req->app, me));
}

void api_totp_begin(struct http_request *req)
{
    struct app *app = req->app;
    const struct api_caller *me = session_user(req);
    if (!me)
        return;
    struct sb_err err = {0};
    struct store_totp t = {0};
    int rc = store_totp_get(app->store, me->user_id, &t, &err);
    bool on = rc == 0 && t.confirmed;
    store_totp_release(&t);
    if (rc && rc != SB_ENOTFOUND) {
        api_fail(req, &err);
        return;
    }
    if (on) {
        http_reply_error(req, 409, "conflict",
                         "2FA is already on: turn it off first to enroll another device");
        return;
    }
    uint8_t secret[AUTH_TOTP_SECRET_BYTES];
    char b32[64];
    auth_totp_secret_new(secret);
    char *sealed = crypto_seal(&app->master_key, secret, sizeof secret);
    rc = sealed ? auth_totp_base32(secret, sizeof secret, b32, sizeof b32, &err)
                : sb_error(&err, SB_ENOMEM, "cannot seal the secret");
    sodium_memzero(secret, sizeof secret);
    if (rc == 0) {
        char stream[96];
        json_t *d = json_pack("{s:s}", "id", me->user_id);
        struct event_new ev = user_event(req, me->user_id, "user.totp_enrollment_started", d, stream);
        rc = store_totp_begin(app->store, &ev, me->user_id, sealed, &err);
        json_decref(d);
    }
    free(sealed);
    if (rc) {
        sodium_memzero(b32, sizeof b32);
        api_fail(req, &err);
        return;
    }
    struct buf uri;
    buf_init(&uri, 1024);
    auth_totp_uri(ISSUER, me->name, b32, &uri);
    http_reply_json(req, 201,
                    json_pack("{s:s, s:s%, s:s, s:i, s:i, s:s}", "secret", b32, "otpauth_uri", uri.data,
                              uri.len, "algorithm", "SHA1", "digits", AUTH_TOTP_DIGITS, "period", 30, "next",
                              "POST /api/v1/auth/totp/confirm {code}"));
    sodium_memzero(b32, sizeof b32);
    sodium_memzero(uri.data, uri.len);
    buf_release(&uri);
}

/* The code (6 digits) or recovery code of a request body; replies 422. */
static int code_of(struct http_request *req, bool recovery_allowed, const char **code, const char **recovery)
{
    struct sb_err err = {0};
    json_t *c = json_object_get(req->json, "code"), *r = json_object_get(req->json, "recovery_code");
    *code = json_string_value(c);
    *recovery = recovery_allowed ? json_string_value(r) : NULL;
    if (recovery_allowed && ((c && r) || (!c && !r)))
        sb_field_error(&err, "code", "give either code (6 digits) or recovery_code");
    else if ((c || !recovery_allowed) && !auth_totp_code_valid(*code))
        sb_field_error(&err, "code", "a code is exactly %d digits", AUTH_TOTP_DIGITS);
    else if (r && (!*recovery || !**recovery || strlen(*recovery) > 64))
        sb_field_error(&err, "recovery_code", "recovery_code is one of the codes shown when 2FA was set up");
    return err.code ? api_fail(req, &err) : 0;
}

void api_totp_confirm(struct http_request *req)
{
    static const char *const allowed[] = {"code", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    const struct api_caller *me = session_user(req);
    const char *code, *recovery;
    char key[128];
    if (!me || code_of(req, false, &code, &recovery) || limited(req, me->user_id, key, sizeof key))
        return;
    struct sb_err err = {0};
    struct store_totp t = {0};
    int rc = store_totp_get(app->store, me->user_id, &t, &err);
    if (rc || t.confirmed) {
        store_totp_release(&t);
        if (rc == SB_ENOTFOUND || rc == 0)
            http_reply_error(req, 409, "conflict",
                             rc ? "no enrollment in progress: POST /api/v1/auth/totp first"
                                : "2FA is already on");
        else
            api_fail(req, &err);
        return;
    }
    int64_t counter = 0;
    rc = verify(req, me->user_id, &t, code, NULL, &counter);
    store_totp_release(&t);
    if (rc) {
        auth_rate_hit(app->auth, key);
        sb_field_error(&err, "code", "wrong code: check the device's clock and try the next one");
        api_fail(req, &err);
        return;
    }
    json_t *codes = json_array(), *hashes = json_array();
    for (int i = 0; i < AUTH_RECOVERY_CODES; i++) {
        char c[AUTH_RECOVERY_CODE_LEN + 1], h[65];
        auth_recovery_code_new(c, h);
        json_array_append_new(codes, json_string(c));
        json_array_append_new(hashes, json_string(h));
        sodium_memzero(c, sizeof c);
    }
    char stream[96];
    json_t *d = json_pack("{s:s, s:i}", "id", me->user_id, "recovery_codes", AUTH_RECOVERY_CODES);
    struct event_new ev = user_event(req, me->user_id, "user.totp_enabled", d, stream);
    rc = store_totp_confirm(app->store, &ev, me->user_id, counter, hashes, &err);
    json_decref(d);
    json_decref(hashes);
    if (rc) {
        json_decref(codes);
        api_fail(req, &err);
        return;
    }
    forget_user(app, me->user_id);
    json_t *o = status_json(app, me);
    json_object_set_new(o, "recovery_codes", codes);
    http_reply_json(req, 200, o);
}

void api_totp_disable(struct http_request *req)
{
    static const char *const allowed[] = {"code", "recovery_code", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    const struct api_caller *me = session_user(req);
    const char *code, *recovery;
    char key[128];
    if (!me || code_of(req, true, &code, &recovery) || limited(req, me->user_id, key, sizeof key))
        return;
    struct sb_err err = {0};
    bool required = false;
    if (store_role_requires_totp(app->store, me->role, &required, &err)) {
        api_fail(req, &err);
        return;
    }
    if (required) {
        http_reply_error(req, 409, "conflict", "your role (%s) requires 2FA: an admin can reset it",
                         me->role);
        return;
    }
    struct store_totp t = {0};
    int rc = store_totp_get(app->store, me->user_id, &t, &err);
    if (rc) {
        if (rc == SB_ENOTFOUND)
            http_reply_error(req, 409, "conflict", "2FA is not on");
        else
            api_fail(req, &err);
        return;
    }
    int64_t counter = 0;
    rc = verify(req, me->user_id, &t, code, recovery, &counter);
    store_totp_release(&t);
    if (rc) {
        auth_rate_hit(app->auth, key);
        sb_field_error(&err, recovery ? "recovery_code" : "code", "wrong or already used %s",
                       recovery ? "recovery code" : "code");
        api_fail(req, &err);
        return;
    }
    char stream[96];
    json_t *d = json_pack("{s:s}", "id", me->user_id);
    struct event_new ev = user_event(req, me->user_id, "user.totp_disabled", d, stream);
    rc = store_totp_delete(app->store, &ev, me->user_id, &err);
    json_decref(d);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    forget_user(app, me->user_id);
    http_reply_json(req, 204, NULL);
}

void api_user_totp_reset(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    struct store_user u = {0};
    if (store_user_by_id(app->store, http_param(req, "id"), &u, &err)) {
        api_fail(req, &err);
        return;
    }
    struct store_totp t = {0};
    int rc = store_totp_get(app->store, u.id, &t, &err);
    store_totp_release(&t);
    if (rc == 0) {
        char stream[96];
        json_t *d = json_pack("{s:s, s:s}", "id", u.id, "username", u.username);
        struct event_new ev = user_event(req, u.id, "user.totp_reset", d, stream);
        rc = store_totp_delete(app->store, &ev, u.id, &err);
        json_decref(d);
    } else if (rc == SB_ENOTFOUND) {
        rc = sb_error(&err, SB_ECONFLICT, "%s has no 2FA", u.username);
    }
    if (rc == 0)
        forget_user(app, u.id);
    store_user_release(&u);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 204, NULL);
}

void api_role_policy_set(struct http_request *req)
{
    static const char *const allowed[] = {"require_totp", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *name = http_param(req, "name");
    json_t *req_totp = json_object_get(req->json, "require_totp");
    struct auth_perms perms;
    if (!auth_role_valid(name) && (auth_role_name_valid(name, "name", NULL) ||
                                   api_role_perms(req, name, "name", &perms, &err) == SB_EINVAL)) {
        http_reply_error(req, 404, "not_found", "no such role");
        return;
    }
    if (err.code) {
        api_fail(req, &err);
        return;
    }
    if (!json_is_boolean(req_totp)) {
        sb_field_error(&err, "require_totp", "require_totp must be true or false");
        api_fail(req, &err);
        return;
    }
    char stream[96];
    snprintf(stream, sizeof stream, "role/%s", name);
    json_t *d = json_pack("{s:s, s:O}", "role", name, "require_totp", req_totp);
    struct event_new ev = {.stream = stream, .type = "role.policy_set", .data = d, .outcome = "success"};
    api_actor(req, &ev.actor);
    json_t *hashes = json_array();
    int rc = store_append(app->store, &ev, NULL, &err);
    json_decref(d);
    if (rc == 0) {
        /* Sessions of the role's users are judged again (setup required or not). */
        store_role_usage(app->store, name, NULL, NULL, NULL, hashes, NULL);
        auth_forget(app->auth, hashes);
    }
    json_decref(hashes);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:s, s:O}", "role", name, "require_totp", req_totp));
}
