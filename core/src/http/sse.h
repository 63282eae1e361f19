/*
 * http/sse.h — the Server-Sent Events writer (http/sse.c), shared by every
 * stream the core serves: the event bus (events/bus.c), Docker log follow
 * and image pulls (docker/stream.c) and terminals (terminal/sse.c).
 *
 * It is the one part of http/ that those subsystems include (the rest of
 * http/ is for api/ and cmd/, scripts/check-layers.sh), so that they never
 * speak to libmicrohttpd: `<microhttpd.h>` is included only under http/.
 *
 * A stream pulls: when MHD can send, the writer calls the source's `fill`
 * with the source's own lock held; with nothing to send (and no heartbeat
 * due) it suspends the connection before that lock is released, so a
 * producer that makes data and then calls http_sse_wake_locked under the
 * same lock can never be missed (its wake-up always comes after the
 * suspend). The writer turns MHD's idle timeout off when asked (heartbeats
 * keep the stream alive), sends a heartbeat comment when one is due and there is
 * nothing else, ends the response when `fill` says so, and tells the source
 * how the stream closed. Queues stay with the sources, each capped by them
 * (the bus's shared ring, a terminal's ring, a follow's buffer); the writer
 * adds no copy.
 */
#ifndef SB_HTTP_SSE_H
#define SB_HTTP_SSE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct MHD_Connection;
struct MHD_Response;
struct http_sse;

/* What `fill` returns when the stream is complete (after its last bytes). */
#define HTTP_SSE_END       ((ssize_t)-1)
#define HTTP_SSE_HEARTBEAT ": heartbeat\n\n"

enum http_sse_close {
    HTTP_SSE_CLOSE_COMPLETE, /* the source ended it (fill returned HTTP_SSE_END) */
    HTTP_SSE_CLOSE_CLIENT,   /* the client went away, the connection failed, or the server stopped */
};

struct http_sse_config {
    struct MHD_Connection *conn; /* the request's (req->conn) */
    pthread_mutex_t *lock;       /* the source's: held around fill and by every waker */
    /* Copies up to max bytes of SSE text into out and returns how many; 0
     * when there is nothing now (the writer sends a due heartbeat or
     * suspends); HTTP_SSE_END when complete. On an MHD thread, *lock held;
     * must not block. */
    ssize_t (*fill)(void *ctx, char *out, size_t max);
    /* The stream is over (MHD is done with it); the writer is freed right
     * after this returns, so the source forgets it here, taking *lock
     * itself (not held by the writer: the source may free what holds it).
     * No waker may use the writer after that. On an MHD thread. */
    void (*done)(void *ctx, enum http_sse_close why);
    void *ctx;
    size_t block; /* MHD's block size per fill (default 4096; the bus uses 256) */
    int sndbuf;   /* the connection's SO_SNDBUF; 0 leaves the default */
    /* MHD's inactivity timeout (120 s) off at the first fill, for streams
     * whose data may pause longer than it between heartbeats. The bus keeps
     * it: a client that stops reading is closed by it. */
    bool no_idle_timeout;
};

/* A stream's writer and the response to hand to http_reply_response (or
 * to return to api/, which does). NULL when out of memory; `done` is then
 * never called. */
struct http_sse *http_sse_open(const struct http_sse_config *cfg, struct MHD_Response **out);
/* With *lock held: a suspended stream is resumed (fill runs again soon).
 * Returns whether it was suspended. Never after `done`. */
bool http_sse_wake_locked(struct http_sse *w);
/* With *lock held: a heartbeat comment goes out at the next fill that has
 * nothing (and the stream is woken for it). */
void http_sse_heartbeat_locked(struct http_sse *w);
/* With *lock held: whether the stream is suspended, waiting for data. */
bool http_sse_suspended_locked(const struct http_sse *w);

#endif
