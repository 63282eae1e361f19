/*
 * Nodes: the registry of hosts reached over SSH, remote commands, and the
 * health checker.
 *
 * POST   /api/v1/nodes              register (connects once to verify)
 * GET    /api/v1/nodes[?label=k=v]  list (label filters, caller's scope)
 * GET    /api/v1/nodes/{id}         one node with its pool figures
 * PATCH  /api/v1/nodes/{id}         change fields (reconnects to verify)
 * DELETE /api/v1/nodes/{id}
 * POST   /api/v1/nodes/{id}/exec    run a command
 * POST   /api/v1/nodes/{id}/check   run the health check now
 *
 * Private keys and passphrases arrive in request bodies, are sealed with
 * the master key at once and stored beside the node (never in events); the
 * clear text lives in wiped buffers for the duration of one connection.
 */
#include "api.h"

#include "../auth/auth.h"
#include "../jobs/jobs.h"

#include "../crypto/crypto.h"
#include "../docker/docker.h"
#include "../events/events.h"
#include "../ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX        16384
#define PASSPHRASE_MAX 1024
#define COMMAND_MAX    65536
#define LABELS_MAX     16
#define LABEL_LEN_MAX  100
#define CHECK_WORKERS  8    /* node health checks at once */
#define GONE_MAX       1024 /* deleted nodes whose labels are remembered */
/* A registration or change probes the node with one connection: a silent
 * port must not hold a worker long (health checks keep the longer one). */
#define PROBE_TIMEOUT_MS 3000
#define NETWORKS_MAX     64

/* The last health check of each node, in memory (checks record events
 * only on a change of status, so the details live here). */
struct check_result {
    char id[37];
    char status[24];
    char reason[256];
    char uname[256];
    char uptime[128];
    int64_t checked_us;
    int64_t duration_ms;
    struct check_result *next;
};

struct check_job {
    json_t *node; /* its row, owned */
    struct check_job *next;
};

struct api_nodes {
    struct app *app;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    pthread_t checker;
    bool checker_running;
    int interval_s;
    /* Checks run on CHECK_WORKERS threads fed by the checker's ticks, so a
     * node that hangs until its connect timeout holds one worker, not the
     * other nodes' checks; a node still being checked is not queued again. */
    pthread_t workers[CHECK_WORKERS];
    int n_workers;
    pthread_cond_t work_cond;
    struct check_job *queue, *queue_tail;
    json_t *checking; /* node id → true while queued or being checked */
    size_t max_output;
    struct check_result *checks;

    /* Node id → labels, for the event bus's visibility rule, which runs on
     * MHD threads for every event and subscriber and so must answer from
     * memory. Reloaded from the projection by the bus's log observer on
     * every node.registered/updated/deleted before streams see the event;
     * a label object in the map is never modified, only replaced. */
    pthread_mutex_t labels_lock;
    json_t *labels;    /* object; NULL until the first load */
    json_t *gone;      /* labels of deleted nodes, so their node.deleted stays visible (bounded) */
    bool labels_stale; /* the last load failed: retry at the next event or check */

    /* Docker on nodes: the local engine for docker = "local", else a bridge
     * to --node-docker-socket over SSH (ssh/bridge.c). */
    struct ssh_bridges *bridges;
    const char *local_docker;  /* --docker-socket */
    const char *remote_docker; /* --node-docker-socket */
    bool watch_events;         /* --node-docker-events */
    json_t *watched;           /* node id → true: engine watchers started (under lock) */
};

/* ---- which addresses nodes may have (--node-allowed-networks) ------------- */

/* Set once by api_nodes_start before any connection, read by the SSH
 * connect of every thread (ssh_set_address_policy). Without the flag every
 * address is allowed but the core's own loopback, link-local (cloud
 * metadata services: 169.254.169.254) and unspecified ones; with it, only
 * its CIDRs ("any" for everything). */
static struct {
    bool any;
    size_t n;
    struct http_cidr allowed[NETWORKS_MAX];
    size_t n_denied;
    struct http_cidr denied[16];
} node_networks;

static bool node_address_allowed(const char *ip)
{
    if (node_networks.any)
        return true;
    if (node_networks.n)
        return http_peer_trusted(ip, node_networks.allowed, node_networks.n);
    return !http_peer_trusted(ip, node_networks.denied, node_networks.n_denied);
}

static int node_networks_load(const struct config *cfg, struct sb_err *err)
{
    static const char *const denied[] = {"loopback", "169.254.0.0/16",    "fe80::/10",         "0.0.0.0/8",
                                         "::/128",   "fd00:ec2::254/128", "100.100.100.200/32"};
    memset(&node_networks, 0, sizeof node_networks);
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        size_t n = 0;
        if (http_cidr_parse(denied[i], node_networks.denied + node_networks.n_denied,
                            16 - node_networks.n_denied, &n, err))
            return err ? err->code : SB_EINVAL;
        node_networks.n_denied += n;
    }
    const char *const *list = NULL;
    size_t n_list = config_get_list(cfg, "node-allowed-networks", &list);
    for (size_t i = 0; i < n_list; i++) {
        if (strcmp(list[i], "any") == 0) {
            node_networks.any = true;
            continue;
        }
        size_t n = 0;
        if (http_cidr_parse(list[i], node_networks.allowed + node_networks.n, NETWORKS_MAX - node_networks.n,
                            &n, err))
            return sb_error(err, SB_EINVAL,
                            "--node-allowed-networks: '%s' is not a CIDR, an address, "
                            "loopback, private or any",
                            list[i]);
        node_networks.n += n;
    }
    ssh_set_address_policy(node_address_allowed);
    return 0;
}

/* ---- validation ---------------------------------------------------------- */

static bool chars_in(const char *s, const char *extra)
{
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(extra, c)))
            return false;
    }
    return true;
}

static int check_name(json_t *v, struct sb_err *err)
{
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) == 0 || json_string_length(v) > 63 ||
        strlen(s) != json_string_length(v) || !chars_in(s, "._-") || s[0] == '.' || s[0] == '-')
        return sb_field_error(
            err, "name",
            "name must be 1 to 63 letters, digits, '.', '_' or '-', not starting with '.' or '-'");
    return 0;
}

static int check_host(json_t *v, struct sb_err *err)
{
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) == 0 || json_string_length(v) > 253 ||
        strlen(s) != json_string_length(v) || !chars_in(s, ".-:") || s[0] == '-' || s[0] == '.')
        return sb_field_error(err, "host",
                              "host must be a host name or an IP address (letters, digits, '.', '-', ':')");
    return 0;
}

static int check_user(json_t *v, struct sb_err *err)
{
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) == 0 || json_string_length(v) > 32 ||
        strlen(s) != json_string_length(v) || !chars_in(s, "._-") || s[0] == '-')
        return sb_field_error(err, "ssh_user", "ssh_user must be 1 to 32 letters, digits, '.', '_' or '-'");
    return 0;
}

static int check_port(json_t *v, struct sb_err *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
        return sb_field_error(err, "port", "port must be a whole number from 1 to 65535");
    return 0;
}

static int check_fingerprint(json_t *v, struct sb_err *err)
{
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) != 50 || strncmp(s, "SHA256:", 7) != 0 || !chars_in(s + 7, "+/"))
        return sb_field_error(
            err, "host_key_fingerprint",
            "host_key_fingerprint must be 'SHA256:' and 43 base64 characters, as ssh-keygen -l "
            "prints it");
    return 0;
}

static int check_docker(json_t *v, struct sb_err *err)
{
    const char *s = json_string_value(v);
    if (!s || (strcmp(s, "local") != 0 && strcmp(s, "ssh") != 0))
        return sb_field_error(err, "docker", "docker must be \"local\" or \"ssh\"");
    return 0;
}

static int check_labels(json_t *labels, struct sb_err *err)
{
    static const struct labels_rule rule = {"labels",      LABELS_MAX, LABEL_LEN_MAX,
                                            LABEL_LEN_MAX, "._/-",     false};
    return labels_check(labels, &rule, err);
}

static int check_secret(json_t *v, const char *field, size_t max, struct sb_err *err)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return sb_field_error(err, field, "%s must be a non-empty string of at most %zu bytes", field, max);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static void docker_events_follow(struct app *app, const char *id, json_t *node);

/* Appends an event made by this request; data is borrowed. */
static int record(struct http_request *req, const char *id, const char *type, json_t *data,
                  const char *outcome, struct sb_err *err)
{
    char stream[64];
    snprintf(stream, sizeof stream, "node/%s", id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = outcome};
    api_actor(req, &ev.actor);
    int64_t seq;
    return store_append(((struct app *)req->app)->store, &ev, &seq, err);
}

/* Appends a successful event made by this request together with the
 * node's sealed key (both or neither). */
static int record_with_key(struct http_request *req, const char *id, const char *type, json_t *data,
                           const char *sealed_key, const char *sealed_pass, struct sb_err *err)
{
    char stream[64];
    snprintf(stream, sizeof stream, "node/%s", id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
    api_actor(req, &ev.actor);
    return store_node_append_with_credentials(((struct app *)req->app)->store, &ev, id, sealed_key,
                                              sealed_pass, err);
}

static int record_system(struct app *app, const char *id, const char *type, json_t *data, struct sb_err *err)
{
    char stream[64];
    snprintf(stream, sizeof stream, "node/%s", id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
    ev.actor = (struct event_actor){.kind = "system", .name = "node-checker"};
    int64_t seq;
    return store_append(app->store, &ev, &seq, err);
}

/* Valid UTF-8 as a JSON string; invalid bytes become U+FFFD. */
static json_t *json_bytes(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v)
        return v;
    struct buf b;
    buf_init(&b, 0);
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        bool ok = len && (size_t)(end - p) >= len;
        for (size_t i = 1; ok && i < len; i++)
            ok = (p[i] & 0xc0) == 0x80;
        if (ok && len > 1) {
            json_t *probe = json_stringn((const char *)p, len);
            ok = probe != NULL;
            json_decref(probe);
        }
        if (ok && !(len == 1 && *p == 0)) {
            buf_append(&b, p, len);
            p += len;
        } else {
            buf_puts(&b, "\xef\xbf\xbd");
            p++;
        }
    }
    v = json_stringn(b.data, b.len);
    buf_release(&b);
    return v ? v : json_string("");
}

static void add_pool(struct app *app, json_t *node)
{
    struct ssh_pool_stats st;
    ssh_pool_stats(app->ssh_pool, json_string_value(json_object_get(node, "id")), &st);
    json_object_set_new(node, "pool",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "open", (json_int_t)st.open,
                                  "busy", (json_int_t)st.busy, "hits", (json_int_t)st.hits, "misses",
                                  (json_int_t)st.misses, "failures", (json_int_t)st.failures, "waits",
                                  (json_int_t)st.waits, "timeouts", (json_int_t)st.timeouts, "channels",
                                  (json_int_t)st.channels));
}

static json_t *check_json(const struct check_result *c)
{
    char at[40];
    time_format_rfc3339(c->checked_us, at, sizeof at);
    json_t *o = json_pack("{s:s, s:s, s:I}", "status", c->status, "checked_at", at, "duration_ms",
                          (json_int_t)c->duration_ms);
    if (c->reason[0])
        json_object_set_new(o, "reason", json_bytes(c->reason, strlen(c->reason)));
    if (c->uname[0])
        json_object_set_new(o, "uname", json_bytes(c->uname, strlen(c->uname)));
    if (c->uptime[0])
        json_object_set_new(o, "uptime", json_bytes(c->uptime, strlen(c->uptime)));
    return o;
}

static void add_last_check(struct app *app, json_t *node)
{
    const char *id = json_string_value(json_object_get(node, "id"));
    struct api_nodes *an = app->nodes;
    pthread_mutex_lock(&an->lock);
    for (struct check_result *c = an->checks; c; c = c->next)
        if (strcmp(c->id, id) == 0) {
            json_object_set_new(node, "last_check", check_json(c));
            break;
        }
    pthread_mutex_unlock(&an->lock);
}

int api_node_target_load(struct app *app, const char *id, struct api_node_target *out, struct sb_err *err)
{
    json_t *given = out->node;
    memset(out, 0, sizeof *out);
    out->node = given;
    buf_init(&out->key, KEY_MAX + 1);
    buf_init(&out->passphrase, PASSPHRASE_MAX + 1);
    int rc = out->node ? 0 : store_node_get(app->store, id, &out->node, err);
    if (rc)
        return rc;
    char *sk = NULL, *sp = NULL;
    rc = store_node_credentials_get(app->store, id, &sk, &sp, err);
    if (rc == 0)
        rc = crypto_open(&app->master_key, sk, &out->key, err);
    if (rc == 0 && sp)
        rc = crypto_open(&app->master_key, sp, &out->passphrase, err);
    free(sk);
    free(sp);
    if (rc) {
        if (rc == SB_EINVAL)
            sb_error(err, SB_EINTERNAL, "the node's credentials cannot be opened with this master key");
        api_node_target_release(out);
        return err ? err->code : rc;
    }
    json_t *n = out->node;
    out->t = (struct ssh_target){
        .node_id = json_string_value(json_object_get(n, "id")),
        .host = json_string_value(json_object_get(n, "host")),
        .port = (int)json_integer_value(json_object_get(n, "port")),
        .user = json_string_value(json_object_get(n, "ssh_user")),
        .private_key = out->key.data,
        .private_key_len = out->key.len,
        .passphrase = out->passphrase.len ? out->passphrase.data : NULL,
        .fingerprint = json_string_value(json_object_get(n, "host_key_fingerprint")),
    };
    return 0;
}

void api_node_target_release(struct api_node_target *t)
{
    crypto_buf_wipe(&t->key);
    crypto_buf_wipe(&t->passphrase);
    json_decref(t->node);
    memset(&t->t, 0, sizeof t->t);
    t->node = NULL;
}

/* Marks the node and records the event when a connection met another host
 * key than the pinned one (once per change of status). */
static void note_hostkey_mismatch(struct app *app, json_t *node, const struct ssh_diag *d)
{
    const char *status = json_string_value(json_object_get(node, "status"));
    if (status && strcmp(status, "hostkey_mismatch") == 0)
        return;
    const char *id = json_string_value(json_object_get(node, "id"));
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s}", "id", id, "pinned",
                  json_string_value(json_object_get(node, "host_key_fingerprint")), "presented",
                  d->fingerprint, "reason", "the server presented another host key than the pinned one");
    struct sb_err err = {0};
    if (record_system(app, id, "node.hostkey_mismatch", data, &err))
        log_warn("cannot record node.hostkey_mismatch", "node=%s detail=\"%s\"", id, err.msg);
    else
        log_warn("host key mismatch; node refused", "node=%s presented=%s", id, d->fingerprint);
    json_decref(data);
}

/* Replies to a connection failure with a status that names the cause. */
static void reply_ssh_failure(struct http_request *req, const struct ssh_diag *d, const struct sb_err *err)
{
    switch (d->failure) {
    case SSH_FAIL_HOSTKEY:
        http_reply_error(req, 502, "hostkey_mismatch", "%s", err->msg);
        return;
    case SSH_FAIL_AUTH:
        http_reply_error(req, 502, "ssh_auth_failed", "%s", err->msg);
        return;
    case SSH_FAIL_KEY:
        http_reply_error(req, 502, "ssh_key_unreadable", "%s", err->msg);
        return;
    case SSH_FAIL_RESOLVE:
    case SSH_FAIL_CONNECT:
    case SSH_FAIL_HANDSHAKE:
        http_reply_error(req, 502, "ssh_unreachable", "%s", err->msg);
        return;
    case SSH_FAIL_POLICY:
        http_reply_error(req, 422, "validation_failed", "%s", err->msg);
        return;
    case SSH_FAIL_BUSY:
        http_add_header(req, "Retry-After", "1");
        http_reply_error(req, 503, "ssh_pool_busy", "%s", err->msg);
        return;
    default:
        api_fail(req, err);
    }
}

/* ---- POST /api/v1/nodes --------------------------------------------------- */

struct node_input {
    json_t *name, *host, *port, *user, *key, *pass, *fp, *labels, *docker, *generate;
};

static int read_input(struct http_request *req, struct node_input *in, bool create, struct sb_err *err)
{
    json_t *b = req->json;
    in->name = json_object_get(b, "name");
    in->host = json_object_get(b, "host");
    in->port = json_object_get(b, "port");
    in->user = json_object_get(b, "ssh_user");
    in->key = json_object_get(b, "private_key");
    in->pass = json_object_get(b, "passphrase");
    in->fp = json_object_get(b, "host_key_fingerprint");
    in->labels = json_object_get(b, "labels");
    in->docker = json_object_get(b, "docker");
    in->generate = json_object_get(b, "generate_key");
    if (create) {
        if (!in->name)
            return sb_field_error(err, "name", "name is required");
        if (!in->host)
            return sb_field_error(err, "host", "host is required");
        if (!in->user)
            return sb_field_error(err, "ssh_user", "ssh_user is required");
    }
    if ((in->name && check_name(in->name, err)) || (in->host && check_host(in->host, err)) ||
        (in->port && check_port(in->port, err)) || (in->user && check_user(in->user, err)) ||
        (in->fp && check_fingerprint(in->fp, err)) || (in->labels && check_labels(in->labels, err)) ||
        (in->docker && check_docker(in->docker, err)) ||
        (in->key && check_secret(in->key, "private_key", KEY_MAX, err)) ||
        (in->pass && check_secret(in->pass, "passphrase", PASSPHRASE_MAX, err)))
        return SB_EINVAL;
    if (in->generate && !json_is_boolean(in->generate))
        return sb_field_error(err, "generate_key", "generate_key must be true or false");
    bool gen = json_is_true(in->generate);
    if (gen && (in->key || in->pass))
        return sb_field_error(err, "generate_key", "give either private_key or generate_key, not both");
    if (create && !gen && !in->key)
        return sb_field_error(err, "private_key", "private_key is required (or \"generate_key\": true)");
    if (in->pass && !in->key)
        return sb_field_error(err, "passphrase", "a passphrase needs the private_key it opens");
    return 0;
}

/* Maps a failed verification connection at registration or change. */
static void reply_verify_failure(struct http_request *req, const struct ssh_diag *d, struct sb_err *err)
{
    char msg[sizeof err->msg];
    sb_strlcpy(msg, err->msg, sizeof msg);
    if (d->failure == SSH_FAIL_HOSTKEY) {
        http_reply_error(req, 422, "validation_failed", "%s", err->msg);
        return;
    }
    if (d->failure == SSH_FAIL_POLICY) {
        sb_field_error(err, "host", "%s", msg);
        api_fail(req, err);
        return;
    }
    if (d->failure == SSH_FAIL_KEY) {
        sb_field_error(err, "private_key", "%s", msg);
        api_fail(req, err);
        return;
    }
    if (d->failure == SSH_FAIL_AUTH && strcmp(d->key_type, "ssh-rsa") == 0) {
        sb_field_error(err, "private_key", "%s", msg);
        api_fail(req, err);
        return;
    }
    reply_ssh_failure(req, d, err);
}

/* Which engine a node reaches is a privilege: "local" is the core's own
 * Docker engine (every container of the control plane), so only a caller
 * holding nodes:local_engine (admins) may point a node at it, on
 * registration and on every change. Replies 403 and returns -1. */
static int check_engine_allowed(struct http_request *req, json_t *docker, json_t *current)
{
    const char *want = json_string_value(docker);
    if (!want || strcmp(want, "local") != 0)
        return 0;
    const char *have = json_string_value(current);
    if (have && strcmp(have, "local") == 0)
        return 0; /* unchanged */
    const struct api_caller *c = req->user;
    if (c && auth_caller_allows(c, "nodes:local_engine"))
        return 0;
    http_reply_error(req, 403, "forbidden",
                     "only an admin may point a node at the core's local Docker engine (docker: \"local\")");
    return -1;
}

static char *seal_json_string(struct app *app, json_t *v)
{
    return v ? crypto_seal(&app->master_key, json_string_value(v), json_string_length(v)) : NULL;
}

void api_node_create(struct http_request *req)
{
    static const char *const allowed[] = {
        "name",       "host",   "port",   "ssh_user",     "private_key",
        "passphrase", "labels", "docker", "generate_key", "host_key_fingerprint",
        NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    struct node_input in;
    if (read_input(req, &in, true, &err)) {
        api_fail(req, &err);
        return;
    }
    if (in.labels && !api_node_visible(req, in.labels)) {
        http_reply_error(req, 403, "forbidden", "the node's labels are outside your scope");
        return;
    }
    if (check_engine_allowed(req, in.docker, NULL))
        return;
    char existing[37];
    int rc = store_node_find_name(app->store, json_string_value(in.name), existing, &err);
    if (rc == 0) {
        http_reply_error(req, 409, "conflict", "a node named '%s' exists", json_string_value(in.name));
        return;
    }
    if (rc != SB_ENOTFOUND) {
        api_fail(req, &err);
        return;
    }

    char id[37];
    uuid_v4(id);
    bool generate = json_is_true(in.generate);
    struct buf key, pub;
    buf_init(&key, KEY_MAX + 1);
    buf_init(&pub, 4096);
    char comment[128];
    snprintf(comment, sizeof comment, "serverbox@%s", json_string_value(in.name));
    if (generate) {
        ssh_key_generate_ed25519(comment, &key, &pub, &err);
    } else {
        buf_append(&key, json_string_value(in.key), json_string_length(in.key));
    }
    struct ssh_target t = {
        .node_id = id,
        .host = json_string_value(in.host),
        .port = in.port ? (int)json_integer_value(in.port) : 22,
        .user = json_string_value(in.user),
        .private_key = key.data,
        .private_key_len = key.len,
        .passphrase = in.pass ? json_string_value(in.pass) : NULL,
        .fingerprint = in.fp ? json_string_value(in.fp) : NULL,
        .handshake_only = generate, /* the public key is not installed yet: learn the host key only */
    };
    struct ssh_diag d;
    struct ssh_session *s = NULL;
    char *sealed_key = NULL, *sealed_pass = NULL;
    json_t *node = NULL, *data = NULL;
    rc = ssh_connect(&t, PROBE_TIMEOUT_MS, &s, &d, &err);
    if (rc) {
        json_t *fail =
            json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "id", id, "name", json_string_value(in.name), "host",
                      t.host, "port", t.port, "ssh_user", t.user, "reason", err.msg);
        struct sb_err e2 = {0};
        record(req, id, "node.registered", fail, "failure", &e2);
        json_decref(fail);
        reply_verify_failure(req, &d, &err);
        goto out;
    }
    char fingerprint[64];
    sb_strlcpy(fingerprint, ssh_session_fingerprint(s), sizeof fingerprint);
    ssh_session_close(s);

    sealed_key = crypto_seal(&app->master_key, key.data, key.len);
    sealed_pass = seal_json_string(app, in.pass);
    if (!sealed_key || (in.pass && !sealed_pass)) {
        http_reply_error(req, 500, "internal", "cannot seal the key");
        goto out;
    }
    char key_type[24];
    ssh_key_type(key.data, key.len, key_type, sizeof key_type);
    data = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "id", id, "name",
                     json_string_value(in.name), "host", t.host, "port", t.port, "ssh_user", t.user, "docker",
                     in.docker ? json_string_value(in.docker) : "ssh", "host_key_fingerprint", fingerprint,
                     "fingerprint_source", in.fp ? "given" : "seen_at_registration", "status",
                     generate ? "offline" : "online");
    json_object_set_new(data, "labels", in.labels ? json_incref(in.labels) : json_object());
    if (key_type[0])
        json_object_set_new(data, "key_type", json_string(key_type));
    if (generate) {
        json_object_set_new(data, "public_key", json_string(pub.data));
        json_object_set_new(data, "reason", json_string("waiting for the public key to be installed"));
    }
    /* The node and its sealed key commit together, or neither does. */
    rc = record_with_key(req, id, "node.registered", data, sealed_key, sealed_pass, &err);
    if (rc) {
        if (rc == SB_ECONFLICT)
            http_reply_error(req, 409, "conflict", "a node named '%s' exists", json_string_value(in.name));
        else
            api_fail(req, &err);
        goto out;
    }
    log_info("node registered", "node=%s name=%s fingerprint=%s", id, json_string_value(in.name),
             fingerprint);
    if (store_node_get(app->store, id, &node, &err)) {
        api_fail(req, &err);
        goto out;
    }
    docker_events_follow(app, id, node);
    add_pool(app, node);
    http_reply_json(req, 201, node);
    node = NULL;
out:
    crypto_buf_wipe(&key);
    buf_release(&pub);
    free(sealed_key);
    free(sealed_pass);
    json_decref(data);
    json_decref(node);
}

/* ---- GET ------------------------------------------------------------------- */

/* What a caller without nodes:connection (a guest: an auditor) sees of a
 * node: what it is and how it is doing, never how to reach it (no SSH host,
 * port, user, host key or key, no check error text, which names the
 * address, and no uname, which names the host). */
static void node_without_connection(const struct http_request *req, json_t *node)
{
    const struct api_caller *c = req->user;
    if (c && auth_caller_allows(c, "nodes:connection"))
        return;
    static const char *const keep[] = {"id",
                                       "name",
                                       "labels",
                                       "docker",
                                       "status",
                                       "status_changed_at",
                                       "agent_status",
                                       "agent_status_changed_at",
                                       "agent_interval_ms",
                                       "created_at",
                                       "updated_at",
                                       "last_check",
                                       NULL};
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(node, tmp, k, v)
    {
        bool kept = false;
        for (size_t i = 0; keep[i] && !kept; i++)
            kept = strcmp(keep[i], k) == 0;
        if (!kept)
            json_object_del(node, k);
    }
    json_t *check = json_object_get(node, "last_check");
    json_object_del(check, "reason");
    json_object_del(check, "uname");
}

/* ?label=k=v[,k2=v2]: every pair must match. */
static bool label_match(json_t *labels, const char *filter)
{
    if (!filter || !*filter)
        return true;
    char tmp[512];
    sb_strlcpy(tmp, filter, sizeof tmp);
    char *save = NULL;
    for (char *pair = strtok_r(tmp, ",", &save); pair; pair = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(pair, '=');
        const char *want = eq ? eq + 1 : NULL;
        if (eq)
            *eq = '\0';
        json_t *have = json_object_get(labels, pair);
        if (!json_is_string(have) || (want && strcmp(json_string_value(have), want) != 0))
            return false;
    }
    return true;
}

void api_node_list(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    const char *filter = http_query(req, "label");
    if (filter && strlen(filter) > 500) {
        http_reply_error(req, 400, "bad_parameter", "label filter is too long");
        return;
    }
    json_t *all = NULL;
    if (store_node_list(app->store, &all, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *items = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(all, i, n)
    {
        json_t *labels = json_object_get(n, "labels");
        if (api_node_visible(req, labels) && label_match(labels, filter)) {
            node_without_connection(req, n);
            json_array_append(items, n);
        }
    }
    json_decref(all);
    http_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

void api_node_get(struct http_request *req)
{
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    add_pool(req->app, node);
    add_last_check(req->app, node);
    node_without_connection(req, node);
    http_reply_json(req, 200, node);
}

/* ---- PATCH ------------------------------------------------------------------ */

void api_node_update(struct http_request *req)
{
    static const char *const allowed[] = {
        "name",       "host",   "port",   "ssh_user",     "private_key",
        "passphrase", "labels", "docker", "generate_key", "host_key_fingerprint",
        NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    struct node_input in;
    if (read_input(req, &in, false, &err)) {
        api_fail(req, &err);
        return;
    }
    if (in.generate) {
        sb_field_error(&err, "generate_key", "generate_key is only for registration; give private_key");
        api_fail(req, &err);
        return;
    }
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    const char *id = json_string_value(json_object_get(node, "id"));
    char idc[37];
    sb_strlcpy(idc, id, sizeof idc);
    if (in.labels && !api_node_visible(req, in.labels)) {
        json_decref(node);
        http_reply_error(req, 403, "forbidden", "the new labels are outside your scope");
        return;
    }
    if (check_engine_allowed(req, in.docker, json_object_get(node, "docker"))) {
        json_decref(node);
        return;
    }
    if (in.name &&
        strcmp(json_string_value(in.name), json_string_value(json_object_get(node, "name"))) != 0) {
        char other[37];
        if (store_node_find_name(app->store, json_string_value(in.name), other, &err) == 0) {
            json_decref(node);
            http_reply_error(req, 409, "conflict", "a node named '%s' exists", json_string_value(in.name));
            return;
        }
    }
    json_t *changes = json_object();
    static const char *const plain[] = {
        "name", "host", "port", "ssh_user", "labels", "docker", "host_key_fingerprint"};
    json_t *vals[] = {in.name, in.host, in.port, in.user, in.labels, in.docker, in.fp};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (vals[i] && !json_equal(vals[i], json_object_get(node, plain[i])))
            json_object_set(changes, plain[i], vals[i]);
    bool reconnect = in.host || in.port || in.user || in.key || in.fp;
    struct api_node_target cur = {0}; /* node NULL: api_node_target_load loads it */
    char *sealed_key = NULL, *sealed_pass = NULL;
    json_t *data = NULL;
    int rc = 0;
    if (reconnect) {
        /* Verify the new settings with one connection before recording them. */
        rc = api_node_target_load(app, idc, &cur, &err);
        if (rc) {
            api_fail(req, &err);
            goto out_node;
        }
        struct ssh_target t = cur.t;
        if (in.host)
            t.host = json_string_value(in.host);
        if (in.port)
            t.port = (int)json_integer_value(in.port);
        if (in.user)
            t.user = json_string_value(in.user);
        if (in.fp)
            t.fingerprint = json_string_value(in.fp);
        if (in.key) {
            t.private_key = json_string_value(in.key);
            t.private_key_len = json_string_length(in.key);
            t.passphrase = in.pass ? json_string_value(in.pass) : NULL;
        }
        struct ssh_diag d;
        struct ssh_session *s = NULL;
        rc = ssh_connect(&t, PROBE_TIMEOUT_MS, &s, &d, &err);
        ssh_session_close(s);
        if (rc) {
            json_t *fail = json_pack("{s:s, s:O, s:s}", "id", idc, "changes", changes, "reason", err.msg);
            struct sb_err e2 = {0};
            record(req, idc, "node.updated", fail, "failure", &e2);
            json_decref(fail);
            reply_verify_failure(req, &d, &err);
            api_node_target_release(&cur);
            goto out_node;
        }
        if (in.key) {
            char key_type[24];
            ssh_key_type(t.private_key, t.private_key_len, key_type, sizeof key_type);
            json_object_set_new(changes, "key_type", key_type[0] ? json_string(key_type) : json_null());
            json_object_set_new(changes, "public_key", json_null());
            sealed_key = seal_json_string(app, in.key);
            sealed_pass = seal_json_string(app, in.pass);
        }
        api_node_target_release(&cur);
        if (in.key && !sealed_key) {
            http_reply_error(req, 500, "internal", "cannot seal the key");
            goto out_node;
        }
    }
    data = json_pack("{s:s, s:O}", "id", idc, "changes", changes);
    if (in.key)
        json_object_set_new(data, "private_key", json_string("replaced"));
    /* A new key is stored with the change's event, in one transaction: a
     * refused change (a name taken: 409) keeps the old key. */
    rc = in.key ? record_with_key(req, idc, "node.updated", data, sealed_key, sealed_pass, &err)
                : record(req, idc, "node.updated", data, "success", &err);
    if (rc) {
        if (rc == SB_ECONFLICT)
            http_reply_error(req, 409, "conflict", "a node with that name exists");
        else
            api_fail(req, &err);
        goto out_node;
    }
    ssh_pool_forget(app->ssh_pool, idc);
    if (reconnect)
        ssh_bridge_forget(app->nodes->bridges, idc);
    json_decref(node);
    node = NULL;
    if (store_node_get(app->store, idc, &node, &err)) {
        api_fail(req, &err);
        goto out_node;
    }
    docker_events_follow(app, idc, node);
    add_pool(app, node);
    http_reply_json(req, 200, node);
    node = NULL;
out_node:
    free(sealed_key);
    free(sealed_pass);
    json_decref(data);
    json_decref(changes);
    json_decref(node);
}

/* ---- DELETE ------------------------------------------------------------------ */

void api_node_delete(struct http_request *req)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    char id[37];
    sb_strlcpy(id, json_string_value(json_object_get(node, "id")), sizeof id);
    json_t *data = json_pack("{s:s, s:O}", "id", id, "name", json_object_get(node, "name"));
    int rc = record(req, id, "node.deleted", data, "success", &err);
    json_decref(data);
    json_decref(node);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    ssh_pool_forget(app->ssh_pool, id);
    struct api_nodes *an = app->nodes;
    docker_events_follow(app, id, NULL);
    ssh_bridge_forget(an->bridges, id);
    pthread_mutex_lock(&an->lock);
    for (struct check_result **pp = &an->checks; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            struct check_result *c = *pp;
            *pp = c->next;
            free(c);
            break;
        }
    }
    pthread_mutex_unlock(&an->lock);
    http_reply_json(req, 204, NULL);
}

/* ---- POST /exec ---------------------------------------------------------------- */

void api_node_exec(struct http_request *req)
{
    static const char *const allowed[] = {"command", "timeout_seconds", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *cmd = json_object_get(req->json, "command");
    json_t *tmo = json_object_get(req->json, "timeout_seconds");
    if (!json_is_string(cmd) || json_string_length(cmd) == 0 || json_string_length(cmd) > COMMAND_MAX ||
        strlen(json_string_value(cmd)) != json_string_length(cmd)) {
        sb_field_error(&err, "command", "command must be a non-empty string of at most %d bytes without NUL",
                       COMMAND_MAX);
        api_fail(req, &err);
        return;
    }
    if (tmo && (!json_is_integer(tmo) || json_integer_value(tmo) < 1 || json_integer_value(tmo) > 3600)) {
        sb_field_error(&err, "timeout_seconds", "timeout_seconds must be a whole number from 1 to 3600");
        api_fail(req, &err);
        return;
    }
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    struct api_node_target t = {.node = node};
    if (api_node_target_load(app, json_string_value(json_object_get(node, "id")), &t, &err)) {
        json_decref(node);
        api_fail(req, &err);
        return;
    }
    struct ssh_exec_opts o = {.command = json_string_value(cmd),
                              .timeout_ms = (int)(tmo ? json_integer_value(tmo) : 60) * 1000,
                              .max_output = app->nodes->max_output};
    struct ssh_exec_result r;
    ssh_exec_result_init(&r);
    struct ssh_diag d = {0};
    int rc = ssh_pool_exec(app->ssh_pool, &t.t, &o, &r, &d, &err);
    const char *id = t.t.node_id;
    json_t *ev = json_pack("{s:s, s:O}", "id", id, "command", cmd);
    if (rc) {
        json_object_set_new(ev, "error", json_string(err.msg));
        json_object_set_new(ev, "started", json_boolean(r.started));
        if (d.failure != SSH_FAIL_NONE)
            json_object_set_new(ev, "failure", json_string(ssh_failure_name(d.failure)));
    } else {
        json_object_set_new(ev, "exit_code",
                            r.timed_out || r.exit_signal[0] ? json_null() : json_integer(r.exit_code));
        json_object_set_new(ev, "duration_ms", json_integer(r.duration_ms));
        json_object_set_new(ev, "timed_out", json_boolean(r.timed_out));
        json_object_set_new(ev, "truncated", json_boolean(r.truncated));
    }
    struct sb_err e2 = {0};
    if (record(req, id, "node.exec", ev, rc || r.timed_out ? "failure" : "success", &e2))
        log_warn("cannot record node.exec", "node=%s detail=\"%s\"", id, e2.msg);
    json_decref(ev);
    if (rc) {
        if (d.failure == SSH_FAIL_HOSTKEY)
            note_hostkey_mismatch(app, t.node, &d);
        reply_ssh_failure(req, &d, &err);
    } else {
        json_t *out =
            json_pack("{s:o, s:o, s:I, s:b, s:b}", "stdout", json_bytes(r.out.data, r.out.len), "stderr",
                      json_bytes(r.err.data, r.err.len), "duration_ms", (json_int_t)r.duration_ms,
                      "truncated", r.truncated, "timed_out", r.timed_out);
        json_object_set_new(out, "exit_code",
                            r.timed_out || r.exit_signal[0] ? json_null() : json_integer(r.exit_code));
        if (r.exit_signal[0])
            json_object_set_new(out, "signal", json_string(r.exit_signal));
        http_reply_json(req, 200, out);
    }
    ssh_exec_result_release(&r);
    api_node_target_release(&t);
}

/* ---- node labels for the event bus ------------------------------------------------ */

static void labels_reload(struct api_nodes *an)
{
    json_t *all = NULL;
    struct sb_err err = {0};
    json_t *map = NULL;
    if (store_node_list(an->app->store, &all, &err) == 0 && (map = json_object())) {
        size_t i;
        json_t *n;
        json_array_foreach(all, i, n)
        {
            const char *id = json_string_value(json_object_get(n, "id"));
            json_t *l = json_object_get(n, "labels");
            if (id && json_is_object(l))
                json_object_set(map, id, l);
        }
    }
    json_decref(all);
    pthread_mutex_lock(&an->labels_lock);
    if (map) {
        json_decref(an->labels);
        an->labels = map;
    }
    an->labels_stale = map == NULL;
    pthread_mutex_unlock(&an->labels_lock);
    if (!map)
        log_warn("cannot load node labels; label-scoped streams miss node events until it works",
                 "detail=\"%s\"", err.msg);
}

/* events_node_labels_fn: a new reference, or NULL for an unknown node. */
static json_t *labels_lookup(void *ctx, const char *node_id)
{
    struct api_nodes *an = ctx;
    pthread_mutex_lock(&an->labels_lock);
    json_t *l = an->labels ? json_object_get(an->labels, node_id) : NULL;
    if (!l && an->gone)
        l = json_object_get(an->gone, node_id);
    json_incref(l);
    pthread_mutex_unlock(&an->labels_lock);
    return l;
}

/* The labels of one node from the projection into the map (or out of it,
 * when the node is gone). False when the store could not be read. */
static bool labels_update_one(struct api_nodes *an, const char *id)
{
    json_t *node = NULL;
    struct sb_err err = {0};
    int rc = store_node_get(an->app->store, id, &node, &err);
    if (rc && rc != SB_ENOTFOUND)
        return false;
    json_t *l = json_object_get(node, "labels");
    pthread_mutex_lock(&an->labels_lock);
    if (json_is_object(l))
        json_object_set(an->labels, id, l);
    else
        json_object_del(an->labels, id);
    pthread_mutex_unlock(&an->labels_lock);
    json_decref(node);
    return true;
}

/* events_log_observer_fn, on the follower thread: the projection already
 * holds the event (it commits with it), so one lookup of that node brings
 * the map up to date before any stream filters the event. */
static void labels_observe(void *ctx, const char *stream, const char *type, json_t *body)
{
    (void)stream;
    struct api_nodes *an = ctx;
    bool changes = strcmp(type, "node.registered") == 0 || strcmp(type, "node.updated") == 0 ||
                   strcmp(type, "node.deleted") == 0;
    const char *id = json_string_value(json_object_get(json_object_get(body, "data"), "id"));
    pthread_mutex_lock(&an->labels_lock);
    bool stale = an->labels_stale || !an->labels;
    json_t *was = changes && id && an->labels && strcmp(type, "node.deleted") == 0
                      ? json_object_get(an->labels, id)
                      : NULL;
    if (was) {
        if (!an->gone || json_object_size(an->gone) >= GONE_MAX) {
            json_decref(an->gone);
            an->gone = json_object();
        }
        if (an->gone)
            json_object_set(an->gone, id, was);
    }
    pthread_mutex_unlock(&an->labels_lock);
    if (stale || (changes && (!id || !labels_update_one(an, id))))
        labels_reload(an);
}

/* ---- Docker on nodes ---------------------------------------------------------------- */

static int bridge_target_load(void *ctx, const char *node_id, struct ssh_target *t, void **handle,
                              struct sb_err *err)
{
    struct api_nodes *an = ctx;
    struct api_node_target *nt = calloc(1, sizeof *nt);
    if (!nt)
        return sb_error(err, SB_ENOMEM, "out of memory");
    int rc = api_node_target_load(an->app, node_id, nt, err);
    if (rc) {
        free(nt);
        return rc;
    }
    *t = nt->t;
    *handle = nt;
    return 0;
}

static void bridge_target_release(void *ctx, void *handle)
{
    (void)ctx;
    api_node_target_release(handle);
    free(handle);
}

/* docker_resolver_fn: a registered node's engine socket and name. */
static int docker_resolve(void *ctx, const char *node_id, char *socket_out, size_t len, char *name_out,
                          size_t name_len, struct sb_err *err)
{
    struct api_nodes *an = ctx;
    json_t *node = NULL;
    int rc = store_node_get(an->app->store, node_id, &node, err);
    if (rc)
        return rc;
    sb_strlcpy(name_out, json_string_value(json_object_get(node, "name")), name_len);
    const char *docker = json_string_value(json_object_get(node, "docker"));
    if (docker && strcmp(docker, "local") == 0)
        sb_strlcpy(socket_out, an->local_docker, len);
    else
        rc = ssh_bridge_socket(an->bridges, node_id, an->remote_docker, socket_out, len, err);
    json_decref(node);
    return rc;
}

/* Starts or stops the engine watcher of a node (its row, borrowed) to match
 * its docker setting: with --node-docker-events, every node reached over
 * SSH has one (container.* events and the containers projection); nodes
 * whose docker is "local" share the local engine's. */
static void docker_events_follow(struct app *app, const char *id, json_t *node)
{
    struct api_nodes *an = app->nodes;
    if (!an->watch_events || !app->docker || !id)
        return;
    const char *docker = json_string_value(json_object_get(node, "docker"));
    bool want = node && docker && strcmp(docker, "ssh") == 0;
    pthread_mutex_lock(&an->lock);
    bool have = json_object_get(an->watched, id) != NULL;
    if (want && !have)
        json_object_set_new(an->watched, id, json_true());
    else if (!want && have)
        json_object_del(an->watched, id);
    pthread_mutex_unlock(&an->lock);
    struct sb_err err = {0};
    if (want && !have && docker_watch_node(app->docker, id, &err))
        log_warn("cannot watch the node's docker events", "node=%s detail=\"%s\"", id, err.msg);
    else if (!want && have)
        docker_unwatch_node(app->docker, id);
}

void api_nodes_attach_docker(struct app *app)
{
    struct api_nodes *an = app->nodes;
    if (!an || !app->docker)
        return;
    docker_set_resolver(app->docker, docker_resolve, an);
    json_t *all = NULL;
    struct sb_err err = {0};
    if (an->watch_events && store_node_list(app->store, &all, &err) == 0) {
        size_t i;
        json_t *n;
        json_array_foreach(all, i, n)
        {
            docker_events_follow(app, json_string_value(json_object_get(n, "id")), n);
        }
    } else if (an->watch_events) {
        log_warn("cannot list nodes to watch their docker events", "detail=\"%s\"", err.msg);
    }
    json_decref(all);
}

/* ---- health ---------------------------------------------------------------------- */

/* Checks one node (given its row, borrowed) and records a status event
 * when the status changed. Fills *out. */
static void check_node(struct app *app, json_t *node, struct check_result *out)
{
    memset(out, 0, sizeof *out);
    const char *id = json_string_value(json_object_get(node, "id"));
    sb_strlcpy(out->id, id, sizeof out->id);
    out->checked_us = time_now_us();
    struct api_node_target t = {.node = json_incref(node)};
    struct sb_err err = {0};
    struct ssh_diag d = {0};
    int rc = api_node_target_load(app, id, &t, &err);
    struct ssh_exec_result r;
    ssh_exec_result_init(&r);
    if (rc == 0) {
        struct ssh_exec_opts o = {.command = "uname -a; uptime", .timeout_ms = 15000, .max_output = 4096};
        rc = ssh_pool_exec(app->ssh_pool, &t.t, &o, &r, &d, &err);
        if (rc == 0 && (r.timed_out || r.exit_code != 0))
            rc = sb_error(&err, SB_EUPSTREAM, "the check command %s",
                          r.timed_out ? "timed out" : "failed on the node");
    }
    out->duration_ms = (time_now_us() - out->checked_us) / 1000;
    const char *type;
    if (rc == 0) {
        sb_strlcpy(out->status, "online", sizeof out->status);
        char *nl = memchr(r.out.data, '\n', r.out.len);
        if (nl) {
            *nl = '\0';
            sb_strlcpy(out->uname, r.out.data, sizeof out->uname);
            char *up = nl + 1, *end = strchr(up, '\n');
            if (end)
                *end = '\0';
            while (*up == ' ')
                up++;
            sb_strlcpy(out->uptime, up, sizeof out->uptime);
        }
        type = "node.online";
    } else if (d.failure == SSH_FAIL_HOSTKEY) {
        sb_strlcpy(out->status, "hostkey_mismatch", sizeof out->status);
        sb_strlcpy(out->reason, err.msg, sizeof out->reason);
        type = "node.hostkey_mismatch";
    } else {
        sb_strlcpy(out->status, "offline", sizeof out->status);
        sb_strlcpy(out->reason, err.msg, sizeof out->reason);
        type = "node.offline";
    }
    ssh_exec_result_release(&r);
    const char *prev = json_string_value(json_object_get(node, "status"));
    if (!prev || strcmp(prev, out->status) != 0) {
        if (d.failure == SSH_FAIL_HOSTKEY) {
            note_hostkey_mismatch(app, node, &d);
        } else {
            json_t *data = json_pack("{s:s, s:s}", "id", id, "previous", prev ? prev : "unknown");
            if (out->reason[0])
                json_object_set_new(data, "reason", json_string(out->reason));
            if (out->uname[0])
                json_object_set_new(data, "uname", json_bytes(out->uname, strlen(out->uname)));
            struct sb_err e2 = {0};
            if (record_system(app, id, type, data, &e2))
                log_warn("cannot record node status", "node=%s detail=\"%s\"", id, e2.msg);
            else
                log_info("node status changed", "node=%s status=%s", id, out->status);
            json_decref(data);
        }
    }
    api_node_target_release(&t);
    struct api_nodes *an = app->nodes;
    pthread_mutex_lock(&an->lock);
    struct check_result *c = an->checks;
    while (c && strcmp(c->id, id) != 0)
        c = c->next;
    if (!c && (c = calloc(1, sizeof *c))) {
        c->next = an->checks;
        an->checks = c;
    }
    if (c) {
        struct check_result *next = c->next;
        *c = *out;
        c->next = next;
    }
    pthread_mutex_unlock(&an->lock);
}

void api_node_check(struct http_request *req)
{
    json_t *node;
    if (api_node_load_visible(req, http_param(req, "id"), &node))
        return;
    struct check_result c;
    check_node(req->app, node, &c);
    json_decref(node);
    json_t *out = check_json(&c);
    json_object_set_new(out, "id", json_string(c.id));
    http_reply_json(req, 200, out);
}

static void *check_worker(void *arg)
{
    struct api_nodes *an = arg;
    pthread_mutex_lock(&an->lock);
    for (;;) {
        while (!an->stopping && !an->queue)
            pthread_cond_wait(&an->work_cond, &an->lock);
        if (an->stopping)
            break;
        struct check_job *j = an->queue;
        an->queue = j->next;
        if (!an->queue)
            an->queue_tail = NULL;
        pthread_mutex_unlock(&an->lock);
        struct check_result c;
        check_node(an->app, j->node, &c);
        pthread_mutex_lock(&an->lock);
        json_object_del(an->checking, json_string_value(json_object_get(j->node, "id")));
        json_decref(j->node);
        free(j);
    }
    pthread_mutex_unlock(&an->lock);
    return NULL;
}

/* Queues a check of every node not already queued or being checked.
 * Called with an->lock held. Takes the rows (all, borrowed). */
static void queue_checks(struct api_nodes *an, json_t *all)
{
    size_t i;
    json_t *n;
    json_array_foreach(all, i, n)
    {
        const char *id = json_string_value(json_object_get(n, "id"));
        if (!id || json_object_get(an->checking, id))
            continue;
        struct check_job *j = calloc(1, sizeof *j);
        if (!j)
            break;
        j->node = json_incref(n);
        json_object_set_new(an->checking, id, json_true());
        if (an->queue_tail)
            an->queue_tail->next = j;
        else
            an->queue = j;
        an->queue_tail = j;
    }
    pthread_cond_broadcast(&an->work_cond);
}

static void *checker_main(void *arg)
{
    struct api_nodes *an = arg;
    pthread_mutex_lock(&an->lock);
    while (!an->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += an->interval_s;
        while (!an->stopping && pthread_cond_timedwait(&an->cond, &an->lock, &ts) == 0) {
        }
        if (an->stopping)
            break;
        pthread_mutex_unlock(&an->lock);
        pthread_mutex_lock(&an->labels_lock);
        bool stale = an->labels_stale;
        pthread_mutex_unlock(&an->labels_lock);
        if (stale)
            labels_reload(an);
        json_t *all = NULL;
        struct sb_err err = {0};
        int rc = store_node_list(an->app->store, &all, &err);
        pthread_mutex_lock(&an->lock);
        /* With several daemons on one database, only the duty's holder. */
        if (rc == 0 && !an->stopping && jobs_duty_held(an->app->jobs, "node-checks"))
            queue_checks(an, all);
        json_decref(all);
    }
    pthread_mutex_unlock(&an->lock);
    return NULL;
}

int api_nodes_start(struct app *app, struct sb_err *err)
{
    if (node_networks_load(app->cfg, err))
        return err ? err->code : SB_EINVAL;
    struct api_nodes *an = calloc(1, sizeof *an);
    if (!an)
        return sb_error(err, SB_ENOMEM, "out of memory");
    an->app = app;
    pthread_mutex_init(&an->lock, NULL);
    pthread_mutex_init(&an->labels_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&an->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&an->work_cond, NULL);
    an->interval_s = (int)config_get_int(app->cfg, "node-check-interval");
    an->max_output = (size_t)config_get_int(app->cfg, "exec-max-output");
    struct ssh_pool_config pc = {
        .per_node = (int)config_get_int(app->cfg, "ssh-pool-size"),
        .global_max = (int)config_get_int(app->cfg, "ssh-pool-max"),
        .idle_ttl_ms = (int)config_get_int(app->cfg, "ssh-idle-ttl") * 1000,
        .keepalive_ms = (int)config_get_int(app->cfg, "ssh-keepalive") * 1000,
        .acquire_timeout_ms = (int)config_get_int(app->cfg, "ssh-acquire-timeout") * 1000,
    };
    app->nodes = an;
    app->ssh_pool = ssh_pool_new(&pc, err);
    if (!app->ssh_pool)
        return err ? err->code : SB_EINTERNAL;
    an->local_docker = config_get(app->cfg, "docker-socket");
    an->remote_docker = config_get(app->cfg, "node-docker-socket");
    an->watch_events = config_get_int(app->cfg, "node-docker-events") != 0;
    an->watched = json_object();
    struct ssh_bridge_config bc = {.pool = app->ssh_pool,
                                   .target_load = bridge_target_load,
                                   .target_release = bridge_target_release,
                                   .ctx = an};
    an->bridges = ssh_bridges_new(&bc, err);
    if (!an->bridges)
        return err ? err->code : SB_EINTERNAL;
    /* The observer first, so no node event falls between the load and it. */
    if (app->events) {
        events_set_log_observer(app->events, labels_observe, an);
        labels_reload(an);
        events_set_node_labels_fn(app->events, labels_lookup, an);
    }
    if (an->interval_s > 0) {
        an->checking = json_object();
        for (int i = 0; i < CHECK_WORKERS; i++) {
            if (pthread_create(&an->workers[i], NULL, check_worker, an) != 0)
                return sb_error(err, SB_EINTERNAL, "cannot start the node checkers");
            an->n_workers++;
        }
        if (pthread_create(&an->checker, NULL, checker_main, an) != 0)
            return sb_error(err, SB_EINTERNAL, "cannot start the node checker");
        an->checker_running = true;
    }
    return 0;
}

void api_nodes_stop(struct app *app)
{
    struct api_nodes *an = app->nodes;
    if (!an)
        return;
    pthread_mutex_lock(&an->lock);
    an->stopping = true;
    pthread_cond_broadcast(&an->cond);
    pthread_cond_broadcast(&an->work_cond);
    pthread_mutex_unlock(&an->lock);
    if (an->checker_running)
        pthread_join(an->checker, NULL);
    for (int i = 0; i < an->n_workers; i++)
        pthread_join(an->workers[i], NULL);
    for (struct check_job *j = an->queue, *next; j; j = next) {
        next = j->next;
        json_decref(j->node);
        free(j);
    }
    json_decref(an->checking);
    if (app->docker) {
        /* The watchers resolve through us: stop them before the bridges. */
        const char *id;
        json_t *v;
        json_object_foreach(an->watched, id, v)
        {
            docker_unwatch_node(app->docker, id);
        }
        docker_set_resolver(app->docker, NULL, NULL);
    }
    json_decref(an->watched);
    ssh_bridges_free(an->bridges);
    ssh_pool_free(app->ssh_pool);
    app->ssh_pool = NULL;
    for (struct check_result *c = an->checks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    json_decref(an->labels);
    json_decref(an->gone);
    pthread_mutex_destroy(&an->labels_lock);
    pthread_mutex_destroy(&an->lock);
    pthread_cond_destroy(&an->cond);
    pthread_cond_destroy(&an->work_cond);
    free(an);
    app->nodes = NULL;
}
