/*
 * Terminals: the registry and one I/O thread per node (see README.md).
 *
 * Invariants:
 * - A node's SSH session, and every channel on it, is used only by that
 *   node's thread. Other threads queue commands (open, close, kill) and
 *   wait for the answer; input and resize go into the terminal under its
 *   lock and the thread is woken through a pipe.
 * - While a node has a terminal its thread holds one pooled session, and
 *   every PTY channel on it is counted live by the pool (ssh_pty_open), so
 *   the pool never closes, evicts or reuses it. With no terminal left the
 *   session goes back to the pool.
 * - Lock order: ts->lock, then a terminal's lock. Streams are woken under
 *   the terminal's lock (http/sse.h).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#define TICK_MS      100
#define HEARTBEAT_MS 15000
#define READ_BUDGET  (256 * 1024) /* bytes read per terminal per loop, so one cannot starve the others */
#define CMD_WAIT_MS  30000

enum cmd_kind { CMD_OPEN, CMD_CLOSE, CMD_KILL };

struct term_cmd {
    enum cmd_kind kind;
    struct term *t;                      /* CMD_OPEN, CMD_CLOSE */
    bool kill;                           /* CMD_CLOSE: kill the tmux session too */
    char session[TERMINAL_NAME_MAX + 1]; /* CMD_KILL */
    struct terminal_closed closed;       /* CMD_CLOSE result */
    int rc;
    struct sb_err err;
    bool done, abandoned;
    struct term_cmd *next;
};

struct term_node {
    struct terminals *ts;
    char node_id[37];
    bool console; /* container consoles of the node: plain fds, no SSH session */
    pthread_t thread;
    int wake[2];
    struct ssh_session *session;
    struct term *terms;    /* node thread only */
    int n_terms;           /* under ts->lock (counts reserved opens too) */
    struct term_cmd *cmds; /* under ts->lock */
    int64_t last_beat_ms;
    struct term_node *next;
};

struct terminals {
    struct terminal_config cfg;
    char dir[1024];
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a command was done */
    struct term_node *nodes;
    int n_open; /* terminals open or opening */
    bool stopping;
    pthread_t janitor;
    bool janitor_started;
    atomic_uint_fast64_t opened, closed, bytes_out, bytes_in;
};

/* ---- terminals ---------------------------------------------------------- */

void term_ref(struct term *t)
{
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
}

void term_unref(struct term *t)
{
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL))
        return;
    term_ring_release(&t->ring);
    buf_release(&t->input);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

json_t *terminal_info_json(const struct terminal_info *i)
{
    char at[40];
    time_format_rfc3339(i->opened_us, at, sizeof at);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:s, s:i}", "id", i->id, "node_id",
                          i->node_id, "session", i->session, "opened_by", i->opened_by, "cols", i->cols,
                          "rows", i->rows, "start_offset", (json_int_t)i->start_offset, "end_offset",
                          (json_int_t)i->end_offset, "opened_at", at, "viewers", i->viewers);
    json_object_set_new(o, "kind", json_string(i->container[0] ? "container" : "node"));
    if (i->container[0])
        json_object_set_new(o, "container", json_string(i->container));
    return o;
}

int terminal_name_check(const char *name, struct sb_err *err)
{
    if (!name || !*name)
        return sb_field_error(err, "session", "session is required: 1 to %d of A-Z a-z 0-9 _ -",
                              TERMINAL_NAME_MAX);
    size_t n = strlen(name);
    if (n > TERMINAL_NAME_MAX)
        return sb_field_error(err, "session", "session is longer than %d characters", TERMINAL_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return sb_field_error(err, "session", "session may only hold A-Z a-z 0-9 _ - (tmux-safe)");
    }
    return 0;
}

static void snapshot_locked(struct term *t, struct terminal_info *out)
{
    t->info.start_offset = t->ring.start;
    t->info.end_offset = t->ring.end;
    t->info.viewers = t->n_streams;
    *out = t->info;
}

/* ---- node threads --------------------------------------------------------- */

static void node_wake(struct term_node *n)
{
    if (write(n->wake[1], "x", 1) < 0) {
        /* the pipe is full: the thread wakes anyway */
    }
}

static void session_release(struct term_node *n, bool broken)
{
    if (!n->session)
        return;
    libssh2_session_set_blocking(ssh_session_raw(n->session), 1);
    ssh_pool_release(n->ts->cfg.pool, n->session, broken || ssh_session_broken(n->session));
    n->session = NULL;
}

static int session_get(struct term_node *n, struct sb_err *err)
{
    if (n->session)
        return 0;
    struct terminals *ts = n->ts;
    struct ssh_target t;
    void *handle = NULL;
    struct ssh_diag d = {0};
    int rc = ts->cfg.target_load(ts->cfg.ctx, n->node_id, &t, &handle, err);
    if (rc == 0) {
        rc = ssh_pool_acquire(ts->cfg.pool, &t, &n->session, &d, err);
        ts->cfg.target_release(ts->cfg.ctx, handle);
    }
    if (rc) {
        n->session = NULL;
        if (rc != SB_ENOTFOUND)
            return sb_error(err, SB_EUNAVAIL, "cannot reach the node over SSH: %s", err ? err->msg : "");
    }
    return rc;
}

static int run_quick(struct term_node *n, const char *cmd, struct ssh_exec_result *r, struct sb_err *err)
{
    ssh_exec_result_init(r);
    struct ssh_exec_opts o = {.command = cmd, .timeout_ms = 10000, .max_output = 4096};
    int rc = ssh_exec(n->session, &o, r, err);
    libssh2_session_set_blocking(ssh_session_raw(n->session), 0);
    return rc;
}

static void recording_path(struct terminals *ts, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s/%s.cast", ts->dir, id);
}

/* Opens the channel of t on the node's thread. */
static int do_open_console(struct term_node *n, struct term *t, struct sb_err *err)
{
    struct terminals *ts = n->ts;
    if (!ts->cfg.console_open)
        return sb_error(err, SB_EUNAVAIL, "container consoles are not available");
    char path[1100];
    recording_path(ts, t->rec_id, path, sizeof path);
    char title[200];
    snprintf(title, sizeof title, "container %s on node %s", t->info.container, t->info.node_id);
    int rc = term_recording_open(&t->rec, path, t->info.cols, t->info.rows, title,
                                 ts->cfg.recording_max_bytes, err);
    if (rc)
        return rc;
    struct buf early;
    buf_init(&early, 65536);
    rc = ts->cfg.console_open(ts->cfg.ctx, t->info.node_id, t->info.container, t->info.cols, t->info.rows,
                              &t->fd, t->exec_id, &early, err);
    if (rc) {
        char sha[65];
        term_recording_close(&t->rec, sha);
        unlink(path);
        buf_release(&early);
        return rc;
    }
    if (early.len) {
        term_recording_event(&t->rec, 'o', early.data, early.len);
        pthread_mutex_lock(&t->lock);
        term_ring_write(&t->ring, early.data, early.len);
        pthread_mutex_unlock(&t->lock);
    }
    buf_release(&early);
    t->next = n->terms;
    n->terms = t;
    return 0;
}

static int do_open(struct term_node *n, struct term *t, struct sb_err *err)
{
    if (n->console)
        return do_open_console(n, t, err);
    int rc = session_get(n, err);
    if (rc)
        return rc;
    /* tmux is known there while other terminals of the node run (and a
     * check would take one of the connection's channels). */
    struct ssh_exec_result r;
    rc = n->terms ? 0 : run_quick(n, "command -v tmux >/dev/null 2>&1", &r, err);
    int code = n->terms ? 0 : r.exit_code;
    if (!n->terms)
        ssh_exec_result_release(&r);
    if (rc) {
        if (ssh_session_broken(n->session) && !n->terms)
            session_release(n, true);
        return sb_error(err, SB_EUNAVAIL, "cannot run commands on the node: %s", err->msg);
    }
    if (code != 0)
        return sb_error(err, SB_EUNAVAIL,
                        "tmux is not installed on the node: install it (apt-get install tmux, or the "
                        "provisioning role) to open terminals there");
    char path[1100];
    recording_path(n->ts, t->rec_id, path, sizeof path);
    char title[128];
    snprintf(title, sizeof title, "%s on node %s", t->info.session, t->info.node_id);
    rc = term_recording_open(&t->rec, path, t->info.cols, t->info.rows, title, n->ts->cfg.recording_max_bytes,
                             err);
    if (rc)
        return rc;
    char cmd[160];
    /* -u: UTF-8 whatever the node's locale; the name is checked tmux-safe. */
    snprintf(cmd, sizeof cmd, "exec tmux -u new-session -A -s '%s'", t->info.session);
    rc = ssh_pty_open(n->session, "xterm-256color", t->info.cols, t->info.rows, cmd, &t->ch, err);
    libssh2_session_set_blocking(ssh_session_raw(n->session), 0);
    if (rc) {
        char sha[65];
        term_recording_close(&t->rec, sha);
        unlink(path);
        if (ssh_session_broken(n->session) && !n->terms)
            session_release(n, true);
        return rc;
    }
    t->next = n->terms;
    n->terms = t;
    return 0;
}

/* Ends t on the node's thread: the channel closed (tmux keeps the session),
 * the recording finished, the streams told. Fills *out. Drops the
 * registry's reference. */
static void do_close(struct term_node *n, struct term *t, const char *reason, bool kill,
                     struct terminal_closed *out)
{
    struct terminals *ts = n->ts;
    for (struct term **pp = &n->terms; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    if (t->ch && n->session) {
        ssh_pty_close(n->session, t->ch, 2000);
        libssh2_session_set_blocking(ssh_session_raw(n->session), 0);
    }
    t->ch = NULL;
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    bool killed = false;
    if (kill && n->session && !ssh_session_broken(n->session)) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "tmux kill-session -t '=%s'", t->info.session);
        struct ssh_exec_result r;
        struct sb_err e = {0};
        killed = run_quick(n, cmd, &r, &e) == 0 && r.exit_code == 0;
        ssh_exec_result_release(&r);
    }
    memset(out, 0, sizeof *out);
    term_recording_close(&t->rec, out->recording_sha256);
    sb_strlcpy(out->recording_id, t->rec_id, sizeof out->recording_id);
    out->recording_bytes = t->rec.bytes;
    out->recording_truncated = t->rec.truncated;
    out->reason = reason;
    out->killed = killed;
    out->closed_us = time_now_us();
    pthread_mutex_lock(&ts->lock);
    n->n_terms--;
    ts->n_open--;
    pthread_mutex_lock(&t->lock);
    t->closed = true;
    t->end_reason = reason;
    snapshot_locked(t, &out->info);
    term_streams_wake_locked(t, false);
    pthread_mutex_unlock(&t->lock);
    pthread_mutex_unlock(&ts->lock);
    atomic_fetch_add(&ts->closed, 1);
    term_unref(t); /* the registry's */
}

static void close_reported(struct term_node *n, struct term *t, const char *reason)
{
    struct terminal_closed c;
    do_close(n, t, reason, false, &c);
    if (n->ts->cfg.closed)
        n->ts->cfg.closed(n->ts->cfg.ctx, &c);
}

static int do_kill(struct term_node *n, const char *session, struct sb_err *err)
{
    int rc = session_get(n, err);
    if (rc)
        return rc;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "tmux kill-session -t '=%s'", session);
    struct ssh_exec_result r;
    rc = run_quick(n, cmd, &r, err);
    int code = r.exit_code;
    ssh_exec_result_release(&r);
    if (!n->terms)
        session_release(n, false);
    if (rc)
        return rc;
    if (code != 0)
        return sb_error(err, SB_ENOTFOUND, "the node has no tmux session '%s'", session);
    return 0;
}

static bool lost(ssize_t rc)
{
    return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
           rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
           rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_KEX_FAILURE || rc == LIBSSH2_ERROR_DECRYPT ||
           rc == LIBSSH2_ERROR_PROTO;
}

/* A container console's pump: the same as pump() on a plain socket. */
/* Takes the next piece of queued input into the in-flight buffer, which is
 * written (and retried) as is until the channel or pty takes all of it.
 * False when nothing is queued. */
static bool input_refill(struct terminals *ts, struct term *t)
{
    pthread_mutex_lock(&t->lock);
    size_t k = t->input.len < sizeof t->inflight ? t->input.len : sizeof t->inflight;
    memcpy(t->inflight, t->input.data, k);
    buf_consume(&t->input, k);
    pthread_mutex_unlock(&t->lock);
    t->inflight_len = k;
    t->inflight_off = 0;
    if (!k)
        return false;
    if (ts->cfg.record_input)
        term_recording_event(&t->rec, 'i', t->inflight, k);
    atomic_fetch_add(&ts->bytes_in, k);
    return true;
}

static int pump_fd(struct term_node *n, struct term *t)
{
    struct terminals *ts = n->ts;
    int progress = 0;
    char buf[16384];
    size_t budget = READ_BUDGET;
    while (budget) {
        ssize_t r = read(t->fd, buf, sizeof buf);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (r <= 0)
            return -1; /* the shell exited (or the engine went away) */
        budget = (size_t)r < budget ? budget - (size_t)r : 0;
        progress = 1;
        term_recording_event(&t->rec, 'o', buf, (size_t)r);
        atomic_fetch_add(&ts->bytes_out, (uint64_t)r);
        pthread_mutex_lock(&t->lock);
        term_ring_write(&t->ring, buf, (size_t)r);
        term_streams_wake_locked(t, false);
        pthread_mutex_unlock(&t->lock);
    }
    pthread_mutex_lock(&t->lock);
    bool resize = t->resize_pending;
    int cols = t->info.cols, rows = t->info.rows;
    t->resize_pending = false;
    pthread_mutex_unlock(&t->lock);
    if (resize && ts->cfg.console_resize) {
        ts->cfg.console_resize(ts->cfg.ctx, t->info.node_id, t->exec_id, cols, rows);
        term_recording_resize(&t->rec, cols, rows);
    }
    for (int rounds = 0; rounds < 64; rounds++) {
        if (t->inflight_off == t->inflight_len && !input_refill(ts, t))
            break;
        ssize_t w = write(t->fd, t->inflight + t->inflight_off, t->inflight_len - t->inflight_off);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (w < 0)
            return -1;
        t->inflight_off += (size_t)w;
        progress = 1;
    }
    return progress;
}

/* Moves bytes of one terminal. Returns 1 on progress, 0 without, -1 when
 * the terminal ended (tmux exited), -2 when the session broke. */
static int pump(struct term_node *n, struct term *t)
{
    struct terminals *ts = n->ts;
    int progress = 0;
    /* output */
    char buf[16384];
    size_t budget = READ_BUDGET;
    while (budget) {
        ssize_t r = libssh2_channel_read(t->ch, buf, sizeof buf);
        if (r == LIBSSH2_ERROR_EAGAIN || r == 0)
            break;
        if (r < 0)
            return lost(r) ? -2 : -1;
        budget = (size_t)r < budget ? budget - (size_t)r : 0;
        progress = 1;
        term_recording_event(&t->rec, 'o', buf, (size_t)r);
        atomic_fetch_add(&ts->bytes_out, (uint64_t)r);
        pthread_mutex_lock(&t->lock);
        term_ring_write(&t->ring, buf, (size_t)r);
        term_streams_wake_locked(t, false);
        pthread_mutex_unlock(&t->lock);
    }
    /* stderr of a PTY channel is empty; drain it anyway so the window moves */
    while (libssh2_channel_read_stderr(t->ch, buf, sizeof buf) > 0) {
    }
    /* size */
    pthread_mutex_lock(&t->lock);
    bool resize = t->resize_pending;
    int cols = t->info.cols, rows = t->info.rows;
    pthread_mutex_unlock(&t->lock);
    if (resize) {
        int rc = libssh2_channel_request_pty_size_ex(t->ch, cols, rows, 0, 0);
        if (rc == 0 || (rc != LIBSSH2_ERROR_EAGAIN)) {
            if (rc && lost(rc))
                return -2;
            pthread_mutex_lock(&t->lock);
            if (t->info.cols == cols && t->info.rows == rows)
                t->resize_pending = false;
            pthread_mutex_unlock(&t->lock);
            term_recording_resize(&t->rec, cols, rows);
            progress = 1;
        }
    }
    /* input: one piece in flight, retried as is until the channel takes it */
    for (int rounds = 0; rounds < 64; rounds++) {
        if (t->inflight_off == t->inflight_len && !input_refill(ts, t))
            break;
        ssize_t w =
            libssh2_channel_write(t->ch, t->inflight + t->inflight_off, t->inflight_len - t->inflight_off);
        if (w == LIBSSH2_ERROR_EAGAIN)
            break;
        if (w < 0)
            return lost(w) ? -2 : -1;
        t->inflight_off += (size_t)w;
        progress = 1;
    }
    if (libssh2_channel_eof(t->ch))
        return -1;
    return progress;
}

static void run_cmds(struct term_node *n)
{
    struct terminals *ts = n->ts;
    pthread_mutex_lock(&ts->lock);
    struct term_cmd *cmds = n->cmds;
    n->cmds = NULL;
    pthread_mutex_unlock(&ts->lock);
    /* in arrival order */
    struct term_cmd *rev = NULL;
    while (cmds) {
        struct term_cmd *next = cmds->next;
        cmds->next = rev;
        rev = cmds;
        cmds = next;
    }
    for (struct term_cmd *c = rev, *next; c; c = next) {
        next = c->next;
        if (c->kind == CMD_OPEN) {
            c->rc = do_open(n, c->t, &c->err);
        } else if (c->kind == CMD_CLOSE) {
            bool found = false;
            for (struct term *t = n->terms; t; t = t->next)
                found |= t == c->t;
            if (found)
                do_close(n, c->t, c->kill ? "killed" : "detached", c->kill, &c->closed);
            else
                c->rc = sb_error(&c->err, SB_ENOTFOUND, "the terminal is already closed");
        } else {
            c->rc = do_kill(n, c->session, &c->err);
        }
        pthread_mutex_lock(&ts->lock);
        c->done = true;
        bool abandoned = c->abandoned;
        pthread_cond_broadcast(&ts->cond);
        pthread_mutex_unlock(&ts->lock);
        if (abandoned) {
            /* the caller gave up waiting: undo an open it no longer wants */
            if (c->kind == CMD_OPEN && c->rc == 0) {
                close_reported(n, c->t, "detached");
            } else if (c->kind == CMD_OPEN) {
                pthread_mutex_lock(&ts->lock);
                n->n_terms--;
                ts->n_open--;
                pthread_mutex_unlock(&ts->lock);
                term_unref(c->t); /* the registry never had it */
            }
            if (c->t)
                term_unref(c->t);
            free(c);
        }
    }
}

static void *node_main(void *arg)
{
    struct term_node *n = arg;
    struct terminals *ts = n->ts;
    bool busy = false;
    n->last_beat_ms = time_mono_ms();
    for (;;) {
        pthread_mutex_lock(&ts->lock);
        bool stop = ts->stopping && !n->cmds;
        pthread_mutex_unlock(&ts->lock);
        if (stop)
            break;
        struct pollfd pf[2 + 64] = {{.fd = n->wake[0], .events = POLLIN}};
        nfds_t np = 1;
        for (struct term *t = n->terms; t && np < sizeof pf / sizeof pf[0]; t = t->next)
            if (t->fd >= 0)
                pf[np++] = (struct pollfd){
                    .fd = t->fd,
                    .events = (short)(POLLIN | (t->inflight_off < t->inflight_len ? POLLOUT : 0))};
        if (n->session) {
            int dirs = libssh2_session_block_directions(ssh_session_raw(n->session));
            pf[np++] = (struct pollfd){
                .fd = ssh_session_fd(n->session),
                .events = (short)(POLLIN | (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND ? POLLOUT : 0))};
        }
        poll(pf, np, busy ? 0 : TICK_MS);
        if (pf[0].revents & POLLIN) {
            char drain[64];
            while (read(n->wake[0], drain, sizeof drain) > 0) {
            }
        }
        run_cmds(n);
        busy = false;
        bool broken = false;
        int64_t now = time_mono_ms();
        for (struct term *t = n->terms, *next; t && !broken; t = next) {
            next = t->next;
            int r = t->fd >= 0 ? pump_fd(n, t) : pump(n, t);
            if (r > 0)
                busy = true;
            else if (r == -1)
                close_reported(n, t, "exited");
            else if (r == -2)
                broken = true;
            if (r < 0)
                continue;
            pthread_mutex_lock(&t->lock);
            bool idle = ts->cfg.idle_timeout_ms > 0 && t->n_streams == 0 &&
                        now - t->last_activity_ms > ts->cfg.idle_timeout_ms;
            pthread_mutex_unlock(&t->lock);
            if (idle)
                close_reported(n, t, "idle");
        }
        if (broken) {
            log_warn("terminal: the SSH connection to the node broke", "node=%s", n->node_id);
            ssh_session_mark_broken(n->session);
            while (n->terms)
                close_reported(n, n->terms, "node_lost");
        }
        if (now - n->last_beat_ms >= HEARTBEAT_MS) {
            n->last_beat_ms = now;
            for (struct term *t = n->terms; t; t = t->next) {
                pthread_mutex_lock(&t->lock);
                term_streams_wake_locked(t, true);
                pthread_mutex_unlock(&t->lock);
            }
        }
        if (n->session && !n->terms)
            session_release(n, broken);
        if (n->session) {
            int next = 0;
            if (libssh2_keepalive_send(ssh_session_raw(n->session), &next) < 0 &&
                libssh2_session_last_errno(ssh_session_raw(n->session)) != LIBSSH2_ERROR_EAGAIN)
                ssh_session_mark_broken(n->session);
        }
    }
    while (n->terms)
        close_reported(n, n->terms, "shutdown");
    session_release(n, false);
    return NULL;
}

/* The node's thread, started on first use. Called with ts->lock held. */
static struct term_node *node_get_locked(struct terminals *ts, const char *node_id, bool console,
                                         struct sb_err *err)
{
    for (struct term_node *n = ts->nodes; n; n = n->next)
        if (strcmp(n->node_id, node_id) == 0 && n->console == console)
            return n;
    struct term_node *n = calloc(1, sizeof *n);
    if (!n) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    n->ts = ts;
    n->console = console;
    sb_strlcpy(n->node_id, node_id, sizeof n->node_id);
    if (pipe2(n->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        free(n);
        sb_error(err, SB_EINTERNAL, "cannot make a pipe: %s", strerror(errno));
        return NULL;
    }
    if (pthread_create(&n->thread, NULL, node_main, n) != 0) {
        close(n->wake[0]);
        close(n->wake[1]);
        free(n);
        sb_error(err, SB_EINTERNAL, "cannot start the terminal thread");
        return NULL;
    }
    n->next = ts->nodes;
    ts->nodes = n;
    return n;
}

/* Queues c on the node's thread and waits for it. On a timeout the command
 * is abandoned (the thread frees it) and SB_ETIMEOUT returned. Called with
 * ts->lock held; returns with it held. */
static int submit_locked(struct terminals *ts, struct term_node *n, struct term_cmd *c, struct sb_err *err)
{
    c->next = n->cmds;
    n->cmds = c;
    node_wake(n);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += CMD_WAIT_MS / 1000;
    while (!c->done) {
        if (pthread_cond_timedwait(&ts->cond, &ts->lock, &dl) == ETIMEDOUT && !c->done) {
            c->abandoned = true;
            return sb_error(err, SB_ETIMEOUT, "the node did not answer in time");
        }
    }
    return 0;
}

static struct term *find_locked(struct terminals *ts, const char *id)
{
    for (struct term_node *n = ts->nodes; n; n = n->next)
        for (struct term *t = n->terms; t; t = t->next)
            if (strcmp(t->info.id, id) == 0)
                return t;
    return NULL;
}

/* The retention sweep: at start, then hourly. */
static void *janitor_main(void *arg)
{
    struct terminals *ts = arg;
    pthread_mutex_lock(&ts->lock);
    while (!ts->stopping) {
        pthread_mutex_unlock(&ts->lock);
        int n = terminal_recordings_expire(ts, ts->cfg.retention_days);
        if (n)
            log_info("recordings removed by retention", "count=%d days=%d", n, ts->cfg.retention_days);
        pthread_mutex_lock(&ts->lock);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 3600;
        while (!ts->stopping && pthread_cond_timedwait(&ts->cond, &ts->lock, &dl) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&ts->lock);
    return NULL;
}

/* ---- the interface -------------------------------------------------------- */

struct terminals *terminals_new(const struct terminal_config *cfg, struct sb_err *err)
{
    struct terminals *ts = calloc(1, sizeof *ts);
    if (!ts) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    ts->cfg = *cfg;
    if (!ts->cfg.ring_bytes)
        ts->cfg.ring_bytes = (size_t)1 << 20;
    if (!ts->cfg.recording_max_bytes)
        ts->cfg.recording_max_bytes = (size_t)64 << 20;
    if (!ts->cfg.input_max_bytes)
        ts->cfg.input_max_bytes = (size_t)4 << 20;
    if (!ts->cfg.idle_timeout_ms)
        ts->cfg.idle_timeout_ms = 3600 * 1000;
    if (ts->cfg.max_per_node <= 0)
        ts->cfg.max_per_node = 8;
    if (ts->cfg.max_total <= 0)
        ts->cfg.max_total = 256;
    sb_strlcpy(ts->dir, cfg->recordings_dir, sizeof ts->dir);
    if (mkdir(ts->dir, 0700) != 0 && errno != EEXIST) {
        sb_error(err, SB_EINTERNAL, "cannot make the recordings directory %s: %s", ts->dir, strerror(errno));
        free(ts);
        return NULL;
    }
    ts->cfg.recordings_dir = ts->dir;
    pthread_mutex_init(&ts->lock, NULL);
    pthread_cond_init(&ts->cond, NULL);
    if (ts->cfg.retention_days > 0)
        ts->janitor_started = pthread_create(&ts->janitor, NULL, janitor_main, ts) == 0;
    return ts;
}

void terminals_shutdown(struct terminals *ts)
{
    if (!ts)
        return;
    pthread_mutex_lock(&ts->lock);
    ts->stopping = true;
    struct term_node *nodes = ts->nodes;
    pthread_cond_broadcast(&ts->cond);
    pthread_mutex_unlock(&ts->lock);
    if (ts->janitor_started)
        pthread_join(ts->janitor, NULL);
    ts->janitor_started = false;
    /* Each thread detaches its terminals (reporting them) and exits. */
    for (struct term_node *n = nodes; n; n = n->next)
        node_wake(n);
    for (struct term_node *n = nodes; n; n = n->next)
        pthread_join(n->thread, NULL);
    pthread_mutex_lock(&ts->lock);
    for (struct term_node *n = ts->nodes; n; n = n->next)
        n->thread = 0;
    pthread_mutex_unlock(&ts->lock);
}

void terminals_free(struct terminals *ts)
{
    if (!ts)
        return;
    if (!ts->stopping)
        terminals_shutdown(ts);
    for (struct term_node *n = ts->nodes, *next; n; n = next) {
        next = n->next;
        close(n->wake[0]);
        close(n->wake[1]);
        free(n);
    }
    pthread_mutex_destroy(&ts->lock);
    pthread_cond_destroy(&ts->cond);
    free(ts);
}

static void clamp_size(int *cols, int *rows)
{
    if (*cols <= 0)
        *cols = 80;
    if (*rows <= 0)
        *rows = 24;
}

static int size_check(int cols, int rows, struct sb_err *err)
{
    if (cols < 2 || cols > 1000)
        return sb_field_error(err, "cols", "cols must be 2 to 1000");
    if (rows < 1 || rows > 1000)
        return sb_field_error(err, "rows", "rows must be 1 to 1000");
    return 0;
}

static int open_term(struct terminals *ts, const struct terminal_open_opts *o, const char *container,
                     struct terminal_info *out, bool *joined, struct sb_err *err)
{
    *joined = false;
    int rc = terminal_name_check(o->session, err);
    if (rc)
        return rc;
    int cols = o->cols, rows = o->rows;
    bool sized = cols || rows;
    clamp_size(&cols, &rows);
    if ((rc = size_check(cols, rows, err)))
        return rc;
    pthread_mutex_lock(&ts->lock);
    if (ts->stopping) {
        pthread_mutex_unlock(&ts->lock);
        return sb_error(err, SB_EUNAVAIL, "the server is shutting down");
    }
    struct term_node *n = node_get_locked(ts, o->node_id, container != NULL, err);
    if (!n) {
        pthread_mutex_unlock(&ts->lock);
        return err ? err->code : SB_EINTERNAL;
    }
    /* Join the terminal already open on that tmux session. */
    for (struct term *t = container ? NULL : n->terms; t; t = t->next) {
        if (strcmp(t->info.session, o->session) != 0)
            continue;
        pthread_mutex_lock(&t->lock);
        if (sized && (t->info.cols != cols || t->info.rows != rows)) {
            t->info.cols = cols;
            t->info.rows = rows;
            t->resize_pending = true;
        }
        t->last_activity_ms = time_mono_ms();
        snapshot_locked(t, out);
        pthread_mutex_unlock(&t->lock);
        pthread_mutex_unlock(&ts->lock);
        node_wake(n);
        *joined = true;
        return 0;
    }
    if (n->n_terms >= ts->cfg.max_per_node || ts->n_open >= ts->cfg.max_total) {
        pthread_mutex_unlock(&ts->lock);
        return sb_error(err, SB_ECONFLICT, "too many terminals open (at most %d per node, %d in all)",
                        ts->cfg.max_per_node, ts->cfg.max_total);
    }
    struct term *t = calloc(1, sizeof *t);
    struct term_cmd *c = calloc(1, sizeof *c);
    if (!t || !c || term_ring_init(&t->ring, ts->cfg.ring_bytes)) {
        pthread_mutex_unlock(&ts->lock);
        free(c);
        if (t)
            free(t->ring.data);
        free(t);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&t->lock, NULL);
    t->refs = 2; /* the registry's and the command's */
    t->ts = ts;
    t->node = n;
    t->fd = -1;
    if (container)
        sb_strlcpy(t->info.container, container, sizeof t->info.container);
    buf_init(&t->input, ts->cfg.input_max_bytes);
    uuid_v4(t->info.id);
    sb_strlcpy(t->rec_id, t->info.id, sizeof t->rec_id);
    sb_strlcpy(t->info.node_id, o->node_id, sizeof t->info.node_id);
    sb_strlcpy(t->info.session, o->session, sizeof t->info.session);
    sb_strlcpy(t->info.opened_by, o->opened_by ? o->opened_by : "", sizeof t->info.opened_by);
    t->info.cols = cols;
    t->info.rows = rows;
    t->info.opened_us = time_now_us();
    t->last_activity_ms = time_mono_ms();
    n->n_terms++;
    ts->n_open++;
    c->kind = CMD_OPEN;
    c->t = t;
    rc = submit_locked(ts, n, c, err);
    if (rc) { /* abandoned: the thread cleans up */
        pthread_mutex_unlock(&ts->lock);
        return rc;
    }
    rc = c->rc;
    if (rc) {
        n->n_terms--;
        ts->n_open--;
        if (err)
            *err = c->err;
    } else {
        pthread_mutex_lock(&t->lock);
        snapshot_locked(t, out);
        pthread_mutex_unlock(&t->lock);
        atomic_fetch_add(&ts->opened, 1);
    }
    pthread_mutex_unlock(&ts->lock);
    free(c);
    if (rc)
        term_unref(t); /* the registry never had it */
    term_unref(t);     /* the command's */
    return rc;
}

int terminal_open(struct terminals *ts, const struct terminal_open_opts *o, struct terminal_info *out,
                  bool *joined, struct sb_err *err)
{
    return open_term(ts, o, NULL, out, joined, err);
}

int terminal_console_open(struct terminals *ts, const struct terminal_open_opts *o, const char *container,
                          struct terminal_info *out, struct sb_err *err)
{
    if (!container || !*container || strlen(container) >= sizeof out->container)
        return sb_field_error(err, "container", "no such container");
    struct terminal_open_opts c = *o;
    c.session = "console";
    bool joined;
    return open_term(ts, &c, container, out, &joined, err);
}

int terminal_get(struct terminals *ts, const char *id, struct terminal_info *out, struct sb_err *err)
{
    pthread_mutex_lock(&ts->lock);
    struct term *t = find_locked(ts, id);
    if (t) {
        pthread_mutex_lock(&t->lock);
        snapshot_locked(t, out);
        pthread_mutex_unlock(&t->lock);
    }
    pthread_mutex_unlock(&ts->lock);
    return t ? 0 : sb_error(err, SB_ENOTFOUND, "no such terminal");
}

json_t *terminals_list(struct terminals *ts)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&ts->lock);
    for (struct term_node *n = ts->nodes; n; n = n->next)
        for (struct term *t = n->terms; t; t = t->next) {
            struct terminal_info i;
            pthread_mutex_lock(&t->lock);
            snapshot_locked(t, &i);
            pthread_mutex_unlock(&t->lock);
            json_array_append_new(arr, terminal_info_json(&i));
        }
    pthread_mutex_unlock(&ts->lock);
    return arr;
}

int terminal_input(struct terminals *ts, const char *id, const void *data, size_t len, struct sb_err *err)
{
    pthread_mutex_lock(&ts->lock);
    struct term *t = find_locked(ts, id);
    if (!t) {
        pthread_mutex_unlock(&ts->lock);
        return sb_error(err, SB_ENOTFOUND, "no such terminal");
    }
    pthread_mutex_lock(&t->lock);
    int rc = buf_append(&t->input, data, len);
    t->last_activity_ms = time_mono_ms();
    pthread_mutex_unlock(&t->lock);
    struct term_node *n = t->node;
    pthread_mutex_unlock(&ts->lock);
    if (rc)
        return sb_error(err, SB_ETOOLARGE,
                        "the terminal's input backlog is full (%zu bytes wait for the node); retry later",
                        ts->cfg.input_max_bytes);
    node_wake(n);
    return 0;
}

int terminal_resize(struct terminals *ts, const char *id, int cols, int rows, struct sb_err *err)
{
    int rc = size_check(cols, rows, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&ts->lock);
    struct term *t = find_locked(ts, id);
    if (!t) {
        pthread_mutex_unlock(&ts->lock);
        return sb_error(err, SB_ENOTFOUND, "no such terminal");
    }
    pthread_mutex_lock(&t->lock);
    t->info.cols = cols;
    t->info.rows = rows;
    t->resize_pending = true;
    t->last_activity_ms = time_mono_ms();
    pthread_mutex_unlock(&t->lock);
    node_wake(t->node);
    pthread_mutex_unlock(&ts->lock);
    return 0;
}

int terminal_close(struct terminals *ts, const char *id, bool kill, struct terminal_closed *out,
                   struct sb_err *err)
{
    struct term_cmd *c = calloc(1, sizeof *c);
    if (!c)
        return sb_error(err, SB_ENOMEM, "out of memory");
    pthread_mutex_lock(&ts->lock);
    struct term *t = find_locked(ts, id);
    if (!t) {
        pthread_mutex_unlock(&ts->lock);
        free(c);
        return sb_error(err, SB_ENOTFOUND, "no such terminal");
    }
    term_ref(t);
    c->kind = CMD_CLOSE;
    c->t = t;
    c->kill = kill;
    int rc = submit_locked(ts, t->node, c, err);
    if (rc) {
        pthread_mutex_unlock(&ts->lock);
        return rc;
    }
    pthread_mutex_unlock(&ts->lock);
    rc = c->rc;
    if (rc && err)
        *err = c->err;
    if (!rc)
        *out = c->closed;
    free(c);
    term_unref(t);
    return rc;
}

int terminal_kill_session(struct terminals *ts, const char *node_id, const char *session, struct sb_err *err)
{
    int rc = terminal_name_check(session, err);
    if (rc)
        return rc;
    struct term_cmd *c = calloc(1, sizeof *c);
    if (!c)
        return sb_error(err, SB_ENOMEM, "out of memory");
    pthread_mutex_lock(&ts->lock);
    struct term_node *n = ts->stopping ? NULL : node_get_locked(ts, node_id, false, err);
    if (!n) {
        pthread_mutex_unlock(&ts->lock);
        free(c);
        return ts->stopping ? sb_error(err, SB_EUNAVAIL, "the server is shutting down") : err->code;
    }
    for (struct term *t = n->terms; t; t = t->next)
        if (strcmp(t->info.session, session) == 0) {
            pthread_mutex_unlock(&ts->lock);
            free(c);
            return sb_error(err, SB_ECONFLICT, "terminal %s is open on that session: close it with kill=1",
                            t->info.id);
        }
    c->kind = CMD_KILL;
    sb_strlcpy(c->session, session, sizeof c->session);
    rc = submit_locked(ts, n, c, err);
    if (rc) {
        pthread_mutex_unlock(&ts->lock);
        return rc;
    }
    pthread_mutex_unlock(&ts->lock);
    rc = c->rc;
    if (rc && err)
        *err = c->err;
    free(c);
    return rc;
}

int terminal_stream(struct terminals *ts, const char *id, uint64_t offset, struct MHD_Connection *conn,
                    struct MHD_Response **out, struct sb_err *err)
{
    pthread_mutex_lock(&ts->lock);
    struct term *t = find_locked(ts, id);
    if (t)
        term_ref(t);
    pthread_mutex_unlock(&ts->lock);
    if (!t)
        return sb_error(err, SB_ENOTFOUND, "no such terminal");
    int rc = term_stream_open(t, offset, conn, out, err);
    term_unref(t);
    return rc;
}

int terminal_recording_path(struct terminals *ts, const char *id, char *out, size_t len, struct sb_err *err)
{
    if (!uuid_valid(id))
        return sb_error(err, SB_ENOTFOUND, "no such recording");
    recording_path(ts, id, out, len);
    struct stat st;
    if (stat(out, &st) != 0)
        return sb_error(err, SB_ENOTFOUND, "the recording's file is gone (removed by retention)");
    return 0;
}

int terminal_recordings_expire(struct terminals *ts, int days)
{
    if (days <= 0)
        return 0;
    DIR *d = opendir(ts->dir);
    if (!d)
        return 0;
    int removed = 0;
    time_t cutoff = time(NULL) - (time_t)days * 86400;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 36 + 5 || strcmp(e->d_name + 36, ".cast") != 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_mtime < cutoff && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

void terminals_stats(struct terminals *ts, struct terminal_stats *out)
{
    pthread_mutex_lock(&ts->lock);
    out->open = (uint64_t)ts->n_open;
    pthread_mutex_unlock(&ts->lock);
    out->opened = atomic_load(&ts->opened);
    out->closed = atomic_load(&ts->closed);
    out->bytes_out = atomic_load(&ts->bytes_out);
    out->bytes_in = atomic_load(&ts->bytes_in);
}

int terminal_recording_open(struct terminals *ts, const char *id, int *fd_out, uint64_t *size,
                            struct sb_err *err)
{
    *fd_out = -1;
    char path[1100];
    int rc = terminal_recording_path(ts, id, path, sizeof path, err);
    if (rc)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return sb_error(err, SB_ENOTFOUND, "the recording's file is gone (removed by retention)");
    }
    *fd_out = fd;
    *size = (uint64_t)st.st_size;
    return 0;
}
