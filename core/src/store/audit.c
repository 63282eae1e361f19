/*
 * The audit API's queries: filtered, cursor-paged reads of the event log,
 * the chain head, and signed checkpoints.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every filter is a parameter; NULL disables it. A type ending in '.' or
 * '*' is a prefix. */
static struct store_stmt q_audit =
    STORE_STMT("SELECT seq, body, encode(hash, 'hex') FROM events WHERE seq > $1::bigint "
               "AND ($2::text IS NULL OR (body::jsonb -> 'actor' ->> 'id') = $2 OR (body::jsonb -> "
               "'actor' ->> 'name') = $2) "
               "AND ($3::text IS NULL OR type = $3 OR (right($3, 1) IN ('.', '*') AND "
               "     left(type, length($3) - (right($3, 1) = '*')::int) = rtrim($3, '*'))) "
               "AND ($4::text IS NULL OR stream = $4) "
               "AND ($5::text IS NULL OR outcome = $5) "
               "AND ($6::timestamptz IS NULL OR occurred_at >= $6::timestamptz) "
               "AND ($7::timestamptz IS NULL OR occurred_at < $7::timestamptz) "
               "AND ($8::text IS NULL OR actor_kind = $8) "
               "ORDER BY seq LIMIT $9::int");

static int audit_page(struct store *st, const struct store_audit_filter *f, PGresult **r, struct sb_err *err)
{
    char after[24], limit[16];
    snprintf(after, sizeof after, "%lld", (long long)f->after_seq);
    snprintf(limit, sizeof limit, "%d", f->limit);
    const char *p[9] = {after,   f->actor, f->type,       f->stream, f->outcome,
                        f->from, f->to,    f->actor_kind, limit};
    return store_query(st, &q_audit, 9, p, r, err);
}

int store_audit_query(struct store *st, const struct store_audit_filter *f, json_t **out, struct sb_err *err)
{

    PGresult *r;
    int rc = audit_page(st, f, &r, err);
    if (rc)
        return rc;
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *ev = json_loadb(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), 0, NULL);
        if (!ev)
            continue;
        json_object_set_new(ev, "hash", json_string(PQgetvalue(r, i, 2)));
        json_array_append_new(arr, ev);
    }
    PQclear(r);
    *out = arr;
    return 0;
}

/* A full page never changes: the log is append-only and its seqs commit in
 * order, so the first `limit` matches after a cursor are fixed once there are
 * that many. The text of recent full pages is kept (issue #23: the query was
 * the cost of an audit read), bounded in count and size. */
#define PAGE_ENTRIES   32
#define PAGE_BYTES_MAX (128 * 1024)

struct page_entry {
    const struct store *st;
    char *key; /* NULL: free */
    char *text;
    size_t len;
    int count;
    int64_t last_seq;
    uint64_t used;
};

static struct {
    pthread_mutex_t lock;
    uint64_t tick;
    struct page_entry e[PAGE_ENTRIES];
} pages = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char *page_key(const struct store_audit_filter *f)
{
    const char *part[7] = {f->actor, f->type, f->stream, f->outcome, f->actor_kind, f->from, f->to};
    struct buf k;
    buf_init(&k, 0);
    int rc = buf_printf(&k, "%lld/%d", (long long)f->after_seq, f->limit);
    for (size_t i = 0; i < 7 && rc == 0; i++) {
        rc = buf_putc(&k, part[i] ? '\x1f' : '\x1e');
        if (rc == 0 && part[i])
            rc = buf_puts(&k, part[i]);
    }
    if (rc) { /* a truncated key could name another query */
        buf_release(&k);
        return NULL;
    }
    size_t len;
    return buf_detach(&k, &len);
}

static bool page_get(const struct store *st, const char *key, struct buf *out, int *count, int64_t *last_seq)
{
    bool hit = false;
    pthread_mutex_lock(&pages.lock);
    for (size_t i = 0; i < PAGE_ENTRIES && !hit; i++) {
        struct page_entry *e = &pages.e[i];
        if (e->key && e->st == st && strcmp(e->key, key) == 0 && buf_append(out, e->text, e->len) == 0) {
            *count = e->count;
            *last_seq = e->last_seq;
            e->used = ++pages.tick;
            hit = true;
        }
    }
    pthread_mutex_unlock(&pages.lock);
    return hit;
}

/* Takes key. */
static void page_put(const struct store *st, char *key, const char *text, size_t len, int count,
                     int64_t last_seq)
{
    char *copy = malloc(len + 1);
    if (!copy) {
        free(key);
        return;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    pthread_mutex_lock(&pages.lock);
    struct page_entry *slot = &pages.e[0];
    for (size_t i = 0; i < PAGE_ENTRIES; i++) {
        struct page_entry *e = &pages.e[i];
        if (!e->key || (slot->key && e->used < slot->used))
            slot = e;
    }
    free(slot->key);
    free(slot->text);
    *slot = (struct page_entry){st, key, copy, len, count, last_seq, ++pages.tick};
    pthread_mutex_unlock(&pages.lock);
}

static int audit_raw_query(struct store *st, const struct store_audit_filter *f, struct buf *out, int *count,
                           int64_t *last_seq, struct sb_err *err);

int store_audit_query_raw(struct store *st, const struct store_audit_filter *f, struct buf *out, int *count,
                          int64_t *last_seq, struct sb_err *err)
{
    char *key = page_key(f);
    if (key && page_get(st, key, out, count, last_seq)) {
        free(key);
        return 0;
    }
    size_t start = out->len;
    int rc = audit_raw_query(st, f, out, count, last_seq, err);
    if (rc == 0 && key && *count == f->limit && out->len - start <= PAGE_BYTES_MAX)
        page_put(st, key, out->data + start, out->len - start, *count, *last_seq);
    else
        free(key);
    return rc;
}

static int audit_raw_query(struct store *st, const struct store_audit_filter *f, struct buf *out, int *count,
                           int64_t *last_seq, struct sb_err *err)
{
    *count = 0;
    PGresult *r;
    int rc = audit_page(st, f, &r, err);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        /* A stored body is one compact JSON object (it is what was hashed):
         * the hash goes in before its closing brace. */
        const char *body = PQgetvalue(r, i, 1);
        size_t len = (size_t)PQgetlength(r, i, 1);
        if (len < 2 || body[0] != '{' || body[len - 1] != '}') {
            rc = sb_error(err, SB_EINTERNAL, "event %s has a malformed body", PQgetvalue(r, i, 0));
            break;
        }
        if ((*count && buf_putc(out, ',')) || buf_append(out, body, len - 1) ||
            buf_printf(out, "%s\"hash\":\"%s\"}", len > 2 ? "," : "", PQgetvalue(r, i, 2))) {
            rc = sb_error(err, SB_ENOMEM, "out of memory");
            break;
        }
        (*count)++;
        *last_seq = sb_int64(PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return rc;
}

int store_head(struct store *st, int64_t *seq, uint8_t hash[32], struct sb_err *err)
{
    static struct store_stmt q =
        STORE_STMT("SELECT seq, encode(hash, 'hex') FROM events ORDER BY seq DESC LIMIT 1");
    PGresult *r;
    int rc = store_query(st, &q, 0, NULL, &r, err);
    if (rc)
        return rc;
    *seq = 0;
    memset(hash, 0, 32);
    if (PQntuples(r) == 1) {
        *seq = sb_int64(PQgetvalue(r, 0, 0));
        hex_decode(PQgetvalue(r, 0, 1), hash, 32);
    }
    PQclear(r);
    return 0;
}

int store_checkpoint_insert(struct store *st, const struct store_checkpoint *cp, struct sb_err *err)
{
    static struct store_stmt q = STORE_STMT(
        "INSERT INTO checkpoints (seq, hash, signed_at, signature, public_key) VALUES ($1::bigint, "
        "decode($2, 'hex'), to_timestamp($3::double precision / 1000000), decode($4, 'hex'), decode($5, "
        "'hex')) "
        "ON CONFLICT (seq) DO NOTHING");
    char seq[24], at[24], hash[65], sig[129], pk[65];
    snprintf(seq, sizeof seq, "%lld", (long long)cp->seq);
    snprintf(at, sizeof at, "%lld", (long long)cp->signed_us);
    hex_encode(cp->hash, 32, hash);
    hex_encode(cp->signature, 64, sig);
    hex_encode(cp->public_key, 32, pk);
    const char *p[5] = {seq, hash, at, sig, pk};
    PGresult *r;
    int rc = store_query(st, &q, 5, p, &r, err);
    if (rc)
        return rc;
    PQclear(r);
    return 0;
}

int store_checkpoint_latest(struct store *st, struct store_checkpoint *cp, struct sb_err *err)
{
    /* signed_at is read back as stored (microseconds), so the signature
     * made over the RFC 3339 text still verifies. */
    static struct store_stmt q = STORE_STMT(
        "SELECT seq, encode(hash, 'hex'), (extract(epoch FROM signed_at) * 1000000)::bigint, "
        "encode(signature, 'hex'), encode(public_key, 'hex') FROM checkpoints ORDER BY seq DESC LIMIT 1");
    PGresult *r;
    int rc = store_query(st, &q, 0, NULL, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return sb_error(err, SB_ENOTFOUND, "no checkpoint yet");
    }
    cp->seq = sb_int64(PQgetvalue(r, 0, 0));
    hex_decode(PQgetvalue(r, 0, 1), cp->hash, 32);
    cp->signed_us = sb_int64(PQgetvalue(r, 0, 2));
    hex_decode(PQgetvalue(r, 0, 3), cp->signature, 64);
    hex_decode(PQgetvalue(r, 0, 4), cp->public_key, 32);
    PQclear(r);
    return 0;
}
