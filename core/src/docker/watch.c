/*
 * The /events watcher: one thread per engine holds `GET /events` open (a
 * curl multi handle, so the thread can wait on the socket and on a stop
 * request at once), turns each container event into a domain event appended
 * with actor kind system, and reconnects with backoff when the engine goes
 * away.
 *
 * Events that happen while the stream is down are not replayed; instead,
 * each time the stream is (re)established the watcher reconciles: it lists
 * the engine's containers and appends `container.observed` for every one
 * whose state the projection does not know, and `container.destroyed`
 * (observed) for rows whose container is gone.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define EVENT_LINE_MAX ((size_t)1 << 20)

struct docker_watch {
    struct docker *d;
    char node_id[64];
    char socket[DOCKER_SOCKET_MAX];
    pthread_t thread;
    CURLM *multi;
    struct buf line;
    int64_t last_ns;  /* timeNano of the last engine event handled */
    atomic_bool stop; /* this watch only (docker_unwatch_node) */
    struct docker_watch *next;
};

static void append_event(struct docker_watch *w, const char *type, json_t *data)
{
    const char *cid = json_string_value(json_object_get(data, "container_id"));
    char stream[200];
    snprintf(stream, sizeof stream, "container/%s/%s", w->node_id, cid ? cid : "unknown");
    struct event_new ev = {.stream = stream,
                           .type = type,
                           .data = data,
                           .actor = {.kind = "system", .name = "docker-events"},
                           .outcome = "success"};
    struct sb_err err = {0};
    int64_t seq;
    if (store_append(w->d->store, &ev, &seq, &err) == 0)
        atomic_fetch_add(&w->d->events_appended, 1);
    else
        log_warn("docker event not recorded", "node=%s type=%s detail=\"%s\"", w->node_id, type, err.msg);
}

static void handle_line(struct docker_watch *w, const char *line, size_t len)
{
    json_t *e = json_loadb(line, len, 0, NULL);
    if (!e)
        return;
    atomic_fetch_add(&w->d->engine_events, 1);
    /* After a reconnect with `since`, the engine repeats what we had. */
    json_t *tn = json_object_get(e, "timeNano");
    if (json_is_integer(tn)) {
        if (json_integer_value(tn) <= w->last_ns) {
            json_decref(e);
            return;
        }
        w->last_ns = json_integer_value(tn);
    }
    const char *type;
    json_t *data;
    if (docker_translate_event(w->node_id, e, &type, &data) == 0) {
        append_event(w, type, data);
        json_decref(data);
    }
    json_decref(e);
}

static size_t on_events(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct docker_watch *w = ud;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n; i++) {
        if (ptr[i] == '\n') {
            if (w->line.len)
                handle_line(w, w->line.data, w->line.len);
            buf_reset(&w->line);
        } else if (buf_putc(&w->line, ptr[i])) {
            buf_reset(&w->line); /* an absurd line: drop it */
        }
    }
    return n;
}

static const char *short_name(json_t *names)
{
    const char *n = json_string_value(json_array_get(names, 0));
    if (n && n[0] == '/')
        n++;
    return n ? n : "";
}

static void reconcile(struct docker_watch *w)
{
    struct sb_err err = {0};
    json_t *list = NULL;
    if (docker_call(w->socket, "GET", "/containers/json?all=1", NULL, 10000, &list, NULL, &err)) {
        log_warn("docker reconcile failed", "node=%s detail=\"%s\"", w->node_id, err.msg);
        return;
    }
    json_t *rows = NULL;
    if (store_containers_of_node(w->d->store, w->node_id, &rows, &err)) {
        log_warn("docker reconcile failed", "node=%s detail=\"%s\"", w->node_id, err.msg);
        json_decref(list);
        return;
    }
    json_t *seen = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        const char *state = json_string_value(json_object_get(c, "State"));
        if (!id || !state)
            continue;
        json_object_set_new(seen, id, json_true());
        const char *known = NULL;
        size_t j;
        json_t *r;
        json_array_foreach(rows, j, r)
        {
            if (json_equal(json_object_get(r, "container_id"), json_object_get(c, "Id")))
                known = json_string_value(json_object_get(r, "state"));
        }
        if (known && strcmp(known, state) == 0)
            continue;
        json_t *labels = json_object_get(c, "Labels");
        json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:b}", "node_id", w->node_id, "container_id",
                                 id, "name", short_name(json_object_get(c, "Names")), "image",
                                 json_string_value(json_object_get(c, "Image")) ?: "", "state", state,
                                 "labels", json_is_object(labels) ? labels : json_object(), "observed", 1);
        if (data) {
            append_event(w, "container.observed", data);
            json_decref(data);
        }
    }
    size_t j;
    json_t *r;
    json_array_foreach(rows, j, r)
    {
        const char *id = json_string_value(json_object_get(r, "container_id"));
        if (!id || json_object_get(seen, id))
            continue;
        json_t *data = json_pack("{s:s, s:s, s:s, s:b}", "node_id", w->node_id, "container_id", id, "state",
                                 "removed", "observed", 1);
        append_event(w, "container.destroyed", data);
        json_decref(data);
    }
    json_decref(seen);
    json_decref(rows);
    json_decref(list);
}

/* Sleeps up to ms, returning early when the client stops. */
static bool stopping(struct docker_watch *w)
{
    return atomic_load(&w->d->stopping) || atomic_load(&w->stop);
}

static void pause_ms(struct docker_watch *w, int ms)
{
    int64_t end = time_mono_ms() + ms;
    while (!stopping(w)) {
        int64_t left = end - time_mono_ms();
        if (left <= 0)
            return;
        curl_multi_poll(w->multi, NULL, 0, (int)(left < 1000 ? left : 1000), NULL);
    }
}

static bool gated_off(struct docker_watch *w)
{
    return w->d->watch_gate && strcmp(w->node_id, DOCKER_LOCAL_NODE) != 0 &&
           !w->d->watch_gate(w->d->watch_gate_ctx);
}

void docker_set_remote_watch_gate(struct docker *d, bool (*gate)(void *ctx), void *ctx)
{
    d->watch_gate = gate;
    d->watch_gate_ctx = ctx;
}

static void *watch_main(void *arg)
{
    struct docker_watch *w = arg;
    struct docker *d = w->d;
    int backoff = BACKOFF_MIN_MS;
    while (!stopping(w)) {
        if (gated_off(w)) {
            pause_ms(w, 500);
            continue;
        }
        char prefix[16];
        struct sb_err err = {0};
        /* A remote node's bridged socket may change between connections. */
        char name[128];
        if (strcmp(w->node_id, DOCKER_LOCAL_NODE) != 0 &&
            docker_endpoint_for_node(d, w->node_id, w->socket, sizeof w->socket, name, sizeof name, &err)) {
            pause_ms(w, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        if (docker_api_prefix(w->socket, prefix, sizeof prefix, &err)) {
            pause_ms(w, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        CURL *e = curl_easy_init();
        char url[128];
        /* filters={"type":["container"]} */
        snprintf(url, sizeof url,
                 "http://localhost%s/events?filters=%%7B%%22type%%22%%3A%%5B%%22container%%22%%5D%%7D",
                 prefix);
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, w->socket);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_events);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
        buf_reset(&w->line);
        curl_multi_add_handle(w->multi, e);
        bool reconciled = false;
        int64_t connected_at = 0;
        for (;;) {
            int running = 0;
            curl_multi_perform(w->multi, &running);
            if (!reconciled) {
                long status = 0;
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
                if (status == 200) {
                    reconciled = true;
                    connected_at = time_mono_ms();
                    atomic_fetch_add(&d->watch_connects, 1);
                    log_info("docker events connected", "node=%s api=%s", w->node_id, prefix);
                    reconcile(w);
                    continue;
                }
            }
            if (!running || stopping(w) || gated_off(w))
                break;
            curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
        }
        curl_multi_remove_handle(w->multi, e);
        curl_easy_cleanup(e);
        if (stopping(w))
            break;
        if (gated_off(w)) {
            log_info("docker events left to the daemon holding the duty", "node=%s", w->node_id);
            continue;
        }
        if (connected_at)
            log_warn("docker events stream ended; reconnecting", "node=%s", w->node_id);
        if (connected_at && time_mono_ms() - connected_at > 10000)
            backoff = BACKOFF_MIN_MS;
        pause_ms(w, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    docker_thread_cleanup();
    return NULL;
}

struct docker_watch *docker_watch_start(struct docker *d, const char *node_id, const char *socket)
{
    struct docker_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->d = d;
    sb_strlcpy(w->node_id, node_id, sizeof w->node_id);
    sb_strlcpy(w->socket, socket, sizeof w->socket);
    buf_init(&w->line, EVENT_LINE_MAX);
    w->multi = curl_multi_init();
    if (!w->multi || pthread_create(&w->thread, NULL, watch_main, w)) {
        if (w->multi)
            curl_multi_cleanup(w->multi);
        buf_release(&w->line);
        free(w);
        return NULL;
    }
    return w;
}

void docker_watch_stop(struct docker_watch *w)
{
    while (w) {
        struct docker_watch *next = w->next;
        atomic_store(&w->stop, true);
        curl_multi_wakeup(w->multi);
        pthread_join(w->thread, NULL);
        curl_multi_cleanup(w->multi);
        buf_release(&w->line);
        free(w);
        w = next;
    }
}

int docker_watch_node(struct docker *d, const char *node_id, struct sb_err *err)
{
    if (!d->store)
        return sb_error(err, SB_EINVAL, "this client records no events");
    if (strlen(node_id) >= sizeof((struct docker_watch *)0)->node_id)
        return sb_error(err, SB_EINVAL, "node id is too long");
    pthread_mutex_lock(&d->lock);
    for (struct docker_watch *w = d->watches; w; w = w->next) {
        if (strcmp(w->node_id, node_id) == 0) {
            pthread_mutex_unlock(&d->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&d->lock);
    struct docker_watch *w = docker_watch_start(d, node_id, "");
    if (!w)
        return sb_error(err, SB_ENOMEM, "cannot start the watcher of node %s", node_id);
    pthread_mutex_lock(&d->lock);
    w->next = d->watches;
    d->watches = w;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

void docker_unwatch_node(struct docker *d, const char *node_id)
{
    pthread_mutex_lock(&d->lock);
    struct docker_watch **pp = &d->watches, *found = NULL;
    while (*pp) {
        if (strcmp((*pp)->node_id, node_id) == 0) {
            found = *pp;
            *pp = found->next;
            found->next = NULL;
            break;
        }
        pp = &(*pp)->next;
    }
    pthread_mutex_unlock(&d->lock);
    docker_watch_stop(found);
}
