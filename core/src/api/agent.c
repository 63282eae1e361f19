/*
 * Collector agents: enrollment tokens, enrollment, signed metric batches,
 * and the metric series of nodes and containers. See docs/collector.md for
 * the wire format.
 *
 *   POST /api/v1/nodes/{id}/enroll-token   {"ttl_seconds": 3600}        nodes:write
 *   POST /api/v1/nodes/{id}/provision-command {"ttl_seconds"?, "core_url"?} nodes:write
 *   POST /api/v1/agent/enroll              {"token": …, "public_key": hex}  public
 *   POST /api/v1/agent/metrics             signed batch                  agent
 *   GET  /api/v1/nodes/{id}/metrics?from=&to=&step=                      metrics:read
 *   GET  /api/v1/nodes/{id}/containers/{cid}/metrics?from=&to=&step=     metrics:read
 *
 * A node exists for these routes when its stream holds a node.registered
 * event (the nodes table is another module's; no foreign key on purpose).
 */
#include "api.h"
#include "docker_api.h"
#include "../auth/auth.h"

#include "../metrics/metrics.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_TTL_DEFAULT    3600
#define TOKEN_TTL_MAX        (7 * 86400)
#define BATCH_MAX_SAMPLES    1000
#define BATCH_MAX_CONTAINERS 2000
#define STALE_AFTER_MS       (5 * 60 * 1000)
#define SAMPLE_MAX_AGE_MS    (2LL * 86400 * 1000) /* partitions exist two days back */
#define MAX_POINTS           2000

/* Enrolled keys, cached for KEY_CACHE_TTL_MS so a batch costs one database
 * round trip, not two. Only found keys are cached (a fresh enrollment works
 * at once); a revocation takes effect within the TTL. */
#define KEY_CACHE_SLOTS  4096
#define KEY_CACHE_TTL_MS 30000
struct key_slot {
    char fingerprint[65];
    struct store_agent_key key;
    int64_t at_ms;
};
static struct key_slot key_cache[KEY_CACHE_SLOTS];
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int agent_key_get(struct store *st, const char *fp, struct store_agent_key *out, struct sb_err *err)
{
    unsigned slot = (unsigned)strtoul((char[4]){fp[0], fp[1], fp[2], 0}, NULL, 16) % KEY_CACHE_SLOTS;
    int64_t now = time_mono_ms();
    pthread_mutex_lock(&key_cache_lock);
    struct key_slot *k = &key_cache[slot];
    bool hit = k->at_ms && now - k->at_ms < KEY_CACHE_TTL_MS && strcmp(k->fingerprint, fp) == 0;
    if (hit)
        *out = k->key;
    pthread_mutex_unlock(&key_cache_lock);
    if (hit)
        return 0;
    int rc = store_agent_key_get(st, fp, out, err);
    if (rc == 0 && !out->revoked) {
        pthread_mutex_lock(&key_cache_lock);
        sb_strlcpy(k->fingerprint, fp, sizeof k->fingerprint);
        k->key = *out;
        k->at_ms = now;
        pthread_mutex_unlock(&key_cache_lock);
    }
    return rc;
}

/* 404 unless the node exists and the caller may see it (label scope); 503
 * when the store cannot be read. */
static int require_node(struct http_request *req, const char *id)
{
    json_t *node = NULL;
    if (api_node_load_visible(req, id, &node))
        return -1;
    json_decref(node);
    return 0;
}

/* Issues a one-time enroll token for the node in the path (404 unless
 * visible): reads "ttl_seconds" from the body, appends
 * agent.enroll_token_issued (digest only). 0 with token and expires filled
 * (the caller wipes token), or -1 after replying. */
static int issue_enroll_token(struct http_request *req, const char *node_id, char token[72], char expires[40])
{
    if (require_node(req, node_id))
        return -1;
    struct sb_err err = {0};
    json_t *ttl = json_object_get(req->json, "ttl_seconds");
    json_int_t ttl_s = TOKEN_TTL_DEFAULT;
    if (ttl) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) < 60 ||
            json_integer_value(ttl) > TOKEN_TTL_MAX) {
            sb_field_error(&err, "ttl_seconds", "ttl_seconds is an integer from 60 to %d", TOKEN_TTL_MAX);
            api_fail(req, &err);
            return -1;
        }
        ttl_s = json_integer_value(ttl);
    }
    char secret[65], digest[65], stream[96];
    random_hex(secret, 32);
    snprintf(token, 72, "sbe_%s", secret);
    auth_token_sha256(token, digest);
    time_format_rfc3339(time_now_us() + (int64_t)ttl_s * 1000000, expires, 40);
    snprintf(stream, sizeof stream, "node/%s", node_id);
    /* The event names the token by its digest only; the token itself is
     * shown once, in the reply. */
    json_t *data =
        json_pack("{s:s, s:s, s:s}", "node_id", node_id, "token_sha256", digest, "expires_at", expires);
    struct event_new ev = {
        .stream = stream, .type = "agent.enroll_token_issued", .data = data, .outcome = "success"};
    api_actor(req, &ev.actor);
    int64_t seq;
    int rc = store_append(((struct app *)req->app)->store, &ev, &seq, &err);
    json_decref(data);
    sodium_memzero(secret, sizeof secret);
    if (rc) {
        sodium_memzero(token, 72);
        api_fail(req, &err);
        return -1;
    }
    return 0;
}

/* A URL that can be written inside single quotes in a shell command and as
 * an inventory value: http(s)://, then letters, digits and ".-_:/[]%",
 * at most 200 characters, no trailing '/'. */
static bool core_url_ok(const char *s, size_t len)
{
    if (len > 200 || strlen(s) != len)
        return false;
    size_t skip = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (!skip || len == skip || s[len - 1] == '/')
        return false;
    for (size_t i = skip; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              strchr(".-_:/[]%", s[i])))
            return false;
    return true;
}

/* The core's URL for a node to reach: the body's "core_url", else the
 * address the caller reached the core at (Host). 0 with url filled; with
 * `required`, -1 after replying when neither is usable; otherwise 1 when
 * there is none. */
static int core_url_of(struct http_request *req, bool required, char url[256])
{
    struct sb_err err = {0};
    json_t *cu = json_object_get(req->json, "core_url");
    if (cu) {
        if (!json_is_string(cu) || !core_url_ok(json_string_value(cu), json_string_length(cu))) {
            sb_field_error(&err, "core_url",
                           "core_url is http:// or https:// then a host, port and path (letters, digits, "
                           "'.-_:/[]%%'), without a trailing '/', at most 200 characters");
            api_fail(req, &err);
            return -1;
        }
        sb_strlcpy(url, json_string_value(cu), 256);
        return 0;
    }
    const char *host = http_header(req, "Host");
    snprintf(url, 256, "http://%s", host ? host : "");
    if (host && core_url_ok(url, strlen(url)))
        return 0;
    if (!required)
        return 1;
    sb_field_error(&err, "core_url", "core_url is required (the request's Host cannot be used)");
    api_fail(req, &err);
    return -1;
}

/* POST /api/v1/nodes/{id}/enroll-token {"ttl_seconds"?, "core_url"?}: the
 * one-time token and the exact command that enrolls a collector with it
 * (when the core's URL is known: given, or the request's Host). */
void api_agent_enroll_token(struct http_request *req)
{
    static const char *const allowed[] = {"ttl_seconds", "core_url", NULL};
    if (api_check_fields(req, allowed))
        return;
    char url[256];
    int have_url = core_url_of(req, false, url);
    if (have_url < 0)
        return;
    const char *node_id = http_param(req, "id");
    char token[72], expires[40];
    if (issue_enroll_token(req, node_id, token, expires))
        return;
    json_t *o = json_pack("{s:s, s:s, s:s}", "node_id", node_id, "token", token, "expires_at", expires);
    if (have_url == 0) {
        /* The URL passed core_url_ok: it needs no quoting beyond the
         * single quotes; the token is hex. */
        char cmd[512];
        snprintf(cmd, sizeof cmd, "serverbox-collector enroll --core '%s' --token %s", url, token);
        json_object_set_new(o, "core_url", json_string(url));
        json_object_set_new(o, "command", json_string(cmd));
        sodium_memzero(cmd, sizeof cmd);
    }
    http_reply_json(req, 201, o);
    sodium_memzero(token, sizeof token);
}

void api_node_provision_command(struct http_request *req)
{
    static const char *const allowed[] = {"ttl_seconds", "core_url", NULL};
    if (api_check_fields(req, allowed))
        return;
    char url[256];
    if (core_url_of(req, true, url))
        return;
    const char *node_id = http_param(req, "id");
    json_t *node = NULL;
    if (api_node_load_visible(req, node_id, &node))
        return;
    char token[72], expires[40];
    if (issue_enroll_token(req, node_id, token, expires)) {
        json_decref(node);
        return;
    }
    /* name, host and ssh_user were checked at registration: letters,
     * digits and ".-_:" only, so they need no quoting in the line or in
     * the shell's single quotes. */
    const char *name = json_string_value(json_object_get(node, "name"));
    char line[1024], cmd[2048];
    snprintf(line, sizeof line,
             "%s ansible_host=%s ansible_port=%lld ansible_user=%s sbx_node_id=%s sbx_core_url=%s "
             "sbx_enroll_token=%s",
             name, json_string_value(json_object_get(node, "host")),
             (long long)json_integer_value(json_object_get(node, "port")),
             json_string_value(json_object_get(node, "ssh_user")), node_id, url, token);
    snprintf(cmd, sizeof cmd,
             "cd ansible && printf '%%s\\n' '[serverbox_nodes]' '%s' > inventory-%s.ini && "
             "ansible-playbook -i inventory-%s.ini nodes.yml",
             line, name, name);
    http_reply_json(req, 201,
                    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "node_id", node_id, "token", token,
                              "expires_at", expires, "core_url", url, "inventory_line", line, "command",
                              cmd));
    json_decref(node);
    sodium_memzero(token, sizeof token);
    sodium_memzero(line, sizeof line);
    sodium_memzero(cmd, sizeof cmd);
}

/* Denied agent requests are events, but a flood of forged batches must not
 * flood the log: at most a few per second are recorded, the rest counted
 * into the next one. */
static atomic_long denied_suppressed;
static atomic_llong denied_window_start;
static atomic_int denied_in_window;

static void denied_event(struct http_request *req, const char *type, const char *node_id,
                         const char *fingerprint, const char *reason)
{
    int64_t now = time_mono_ms();
    long long start = atomic_load(&denied_window_start);
    if (now - start >= 1000 && atomic_compare_exchange_strong(&denied_window_start, &start, now))
        atomic_store(&denied_in_window, 0);
    if (atomic_fetch_add(&denied_in_window, 1) >= 5) {
        atomic_fetch_add(&denied_suppressed, 1);
        return;
    }
    char stream[96];
    snprintf(stream, sizeof stream, "%s%s", node_id ? "node/" : "agent/", node_id ? node_id : "unknown");
    json_t *data = json_pack("{s:s, s:I}", "reason", reason, "suppressed_before",
                             (json_int_t)atomic_exchange(&denied_suppressed, 0));
    if (fingerprint)
        json_object_set_new(data, "fingerprint", json_string(fingerprint));
    if (node_id)
        json_object_set_new(data, "node_id", json_string(node_id));
    struct event_new ev = {
        .stream = stream,
        .type = type,
        .data = data,
        .actor = {.kind = "agent", .id = fingerprint, .name = "collector", .ip = req->client_ip},
        .outcome = "denied"};
    struct sb_err err = {0};
    int64_t seq;
    if (store_append(((struct app *)req->app)->store, &ev, &seq, &err))
        log_warn("denied agent request not recorded", "detail=\"%s\"", err.msg);
    json_decref(data);
}

void api_agent_enroll(struct http_request *req)
{
    static const char *const allowed[] = {"token", "public_key", "hostname", "version", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct sb_err err = {0};
    struct app *app = req->app;
    const char *token = json_string_value(json_object_get(req->json, "token"));
    const char *pk_hex = json_string_value(json_object_get(req->json, "public_key"));
    if (!token || !*token || strlen(token) > 200) {
        sb_field_error(&err, "token", "token is required");
        api_fail(req, &err);
        return;
    }
    uint8_t pk[32];
    if (!pk_hex || hex_decode(pk_hex, pk, 32)) {
        sb_field_error(&err, "public_key", "public_key is an Ed25519 public key as 64 hex characters");
        api_fail(req, &err);
        return;
    }
    char digest[65];
    auth_token_sha256(token, digest);
    struct store_enroll_token t;
    int rc = store_enroll_token_get(app->store, digest, &t, &err);
    if (rc == SB_ENOTFOUND || (rc == 0 && (t.used || t.expires_us < time_now_us()))) {
        const char *why = rc ? "unknown_token" : t.used ? "token_used" : "token_expired";
        denied_event(req, "agent.enroll_refused", rc ? NULL : t.node_id, NULL, why);
        http_reply_error(req, 401, "invalid_token", "the enrollment token is unknown, used or expired");
        return;
    }
    if (rc) {
        api_fail(req, &err);
        return;
    }
    char fingerprint[65], stream[96];
    uint8_t fp_bin[32];
    crypto_hash_sha256(fp_bin, pk, 32);
    hex_encode(fp_bin, 32, fingerprint);
    char pk_lower[65];
    hex_encode(pk, 32, pk_lower);
    snprintf(stream, sizeof stream, "node/%s", t.node_id);
    json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "node_id", t.node_id, "fingerprint", fingerprint,
                             "public_key", pk_lower, "token_sha256", digest);
    const char *host = json_string_value(json_object_get(req->json, "hostname"));
    if (host && strlen(host) <= 253)
        json_object_set_new(data, "hostname", json_string(host));
    struct event_new ev = {
        .stream = stream,
        .type = "agent.enrolled",
        .data = data,
        .actor = {.kind = "agent", .id = fingerprint, .name = "collector", .ip = req->client_ip},
        .outcome = "success"};
    int64_t seq;
    rc = store_append(app->store, &ev, &seq, &err);
    json_decref(data);
    if (rc == SB_ECONFLICT) {
        /* Another enrollment consumed the token first, or the key is enrolled already. */
        http_reply_error(req, 401, "invalid_token", "the enrollment token is unknown, used or expired");
        return;
    }
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 201, json_pack("{s:s, s:s}", "node_id", t.node_id, "fingerprint", fingerprint));
}

static double num(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int64_t inum(json_t *o, const char *k1, const char *k2)
{
    double d = num(o, k1, k2);
    return isfinite(d) && d >= 0 && d < 9e18 ? (int64_t)d : -1;
}

static void reply_unauthorized(struct http_request *req, const char *node_id, const char *fp,
                               const char *reason, const char *message)
{
    denied_event(req, "agent.batch_refused", node_id, fp, reason);
    http_reply_error(req, 401, reason, "%s", message);
}

/* The samples of a batch as the store takes them; pure (the fuzzer's). */
int api_agent_batch_decode(json_t *samples, int64_t now_ms, struct api_batch *out)
{
    memset(out, 0, sizeof *out);
    size_t n = json_array_size(samples), ns = 0, nc = 0, nc_max = 0, skipped = 0;
    size_t i;
    json_t *x;
    json_array_foreach(samples, i, x)
    {
        nc_max += json_array_size(json_object_get(x, "containers"));
    }
    if (nc_max > BATCH_MAX_CONTAINERS)
        nc_max = BATCH_MAX_CONTAINERS;
    struct store_metric_sample *s = calloc(n ? n : 1, sizeof *s);
    struct store_container_sample *cs = calloc(nc_max ? nc_max : 1, sizeof *cs);
    if (!s || !cs) {
        free(s);
        free(cs);
        return SB_ENOMEM;
    }
    json_t *last = NULL;
    int64_t oldest_ms = 0;
    json_array_foreach(samples, i, x)
    {
        int64_t ts = inum(x, "ts", NULL);
        if (!json_is_object(x) || ts < now_ms - SAMPLE_MAX_AGE_MS || ts > now_ms + STALE_AFTER_MS) {
            skipped++;
            continue;
        }
        struct store_metric_sample *o = &s[ns++];
        o->ts_ms = ts;
        if (!oldest_ms || ts < oldest_ms)
            oldest_ms = ts;
        o->cpu_pct = num(x, "cpu", "total");
        o->mem_total = inum(x, "mem", "total");
        o->mem_used = inum(x, "mem", "used");
        o->swap_total = inum(x, "swap", "total");
        o->swap_used = inum(x, "swap", "used");
        o->load1 = num(x, "load1", NULL);
        o->load5 = num(x, "load5", NULL);
        o->load15 = num(x, "load15", NULL);
        o->procs = inum(x, "procs", NULL);
        o->uptime_s = inum(x, "uptime", NULL);
        o->disk_total = inum(x, "disk_total", "total");
        o->disk_used = inum(x, "disk_total", "used");
        o->disk_read_bps = num(x, "io_total", "read_bps");
        o->disk_write_bps = num(x, "io_total", "write_bps");
        o->net_rx_bps = num(x, "net_total", "rx_bps");
        o->net_tx_bps = num(x, "net_total", "tx_bps");
        /* Stored whole for per-core, per-disk and per-interface views;
         * encoded here, on this request's worker, not by the group's leader. */
        o->detail = json_dumps(x, JSON_COMPACT);
        last = x;
        size_t k;
        json_t *c;
        json_array_foreach(json_object_get(x, "containers"), k, c)
        {
            const char *id = json_string_value(json_object_get(c, "id"));
            const char *name = json_string_value(json_object_get(c, "name"));
            if (!id || strlen(id) > 128 || nc == nc_max)
                continue;
            struct store_container_sample *q = &cs[nc++];
            q->ts_ms = ts;
            q->id = id;
            q->name = name && strlen(name) <= 256 ? name : "";
            q->cpu_pct = num(c, "cpu", NULL);
            q->mem_used = inum(c, "mem", NULL);
            q->mem_limit = inum(c, "mem_limit", NULL);
            q->net_rx_bps = num(c, "net_rx_bps", NULL);
            q->net_tx_bps = num(c, "net_tx_bps", NULL);
            q->blk_read_bps = num(c, "blk_read_bps", NULL);
            q->blk_write_bps = num(c, "blk_write_bps", NULL);
        }
    }
    *out = (struct api_batch){
        .s = s, .ns = ns, .cs = cs, .nc = nc, .skipped = skipped, .last = last, .oldest_ms = oldest_ms};
    return 0;
}

void api_agent_batch_release(struct api_batch *b)
{
    for (size_t k = 0; k < b->ns; k++)
        free((char *)b->s[k].detail);
    free(b->s);
    free(b->cs);
    memset(b, 0, sizeof *b);
}

void api_agent_metrics(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *fp = http_header(req, "X-Serverbox-Key");
    const char *sig_hex = http_header(req, "X-Serverbox-Signature");
    uint8_t fp_bin[32], sig[64];
    if (!fp || !sig_hex || hex_decode(fp, fp_bin, 32) || hex_decode(sig_hex, sig, 64)) {
        reply_unauthorized(req, NULL, NULL, "unsigned",
                           "X-Serverbox-Key and X-Serverbox-Signature are required");
        return;
    }
    char fp_lower[65]; /* the header may use either case */
    hex_encode(fp_bin, 32, fp_lower);
    struct store_agent_key key;
    int rc = agent_key_get(app->store, fp_lower, &key, &err);
    if (rc == SB_ENOTFOUND || (rc == 0 && key.revoked)) {
        reply_unauthorized(req, rc ? NULL : key.node_id, fp_lower, rc ? "unknown_key" : "revoked_key",
                           "the key is not enrolled");
        return;
    }
    if (rc) {
        api_fail(req, &err);
        return;
    }
    if (crypto_sign_verify_detached(sig, (const unsigned char *)req->body.data, req->body.len,
                                    key.public_key)) {
        reply_unauthorized(req, key.node_id, fp_lower, "bad_signature", "the signature does not verify");
        return;
    }
    static const char *const allowed[] = {"v", "node_id", "seq", "sent_at", "interval_ms", "samples", NULL};
    if (api_check_fields(req, allowed))
        return;
    json_t *j = req->json;
    const char *node_id = json_string_value(json_object_get(j, "node_id"));
    json_t *seqv = json_object_get(j, "seq"), *sent = json_object_get(j, "sent_at");
    json_t *samples = json_object_get(j, "samples");
    if (!node_id || strcmp(node_id, key.node_id) != 0) {
        sb_field_error(&err, "node_id", "node_id does not match the enrolled key");
        api_fail(req, &err);
        return;
    }
    if (!json_is_integer(seqv) || json_integer_value(seqv) < 1) {
        sb_field_error(&err, "seq", "seq is a positive integer");
        api_fail(req, &err);
        return;
    }
    if (!json_is_integer(sent)) {
        sb_field_error(&err, "sent_at", "sent_at is milliseconds since the epoch");
        api_fail(req, &err);
        return;
    }
    int64_t now_ms = time_now_us() / 1000;
    if (llabs((long long)(json_integer_value(sent) - now_ms)) > STALE_AFTER_MS) {
        reply_unauthorized(req, key.node_id, fp_lower, "stale_batch",
                           "sent_at is more than five minutes from the core's clock");
        return;
    }
    if (!json_is_array(samples) || json_array_size(samples) > BATCH_MAX_SAMPLES) {
        sb_field_error(&err, "samples", "samples is an array of at most %d samples", BATCH_MAX_SAMPLES);
        api_fail(req, &err);
        return;
    }
    int64_t interval_ms = json_integer_value(json_object_get(j, "interval_ms"));
    struct api_batch b;
    if (api_agent_batch_decode(samples, now_ms, &b)) {
        http_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    bool duplicate = false;
    rc = store_metrics_ingest(app->store, key.node_id, json_integer_value(seqv), b.s, b.ns, b.cs, b.nc,
                              &duplicate, &err);
    json_t *last = b.last;
    int64_t oldest_ms = b.oldest_ms;
    size_t ns = b.ns, skipped = b.skipped;
    api_agent_batch_release(&b);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    if (!duplicate)
        metrics_record(app->metrics, key.node_id, interval_ms, last);
    if (!duplicate && ns)
        metrics_note_oldest(app->metrics, oldest_ms);
    http_reply_json(req, 200,
                    json_pack("{s:s, s:I, s:I, s:I}", "status", duplicate ? "duplicate" : "stored", "seq",
                              json_integer_value(seqv), "samples", (json_int_t)(duplicate ? 0 : ns),
                              "skipped", (json_int_t)skipped));
}

/* from/to: RFC 3339 or integer milliseconds since the epoch. */
static int time_param(struct http_request *req, const char *name, int64_t def, int64_t *out)
{
    const char *v = http_query(req, name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    char *end;
    long long ms = strtoll(v, &end, 10);
    if (*end == '\0' && ms >= 0) {
        *out = ms;
        return 0;
    }
    int64_t us;
    if (time_parse_rfc3339(v, &us) == 0) {
        *out = us / 1000;
        return 0;
    }
    http_reply_error(req, 400, "bad_parameter", "%s is RFC 3339 or milliseconds since the epoch", name);
    return -1;
}

static void series(struct http_request *req, const char *container_id)
{
    struct app *app = req->app;
    const char *node_id = http_param(req, "id");
    if (require_node(req, node_id))
        return;
    if (container_id && !api_docker_ref_ok(container_id, 128)) {
        http_reply_error(req, 404, "not_found", "no such container");
        return;
    }
    int64_t now = time_now_us() / 1000, from, to;
    long step;
    if (time_param(req, "to", now, &to) || time_param(req, "from", to - 3600 * 1000, &from) ||
        http_query_int(req, "step", 0, 0, 86400 * 30, &step))
        return;
    if (from >= to) {
        http_reply_error(req, 400, "bad_parameter", "from must be before to");
        return;
    }
    /* Downsample: never more than MAX_POINTS buckets, whatever was asked. */
    long min_step = (long)((to - from + MAX_POINTS * 1000LL - 1) / (MAX_POINTS * 1000LL));
    if (step < min_step)
        step = min_step;
    if (step < 1)
        step = 1;
    int raw_days = (int)config_get_int(app->cfg, "metrics-raw-days");
    bool rollup = step >= 60 || from < now - (int64_t)raw_days * 86400 * 1000;
    if (rollup && step < 60)
        step = 60;
    json_t *points = NULL;
    struct sb_err err = {0};
    if (store_metrics_query(app->store, node_id, container_id, from, to, (int)step, rollup, &points, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *out = json_pack("{s:s, s:I, s:I, s:I, s:s, s:o}", "node_id", node_id, "from", (json_int_t)from,
                            "to", (json_int_t)to, "step", (json_int_t)step, "resolution",
                            rollup ? "1m" : "raw", "points", points);
    if (container_id) {
        json_object_set_new(out, "container_id", json_string(container_id));
    } else {
        json_t *latest = metrics_latest(app->metrics, node_id);
        json_object_set_new(out, "latest", latest ? latest : json_null());
    }
    http_reply_json(req, 200, out);
}

void api_node_metrics(struct http_request *req)
{
    series(req, NULL);
}

void api_container_metrics(struct http_request *req)
{
    series(req, http_param(req, "cid"));
}
