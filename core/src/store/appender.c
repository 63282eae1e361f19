/*
 * The appender: one thread per daemon that owns a connection and writes the
 * event log with group commit.
 *
 * Callers queue an append and wait. The thread takes everything queued (up to
 * GROUP_MAX), and in one transaction: takes the append advisory lock (so the
 * daemons sharing a database take turns), reads the head of the chain,
 * assigns consecutive seqs, hashes each body onto the previous hash, inserts
 * the rows, applies the projections, and commits. Only after COMMIT succeeds
 * does any caller learn its seq: nothing is acknowledged before it is durable.
 *
 * Invariant: seq is gapless. Seqs are assigned under the advisory lock from
 * the committed head, and a failed transaction leaves no row, so the next
 * group starts again from the same head.
 *
 * If the group fails because one event is refused by a projection (a name
 * already taken) or by the row it carries (store_side_write: a token, a
 * guest link, a sealed key written with its event), every event of the
 * group is retried alone, so only the offending caller gets the error. The
 * events of one store_append_all are a unit: never split between groups,
 * retried together, and refused together.
 *
 * Statements are pipelined: the group costs two round trips whatever its size.
 */
#include "internal.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_MAX 256
/* Division by zero, on purpose: raised when the head we cached is not the
 * head any more (another daemon appended). */
#define SQLSTATE_STALE_HEAD "22012"
/* internal: the cached head was stale; retry with a fresh one */
#define SB_EAGAIN_HEAD (-100)

struct pending {
    const struct event_new *ev;
    /* The canonical body is pre + occurred_at + mid + seq + post. The parts
     * are encoded by the caller's thread, so the appender only concatenates. */
    struct buf pre, mid, post;
    int64_t seq;
    int rc;
    struct sb_err err;
    bool done;
    pthread_cond_t wake; /* signalled once, when done */
    char *body;          /* computed per attempt */
    /* Events appended together (store_append_all) are one unit: queued
     * one after the other, always in one group, and retried, committed or
     * failed together. The unit's first pending holds its size, the others 0. */
    int unit;
    struct pending *next;
};

struct store_appender {
    char *url;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work; /* signalled when something is queued */
    struct pending *head, *tail;
    bool stopping;
    struct store_conn *conn;
    /* The head of the chain as of our last commit. Trusted only inside a
     * transaction that asserts it under the advisory lock. */
    bool head_known;
    int64_t head_seq;
    uint8_t head_hash[32];
    uint64_t events, groups;
    /* Told of every committed event, after COMMIT (the live event bus).
     * Called under hook_lock, so once the hook is unset no call is running. */
    pthread_mutex_t hook_lock;
    struct store *st; /* for store_event_committed */
    store_commit_hook_fn hook;
    void *hook_ctx;
};

/* ---- canonical bodies and hashes ----------------------------------------- */

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

char *store_event_body(int64_t seq, const struct event_new *ev, const char *occurred_at)
{
    json_t *actor = json_object();
    json_object_set_new(actor, "kind", str_or_null(ev->actor.kind));
    json_object_set_new(actor, "id", str_or_null(ev->actor.id));
    json_object_set_new(actor, "name", str_or_null(ev->actor.name));
    json_object_set_new(actor, "ip", str_or_null(ev->actor.ip));
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer(seq));
    json_object_set_new(o, "stream", str_or_null(ev->stream));
    json_object_set_new(o, "type", str_or_null(ev->type));
    /* data is borrowed from the caller: take a reference for the object. */
    json_object_set_new(o, "data", ev->data ? json_incref(ev->data) : json_object());
    json_object_set_new(o, "actor", actor);
    json_object_set_new(o, "outcome", str_or_null(ev->outcome));
    json_object_set_new(o, "occurred_at", json_string(occurred_at));
    char *body = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    /* PostgreSQL's jsonb cannot hold U+0000. */
    if (body && strstr(body, "\\u0000")) {
        free(body);
        return NULL;
    }
    return body;
}

void store_event_hash(const uint8_t prev[32], const char *body, size_t len, uint8_t out[32])
{
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, prev, 32);
    crypto_hash_sha256_update(&h, (const unsigned char *)body, len);
    crypto_hash_sha256_final(&h, out);
}

/* Appends the JSON encoding of a string (or null). */
static int put_json_string(struct buf *b, const char *s)
{
    json_t *v = str_or_null(s);
    char *enc = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(v);
    if (!enc)
        return SB_EINVAL;
    buf_puts(b, enc);
    free(enc);
    return 0;
}

/* Splits the canonical body around the two values only the appender knows
 * (occurred_at and seq). Because jansson's compact output is compositional,
 * the concatenation is byte for byte what store_event_body produces; a unit
 * test holds the two together. Keys in sorted order: actor, data,
 * occurred_at, outcome, seq, stream, type. */
static int body_parts(const struct event_new *ev, struct pending *p)
{
    json_t *actor = json_pack("{s:o, s:o, s:o, s:o}", "kind", str_or_null(ev->actor.kind), "id",
                              str_or_null(ev->actor.id), "name", str_or_null(ev->actor.name), "ip",
                              str_or_null(ev->actor.ip));
    char *a = actor ? json_dumps(actor, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(actor);
    json_t *empty = ev->data ? NULL : json_object();
    char *d = json_dumps(ev->data ? ev->data : empty, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(empty);
    int rc = a && d ? 0 : SB_EINVAL;
    if (rc == 0 && (strstr(a, "\\u0000") || strstr(d, "\\u0000")))
        rc = SB_EINVAL; /* PostgreSQL's jsonb cannot hold U+0000 */
    if (rc == 0) {
        buf_printf(&p->pre, "{\"actor\":%s,\"data\":%s,\"occurred_at\":\"", a, d);
        buf_puts(&p->mid, "\",\"outcome\":");
        rc = put_json_string(&p->mid, ev->outcome);
        buf_puts(&p->mid, ",\"seq\":");
        buf_puts(&p->post, ",\"stream\":");
        rc = rc ? rc : put_json_string(&p->post, ev->stream);
        buf_puts(&p->post, ",\"type\":");
        rc = rc ? rc : put_json_string(&p->post, ev->type);
        buf_putc(&p->post, '}');
    }
    free(a);
    free(d);
    return rc;
}

static char *body_join(const struct pending *p, int64_t seq, const char *occurred_at)
{
    struct buf b;
    buf_init(&b, 0);
    buf_append(&b, p->pre.data, p->pre.len);
    buf_puts(&b, occurred_at);
    buf_append(&b, p->mid.data, p->mid.len);
    buf_printf(&b, "%lld", (long long)seq);
    buf_append(&b, p->post.data, p->post.len);
    return buf_detach(&b, NULL);
}

/* ---- the transaction ------------------------------------------------------ */

void store_array_add(struct buf *b, const char *value, bool first)
{
    if (!first)
        buf_putc(b, ',');
    if (!value) {
        buf_puts(b, "NULL");
        return;
    }
    /* Quoted element: only backslash and double quote need escaping. This
     * runs on the appender thread for every byte of every body, so runs
     * without either are copied at once. */
    buf_putc(b, '"');
    const char *run = value;
    for (const char *c = value; *c; c++) {
        if (*c != '"' && *c != '\\')
            continue;
        buf_append(b, run, (size_t)(c - run));
        buf_putc(b, '\\');
        run = c;
    }
    buf_puts(b, run);
    buf_putc(b, '"');
}

int store_tx_exec(struct store_tx *tx, const char *sql, int n, const char *const *params)
{
    if (!PQsendQueryParams(tx->pg, sql, n, NULL, params, NULL, NULL, 0))
        return SB_EUNAVAIL;
    tx->queued++;
    return 0;
}

/* Reads the results of `expect` pipelined statements and the sync. The first
 * failure is reported; the rest were skipped by the server. */
static int read_pipeline(PGconn *pg, int expect, PGresult **keep, char *sqlstate, struct sb_err *err)
{
    int rc = 0;
    for (int i = 0; i < expect; i++) {
        PGresult *r = PQgetResult(pg);
        if (!r)
            return sb_error(err, SB_EUNAVAIL, "database connection lost");
        ExecStatusType s = PQresultStatus(r);
        if (rc == 0 && s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (sqlstate && st)
                sb_strlcpy(sqlstate, st, 6);
            rc = st && strcmp(st, SQLSTATE_STALE_HEAD) == 0 ? SB_ECONFLICT : store_result_error(pg, r, err);
        }
        if (keep && i == expect - 1 && rc == 0)
            *keep = r;
        else
            PQclear(r);
        PQclear(PQgetResult(pg)); /* the NULL that ends each statement */
    }
    PGresult *sync = PQgetResult(pg);
    if (!sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
        PQclear(sync);
        return rc ? rc : sb_error(err, SB_EUNAVAIL, "database connection lost");
    }
    PQclear(sync);
    return rc;
}

/* All rows of a group go in one statement: arrays of columns, unnested. Per
 * row this is several times cheaper than one INSERT each. */
static const char SQL_INSERT[] =
    "INSERT INTO events (seq, stream, type, body, actor_kind, outcome, occurred_at, prev_hash, hash) "
    "SELECT u.seq, u.stream, u.type, u.body, u.actor_kind, u.outcome, u.occurred_at, "
    "       decode(u.prev_hex, 'hex'), decode(u.hash_hex, 'hex') "
    "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "            $7::timestamptz[], $8::text[], $9::text[]) "
    "     AS u(seq, stream, type, body, actor_kind, outcome, occurred_at, prev_hex, hash_hex)";

static const char SQL_ASSERT_HEAD[] = "SELECT 1 / (coalesce(max(seq), 0) = $1::bigint)::int FROM events";

enum { COL_SEQ, COL_STREAM, COL_TYPE, COL_BODY, COL_ACTOR, COL_OUTCOME, COL_AT, COL_PREV, COL_HASH, N_COLS };

/* Takes the head from a binary (seq, hash) result; none means an empty log. */
static void head_from_result(struct store_appender *a, PGresult *r)
{
    a->head_seq = 0;
    memset(a->head_hash, 0, 32);
    if (PQntuples(r) == 1 && PQgetlength(r, 0, 1) == 32) {
        const uint8_t *p = (const uint8_t *)PQgetvalue(r, 0, 0); /* int8, big-endian */
        for (int i = 0; i < 8; i++)
            a->head_seq = (a->head_seq << 8) | p[i];
        memcpy(a->head_hash, PQgetvalue(r, 0, 1), 32);
    }
    a->head_known = true;
}

/* Appends the events of `group` (n of them) in one transaction.
 *
 * When the head is cached (the usual case: we made the last append), the
 * whole transaction is one round trip: BEGIN, the advisory lock, an assertion
 * that the head is still the cached one, the insert, the projections,
 * COMMIT. If another daemon appended meanwhile, the assertion aborts the
 * transaction with nothing written and SB_EAGAIN_HEAD is returned.
 *
 * Otherwise the head is read under the lock first (two round trips), which
 * always makes progress. */
static int append_group(struct store_appender *a, struct pending **group, int n, bool *drop,
                        struct sb_err *err)
{
    PGconn *pg = a->conn->pg;
    char lockkey[24], headseq[24], sqlstate[6] = "";
    snprintf(lockkey, sizeof lockkey, "%lld", (long long)STORE_LOCK_APPEND);
    snprintf(headseq, sizeof headseq, "%lld", (long long)a->head_seq);
    const char *lockp[1] = {lockkey}, *headp[1] = {headseq};
    bool optimistic = a->head_known;
    int rc = 0;
    struct store_tx tx = {.pg = pg, .queued = 0};
    if (!PQenterPipelineMode(pg)) {
        *drop = true;
        return sb_error(err, SB_EUNAVAIL, "database connection lost");
    }
    store_tx_exec(&tx, "BEGIN", 0, NULL);
    store_tx_exec(&tx, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lockp);
    if (optimistic) {
        store_tx_exec(&tx, SQL_ASSERT_HEAD, 1, headp);
    } else {
        PQsendQueryParams(pg, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", 0, NULL, NULL, NULL,
                          NULL, 1);
        tx.queued++;
        PQpipelineSync(pg);
        PGresult *head = NULL;
        rc = read_pipeline(pg, tx.queued, &head, NULL, err);
        if (rc)
            goto end_pipeline;
        head_from_result(a, head);
        PQclear(head);
        tx.queued = 0;
    }

    char occurred_at[40];
    time_format_rfc3339(time_now_us(), occurred_at, sizeof occurred_at);
    struct buf cols[N_COLS];
    for (int k = 0; k < N_COLS; k++) {
        buf_init(&cols[k], 0);
        buf_putc(&cols[k], '{');
    }
    struct store_event *evs = calloc((size_t)n, sizeof *evs);
    json_t *empty = json_object();
    int64_t seq = a->head_seq;
    uint8_t prev[32];
    memcpy(prev, a->head_hash, 32);
    for (int i = 0; i < n; i++) {
        struct pending *p = group[i];
        p->seq = ++seq;
        free(p->body);
        p->body = body_join(p, p->seq, occurred_at);
        uint8_t hash[32];
        char prev_hex[65], hash_hex[65], seqs[24];
        store_event_hash(prev, p->body, strlen(p->body), hash);
        hex_encode(prev, 32, prev_hex);
        hex_encode(hash, 32, hash_hex);
        snprintf(seqs, sizeof seqs, "%lld", (long long)p->seq);
        const char *v[N_COLS] = {seqs,           p->ev->stream, p->ev->type, p->body, p->ev->actor.kind,
                                 p->ev->outcome, occurred_at,   prev_hex,    hash_hex};
        for (int k = 0; k < N_COLS; k++)
            store_array_add(&cols[k], v[k], i == 0);
        memcpy(prev, hash, 32);
        evs[i] = (struct store_event){.seq = p->seq,
                                      .stream = p->ev->stream,
                                      .type = p->ev->type,
                                      .data = p->ev->data ? p->ev->data : empty,
                                      .actor_kind = p->ev->actor.kind,
                                      .outcome = p->ev->outcome,
                                      .occurred_at = occurred_at};
    }
    const char *params[N_COLS];
    for (int k = 0; k < N_COLS; k++) {
        buf_putc(&cols[k], '}');
        params[k] = cols[k].data;
    }

    if (PQsendQueryPrepared(pg, "append_insert", N_COLS, params, NULL, NULL, 0))
        tx.queued++;
    projections_apply(&tx, evs, n);
    /* Rows the events carry (store_side_write): same transaction. */
    for (int i = 0; i < n; i++) {
        const struct store_side_write *w = group[i]->ev->side;
        if (w)
            store_tx_exec(&tx, w->sql, w->n, w->params);
    }
    /* Other daemons on this database learn of the group at COMMIT; the
     * payload is the last seq (they read the rows from the log). */
    char lastseq[24];
    snprintf(lastseq, sizeof lastseq, "%lld", (long long)seq);
    const char *notifyp[1] = {lastseq};
    store_tx_exec(&tx, "SELECT pg_notify('serverbox_events', $1)", 1, notifyp);
    store_tx_exec(&tx, "COMMIT", 0, NULL);
    PQpipelineSync(pg);
    rc = read_pipeline(pg, tx.queued, NULL, sqlstate, err);
    for (int k = 0; k < N_COLS; k++)
        buf_release(&cols[k]);
    free(evs);
    json_decref(empty);
    if (rc == 0) {
        a->head_seq = seq;
        memcpy(a->head_hash, prev, 32);
    }
end_pipeline:
    /* read_pipeline consumed every result up to the sync, so the pipeline is
     * idle unless the connection died; then the connection is dropped. */
    if (!PQexitPipelineMode(pg) || PQstatus(pg) != CONNECTION_OK) {
        *drop = true;
        return rc ? rc : sb_error(err, SB_EUNAVAIL, "database connection lost");
    }
    if (rc && PQtransactionStatus(pg) != PQTRANS_IDLE)
        PQclear(PQexec(pg, "ROLLBACK"));
    if (rc && strcmp(sqlstate, SQLSTATE_STALE_HEAD) == 0) {
        a->head_known = false;
        return SB_EAGAIN_HEAD;
    }
    return rc;
}

static int ensure_conn(struct store_appender *a, struct sb_err *err)
{
    if (a->conn && PQstatus(a->conn->pg) == CONNECTION_OK)
        return 0;
    store_conn_close(a->conn);
    a->conn = store_conn_open(a->url, err);
    if (!a->conn)
        return SB_EUNAVAIL;
    PGresult *r = PQprepare(a->conn->pg, "append_insert", SQL_INSERT, 0, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : store_result_error(a->conn->pg, r, err);
    PQclear(r);
    if (rc) {
        store_conn_close(a->conn);
        a->conn = NULL;
    }
    a->head_known = false;
    return rc;
}

static void finish(struct pending *p, int rc, const struct sb_err *err)
{
    p->rc = rc;
    if (rc && err)
        p->err = *err;
    if (rc)
        p->seq = 0;
}

static void run_group(struct store_appender *a, struct pending **group, int n)
{
    struct sb_err err = {0};
    bool drop = false;
    int rc = ensure_conn(a, &err);
    if (rc == 0)
        rc = append_group(a, group, n, &drop, &err);
    /* Stale cached head: again, reading the head under the lock this time. */
    if (rc == SB_EAGAIN_HEAD && !drop)
        rc = append_group(a, group, n, &drop, &err);
    if (rc == SB_EAGAIN_HEAD)
        rc = sb_error(&err, SB_EUNAVAIL, "database connection lost");
    if (drop) {
        store_conn_close(a->conn);
        a->conn = NULL;
        a->head_known = false;
    }
    if (rc == 0) {
        pthread_mutex_lock(&a->hook_lock);
        for (int i = 0; i < n; i++) {
            if (a->hook) {
                struct store_event_row row = {.seq = group[i]->seq,
                                              .stream = group[i]->ev->stream,
                                              .type = group[i]->ev->type,
                                              .body = group[i]->body,
                                              .body_len = strlen(group[i]->body)};
                a->hook(a->hook_ctx, &row);
            }
            store_event_committed(a->st, group[i]->ev->type);
            finish(group[i], 0, NULL);
        }
        pthread_mutex_unlock(&a->hook_lock);
        a->events += (uint64_t)n;
        a->groups++;
        return;
    }
    if (group[0]->unit < n && rc != SB_EUNAVAIL) {
        /* One event (or unit) may be at fault: try each unit alone. */
        for (int i = 0; i < n; i += group[i]->unit)
            run_group(a, &group[i], group[i]->unit);
        return;
    }
    for (int i = 0; i < n; i++)
        finish(group[i], rc, &err);
}

static void *appender_main(void *arg)
{
    struct store_appender *a = arg;
    struct pending *group[GROUP_MAX];
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->head && !a->stopping)
            pthread_cond_wait(&a->work, &a->lock);
        if (!a->head && a->stopping)
            break;
        int n = 0;
        while (a->head && n < GROUP_MAX) {
            int u = a->head->unit; /* at most GROUP_MAX (appender_append_all) */
            if (n > 0 && n + u > GROUP_MAX)
                break;
            for (int k = 0; k < u; k++) {
                group[n++] = a->head;
                a->head = a->head->next;
            }
        }
        if (!a->head)
            a->tail = NULL;
        pthread_mutex_unlock(&a->lock);

        run_group(a, group, n);

        pthread_mutex_lock(&a->lock);
        /* Wake each caller alone: a broadcast would wake every waiter of
         * the next group too, for nothing. */
        for (int i = 0; i < n; i++) {
            group[i]->done = true;
            pthread_cond_signal(&group[i]->wake);
        }
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static void pending_release(struct pending *p)
{
    pthread_cond_destroy(&p->wake);
    buf_release(&p->pre);
    buf_release(&p->mid);
    buf_release(&p->post);
    free(p->body);
    p->body = NULL;
}

static bool valid_word(const char *s, size_t max)
{
    return s && *s && strlen(s) <= max;
}

int appender_append_all(struct store_appender *a, const struct event_new *evs, int n, int64_t *seqs,
                        struct sb_err *err)
{
    if (n < 1 || n > GROUP_MAX)
        return sb_error(err, SB_EINTERNAL, "1 to %d events are appended together", GROUP_MAX);
    for (int i = 0; i < n; i++) {
        const struct event_new *ev = &evs[i];
        if (!valid_word(ev->stream, 200) || !valid_word(ev->type, 100) || !valid_word(ev->actor.kind, 16) ||
            !valid_word(ev->outcome, 16))
            return sb_error(err, SB_EINTERNAL, "event is missing stream, type, actor kind or outcome");
        if (ev->data && !json_is_object(ev->data))
            return sb_error(err, SB_EINTERNAL, "event data must be an object");
    }
    struct pending one, *ps = n == 1 ? &one : calloc((size_t)n, sizeof *ps);
    if (!ps)
        return sb_error(err, SB_ENOMEM, "out of memory");
    int bad = 0;
    for (int i = 0; i < n; i++) {
        ps[i] = (struct pending){.ev = &evs[i], .unit = i == 0 ? n : 0};
        pthread_cond_init(&ps[i].wake, NULL);
        buf_init(&ps[i].pre, 0);
        buf_init(&ps[i].mid, 0);
        buf_init(&ps[i].post, 0);
        if (body_parts(&evs[i], &ps[i]))
            bad = 1;
    }
    int rc = 0;
    pthread_mutex_lock(&a->lock);
    if (bad) {
        rc = sb_error(err, SB_EINVAL, "text containing NUL characters cannot be recorded");
    } else if (a->stopping) {
        rc = sb_error(err, SB_EUNAVAIL, "shutting down");
    } else {
        for (int i = 0; i < n; i++) {
            if (a->tail)
                a->tail->next = &ps[i];
            else
                a->head = &ps[i];
            a->tail = &ps[i];
        }
        pthread_cond_signal(&a->work);
        for (int i = 0; i < n; i++)
            while (!ps[i].done)
                pthread_cond_wait(&ps[i].wake, &a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    if (rc == 0 && ps[0].rc) {
        rc = ps[0].rc;
        if (err)
            *err = ps[0].err;
    }
    for (int i = 0; i < n; i++) {
        if (rc == 0 && seqs)
            seqs[i] = ps[i].seq;
        pending_release(&ps[i]);
    }
    if (ps != &one)
        free(ps);
    return rc;
}

int appender_append(struct store_appender *a, const struct event_new *ev, int64_t *seq, struct sb_err *err)
{
    return appender_append_all(a, ev, 1, seq, err);
}

struct store_appender *appender_start(struct store *st, const char *url)
{
    struct store_appender *a = calloc(1, sizeof *a);
    a->st = st;
    a->url = strdup(url);
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->hook_lock, NULL);
    pthread_cond_init(&a->work, NULL);
    pthread_create(&a->thread, NULL, appender_main, a);
    return a;
}

void appender_stop(struct store_appender *a)
{
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    store_conn_close(a->conn);
    pthread_mutex_destroy(&a->lock);
    pthread_mutex_destroy(&a->hook_lock);
    pthread_cond_destroy(&a->work);
    free(a->url);
    free(a);
}

void appender_stats(struct store_appender *a, uint64_t *events, uint64_t *groups)
{
    pthread_mutex_lock(&a->lock);
    *events = a->events;
    *groups = a->groups;
    pthread_mutex_unlock(&a->lock);
}

void appender_set_hook(struct store_appender *a, store_commit_hook_fn fn, void *ctx)
{
    pthread_mutex_lock(&a->hook_lock);
    a->hook = fn;
    a->hook_ctx = ctx;
    pthread_mutex_unlock(&a->hook_lock);
}
