/*
 * Private to store/: libpq helpers shared by the files of this folder.
 */
#ifndef SB_STORE_INTERNAL_H
#define SB_STORE_INTERNAL_H

#include "store.h"

#include <libpq-fe.h>
#include <stdatomic.h>

/* A statement prepared lazily on each connection the first time it is used
 * there. `id` is assigned once, on first use, from a global counter. */
struct store_stmt {
    const char *sql;
    atomic_int id; /* 0 = not yet assigned */
};
#define STORE_STMT(text)                                                                                     \
    {                                                                                                        \
        .sql = (text), .id = 0                                                                               \
    }
#define STORE_MAX_STMTS 256

struct store_conn {
    PGconn *pg;
    uint8_t prepared[STORE_MAX_STMTS];
    struct store_conn *next; /* idle list */
};

/* Pool. */
struct store_conn *store_acquire(struct store *st, struct sb_err *err);
void store_release(struct store *st, struct store_conn *c);
/* Connects a fresh connection (not from the pool). */
struct store_conn *store_conn_open(const char *url, struct sb_err *err);
void store_conn_close(struct store_conn *c);

/* Runs a prepared statement with text parameters (NULL = SQL NULL). Returns
 * the result (PQclear it) or NULL with err filled; a dropped connection
 * gives SB_EUNAVAIL, a unique or check violation SB_ECONFLICT. */
PGresult *store_exec(struct store_conn *c, struct store_stmt *stmt, int n, const char *const *params,
                     struct sb_err *err);
/* store_exec on a pooled connection taken and given back around it: 0 and
 * *out = the result (caller PQclear()s it), or the error code. */
int store_query(struct store *st, struct store_stmt *stmt, int n, const char *const *params, PGresult **out,
                struct sb_err *err);
/* Maps a failed result to an sb_err code and message. */
int store_result_error(PGconn *pg, PGresult *res, struct sb_err *err);

/* A transaction whose statements are pipelined: queued now, checked at
 * store_tx_flush. Projections write through this. */
struct store_tx {
    PGconn *pg;
    int queued;
};
int store_tx_exec(struct store_tx *tx, const char *sql, int n, const char *const *params);

/* A row written with its event, in the event's transaction, that is not a
 * projection: it holds what the log must not (a token's hash, a sealed
 * key), so rebuild-projections cannot make it. One parameterized statement,
 * run after the event's row and the projections; its failure fails the
 * event (and only that event: a failed group is retried one by one). The
 * parameters live on the caller's stack until store_append returns. */
struct store_side_write {
    const char *sql;
    int n;
    const char *const *params;
};
/* Appends `ev` carrying `w`. */
int store_append_with(struct store *st, const struct event_new *ev, const struct store_side_write *w,
                      int64_t *seq, struct sb_err *err);

/* A decoded event as projections see it. */
struct store_event {
    int64_t seq;
    const char *stream;
    const char *type;
    json_t *data; /* borrowed */
    const char *actor_kind;
    const char *outcome;
    const char *occurred_at;
};

/* Appends one element to a PostgreSQL array literal being built in b (which
 * starts with '{'); the caller closes it with '}'. NULL value = SQL NULL. */
void store_array_add(struct buf *b, const char *value, bool first);

/* Projections (projections.c): apply a group of events, in seq order, in the
 * transaction that appends them; list the tables that rebuild truncates. */
int projections_apply(struct store_tx *tx, const struct store_event *evs, int n);
extern const char *const projection_tables[];
/* containers.c */
int project_containers(struct store_tx *tx, const struct store_event *ev);
/* For the entity projections (stacks, apps, backups): the entity's id
 * (data.id, a uuid) when the event is to be projected — a success, or the
 * one `failure_type` recorded as a failure — else NULL. *type is the type
 * after its family prefix of `prefix` bytes. */
const char *project_subject(const struct store_event *ev, size_t prefix, const char *failure_type,
                            const char **type);
/* stacks.c */
int project_stacks(struct store_tx *tx, const struct store_event *ev);
/* apps.c */
int project_apps(struct store_tx *tx, const struct store_event *ev);
/* jobs.c */
int project_jobs(struct store_tx *tx, const struct store_event *ev);
/* roles, from role.* (roles.c) */
int project_role(struct store_tx *tx, const struct store_event *ev);
/* alert rules, channels, silences, alerts, deliveries (alerts.c) */
int project_alerts(struct store_tx *tx, const struct store_event *ev);
/* backups.c */
int project_backups(struct store_tx *tx, const struct store_event *ev);
int project_backup_job_end(struct store_tx *tx, const struct store_event *ev);
/* recordings, from terminal.closed (terminals.c) */
int project_terminal(struct store_tx *tx, const struct store_event *ev);

/* The follower (follow.c), owned by the store. follow_stop(NULL) is a no-op. */
struct store_follow;
struct store_follow *follow_start(struct store *st, const char *url, const struct store_follow_config *cfg);
void follow_stop(struct store_follow *f);

/* Migrations built into the binary (generated from migrations/). */
struct store_migration {
    const char *name;
    const char *sql;
    size_t len;
};
extern const struct store_migration store_migrations[];
extern const size_t store_n_migrations;

/* The advisory lock keys (arbitrary, fixed). */
#define STORE_LOCK_MIGRATE 0x5342584d49475241LL /* "SBXMIGRA" */
#define STORE_LOCK_APPEND  0x5342584150504e44LL /* "SBXAPPND" */

/* Every committed event passes here: this daemon's from the appender, before
 * their appenders return; every daemon's from the follower. It moves the
 * generations caches of projections compare (store_nodes_generation). */
void store_event_committed(struct store *st, const char *type);

#endif
