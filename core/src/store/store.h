/*
 * store — everything that touches PostgreSQL: a connection pool, schema
 * migrations, the hash-chained event log with group commit, projections
 * and their rebuild, and the domain queries the API needs. Nothing outside
 * this folder includes libpq.
 *
 * Threads: every function may be called from any worker thread. Functions
 * that need the database return SB_EUNAVAIL while it is unreachable and
 * recover by themselves when it returns.
 */
#ifndef SB_STORE_H
#define SB_STORE_H

#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct store;

struct store_config {
    const char *database_url; /* libpq URI or key=value string */
    int pool_size;            /* connections for queries (the appender has its own) */
    int acquire_timeout_ms;   /* how long a caller waits for a free connection */
};

/* Opens the pool and starts the appender thread. The database need not be
 * up yet. Returns NULL only for bad configuration. */
struct store *store_open(const struct store_config *cfg, struct sb_err *err);
void store_close(struct store *st);

/* ---- the event log (contract in shared/DESIGN.md) ------------------------ */

struct event_actor {
    const char *kind; /* user | token | guest | agent | system */
    const char *id;   /* may be NULL */
    const char *name; /* may be NULL */
    const char *ip;   /* may be NULL */
};

/* A row an event carries that is not a projection (store/ internal). */
struct store_side_write;

struct event_new {
    const char *stream; /* 'node/<uuid>' … */
    const char *type;   /* 'node.registered' … */
    json_t *data;       /* borrowed; an object (NULL for {}) */
    struct event_actor actor;
    const char *outcome; /* success | denied | failure */
    /* Set only by store/ functions that write a row with its event (a
     * token, a guest link, a node's sealed key): written in the event's
     * transaction, never in its body. NULL otherwise. */
    const struct store_side_write *side;
};

/* Appends one event and applies the projections in the same transaction.
 * Concurrent callers are grouped into one transaction (group commit); the
 * call returns only once the event is durable, with its seq. A projection
 * that refuses the event (a unique name taken…) fails only this event, with
 * SB_ECONFLICT. */
int store_append(struct store *st, const struct event_new *ev, int64_t *seq, struct sb_err *err);
/* Appends evs[0..n-1] (1 to 256) in one transaction, in order: all of them
 * commit or none does (a projection that refuses one refuses them all,
 * with its error). seqs (may be NULL) gets their seqs. */
int store_append_all(struct store *st, const struct event_new *evs, int n, int64_t *seqs, struct sb_err *err);

/* The canonical body of an event: compact JSON with sorted keys. Returns a
 * malloc'd string (free() it) or NULL for data the log cannot hold. */
char *store_event_body(int64_t seq, const struct event_new *ev, const char *occurred_at);
/* sha256(prev || body) into out[32]. */
void store_event_hash(const uint8_t prev[32], const char *body, size_t len, uint8_t out[32]);

/* ---- following the log (for the live event bus) ------------------------ */

/* One committed event as the log holds it. Pointers are valid only during
 * the callback that receives it. */
struct store_event_row {
    int64_t seq;
    const char *stream;
    const char *type;
    const char *body; /* the exact canonical JSON text of the log */
    size_t body_len;
};

/* Called on the appender thread right after COMMIT, once per event of the
 * group, in seq order. It must not block (copy and hand over). One hook per
 * store; set it before the first append. */
typedef void (*store_commit_hook_fn)(void *ctx, const struct store_event_row *ev);
void store_set_commit_hook(struct store *st, store_commit_hook_fn fn, void *ctx);

/* Reads committed events with seq > after, in order, at most limit, calling
 * fn for each (fn returns non-zero to stop early). Uses a pool connection.
 * *last is set to the seq of the last row passed to fn (after if none). */
int store_events_after(struct store *st, int64_t after, int limit,
                       int (*fn)(void *ctx, const struct store_event_row *ev), void *ctx, int64_t *last,
                       struct sb_err *err);

/* The follower: a thread with its own LISTEN connection (outside the pool)
 * that calls fn for every event committed to the log after it starts, by
 * this daemon (through the commit hook, without a query) or by any other
 * daemon on the same database (NOTIFY 'serverbox_events' carries the last
 * seq; the rows are read from the log). Events arrive exactly once, in seq
 * order, without gaps: after a lost connection it LISTENs again and catches
 * up from the log. `ready` is called (on the follower thread, or inside
 * store_follow_start) with the head seq once it is known; fn is only called
 * after that. store_follow_start tries to connect once synchronously so the
 * head is usually known when it returns. */
struct store_follow_config {
    void (*ready)(void *ctx, int64_t head_seq);
    void (*fn)(void *ctx, const struct store_event_row *ev);
    void *ctx;
};
int store_follow_start(struct store *st, const struct store_follow_config *cfg, struct sb_err *err);
/* Stops the follower thread (before the callbacks' context is freed). */
void store_follow_stop(struct store *st);

/* Figures for /metrics and the benchmark. */
struct store_stats {
    uint64_t events_appended;
    uint64_t groups_committed;
    uint64_t pool_open;
    uint64_t pool_busy;
};
void store_get_stats(struct store *st, struct store_stats *out);

/* ---- health ------------------------------------------------------------- */

enum store_schema_state {
    STORE_SCHEMA_OK,
    STORE_SCHEMA_UNMIGRATED,
    STORE_SCHEMA_NEWER,
    STORE_SCHEMA_CHANGED
};

/* Connects (from the pool), checks the schema against the migrations built
 * into this binary. SB_EUNAVAIL when the database cannot be reached. */
int store_check(struct store *st, enum store_schema_state *state, struct sb_err *err);
const char *store_schema_state_name(enum store_schema_state s);

/* ---- administration (own connection; the owner role) ------------------- */

/* Applies every migration not yet applied, under an advisory lock. Writes a
 * line per applied migration to the log. */
int store_migrate(const char *database_url, struct sb_err *err);
/* Recomputes the chain; *first_bad is 0 when all verify. */
struct store_verify_result {
    int64_t checked;
    int64_t head_seq;
    uint8_t head_hash[32];
    int64_t first_bad_seq;
    char reason[160];
};
int store_verify_chain(const char *database_url, struct store_verify_result *out, struct sb_err *err);
/* The same, and the recomputed hash of each event whose seq is in `seqs`
 * (ascending, n) into hashes[i], found[i] false for one not reached (beyond
 * the head, or after the first bad event). */
int store_verify_chain_at(const char *database_url, const int64_t *seqs, size_t n, uint8_t (*hashes)[32],
                          bool *found, struct store_verify_result *out, struct sb_err *err);
/* Truncates every projection table and replays the log into them. */
int store_rebuild_projections(const char *database_url, int64_t *replayed, struct sb_err *err);

/* ---- identity (store/identity.c) ---------------------------------------
 * Users are a projection of user.* events; credentials (password hashes,
 * sha256 of session, API and guest tokens) live in tables written directly
 * here, because secrets and their verifiers never enter the event log.
 * Token hashes are passed as 64 hex characters. */

struct store_user {
    char id[37];
    char username[64];
    char role[40];
    bool disabled;
    json_t *node_labels; /* owned by the struct (store_user_release) or NULL */
};
void store_user_release(struct store_user *u);

int store_user_count(struct store *st, int64_t *n, struct sb_err *err);
/* SB_ENOTFOUND when there is no such user. password_hash (>= 128 bytes) gets
 * the argon2id string, or "" when the user has none. */
int store_user_by_name(struct store *st, const char *username, struct store_user *u, char *password_hash,
                       size_t hash_len, struct sb_err *err);
int store_user_by_id(struct store *st, const char *id, struct store_user *u, struct sb_err *err);
/* The data of the user.created event of a user (caller owns it): how and
 * by whom it was made (e.g. single sign-on's subject). SB_ENOTFOUND. */
int store_user_created_data(struct store *st, const char *user_id, json_t **data, struct sb_err *err);
/* A JSON array of users (caller owns it). */
int store_users_list(struct store *st, json_t **out, struct sb_err *err);
/* Stores a user's password hash and appends `ev` (user.created,
 * user.password_changed) in one transaction: both or neither. The hash
 * never enters the event. */
int store_password_set(struct store *st, const struct event_new *ev, const char *user_id,
                       const char *password_hash, struct sb_err *err);

/* What a token hash resolves to. kind is "session", "token" or "guest". */
struct store_credential {
    char kind[8];
    char id[37];      /* session, token or guest link id */
    char user_id[37]; /* empty for guests */
    char name[128];   /* username, token name or guest note */
    char username[64];
    char role[40];      /* the token's own role; the user's role for sessions */
    char user_role[40]; /* the owning user's current role */
    char csrf_sha256[65];
    char scopes[160];              /* guests: comma-separated */
    json_t *node_labels;           /* owned; NULL = all nodes (tokens: the token's own selector) */
    json_t *user_node_labels;      /* owned; tokens: the owning user's current selector; NULL = all */
    json_t *role_permissions;      /* owned; a custom `role`'s permission names, NULL otherwise */
    json_t *user_role_permissions; /* owned; the same for `user_role` */
    bool totp_setup_required;      /* sessions: the user's role needs 2FA and the user has none */
    int64_t expires_us;            /* 0 = never */
    int64_t last_seen_us;
};
void store_credential_release(struct store_credential *c);
/* Looks a live (not revoked, not expired, user not disabled) credential up.
 * SB_EAUTH when there is none. */
int store_credential_lookup(struct store *st, const char *kind, const char *token_sha256,
                            struct store_credential *out, struct sb_err *err);
/* Records use (sessions: last_seen_at, tokens: last_used_at). */
int store_credential_touch(struct store *st, const char *kind, const char *id, struct sb_err *err);

/* Inserts a session and appends `ev` (auth.login) in one transaction. */
int store_session_insert(struct store *st, const struct event_new *ev, const char *id, const char *user_id,
                         const char *token_sha256, const char *csrf_sha256, const char *client_ip,
                         const char *user_agent, int64_t expires_us, struct sb_err *err);
/* A user's live sessions (not revoked, not expired, used within idle_s; 0 =
 * no idle limit), last used first: a JSON array of {id, user_agent,
 * client_ip, created_at, last_seen_at, expires_at} (caller owns it). */
int store_sessions_list(struct store *st, const char *user_id, int64_t idle_s, json_t **out,
                        struct sb_err *err);
/* The token hash of a live session of this user; SB_ENOTFOUND when the
 * session is not theirs, ended or expired. */
int store_session_live_hash(struct store *st, const char *user_id, const char *session_id, char hash[65],
                            struct sb_err *err);
/* Revokes a session of this user and appends `ev` (auth.session_ended) in
 * one transaction. */
int store_session_end(struct store *st, const struct event_new *ev, const char *user_id,
                      const char *session_id, struct sb_err *err);
/* Revocations. Each appends the sha256 (hex strings) of what it revoked to
 * `hashes` (a JSON array, may be NULL) so caches can drop them. */
/* Revokes the live session with this token hash; SB_ENOTFOUND when none. */
int store_session_revoke_hash(struct store *st, const char *token_sha256, char *session_id,
                              struct sb_err *err);
/* Revokes every session (and, with tokens_too, every API token) of a user. */
int store_user_revoke_all(struct store *st, const char *user_id, bool tokens_too, json_t *hashes,
                          struct sb_err *err);

/* Revokes every session of a user but the one with token hash `keep`. */
int store_user_revoke_others(struct store *st, const char *user_id, const char *keep_sha256, json_t *hashes,
                             struct sb_err *err);
/* The hashes of every live session and token of a user (for cache eviction
 * after a role or label change). */
int store_user_credential_hashes(struct store *st, const char *user_id, json_t *hashes, struct sb_err *err);

/* Inserts the token row and appends `ev` (token.created) in one
 * transaction: both or neither. parent_id: the token this one was made
 * with (NULL or "" for none). */
int store_token_insert(struct store *st, const struct event_new *ev, const char *id, const char *user_id,
                       const char *parent_id, const char *name, const char *role, json_t *node_labels,
                       const char *token_sha256, int64_t expires_us, struct sb_err *err);
/* user_id NULL lists every token. A JSON array (caller owns it). */
int store_tokens_list(struct store *st, const char *user_id, json_t **out, struct sb_err *err);
/* Revoking a token, in two steps. _plan finds live token id (owned by
 * user_id unless user_id is NULL) and every live token made from it, at
 * any depth: their hashes go to `hashes`, the descendants' ids to
 * `descendants` (both may be NULL); SB_ENOTFOUND. _commit appends `ev`
 * (token.revoked) and revokes id and `descendants` in one transaction. */
int store_token_revoke_plan(struct store *st, const char *id, const char *user_id, json_t *hashes,
                            json_t *descendants, struct sb_err *err);
int store_token_revoke_commit(struct store *st, const struct event_new *ev, const char *id,
                              json_t *descendants, struct sb_err *err);

/* Inserts the guest link and appends `ev` (guest_link.created) in one
 * transaction. */
int store_guest_insert(struct store *st, const struct event_new *ev, const char *id, const char *created_by,
                       const char *note, json_t *scopes, json_t *node_labels, const char *token_sha256,
                       int64_t expires_us, struct sb_err *err);
int store_guests_list(struct store *st, json_t **out, struct sb_err *err);
/* Revokes live guest link id and appends `ev` (guest_link.revoked) in one
 * transaction; its hash goes to `hashes`. SB_ENOTFOUND. */
int store_guest_revoke(struct store *st, const struct event_new *ev, const char *id, json_t *hashes,
                       struct sb_err *err);

/* ---- custom roles (store/roles.c) ---------------------------------------
 * A projection of role.created {name, description, permissions},
 * role.updated {name, description?, permissions?} and role.deleted {name}
 * (stream role/<name>). Built-in roles are not stored. */
/* {"name","description","permissions":[…],"created_at","updated_at"};
 * SB_ENOTFOUND. */
int store_role_get(struct store *st, const char *name, json_t **out, struct sb_err *err);
/* Every custom role, by name (caller owns the array). */
int store_roles_list(struct store *st, json_t **out, struct sb_err *err);
/* Who holds a role: the number of users and of live tokens, the ids of
 * the users (with their tokens') to `user_ids`, the hashes of their live
 * credentials to `hashes` (both may be NULL). */
int store_role_usage(struct store *st, const char *name, int64_t *users, int64_t *tokens, json_t *user_ids,
                     json_t *hashes, struct sb_err *err);

/* ---- two-factor authentication (store/totp.c) ---------------------------
 * Credential tables, written beside their events (never in them): a user's
 * TOTP secret as the caller sealed it, recovery code SHA-256s (hex), and
 * the login challenges between password and code. Which roles must use
 * 2FA is a projection of role.policy_set {role, require_totp}. */
struct store_totp {
    char *sealed_secret; /* owned (store_totp_release) */
    bool confirmed;
    int64_t last_counter; /* the last accepted TOTP time step */
    char confirmed_at[32];
    int64_t recovery_codes_left;
};
void store_totp_release(struct store_totp *t);
/* SB_ENOTFOUND when the user has no (pending or confirmed) 2FA. */
int store_totp_get(struct store *st, const char *user_id, struct store_totp *out, struct sb_err *err);
/* Stores a pending secret (replacing a pending one, never a confirmed one)
 * with `ev`. */
int store_totp_begin(struct store *st, const struct event_new *ev, const char *user_id,
                     const char *sealed_secret, struct sb_err *err);
/* Confirms the pending secret at `counter` and replaces the recovery codes
 * (a JSON array of sha256 hex) with `ev`. */
int store_totp_confirm(struct store *st, const struct event_new *ev, const char *user_id, int64_t counter,
                       json_t *code_hashes, struct sb_err *err);
/* Accepts time step `counter` if it is after the last accepted one (one
 * statement: a code is accepted once); SB_ECONFLICT otherwise. */
int store_totp_use_counter(struct store *st, const char *user_id, int64_t counter, struct sb_err *err);
/* Uses an unused recovery code; SB_ENOTFOUND when there is none such. */
int store_recovery_code_use(struct store *st, const char *user_id, const char *code_sha256,
                            struct sb_err *err);
/* Removes a user's 2FA (secret and codes) with `ev`. */
int store_totp_delete(struct store *st, const struct event_new *ev, const char *user_id, struct sb_err *err);

struct store_challenge {
    char id[37];
    char user_id[37];
    char username[64];
};
int store_challenge_insert(struct store *st, const struct event_new *ev, const char *id, const char *user_id,
                           const char *token_sha256, const char *client_ip, int64_t expires_us,
                           struct sb_err *err);
/* A live challenge (unused, unexpired, under max_attempts, user enabled);
 * SB_ENOTFOUND. */
int store_challenge_get(struct store *st, const char *token_sha256, int max_attempts,
                        struct store_challenge *out, struct sb_err *err);
int store_challenge_fail(struct store *st, const char *id, struct sb_err *err);
/* Marks it used; SB_ENOTFOUND when it was used (or expired) meanwhile. */
int store_challenge_consume(struct store *st, const char *id, struct sb_err *err);
int store_role_requires_totp(struct store *st, const char *role, bool *required, struct sb_err *err);

/* ---- audit (store/audit.c) ----------------------------------------------- */
struct store_audit_filter {
    const char *actor; /* actor id or name */
    const char *type;  /* exact type, or a prefix ending in '.' or '*' */
    const char *stream;
    const char *outcome;
    const char *actor_kind;
    const char *from; /* RFC 3339 */
    const char *to;
    int64_t after_seq;
    int limit;
};
/* A JSON array of event bodies (as objects) plus each row's hash (hex). */
int store_audit_query(struct store *st, const struct store_audit_filter *f, json_t **out, struct sb_err *err);
/* The same page for a caller who may see every entry, written straight into
 * `out` as the API's JSON array elements (each stored body with its "hash"
 * added, comma-separated, no brackets) without parsing a body. *count is
 * the number of entries, *last_seq the seq of the last (unchanged if none). */
int store_audit_query_raw(struct store *st, const struct store_audit_filter *f, struct buf *out, int *count,
                          int64_t *last_seq, struct sb_err *err);
/* store_verify_chain through the pool. */
int store_verify_chain_pool(struct store *st, struct store_verify_result *out, struct sb_err *err);
/* The head of the chain (0 and zeros for an empty log). */
int store_head(struct store *st, int64_t *seq, uint8_t hash[32], struct sb_err *err);
struct store_checkpoint {
    int64_t seq;
    uint8_t hash[32];
    int64_t signed_us;
    uint8_t signature[64];
    uint8_t public_key[32];
};
int store_checkpoint_insert(struct store *st, const struct store_checkpoint *c, struct sb_err *err);
/* SB_ENOTFOUND when none. */
int store_checkpoint_latest(struct store *st, struct store_checkpoint *c, struct sb_err *err);
/* ---- containers (projection of the engines' events) ---------------------- */

/* The containers the projection knows on a node: a new array of
 * {container_id, state, name} (caller decrefs). */
int store_containers_of_node(struct store *st, const char *node_id, json_t **rows, struct sb_err *err);
/* ---- nodes (store/nodes.c) ---------------------------------------------- */

/* A node row of the projection as a JSON object (*out is the caller's,
 * json_decref it); SB_ENOTFOUND for an unknown or malformed id. */
int store_node_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
/* The id of the node with that name; SB_ENOTFOUND when none. */
int store_node_find_name(struct store *st, const char *name, char id[37], struct sb_err *err);
/* Every node, by name, as a JSON array (the caller's). */
int store_node_list(struct store *st, json_t **out, struct sb_err *err);
/* The node list as the API answers it, built by PostgreSQL and passed
 * through untouched (no parse, no re-serialization): `{"items":[...]}`
 * ordered by name. Filters, each NULL for none: `scope` a label selector
 * (JSON object; a node matches when its labels contain it), `pairs` a JSON
 * array of one-pair objects that must all be contained, `keys` a JSON array
 * of label names that must all be present. `fields` (a JSON array of column
 * names) keeps only those columns; NULL keeps every column. On success *out
 * is a NUL-terminated string the caller frees, *len its length. */
int store_node_list_view(struct store *st, const char *scope, const char *pairs, const char *keys,
                         const char *fields, char **out, size_t *len, struct sb_err *err);
/* Moves whenever a node.* event is committed: by this daemon before its
 * append returns (so a read after a write sees it), by another daemon when
 * this one's follower reads the event. A cache of the nodes projection is
 * current while the generation it was read under is. */
uint64_t store_nodes_generation(struct store *st);
/* The sealed private key and passphrase (crypto_seal output; pass may be
 * NULL). Not a projection: secrets stay out of events. */
int store_node_credentials_put(struct store *st, const char *id, const char *sealed_key,
                               const char *sealed_pass, struct sb_err *err);
/* Appends `ev` (node.registered or node.updated) and stores the sealed
 * key beside the node in the same transaction: both or neither. */
int store_node_append_with_credentials(struct store *st, const struct event_new *ev, const char *id,
                                       const char *sealed_key, const char *sealed_pass, struct sb_err *err);
/* *sealed_key and *sealed_pass (NULL when none) are malloc'd: free() them. */
int store_node_credentials_get(struct store *st, const char *id, char **sealed_key, char **sealed_pass,
                               struct sb_err *err);
int store_node_credentials_delete(struct store *st, const char *id, struct sb_err *err);
/* ---- collector agents and node metrics (store/metrics.c) ----------------
 * Metric tables carry node_id without a foreign key: samples of a deleted
 * node age out with their partitions instead of blocking the delete. */

/* An enrollment token, looked up by the SHA-256 (hex) of the token. */
struct store_enroll_token {
    char node_id[64];
    int64_t expires_us;
    bool used;
};
/* SB_ENOTFOUND when no such token was issued. */
int store_enroll_token_get(struct store *st, const char *token_sha256, struct store_enroll_token *out,
                           struct sb_err *err);

struct store_agent_key {
    char node_id[64];
    uint8_t public_key[32];
    bool revoked;
};
/* SB_ENOTFOUND for an unknown fingerprint. */
int store_agent_key_get(struct store *st, const char *fingerprint, struct store_agent_key *out,
                        struct sb_err *err);

/* One host sample as stored (NaN / -1 = not measured). `detail` (the whole
 * sample as JSON text) is borrowed. */
struct store_metric_sample {
    int64_t ts_ms;
    double cpu_pct, load1, load5, load15;
    int64_t mem_total, mem_used, swap_total, swap_used, procs, uptime_s, disk_total, disk_used;
    double disk_read_bps, disk_write_bps, net_rx_bps, net_tx_bps;
    const char *detail;
};
struct store_container_sample {
    int64_t ts_ms;
    const char *id, *name; /* borrowed */
    double cpu_pct, net_rx_bps, net_tx_bps, blk_read_bps, blk_write_bps;
    int64_t mem_used, mem_limit;
};
/* Stores one batch in one statement (multi-row inserts), unless seq is not
 * above the last accepted for the node: then nothing is stored and
 * *duplicate is set. */
int store_metrics_ingest(struct store *st, const char *node_id, int64_t seq,
                         const struct store_metric_sample *s, size_t n,
                         const struct store_container_sample *c, size_t nc, bool *duplicate,
                         struct sb_err *err);

/* Series between from and to (ms), averaged in buckets of step_s seconds,
 * from the one-minute roll-ups when `rollup`, else raw. container_id NULL
 * for the host. *out is a new JSON array of points (caller decrefs). */
int store_metrics_query(struct store *st, const char *node_id, const char *container_id, int64_t from_ms,
                        int64_t to_ms, int step_s, bool rollup, json_t **out, struct sb_err *err);
/* Recomputes the one-minute roll-ups of complete minutes since since_ms. */
int store_metrics_rollup(struct store *st, int64_t since_ms, struct sb_err *err);
/* Makes partitions ahead and drops those past retention (metrics_maintain). */
int store_metrics_maintain(struct store *st, int raw_days, int rollup_days, int *dropped, struct sb_err *err);
/* Whether the nodes projection says the node's collector reports
 * (agent_status = 'online'); false for an unknown node. */
int store_node_agent_online(struct store *st, const char *node_id, bool *online, struct sb_err *err);
/* Calls fn for every node whose collector the projection says reports, with
 * the interval it last reported (so a restarted core still notices when
 * such a node stays silent). */
int store_nodes_agent_online(struct store *st,
                             void (*fn)(void *arg, const char *node_id, int64_t interval_ms), void *arg,
                             struct sb_err *err);
/* ---- stacks (store/stacks.c) -------------------------------------------
 * `stacks` and `stack_revisions` are projections of stack.* events; the
 * sealed secret variables of each revision are not (secrets stay out of
 * events). Every json_t ** is a new reference the caller decrefs. */
int store_stack_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
int store_stack_list(struct store *st, json_t **out, struct sb_err *err);
int store_stack_revision_get(struct store *st, const char *id, int revision, json_t **out,
                             struct sb_err *err);
/* Newest first, without the compose text. */
int store_stack_revisions_list(struct store *st, const char *id, json_t **out, struct sb_err *err);
/* `sealed` is crypto_seal output; *sealed from _get is malloc'd (free()), NULL when none. */
int store_stack_secret_put(struct store *st, const char *id, int revision, const char *sealed,
                           struct sb_err *err);
int store_stack_secret_get(struct store *st, const char *id, int revision, char **sealed, struct sb_err *err);
int store_stack_secret_delete(struct store *st, const char *id, int revision, struct sb_err *err);

/* ---- GitOps apps (store/apps.c) ----------------------------------------
 * `apps` and `app_deployments` are projections of app.* events; the sealed
 * secrets of an app and the logs of its deployments are not. Every json_t **
 * is a new reference the caller decrefs; char ** are malloc'd (free()) and
 * NULL when there is none. */
int store_app_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
int store_app_list(struct store *st, json_t **out, struct sb_err *err);
int store_app_deployment_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
/* Newest first, at most limit (0 = 50), without the generated Dockerfile. */
int store_app_deployments_list(struct store *st, const char *app_id, int limit, json_t **out,
                               struct sb_err *err);
int store_app_secret_put(struct store *st, const char *app_id, const char *sealed, struct sb_err *err);
int store_app_secret_get(struct store *st, const char *app_id, char **sealed, struct sb_err *err);
int store_app_secret_delete(struct store *st, const char *app_id, struct sb_err *err);
int store_app_log_put(struct store *st, const char *deployment_id, const char *log, struct sb_err *err);
int store_app_log_get(struct store *st, const char *deployment_id, char **log, struct sb_err *err);

/* ---- jobs (store/jobs.c, core/src/jobs/README.md) ------------------------
 * The `jobs` table is the projection of job.* events; the lease columns and
 * the duties' lease rows are written directly (renewals are not events). */

/* A job as GET /api/v1/jobs/{id} shows it (*out is the caller's);
 * SB_ENOTFOUND for an unknown or malformed id. */
int store_job_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
struct store_jobs_filter {
    const char *kind, *state, *target; /* NULL = any */
    json_t *node_ids;                  /* borrowed array of strings; NULL = every job */
    int64_t before_seq;                /* 0 = from the newest */
    int limit;
};
/* Newest first: a new JSON array of jobs (caller decrefs). */
int store_jobs_list(struct store *st, const struct store_jobs_filter *f, json_t **out, struct sb_err *err);

/* What a claim hands the daemon. args is malloc'd (free() it). attempt is
 * the row's attempt before this claim (the new attempt is attempt + 1). */
struct store_job_claim {
    char id[37];
    char kind[64];
    char node_id[64];
    char *args;
    int attempt, max_attempts, timeout_s;
    bool was_running; /* taken over from a holder whose lease lapsed */
    bool cancel_requested;
};
/* Claims the next due job among kinds (a PostgreSQL array literal) under a
 * lease of lease_ms for holder; *found false when none. */
int store_job_claim(struct store *st, const char *holder, int lease_ms, const char *kinds_array,
                    struct store_job_claim *out, bool *found, struct sb_err *err);
/* Extends the lease if holder still has it (*held), with whether a cancel
 * was asked. */
int store_job_renew(struct store *st, const char *id, const char *holder, int lease_ms, bool *held,
                    bool *cancel_requested, struct sb_err *err);
/* Lets the lease lapse now (a stopping daemon hands the job over). */
int store_job_release(struct store *st, const char *id, const char *holder, struct sb_err *err);
/* The ids of finished jobs (succeeded, failed, cancelled) that finished
 * before finished_before (RFC 3339), oldest first, at most limit: a new JSON
 * array (caller decrefs). Their rows go with a job.pruned {ids} event. */
int store_jobs_prunable(struct store *st, const char *finished_before, int limit, json_t **ids,
                        struct sb_err *err);
/* Takes or renews a singleton duty's lease; *held says whether holder has it. */
int store_duty_acquire(struct store *st, const char *name, const char *holder, int lease_ms, bool *held,
                       struct sb_err *err);
int store_duty_release(struct store *st, const char *name, const char *holder, struct sb_err *err);

/* ---- terminal recordings (store/terminals.c) -------------------------- */
/* Recordings, newest first, of one node (node_id NULL = all), at most limit:
 * a new JSON array of {id, terminal_id, node_id, node_name, node_labels,
 * session, opened_by, opened_at, closed_at, reason, bytes, sha256,
 * truncated, closed_seq} (the caller's). */
int store_recordings_list(struct store *st, const char *node_id, int limit, json_t **out, struct sb_err *err);
/* One recording as above; SB_ENOTFOUND. */
int store_recording_get(struct store *st, const char *id, json_t **out, struct sb_err *err);

/* ---- alerts (store/alerts.c) ---------------------------------------------
 * alert_rules, alert_channels, alert_silences, alerts and alert_deliveries
 * are projections of the alert* events; each channel's secrets are sealed
 * beside it (never in events). Every json_t ** is the caller's. */
int store_alert_rules_list(struct store *st, json_t **out, struct sb_err *err);
int store_alert_rule_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
/* Whether any rule was ever recorded (the defaults are made once). */
int store_alert_rules_seeded(struct store *st, bool *seeded, struct sb_err *err);
int store_alert_channels_list(struct store *st, json_t **out, struct sb_err *err);
int store_alert_channel_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
/* *sealed malloc'd (free()), NULL when none. */
int store_alert_channel_secret_get(struct store *st, const char *id, char **sealed, struct sb_err *err);
/* Appends `ev` (alert_channel.*) and stores the sealed secrets of channel id
 * (sealed NULL removes them) in the same transaction. */
int store_alert_channel_append(struct store *st, const struct event_new *ev, const char *id,
                               const char *sealed, struct sb_err *err);
/* state NULL = all; each row has "expired" (until has passed). */
int store_alert_silences_list(struct store *st, const char *state, json_t **out, struct sb_err *err);
int store_alert_silence_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
/* Newest first; state NULL = all, "open" = firing or acknowledged. */
int store_alerts_list(struct store *st, const char *state, int limit, json_t **out, struct sb_err *err);
int store_alert_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
/* The delivery log of an alert, or (alert_id NULL) a channel's tests. */
int store_alert_deliveries(struct store *st, const char *alert_id, const char *channel_id, json_t **out,
                           struct sb_err *err);
/* {severity: count} of the open alerts. */
int store_alerts_open_counts(struct store *st, json_t **out, struct sb_err *err);
/* The evaluator's cursor into the log (not an event); set never moves back. */
int store_alert_cursor_get(struct store *st, const char *name, int64_t *seq, bool *found, struct sb_err *err);
int store_alert_cursor_set(struct store *st, const char *name, int64_t seq, struct sb_err *err);
/* Events of a type in a stream within the last within_s seconds. */
int store_events_count_recent(struct store *st, const char *stream, const char *type, int within_s,
                              int64_t *n, struct sb_err *err);
/* Per node (metric node.*) or node/container (container.*) with samples in
 * the last window_s seconds: [{key, name, min, max, last, age_s, n}] of the
 * metric in percent. */
int store_metric_windows(struct store *st, const char *metric, int window_s, json_t **out,
                         struct sb_err *err);
/* ---- backups (store/backups.c) -----------------------------------------
 * backup_repositories, backup_plans and backup_runs are projections of the
 * backup.* events; the sealed restic password and SFTP key of each
 * repository are not (secrets stay out of events). `what` is "repository",
 * "plan" or "run". Every json_t ** is a new reference the caller decrefs. */
int store_backup_get(struct store *st, const char *what, const char *id, json_t **out, struct sb_err *err);
/* All repositories or plans (by name); runs newest first, of one plan
 * (plan_id NULL = all), at most limit; "paused": the runs that ended with
 * containers still recorded paused (backup.services_paused). */
int store_backup_list(struct store *st, const char *what, const char *plan_id, int limit, json_t **out,
                      struct sb_err *err);
/* Appends `ev` (backup.repository_created) and stores the sealed secrets
 * (sealed_key may be NULL) in one transaction. */
int store_backup_repo_create(struct store *st, const struct event_new *ev, const char *id,
                             const char *sealed_password, const char *sealed_key, struct sb_err *err);
/* *sealed_password and *sealed_key (NULL when none) are malloc'd: free(). */
int store_backup_repo_secrets(struct store *st, const char *id, char **sealed_password, char **sealed_key,
                              struct sb_err *err);
/* A libpq URL or key=value string as the PG* environment variables that
 * say the same (pg_dump and pg_restore get it so, never in argv): a new
 * object name -> value. SB_EINVAL for an unparseable URL. */
int store_url_env(const char *url, json_t **env, struct sb_err *err);
/* The hash the live chain holds at seq (SB_ENOTFOUND: no such event). */
int store_event_hash_at(struct store *st, int64_t seq, uint8_t hash[32], struct sb_err *err);
/* The restore test's scratch database (store/backups.c): CREATE DATABASE
 * (create) or DROP DATABASE … WITH (FORCE) (!create) of `name` (letters,
 * digits and '_', quoted as an identifier; never input) over a connection
 * of its own to `admin_url` (a role that may create databases). */
int store_scratch_database(const char *admin_url, const char *name, bool create, struct sb_err *err);
/* `url` with its database replaced by `dbname`, as a key=value connection
 * string into out (it may hold a password: never log it). */
int store_url_with_database(const char *url, const char *dbname, struct buf *out, struct sb_err *err);

#endif
