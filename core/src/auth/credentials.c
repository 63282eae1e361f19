/*
 * Credentials: token -> caller, on the hot path of every request.
 *
 * Three levels: a table in this process (entries live CACHE_TTL_MS, so a
 * request usually costs one SHA-256 and a mutex), then Redis (shared by the
 * daemons, REDIS_TTL_S), then PostgreSQL. Revocations drop the Redis entry
 * and clear the in-process table, so within one daemon they take effect at
 * once, and across daemons within CACHE_TTL_MS (+ CACHE_GRACE_MS). Expiry is checked from the
 * cached expiry time on every request; idle sessions are judged from the
 * last-seen time, which is written back at most every TOUCH_MS.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_TTL_MS 2000
/* While one thread re-reads an expired entry, the others keep using it for
 * up to this long, so 64 connections do not all miss at the same moment. */
#define CACHE_GRACE_MS 1000
#define REDIS_TTL_S    30
#define TOUCH_MS       30000
#define CACHE_MAX      50000
#define TOKEN_BODY_LEN 43 /* 32 bytes in unpadded base64url */

void api_caller_free(void *caller)
{
    struct api_caller *c = caller;
    if (!c)
        return;
    json_decref(c->node_labels);
    free(c);
}

void auth_token_sha256(const char *token, char hash_hex[65])
{
    uint8_t h[32];
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    hex_encode(h, 32, hash_hex);
}

void auth_token_new(const char *prefix, char *out, size_t outlen, char hash_hex[65])
{
    uint8_t raw[32];
    char body[64];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(body, sizeof body, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    snprintf(out, outlen, "%s%s", prefix, body);
    sodium_memzero(body, sizeof body);
    auth_token_sha256(out, hash_hex);
}

static const char *kind_of(const char *token)
{
    size_t n = strlen(token);
    if (n != 4 + TOKEN_BODY_LEN)
        return NULL;
    for (size_t i = 4; i < n; i++) {
        char c = token[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
            return NULL;
    }
    if (strncmp(token, "sbs_", 4) == 0)
        return "session";
    if (strncmp(token, "sbx_", 4) == 0)
        return "token";
    if (strncmp(token, "sbg_", 4) == 0)
        return "guest";
    return NULL;
}

/* ---- the in-process table ---------------------------------------------------- */

static void entry_free(struct cred_entry *e)
{
    store_credential_release(&e->cred);
    free(e);
}

void auth_cred_cache_clear(struct auth *a)
{
    pthread_mutex_lock(&a->cred_lock);
    for (size_t i = 0; i < CRED_BUCKETS; i++) {
        while (a->creds[i]) {
            struct cred_entry *e = a->creds[i];
            a->creds[i] = e->next;
            entry_free(e);
        }
    }
    a->n_creds = 0;
    pthread_mutex_unlock(&a->cred_lock);
}

static uint32_t bucket_of(const char *hash)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 4) | (uint32_t)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return v % CRED_BUCKETS;
}

/* With cred_lock held. */
static struct cred_entry *cache_find(struct auth *a, const char *hash)
{
    for (struct cred_entry *e = a->creds[bucket_of(hash)]; e; e = e->next)
        if (memcmp(e->hash, hash, 64) == 0)
            return e;
    return NULL;
}

static void cache_remove_locked(struct auth *a, const char *hash)
{
    for (struct cred_entry **pp = &a->creds[bucket_of(hash)]; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->hash, hash, 64) == 0) {
            struct cred_entry *e = *pp;
            *pp = e->next;
            entry_free(e);
            a->n_creds--;
            return;
        }
    }
}

static void cache_put(struct auth *a, const char *hash, const struct store_credential *c)
{
    struct cred_entry *e = calloc(1, sizeof *e);
    if (!e)
        return;
    sb_strlcpy(e->hash, hash, sizeof e->hash);
    e->cred = *c;
    e->cred.node_labels = c->node_labels ? json_deep_copy(c->node_labels) : NULL;
    e->cred.user_node_labels = c->user_node_labels ? json_deep_copy(c->user_node_labels) : NULL;
    e->cred.role_permissions = c->role_permissions ? json_deep_copy(c->role_permissions) : NULL;
    e->cred.user_role_permissions =
        c->user_role_permissions ? json_deep_copy(c->user_role_permissions) : NULL;
    e->cached_ms = time_mono_ms();
    e->touched_ms = e->cached_ms;
    e->bucket_ms = e->cached_ms;
    e->bucket = a->cfg.token_rate_per_s * 2.0;
    pthread_mutex_lock(&a->cred_lock);
    if (a->n_creds >= CACHE_MAX) {
        pthread_mutex_unlock(&a->cred_lock);
        auth_cred_cache_clear(a);
        pthread_mutex_lock(&a->cred_lock);
    }
    cache_remove_locked(a, hash);
    uint32_t b = bucket_of(hash);
    e->next = a->creds[b];
    a->creds[b] = e;
    a->n_creds++;
    pthread_mutex_unlock(&a->cred_lock);
}

/* ---- Redis ------------------------------------------------------------------ */

static void redis_key(const char *hash, char *out, size_t len)
{
    snprintf(out, len, "sbx:cred:%s", hash);
}

static void redis_put(struct auth *a, const char *hash, const struct store_credential *c)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O?, s:O?, s:I, s:I}", "kind",
                          c->kind, "id", c->id, "user_id", c->user_id, "name", c->name, "username",
                          c->username, "role", c->role, "user_role", c->user_role, "csrf", c->csrf_sha256,
                          "scopes", c->scopes, "labels", c->node_labels, "user_labels", c->user_node_labels,
                          "exp", (json_int_t)c->expires_us, "seen", (json_int_t)c->last_seen_us);
    if (o && c->totp_setup_required)
        json_object_set_new(o, "totp_setup", json_true());
    if (o && c->role_permissions)
        json_object_set(o, "perms", c->role_permissions);
    if (o && c->user_role_permissions)
        json_object_set(o, "user_perms", c->user_role_permissions);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return;
    char key[80];
    redis_key(hash, key, sizeof key);
    (void)redis_setex(a->cfg.redis, key, text, strlen(text), REDIS_TTL_S, NULL);
    free(text);
}

static void copy_str(json_t *o, const char *k, char *out, size_t len)
{
    const char *v = json_string_value(json_object_get(o, k));
    sb_strlcpy(out, v ? v : "", len);
}

static int redis_fetch(struct auth *a, const char *hash, struct store_credential *c)
{
    if (!redis_configured(a->cfg.redis))
        return SB_EUNAVAIL;
    char key[80];
    redis_key(hash, key, sizeof key);
    struct buf b;
    buf_init(&b, 64 * 1024);
    int rc = redis_get(a->cfg.redis, key, &b, NULL);
    json_t *o = rc == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    buf_release(&b);
    if (!o)
        return SB_ENOTFOUND;
    memset(c, 0, sizeof *c);
    copy_str(o, "kind", c->kind, sizeof c->kind);
    copy_str(o, "id", c->id, sizeof c->id);
    copy_str(o, "user_id", c->user_id, sizeof c->user_id);
    copy_str(o, "name", c->name, sizeof c->name);
    copy_str(o, "username", c->username, sizeof c->username);
    copy_str(o, "role", c->role, sizeof c->role);
    copy_str(o, "user_role", c->user_role, sizeof c->user_role);
    copy_str(o, "csrf", c->csrf_sha256, sizeof c->csrf_sha256);
    copy_str(o, "scopes", c->scopes, sizeof c->scopes);
    json_t *labels = json_object_get(o, "labels");
    c->node_labels = json_is_object(labels) ? json_deep_copy(labels) : NULL;
    json_t *user_labels = json_object_get(o, "user_labels");
    c->user_node_labels = json_is_object(user_labels) ? json_deep_copy(user_labels) : NULL;
    json_t *perms = json_object_get(o, "perms"), *user_perms = json_object_get(o, "user_perms");
    c->role_permissions = json_is_array(perms) ? json_deep_copy(perms) : NULL;
    c->user_role_permissions = json_is_array(user_perms) ? json_deep_copy(user_perms) : NULL;
    c->totp_setup_required = json_is_true(json_object_get(o, "totp_setup"));
    c->expires_us = json_integer_value(json_object_get(o, "exp"));
    c->last_seen_us = json_integer_value(json_object_get(o, "seen"));
    json_decref(o);
    return c->id[0] ? 0 : SB_ENOTFOUND;
}

/* ---- resolution --------------------------------------------------------------- */

/* The intersection of two label selectors (each: every label must match):
 * the union of their labels. Two different values for one key match no
 * node: that key gets null, which no node label equals. NULL or {} is
 * "every node". A new reference, or NULL for every node. */
static json_t *selector_intersect(json_t *a, json_t *b)
{
    if (!a || json_object_size(a) == 0)
        return b && json_object_size(b) ? json_deep_copy(b) : NULL;
    json_t *out = json_deep_copy(a);
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        json_t *have = json_object_get(out, k);
        if (!have)
            json_object_set(out, k, v);
        else if (!json_equal(have, v))
            json_object_set_new(out, k, json_null());
    }
    return out;
}

static struct api_caller *caller_from(const struct store_credential *c)
{
    struct api_caller *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    if (strcmp(c->kind, "session") == 0) {
        sb_strlcpy(k->kind, "user", sizeof k->kind);
        sb_strlcpy(k->id, c->user_id, sizeof k->id);
        sb_strlcpy(k->name, c->username, sizeof k->name);
        sb_strlcpy(k->role, c->user_role, sizeof k->role);
        sb_strlcpy(k->user_id, c->user_id, sizeof k->user_id);
        sb_strlcpy(k->session_id, c->id, sizeof k->session_id);
        auth_perms_of_role(c->user_role, c->user_role_permissions, &k->perms);
        if (c->totp_setup_required) {
            /* Until they set up 2FA: their own credential and /me only. */
            json_t *none = json_array();
            struct auth_perms implicit_only;
            auth_perms_custom(none, &implicit_only);
            auth_perms_and(&k->perms, &implicit_only);
            json_decref(none);
            k->totp_setup_required = true;
        }
    } else if (strcmp(c->kind, "token") == 0) {
        sb_strlcpy(k->kind, "token", sizeof k->kind);
        sb_strlcpy(k->id, c->id, sizeof k->id);
        sb_strlcpy(k->name, c->name, sizeof k->name);
        /* A token never holds more than its owner holds now: its role's
         * permissions and the owner's role's, both. It is named by its own
         * role when that is within the owner's, else by the owner's. */
        struct auth_perms owner;
        auth_perms_of_role(c->role, c->role_permissions, &k->perms);
        auth_perms_of_role(c->user_role, c->user_role_permissions, &owner);
        bool within = auth_perms_within(&k->perms, &owner);
        auth_perms_and(&k->perms, &owner);
        sb_strlcpy(k->role, within ? c->role : c->user_role, sizeof k->role);
        sb_strlcpy(k->user_id, c->user_id, sizeof k->user_id);
    } else {
        sb_strlcpy(k->kind, "guest", sizeof k->kind);
        sb_strlcpy(k->id, c->id, sizeof k->id);
        sb_strlcpy(k->name, c->name[0] ? c->name : "guest", sizeof k->name);
        sb_strlcpy(k->role, "guest", sizeof k->role);
        char scopes[sizeof c->scopes];
        sb_strlcpy(scopes, c->scopes, sizeof scopes);
        char *save = NULL;
        for (char *s = strtok_r(scopes, ",", &save); s; s = strtok_r(NULL, ",", &save))
            k->scopes |= auth_scope_bit(s);
        auth_perms_builtin("guest", k->scopes, &k->perms);
    }
    /* A token never sees more nodes than its owner sees now: its own
     * selector and the owner's current one, both. */
    if (strcmp(c->kind, "token") == 0)
        k->node_labels = selector_intersect(c->node_labels, c->user_node_labels);
    else
        k->node_labels = c->node_labels ? json_deep_copy(c->node_labels) : NULL;
    k->expires_us = c->expires_us;
    return k;
}

/* How often use is written back: often enough that an idle timeout never
 * catches a session in use. */
static int64_t touch_ms(const struct auth *a)
{
    int64_t quarter = a->cfg.session_idle_s * 1000 / 4;
    return quarter < TOUCH_MS ? (quarter > 0 ? quarter : 1) : TOUCH_MS;
}

/* Whether a credential is still usable at now_us (expiry and idleness). */
static bool live(struct auth *a, const struct store_credential *c, int64_t now_us)
{
    if (c->expires_us && c->expires_us <= now_us)
        return false;
    if (strcmp(c->kind, "session") == 0 && c->last_seen_us &&
        now_us - c->last_seen_us > a->cfg.session_idle_s * 1000000)
        return false;
    return true;
}

/* Takes one request from the entry's token bucket (refilled at the rate,
 * holding two seconds' worth; per daemon). With cred_lock held. */
static bool bucket_take(struct auth *a, struct cred_entry *e, int64_t now_ms)
{
    if (a->cfg.token_rate_per_s <= 0)
        return true;
    double cap = a->cfg.token_rate_per_s * 2.0;
    e->bucket += (double)(now_ms - e->bucket_ms) * a->cfg.token_rate_per_s / 1000.0;
    if (e->bucket > cap)
        e->bucket = cap;
    e->bucket_ms = now_ms;
    if (e->bucket < 1.0)
        return false;
    e->bucket -= 1.0;
    return true;
}

int auth_resolve(struct auth *a, const char *token, struct api_caller **out, char *csrf_sha256,
                 bool *rate_limited, struct sb_err *err)
{
    *out = NULL;
    if (rate_limited)
        *rate_limited = false;
    const char *kind = token ? kind_of(token) : NULL;
    if (!kind)
        return sb_error(err, SB_EAUTH, "invalid or expired credential");
    char hash[65];
    auth_token_sha256(token, hash);
    int64_t now_ms = time_mono_ms(), now_us = time_now_us();

    bool touch = false;
    char touch_kind[8] = "", touch_id[37] = "";
    pthread_mutex_lock(&a->cred_lock);
    struct cred_entry *e = cache_find(a, hash);
    int64_t age = e ? now_ms - e->cached_ms : 0;
    bool usable = e && (age < CACHE_TTL_MS || (e->refreshing && age < CACHE_TTL_MS + CACHE_GRACE_MS));
    if (e && !usable)
        e->refreshing = true; /* this thread refreshes it */
    if (usable) {
        if (!live(a, &e->cred, now_us)) {
            cache_remove_locked(a, hash);
            pthread_mutex_unlock(&a->cred_lock);
            return sb_error(err, SB_EAUTH, "invalid or expired credential");
        }
        *out = caller_from(&e->cred);
        if (rate_limited && strcmp(e->cred.kind, "guest") != 0)
            *rate_limited = !bucket_take(a, e, now_ms);
        if (csrf_sha256)
            sb_strlcpy(csrf_sha256, e->cred.csrf_sha256, 65);
        if (now_ms - e->touched_ms >= touch_ms(a)) {
            e->touched_ms = now_ms;
            e->cred.last_seen_us = now_us;
            touch = true;
            sb_strlcpy(touch_kind, e->cred.kind, sizeof touch_kind);
            sb_strlcpy(touch_id, e->cred.id, sizeof touch_id);
        }
        pthread_mutex_unlock(&a->cred_lock);
        if (touch)
            (void)store_credential_touch(a->cfg.store, touch_kind, touch_id, NULL);
        return *out ? 0 : sb_error(err, SB_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&a->cred_lock);

    struct store_credential c;
    bool from_db = false;
    bool cached = redis_fetch(a, hash, &c) == 0;
    if (cached && !live(a, &c, now_us)) {
        /* Redis's last-seen time may be older than the database's. */
        store_credential_release(&c);
        cached = false;
    }
    if (!cached) {
        int rc = store_credential_lookup(a->cfg.store, kind, hash, &c, err);
        if (rc == SB_EAUTH) {
            /* Gone (revoked by another daemon, expired): stop the grace. */
            pthread_mutex_lock(&a->cred_lock);
            cache_remove_locked(a, hash);
            pthread_mutex_unlock(&a->cred_lock);
        }
        if (rc)
            return rc;
        from_db = true;
    }
    if (!live(a, &c, now_us)) {
        store_credential_release(&c);
        return sb_error(err, SB_EAUTH, "invalid or expired credential");
    }
    /* First use after a while: record it, so idle expiry and last-used
     * times stay current. */
    if (strcmp(c.kind, "guest") != 0 && (now_us - c.last_seen_us) / 1000 >= touch_ms(a)) {
        (void)store_credential_touch(a->cfg.store, c.kind, c.id, NULL);
        c.last_seen_us = now_us;
        from_db = true;
    }
    if (from_db)
        redis_put(a, hash, &c);
    cache_put(a, hash, &c);
    *out = caller_from(&c);
    if (csrf_sha256)
        sb_strlcpy(csrf_sha256, c.csrf_sha256, 65);
    store_credential_release(&c);
    return *out ? 0 : sb_error(err, SB_ENOMEM, "out of memory");
}

int auth_resolve_cached(struct auth *a, const char *token, struct api_caller **out)
{
    *out = NULL;
    if (!token || !kind_of(token))
        return SB_ENOTFOUND;
    char hash[65];
    auth_token_sha256(token, hash);
    int64_t now_ms = time_mono_ms(), now_us = time_now_us();
    pthread_mutex_lock(&a->cred_lock);
    struct cred_entry *e = cache_find(a, hash);
    int64_t age = e ? now_ms - e->cached_ms : 0;
    bool ok = e && (age < CACHE_TTL_MS || (e->refreshing && age < CACHE_TTL_MS + CACHE_GRACE_MS)) &&
              live(a, &e->cred, now_us) && now_ms - e->touched_ms < touch_ms(a) &&
              strcmp(e->cred.kind, "guest") != 0 && bucket_take(a, e, now_ms);
    if (ok)
        *out = caller_from(&e->cred);
    pthread_mutex_unlock(&a->cred_lock);
    return *out ? 0 : SB_ENOTFOUND;
}

void auth_forget(struct auth *a, json_t *hashes)
{
    size_t i;
    json_t *h;
    json_array_foreach(hashes, i, h)
    {
        const char *s = json_string_value(h);
        if (!s)
            continue;
        char key[80];
        redis_key(s, key, sizeof key);
        (void)redis_del(a->cfg.redis, key, NULL);
    }
    auth_cred_cache_clear(a);
}

/* auth_forget for one session's token hash. */
static void forget_hash(struct auth *a, const char *hash)
{
    json_t *one = json_pack("[s]", hash);
    auth_forget(a, one);
    json_decref(one);
}

int auth_logout(struct auth *a, const char *token, char *session_id, struct sb_err *err)
{
    char hash[65];
    auth_token_sha256(token, hash);
    int rc = store_session_revoke_hash(a->cfg.store, hash, session_id, err);
    forget_hash(a, hash);
    return rc;
}

/* ---- a user's own sessions ------------------------------------------------------ */

int auth_sessions_list(struct auth *a, const char *user_id, const char *current_id, json_t **out,
                       struct sb_err *err)
{
    *out = NULL;
    json_t *list = NULL;
    int rc = store_sessions_list(a->cfg.store, user_id, a->cfg.session_idle_s, &list, err);
    if (rc)
        return rc;
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        const char *id = json_string_value(json_object_get(s, "id"));
        json_object_set_new(s, "current", json_boolean(id && current_id && strcmp(id, current_id) == 0));
    }
    *out = list;
    return 0;
}

int auth_session_end(struct auth *a, const struct event_actor *actor, const char *user_id,
                     const char *session_id, struct sb_err *err)
{
    char hash[65];
    int rc = store_session_live_hash(a->cfg.store, user_id, session_id, hash, err);
    if (rc)
        return rc;
    char stream[64];
    snprintf(stream, sizeof stream, "user/%s", user_id);
    json_t *data = json_pack("{s:s, s:s}", "session_id", session_id, "user_id", user_id);
    struct event_new ev = {
        .stream = stream, .type = "auth.session_ended", .data = data, .actor = *actor, .outcome = "success"};
    rc = store_session_end(a->cfg.store, &ev, user_id, session_id, err);
    json_decref(data);
    if (rc == 0)
        forget_hash(a, hash);
    return rc;
}

int auth_sessions_end_others(struct auth *a, const struct event_actor *actor, const char *user_id,
                             const char *keep_id, json_t *ended, struct sb_err *err)
{
    json_t *list = NULL;
    int rc = store_sessions_list(a->cfg.store, user_id, 0, &list, err);
    if (rc)
        return rc;
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        const char *id = json_string_value(json_object_get(s, "id"));
        if (!id || (keep_id && strcmp(id, keep_id) == 0))
            continue;
        struct sb_err e1 = {0};
        int r1 = auth_session_end(a, actor, user_id, id, &e1);
        if (r1 == 0)
            json_array_append_new(ended, json_string(id));
        else if (r1 != SB_ENOTFOUND && rc == 0) {
            /* Ended meanwhile is not a failure; anything else is reported
             * once the others have been tried. */
            rc = r1;
            if (err)
                *err = e1;
        }
    }
    json_decref(list);
    return rc;
}
