/*
 * Follow streams: `GET …/logs?follow=1` relayed as Server-Sent Events.
 *
 * One I/O thread drives every stream's curl easy handle through a multi
 * handle. Its write callback decodes frames into lines and appends SSE text
 * to the stream's capped queue, waking the client's stream if it was
 * suspended. The shared SSE writer (http/sse.h) drains the queue through
 * fill, under the stream's lock; when it is empty the writer suspends the
 * stream. Backpressure: over QUEUE_HIGH the write callback pauses the
 * transfer; fill asks the I/O thread to unpause once it has drained below
 * QUEUE_LOW.
 *
 * A stream is shared by the I/O thread and the writer, each holding a
 * reference. The client going away (the writer is done) or the engine
 * ending the stream each drop one.
 */
#include "internal.h"

#include "../http/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_HIGH   ((size_t)256 << 10)
#define QUEUE_LOW    ((size_t)64 << 10)
#define QUEUE_MAX    ((size_t)4 << 20)
#define HEARTBEAT_MS 15000

struct docker_follow {
    pthread_mutex_t lock;
    int refs;
    struct docker *d;
    CURL *easy;
    struct docker_frames frames;
    struct docker_lines lines;
    bool timestamps;
    struct buf out;
    bool paused, want_unpause, done, client_gone, in_multi;
    struct http_sse *w; /* under lock; NULL once the writer is done */
    int64_t last_ms;
    struct docker_follow *next;

    /* image pulls: progress lines instead of log frames, and a callback
     * told the outcome (once) from the I/O thread */
    bool pull;
    char failure[256];
    struct buf errbody;
    docker_stream_done_fn done_cb;
    void *done_ctx;
};

static void follow_unref(struct docker_follow *f)
{
    pthread_mutex_lock(&f->lock);
    int left = --f->refs;
    pthread_mutex_unlock(&f->lock);
    if (left)
        return;
    if (f->easy)
        curl_easy_cleanup(f->easy);
    docker_lines_release(&f->lines);
    buf_release(&f->out);
    buf_release(&f->errbody);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* Called with f->lock held: wakes the client's stream if it is waiting. */
static void follow_wake_locked(struct docker_follow *f)
{
    http_sse_wake_locked(f->w);
}

static int on_progress(struct docker_follow *f, const char *line, size_t len)
{
    json_t *j = json_loadb(line, len, 0, NULL);
    if (!j)
        return 0;
    const char *e = json_string_value(json_object_get(j, "error"));
    if (e && !f->failure[0])
        sb_strlcpy(f->failure, e, sizeof f->failure);
    char *c = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (c) {
        buf_printf(&f->out, "event: progress\ndata: %s\n\n", c);
        free(c);
    }
    return 0;
}

static int on_line(void *ctx, int stream, const char *line, size_t len)
{
    struct docker_follow *f = ctx;
    if (f->pull)
        return on_progress(f, line, len);
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(stream == DOCKER_STDERR ? "stderr" : "stdout"));
    const char *text = line;
    size_t tlen = len;
    if (f->timestamps) {
        /* "2026-11-22T03:01:54.123456789Z message" */
        const char *sp = memchr(line, ' ', len);
        if (sp) {
            json_object_set_new(o, "ts", json_stringn(line, (size_t)(sp - line)));
            text = sp + 1;
            tlen = len - (size_t)(sp - line) - 1;
        }
    }
    json_t *s = json_stringn(text, tlen);
    if (!s) {
        /* not UTF-8: pass it on with the bad bytes replaced */
        char *copy = malloc(tlen + 1);
        for (size_t i = 0; copy && i < tlen; i++)
            copy[i] = (unsigned char)text[i] < 0x80 ? text[i] : '?';
        s = copy ? json_stringn(copy, tlen) : json_string("");
        free(copy);
    }
    json_object_set_new(o, "line", s);
    char *j = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (j) {
        buf_printf(&f->out, "event: log\ndata: %s\n\n", j);
        free(j);
    }
    return 0;
}

static int on_frame_data(void *ctx, int stream, const char *data, size_t len)
{
    struct docker_follow *f = ctx;
    return docker_lines_feed(&f->lines, stream, data, len);
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct docker_follow *f = ud;
    size_t n = size * nmemb;
    pthread_mutex_lock(&f->lock);
    if (f->client_gone) {
        pthread_mutex_unlock(&f->lock);
        return 0; /* ends the transfer */
    }
    if (f->out.len > QUEUE_HIGH) {
        f->paused = true;
        pthread_mutex_unlock(&f->lock);
        return CURL_WRITEFUNC_PAUSE;
    }
    long status = 0;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        buf_append(&f->errbody, ptr, n);
    } else if (f->pull) {
        docker_lines_feed(&f->lines, DOCKER_STDOUT, ptr, n);
    } else if (docker_frames_feed(&f->frames, ptr, n)) {
        buf_puts(&f->out, "event: error\ndata: {\"message\":\"the engine sent a malformed log stream\"}\n\n");
        n = 0;
    }
    follow_wake_locked(f);
    f->last_ms = time_mono_ms();
    pthread_mutex_unlock(&f->lock);
    return n;
}

static void follow_end_msg(struct docker_follow *f, const char *why, const char *message)
{
    pthread_mutex_lock(&f->lock);
    if (!f->done) {
        docker_lines_flush(&f->lines);
        json_t *o = json_pack("{s:s}", "reason", why);
        if (message && *message) {
            json_t *m = json_string(message);
            json_object_set_new(o, "message", m ? m : json_string("error"));
        }
        char *c = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (c)
            buf_printf(&f->out, "event: end\ndata: %s\n\n", c);
        free(c);
        f->done = true;
    }
    follow_wake_locked(f);
    pthread_mutex_unlock(&f->lock);
}

static void follow_end(struct docker_follow *f, const char *why)
{
    follow_end_msg(f, why, NULL);
}

/* Tells a pull's owner how it ended, once. I/O thread only. */
static void pull_finished(struct docker_follow *f, bool ok, const char *message)
{
    if (!f->done_cb)
        return;
    docker_stream_done_fn cb = f->done_cb;
    f->done_cb = NULL;
    cb(f->done_ctx, ok, message);
}

/* http_sse fill, f->lock held. */
static ssize_t fill(void *ctx, char *out, size_t max)
{
    struct docker_follow *f = ctx;
    if (f->out.len) {
        size_t n = f->out.len < max ? f->out.len : max;
        memcpy(out, f->out.data, n);
        buf_consume(&f->out, n);
        if (f->paused && f->out.len < QUEUE_LOW && !f->want_unpause) {
            f->want_unpause = true;
            curl_multi_wakeup(f->d->multi);
        }
        return (ssize_t)n;
    }
    return f->done ? HTTP_SSE_END : 0;
}

static void stream_done(void *ctx, enum http_sse_close why)
{
    (void)why;
    struct docker_follow *f = ctx;
    pthread_mutex_lock(&f->lock);
    f->w = NULL;
    f->client_gone = true;
    bool wake = !f->done;
    pthread_mutex_unlock(&f->lock);
    if (wake)
        curl_multi_wakeup(f->d->multi);
    atomic_fetch_sub(&f->d->follow_streams, 1);
    follow_unref(f);
}

static int stream_open(struct docker *d, const char *socket, const char *method, const char *path, bool pull,
                       bool tty, bool timestamps, docker_stream_done_fn done, void *done_ctx,
                       struct MHD_Connection *conn, struct MHD_Response **out, struct sb_err *err)
{
    char prefix[16];
    int rc = docker_api_prefix(socket, prefix, sizeof prefix, err);
    if (rc)
        return rc;
    struct docker_follow *f = calloc(1, sizeof *f);
    if (!f)
        return sb_error(err, SB_ENOMEM, "out of memory");
    pthread_mutex_init(&f->lock, NULL);
    f->refs = 2; /* the I/O thread's and the response's */
    f->d = d;
    f->timestamps = timestamps;
    f->pull = pull;
    f->done_cb = done;
    f->done_ctx = done_ctx;
    buf_init(&f->errbody, 4096);
    buf_init(&f->out, QUEUE_MAX);
    docker_lines_init(&f->lines, on_line, f);
    docker_frames_init(&f->frames, tty, on_frame_data, f);
    f->last_ms = time_mono_ms();
    f->easy = curl_easy_init();
    struct buf url;
    buf_init(&url, 8192);
    buf_printf(&url, "http://localhost%s%s", prefix, path);
    curl_easy_setopt(f->easy, CURLOPT_UNIX_SOCKET_PATH, socket);
    curl_easy_setopt(f->easy, CURLOPT_URL, url.data);
    curl_easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->easy, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(f->easy, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->easy, CURLOPT_PRIVATE, f);
    buf_release(&url);

    struct http_sse_config sc = {.conn = conn,
                                 .lock = &f->lock,
                                 .fill = fill,
                                 .done = stream_done,
                                 .ctx = f,
                                 .block = 4096,
                                 .no_idle_timeout = true};
    f->w = http_sse_open(&sc, out);
    if (!f->w) {
        f->refs = 1;
        f->done_cb = NULL; /* the caller still owns done_ctx */
        follow_unref(f);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    atomic_fetch_add(&d->follow_streams, 1);
    /* A comment first, so the client sees the stream open at once. */
    buf_puts(&f->out, ": following\n\n");

    pthread_mutex_lock(&d->lock);
    if (d->streams_closed) {
        pthread_mutex_unlock(&d->lock);
        pull_finished(f, false, "the server is shutting down");
        follow_end(f, "shutdown");
        follow_unref(f);
        return 0;
    }
    f->next = d->follows_new;
    d->follows_new = f;
    pthread_mutex_unlock(&d->lock);
    curl_multi_wakeup(d->multi);
    return 0;
}

int docker_follow_logs(struct docker *d, const char *socket, const char *path, bool tty, bool timestamps,
                       struct MHD_Connection *conn, struct MHD_Response **out, struct sb_err *err)
{
    return stream_open(d, socket, "GET", path, false, tty, timestamps, NULL, NULL, conn, out, err);
}

int docker_stream_pull(struct docker *d, const char *socket, const char *path, docker_stream_done_fn done,
                       void *done_ctx, struct MHD_Connection *conn, struct MHD_Response **out,
                       struct sb_err *err)
{
    return stream_open(d, socket, "POST", path, true, false, false, done, done_ctx, conn, out, err);
}

static void remove_follow(struct docker *d, struct docker_follow *f)
{
    pull_finished(f, false, f->client_gone ? "the client went away" : "the server is shutting down");
    if (f->in_multi)
        curl_multi_remove_handle(d->multi, f->easy);
    f->in_multi = false;
    struct docker_follow **pp = &d->follows;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    follow_unref(f);
}

/* A pull has ended: record its outcome (the owner appends its event), then
 * tell the client, so that `end` arrives after the event is durable. */
static void end_pull(struct docker_follow *f, CURLcode res, long status)
{
    pthread_mutex_lock(&f->lock);
    docker_lines_flush(&f->lines);
    char message[256] = "";
    const char *reason = "done";
    if (res != CURLE_OK) {
        reason = f->client_gone ? "client_gone" : "engine_unreachable";
        snprintf(message, sizeof message, "%s",
                 f->client_gone ? "the client went away" : curl_easy_strerror(res));
    } else if (status != 200) {
        json_t *j = json_loadb(f->errbody.data, f->errbody.len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        snprintf(message, sizeof message, "%s", m ? m : "the engine refused the pull");
        json_decref(j);
        reason = "failed";
    } else if (f->failure[0]) {
        snprintf(message, sizeof message, "%s", f->failure);
        reason = "failed";
    }
    pthread_mutex_unlock(&f->lock);
    pull_finished(f, strcmp(reason, "done") == 0, message);
    follow_end_msg(f, reason, message);
}

static void *io_main(void *arg)
{
    struct docker *d = arg;
    int64_t last_beat = time_mono_ms();
    while (!atomic_load(&d->stopping)) {
        pthread_mutex_lock(&d->lock);
        struct docker_follow *add = d->follows_new;
        d->follows_new = NULL;
        bool closed = d->streams_closed;
        pthread_mutex_unlock(&d->lock);
        while (add) {
            struct docker_follow *next = add->next;
            add->next = d->follows;
            d->follows = add;
            curl_multi_add_handle(d->multi, add->easy);
            add->in_multi = true;
            add = next;
        }
        bool beat = time_mono_ms() - last_beat >= HEARTBEAT_MS;
        if (beat)
            last_beat = time_mono_ms();
        for (struct docker_follow *f = d->follows, *next; f; f = next) {
            next = f->next;
            pthread_mutex_lock(&f->lock);
            bool gone = f->client_gone;
            bool unpause = f->want_unpause;
            f->want_unpause = false;
            if (unpause)
                f->paused = false;
            if (beat && !f->done && !gone)
                http_sse_heartbeat_locked(f->w);
            pthread_mutex_unlock(&f->lock);
            if (gone || closed) {
                if (closed)
                    follow_end(f, "shutdown");
                remove_follow(d, f);
                continue;
            }
            if (unpause)
                curl_easy_pause(f->easy, CURLPAUSE_CONT);
        }
        if (closed)
            atomic_store(&d->streams_acked, true);
        int running = 0;
        curl_multi_perform(d->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(d->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct docker_follow *f = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            CURLcode res = m->data.result;
            if (f->pull) {
                end_pull(f, res, status);
            } else if (res != CURLE_OK && !f->client_gone)
                follow_end(f, "engine_unreachable");
            else if (status != 200)
                follow_end(f, "engine_error");
            else
                follow_end(f, "container_stopped");
            remove_follow(d, f);
        }
        curl_multi_poll(d->multi, NULL, 0, 1000, NULL);
    }
    while (d->follows) {
        follow_end(d->follows, "shutdown");
        remove_follow(d, d->follows);
    }
    return NULL;
}

int docker_streams_start(struct docker *d, struct sb_err *err)
{
    d->multi = curl_multi_init();
    if (!d->multi)
        return sb_error(err, SB_ENOMEM, "out of memory");
    if (pthread_create(&d->io_thread, NULL, io_main, d))
        return sb_error(err, SB_EINTERNAL, "cannot start the docker stream thread");
    d->io_started = true;
    return 0;
}

void docker_shutdown_streams(struct docker *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->streams_closed = true;
    pthread_mutex_unlock(&d->lock);
    curl_multi_wakeup(d->multi);
    /* Wait (bounded) until the I/O thread has ended every stream, so that no
     * connection stays suspended when the HTTP server stops. */
    for (int i = 0; i < 200 && d->io_started && !atomic_load(&d->streams_acked); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        curl_multi_wakeup(d->multi);
    }
}

void docker_streams_stop(struct docker *d)
{
    if (d->io_started) {
        atomic_store(&d->stopping, true);
        curl_multi_wakeup(d->multi);
        pthread_join(d->io_thread, NULL);
    }
    /* streams queued but never picked up */
    while (d->follows_new) {
        struct docker_follow *f = d->follows_new;
        d->follows_new = f->next;
        pull_finished(f, false, "the server is shutting down");
        follow_end(f, "shutdown");
        follow_unref(f);
    }
    if (d->multi)
        curl_multi_cleanup(d->multi);
}
