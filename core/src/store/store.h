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

struct event_new {
    const char *stream;  /* 'node/<uuid>' … */
    const char *type;    /* 'node.registered' … */
    json_t *data;        /* borrowed; an object (NULL for {}) */
    struct event_actor actor;
    const char *outcome; /* success | denied | failure */
};

/* Appends one event and applies the projections in the same transaction.
 * Concurrent callers are grouped into one transaction (group commit); the
 * call returns only once the event is durable, with its seq. A projection
 * that refuses the event (a unique name taken…) fails only this event, with
 * SB_ECONFLICT. */
int store_append(struct store *st, const struct event_new *ev, int64_t *seq, struct sb_err *err);

/* The canonical body of an event: compact JSON with sorted keys. Returns a
 * malloc'd string (free() it) or NULL for data the log cannot hold. */
char *store_event_body(int64_t seq, const struct event_new *ev, const char *occurred_at);
/* sha256(prev || body) into out[32]. */
void store_event_hash(const uint8_t prev[32], const char *body, size_t len, uint8_t out[32]);

/* Figures for /metrics and the benchmark. */
struct store_stats {
    uint64_t events_appended;
    uint64_t groups_committed;
    uint64_t pool_open;
    uint64_t pool_busy;
};
void store_get_stats(struct store *st, struct store_stats *out);

/* ---- health ------------------------------------------------------------- */

enum store_schema_state { STORE_SCHEMA_OK, STORE_SCHEMA_UNMIGRATED, STORE_SCHEMA_NEWER, STORE_SCHEMA_CHANGED };

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
/* Truncates every projection table and replays the log into them. */
int store_rebuild_projections(const char *database_url, int64_t *replayed, struct sb_err *err);

/* ---- collector agents and node metrics (store/metrics.c) ----------------
 * Node ids are text without a foreign key to `nodes` (built elsewhere); a
 * node "exists" for enrollment when its stream has a node.registered event. */

/* *exists = whether stream node/<node_id> holds a node.registered event. */
int store_node_registered(struct store *st, const char *node_id, bool *exists, struct sb_err *err);

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

/* One host sample as stored (NaN / -1 = not measured). `detail` is borrowed. */
struct store_metric_sample {
    int64_t ts_ms;
    double cpu_pct, load1, load5, load15;
    int64_t mem_total, mem_used, swap_total, swap_used, procs, uptime_s, disk_total, disk_used;
    double disk_read_bps, disk_write_bps, net_rx_bps, net_tx_bps;
    json_t *detail;
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
/* The type of the node's last node.online/node.offline event into out ("" if none). */
int store_node_presence(struct store *st, const char *node_id, char *out, size_t outlen, struct sb_err *err);
/* Calls fn for every node whose last presence event is node.online, with
 * the interval it last reported (so a restarted core still notices when such
 * a node stays silent). */
int store_nodes_online(struct store *st, void (*fn)(void *arg, const char *node_id, int64_t interval_ms), void *arg,
                       struct sb_err *err);

#endif
