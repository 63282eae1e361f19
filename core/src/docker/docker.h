/*
 * docker — the Docker Engine API client: libcurl over a unix socket
 * (CURLOPT_UNIX_SOCKET_PATH, URL http://localhost/v1.41/…), API version
 * negotiation, Docker's error messages mapped onto sb_err, the multiplexed
 * log frame decoder, follow streams (logs as Server-Sent Events) driven by
 * one I/O thread, and one /events watcher thread per engine that turns engine
 * events into domain events (store_append, actor kind system).
 *
 * Nodes and endpoints. The client only ever speaks to a unix socket path.
 * The local engine is node id "local" and lives at --docker-socket. A remote
 * node's engine is reached through a local socket that the ssh/ module
 * bridges to a `direct-streamlocal@openssh.com` channel; the ssh/ module
 * provides it by registering a resolver (docker_set_resolver):
 *
 *   int fn(void *ctx, const char *node_id, char *socket_out, size_t len,
 *          char *name_out, size_t name_len, struct sb_err *err);
 *
 * which fills the bridged socket path (≤ 107 bytes) and the node's name, or
 * returns SB_ENOTFOUND (no such node) / SB_EUNAVAIL (node unreachable).
 * docker_endpoint_for_node asks the resolver for anything but "local".
 *
 * Threads: request functions may be called from any thread; each thread
 * keeps its own curl easy handle (freed at thread exit).
 */
#ifndef SB_DOCKER_H
#define SB_DOCKER_H

#include "../store/store.h"
#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct docker;
struct MHD_Connection;
struct MHD_Response;

#define DOCKER_SOCKET_MAX 108 /* sun_path, with its NUL */
#define DOCKER_LOCAL_NODE "local"

struct docker_config {
    const char *local_socket; /* "/var/run/docker.sock" */
    struct store *store;      /* engine events are appended here; may be NULL (no watcher) */
};

typedef int (*docker_resolver_fn)(void *ctx, const char *node_id, char *socket_out, size_t len,
                                  char *name_out, size_t name_len, struct sb_err *err);

/* Starts the stream I/O thread and the watcher of the local engine. */
struct docker *docker_open(const struct docker_config *cfg, struct sb_err *err);
/* Ends every follow stream (resuming its connection) and refuses new ones;
 * call before stopping the HTTP server. */
void docker_shutdown_streams(struct docker *d);
/* Stops the threads and frees everything. */
void docker_close(struct docker *d);
/* Lets the ssh/ module resolve remote nodes (see the header comment). */
void docker_set_resolver(struct docker *d, docker_resolver_fn fn, void *ctx);

/* Starts (idempotently) the /events watcher of a remote node; it resolves
 * the node's socket before every (re)connect. The local engine is watched
 * from docker_open on. docker_unwatch_node stops it (node removed). */
int docker_watch_node(struct docker *d, const char *node_id, struct sb_err *err);
/* Remote watchers follow their node's events only while gate(ctx) is true
 * (serve: while this daemon holds the "node-docker-events" duty, so with
 * several daemons one records them); they drop the stream within a second
 * when it turns false. Set before the first docker_watch_node. */
void docker_set_remote_watch_gate(struct docker *d, bool (*gate)(void *ctx), void *ctx);
void docker_unwatch_node(struct docker *d, const char *node_id);

/* Registers the job kinds container.stop, container.restart and image.pull
 * (docker/jobs.c) with the jobs subsystem; the engine calls then run on jobs
 * workers. Before jobs_start. */
struct jobs;
int docker_register_jobs(struct docker *d, struct jobs *j, struct sb_err *err);

/* The unix socket of a node's engine and the node's name. */
int docker_endpoint_for_node(struct docker *d, const char *node_id, char *socket_out, size_t len,
                             char *name_out, size_t name_len, struct sb_err *err);

/* ---- requests ------------------------------------------------------------ */

struct docker_response {
    long status;
    struct buf body; /* owned; docker_response_release frees it */
};
void docker_response_release(struct docker_response *r);

/* One request to the engine at `socket`. `path` is below the version prefix
 * ("/containers/json?all=1"); `body` (borrowed, may be NULL) is sent as JSON.
 * timeout_ms 0 means the default (30 s). Transport failures give
 * SB_EUNAVAIL ("engine unreachable"); any HTTP status is returned in `out`. */
int docker_request(const char *socket, const char *method, const char *path, json_t *body, long timeout_ms,
                   struct docker_response *out, struct sb_err *err);

/* docker_request, then: 2xx (and 304) → 0 with *result the parsed JSON body
 * (NULL when empty; caller decrefs); otherwise Docker's own message in err
 * with 404 → SB_ENOTFOUND, 409 → SB_ECONFLICT, 400 → SB_EINVAL,
 * other → SB_EUPSTREAM. *status gets the engine's status (may be NULL). */
int docker_call(const char *socket, const char *method, const char *path, json_t *body, long timeout_ms,
                json_t **result, long *status, struct sb_err *err);

/* The negotiated API prefix for an engine ("/v1.41"), asked once with
 * /_ping and /version and cached by socket path. */
int docker_api_prefix(const char *socket, char *out, size_t len, struct sb_err *err);

/* Streams a GET's body (below the version prefix, e.g.
 * "/containers/<id>/archive?path=/backup") into fd, or a PUT's body from fd
 * until EOF, without holding it in memory; no total timeout (a transfer
 * stalled for 2 minutes ends). Non-2xx → the engine's message, SB_ENOTFOUND
 * for 404, else SB_EUPSTREAM; *status the engine's status. */
int docker_get_to_fd(const char *socket, const char *path, int fd, long *status, struct sb_err *err);
int docker_put_from_fd(const char *socket, const char *path, const char *content_type, int fd, long *status,
                       struct sb_err *err);

/* Percent-encodes s into out for a query string. */
void docker_urlencode(const char *s, struct buf *out);

/* ---- exec ------------------------------------------------------------------ */
struct docker_exec_result {
    struct buf out, err; /* owned; release with docker_exec_result_release */
    int exit_code;
    bool truncated;
};
void docker_exec_result_release(struct docker_exec_result *r);
/* Runs argv (a JSON array of strings, borrowed) in a running container and
 * collects its output (at most max_output bytes per stream). */
int docker_exec(const char *socket, const char *container, json_t *argv, long timeout_ms, size_t max_output,
                struct docker_exec_result *res, struct sb_err *err);

/* ---- image builds (build.c) -------------------------------------------------
 * POST /build with a tar context (the classic builder). The engine's output
 * goes to on_output as it arrives (chunks of text, not always whole lines);
 * an error inside the 200 stream fails the build (SB_EINVAL, the engine's
 * words). cancelled (may be NULL) is polled: true closes the connection,
 * which cancels the build (SB_ETIMEOUT). image_id gets "sha256:…". */
struct docker_build {
    const void *tar; /* borrowed */
    size_t tar_len;
    const char *tag;   /* "serverbox/web:0123456789ab" */
    json_t *labels;    /* object of strings, may be NULL */
    int64_t memory;    /* bytes for the build's containers; 0 = no limit */
    int64_t cpu_quota; /* µs per 100 ms period; 0 = no limit */
    long timeout_ms;   /* 0 = 30 minutes */
    void (*on_output)(void *ctx, const char *text);
    bool (*cancelled)(void *ctx);
    void *ctx;
};
int docker_build_image(const char *socket, const struct docker_build *b, char *image_id, size_t len,
                       struct sb_err *err);

/* ---- container consoles (console.c) ----------------------------------------
 * A TTY exec (bash if the image has it, else sh) started attached with an
 * HTTP Upgrade: *fd_out is a non-blocking socket carrying the raw terminal
 * both ways (the caller's: close it to end the console); bytes the engine
 * sent with the 101 go to `early`. */
int docker_console_open(const char *socket, const char *container, int cols, int rows, int *fd_out,
                        char exec_id[80], struct buf *early, struct sb_err *err);
int docker_console_resize(const char *socket, const char *exec_id, int cols, int rows, struct sb_err *err);

/* ---- the multiplexed stream decoder ---------------------------------------
 * Docker's non-TTY attach/logs/exec streams are frames: 8-byte header
 * (stream 0/1/2, three zero bytes, big-endian uint32 size) + payload. The
 * decoder is a state machine fed any split of the bytes; it calls `on_data`
 * for each payload piece (pieces of one frame may arrive in several calls).
 * With raw = true (TTY containers) every byte is stdout. A header with an
 * unknown stream or a frame larger than DOCKER_FRAME_MAX is an error. */
#define DOCKER_FRAME_MAX ((uint32_t)16 << 20)
enum docker_stream_kind { DOCKER_STDIN = 0, DOCKER_STDOUT = 1, DOCKER_STDERR = 2 };
typedef int (*docker_frame_fn)(void *ctx, int stream, const char *data, size_t len);
struct docker_frames {
    bool raw;
    uint8_t header[8];
    size_t have;        /* header bytes collected */
    uint32_t remaining; /* payload bytes left in the current frame */
    int stream;
    bool failed;
    docker_frame_fn on_data;
    void *ctx;
};
void docker_frames_init(struct docker_frames *f, bool raw, docker_frame_fn on_data, void *ctx);
/* 0, the callback's non-zero result, or SB_EUPSTREAM for a bad header. */
int docker_frames_feed(struct docker_frames *f, const char *data, size_t len);

/* Splits decoded stream data into lines, per stream; `on_line` gets each
 * complete line without its newline (and a final partial line at flush).
 * Lines longer than DOCKER_LINE_MAX are cut there. */
#define DOCKER_LINE_MAX 16384
typedef int (*docker_line_fn)(void *ctx, int stream, const char *line, size_t len);
struct docker_lines {
    struct buf pending[3];
    docker_line_fn on_line;
    void *ctx;
};
void docker_lines_init(struct docker_lines *l, docker_line_fn on_line, void *ctx);
int docker_lines_feed(struct docker_lines *l, int stream, const char *data, size_t len);
int docker_lines_flush(struct docker_lines *l);
void docker_lines_release(struct docker_lines *l);

/* ---- follow streams (Server-Sent Events) ------------------------------------
 * Follows a container's logs: returns a response (hand it to
 * http_reply_response) whose body is SSE:
 *   event: log
 *   data: {"stream":"stdout","line":"…"[,"ts":"…"]}
 * ending with `event: end` when the container stops. `path` is the engine
 * path of the logs request (with follow=1); `tty` says the stream is raw.
 * The connection must be the request's; it is suspended while there is
 * nothing to send. SB_EUNAVAIL after docker_shutdown_streams. */
int docker_follow_logs(struct docker *d, const char *socket, const char *path, bool tty, bool timestamps,
                       struct MHD_Connection *conn, struct MHD_Response **out, struct sb_err *err);

/* An image pull relayed as SSE: `event: progress` with each of the
 * engine's progress objects as data, then `event: end` with
 * {"reason":"done"|"failed"|…, "message":…}. `done` is called exactly once,
 * from the I/O thread, with the outcome (before `end` is sent), and owns
 * done_ctx from then on; it is never called when this returns an error. */
typedef void (*docker_stream_done_fn)(void *ctx, bool ok, const char *message);
int docker_stream_pull(struct docker *d, const char *socket, const char *path, docker_stream_done_fn done,
                       void *done_ctx, struct MHD_Connection *conn, struct MHD_Response **out,
                       struct sb_err *err);

/* ---- engine events ------------------------------------------------------------
 * Translates one engine event (a JSON object from /events) into a domain
 * event type ("container.started"…) and data (new reference), or returns
 * SB_ENOTFOUND for events that are not mapped. Pure; used by the watcher. */
int docker_translate_event(const char *node_id, json_t *engine_event, const char **type, json_t **data);

/* ---- what readers see (redact.c) ---------------------------------------------
 * For callers without containers:operate. Pure, in place. */
#define DOCKER_REDACTED "<redacted>"
/* Whether a variable or label name looks like a secret's (PASSWORD, SECRET,
 * TOKEN, KEY, CREDENTIAL, PRIVATE, AUTH… anywhere in it, any case). */
bool docker_name_is_secret(const char *name);
/* Replaces the value of every secret-looking label of an object. */
void docker_redact_labels(json_t *labels);
/* A container inspect document: every Config.Env value (names kept) and
 * secret-looking Config.Labels values become DOCKER_REDACTED. */
void docker_redact_inspect(json_t *doc);

/* Figures for tests and the benchmark. */
struct docker_stats {
    uint64_t engine_events;   /* received from /events */
    uint64_t events_appended; /* turned into domain events */
    uint64_t watch_connects;
    uint64_t follow_streams; /* open now */
};
void docker_get_stats(struct docker *d, struct docker_stats *out);

#endif
