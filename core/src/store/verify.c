/*
 * Whole-log operations run by the administration subcommands on their own
 * connection: chain verification and projection rebuild. Both read the log in
 * seq order in pages, so memory stays flat however long the log is.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 2000

static int64_t be64(const char *p)
{
    int64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

static PGresult *page(PGconn *pg, const char *sql, int64_t after, struct sb_err *err)
{
    char a[24], lim[16];
    snprintf(a, sizeof a, "%lld", (long long)after);
    snprintf(lim, sizeof lim, "%d", PAGE);
    const char *p[2] = {a, lim};
    PGresult *r = PQexecParams(pg, sql, 2, NULL, p, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        store_result_error(pg, r, err);
        PQclear(r);
        return NULL;
    }
    return r;
}

static bool body_seq_is(const char *body, size_t len, int64_t seq)
{
    json_t *v = json_loadb(body, len, 0, NULL);
    json_t *s = json_object_get(v, "seq");
    bool ok = json_is_integer(s) && json_integer_value(s) == seq;
    json_decref(v);
    return ok;
}

/* Verifies on an open connection (administration's own, or the pool's);
 * the recomputed hash of each event whose seq is in `at` (ascending, n of
 * them) into at_hash[i], found[i] = reached before any break. */
static int verify_on(struct store_conn *c, struct store_verify_result *out, const int64_t *at, size_t n,
                     uint8_t (*at_hash)[32], bool *found, struct sb_err *err)
{
    size_t next_at = 0;
    memset(out, 0, sizeof *out);
    uint8_t prev[32] = {0};
    int64_t after = 0;
    int rc = 0;
    for (;;) {
        PGresult *r = page(c->pg,
                           "SELECT seq, body, prev_hash, hash FROM events WHERE seq > $1::bigint "
                           "ORDER BY seq LIMIT $2::int",
                           after, err);
        if (!r) {
            rc = err ? err->code : SB_EUNAVAIL;
            break;
        }
        int rows = PQntuples(r);
        for (int i = 0; i < rows && !out->first_bad_seq; i++) {
            int64_t seq = be64(PQgetvalue(r, i, 0));
            const char *body = PQgetvalue(r, i, 1);
            size_t blen = (size_t)PQgetlength(r, i, 1);
            uint8_t h[32];
            store_event_hash(prev, body, blen, h);
            const char *why = NULL;
            if (seq != after + 1)
                why = "seq is not the next one (gap)";
            else if (PQgetlength(r, i, 2) != 32 || memcmp(PQgetvalue(r, i, 2), prev, 32) != 0)
                why = "prev_hash is not the hash of the previous event";
            else if (PQgetlength(r, i, 3) != 32 || memcmp(PQgetvalue(r, i, 3), h, 32) != 0)
                why = "hash does not match sha256(prev_hash || body)";
            else if (!body_seq_is(body, blen, seq))
                why = "body's seq differs from the row's";
            if (why) {
                out->first_bad_seq = seq != after + 1 ? after + 1 : seq;
                sb_strlcpy(out->reason, why, sizeof out->reason);
                break;
            }
            memcpy(prev, h, 32);
            after = seq;
            out->checked++;
            while (next_at < n && at[next_at] < seq)
                next_at++;
            for (; next_at < n && at[next_at] == seq; next_at++) {
                memcpy(at_hash[next_at], h, 32);
                found[next_at] = true;
            }
        }
        PQclear(r);
        if (rows < PAGE || out->first_bad_seq)
            break;
    }
    out->head_seq = after;
    memcpy(out->head_hash, prev, 32);
    return rc;
}

int store_verify_chain(const char *database_url, struct store_verify_result *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    struct store_conn *c = store_conn_open(database_url, err);
    if (!c)
        return SB_EUNAVAIL;
    int rc = verify_on(c, out, NULL, 0, NULL, NULL, err);
    store_conn_close(c);
    return rc;
}

int store_verify_chain_at(const char *database_url, const int64_t *seqs, size_t n, uint8_t (*hashes)[32],
                          bool *found, struct store_verify_result *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++)
        found[i] = false;
    struct store_conn *c = store_conn_open(database_url, err);
    if (!c)
        return SB_EUNAVAIL;
    int rc = verify_on(c, out, seqs, n, hashes, found, err);
    store_conn_close(c);
    return rc;
}

int store_verify_chain_pool(struct store *st, struct store_verify_result *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    struct store_conn *c = store_acquire(st, err);
    if (!c)
        return SB_EUNAVAIL;
    int rc = verify_on(c, out, NULL, 0, NULL, NULL, err);
    store_release(st, c);
    return rc;
}

static int exec_simple(PGconn *pg, const char *sql, struct sb_err *err)
{
    PGresult *r = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : store_result_error(pg, r, err);
    PQclear(r);
    return rc;
}

/* Applies the projections of one page of events, in groups of the size the
 * appender uses, pipelined. The result is the same whatever the grouping: a
 * projection depends only on the events and their order. */
static int replay_page(PGconn *pg, PGresult *r, int64_t *after, struct sb_err *err)
{
    int rows = PQntuples(r), rc = 0;
    json_t **bodies = calloc((size_t)rows + 1, sizeof *bodies);
    struct store_event *evs = calloc((size_t)rows + 1, sizeof *evs);
    for (int i = 0; i < rows && rc == 0; i++) {
        json_t *v = json_loadb(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), 0, NULL);
        bodies[i] = v;
        json_t *actor = json_object_get(v, "actor");
        evs[i] = (struct store_event){
            .seq = be64(PQgetvalue(r, i, 0)),
            .stream = json_string_value(json_object_get(v, "stream")),
            .type = json_string_value(json_object_get(v, "type")),
            .data = json_object_get(v, "data"),
            .actor_kind = json_string_value(json_object_get(actor, "kind")),
            .outcome = json_string_value(json_object_get(v, "outcome")),
            .occurred_at = json_string_value(json_object_get(v, "occurred_at")),
        };
        if (!evs[i].stream || !evs[i].type || !evs[i].data || !evs[i].occurred_at)
            rc = sb_error(err, SB_EINTERNAL, "event %lld has an unreadable body", (long long)evs[i].seq);
        *after = evs[i].seq;
    }
    struct store_tx tx = {.pg = pg, .queued = 0};
    if (rc == 0 && !PQenterPipelineMode(pg))
        rc = sb_error(err, SB_EUNAVAIL, "database connection lost");
    if (rc == 0) {
        for (int i = 0; i < rows; i += 256)
            projections_apply(&tx, evs + i, rows - i < 256 ? rows - i : 256);
        PQpipelineSync(pg);
        for (int i = 0; i < tx.queued; i++) {
            PGresult *res = PQgetResult(pg);
            if (!res) {
                rc = sb_error(err, SB_EUNAVAIL, "database connection lost");
                break;
            }
            if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
                rc = store_result_error(pg, res, err);
            PQclear(res);
            PQclear(PQgetResult(pg));
        }
        PQclear(PQgetResult(pg)); /* the sync */
        PQexitPipelineMode(pg);
    }
    for (int i = 0; i < rows; i++)
        json_decref(bodies[i]);
    free(bodies);
    free(evs);
    return rc;
}

int store_rebuild_projections(const char *database_url, int64_t *replayed, struct sb_err *err)
{
    *replayed = 0;
    struct store_conn *c = store_conn_open(database_url, err);
    if (!c)
        return SB_EUNAVAIL;
    /* The table names are compile-time constants of projections.c, never
     * input, and TRUNCATE cannot take them as parameters. */
    struct buf sql;
    buf_init(&sql, 4096);
    buf_puts(&sql, "TRUNCATE ");
    for (size_t i = 0; projection_tables[i]; i++)
        buf_printf(&sql, "%s%s", i ? ", " : "", projection_tables[i]);
    int rc = exec_simple(c->pg, "BEGIN", err);
    if (rc == 0)
        rc = exec_simple(c->pg, "LOCK TABLE events IN SHARE MODE", err);
    if (rc == 0)
        rc = exec_simple(c->pg, sql.data, err);
    buf_release(&sql);
    int64_t after = 0;
    while (rc == 0) {
        PGresult *r =
            page(c->pg, "SELECT seq, body FROM events WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int",
                 after, err);
        if (!r) {
            rc = err ? err->code : SB_EUNAVAIL;
            break;
        }
        int rows = PQntuples(r);
        rc = replay_page(c->pg, r, &after, err);
        PQclear(r);
        *replayed += rows;
        if (rows < PAGE)
            break;
    }
    if (rc == 0)
        rc = exec_simple(c->pg, "COMMIT", err);
    else
        PQclear(PQexec(c->pg, "ROLLBACK"));
    store_conn_close(c);
    return rc;
}
