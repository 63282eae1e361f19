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

#endif
