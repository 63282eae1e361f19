/*
 * Targets: a node's row with its decrypted login, and Docker on nodes (the
 * resolver the Docker client asks for a node's engine socket, the SSH
 * bridges behind it, and the engine watchers of --node-docker-events).
 */
#include "internal.h"

#include "../docker/docker.h"

#include <stdlib.h>
#include <string.h>

int nodes_target_load(struct nodes *n, const char *id, struct nodes_target *out, struct sb_err *err)
{
    json_t *given = out->node;
    memset(out, 0, sizeof *out);
    out->node = given;
    buf_init(&out->key, NODES_KEY_MAX + 1);
    buf_init(&out->passphrase, NODES_PASSPHRASE_MAX + 1);
    int rc = out->node ? 0 : store_node_get(n->store, id, &out->node, err);
    if (rc)
        return rc;
    char *sk = NULL, *sp = NULL;
    rc = store_node_credentials_get(n->store, id, &sk, &sp, err);
    if (rc == 0)
        rc = crypto_open(n->master_key, sk, &out->key, err);
    if (rc == 0 && sp)
        rc = crypto_open(n->master_key, sp, &out->passphrase, err);
    free(sk);
    free(sp);
    if (rc) {
        if (rc == SB_EINVAL)
            sb_error(err, SB_EINTERNAL, "the node's credentials cannot be opened with this master key");
        nodes_target_release(out);
        return err ? err->code : rc;
    }
    json_t *row = out->node;
    out->t = (struct ssh_target){
        .node_id = json_string_value(json_object_get(row, "id")),
        .host = json_string_value(json_object_get(row, "host")),
        .port = (int)json_integer_value(json_object_get(row, "port")),
        .user = json_string_value(json_object_get(row, "ssh_user")),
        .private_key = out->key.data,
        .private_key_len = out->key.len,
        .passphrase = out->passphrase.len ? out->passphrase.data : NULL,
        .fingerprint = json_string_value(json_object_get(row, "host_key_fingerprint")),
        .tunnel = nodes_is_tunnel(row),
    };
    return 0;
}

void nodes_target_release(struct nodes_target *t)
{
    crypto_buf_wipe(&t->key);
    crypto_buf_wipe(&t->passphrase);
    json_decref(t->node);
    memset(&t->t, 0, sizeof t->t);
    t->node = NULL;
}

static int bridge_target_load(void *ctx, const char *node_id, struct ssh_target *t, void **handle,
                              struct sb_err *err)
{
    struct nodes *n = ctx;
    struct nodes_target *nt = calloc(1, sizeof *nt);
    if (!nt)
        return sb_error(err, SB_ENOMEM, "out of memory");
    int rc = nodes_target_load(n, node_id, nt, err);
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
    nodes_target_release(handle);
    free(handle);
}

/* docker_resolver_fn: a registered node's engine socket and name. */
static int docker_resolve(void *ctx, const char *node_id, char *socket_out, size_t len, char *name_out,
                          size_t name_len, struct sb_err *err)
{
    struct nodes *n = ctx;
    json_t *node = NULL;
    int rc = store_node_get(n->store, node_id, &node, err);
    if (rc)
        return rc;
    sb_strlcpy(name_out, json_string_value(json_object_get(node, "name")), name_len);
    const char *docker = json_string_value(json_object_get(node, "docker"));
    if (docker && strcmp(docker, "local") == 0)
        sb_strlcpy(socket_out, n->local_docker, len);
    else
        rc = ssh_bridge_socket(n->bridges, node_id, n->remote_docker, socket_out, len, err);
    json_decref(node);
    return rc;
}

/* Starts or stops the engine watcher of a node (its row, borrowed) to match
 * its docker setting: with --node-docker-events, every node reached over
 * SSH has one (container.* events and the containers projection); nodes
 * whose docker is "local" share the local engine's. */
void nodes_docker_follow(struct nodes *n, const char *id, json_t *node)
{
    if (!n->watch_events || !n->docker || !id)
        return;
    const char *docker = json_string_value(json_object_get(node, "docker"));
    bool want = node && docker && strcmp(docker, "ssh") == 0;
    pthread_mutex_lock(&n->lock);
    bool have = json_object_get(n->watched, id) != NULL;
    if (want && !have)
        json_object_set_new(n->watched, id, json_true());
    else if (!want && have)
        json_object_del(n->watched, id);
    pthread_mutex_unlock(&n->lock);
    struct sb_err err = {0};
    if (want && !have && docker_watch_node(n->docker, id, &err))
        log_warn("cannot watch the node's docker events", "node=%s detail=\"%s\"", id, err.msg);
    else if (!want && have)
        docker_unwatch_node(n->docker, id);
}

void nodes_attach_docker(struct nodes *n, struct docker *docker)
{
    if (!n || !docker)
        return;
    n->docker = docker;
    docker_set_resolver(docker, docker_resolve, n);
    json_t *all = NULL;
    struct sb_err err = {0};
    if (n->watch_events && store_node_list(n->store, &all, &err) == 0) {
        size_t i;
        json_t *row;
        json_array_foreach(all, i, row)
        {
            nodes_docker_follow(n, json_string_value(json_object_get(row, "id")), row);
        }
    } else if (n->watch_events) {
        log_warn("cannot list nodes to watch their docker events", "detail=\"%s\"", err.msg);
    }
    json_decref(all);
}

/* Stops the engine watchers (they resolve through us) and detaches. */
static void docker_detach(struct nodes *n)
{
    if (!n->docker)
        return;
    const char *id;
    json_t *v;
    json_object_foreach(n->watched, id, v)
    {
        docker_unwatch_node(n->docker, id);
    }
    docker_set_resolver(n->docker, NULL, NULL);
    n->docker = NULL;
}

int nodes_bridges_open(struct nodes *n, struct sb_err *err)
{
    n->watched = json_object();
    struct ssh_bridge_config bc = {.pool = n->pool,
                                   .target_load = bridge_target_load,
                                   .target_release = bridge_target_release,
                                   .ctx = n};
    n->bridges = ssh_bridges_new(&bc, err);
    return n->bridges ? 0 : (err ? err->code : SB_EINTERNAL);
}

void nodes_bridges_close(struct nodes *n)
{
    docker_detach(n);
    json_decref(n->watched);
    n->watched = NULL;
    ssh_bridges_free(n->bridges);
    n->bridges = NULL;
}
