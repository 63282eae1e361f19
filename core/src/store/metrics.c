/*
 * Collector enrollment lookups and the node metrics time series. Samples are
 * not events: they go straight to the partitioned metrics_* tables, a whole
 * batch in one statement (the columns travel as arrays and are unnested),
 * together with the per-node sequence check that makes resending harmless.
 */
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_enroll_token_get(struct store *st, const char *token_sha256, struct store_enroll_token *out,
                           struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("SELECT node_id, (extract(epoch FROM expires_at) * 1000000)::bigint, used_at IS NOT NULL "
                   "FROM agent_enroll_tokens WHERE token_sha256 = $1");
    const char *p[1] = {token_sha256};
    PGresult *r;
    int rc = store_query(st, &q, 1, p, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        rc = sb_error(err, SB_ENOTFOUND, "no such enrollment token");
    } else {
        sb_strlcpy(out->node_id, PQgetvalue(r, 0, 0), sizeof out->node_id);
        out->expires_us = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        out->used = PQgetvalue(r, 0, 2)[0] == 't';
    }
    PQclear(r);
    return rc;
}

int store_agent_key_get(struct store *st, const char *fingerprint, struct store_agent_key *out,
                        struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT node_id, public_key, revoked_at IS NOT NULL FROM agent_keys WHERE fingerprint = $1");
    const char *p[1] = {fingerprint};
    PGresult *r;
    int rc = store_query(st, &q, 1, p, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        rc = sb_error(err, SB_ENOTFOUND, "unknown agent key");
    } else {
        sb_strlcpy(out->node_id, PQgetvalue(r, 0, 0), sizeof out->node_id);
        if (hex_decode(PQgetvalue(r, 0, 1), out->public_key, 32))
            rc = sb_error(err, SB_EINTERNAL, "stored agent key is malformed");
        out->revoked = PQgetvalue(r, 0, 2)[0] == 't';
    }
    PQclear(r);
    return rc;
}

/* Array element helpers: NaN and negative "not measured" values are NULL. */
static void add_f(struct buf *b, double v, bool first)
{
    char t[40];
    if (isnan(v) || isinf(v)) {
        store_array_add(b, NULL, first);
        return;
    }
    snprintf(t, sizeof t, "%.6g", v);
    store_array_add(b, t, first);
}

static void add_i(struct buf *b, int64_t v, bool first)
{
    char t[24];
    if (v < 0) {
        store_array_add(b, NULL, first);
        return;
    }
    snprintf(t, sizeof t, "%lld", (long long)v);
    store_array_add(b, t, first);
}

#define HOST_COLS 18
#define CONT_COLS 10
#define GROUP_MAX 256

/* Group commit for batches: concurrent callers queue their batch; one of
 * them (the leader) stores up to GROUP_MAX batches, at most one per node so
 * the per-node sequence check stays exact, in one statement and one
 * transaction, then wakes the others. Under load this turns a thousand small
 * transactions a second into a few dozen larger ones. */
struct ingest_job {
    const char *node_id;
    int64_t seq;
    const struct store_metric_sample *s;
    size_t n;
    const struct store_container_sample *c;
    size_t nc;
    bool duplicate, done;
    int rc;
    struct sb_err err;
    struct ingest_job *next;
};

static pthread_mutex_t ingest_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ingest_cond = PTHREAD_COND_INITIALIZER;
static struct ingest_job *ingest_head;
static bool ingest_leader;

static int ingest_group(struct store *st, struct ingest_job **jobs, size_t nj, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "WITH b AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS b(node_id, seq)), "
        "s AS ("
        "  INSERT INTO agent_ingest (node_id, last_seq, last_at) SELECT node_id, seq, now() FROM b "
        "  ON CONFLICT (node_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_at = EXCLUDED.last_at "
        "  WHERE agent_ingest.last_seq < EXCLUDED.last_seq RETURNING node_id), "
        "r AS ("
        "  INSERT INTO metrics_raw (node_id, ts, seq, cpu_pct, mem_total, mem_used, swap_total, swap_used, "
        "    load1, load5, load15, procs, uptime_s, disk_total, disk_used, disk_read_bps, disk_write_bps, "
        "    net_rx_bps, net_tx_bps, detail) "
        "  SELECT u.node, to_timestamp(u.ts / 1000.0), u.seq, u.cpu, u.mt, u.mu, u.st, u.su, u.l1, u.l5, "
        "u.l15, "
        "    u.pr, u.up, u.dt, u.du, u.dr, u.dw, u.nr, u.nt, u.de "
        "  FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::real[], $7::bigint[], $8::bigint[], "
        "    $9::bigint[], $10::bigint[], $11::real[], $12::real[], $13::real[], $14::integer[], "
        "$15::bigint[], "
        "    $16::bigint[], $17::bigint[], $18::real[], $19::real[], $20::real[], $21::real[], $22::jsonb[]) "
        "    AS u(node, seq, ts, cpu, mt, mu, st, su, l1, l5, l15, pr, up, dt, du, dr, dw, nr, nt, de) "
        "  WHERE u.node IN (SELECT node_id FROM s) ON CONFLICT DO NOTHING RETURNING 1), "
        "c AS ("
        "  INSERT INTO metrics_container_raw (node_id, container_id, ts, name, cpu_pct, mem_used, mem_limit, "
        "    net_rx_bps, net_tx_bps, blk_read_bps, blk_write_bps) "
        "  SELECT u.node, u.id, to_timestamp(u.ts / 1000.0), u.name, u.cpu, u.mu, u.ml, u.nr, u.nt, u.br, "
        "u.bw "
        "  FROM unnest($23::text[], $24::bigint[], $25::text[], $26::text[], $27::real[], $28::bigint[], "
        "    $29::bigint[], $30::real[], $31::real[], $32::real[], $33::real[]) "
        "    AS u(node, ts, id, name, cpu, mu, ml, nr, nt, br, bw) "
        "  WHERE u.node IN (SELECT node_id FROM s) ON CONFLICT DO NOTHING RETURNING 1) "
        "SELECT (SELECT array_agg(node_id) FROM s), (SELECT count(*) FROM r), (SELECT count(*) FROM c)");
    /* batch: node, seq; host: node, seq + HOST_COLS; container: node + CONT_COLS */
    enum { NB = 2, NH = 2 + HOST_COLS, NC = 1 + CONT_COLS, NP = NB + NH + NC };
    struct buf col[NP];
    bool first[NP];
    for (int k = 0; k < NP; k++) {
        buf_init(&col[k], 0);
        buf_putc(&col[k], '{');
        first[k] = true;
    }
#define ADD(k, fn, v)                                                                                        \
    do {                                                                                                     \
        int k_ = (k);                                                                                        \
        fn(&col[k_], (v), first[k_]);                                                                        \
        first[k_] = false;                                                                                   \
    } while (0)
    for (size_t j = 0; j < nj; j++) {
        const struct ingest_job *job = jobs[j];
        char seqs[24];
        snprintf(seqs, sizeof seqs, "%lld", (long long)job->seq);
        ADD(0, store_array_add, job->node_id);
        ADD(1, store_array_add, seqs);
        for (size_t i = 0; i < job->n; i++) {
            const struct store_metric_sample *x = &job->s[i];
            int k = NB;
            ADD(k++, store_array_add, job->node_id);
            ADD(k++, store_array_add, seqs);
            ADD(k++, add_i, x->ts_ms);
            ADD(k++, add_f, x->cpu_pct);
            ADD(k++, add_i, x->mem_total);
            ADD(k++, add_i, x->mem_used);
            ADD(k++, add_i, x->swap_total);
            ADD(k++, add_i, x->swap_used);
            ADD(k++, add_f, x->load1);
            ADD(k++, add_f, x->load5);
            ADD(k++, add_f, x->load15);
            ADD(k++, add_i, x->procs);
            ADD(k++, add_i, x->uptime_s);
            ADD(k++, add_i, x->disk_total);
            ADD(k++, add_i, x->disk_used);
            ADD(k++, add_f, x->disk_read_bps);
            ADD(k++, add_f, x->disk_write_bps);
            ADD(k++, add_f, x->net_rx_bps);
            ADD(k++, add_f, x->net_tx_bps);
            ADD(k++, store_array_add, x->detail);
        }
        for (size_t i = 0; i < job->nc; i++) {
            const struct store_container_sample *x = &job->c[i];
            int k = NB + NH;
            ADD(k++, store_array_add, job->node_id);
            ADD(k++, add_i, x->ts_ms);
            ADD(k++, store_array_add, x->id);
            ADD(k++, store_array_add, x->name);
            ADD(k++, add_f, x->cpu_pct);
            ADD(k++, add_i, x->mem_used);
            ADD(k++, add_i, x->mem_limit);
            ADD(k++, add_f, x->net_rx_bps);
            ADD(k++, add_f, x->net_tx_bps);
            ADD(k++, add_f, x->blk_read_bps);
            ADD(k++, add_f, x->blk_write_bps);
        }
    }
#undef ADD
    const char *p[NP];
    for (int k = 0; k < NP; k++) {
        buf_putc(&col[k], '}');
        p[k] = col[k].data;
    }
    PGresult *r;
    int rc = store_query(st, &q, NP, p, &r, err);
    if (rc == 0) {
        /* {id,id,…} of the nodes whose batch was new (uuids: never quoted) */
        const char *acc = PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0);
        for (size_t j = 0; j < nj; j++) {
            const char *hit = strstr(acc, jobs[j]->node_id);
            size_t len = strlen(jobs[j]->node_id);
            jobs[j]->duplicate = !(hit && (hit[-1] == '{' || hit[-1] == ',' || hit[-1] == '"') &&
                                   (hit[len] == '}' || hit[len] == ',' || hit[len] == '"'));
        }
        PQclear(r);
    }
    for (int k = 0; k < NP; k++)
        buf_release(&col[k]);
    return rc;
}

int store_metrics_ingest(struct store *st, const char *node_id, int64_t seq,
                         const struct store_metric_sample *s, size_t n,
                         const struct store_container_sample *cs, size_t nc, bool *duplicate,
                         struct sb_err *err)
{
    struct ingest_job job = {.node_id = node_id, .seq = seq, .s = s, .n = n, .c = cs, .nc = nc};
    pthread_mutex_lock(&ingest_lock);
    struct ingest_job **tail = &ingest_head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = &job;
    while (!job.done) {
        if (ingest_leader) {
            pthread_cond_wait(&ingest_cond, &ingest_lock);
            continue;
        }
        /* Lead: take the oldest batch of each node, in queue order. */
        ingest_leader = true;
        struct ingest_job *group[GROUP_MAX];
        size_t ng = 0;
        for (struct ingest_job **pp = &ingest_head; *pp && ng < GROUP_MAX;) {
            bool same = false;
            for (size_t i = 0; i < ng && !same; i++)
                same = strcmp(group[i]->node_id, (*pp)->node_id) == 0;
            if (same) {
                pp = &(*pp)->next;
                continue;
            }
            group[ng++] = *pp;
            *pp = (*pp)->next;
        }
        pthread_mutex_unlock(&ingest_lock);
        struct sb_err gerr = {0};
        int rc = ingest_group(st, group, ng, &gerr);
        pthread_mutex_lock(&ingest_lock);
        for (size_t i = 0; i < ng; i++) {
            group[i]->rc = rc;
            group[i]->err = gerr;
            group[i]->done = true;
        }
        ingest_leader = false;
        pthread_cond_broadcast(&ingest_cond);
    }
    pthread_mutex_unlock(&ingest_lock);
    if (job.rc) {
        if (err)
            *err = job.err;
        return job.rc;
    }
    *duplicate = job.duplicate;
    return 0;
}

/* The bucketed series as one JSON text made by PostgreSQL. */
int store_metrics_query(struct store *st, const char *node_id, const char *container_id, int64_t from_ms,
                        int64_t to_ms, int step_s, bool rollup, json_t **out, struct sb_err *err)
{
#define HOST_SELECT(table)                                                                                   \
    "SELECT coalesce(json_agg(p ORDER BY p.t), '[]') FROM ("                                                 \
    "  SELECT (extract(epoch FROM date_bin(make_interval(secs => $4::int), ts, timestamptz 'epoch')) * "     \
    "1000)"                                                                                                  \
    "::bigint AS t, round(avg(cpu_pct)::numeric, 2) AS cpu_pct, avg(mem_used)::bigint AS mem_used, "         \
    "max(mem_total) AS mem_total, avg(swap_used)::bigint AS swap_used, max(swap_total) AS swap_total, "      \
    "round(avg(load1)::numeric, 2) AS load1, round(avg(load5)::numeric, 2) AS load5, "                       \
    "round(avg(load15)::numeric, 2) AS load15, avg(procs)::integer AS procs, max(uptime_s) AS uptime_s, "    \
    "avg(disk_used)::bigint AS disk_used, max(disk_total) AS disk_total, "                                   \
    "round(avg(disk_read_bps)::numeric, 1) AS disk_read_bps, round(avg(disk_write_bps)::numeric, 1) "        \
    "AS disk_write_bps, round(avg(net_rx_bps)::numeric, 1) AS net_rx_bps, "                                  \
    "round(avg(net_tx_bps)::numeric, 1) AS net_tx_bps "                                                      \
    "  FROM " table " WHERE node_id = $1 AND ts >= to_timestamp($2::bigint / 1000.0) "                       \
    "  AND ts < to_timestamp($3::bigint / 1000.0) GROUP BY 1) p"
#define CONT_SELECT(table)                                                                                   \
    "SELECT coalesce(json_agg(p ORDER BY p.t), '[]') FROM ("                                                 \
    "  SELECT (extract(epoch FROM date_bin(make_interval(secs => $4::int), ts, timestamptz 'epoch')) * "     \
    "1000)"                                                                                                  \
    "::bigint AS t, max(name) AS name, round(avg(cpu_pct)::numeric, 2) AS cpu_pct, "                         \
    "avg(mem_used)::bigint AS mem_used, max(mem_limit) AS mem_limit, "                                       \
    "round(avg(net_rx_bps)::numeric, 1) AS net_rx_bps, round(avg(net_tx_bps)::numeric, 1) AS net_tx_bps, "   \
    "round(avg(blk_read_bps)::numeric, 1) AS blk_read_bps, round(avg(blk_write_bps)::numeric, 1) "           \
    "AS blk_write_bps "                                                                                      \
    "  FROM " table " WHERE node_id = $1 AND container_id = $5 AND ts >= to_timestamp($2::bigint / 1000.0) " \
    "  AND ts < to_timestamp($3::bigint / 1000.0) GROUP BY 1) p"
    static struct store_stmt host_raw = STORE_STMT(HOST_SELECT("metrics_raw"));
    static struct store_stmt host_1m = STORE_STMT(HOST_SELECT("metrics_1m"));
    static struct store_stmt cont_raw = STORE_STMT(CONT_SELECT("metrics_container_raw"));
    static struct store_stmt cont_1m = STORE_STMT(CONT_SELECT("metrics_container_1m"));
    struct store_stmt *stmt =
        container_id ? (rollup ? &cont_1m : &cont_raw) : (rollup ? &host_1m : &host_raw);
    char from[24], to[24], step[16];
    snprintf(from, sizeof from, "%lld", (long long)from_ms);
    snprintf(to, sizeof to, "%lld", (long long)to_ms);
    snprintf(step, sizeof step, "%d", step_s);
    const char *p[5] = {node_id, from, to, step, container_id};
    PGresult *r;
    int rc = store_query(st, stmt, container_id ? 5 : 4, p, &r, err);
    if (rc)
        return rc;
    json_error_t je;
    *out = json_loads(PQgetvalue(r, 0, 0), 0, &je);
    PQclear(r);
    return *out ? 0 : sb_error(err, SB_EINTERNAL, "series could not be decoded");
}

int store_metrics_rollup(struct store *st, int64_t since_ms, struct sb_err *err)
{
    static struct store_stmt host = STORE_STMT(
        "INSERT INTO metrics_1m (node_id, ts, samples, cpu_pct, cpu_pct_max, mem_total, mem_used, "
        "swap_total, "
        "  swap_used, load1, load5, load15, procs, uptime_s, disk_total, disk_used, disk_read_bps, "
        "  disk_write_bps, net_rx_bps, net_tx_bps) "
        "SELECT node_id, date_trunc('minute', ts), count(*), avg(cpu_pct), max(cpu_pct), max(mem_total), "
        "  avg(mem_used), max(swap_total), avg(swap_used), avg(load1), avg(load5), avg(load15), avg(procs), "
        "  max(uptime_s), max(disk_total), avg(disk_used), avg(disk_read_bps), avg(disk_write_bps), "
        "  avg(net_rx_bps), avg(net_tx_bps) "
        "FROM metrics_raw WHERE ts >= date_trunc('minute', to_timestamp($1::bigint / 1000.0)) "
        "  AND ts < date_trunc('minute', now()) GROUP BY 1, 2 "
        "ON CONFLICT (node_id, ts) DO UPDATE SET samples = EXCLUDED.samples, cpu_pct = EXCLUDED.cpu_pct, "
        "  cpu_pct_max = EXCLUDED.cpu_pct_max, mem_total = EXCLUDED.mem_total, mem_used = EXCLUDED.mem_used, "
        "  swap_total = EXCLUDED.swap_total, swap_used = EXCLUDED.swap_used, load1 = EXCLUDED.load1, "
        "  load5 = EXCLUDED.load5, load15 = EXCLUDED.load15, procs = EXCLUDED.procs, "
        "  uptime_s = EXCLUDED.uptime_s, disk_total = EXCLUDED.disk_total, disk_used = EXCLUDED.disk_used, "
        "  disk_read_bps = EXCLUDED.disk_read_bps, disk_write_bps = EXCLUDED.disk_write_bps, "
        "  net_rx_bps = EXCLUDED.net_rx_bps, net_tx_bps = EXCLUDED.net_tx_bps");
    static struct store_stmt cont = STORE_STMT(
        "INSERT INTO metrics_container_1m (node_id, container_id, ts, name, samples, cpu_pct, mem_used, "
        "  mem_limit, net_rx_bps, net_tx_bps, blk_read_bps, blk_write_bps) "
        "SELECT node_id, container_id, date_trunc('minute', ts), max(name), count(*), avg(cpu_pct), "
        "  avg(mem_used), max(mem_limit), avg(net_rx_bps), avg(net_tx_bps), avg(blk_read_bps), "
        "  avg(blk_write_bps) "
        "FROM metrics_container_raw WHERE ts >= date_trunc('minute', to_timestamp($1::bigint / 1000.0)) "
        "  AND ts < date_trunc('minute', now()) GROUP BY 1, 2, 3 "
        "ON CONFLICT (node_id, container_id, ts) DO UPDATE SET name = EXCLUDED.name, "
        "  samples = EXCLUDED.samples, cpu_pct = EXCLUDED.cpu_pct, mem_used = EXCLUDED.mem_used, "
        "  mem_limit = EXCLUDED.mem_limit, net_rx_bps = EXCLUDED.net_rx_bps, net_tx_bps = "
        "EXCLUDED.net_tx_bps, "
        "  blk_read_bps = EXCLUDED.blk_read_bps, blk_write_bps = EXCLUDED.blk_write_bps");
    char since[24];
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    const char *p[1] = {since};
    PGresult *r;
    int rc = store_query(st, &host, 1, p, &r, err);
    if (rc == 0) {
        PQclear(r);
        rc = store_query(st, &cont, 1, p, &r, err);
    }
    if (rc == 0)
        PQclear(r);
    return rc;
}

int store_metrics_maintain(struct store *st, int raw_days, int rollup_days, int *dropped, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT("SELECT metrics_maintain($1::int, $2::int)");
    char a[16], b[16];
    snprintf(a, sizeof a, "%d", raw_days);
    snprintf(b, sizeof b, "%d", rollup_days);
    const char *p[2] = {a, b};
    PGresult *r;
    int rc = store_query(st, &q, 2, p, &r, err);
    if (rc)
        return rc;
    if (dropped)
        *dropped = (int)sb_int64(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int store_node_agent_online(struct store *st, const char *node_id, bool *online, struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("SELECT coalesce(agent_status = 'online', false) FROM nodes WHERE id = $1::uuid");
    const char *p[1] = {node_id};
    PGresult *r;
    int rc = store_query(st, &q, 1, p, &r, err);
    if (rc)
        return rc;
    *online = PQntuples(r) && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return 0;
}

int store_nodes_agent_online(struct store *st,
                             void (*fn)(void *arg, const char *node_id, int64_t interval_ms), void *arg,
                             struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "SELECT id::text, coalesce(agent_interval_ms, 5000) FROM nodes WHERE agent_status = 'online'");
    PGresult *r;
    int rc = store_query(st, &q, 0, NULL, &r, err);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++)
        fn(arg, PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10));
    PQclear(r);
    return 0;
}
