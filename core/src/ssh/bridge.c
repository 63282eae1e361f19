/*
 * Unix-socket bridges to a node's Docker socket (see ssh.h).
 *
 * One bridge per node: a listening unix socket in a private directory and
 * one thread. The thread accepts local connections (libcurl's, one per
 * request or kept alive), and for each opens a `direct-streamlocal` channel
 * on one pooled session of the node, which it holds while it has clients
 * (and BRIDGE_IDLE_MS after the last one) and multiplexes in non-blocking
 * mode: a libssh2 session and its channels belong to one thread, which is
 * why the channels of a node share the bridge thread rather than one
 * thread per connection. A failure to reach the node or its socket is
 * answered at once with a 502 whose JSON "message" says in words what is
 * wrong ("Docker socket /var/run/docker.sock not found on the node") and
 * "serverbox_bridge": true, which the Docker client turns into "engine
 * unreachable" with that message (rather than a bare transport error);
 * then the local connection is closed.
 *
 * libssh2 reads packets of every channel when any channel is read, so data
 * can wait in its queues while the socket is quiet: the loop keeps going
 * without sleeping while any channel made progress, and never sleeps longer
 * than BRIDGE_TICK_MS.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define BRIDGE_BUF         32768 /* per direction and connection */
#define BRIDGE_MAX_CLIENTS 64    /* per node; more wait in the listen backlog */
#define BRIDGE_IDLE_MS     10000 /* keep the session this long after the last connection */
#define BRIDGE_TICK_MS     100
/* After a failure to reach the node, connections are refused at once for
 * this long instead of each waiting for its own connect timeout. */
#define BRIDGE_RETRY_MS 2000

struct bridge_conn {
    int fd;
    LIBSSH2_CHANNEL *ch;
    char up[BRIDGE_BUF]; /* client → node */
    size_t up_len;
    char down[BRIDGE_BUF]; /* node → client */
    size_t down_len;
    bool client_eof;
    struct bridge_conn *next;
};

struct bridge {
    struct ssh_bridges *owner;
    char node_id[64];
    char path[DOCKER_BRIDGE_PATH_MAX];
    char remote[108];
    int listen_fd;
    int wake[2];
    pthread_t thread;
    atomic_bool stop;
    struct ssh_session *session;
    int64_t idle_since_ms;
    int64_t retry_at_ms;
    char last_error[300]; /* why the node could not be reached (for the retry window) */
    struct bridge_conn *conns;
    int n_conns;
    struct bridge *next;
};

struct ssh_bridges {
    struct ssh_bridge_config cfg;
    char dir[64];
    pthread_mutex_t lock;
    struct bridge *list;
    atomic_uint_fast64_t connections;
};

/* ---- one node's thread ----------------------------------------------------- */

static void conn_close(struct bridge *b, struct bridge_conn *c)
{
    if (c->ch) {
        /* Freeing a channel waits for the peer's close: bounded by the
         * session's timeout in blocking mode, and short on a broken session
         * (whose channels libssh2_session_free releases in any case). */
        libssh2_session_set_blocking(b->session->s, 1);
        libssh2_session_set_timeout(b->session->s, b->session->broken ? 200 : 2000);
        libssh2_channel_free(c->ch);
        libssh2_session_set_timeout(b->session->s, SSH_OP_TIMEOUT_MS);
        libssh2_session_set_blocking(b->session->s, 0);
    }
    close(c->fd);
    for (struct bridge_conn **pp = &b->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    b->n_conns--;
    free(c);
    if (!b->conns)
        b->idle_since_ms = time_mono_ms();
}

static void session_drop(struct bridge *b, bool broken)
{
    if (!b->session)
        return;
    if (broken)
        b->session->broken = true;
    while (b->conns)
        conn_close(b, b->conns);
    libssh2_session_set_blocking(b->session->s, 1);
    libssh2_session_set_timeout(b->session->s, SSH_OP_TIMEOUT_MS);
    ssh_pool_release(b->owner->cfg.pool, b->session, broken);
    b->session = NULL;
}

static int session_get(struct bridge *b)
{
    if (b->session)
        return 0;
    struct ssh_bridges *o = b->owner;
    struct ssh_target t;
    void *handle = NULL;
    struct sb_err err = {0};
    struct ssh_diag d = {0};
    int rc = o->cfg.target_load(o->cfg.ctx, b->node_id, &t, &handle, &err);
    if (rc == 0) {
        rc = ssh_pool_acquire(o->cfg.pool, &t, &b->session, &d, &err);
        o->cfg.target_release(o->cfg.ctx, handle);
    }
    if (rc) {
        log_warn("docker bridge cannot reach the node", "node=%s detail=\"%s\"", b->node_id, err.msg);
        snprintf(b->last_error, sizeof b->last_error, "cannot reach the node over SSH: %s", err.msg);
        b->session = NULL;
        return rc;
    }
    return 0;
}

/* Answers a local connection with the error an engine would give (a 502
 * with {"message": msg}) and closes it. The request is read first (briefly:
 * libcurl sends it at once), so closing does not reset the connection
 * before the client reads the answer. */
static void refuse(int fd, const char *msg)
{
    char req[8192];
    size_t got = 0;
    int64_t until = time_mono_ms() + 500;
    while (got < sizeof req - 1) {
        int64_t left = until - time_mono_ms();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t n = read(fd, req + got, sizeof req - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            until = time_mono_ms() + 20; /* the headers are in: drain a body already sent, then answer */
    }
    json_t *body = json_pack("{s:s, s:b}", "message", msg, "serverbox_bridge", 1);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      text ? strlen(text) : 0);
    struct iovec iov[2] = {{head, (size_t)hl}, {text, text ? strlen(text) : 0}};
    ssize_t w = writev(fd, iov, 2);
    (void)w;
    free(text);
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* Why a channel to the node's socket was refused, in words: the node's
 * sshd says only "connect failed", so ask the node whether the socket is
 * there (on the same session, blocking, a few seconds at most). */
static void channel_failure_words(struct bridge *b, char *out, size_t len)
{
    snprintf(out, len, "Docker socket %s on the node refused the connection", b->remote);
    if (b->session->broken || strchr(b->remote, '\''))
        return;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test -S '%s'", b->remote);
    struct ssh_exec_opts o = {.command = cmd, .timeout_ms = 3000, .max_output = 256};
    struct ssh_exec_result r;
    ssh_exec_result_init(&r);
    struct sb_err err = {0};
    if (ssh_exec(b->session, &o, &r, &err) == 0 && !r.timed_out) {
        if (r.exit_code == 0)
            snprintf(
                out, len,
                "Docker socket %s on the node refused the connection (is the Docker daemon running, and may "
                "the SSH user use the socket?)",
                b->remote);
        else
            snprintf(out, len, "Docker socket %s not found on the node", b->remote);
    }
    ssh_exec_result_release(&r);
}

static void accept_one(struct bridge *b)
{
    int fd = accept4(b->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (!b->session && time_mono_ms() < b->retry_at_ms) {
        refuse(fd, b->last_error[0] ? b->last_error : "cannot reach the node over SSH");
        return;
    }
    if (session_get(b)) {
        refuse(fd, b->last_error); /* the client sees why the engine is unreachable */
        b->retry_at_ms = time_mono_ms() + BRIDGE_RETRY_MS;
        return;
    }
    struct sb_err err = {0};
    LIBSSH2_CHANNEL *ch = ssh_channel_open_streamlocal(b->session, b->remote, &err);
    if (!ch) {
        char words[384];
        channel_failure_words(b, words, sizeof words);
        libssh2_session_set_blocking(b->session->s, 0);
        log_warn("docker bridge: no channel to the node's socket", "node=%s detail=\"%s\" said=\"%s\"",
                 b->node_id, err.msg, words);
        refuse(fd, words);
        if (b->session->broken)
            session_drop(b, true);
        return;
    }
    libssh2_session_set_blocking(b->session->s, 0);
    struct bridge_conn *c = calloc(1, sizeof *c);
    if (!c) {
        libssh2_session_set_blocking(b->session->s, 1);
        libssh2_channel_free(ch);
        libssh2_session_set_blocking(b->session->s, 0);
        close(fd);
        return;
    }
    c->fd = fd;
    c->ch = ch;
    c->next = b->conns;
    b->conns = c;
    b->n_conns++;
    atomic_fetch_add(&b->owner->connections, 1);
}

/* -2 when an error means the session is gone, -1 when only the channel is. */
static int pump_error(ssize_t n)
{
    return n == LIBSSH2_ERROR_SOCKET_SEND || n == LIBSSH2_ERROR_SOCKET_RECV ||
                   n == LIBSSH2_ERROR_SOCKET_DISCONNECT || n == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
                   n == LIBSSH2_ERROR_TIMEOUT || n == LIBSSH2_ERROR_KEX_FAILURE ||
                   n == LIBSSH2_ERROR_DECRYPT || n == LIBSSH2_ERROR_PROTO
               ? -2
               : -1;
}

/* Moves bytes both ways; returns 1 on progress, 0 without, -1 when the
 * connection is done, -2 when the session broke. */
static int conn_pump(struct bridge_conn *c, short revents)
{
    int progress = 0;
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->client_eof && c->up_len < sizeof c->up) {
        ssize_t n = read(c->fd, c->up + c->up_len, sizeof c->up - c->up_len);
        if (n > 0) {
            c->up_len += (size_t)n;
            progress = 1;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->client_eof = true;
        }
    }
    while (c->up_len) {
        ssize_t n = libssh2_channel_write(c->ch, c->up, c->up_len);
        if (n == LIBSSH2_ERROR_EAGAIN)
            break;
        if (n < 0)
            return pump_error(n);
        memmove(c->up, c->up + n, c->up_len - (size_t)n);
        c->up_len -= (size_t)n;
        progress = 1;
    }
    /* libcurl never half-closes: a client's EOF ends the exchange. */
    if (c->client_eof)
        return -1;
    while (c->down_len < sizeof c->down) {
        ssize_t n = libssh2_channel_read(c->ch, c->down + c->down_len, sizeof c->down - c->down_len);
        if (n == LIBSSH2_ERROR_EAGAIN || n == 0)
            break;
        if (n < 0)
            return pump_error(n);
        c->down_len += (size_t)n;
        progress = 1;
    }
    while (c->down_len) {
        ssize_t n = write(c->fd, c->down, c->down_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return -1;
        }
        memmove(c->down, c->down + n, c->down_len - (size_t)n);
        c->down_len -= (size_t)n;
        progress = 1;
    }
    if (c->down_len == 0 && libssh2_channel_eof(c->ch))
        return -1;
    return progress;
}

static void *bridge_main(void *arg)
{
    struct bridge *b = arg;
    struct pollfd pf[BRIDGE_MAX_CLIENTS + 3];
    struct bridge_conn *polled[BRIDGE_MAX_CLIENTS];
    bool busy = false;
    b->idle_since_ms = time_mono_ms();
    while (!atomic_load(&b->stop)) {
        nfds_t n = 0;
        pf[n++] = (struct pollfd){.fd = b->wake[0], .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = b->listen_fd, .events = b->n_conns < BRIDGE_MAX_CLIENTS ? POLLIN : 0};
        int sfd = -1;
        if (b->session) {
            int dirs = libssh2_session_block_directions(b->session->s);
            sfd = (int)n;
            pf[n++] = (struct pollfd){
                .fd = b->session->fd,
                .events = (short)(POLLIN | (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND ? POLLOUT : 0))};
        }
        int k = 0;
        for (struct bridge_conn *c = b->conns; c && k < BRIDGE_MAX_CLIENTS; c = c->next) {
            short ev = 0;
            if (c->up_len < sizeof c->up)
                ev |= POLLIN;
            if (c->down_len)
                ev |= POLLOUT;
            polled[k++] = c;
            pf[n++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        int ready = poll(pf, n, busy ? 0 : BRIDGE_TICK_MS);
        if (ready < 0 && errno != EINTR)
            break;
        if (pf[0].revents & POLLIN) {
            char drain[64];
            while (read(b->wake[0], drain, sizeof drain) > 0) {
            }
        }
        if (atomic_load(&b->stop))
            break;
        (void)sfd;
        busy = false;
        int first = sfd >= 0 ? 3 : 2;
        bool broken = false;
        for (int i = 0; i < k && !broken; i++) {
            int r = conn_pump(polled[i], pf[first + i].revents);
            if (r > 0)
                busy = true;
            else if (r == -1)
                conn_close(b, polled[i]);
            else if (r == -2)
                broken = true;
        }
        if (broken) {
            log_warn("docker bridge: the connection to the node broke", "node=%s", b->node_id);
            session_drop(b, true);
        }
        if (pf[1].revents & POLLIN)
            accept_one(b);
        if (b->session && !b->conns && time_mono_ms() - b->idle_since_ms > BRIDGE_IDLE_MS)
            session_drop(b, false);
        if (b->session) {
            int next = 0;
            if (libssh2_keepalive_send(b->session->s, &next) < 0 &&
                libssh2_session_last_errno(b->session->s) != LIBSSH2_ERROR_EAGAIN)
                session_drop(b, true);
        }
    }
    session_drop(b, false);
    return NULL;
}

/* ---- the set of bridges ------------------------------------------------------ */

struct ssh_bridges *ssh_bridges_new(const struct ssh_bridge_config *cfg, struct sb_err *err)
{
    struct ssh_bridges *o = calloc(1, sizeof *o);
    if (!o) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    o->cfg = *cfg;
    /* A short private directory: socket paths are limited to 107 bytes, and
     * whoever reaches a bridge reaches the node's Docker as root. */
    snprintf(o->dir, sizeof o->dir, "/tmp/serverbox-docker-XXXXXX");
    if (!mkdtemp(o->dir)) {
        sb_error(err, SB_EINTERNAL, "cannot make the docker bridge directory: %s", strerror(errno));
        free(o);
        return NULL;
    }
    chmod(o->dir, 0700);
    pthread_mutex_init(&o->lock, NULL);
    return o;
}

static void bridge_stop(struct bridge *b)
{
    atomic_store(&b->stop, true);
    if (write(b->wake[1], "x", 1) < 0) {
        /* the pipe is full: the thread wakes anyway */
    }
    pthread_join(b->thread, NULL);
    close(b->listen_fd);
    close(b->wake[0]);
    close(b->wake[1]);
    unlink(b->path);
    free(b);
}

void ssh_bridges_free(struct ssh_bridges *o)
{
    if (!o)
        return;
    struct bridge *list = o->list;
    o->list = NULL;
    while (list) {
        struct bridge *b = list;
        list = b->next;
        bridge_stop(b);
    }
    rmdir(o->dir);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

static struct bridge *bridge_start(struct ssh_bridges *o, const char *node_id, const char *remote,
                                   struct sb_err *err)
{
    struct bridge *b = calloc(1, sizeof *b);
    if (!b) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    b->owner = o;
    b->listen_fd = b->wake[0] = b->wake[1] = -1;
    sb_strlcpy(b->node_id, node_id, sizeof b->node_id);
    sb_strlcpy(b->remote, remote, sizeof b->remote);
    snprintf(b->path, sizeof b->path, "%s/%s.sock", o->dir, node_id);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    sb_strlcpy(sa.sun_path, b->path, sizeof sa.sun_path);
    unlink(b->path);
    b->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (b->listen_fd < 0 || bind(b->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(b->listen_fd, 128) != 0 || pipe2(b->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        sb_error(err, SB_EINTERNAL, "cannot open the docker bridge of node %s: %s", node_id, strerror(errno));
        goto fail;
    }
    if (pthread_create(&b->thread, NULL, bridge_main, b) != 0) {
        sb_error(err, SB_EINTERNAL, "cannot start the docker bridge of node %s", node_id);
        goto fail;
    }
    return b;
fail:
    if (b->listen_fd >= 0)
        close(b->listen_fd);
    if (b->wake[0] >= 0) {
        close(b->wake[0]);
        close(b->wake[1]);
    }
    unlink(b->path);
    free(b);
    return NULL;
}

int ssh_bridge_socket(struct ssh_bridges *o, const char *node_id, const char *remote_path, char *out,
                      size_t len, struct sb_err *err)
{
    if (!uuid_valid(node_id))
        return sb_error(err, SB_ENOTFOUND, "no such node");
    if (!remote_path || !*remote_path || strlen(remote_path) > 107)
        return sb_error(err, SB_EINVAL, "the node's docker socket path must be 1 to 107 bytes");
    pthread_mutex_lock(&o->lock);
    struct bridge *b;
    for (;;) {
        b = o->list;
        while (b && strcmp(b->node_id, node_id) != 0)
            b = b->next;
        if (!b || strcmp(b->remote, remote_path) == 0)
            break;
        /* Another socket path now: drop the old bridge, then look again
         * (another caller may have started the new one meanwhile). */
        pthread_mutex_unlock(&o->lock);
        ssh_bridge_forget(o, node_id);
        pthread_mutex_lock(&o->lock);
    }
    if (!b && (b = bridge_start(o, node_id, remote_path, err))) {
        b->next = o->list;
        o->list = b;
    }
    if (b)
        sb_strlcpy(out, b->path, len);
    pthread_mutex_unlock(&o->lock);
    return b ? 0 : (err ? err->code : SB_EINTERNAL);
}

void ssh_bridge_forget(struct ssh_bridges *o, const char *node_id)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    struct bridge *found = NULL;
    for (struct bridge **pp = &o->list; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->node_id, node_id) == 0) {
            found = *pp;
            *pp = found->next;
            break;
        }
    pthread_mutex_unlock(&o->lock);
    if (found)
        bridge_stop(found);
}

uint64_t ssh_bridges_connections(struct ssh_bridges *o)
{
    return o ? atomic_load(&o->connections) : 0;
}
