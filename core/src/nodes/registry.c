/*
 * The registry: validating node fields, registering, changing and deleting
 * nodes, and remote commands. Every command records its event, a failed
 * verification too (outcome "failure").
 *
 * Private keys and passphrases arrive in the input, are sealed with the
 * master key at once and stored beside the node (never in events); the
 * clear text lives in wiped buffers for the duration of one connection.
 */
#include "internal.h"

#include "../events/events.h"
#include "../tunnels/tunnels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABELS_MAX    16
#define LABEL_LEN_MAX 100
/* A registration or change probes the node with one connection: a silent
 * port must not hold a worker long (health checks keep the longer one). */
#define PROBE_TIMEOUT_MS 3000

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

/* connection and tunnel_public_key: set at registration only. A tunnel
 * node has no host or port of its own (the core reaches it at its forward)
 * and must come with its host key (nothing is connected at registration,
 * so nothing could be seen and pinned). */
static int check_connection(const struct nodes_input *in, bool create, struct sb_err *err)
{
    if (!create && (in->connection || in->tunnel_key))
        return sb_field_error(err, in->connection ? "connection" : "tunnel_public_key",
                              "%s is set at registration only: delete the node and register it again",
                              in->connection ? "connection" : "tunnel_public_key");
    const char *c = in->connection ? json_string_value(in->connection) : "direct";
    if (!c || (strcmp(c, "direct") != 0 && strcmp(c, "tunnel") != 0))
        return sb_field_error(err, "connection", "connection must be \"direct\" or \"tunnel\"");
    if (strcmp(c, "direct") == 0) {
        if (in->tunnel_key)
            return sb_field_error(err, "tunnel_public_key",
                                  "tunnel_public_key is for nodes with \"connection\": \"tunnel\"");
        return 0;
    }
    if (in->host)
        return sb_field_error(err, "host",
                              "a tunnel node has no host: the core reaches it through its tunnel");
    if (in->port)
        return sb_field_error(err, "port", "a tunnel node's port is its tunnel's, chosen by the core");
    if (!in->tunnel_key)
        return sb_field_error(err, "tunnel_public_key",
                              "tunnel_public_key (the node's ed25519 key for its tunnel) is required");
    if (!json_is_string(in->tunnel_key))
        return sb_field_error(err, "tunnel_public_key", "tunnel_public_key must be a string");
    if (!in->fp)
        return sb_field_error(err, "host_key_fingerprint",
                              "host_key_fingerprint is required for a tunnel node (ssh-keygen -l -f "
                              "/etc/ssh/ssh_host_ed25519_key.pub on the node)");
    if (in->docker && json_is_string(in->docker) && strcmp(json_string_value(in->docker), "local") == 0)
        return sb_field_error(err, "docker",
                              "a tunnel node's Docker engine is its own: docker must be \"ssh\"");
    return 0;
}

int nodes_input_read(json_t *b, bool create, struct nodes_input *in, struct sb_err *err)
{
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
    in->connection = json_object_get(b, "connection");
    in->tunnel_key = json_object_get(b, "tunnel_public_key");
    int rc = check_connection(in, create, err);
    if (rc)
        return rc;
    bool tunnel = json_is_string(in->connection) && strcmp(json_string_value(in->connection), "tunnel") == 0;
    if (create) {
        if (!in->name)
            return sb_field_error(err, "name", "name is required");
        if (!in->host && !tunnel)
            return sb_field_error(err, "host", "host is required");
        if (!in->user)
            return sb_field_error(err, "ssh_user", "ssh_user is required");
    }
    if ((in->name && check_name(in->name, err)) || (in->host && check_host(in->host, err)) ||
        (in->port && check_port(in->port, err)) || (in->user && check_user(in->user, err)) ||
        (in->fp && check_fingerprint(in->fp, err)) || (in->labels && check_labels(in->labels, err)) ||
        (in->docker && check_docker(in->docker, err)) ||
        (in->key && check_secret(in->key, "private_key", NODES_KEY_MAX, err)) ||
        (in->pass && check_secret(in->pass, "passphrase", NODES_PASSPHRASE_MAX, err)))
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
    if (!create && in->generate)
        return sb_field_error(err, "generate_key", "generate_key is only for registration; give private_key");
    return 0;
}

/* Each pair its own object, so a key given twice with two values matches
 * nothing, as it should. */
void nodes_label_filter_parse(const char *filter, json_t **pairs, json_t **keys)
{
    *pairs = json_array();
    *keys = json_array();
    char tmp[512];
    sb_strlcpy(tmp, filter ? filter : "", sizeof tmp);
    char *save = NULL;
    for (char *pair = strtok_r(tmp, ",", &save); pair; pair = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq) {
            json_array_append_new(*keys, json_string(pair));
            continue;
        }
        *eq = '\0';
        json_array_append_new(*pairs, json_pack("{s:s}", pair, eq + 1));
    }
}

/* ---- events ------------------------------------------------------------------ */

int nodes_record(struct nodes *n, const char *id, const char *type, json_t *data, const char *outcome,
                 const struct event_actor *actor, struct sb_err *err)
{
    char stream[64];
    snprintf(stream, sizeof stream, "node/%s", id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = outcome};
    ev.actor = actor ? *actor : (struct event_actor){.kind = "system", .name = "node-checker"};
    int64_t seq;
    return store_append(n->store, &ev, &seq, err);
}

/* Appends a successful event together with the node's sealed key (both or
 * neither). */
static int record_with_key(struct nodes *n, const char *id, const char *type, json_t *data,
                           const struct event_actor *actor, const char *sealed_key, const char *sealed_pass,
                           struct sb_err *err)
{
    char stream[64];
    snprintf(stream, sizeof stream, "node/%s", id);
    struct event_new ev = {
        .stream = stream, .type = type, .data = data, .outcome = "success", .actor = *actor};
    return store_node_append_with_credentials(n->store, &ev, id, sealed_key, sealed_pass, err);
}

/* Valid UTF-8 as a JSON string; invalid bytes become U+FFFD. */
json_t *nodes_json_bytes(const char *s, size_t n)
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

/* Marks the node and records the event when a connection met another host
 * key than the pinned one (once per change of status). */
void nodes_note_hostkey_mismatch(struct nodes *n, json_t *node, const struct ssh_diag *d)
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
    if (nodes_record(n, id, "node.hostkey_mismatch", data, "success", NULL, &err))
        log_warn("cannot record node.hostkey_mismatch", "node=%s detail=\"%s\"", id, err.msg);
    else
        log_warn("host key mismatch; node refused", "node=%s presented=%s", id, d->fingerprint);
    json_decref(data);
}

static char *seal_json_string(struct nodes *n, json_t *v)
{
    return v ? crypto_seal(n->master_key, json_string_value(v), json_string_length(v)) : NULL;
}

/* ---- register ------------------------------------------------------------------ */

int nodes_register(struct nodes *n, const struct nodes_input *in, const struct event_actor *actor,
                   json_t **node_out, struct ssh_diag *d, struct sb_err *err)
{
    *node_out = NULL;
    memset(d, 0, sizeof *d);
    char existing[37];
    int rc = store_node_find_name(n->store, json_string_value(in->name), existing, err);
    if (rc == 0)
        return sb_error(err, SB_ECONFLICT, "a node named '%s' exists", json_string_value(in->name));
    if (rc != SB_ENOTFOUND)
        return rc;

    char id[37];
    uuid_v4(id);
    bool generate = json_is_true(in->generate);
    bool tunnel = in->connection && strcmp(json_string_value(in->connection), "tunnel") == 0;
    char tunnel_key[TUNNELS_KEY_MAX] = "";
    int tunnel_port = 0;
    if (tunnel && (rc = nodes_tunnel_prepare(n, in, tunnel_key, sizeof tunnel_key, &tunnel_port, err)))
        return rc;
    struct buf key, pub;
    buf_init(&key, NODES_KEY_MAX + 1);
    buf_init(&pub, 4096);
    char comment[128];
    snprintf(comment, sizeof comment, "serverbox@%s", json_string_value(in->name));
    if (generate)
        ssh_key_generate_ed25519(comment, &key, &pub, err);
    else
        buf_append(&key, json_string_value(in->key), json_string_length(in->key));
    struct ssh_target t = {
        .node_id = id,
        .host = tunnel ? "127.0.0.1" : json_string_value(in->host),
        .port = tunnel     ? tunnel_port
                : in->port ? (int)json_integer_value(in->port)
                           : 22,
        .user = json_string_value(in->user),
        .private_key = key.data,
        .private_key_len = key.len,
        .passphrase = in->pass ? json_string_value(in->pass) : NULL,
        .fingerprint = in->fp ? json_string_value(in->fp) : NULL,
        .handshake_only = generate, /* the public key is not installed yet: learn the host key only */
    };
    struct ssh_session *s = NULL;
    char *sealed_key = NULL, *sealed_pass = NULL;
    json_t *data = NULL;
    char fingerprint[64];
    if (tunnel) {
        /* Nothing to connect to yet: the node dials once its key is in the
         * tunnel sshd's file; its host key is the one given. */
        sb_strlcpy(fingerprint, json_string_value(in->fp), sizeof fingerprint);
        goto record;
    }
    rc = ssh_connect(&t, PROBE_TIMEOUT_MS, &s, d, err);
    if (rc) {
        json_t *fail =
            json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "id", id, "name", json_string_value(in->name), "host",
                      t.host, "port", t.port, "ssh_user", t.user, "reason", err->msg);
        struct sb_err e2 = {0};
        nodes_record(n, id, "node.registered", fail, "failure", actor, &e2);
        json_decref(fail);
        goto out;
    }
    sb_strlcpy(fingerprint, ssh_session_fingerprint(s), sizeof fingerprint);
    ssh_session_close(s);

record:
    sealed_key = crypto_seal(n->master_key, key.data, key.len);
    sealed_pass = seal_json_string(n, in->pass);
    if (!sealed_key || (in->pass && !sealed_pass)) {
        rc = sb_error(err, SB_EINTERNAL, "cannot seal the key");
        goto out;
    }
    char key_type[24];
    ssh_key_type(key.data, key.len, key_type, sizeof key_type);
    data = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "id", id, "name",
                     json_string_value(in->name), "host", t.host, "port", t.port, "ssh_user", t.user,
                     "docker", in->docker ? json_string_value(in->docker) : "ssh", "host_key_fingerprint",
                     fingerprint, "fingerprint_source", in->fp ? "given" : "seen_at_registration", "status",
                     generate || tunnel ? "offline" : "online");
    json_object_set_new(data, "labels", in->labels ? json_incref(in->labels) : json_object());
    if (key_type[0])
        json_object_set_new(data, "key_type", json_string(key_type));
    if (generate) {
        json_object_set_new(data, "public_key", json_string(pub.data));
        json_object_set_new(data, "reason", json_string("waiting for the public key to be installed"));
    }
    if (tunnel) {
        json_object_set_new(data, "connection", json_string("tunnel"));
        json_object_set_new(data, "tunnel_port", json_integer(tunnel_port));
        json_object_set_new(data, "tunnel_public_key", json_string(tunnel_key));
        if (!generate)
            json_object_set_new(data, "reason", json_string("waiting for the node's tunnel"));
    }
    /* The node and its sealed key commit together, or neither does. */
    rc = record_with_key(n, id, "node.registered", data, actor, sealed_key, sealed_pass, err);
    if (rc) {
        if (rc == SB_ECONFLICT && tunnel)
            sb_error(err, SB_ECONFLICT,
                     "a node named '%s' exists, or another registration took tunnel port %d at the same "
                     "time: try again",
                     json_string_value(in->name), tunnel_port);
        else if (rc == SB_ECONFLICT)
            sb_error(err, SB_ECONFLICT, "a node named '%s' exists", json_string_value(in->name));
        goto out;
    }
    if (tunnel)
        nodes_tunnels_sync(n);
    log_info("node registered", "node=%s name=%s fingerprint=%s", id, json_string_value(in->name),
             fingerprint);
    rc = store_node_get(n->store, id, node_out, err);
    if (rc == 0) {
        nodes_docker_follow(n, id, *node_out);
        nodes_check_soon(n, *node_out);
    }
out:
    crypto_buf_wipe(&key);
    buf_release(&pub);
    free(sealed_key);
    free(sealed_pass);
    json_decref(data);
    return rc;
}

/* ---- update ------------------------------------------------------------------ */

int nodes_update(struct nodes *n, json_t *node, const struct nodes_input *in, const struct event_actor *actor,
                 json_t **node_out, struct ssh_diag *d, struct sb_err *err)
{
    *node_out = NULL;
    memset(d, 0, sizeof *d);
    char idc[37];
    sb_strlcpy(idc, json_string_value(json_object_get(node, "id")), sizeof idc);
    if (in->name &&
        strcmp(json_string_value(in->name), json_string_value(json_object_get(node, "name"))) != 0) {
        char other[37];
        struct sb_err e2 = {0};
        if (store_node_find_name(n->store, json_string_value(in->name), other, &e2) == 0)
            return sb_error(err, SB_ECONFLICT, "a node named '%s' exists", json_string_value(in->name));
    }
    if (nodes_is_tunnel(node) && (in->host || in->port))
        return sb_field_error(err, in->host ? "host" : "port",
                              "a tunnel node is reached through its tunnel: its %s cannot be changed",
                              in->host ? "host" : "port");
    if (nodes_is_tunnel(node) && in->docker && strcmp(json_string_value(in->docker), "local") == 0)
        return sb_field_error(err, "docker",
                              "a tunnel node's Docker engine is its own: docker must be \"ssh\"");
    json_t *changes = json_object();
    static const char *const plain[] = {
        "name", "host", "port", "ssh_user", "labels", "docker", "host_key_fingerprint"};
    json_t *vals[] = {in->name, in->host, in->port, in->user, in->labels, in->docker, in->fp};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (vals[i] && !json_equal(vals[i], json_object_get(node, plain[i])))
            json_object_set(changes, plain[i], vals[i]);
    bool reconnect = in->host || in->port || in->user || in->key || in->fp;
    struct nodes_target cur = {0}; /* node NULL: nodes_target_load loads it */
    char *sealed_key = NULL, *sealed_pass = NULL;
    json_t *data = NULL;
    int rc = 0;
    if (reconnect) {
        /* Verify the new settings with one connection before recording them. */
        rc = nodes_target_load(n, idc, &cur, err);
        if (rc)
            goto out;
        struct ssh_target t = cur.t;
        if (in->host)
            t.host = json_string_value(in->host);
        if (in->port)
            t.port = (int)json_integer_value(in->port);
        if (in->user)
            t.user = json_string_value(in->user);
        if (in->fp)
            t.fingerprint = json_string_value(in->fp);
        if (in->key) {
            t.private_key = json_string_value(in->key);
            t.private_key_len = json_string_length(in->key);
            t.passphrase = in->pass ? json_string_value(in->pass) : NULL;
        }
        struct ssh_session *s = NULL;
        rc = ssh_connect(&t, PROBE_TIMEOUT_MS, &s, d, err);
        ssh_session_close(s);
        if (rc) {
            json_t *fail = json_pack("{s:s, s:O, s:s}", "id", idc, "changes", changes, "reason", err->msg);
            struct sb_err e2 = {0};
            nodes_record(n, idc, "node.updated", fail, "failure", actor, &e2);
            json_decref(fail);
            nodes_target_release(&cur);
            goto out;
        }
        if (in->key) {
            char key_type[24];
            ssh_key_type(t.private_key, t.private_key_len, key_type, sizeof key_type);
            json_object_set_new(changes, "key_type", key_type[0] ? json_string(key_type) : json_null());
            json_object_set_new(changes, "public_key", json_null());
            sealed_key = seal_json_string(n, in->key);
            sealed_pass = seal_json_string(n, in->pass);
        }
        nodes_target_release(&cur);
        if (in->key && !sealed_key) {
            rc = sb_error(err, SB_EINTERNAL, "cannot seal the key");
            goto out;
        }
    }
    data = json_pack("{s:s, s:O}", "id", idc, "changes", changes);
    if (in->key)
        json_object_set_new(data, "private_key", json_string("replaced"));
    /* A new key is stored with the change's event, in one transaction: a
     * refused change (a name taken: 409) keeps the old key. */
    rc = in->key ? record_with_key(n, idc, "node.updated", data, actor, sealed_key, sealed_pass, err)
                 : nodes_record(n, idc, "node.updated", data, "success", actor, err);
    if (rc) {
        if (rc == SB_ECONFLICT)
            sb_error(err, SB_ECONFLICT, "a node with that name exists");
        goto out;
    }
    ssh_pool_forget(n->pool, idc);
    if (reconnect)
        ssh_bridge_forget(n->bridges, idc);
    rc = store_node_get(n->store, idc, node_out, err);
    if (rc == 0) {
        nodes_docker_follow(n, idc, *node_out);
        if (reconnect || in->docker)
            nodes_check_soon(n, *node_out);
    }
out:
    free(sealed_key);
    free(sealed_pass);
    json_decref(data);
    json_decref(changes);
    return rc;
}

/* ---- delete ------------------------------------------------------------------ */

int nodes_delete(struct nodes *n, json_t *node, const struct event_actor *actor, struct sb_err *err)
{
    char id[37];
    sb_strlcpy(id, json_string_value(json_object_get(node, "id")), sizeof id);
    json_t *data = json_pack("{s:s, s:O}", "id", id, "name", json_object_get(node, "name"));
    int rc = nodes_record(n, id, "node.deleted", data, "success", actor, err);
    json_decref(data);
    if (rc)
        return rc;
    /* A revoked tunnel node: its key line goes (no new tunnel), then its
     * live tunnel is cut, its port being no node's any more. */
    if (nodes_is_tunnel(node))
        nodes_tunnels_sync(n);
    ssh_pool_forget(n->pool, id);
    nodes_docker_follow(n, id, NULL);
    ssh_bridge_forget(n->bridges, id);
    nodes_checks_forget(n, id);
    return 0;
}

/* ---- exec ------------------------------------------------------------------ */

int nodes_exec_run(struct nodes *n, json_t *node, const struct nodes_exec *x, const struct event_actor *actor,
                   json_t **result_out, struct ssh_diag *d, struct sb_err *err)
{
    *result_out = NULL;
    memset(d, 0, sizeof *d);
    struct nodes_target t = {.node = node};
    int rc = nodes_target_load(n, json_string_value(json_object_get(node, "id")), &t, err);
    if (rc) {
        nodes_target_release(&t);
        return rc;
    }
    struct ssh_exec_opts o = {
        .command = x->command, .timeout_ms = x->timeout_ms, .max_output = n->max_output};
    struct ssh_exec_result r;
    ssh_exec_result_init(&r);
    rc = ssh_pool_exec(n->pool, &t.t, &o, &r, d, err);
    const char *id = t.t.node_id;
    json_t *ev = json_pack("{s:s, s:s}", "id", id, "command", x->command);
    if (rc) {
        json_object_set_new(ev, "error", json_string(err->msg));
        json_object_set_new(ev, "started", json_boolean(r.started));
        if (d->failure != SSH_FAIL_NONE)
            json_object_set_new(ev, "failure", json_string(ssh_failure_name(d->failure)));
    } else {
        json_object_set_new(ev, "exit_code",
                            r.timed_out || r.exit_signal[0] ? json_null() : json_integer(r.exit_code));
        json_object_set_new(ev, "duration_ms", json_integer(r.duration_ms));
        json_object_set_new(ev, "timed_out", json_boolean(r.timed_out));
        json_object_set_new(ev, "truncated", json_boolean(r.truncated));
    }
    struct sb_err e2 = {0};
    if (nodes_record(n, id, "node.exec", ev, rc || r.timed_out ? "failure" : "success", actor, &e2))
        log_warn("cannot record node.exec", "node=%s detail=\"%s\"", id, e2.msg);
    json_decref(ev);
    if (rc) {
        if (d->failure == SSH_FAIL_HOSTKEY)
            nodes_note_hostkey_mismatch(n, t.node, d);
    } else {
        json_t *out =
            json_pack("{s:o, s:o, s:I, s:b, s:b}", "stdout", nodes_json_bytes(r.out.data, r.out.len),
                      "stderr", nodes_json_bytes(r.err.data, r.err.len), "duration_ms",
                      (json_int_t)r.duration_ms, "truncated", r.truncated, "timed_out", r.timed_out);
        json_object_set_new(out, "exit_code",
                            r.timed_out || r.exit_signal[0] ? json_null() : json_integer(r.exit_code));
        if (r.exit_signal[0])
            json_object_set_new(out, "signal", json_string(r.exit_signal));
        *result_out = out;
    }
    ssh_exec_result_release(&r);
    nodes_target_release(&t);
    return rc;
}
