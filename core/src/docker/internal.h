/*
 * Private to docker/: the client object shared by its files.
 */
#ifndef SB_DOCKER_INTERNAL_H
#define SB_DOCKER_INTERNAL_H

#include "docker.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

struct docker_follow;
struct docker_watch;

struct docker {
    char local_socket[DOCKER_SOCKET_MAX];
    struct store *store;
    docker_resolver_fn resolver;
    void *resolver_ctx;
    bool (*watch_gate)(void *ctx); /* remote watchers connect only while true; NULL = always */
    void *watch_gate_ctx;
    pthread_mutex_t lock; /* resolver and the lists below */

    /* follow streams: one I/O thread drives every stream's easy handle */
    CURLM *multi;
    pthread_t io_thread;
    bool io_started;
    struct docker_follow *follows;     /* owned by the I/O thread */
    struct docker_follow *follows_new; /* queued for the I/O thread */
    bool streams_closed;
    atomic_bool streams_acked; /* the I/O thread has ended every stream */
    atomic_bool stopping;

    struct docker_watch *watches;

    atomic_uint_fast64_t engine_events, events_appended, watch_connects, follow_streams;
};

/* stream.c */
int docker_streams_start(struct docker *d, struct sb_err *err);
void docker_streams_stop(struct docker *d);
/* watch.c */
struct docker_watch *docker_watch_start(struct docker *d, const char *node_id, const char *socket);
void docker_watch_stop(struct docker_watch *w);
/* client.c */
void docker_thread_cleanup(void);

#endif
