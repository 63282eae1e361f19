/*
 * Nodes behind NAT: the registry's side of tunnels/. A tunnel node's row
 * says connection "tunnel", its host and port are 127.0.0.1 and its
 * tunnel_port (where its reverse forward listens on the core's host), so
 * the pool, the Docker bridge, exec and terminals reach it unchanged.
 * This file keeps the tunnel sshd's authorized_keys equal to the registry,
 * picks ports, cuts revoked tunnels and records the tunnels' state.
 */
#include "internal.h"

#include "../tunnels/tunnels.h"

#include <stdlib.h>
#include <string.h>

int nodes_tunnels_open(struct nodes *n, const struct config *cfg, struct sb_err *err)
{
    pthread_mutex_init(&n->tunnel_lock, NULL);
    const char *path = config_get(cfg, "tunnel-authorized-keys");
    n->tunnel_keys = path && *path ? path : NULL;
    n->tunnel_endpoint = config_get(cfg, "tunnel-endpoint");
    n->tunnel_user = config_get(cfg, "tunnel-user");
    const char *hk = config_get(cfg, "tunnel-host-key");
    if (hk && *hk) {
        /* Its type and key only (the comment names the machine). */
        struct buf b;
        buf_init(&b, 4096);
        int rc = file_read_all(hk, 4096, &b, err);
        char type[32] = "", key[200] = "";
        if (rc == 0 && (sscanf(b.data, "%31s %199s", type, key) != 2 || strncmp(type, "ssh-", 4) != 0))
            rc = sb_error(err, SB_EINVAL, "--tunnel-host-key: '%s' is not an OpenSSH public key", hk);
        buf_release(&b);
        if (rc)
            return rc;
        snprintf(n->tunnel_host_key, sizeof n->tunnel_host_key, "%s %s", type, key);
    }
    if (tunnels_range_parse(config_get(cfg, "tunnel-port-range"), &n->tunnel_port_min, &n->tunnel_port_max,
                            err))
        return SB_EINVAL;
    nodes_tunnels_sync(n);
    return 0;
}

bool nodes_is_tunnel(json_t *node)
{
    const char *c = json_string_value(json_object_get(node, "connection"));
    return c && strcmp(c, "tunnel") == 0;
}

/* Cuts forwards in the port range that no tunnel node owns: a node just
 * deleted (sshd reads authorized_keys at login only, so its established
 * tunnel outlives its line), one deleted on another daemon, or a login that
 * read the file just before its line went. Only the tunnel account's sshd
 * processes are signalled. */
static void cut_orphans(struct nodes *n, json_t *all)
{
    int ports[64];
    size_t np = tunnels_listening(n->tunnel_port_min, n->tunnel_port_max, ports, 64);
    for (size_t k = 0; k < np; k++) {
        bool owned = false;
        size_t i;
        json_t *row;
        json_array_foreach(all, i, row)
        {
            if (nodes_is_tunnel(row) && json_integer_value(json_object_get(row, "tunnel_port")) == ports[k])
                owned = true;
        }
        int killed = 0;
        struct sb_err err = {0};
        if (owned)
            continue;
        if (tunnels_cut(ports[k], n->tunnel_user, &killed, &err))
            log_warn("cannot cut a tunnel no node owns", "port=%d detail=\"%s\"", ports[k], err.msg);
        else if (killed)
            log_info("tunnel no node owns cut", "port=%d processes=%d", ports[k], killed);
    }
}

void nodes_tunnels_sync(struct nodes *n)
{
    if (!n->tunnel_keys)
        return;
    /* The list and the write under one lock: a sync that listed before a
     * deletion must not write after the deletion's own sync. */
    pthread_mutex_lock(&n->tunnel_lock);
    json_t *all = NULL;
    struct sb_err err = {0};
    if (store_node_list(n->store, &all, &err)) {
        pthread_mutex_unlock(&n->tunnel_lock);
        log_warn("cannot list nodes for the tunnel keys", "detail=\"%s\"", err.msg);
        return;
    }
    struct buf text;
    buf_init(&text, 0);
    buf_puts(&text, "# written by serverbox-core from its node registry (--tunnel-authorized-keys); "
                    "every change rewrites it\n");
    size_t i, lines = 0;
    json_t *row;
    int rc = 0;
    json_array_foreach(all, i, row)
    {
        if (!nodes_is_tunnel(row))
            continue;
        rc = tunnels_line(json_string_value(json_object_get(row, "tunnel_public_key")),
                          (int)json_integer_value(json_object_get(row, "tunnel_port")),
                          json_string_value(json_object_get(row, "id")), &text, &err);
        if (rc) {
            log_warn("tunnel node left out of the tunnel keys", "node=%s detail=\"%s\"",
                     json_string_value(json_object_get(row, "id")), err.msg);
            rc = 0;
            continue;
        }
        lines++;
    }
    bool changed = false;
    rc = tunnels_file_write(n->tunnel_keys, text.data, text.len, &changed, &err);
    if (rc)
        log_warn("cannot write the tunnel keys", "path=%s detail=\"%s\"", n->tunnel_keys, err.msg);
    else if (changed)
        log_info("tunnel keys written", "path=%s nodes=%zu", n->tunnel_keys, lines);
    if (rc == 0)
        cut_orphans(n, all);
    pthread_mutex_unlock(&n->tunnel_lock);
    buf_release(&text);
    json_decref(all);
}

int nodes_tunnel_prepare(struct nodes *n, const struct nodes_input *in, char *key, size_t keylen, int *port,
                         struct sb_err *err)
{
    if (!n->tunnel_keys)
        return sb_field_error(err, "connection",
                              "this core has no tunnel sshd configured (--tunnel-authorized-keys): only "
                              "\"direct\" nodes");
    if (tunnels_public_key_check(json_string_value(in->tunnel_key), key, keylen, err))
        return SB_EINVAL;
    json_t *all = NULL;
    int rc = store_node_list(n->store, &all, err);
    if (rc)
        return rc;
    size_t i, n_used = 0;
    json_t *row;
    int *used = calloc(json_array_size(all) + 1, sizeof *used);
    if (!used) {
        json_decref(all);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    json_array_foreach(all, i, row)
    {
        if (!nodes_is_tunnel(row))
            continue;
        used[n_used++] = (int)json_integer_value(json_object_get(row, "tunnel_port"));
        const char *other = json_string_value(json_object_get(row, "tunnel_public_key"));
        if (other && strcmp(other, key) == 0 && rc == 0)
            rc = sb_error(err, SB_ECONFLICT, "node '%s' has this tunnel key already: give each node its own",
                          json_string_value(json_object_get(row, "name")));
    }
    if (rc == 0)
        rc = tunnels_port_pick(n->tunnel_port_min, n->tunnel_port_max, used, n_used, port, err);
    free(used);
    json_decref(all);
    return rc;
}

void nodes_tunnel_note(struct nodes *n, json_t *node, bool up, const char *reason)
{
    const char *prev = json_string_value(json_object_get(node, "tunnel_status"));
    const char *now = up ? "up" : "down";
    if (prev && strcmp(prev, now) == 0)
        return;
    const char *id = json_string_value(json_object_get(node, "id"));
    json_t *data = json_pack("{s:s, s:s, s:O}", "id", id, "previous", prev ? prev : "unknown", "port",
                             json_object_get(node, "tunnel_port"));
    if (!up && reason && *reason)
        json_object_set_new(data, "reason", nodes_json_bytes(reason, strlen(reason)));
    struct sb_err err = {0};
    if (nodes_record(n, id, up ? "node.tunnel_up" : "node.tunnel_down", data, "success", NULL, &err))
        log_warn("cannot record the node's tunnel state", "node=%s detail=\"%s\"", id, err.msg);
    else
        log_info("node tunnel changed", "node=%s tunnel=%s", id, now);
    json_decref(data);
}

void nodes_add_tunnel(struct nodes *n, json_t *node)
{
    if (!nodes_is_tunnel(node) || !n->tunnel_endpoint || !*n->tunnel_endpoint)
        return;
    /* host:port, or [v6]:port */
    char host[300];
    sb_strlcpy(host, n->tunnel_endpoint, sizeof host);
    char *colon = strrchr(host, ':');
    const char *eport = "22";
    if (colon && !strchr(colon, ']')) {
        *colon = '\0';
        eport = colon + 1;
    }
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ssh -N -R 127.0.0.1:%lld:localhost:22 -o ExitOnForwardFailure=yes -o ServerAliveInterval=15 "
             "-o ServerAliveCountMax=3 -p %s %s@%s",
             (long long)json_integer_value(json_object_get(node, "tunnel_port")), eport,
             n->tunnel_user ? n->tunnel_user : "sbx-tunnel", host);
    json_object_set_new(node, "tunnel_command", json_string(cmd));
    if (n->tunnel_host_key[0]) {
        char kh[sizeof host + sizeof n->tunnel_host_key + 16];
        /* known_hosts names a host on another port than 22 as [host]:port */
        if (strcmp(eport, "22") == 0)
            snprintf(kh, sizeof kh, "%s %s", host, n->tunnel_host_key);
        else
            snprintf(kh, sizeof kh, "[%s]:%s %s", host, eport, n->tunnel_host_key);
        json_object_set_new(node, "tunnel_known_hosts", json_string(kh));
    }
}
