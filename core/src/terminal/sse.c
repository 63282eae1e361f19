/*
 * Output streams of a terminal as Server-Sent Events.
 *
 * Each stream has its own absolute offset into the terminal's ring. MHD's
 * content callback (on MHD's thread) turns the next bytes into an `output`
 * event (base64, at most CHUNK bytes each), or suspends the connection when
 * there is nothing new, holding the terminal's lock so that the node
 * thread's wake-up (new output, a close, a heartbeat) always comes after the
 * suspend. The stream holds a reference on the terminal until MHD frees the
 * response (client gone, or the end sent).
 *
 * Self-contained in the way of docker/stream.c: when the shared SSE writer
 * lands in http/, this file is what moves onto it (term_stream_open and
 * term_streams_wake_locked are the interface the rest of terminal/ uses).
 */
#include "internal.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 12288 /* raw bytes per event (16 KiB of base64) */

struct term_stream {
    struct term *t;
    struct MHD_Connection *conn;
    uint64_t offset;
    bool suspended, ended, timeout_off, heartbeat;
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
    if (s->heartbeat) {
        s->heartbeat = false;
        buf_puts(&s->pending, ": heartbeat\n\n");
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

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
    struct term_stream *s = cls;
    struct term *t = s->t;
    (void)pos;
    pthread_mutex_lock(&t->lock);
    if (!s->timeout_off) {
        /* heartbeats keep the stream alive; the idle timeout must not cut it */
        MHD_set_connection_option(s->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0);
        s->timeout_off = true;
    }
    if (!s->pending.len)
        produce(s);
    if (s->pending.len) {
        size_t n = s->pending.len < max ? s->pending.len : max;
        memcpy(out, s->pending.data, n);
        buf_consume(&s->pending, n);
        pthread_mutex_unlock(&t->lock);
        return (ssize_t)n;
    }
    if (s->ended) {
        pthread_mutex_unlock(&t->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    s->suspended = true;
    MHD_suspend_connection(s->conn);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

static void reader_free(void *cls)
{
    struct term_stream *s = cls;
    struct term *t = s->t;
    pthread_mutex_lock(&t->lock);
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
    s->conn = conn;
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
    *out = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, reader_free);
    if (!*out) {
        buf_release(&s->pending);
        free(s);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    MHD_add_response_header(*out, "Content-Type", "text/event-stream");
    MHD_add_response_header(*out, "Cache-Control", "no-store");
    MHD_add_response_header(*out, "X-Accel-Buffering", "no");
    term_ref(t);
    pthread_mutex_lock(&t->lock);
    s->next = t->streams;
    t->streams = s;
    t->n_streams++;
    t->info.viewers = t->n_streams;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

int term_streams_wake_locked(struct term *t, bool heartbeat, struct MHD_Connection **conns)
{
    int n = 0;
    for (struct term_stream *s = t->streams; s; s = s->next) {
        if (heartbeat)
            s->heartbeat = true;
        if (s->suspended && n < TERM_MAX_VIEWERS) {
            s->suspended = false;
            conns[n++] = s->conn;
        }
    }
    return n;
}

void term_streams_resume(struct MHD_Connection **conns, int n)
{
    for (int i = 0; i < n; i++)
        MHD_resume_connection(conns[i]);
}
