/*
 * The connection pool. Connections are made on demand up to pool_size and
 * kept idle in a list. A connection goes back to the list only when it is
 * healthy and outside any transaction; otherwise it is closed, and the next
 * caller makes a new one. So when PostgreSQL goes away, callers get
 * SB_EUNAVAIL quickly (connect_timeout), and when it returns the pool
 * refills by itself.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
    struct store_config cfg;
    char *url;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct store_conn *idle;
    int open;
    int busy;
    struct store_appender *appender;
    struct store_follow *follow;
    atomic_uint_fast64_t nodes_gen; /* store_nodes_generation */
};

/* appender.c */
struct store_appender *appender_start(struct store *st, const char *url);
void appender_stop(struct store_appender *a);
int appender_append(struct store_appender *a, const struct event_new *ev, int64_t *seq, struct sb_err *err);
int appender_append_all(struct store_appender *a, const struct event_new *evs, int n, int64_t *seqs,
                        struct sb_err *err);
void appender_stats(struct store_appender *a, uint64_t *events, uint64_t *groups);
void appender_set_hook(struct store_appender *a, store_commit_hook_fn fn, void *ctx);

static atomic_int stmt_counter;

static void notice_quiet(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}

struct store_conn *store_conn_open(const char *url, struct sb_err *err)
{
    /* connect_timeout bounds how long a dead server can stall a caller;
     * libpq merges these keywords with the URL's own. */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {url, "3", "serverbox-core", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        /* libpq's message can include the host but never the password. */
        char msg[200] = "out of memory";
        if (pg)
            sb_strlcpy(msg, PQerrorMessage(pg), sizeof msg);
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
        PQfinish(pg);
        sb_error(err, SB_EUNAVAIL, "database unavailable: %s", msg);
        return NULL;
    }
    PQsetNoticeReceiver(pg, notice_quiet, NULL);
    struct store_conn *c = calloc(1, sizeof *c);
    if (!c) {
        PQfinish(pg);
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    c->pg = pg;
    return c;
}

void store_conn_close(struct store_conn *c)
{
    if (!c)
        return;
    PQfinish(c->pg);
    free(c);
}

struct store *store_open(const struct store_config *cfg, struct sb_err *err)
{
    if (!cfg->database_url || !*cfg->database_url) {
        sb_error(err, SB_EINVAL, "no database URL: set --database-url or SERVERBOX_DATABASE_URL");
        return NULL;
    }
    struct store *st = calloc(1, sizeof *st);
    if (!st) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    st->cfg = *cfg;
    st->url = strdup(cfg->database_url);
    st->cfg.database_url = st->url;
    if (st->cfg.pool_size <= 0)
        st->cfg.pool_size = 8;
    if (st->cfg.acquire_timeout_ms <= 0)
        st->cfg.acquire_timeout_ms = 5000;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    st->appender = appender_start(st, st->url);
    return st;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    follow_stop(st->follow);
    appender_stop(st->appender);
    while (st->idle) {
        struct store_conn *c = st->idle;
        st->idle = c->next;
        store_conn_close(c);
    }
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    free(st->url);
    free(st);
}

struct store_conn *store_acquire(struct store *st, struct sb_err *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += st->cfg.acquire_timeout_ms / 1000;
    deadline.tv_nsec += (long)(st->cfg.acquire_timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&st->lock);
    for (;;) {
        if (st->idle) {
            struct store_conn *c = st->idle;
            st->idle = c->next;
            st->busy++;
            pthread_mutex_unlock(&st->lock);
            return c;
        }
        if (st->open < st->cfg.pool_size) {
            st->open++;
            st->busy++;
            pthread_mutex_unlock(&st->lock);
            struct store_conn *c = store_conn_open(st->url, err);
            if (!c) {
                pthread_mutex_lock(&st->lock);
                st->open--;
                st->busy--;
                pthread_cond_signal(&st->cond);
                pthread_mutex_unlock(&st->lock);
            }
            return c;
        }
        if (pthread_cond_timedwait(&st->cond, &st->lock, &deadline) != 0) {
            pthread_mutex_unlock(&st->lock);
            sb_error(err, SB_EUNAVAIL, "all database connections are busy; try again");
            return NULL;
        }
    }
}

void store_release(struct store *st, struct store_conn *c)
{
    if (!c)
        return;
    bool keep = PQstatus(c->pg) == CONNECTION_OK;
    if (keep && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        PGresult *r = PQexec(c->pg, "ROLLBACK");
        keep = PQresultStatus(r) == PGRES_COMMAND_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
        PQclear(r);
    }
    pthread_mutex_lock(&st->lock);
    st->busy--;
    if (keep) {
        c->next = st->idle;
        st->idle = c;
    } else {
        st->open--;
    }
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    if (!keep)
        store_conn_close(c);
}

int store_result_error(PGconn *pg, PGresult *res, struct sb_err *err)
{
    if (PQstatus(pg) != CONNECTION_OK)
        return sb_error(err, SB_EUNAVAIL, "database connection lost");
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    if (state && (strcmp(state, "23505") == 0 || strcmp(state, "23P01") == 0))
        return sb_error(err, SB_ECONFLICT, "conflicts with an existing record (%s)",
                        constraint ? constraint : "unique");
    if (state && strncmp(state, "23", 2) == 0)
        return sb_error(err, SB_EINVAL, "refused by the database (%s)", constraint ? constraint : state);
    if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0))
        return sb_error(err, SB_EUNAVAIL, "database unavailable");
    /* The server's text can echo parameter values: keep it out of replies. */
    log_error("database error", "sqlstate=%s detail=\"%s\"", state ? state : "-",
              res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
    return sb_error(err, SB_EINTERNAL, "database error (sqlstate %s)", state ? state : "unknown");
}

static int stmt_id(struct store_stmt *stmt)
{
    int id = atomic_load(&stmt->id);
    if (id)
        return id;
    int fresh = atomic_fetch_add(&stmt_counter, 1) + 1;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&stmt->id, &expected, fresh))
        return expected; /* another thread assigned it first; `fresh` is skipped */
    return fresh;
}

PGresult *store_exec(struct store_conn *c, struct store_stmt *stmt, int n, const char *const *params,
                     struct sb_err *err)
{
    int id = stmt_id(stmt);
    if (id >= STORE_MAX_STMTS) {
        sb_error(err, SB_EINTERNAL, "too many prepared statements");
        return NULL;
    }
    char name[16];
    snprintf(name, sizeof name, "s%d", id);
    if (!c->prepared[id]) {
        PGresult *p = PQprepare(c->pg, name, stmt->sql, 0, NULL);
        if (PQresultStatus(p) != PGRES_COMMAND_OK) {
            store_result_error(c->pg, p, err);
            PQclear(p);
            return NULL;
        }
        PQclear(p);
        c->prepared[id] = 1;
    }
    PGresult *r = PQexecPrepared(c->pg, name, n, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        store_result_error(c->pg, r, err);
        PQclear(r);
        return NULL;
    }
    return r;
}

int store_query(struct store *st, struct store_stmt *stmt, int n, const char *const *params, PGresult **out,
                struct sb_err *err)
{
    *out = NULL;
    struct store_conn *c = store_acquire(st, err);
    if (!c)
        return err && err->code ? err->code : SB_EUNAVAIL;
    *out = store_exec(c, stmt, n, params, err);
    store_release(st, c);
    return *out ? 0 : (err && err->code ? err->code : SB_EINTERNAL);
}

void store_get_stats(struct store *st, struct store_stats *out)
{
    memset(out, 0, sizeof *out);
    appender_stats(st->appender, &out->events_appended, &out->groups_committed);
    pthread_mutex_lock(&st->lock);
    out->pool_open = (uint64_t)st->open;
    out->pool_busy = (uint64_t)st->busy;
    pthread_mutex_unlock(&st->lock);
}

int store_append(struct store *st, const struct event_new *ev, int64_t *seq, struct sb_err *err)
{
    return appender_append(st->appender, ev, seq, err);
}

int store_append_all(struct store *st, const struct event_new *evs, int n, int64_t *seqs, struct sb_err *err)
{
    return appender_append_all(st->appender, evs, n, seqs, err);
}

int store_append_with(struct store *st, const struct event_new *ev, const struct store_side_write *w,
                      int64_t *seq, struct sb_err *err)
{
    struct event_new e = *ev;
    e.side = w;
    return appender_append(st->appender, &e, seq, err);
}

void store_event_committed(struct store *st, const char *type)
{
    if (strncmp(type, "node.", 5) == 0)
        atomic_fetch_add(&st->nodes_gen, 1);
}

uint64_t store_nodes_generation(struct store *st)
{
    return atomic_load(&st->nodes_gen);
}

void store_set_commit_hook(struct store *st, store_commit_hook_fn fn, void *ctx)
{
    appender_set_hook(st->appender, fn, ctx);
}

int store_follow_start(struct store *st, const struct store_follow_config *cfg, struct sb_err *err)
{
    if (st->follow)
        return sb_error(err, SB_EINTERNAL, "the log is already followed");
    st->follow = follow_start(st, st->url, cfg);
    return st->follow ? 0 : sb_error(err, SB_ENOMEM, "out of memory");
}

void store_follow_stop(struct store *st)
{
    follow_stop(st->follow);
    st->follow = NULL;
}
