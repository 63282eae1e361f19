/*
 * Following the log: reads of committed events for replay and history, and
 * the follower thread that feeds the live event bus.
 *
 * The follower owns one connection outside the pool that LISTENs on
 * 'serverbox_events' (never inside a transaction, per LIBRARY-NOTES). It
 * keeps `last`, the seq of the last event it delivered, and delivers only
 * last+1, so delivery is in order, exactly once, without gaps, whatever the
 * source:
 *   - events this daemon committed arrive through the commit hook with their
 *     bodies, so the common case costs no query;
 *   - events of other daemons are announced by NOTIFY (payload: the last seq
 *     of their group) and read from the log;
 *   - a gap (a hook event beyond last+1, a notification beyond last, a
 *     reconnect: notifications sent while disconnected are lost) is filled
 *     from the log.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CATCH_UP_PAGE 500
/* Hook events waiting for the thread; beyond this they are dropped and read
 * from the log instead (the NOTIFY of the same commit triggers it). */
#define LOCAL_MAX 20000

static struct store_stmt SQL_AFTER = STORE_STMT(
    "SELECT seq, stream, type, body FROM events WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int");

/* ---- reading the log ------------------------------------------------------ */

static int rows_deliver(PGresult *r, int (*fn)(void *, const struct store_event_row *), void *ctx,
                        int64_t *last)
{
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        struct store_event_row row = {.seq = strtoll(PQgetvalue(r, i, 0), NULL, 10),
                                      .stream = PQgetvalue(r, i, 1),
                                      .type = PQgetvalue(r, i, 2),
                                      .body = PQgetvalue(r, i, 3),
                                      .body_len = (size_t)PQgetlength(r, i, 3)};
        *last = row.seq;
        if (fn(ctx, &row))
            return 1;
    }
    return 0;
}

static PGresult *query_after(struct store_conn *c, int64_t after, int limit, struct sb_err *err)
{
    char a[24], l[16];
    snprintf(a, sizeof a, "%lld", (long long)after);
    snprintf(l, sizeof l, "%d", limit);
    const char *p[2] = {a, l};
    return store_exec(c, &SQL_AFTER, 2, p, err);
}

int store_events_after(struct store *st, int64_t after, int limit,
                       int (*fn)(void *ctx, const struct store_event_row *ev), void *ctx, int64_t *last,
                       struct sb_err *err)
{
    *last = after;
    struct store_conn *c = store_acquire(st, err);
    if (!c)
        return err ? err->code : SB_EUNAVAIL;
    PGresult *r = query_after(c, after, limit, err);
    int rc = r ? 0 : (err ? err->code : SB_EUNAVAIL);
    if (r) {
        rows_deliver(r, fn, ctx, last);
        PQclear(r);
    }
    store_release(st, c);
    return rc;
}

/* ---- the follower --------------------------------------------------------- */

struct local_ev {
    struct local_ev *next;
    int64_t seq;
    char *stream, *type, *body;
    size_t body_len;
};

struct store_follow {
    struct store *st;
    char *url;
    struct store_follow_config cfg;
    pthread_t thread;
    bool started;
    int wakefd;

    pthread_mutex_t lock; /* guards the local queue and stopping */
    struct local_ev *head, *tail;
    size_t n_local;
    bool stopping;

    /* thread-owned */
    struct store_conn *conn;
    int64_t last;
    bool synced;
};

static void local_free(struct local_ev *e)
{
    free(e->stream);
    free(e->type);
    free(e->body);
    free(e);
}

static void on_commit(void *ctx, const struct store_event_row *row)
{
    struct store_follow *f = ctx;
    struct local_ev *e = calloc(1, sizeof *e);
    if (!e)
        return;
    e->seq = row->seq;
    e->stream = strdup(row->stream);
    e->type = strdup(row->type);
    e->body = malloc(row->body_len + 1);
    if (!e->stream || !e->type || !e->body) {
        local_free(e);
        return;
    }
    memcpy(e->body, row->body, row->body_len);
    e->body[row->body_len] = '\0';
    e->body_len = row->body_len;
    pthread_mutex_lock(&f->lock);
    if (f->n_local >= LOCAL_MAX || f->stopping) {
        pthread_mutex_unlock(&f->lock);
        local_free(e);
        return;
    }
    if (f->tail)
        f->tail->next = e;
    else
        f->head = e;
    f->tail = e;
    f->n_local++;
    pthread_mutex_unlock(&f->lock);
    uint64_t one = 1;
    ssize_t w = write(f->wakefd, &one, sizeof one);
    (void)w;
}

static int deliver_row(void *ctx, const struct store_event_row *row)
{
    struct store_follow *f = ctx;
    if (row->seq != f->last + 1)
        return 1; /* cannot happen with a gapless log; stop and retry later */
    store_event_committed(f->st, row->type);
    f->cfg.fn(f->cfg.ctx, row);
    f->last = row->seq;
    return 0;
}

static void drop_conn(struct store_follow *f)
{
    if (f->conn)
        log_warn("event follower lost its database connection; will catch up", "last_seq=%lld",
                 (long long)f->last);
    store_conn_close(f->conn);
    f->conn = NULL;
}

/* Reads the log from last+1 until it is exhausted (or `until` is reached). */
static int catch_up(struct store_follow *f, int64_t until)
{
    if (!f->conn)
        return SB_EUNAVAIL;
    for (;;) {
        struct sb_err err = {0};
        PGresult *r = query_after(f->conn, f->last, CATCH_UP_PAGE, &err);
        if (!r) {
            drop_conn(f);
            return SB_EUNAVAIL;
        }
        int64_t last = f->last;
        int n = PQntuples(r);
        int stopped = rows_deliver(r, deliver_row, f, &last);
        PQclear(r);
        if (stopped || n < CATCH_UP_PAGE || (until && f->last >= until))
            return 0;
    }
}

static int connect_and_sync(struct store_follow *f)
{
    struct sb_err err = {0};
    f->conn = store_conn_open(f->url, &err);
    if (!f->conn)
        return SB_EUNAVAIL;
    /* LISTEN before reading the head: anything committed after it is
     * announced, anything before it is in the log. */
    PGresult *r = PQexec(f->conn->pg, "LISTEN serverbox_events");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        drop_conn(f);
        return SB_EUNAVAIL;
    }
    if (!f->synced) {
        r = PQexec(f->conn->pg, "SELECT coalesce(max(seq), 0) FROM events");
        ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        if (ok)
            f->last = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        if (!ok) {
            drop_conn(f);
            return SB_EUNAVAIL;
        }
        f->synced = true;
        if (f->cfg.ready)
            f->cfg.ready(f->cfg.ctx, f->last);
        return 0;
    }
    log_info("event follower reconnected; catching up from the log", "last_seq=%lld", (long long)f->last);
    return catch_up(f, 0);
}

static void process_local(struct store_follow *f)
{
    pthread_mutex_lock(&f->lock);
    struct local_ev *e = f->head;
    f->head = f->tail = NULL;
    f->n_local = 0;
    pthread_mutex_unlock(&f->lock);
    while (e) {
        struct local_ev *next = e->next;
        if (f->synced && e->seq > f->last + 1)
            catch_up(f, e->seq - 1);
        if (f->synced && e->seq == f->last + 1) {
            struct store_event_row row = {.seq = e->seq,
                                          .stream = e->stream,
                                          .type = e->type,
                                          .body = e->body,
                                          .body_len = e->body_len};
            f->cfg.fn(f->cfg.ctx, &row);
            f->last = e->seq;
        }
        /* else: already delivered from the log, or a gap we could not fill
         * now (no connection): the reconnect catches up from the log. */
        local_free(e);
        e = next;
    }
}

/* Notifications can be taken in by any query on this connection (a catch-up
 * reads while other daemons keep committing): libpq then holds them, and
 * the socket has nothing left for poll to see. So this is called on every
 * turn of the loop, and drains until no announcement is ahead of us. */
static void process_notifies(struct store_follow *f)
{
    if (!PQconsumeInput(f->conn->pg)) {
        drop_conn(f);
        return;
    }
    for (;;) {
        int64_t announced = 0;
        PGnotify *n;
        while ((n = PQnotifies(f->conn->pg))) {
            int64_t s = strtoll(n->extra, NULL, 10);
            if (s > announced)
                announced = s;
            PQfreemem(n);
        }
        /* Our own commits are announced too; usually the hook got there first. */
        if (announced <= f->last)
            return;
        process_local(f);
        if (announced > f->last)
            catch_up(f, announced);
        if (!f->conn)
            return;
    }
}

static void *follow_main(void *arg)
{
    struct store_follow *f = arg;
    int backoff_ms = 100;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        bool stop = f->stopping;
        pthread_mutex_unlock(&f->lock);
        if (stop)
            break;
        if (!f->conn) {
            if (connect_and_sync(f) == 0)
                backoff_ms = 100;
            else if (backoff_ms < 2000)
                backoff_ms *= 2;
        }
        struct pollfd p[2] = {{.fd = f->wakefd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
        if (f->conn)
            p[1].fd = PQsocket(f->conn->pg);
        int rc = poll(p, 2, f->conn ? 1000 : backoff_ms);
        if (rc < 0 && errno != EINTR)
            break;
        if (p[0].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(f->wakefd, &v, sizeof v);
            (void)r;
        }
        process_local(f);
        if (f->conn)
            process_notifies(f);
    }
    return NULL;
}

struct store_follow *follow_start(struct store *st, const char *url, const struct store_follow_config *cfg)
{
    struct store_follow *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->st = st;
    f->url = strdup(url);
    f->cfg = *cfg;
    f->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&f->lock, NULL);
    if (!f->url || f->wakefd < 0) {
        follow_stop(f);
        return NULL;
    }
    /* Usually the database is up: know the head before serving. */
    connect_and_sync(f);
    store_set_commit_hook(st, on_commit, f);
    if (pthread_create(&f->thread, NULL, follow_main, f) != 0) {
        store_set_commit_hook(st, NULL, NULL);
        follow_stop(f);
        return NULL;
    }
    f->started = true;
    return f;
}

void follow_stop(struct store_follow *f)
{
    if (!f)
        return;
    store_set_commit_hook(f->st, NULL, NULL);
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    pthread_mutex_unlock(&f->lock);
    if (f->wakefd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(f->wakefd, &one, sizeof one);
        (void)w;
    }
    if (f->started)
        pthread_join(f->thread, NULL);
    while (f->head) {
        struct local_ev *e = f->head;
        f->head = e->next;
        local_free(e);
    }
    store_conn_close(f->conn);
    if (f->wakefd >= 0)
        close(f->wakefd);
    pthread_mutex_destroy(&f->lock);
    free(f->url);
    free(f);
}
