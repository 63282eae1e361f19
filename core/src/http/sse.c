/*
 * The Server-Sent Events writer (sse.h): MHD's content reader around a
 * source's fill, with the suspend-under-the-source's-lock protocol that
 * makes wake-ups lossless, the idle timeout off, heartbeats and the close.
 */
#include "sse.h"

#include "../util/util.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct http_sse {
    struct http_sse_config cfg;
    bool suspended;     /* under *cfg.lock */
    bool heartbeat_due; /* under *cfg.lock */
    bool timeout_off;   /* MHD thread only */
    bool completed;     /* fill returned HTTP_SSE_END; MHD thread only */
};

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct http_sse *w = cls;
    (void)pos;
    if (w->cfg.no_idle_timeout && !w->timeout_off) {
        /* heartbeats keep the stream alive; the idle timeout must not cut it */
        MHD_set_connection_option(w->cfg.conn, MHD_CONNECTION_OPTION_TIMEOUT, 0);
        w->timeout_off = true;
    }
    pthread_mutex_lock(w->cfg.lock);
    ssize_t n = w->cfg.fill(w->cfg.ctx, out, max);
    if (n == HTTP_SSE_END) {
        w->completed = true;
        pthread_mutex_unlock(w->cfg.lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (n > 0) {
        w->heartbeat_due = false;
        pthread_mutex_unlock(w->cfg.lock);
        return n;
    }
    size_t hb = sizeof HTTP_SSE_HEARTBEAT - 1;
    if (w->heartbeat_due && max >= hb) {
        w->heartbeat_due = false;
        memcpy(out, HTTP_SSE_HEARTBEAT, hb);
        pthread_mutex_unlock(w->cfg.lock);
        return (ssize_t)hb;
    }
    /* Nothing to send: sleep until a waker resumes us (returning 0 without
     * suspending would spin). Suspended under the source's lock, so its
     * wake-up always comes after this. */
    w->suspended = true;
    MHD_suspend_connection(w->cfg.conn);
    pthread_mutex_unlock(w->cfg.lock);
    return 0;
}

static void sse_free(void *cls)
{
    struct http_sse *w = cls;
    w->cfg.done(w->cfg.ctx, w->completed ? HTTP_SSE_CLOSE_COMPLETE : HTTP_SSE_CLOSE_CLIENT);
    free(w);
}

struct http_sse *http_sse_open(const struct http_sse_config *cfg, struct MHD_Response **out)
{
    *out = NULL;
    struct http_sse *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cfg = *cfg;
    if (!w->cfg.block)
        w->cfg.block = 4096;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, w->cfg.block, sse_read, w, sse_free);
    if (!r) {
        free(w);
        return NULL;
    }
    if (cfg->sndbuf > 0) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(cfg->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
            int sndbuf = cfg->sndbuf;
            setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        }
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    *out = r;
    return w;
}

bool http_sse_wake_locked(struct http_sse *w)
{
    if (!w || !w->suspended)
        return false;
    w->suspended = false;
    MHD_resume_connection(w->cfg.conn);
    return true;
}

void http_sse_heartbeat_locked(struct http_sse *w)
{
    if (!w)
        return;
    w->heartbeat_due = true;
    http_sse_wake_locked(w);
}

bool http_sse_suspended_locked(const struct http_sse *w)
{
    return w && w->suspended;
}
