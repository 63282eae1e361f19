/*
 * terminal — browser terminals on nodes: `tmux new-session -A -s <name>` in
 * a PTY channel of a pooled SSH session, output kept in a bounded ring with
 * absolute byte offsets and streamed as Server-Sent Events, input and resize
 * taken from the API, every session recorded as asciicast v2 whose SHA-256
 * the caller writes into the terminal.closed event. See README.md.
 *
 * Threads: every function may be called from any thread. Each node with
 * terminals has one thread that owns its SSH session and every channel on
 * it; the functions here hand work to it and wait (bounded) for the answer.
 */
#ifndef SB_TERMINAL_H
#define SB_TERMINAL_H

#include "../ssh/ssh.h"
#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct MHD_Connection;
struct MHD_Response;
struct terminals;

#define TERMINAL_NAME_MAX 32

/* A terminal as the API shows it. */
struct terminal_info {
    char id[37];
    char node_id[37];
    char session[TERMINAL_NAME_MAX + 1];
    char opened_by[128]; /* actor name of whoever opened it */
    char container[80];  /* a container console: the container; "" for a node terminal */
    int cols, rows;
    uint64_t start_offset; /* oldest byte still in the ring */
    uint64_t end_offset;   /* bytes of output so far */
    int64_t opened_us;
    int viewers; /* output streams attached now */
};
/* Into a new JSON object (the caller's). */
json_t *terminal_info_json(const struct terminal_info *i);

/* How a terminal ended, with its recording. */
struct terminal_closed {
    struct terminal_info info;
    const char *reason; /* detached | killed | idle | exited | node_lost | shutdown */
    bool killed;        /* the tmux session was killed too */
    char recording_id[37];
    char recording_sha256[65]; /* hex of the recording file's bytes */
    uint64_t recording_bytes;
    bool recording_truncated; /* the size cap stopped it (the file says so) */
    int64_t closed_us;
};

struct terminal_config {
    struct ssh_pool *pool;
    /* The node's login (pointers valid until target_release(handle)). */
    int (*target_load)(void *ctx, const char *node_id, struct ssh_target *t, void **handle,
                       struct sb_err *err);
    void (*target_release)(void *ctx, void *handle);
    /* A terminal ended by itself (idle, exited, node lost, shutdown): called
     * on the node's thread, once, so the owner appends terminal.closed. Not
     * called for terminal_close, whose caller gets the same report. */
    void (*closed)(void *ctx, const struct terminal_closed *c);
    /* Container consoles (docker/console.c through the owner): a TTY exec's
     * raw stream as a non-blocking fd, and its resize. */
    int (*console_open)(void *ctx, const char *node_id, const char *container, int cols, int rows, int *fd,
                        char exec_id[80], struct buf *early, struct sb_err *err);
    void (*console_resize)(void *ctx, const char *node_id, const char *exec_id, int cols, int rows);
    void *ctx;
    const char *recordings_dir; /* made (0700) if missing */
    bool record_input;          /* asciicast "i" events too */
    size_t ring_bytes;          /* output kept per terminal (default 1 MiB) */
    size_t recording_max_bytes; /* per recording (default 64 MiB) */
    size_t input_max_bytes;     /* input waiting for the node, per terminal (default 4 MiB) */
    int idle_timeout_ms;        /* without input or viewers, detach after (default 1 h; <0 never) */
    int max_per_node;           /* default 8 (one SSH connection: sshd's MaxSessions is 10 by default) */
    int max_total;              /* default 256 */
    int retention_days;         /* recordings older are removed (hourly sweep); 0 = keep */
};

struct terminals *terminals_new(const struct terminal_config *cfg, struct sb_err *err);
/* Detaches every terminal (tmux sessions stay), reporting each through
 * `closed`, and ends every output stream: before the HTTP server stops. */
void terminals_shutdown(struct terminals *ts);
/* Stops the node threads; after terminals_shutdown, before the pool goes. */
void terminals_free(struct terminals *ts);

/* A tmux-safe session name: 1..TERMINAL_NAME_MAX of [A-Za-z0-9_-]. SB_EINVAL
 * naming "session". */
int terminal_name_check(const char *name, struct sb_err *err);

struct terminal_open_opts {
    const char *node_id;
    const char *session;
    const char *opened_by;
    int cols, rows; /* 0 = 80x24 */
};
/* Opens `tmux new-session -A -s <session>` on the node, or joins the
 * terminal already open there on that session (*joined = true; a size given
 * resizes it). SB_EUNAVAIL with words when tmux is missing or the node
 * cannot be reached, SB_ECONFLICT over the limits. */
int terminal_open(struct terminals *ts, const struct terminal_open_opts *o, struct terminal_info *out,
                  bool *joined, struct sb_err *err);
/* A console in a container (docker exec with a TTY: bash, else sh) on a
 * node ("local" or a node id); always a new one (an exec does not outlive
 * its connection). The same output, input, resize, close and recording as
 * node terminals; o->session names nothing ("console"). */
int terminal_console_open(struct terminals *ts, const struct terminal_open_opts *o, const char *container,
                          struct terminal_info *out, struct sb_err *err);
/* SB_ENOTFOUND when no open terminal has this id. */
int terminal_get(struct terminals *ts, const char *id, struct terminal_info *out, struct sb_err *err);
/* Every open terminal, as a new JSON array of terminal_info_json. */
json_t *terminals_list(struct terminals *ts);
/* Queues bytes for the terminal (any bytes; written to the node in order,
 * in pieces). SB_ETOOLARGE when the backlog would pass input_max_bytes. */
int terminal_input(struct terminals *ts, const char *id, const void *data, size_t len, struct sb_err *err);
/* cols 2..1000, rows 1..1000 (SB_EINVAL naming the field). */
int terminal_resize(struct terminals *ts, const char *id, int cols, int rows, struct sb_err *err);
/* Detaches (closes the channel; tmux keeps the session), or with kill also
 * ends the tmux session. Fills *out (recording hash included). */
int terminal_close(struct terminals *ts, const char *id, bool kill, struct terminal_closed *out,
                   struct sb_err *err);
/* Kills tmux session `session` on the node when no terminal is open on it
 * (SB_ENOTFOUND when tmux has no such session). */
int terminal_kill_session(struct terminals *ts, const char *node_id, const char *session, struct sb_err *err);

/* The output as Server-Sent Events from absolute byte offset `offset`
 * (an offset before the ring's start first gets a `gap` event naming where
 * it starts): `event: output` with `id:` the offset after the chunk and
 * data {"offset","data"(base64)}, heartbeats, and `event: end` when the
 * terminal closes. *out is a response for http_reply_response. */
int terminal_stream(struct terminals *ts, const char *id, uint64_t offset, struct MHD_Connection *conn,
                    struct MHD_Response **out, struct sb_err *err);

/* Recordings on disk: the path of recording `id` (a uuid) into out;
 * SB_ENOTFOUND when its file is gone (retention). */
int terminal_recording_path(struct terminals *ts, const char *id, char *out, size_t len, struct sb_err *err);
/* Removes recordings older than days (0 = keep all); returns how many. */
int terminal_recordings_expire(struct terminals *ts, int days);
/* The recording file, open for reading (*fd is the caller's) with its
 * size; SB_ENOTFOUND when the file is gone. */
int terminal_recording_open(struct terminals *ts, const char *id, int *fd, uint64_t *size,
                            struct sb_err *err);

/* Counters for the benchmark and /metrics. */
struct terminal_stats {
    uint64_t open, opened, closed, bytes_out, bytes_in;
};
void terminals_stats(struct terminals *ts, struct terminal_stats *out);

#endif
