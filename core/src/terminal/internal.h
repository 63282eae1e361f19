/* Private to terminal/: the structures its files share. */
#ifndef SB_TERMINAL_INTERNAL_H
#define SB_TERMINAL_INTERNAL_H

#include "terminal.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>

/* ---- the output ring (ring.c, pure) -------------------------------------
 * Bytes at absolute offsets [start, end); end only grows, and once more
 * than `size` bytes were written the oldest are overwritten (start moves). */
struct term_ring {
    char *data;
    size_t size;
    uint64_t start, end;
};
int term_ring_init(struct term_ring *r, size_t size);
void term_ring_release(struct term_ring *r);
void term_ring_write(struct term_ring *r, const char *p, size_t n);
/* Copies up to max bytes from offset `at` (start <= at <= end) into out;
 * returns how many. */
size_t term_ring_read(const struct term_ring *r, uint64_t at, char *out, size_t max);

/* ---- asciicast v2 (recording.c) ------------------------------------------ */
/* The longest prefix of p[0..n) that does not end inside a UTF-8 sequence
 * that the next bytes could complete (the rest waits for them). */
size_t term_utf8_complete(const unsigned char *p, size_t n);
/* Appends p as a JSON string (quotes included) to out; invalid UTF-8 becomes
 * U+FFFD, control characters are escaped. */
int term_json_string(struct buf *out, const char *p, size_t n);

struct term_recording {
    FILE *f;
    crypto_hash_sha256_state sha;
    uint64_t bytes, max;
    bool truncated, failed;
    int64_t start_us;
    unsigned char tail[4]; /* an output UTF-8 sequence split between reads */
    size_t tail_len;
    unsigned char itail[4]; /* the same for input */
    size_t itail_len;
};
/* Creates path and writes the header. */
int term_recording_open(struct term_recording *rec, const char *path, int cols, int rows, const char *title,
                        uint64_t max, struct sb_err *err);
/* kind 'o' (output) or 'i' (input). */
void term_recording_event(struct term_recording *rec, char kind, const char *p, size_t n);
void term_recording_resize(struct term_recording *rec, int cols, int rows);
/* Closes the file; sha256 hex (65) of every byte written. */
void term_recording_close(struct term_recording *rec, char sha256_hex[65]);

/* ---- one terminal ---------------------------------------------------------- */
struct term_stream; /* sse.c */
struct term_node;

struct term {
    pthread_mutex_t lock; /* ring, input, size, streams, closed */
    int refs;             /* registry + each stream + callers in flight (atomic) */
    struct terminals *ts;
    struct term_node *node;
    struct terminal_info info; /* offsets and viewers refreshed under lock */
    struct term_ring ring;
    struct buf input; /* waiting for the node thread */
    bool resize_pending;
    bool closed;
    const char *end_reason;
    struct term_stream *streams;
    int n_streams;
    int64_t last_activity_ms;
    /* node thread only */
    LIBSSH2_CHANNEL *ch;
    int fd; /* a container console's stream, else -1 */
    char exec_id[80];
    char inflight[16384]; /* a write the channel took only partly: retried as is */
    size_t inflight_len, inflight_off;
    struct term_recording rec;
    char rec_id[37];
    struct term *next; /* in the node's list */
};

void term_ref(struct term *t);
void term_unref(struct term *t);

/* ---- output streams (sse.c) ---------------------------------------------
 * The SSE writer of terminals, self-contained like docker/stream.c until
 * the shared writer in http/ exists: this is the one file to point at it. */
#define TERM_MAX_VIEWERS 16
int term_stream_open(struct term *t, uint64_t offset, struct MHD_Connection *conn, struct MHD_Response **out,
                     struct sb_err *err);
/* Called with t->lock held after new output, a close or a heartbeat: wakes
 * the streams waiting; returns the connections to resume after unlocking
 * (at most TERM_MAX_VIEWERS into conns). */
void term_streams_wake_locked(struct term *t, bool heartbeat);

#endif
