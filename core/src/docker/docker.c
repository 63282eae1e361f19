/*
 * The client object: configuration, the node → socket resolution, and the
 * threads it owns (the follow-stream I/O thread and one /events watcher per
 * engine; for now the local engine's).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct docker *docker_open(const struct docker_config *cfg, struct sb_err *err)
{
    const char *sock = cfg->local_socket ? cfg->local_socket : "/var/run/docker.sock";
    if (strlen(sock) >= DOCKER_SOCKET_MAX) {
        sb_error(err, SB_EINVAL, "--docker-socket is longer than %d bytes", DOCKER_SOCKET_MAX - 1);
        return NULL;
    }
    struct docker *d = calloc(1, sizeof *d);
    if (!d) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    sb_strlcpy(d->local_socket, sock, sizeof d->local_socket);
    d->store = cfg->store;
    pthread_mutex_init(&d->lock, NULL);
    if (docker_streams_start(d, err)) {
        docker_close(d);
        return NULL;
    }
    if (d->store)
        d->watches = docker_watch_start(d, DOCKER_LOCAL_NODE, d->local_socket);
    return d;
}

void docker_close(struct docker *d)
{
    if (!d)
        return;
    atomic_store(&d->stopping, true);
    pthread_mutex_lock(&d->lock);
    struct docker_watch *w = d->watches;
    d->watches = NULL;
    pthread_mutex_unlock(&d->lock);
    docker_watch_stop(w);
    docker_streams_stop(d);
    pthread_mutex_destroy(&d->lock);
    docker_thread_cleanup();
    free(d);
}

void docker_set_resolver(struct docker *d, docker_resolver_fn fn, void *ctx)
{
    pthread_mutex_lock(&d->lock);
    d->resolver = fn;
    d->resolver_ctx = ctx;
    pthread_mutex_unlock(&d->lock);
}

int docker_endpoint_for_node(struct docker *d, const char *node_id, char *socket_out, size_t len,
                             char *name_out, size_t name_len, struct sb_err *err)
{
    if (strcmp(node_id, DOCKER_LOCAL_NODE) == 0) {
        sb_strlcpy(socket_out, d->local_socket, len);
        sb_strlcpy(name_out, DOCKER_LOCAL_NODE, name_len);
        return 0;
    }
    pthread_mutex_lock(&d->lock);
    docker_resolver_fn fn = d->resolver;
    void *ctx = d->resolver_ctx;
    pthread_mutex_unlock(&d->lock);
    if (!fn)
        return sb_error(err, SB_ENOTFOUND, "no such node");
    return fn(ctx, node_id, socket_out, len, name_out, name_len, err);
}

void docker_get_stats(struct docker *d, struct docker_stats *out)
{
    out->engine_events = atomic_load(&d->engine_events);
    out->events_appended = atomic_load(&d->events_appended);
    out->watch_connects = atomic_load(&d->watch_connects);
    out->follow_streams = atomic_load(&d->follow_streams);
}
