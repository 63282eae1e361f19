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

/* ---- nodes (store/nodes.c) ---------------------------------------------- */

/* A node row of the projection as a JSON object (*out is the caller's,
 * json_decref it); SB_ENOTFOUND for an unknown or malformed id. */
int store_node_get(struct store *st, const char *id, json_t **out, struct sb_err *err);
/* The id of the node with that name; SB_ENOTFOUND when none. */
int store_node_find_name(struct store *st, const char *name, char id[37], struct sb_err *err);
/* Every node, by name, as a JSON array (the caller's). */
int store_node_list(struct store *st, json_t **out, struct sb_err *err);
/* The sealed private key and passphrase (crypto_seal output; pass may be
 * NULL). Not a projection: secrets stay out of events. */
int store_node_credentials_put(struct store *st, const char *id, const char *sealed_key, const char *sealed_pass,
                               struct sb_err *err);
/* *sealed_key and *sealed_pass (NULL when none) are malloc'd: free() them. */
int store_node_credentials_get(struct store *st, const char *id, char **sealed_key, char **sealed_pass,
                               struct sb_err *err);
int store_node_credentials_delete(struct store *st, const char *id, struct sb_err *err);

#endif
