/*
 * The audit API (audit:read): the event log filtered and paged, the chain
 * verified through the daemon's pool, and signed checkpoints.
 *
 * GET /api/v1/audit?actor=&type=&stream=&outcome=&actor_kind=&from=&to=&after=&limit=
 * GET /api/v1/audit/verify
 * GET /api/v1/audit/checkpoint
 *
 * A checkpoint signs "serverbox-checkpoint-v1\n<seq>\n<hash hex>\n<signed_at>\n"
 * with the daemon's Ed25519 key (docs/events.md).
 */
#include "api.h"

#include "../auth/auth.h"
#include "../events/events.h"

#include <stdio.h>
#include <string.h>

static bool valid_filter(const char *v)
{
    if (!v)
        return true;
    size_t n = strlen(v);
    if (n == 0 || n > 200)
        return false;
    for (; *v; v++)
        if ((unsigned char)*v < 0x20)
            return false;
    return true;
}

/* A caller without a node scope sees every entry: the stored bodies go out
 * as they are, never parsed (issue #23). */
static void audit_list_unscoped(struct http_request *req, const struct store_audit_filter *f)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    struct buf out;
    buf_init(&out, 0);
    int count = 0;
    int64_t last = f->after_seq;
    buf_puts(&out, "{\"events\":[");
    if (store_audit_query_raw(app->store, f, &out, &count, &last, &err)) {
        buf_release(&out);
        api_fail(req, &err);
        return;
    }
    /* A full page may have more after it: hand back the cursor. */
    if (count == f->limit)
        buf_printf(&out, "],\"next_after\":%lld}", (long long)last);
    else
        buf_puts(&out, "],\"next_after\":null}");
    size_t len;
    char *body = buf_detach(&out, &len);
    http_reply_take(req, 200, "application/json", body, len);
}

void api_audit_list(struct http_request *req)
{
    struct app *app = req->app;
    static const char *const names[] = {"actor", "type", "stream", "outcome", "actor_kind", "from", "to"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!valid_filter(http_query(req, names[i]))) {
            http_reply_error(req, 400, "bad_parameter",
                             "query parameter '%s' must be 1 to 200 printable characters", names[i]);
            return;
        }
    }
    int64_t t;
    if ((http_query(req, "from") && time_parse_rfc3339(http_query(req, "from"), &t)) ||
        (http_query(req, "to") && time_parse_rfc3339(http_query(req, "to"), &t))) {
        http_reply_error(req, 400, "bad_parameter", "from and to are RFC 3339 times");
        return;
    }
    long after, limit;
    if (http_query_int(req, "after", 0, 0, INT64_MAX / 2, &after) ||
        http_query_int(req, "limit", 100, 1, 1000, &limit))
        return;
    struct store_audit_filter f = {.actor = http_query(req, "actor"),
                                   .type = http_query(req, "type"),
                                   .stream = http_query(req, "stream"),
                                   .outcome = http_query(req, "outcome"),
                                   .actor_kind = http_query(req, "actor_kind"),
                                   .from = http_query(req, "from"),
                                   .to = http_query(req, "to"),
                                   .after_seq = after,
                                   .limit = (int)limit};
    struct sb_err err = {0};
    const struct api_caller *c = req->user;
    if (!c || !c->node_labels || json_object_size(c->node_labels) == 0) {
        audit_list_unscoped(req, &f);
        return;
    }
    json_t *events = json_array();
    /* A node-scoped caller sees the entries about no node and about nodes in
     * its scope (the rule of the event stream): filtered pages may be
     * sparse, so read a few pages at most; the cursor is the last entry
     * read, listed or not. */
    bool more = false;
    int64_t cursor = after;
    for (int pages = 0; pages < 10 && (int)json_array_size(events) < limit; pages++) {
        json_t *page = NULL;
        f.after_seq = cursor;
        f.limit = (int)limit - (int)json_array_size(events);
        if (store_audit_query(app->store, &f, &page, &err)) {
            json_decref(events);
            api_fail(req, &err);
            return;
        }
        size_t i, n = json_array_size(page);
        json_t *ev;
        json_array_foreach(page, i, ev)
        {
            cursor = json_integer_value(json_object_get(ev, "seq"));
            if (events_in_node_scope(app->events, req->user, json_string_value(json_object_get(ev, "stream")),
                                     ev))
                json_array_append(events, ev);
        }
        json_decref(page);
        more = n == (size_t)f.limit;
        if (!more)
            break;
    }
    json_t *o = json_pack("{s:o}", "events", events);
    /* A full page may have more after it: hand back the cursor. */
    json_object_set_new(o, "next_after", more ? json_integer(cursor) : json_null());
    http_reply_json(req, 200, o);
}

void api_audit_verify(struct http_request *req)
{
    struct app *app = req->app;
    struct store_verify_result v;
    struct sb_err err = {0};
    if (store_verify_chain_pool(app->store, &v, &err)) {
        api_fail(req, &err);
        return;
    }
    char hash[65];
    hex_encode(v.head_hash, 32, hash);
    json_t *o = json_pack("{s:b, s:I, s:I, s:s}", "ok", v.first_bad_seq == 0, "checked",
                          (json_int_t)v.checked, "head_seq", (json_int_t)v.head_seq, "head_hash", hash);
    json_object_set_new(o, "first_bad_seq", v.first_bad_seq ? json_integer(v.first_bad_seq) : json_null());
    if (v.first_bad_seq)
        json_object_set_new(o, "reason", json_string(v.reason));
    http_reply_json(req, 200, o);
}

/* A checkpoint as GET /audit/checkpoint answers it (and as backup
 * repositories keep it). */
static json_t *checkpoint_json(const struct store_checkpoint *cp)
{
    char hash[65], at[40], sig[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)],
        pk[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    hex_encode(cp->hash, 32, hash);
    time_format_rfc3339(cp->signed_us, at, sizeof at);
    sodium_bin2base64(sig, sizeof sig, cp->signature, 64, sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(pk, sizeof pk, cp->public_key, 32, sodium_base64_VARIANT_ORIGINAL);
    struct buf msg;
    buf_init(&msg, 512);
    auth_checkpoint_message(cp->seq, cp->hash, at, &msg);
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)cp->seq, "hash", hash,
                          "signed_at", at, "signature", sig, "public_key", pk, "algorithm", "ed25519",
                          "message", msg.data);
    buf_release(&msg);
    return o;
}

/* A signed checkpoint of the head: the latest stored one when it covers
 * the head, else a new one, stored when `keep` (and then written to every
 * backup repository too: checkpoints off the box, backups/README.md). */
static int checkpoint_make(struct app *app, struct store_checkpoint *out, bool keep, struct sb_err *err);

int api_audit_checkpoint(struct app *app, struct store_checkpoint *out, struct sb_err *err)
{
    return checkpoint_make(app, out, true, err);
}

static int checkpoint_make(struct app *app, struct store_checkpoint *out, bool keep, struct sb_err *err)
{
    int64_t seq;
    uint8_t hash[32];
    int rc = store_head(app->store, &seq, hash, err);
    if (rc)
        return rc;
    rc = store_checkpoint_latest(app->store, out, err);
    if (rc == 0 && out->seq >= seq)
        return 0;
    if (rc && rc != SB_ENOTFOUND)
        return rc;
    memset(out, 0, sizeof *out);
    out->seq = seq;
    memcpy(out->hash, hash, 32);
    out->signed_us = time_now_us();
    char at[40];
    time_format_rfc3339(out->signed_us, at, sizeof at);
    struct buf msg;
    buf_init(&msg, 512);
    auth_checkpoint_message(seq, hash, at, &msg);
    crypto_sign_detached(out->signature, NULL, (const unsigned char *)msg.data, msg.len, app->signer->sk);
    memcpy(out->public_key, app->signer->pk, 32);
    buf_release(&msg);
    if (!keep)
        return 0;
    rc = store_checkpoint_insert(app->store, out, err);
    if (rc == 0 && app->backups.jobs) {
        json_t *doc = checkpoint_json(out);
        struct sb_err e2 = {0};
        if (backups_checkpoint_publish(&app->backups, doc, &e2))
            log_warn("audit checkpoint not queued for the backup repositories", "detail=\"%s\"", e2.msg);
        json_decref(doc);
    }
    return rc;
}

void api_audit_checkpoint_get(struct http_request *req)
{
    struct app *app = req->app;
    struct store_checkpoint cp;
    struct sb_err err = {0};
    /* Read-only callers (viewers, guests) never write: they get the latest
     * stored checkpoint, or one signed for them and not stored. */
    const struct api_caller *c = req->user;
    bool keep = c && auth_caller_allows(c, "audit:checkpoint");
    if (checkpoint_make(app, &cp, keep, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, checkpoint_json(&cp));
}
