/*
 * auth — identity and access: password hashing (argon2id), credentials
 * (sessions, API tokens, guest links) resolved to a caller through a
 * two-level cache, the one table that maps roles to permissions, login
 * rate limits (Redis, with an in-process fallback), and the Ed25519 key that
 * signs audit checkpoints.
 *
 * Tokens are 32 random bytes, base64url, behind a prefix that says what they
 * are: "sbs_" session, "sbx_" API token, "sbg_" guest link. Only sha256(token)
 * is ever stored. Every function may be called from any worker thread.
 */
#ifndef SB_AUTH_H
#define SB_AUTH_H

#include "../redis/redis.h"
#include "../store/store.h"
#include "../util/util.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

struct auth;
struct http_route;

/* Who is calling (named api_caller for the handlers that read it; it is
 * auth's type). The auth guard fills one in (req->user, freed with the
 * request) before any non-public handler runs; a request without one is
 * anonymous. Handlers read it, never build it. */
enum api_guest_scope {
    API_SCOPE_METRICS = 1 << 0,     /* view:metrics */
    API_SCOPE_CONTAINERS = 1 << 1,  /* view:containers */
    API_SCOPE_LOGS = 1 << 2,        /* view:logs */
    API_SCOPE_DEPLOYMENTS = 1 << 3, /* view:deployments */
    API_SCOPE_AUDIT = 1 << 4,       /* view:audit */
    API_SCOPE_STACKS = 1 << 5,      /* view:stacks */
    API_SCOPE_RECORDINGS = 1 << 6,  /* view:recordings: list and replay terminal recordings, nothing else */
};

/* A set of permissions of the RBAC table (bit i = its row i). */
#define AUTH_PERM_WORDS 2
struct auth_perms {
    uint64_t w[AUTH_PERM_WORDS];
};

/* Role names: built-in (admin, operator, viewer, guest) or custom. */
#define AUTH_ROLE_MAX 32

struct api_caller {
    char kind[16];                /* user | token | guest | agent | system */
    char id[64];                  /* user, token, guest link or node id */
    char name[128];               /* username, token name, guest note */
    char role[AUTH_ROLE_MAX + 8]; /* admin | operator | viewer | guest | a custom role's name */
    char user_id[64];             /* the user a token or session belongs to; empty for guests */
    char session_id[37];          /* the session this caller came from; empty for tokens and guests */
    unsigned scopes;              /* enum api_guest_scope, for guests */
    json_t *node_labels;      /* owned; label selector {"env":"staging"} limiting visible nodes, NULL = all */
    int64_t expires_us;       /* when this credential stops working (0 = never) */
    struct auth_perms perms;  /* what it may do now (auth_caller_allows); filled by auth */
    bool totp_setup_required; /* a session whose role needs 2FA the user has not set up: only
                                 authenticated and self:read until they do */
};

/* Frees a caller (for req->user_free). */
void api_caller_free(void *caller);

struct auth_config {
    struct store *store;
    struct redis_client *redis; /* may be unconfigured or down */
    int64_t session_idle_s;     /* a session unused this long expires */
    int64_t session_max_s;      /* absolute session lifetime */
    int token_rate_per_s;       /* requests per second per credential; 0 = unlimited */
    int login_ip_limit;         /* failed logins per minute per client address */
    int login_user_limit;       /* failed logins per minute per username */
};

struct auth *auth_open(const struct auth_config *cfg, struct sb_err *err);
void auth_close(struct auth *a);
const struct auth_config *auth_config(const struct auth *a);

/* ---- passwords ------------------------------------------------------------ */
#define AUTH_PASSWORD_MIN 12
#define AUTH_PASSWORD_MAX 512
#define AUTH_HASH_MAX     crypto_pwhash_STRBYTES
/* Checks the policy; SB_EINVAL naming field "password". */
int auth_password_policy(const char *password, struct sb_err *err);
/* argon2id, interactive limits. out has AUTH_HASH_MAX bytes. */
int auth_password_hash(const char *password, char *out, struct sb_err *err);
/* Verifies against hash; with hash NULL or "" verifies against a dummy hash
 * (same cost) and returns false, so a missing user takes as long as a wrong
 * password. */
bool auth_password_verify(struct auth *a, const char *hash, const char *password);
/* Usernames: 1-64 of [a-z0-9._-], starting with a letter or digit. */
int auth_username_valid(const char *username, struct sb_err *err);

/* ---- RBAC: the one table ------------------------------------------------- */
bool auth_permission_known(const char *permission);
bool auth_role_valid(const char *role); /* admin | operator | viewer */
/* Whether a role (with guest scopes, for role "guest") holds a permission. */
bool auth_allows(const char *role, unsigned scopes, const char *permission);
/* admin > operator > viewer; whether `role` is at most `ceiling`. */
bool auth_role_within(const char *role, const char *ceiling);
/* view:metrics … -> enum api_guest_scope bit; 0 for unknown. */
unsigned auth_scope_bit(const char *scope);
/* The permission strings a role holds, as a JSON array (caller owns). */
json_t *auth_permissions_of(const char *role, unsigned scopes);
/* The same as compact JSON text, computed once (static storage). */
const char *auth_permissions_json(const char *role, unsigned scopes);
/* ---- custom roles --------------------------------------------------------- */
/* Built-in roles (admin, operator, viewer, guest) cannot be edited. */
bool auth_role_builtin(const char *role);
/* A custom role's name: 1-32 of [a-z0-9_-] starting with a letter, not a
 * built-in one; SB_EINVAL naming `field`. */
int auth_role_name_valid(const char *name, const char *field, struct sb_err *err);
/* Whether a permission may be put in a custom role: known, and not one of
 * the pseudo-permissions (public, agent) or the implicit ones
 * (authenticated, self:read: every custom role holds them). */
bool auth_permission_assignable(const char *permission);
/* The permissions of a built-in role (with guest scopes for "guest"). */
void auth_perms_builtin(const char *role, unsigned scopes, struct auth_perms *out);
/* The permissions of a custom role from its stored list (a JSON array of
 * names; unknown names are ignored), plus the implicit ones. A NULL list
 * (the role does not exist) holds nothing. */
void auth_perms_custom(json_t *names, struct auth_perms *out);
/* The permissions of a role: built-in by name, otherwise the stored list. */
void auth_perms_of_role(const char *role, json_t *custom_names, struct auth_perms *out);
bool auth_perms_has(const struct auth_perms *p, const char *permission);
/* Whether every permission of a is in b. */
bool auth_perms_within(const struct auth_perms *a, const struct auth_perms *b);
void auth_perms_and(struct auth_perms *a, const struct auth_perms *b);
bool auth_perms_equal(const struct auth_perms *a, const struct auth_perms *b);
/* The names in a set (without public and agent), in table order (caller owns). */
json_t *auth_perms_names(const struct auth_perms *p);
/* Whether the caller holds a permission now: the guard's question, and the
 * one handlers ask for finer decisions. */
bool auth_caller_allows(const struct api_caller *c, const char *permission);
/* Every permission a custom role may hold, in table order, as
 * [{"name","description","builtin_roles":[...]}] (caller owns). */
json_t *auth_permission_catalog(void);

/* Refuses a route table with an unknown permission, or a non-public inline
 * route (the guard would block an epoll thread). */
int auth_check_routes(const struct http_route *routes, size_t n, struct sb_err *err);

/* ---- credentials ---------------------------------------------------------- */
/* A fresh token "<prefix><43 chars base64url>" into out (>= 64 bytes) and its
 * sha256 as hex into hash_hex[65]. */
void auth_token_new(const char *prefix, char *out, size_t outlen, char hash_hex[65]);
void auth_token_sha256(const char *token, char hash_hex[65]);

/* Resolves a token to a new caller (caller frees with api_caller_free). For
 * sessions, *csrf_sha256 (65 bytes, may be NULL) gets the CSRF token hash.
 * SB_EAUTH for an unknown, expired or revoked token; SB_EUNAVAIL when the
 * database is down and the token is not cached. *rate_limited (may be NULL)
 * is set when the credential is over its request rate (the caller is still
 * returned, for the audit event). */
int auth_resolve(struct auth *a, const char *token, struct api_caller **out, char *csrf_sha256,
                 bool *rate_limited, struct sb_err *err);
/* Like auth_resolve, from the in-process cache alone, never blocking: 0
 * with a caller when the token is cached, live, within its rate and needs no
 * write-back; SB_ENOTFOUND otherwise (then use auth_resolve). */
int auth_resolve_cached(struct auth *a, const char *token, struct api_caller **out);
/* Drops revoked credentials (a JSON array of sha256 hex, may be NULL) from
 * Redis and forgets every credential cached in memory: after a revocation,
 * a role change, a disabled user. */
void auth_forget(struct auth *a, json_t *hashes);
/* Revokes the session a token belongs to (logout). */
int auth_logout(struct auth *a, const char *token, char *session_id, struct sb_err *err);
/* A user's live sessions as a JSON array (store_sessions_list's objects
 * with "current": whether it is `current_id`); caller owns it. */
int auth_sessions_list(struct auth *a, const char *user_id, const char *current_id, json_t **out,
                       struct sb_err *err);
/* Ends one live session of `user_id` (SB_ENOTFOUND when it is not theirs or
 * no longer live) with its auth.session_ended event, and forgets it in the
 * caches: its next request is refused. */
int auth_session_end(struct auth *a, const struct event_actor *actor, const char *user_id,
                     const char *session_id, struct sb_err *err);
/* Ends every live session of `user_id` but `keep_id`, one event each;
 * appends the ended ids to `ended`. */
int auth_sessions_end_others(struct auth *a, const struct event_actor *actor, const char *user_id,
                             const char *keep_id, json_t *ended, struct sb_err *err);

/* ---- two-factor authentication (TOTP, RFC 6238; auth/totp.c) --------------- */
#define AUTH_TOTP_SECRET_BYTES 20
#define AUTH_TOTP_DIGITS       6
#define AUTH_RECOVERY_CODES    10
#define AUTH_RECOVERY_CODE_LEN 19 /* xxxx-xxxx-xxxx-xxxx */
void auth_totp_secret_new(uint8_t out[AUTH_TOTP_SECRET_BYTES]);
/* The secret in unpadded base32 (what authenticator apps take). */
int auth_totp_base32(const uint8_t *secret, size_t len, char *out, size_t outlen, struct sb_err *err);
/* Exactly AUTH_TOTP_DIGITS digits. */
bool auth_totp_code_valid(const char *code);
/* Checks a code at now_s (one step of drift either way): 0 with the
 * matched time step in *counter (refuse it if at or below the last one
 * used), SB_EINVAL for a code that is not 6 digits, SB_EAUTH when wrong. */
int auth_totp_check(const uint8_t *secret, size_t len, const char *code, int64_t now_s, int64_t *counter);
/* otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30 */
void auth_totp_uri(const char *issuer, const char *account, const char *base32, struct buf *out);
/* A fresh recovery code and its hash; the hash of a code as typed (case,
 * spaces and dashes ignored). */
void auth_recovery_code_new(char out[AUTH_RECOVERY_CODE_LEN + 1], char hash_hex[65]);
void auth_recovery_code_hash(const char *code, char hash_hex[65]);

/* ---- rate limits ------------------------------------------------------------ */
/* Whether `key` has reached `limit` hits in the current window (without
 * counting one); *retry_after gets the seconds until it resets. */
bool auth_rate_blocked(struct auth *a, const char *key, int limit, int *retry_after);
/* The same from this daemon's own counters alone: never waits on Redis. */
bool auth_rate_blocked_here(struct auth *a, const char *key, int limit, int *retry_after);
/* Counts a hit against `key` (a window of 60 s). */
void auth_rate_hit(struct auth *a, const char *key);

/* ---- audit signing key (data dir, 0600) ------------------------------------ */
struct auth_signer {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
};
/* Loads data_dir/audit-signing.key (the 32-byte seed in hex), creating it
 * with mode 0600 when missing. */
int auth_signer_load(const char *data_dir, struct auth_signer *out, struct sb_err *err);
void auth_signer_wipe(struct auth_signer *s);
/* The exact message a checkpoint signs (docs/events.md):
 * "serverbox-checkpoint-v1\n<seq>\n<hash hex>\n<signed_at RFC 3339>\n". */
void auth_checkpoint_message(int64_t seq, const uint8_t hash[32], const char *signed_at, struct buf *out);
/* A checkpoint document as GET /api/v1/audit/checkpoint answers it (and as
 * backup repositories keep it): {seq, hash (hex), signed_at, signature and
 * public_key (base64)}. 0 when its Ed25519 signature of the message above is
 * valid under its public key, with seq, hash and the key out; else SB_EINVAL
 * saying what is wrong. */
int auth_checkpoint_check(json_t *doc, int64_t *seq, uint8_t hash[32], uint8_t public_key[32],
                          struct sb_err *err);

#endif
