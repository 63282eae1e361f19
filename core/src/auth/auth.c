/*
 * Passwords, the audit signing key, login rate limits, and the life of
 * struct auth.
 */
#include "internal.h"

#include "../crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIMIT_WINDOW_S    60
#define LIMIT_MAX_ENTRIES 100000

uint32_t auth_hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

struct auth *auth_open(const struct auth_config *cfg, struct sb_err *err)
{
    struct auth *a = calloc(1, sizeof *a);
    if (!a) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    if (a->cfg.session_idle_s <= 0)
        a->cfg.session_idle_s = 2 * 3600;
    if (a->cfg.session_max_s <= 0)
        a->cfg.session_max_s = 24 * 3600;
    if (a->cfg.login_ip_limit <= 0)
        a->cfg.login_ip_limit = 10;
    if (a->cfg.login_user_limit <= 0)
        a->cfg.login_user_limit = 20;
    pthread_mutex_init(&a->cred_lock, NULL);
    pthread_mutex_init(&a->limit_lock, NULL);
    /* The dummy hash that answers for users who do not exist: same
     * algorithm and cost as a real one, of a password nobody knows. */
    char pw[33];
    random_hex(pw, 16);
    if (auth_password_hash(pw, a->dummy_hash, err)) {
        auth_close(a);
        return NULL;
    }
    sodium_memzero(pw, sizeof pw);
    return a;
}

void auth_close(struct auth *a)
{
    if (!a)
        return;
    auth_cred_cache_clear(a);
    auth_limits_clear(a);
    pthread_mutex_destroy(&a->cred_lock);
    pthread_mutex_destroy(&a->limit_lock);
    free(a);
}

const struct auth_config *auth_config(const struct auth *a)
{
    return &a->cfg;
}

/* ---- passwords ------------------------------------------------------------ */

int auth_password_policy(const char *password, struct sb_err *err)
{
    size_t n = password ? strlen(password) : 0;
    if (n < AUTH_PASSWORD_MIN)
        return sb_field_error(err, "password", "password must be at least %d characters", AUTH_PASSWORD_MIN);
    if (n > AUTH_PASSWORD_MAX)
        return sb_field_error(err, "password", "password must be at most %d characters", AUTH_PASSWORD_MAX);
    return 0;
}

int auth_password_hash(const char *password, char *out, struct sb_err *err)
{
    if (crypto_pwhash_str_alg(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return sb_error(err, SB_ENOMEM, "out of memory hashing a password");
    return 0;
}

bool auth_password_verify(struct auth *a, const char *hash, const char *password)
{
    size_t n = password ? strlen(password) : 0;
    if (!hash || !*hash) {
        /* Same work as a real check; the answer is no whatever it says. */
        volatile int sink = crypto_pwhash_str_verify(a->dummy_hash, password ? password : "", n);
        (void)sink;
        return false;
    }
    return crypto_pwhash_str_verify(hash, password, n) == 0;
}

int auth_username_valid(const char *username, struct sb_err *err)
{
    size_t n = username ? strlen(username) : 0;
    if (n == 0 || n > 64)
        return sb_field_error(err, "username", "username must be 1 to 64 characters");
    for (size_t i = 0; i < n; i++) {
        char c = username[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok)
            return sb_field_error(
                err, "username",
                "username may hold only a-z, 0-9, '.', '_' and '-', starting with a letter or digit");
    }
    if (strstr(username, ".."))
        return sb_field_error(err, "username", "username may not contain '..'");
    return 0;
}

/* ---- signing key ------------------------------------------------------------ */

int auth_signer_load(const char *data_dir, struct auth_signer *out, struct sb_err *err)
{
    char path[1024];
    if (!data_dir || !*data_dir)
        return sb_error(err, SB_EINVAL, "no data directory: set --data-dir");
    if (snprintf(path, sizeof path, "%s/audit-signing.key", data_dir) >= (int)sizeof path)
        return sb_error(err, SB_EINVAL, "--data-dir is too long");
    mkdir(data_dir, 0700);
    /* The seed is a 32-byte secret in the same file format as the master
     * key: reuse its loader (creates it 0600, refuses a readable file). */
    struct crypto_master_key seed;
    int rc = crypto_master_key_load(path, true, &seed, err);
    if (rc)
        return rc;
    crypto_sign_seed_keypair(out->pk, out->sk, seed.key);
    crypto_master_key_wipe(&seed);
    return 0;
}

void auth_signer_wipe(struct auth_signer *s)
{
    sodium_memzero(s, sizeof *s);
}

void auth_checkpoint_message(int64_t seq, const uint8_t hash[32], const char *signed_at, struct buf *out)
{
    char hex[65];
    hex_encode(hash, 32, hex);
    buf_printf(out, "serverbox-checkpoint-v1\n%lld\n%s\n%s\n", (long long)seq, hex, signed_at);
}

int auth_checkpoint_check(json_t *doc, int64_t *seq, uint8_t hash[32], uint8_t public_key[32],
                          struct sb_err *err)
{
    json_t *s = json_object_get(doc, "seq");
    const char *h = json_string_value(json_object_get(doc, "hash")),
               *at = json_string_value(json_object_get(doc, "signed_at")),
               *sig = json_string_value(json_object_get(doc, "signature")),
               *pk = json_string_value(json_object_get(doc, "public_key"));
    if (!json_is_integer(s) || json_integer_value(s) < 1)
        return sb_error(err, SB_EINVAL, "no seq");
    *seq = json_integer_value(s);
    if (!h || hex_decode(h, hash, 32))
        return sb_error(err, SB_EINVAL, "hash is not 64 hex digits");
    int64_t us;
    if (!at || time_parse_rfc3339(at, &us))
        return sb_error(err, SB_EINVAL, "signed_at is not an RFC 3339 time");
    uint8_t sigb[crypto_sign_BYTES];
    size_t len = 0;
    if (!sig ||
        sodium_base642bin(sigb, sizeof sigb, sig, strlen(sig), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) ||
        len != sizeof sigb)
        return sb_error(err, SB_EINVAL, "signature is not a base64 Ed25519 signature");
    if (!pk ||
        sodium_base642bin(public_key, 32, pk, strlen(pk), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL) ||
        len != 32)
        return sb_error(err, SB_EINVAL, "public_key is not a base64 Ed25519 key");
    struct buf msg;
    buf_init(&msg, 512);
    auth_checkpoint_message(*seq, hash, at, &msg);
    int bad = crypto_sign_verify_detached(sigb, (const unsigned char *)msg.data, msg.len, public_key);
    buf_release(&msg);
    return bad ? sb_error(err, SB_EINVAL, "the signature does not verify") : 0;
}

/* ---- rate limits ------------------------------------------------------------
 * Fixed one-minute windows. Redis holds the counters so every daemon sees
 * the same ones; when Redis is down, a counter in this process takes over
 * (per daemon, but the limit still holds). */

void auth_limits_clear(struct auth *a)
{
    for (size_t i = 0; i < LIMIT_BUCKETS; i++) {
        while (a->limits[i]) {
            struct limit_entry *e = a->limits[i];
            a->limits[i] = e->next;
            free(e);
        }
    }
    a->n_limits = 0;
}

/* Called with limit_lock held; NULL when full. */
static struct limit_entry *local_entry(struct auth *a, const char *key, bool create)
{
    int64_t now = time_mono_ms();
    struct limit_entry **slot = &a->limits[auth_hash_str(key) % LIMIT_BUCKETS];
    for (struct limit_entry **pp = slot; *pp;) {
        struct limit_entry *e = *pp;
        if (now - e->window_start_ms >= LIMIT_WINDOW_S * 1000) {
            *pp = e->next; /* expired: drop on the way */
            free(e);
            a->n_limits--;
            continue;
        }
        if (strcmp(e->key, key) == 0)
            return e;
        pp = &e->next;
    }
    if (!create || a->n_limits >= LIMIT_MAX_ENTRIES)
        return NULL;
    struct limit_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    sb_strlcpy(e->key, key, sizeof e->key);
    e->window_start_ms = now;
    e->next = *slot;
    *slot = e;
    a->n_limits++;
    return e;
}

bool auth_rate_blocked(struct auth *a, const char *key, int limit, int *retry_after)
{
    char rkey[200];
    snprintf(rkey, sizeof rkey, "sbx:rl:%s", key);
    struct buf b;
    buf_init(&b, 64);
    int rc = redis_get(a->cfg.redis, rkey, &b, NULL);
    long long redis_count = rc == 0 ? sb_int64(b.data) : 0;
    buf_release(&b);
    *retry_after = LIMIT_WINDOW_S;
    if (rc == 0 && redis_count >= limit)
        return true;
    /* The local counter also counts while Redis was down, so a limit
     * reached during an outage stays reached after it. */
    return auth_rate_blocked_here(a, key, limit, retry_after);
}

bool auth_rate_blocked_here(struct auth *a, const char *key, int limit, int *retry_after)
{
    *retry_after = LIMIT_WINDOW_S;
    pthread_mutex_lock(&a->limit_lock);
    struct limit_entry *e = local_entry(a, key, false);
    bool blocked = e && e->count >= limit;
    if (blocked) {
        int64_t left = LIMIT_WINDOW_S - (time_mono_ms() - e->window_start_ms) / 1000;
        *retry_after = left > 0 ? (int)left : 1;
    }
    pthread_mutex_unlock(&a->limit_lock);
    return blocked;
}

void auth_rate_hit(struct auth *a, const char *key)
{
    char rkey[200];
    snprintf(rkey, sizeof rkey, "sbx:rl:%s", key);
    long long count, ttl;
    (void)redis_incr_window(a->cfg.redis, rkey, LIMIT_WINDOW_S, &count, &ttl, NULL);
    pthread_mutex_lock(&a->limit_lock);
    struct limit_entry *e = local_entry(a, key, true);
    if (e)
        e->count++;
    pthread_mutex_unlock(&a->limit_lock);
}
