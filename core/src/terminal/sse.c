/*
 * Output streams of a terminal as Server-Sent Events.
 *
 * Each stream has its own absolute offset into the terminal's ring. The
 * shared SSE writer (http/sse.h) calls fill with the terminal's lock held,
 * which turns the next bytes into an `output` event (base64, at most CHUNK
 * bytes each); with nothing new the writer suspends the stream under that
 * lock, so the node thread's wake-up (new output, a close, a heartbeat)
 * always comes after the suspend. The stream holds a reference on the
 * terminal until the writer is done (client gone, or the end sent).
 */
#include "internal.h"

#include "../http/sse.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK 12288 /* raw bytes per event (16 KiB of base64) */

struct term_stream {
    struct term *t;
    struct http_sse *w; /* under t->lock; NULL once the writer is done */
    uint64_t offset;
    bool ended;
    struct buf pending; /* SSE text not yet taken by MHD */
    struct term_stream *next;
};

/* Fills s->pending with the next event; false when there is nothing. Called
 * with t->lock held. */
static bool produce(struct term_stream *s)
{
    struct term *t = s->t;
    if (s->offset < t->ring.start) {
        buf_printf(&s->pending, "event: gap\ndata: {\"requested\":%llu,\"offset\":%llu}\n\n",
                   (unsigned long long)s->offset, (unsigned long long)t->ring.start);
        s->offset = t->ring.start;
        return true;
    }
    if (s->offset < t->ring.end) {
        char raw[CHUNK];
        size_t n = term_ring_read(&t->ring, s->offset, raw, sizeof raw);
        char b64[CHUNK * 4 / 3 + 8];
        sodium_bin2base64(b64, sizeof b64, (const unsigned char *)raw, n, sodium_base64_VARIANT_ORIGINAL);
        buf_printf(&s->pending, "id: %llu\nevent: output\ndata: {\"offset\":%llu,\"data\":\"%s\"}\n\n",
                   (unsigned long long)(s->offset + n), (unsigned long long)s->offset, b64);
        s->offset += n;
        return true;
    }
    if (t->closed && !s->ended) {
        s->ended = true;
        buf_printf(&s->pending, "event: end\ndata: {\"reason\":\"%s\",\"offset\":%llu}\n\n",
                   t->end_reason ? t->end_reason : "closed", (unsigned long long)t->ring.end);
        return true;
    }
    return false;
}

/* http_sse fill, t->lock held. */
static ssize_t fill(void *ctx, char *out, size_t max)
{
    struct term_stream *s = ctx;
    if (!s->pending.len)
        produce(s);
    if (s->pending.len) {
        size_t n = s->pending.len < max ? s->pending.len : max;
        memcpy(out, s->pending.data, n);
        buf_consume(&s->pending, n);
        return (ssize_t)n;
    }
    return s->ended ? HTTP_SSE_END : 0;
}

static void stream_done(void *ctx, enum http_sse_close why)
{
    (void)why;
    struct term_stream *s = ctx;
    struct term *t = s->t;
    pthread_mutex_lock(&t->lock);
    s->w = NULL;
    for (struct term_stream **pp = &t->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            t->n_streams--;
            break;
        }
    t->info.viewers = t->n_streams;
    t->last_activity_ms = time_mono_ms();
    pthread_mutex_unlock(&t->lock);
    buf_release(&s->pending);
    free(s);
    term_unref(t);
}

int term_stream_open(struct term *t, uint64_t offset, struct MHD_Connection *conn, struct MHD_Response **out,
                     struct sb_err *err)
{
    struct term_stream *s = calloc(1, sizeof *s);
    if (!s)
        return sb_error(err, SB_ENOMEM, "out of memory");
    s->offset = offset;
    s->t = t;
    buf_init(&s->pending, (size_t)1 << 20);
    pthread_mutex_lock(&t->lock);
    if (t->n_streams >= TERM_MAX_VIEWERS) {
        pthread_mutex_unlock(&t->lock);
        buf_release(&s->pending);
        free(s);
        return sb_error(err, SB_ECONFLICT, "this terminal already has %d viewers", TERM_MAX_VIEWERS);
    }
    /* An offset past the end (a stale client of an older terminal) restarts at the end. */
    if (s->offset > t->ring.end)
        s->offset = t->ring.end;
    buf_puts(&s->pending, ": terminal\n\n");
    pthread_mutex_unlock(&t->lock);
    struct http_sse_config c = {.conn = conn,
                                .lock = &t->lock,
                                .fill = fill,
                                .done = stream_done,
                                .ctx = s,
                                .block = 16384,
                                .no_idle_timeout = true};
    struct http_sse *w = http_sse_open(&c, out);
    if (!w) {
        buf_release(&s->pending);
        free(s);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    term_ref(t);
    pthread_mutex_lock(&t->lock);
    s->w = w;
    s->next = t->streams;
    t->streams = s;
    t->n_streams++;
    t->info.viewers = t->n_streams;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void term_streams_wake_locked(struct term *t, bool heartbeat)
{
    for (struct term_stream *s = t->streams; s; s = s->next) {
        if (heartbeat)
            http_sse_heartbeat_locked(s->w);
        else
            http_sse_wake_locked(s->w);
    }
}
