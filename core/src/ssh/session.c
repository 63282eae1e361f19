/*
 * One SSH connection: TCP connect with a deadline, handshake, host-key
 * check against the pinned fingerprint, public-key authentication from
 * memory, remote commands and unix-socket channels.
 *
 * Sessions stay in blocking mode with a timeout (libssh2_session_set_timeout)
 * except inside the exec read loop, which multiplexes stdout, stderr and the
 * deadline in non-blocking mode.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int ssh_global_init(void)
{
    return libssh2_init(0) == 0 ? 0 : SB_EINTERNAL;
}

void ssh_global_cleanup(void)
{
    libssh2_exit();
}

const char *ssh_failure_name(enum ssh_failure f)
{
    switch (f) {
    case SSH_FAIL_NONE:
        return "none";
    case SSH_FAIL_RESOLVE:
        return "resolve";
    case SSH_FAIL_CONNECT:
        return "connect";
    case SSH_FAIL_HANDSHAKE:
        return "handshake";
    case SSH_FAIL_HOSTKEY:
        return "hostkey_mismatch";
    case SSH_FAIL_KEY:
        return "private_key";
    case SSH_FAIL_AUTH:
        return "authentication";
    case SSH_FAIL_BUSY:
        return "busy";
    case SSH_FAIL_IO:
        return "io";
    case SSH_FAIL_POLICY:
        return "address_not_allowed";
    }
    return "unknown";
}

static void diag_set(struct ssh_diag *d, enum ssh_failure f)
{
    if (d)
        d->failure = f;
}

LIBSSH2_SESSION *ssh_session_raw(struct ssh_session *s)
{
    return s->s;
}

int ssh_session_fd(const struct ssh_session *s)
{
    return s->fd;
}

const char *ssh_session_fingerprint(const struct ssh_session *s)
{
    return s->fingerprint;
}

static _Atomic(ssh_address_policy_fn) address_policy;

void ssh_set_address_policy(ssh_address_policy_fn fn)
{
    atomic_store(&address_policy, fn);
}

/* The numeric form of a resolved address; IPv4-mapped IPv6 as IPv4. */
static void address_text(const struct addrinfo *ai, char *out, size_t len)
{
    out[0] = '\0';
    if (ai->ai_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, out, (socklen_t)len);
    } else if (ai->ai_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], out, (socklen_t)len);
        else
            inet_ntop(AF_INET6, a6, out, (socklen_t)len);
    }
}

static int tcp_connect(const char *host, int port, bool tunnel, int64_t deadline, struct ssh_diag *diag,
                       struct sb_err *err)
{
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        diag_set(diag, SSH_FAIL_RESOLVE);
        return sb_error(err, SB_EUPSTREAM, "cannot resolve host '%s': %s", host, gai_strerror(gai));
    }
    int fd = -1, last_errno = 0, tried = 0;
    char refused[INET6_ADDRSTRLEN] = "";
    /* A tunnel node is reached at the core's own loopback, where its
     * forward listens: the policy is about the addresses nodes name. */
    ssh_address_policy_fn policy =
        tunnel && strcmp(host, "127.0.0.1") == 0 ? NULL : atomic_load(&address_policy);
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        if (policy) {
            char ip[INET6_ADDRSTRLEN];
            address_text(ai, ip, sizeof ip);
            if (!ip[0] || !policy(ip)) {
                sb_strlcpy(refused, ip[0] ? ip : "?", sizeof refused);
                continue;
            }
        }
        tried++;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last_errno = errno;
            close(fd);
            fd = -1;
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int64_t left = deadline - time_mono_ms();
        int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (pr <= 0) {
            last_errno = ETIMEDOUT;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            last_errno = soerr ? soerr : errno;
        } else {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0 && tried == 0 && refused[0]) {
        diag_set(diag, SSH_FAIL_POLICY);
        return sb_error(err, SB_EINVAL,
                        "host '%s' resolves to %s, which the allowed node networks do not include "
                        "(--node-allowed-networks)",
                        host, refused);
    }
    if (fd < 0) {
        diag_set(diag, SSH_FAIL_CONNECT);
        return sb_error(err, SB_EUPSTREAM, "cannot connect to %s port %d: %s", host, port,
                        strerror(last_errno));
    }
    /* libssh2 does its own waiting in blocking mode: give it a blocking socket. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
}

void ssh_fingerprint_of(LIBSSH2_SESSION *s, char *out, size_t outlen)
{
    const char *h = libssh2_hostkey_hash(s, LIBSSH2_HOSTKEY_HASH_SHA256);
    out[0] = '\0';
    if (!h || outlen < 8 + sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING))
        return;
    memcpy(out, "SHA256:", 7);
    sodium_bin2base64(out + 7, outlen - 7, (const unsigned char *)h, 32,
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
}

/* The part of a libssh2 error safe to show: its code's meaning. */
static const char *lerr(LIBSSH2_SESSION *s)
{
    char *msg = NULL;
    libssh2_session_last_error(s, &msg, NULL, 0);
    return msg && *msg ? msg : "unknown error";
}

static int authenticate(struct ssh_session *ss, const struct ssh_target *t, struct ssh_diag *diag,
                        struct sb_err *err)
{
    char type[24];
    ssh_key_type(t->private_key, t->private_key_len, type, sizeof type);
    if (diag)
        sb_strlcpy(diag->key_type, type, sizeof diag->key_type);
    int rc = libssh2_userauth_publickey_frommemory(ss->s, t->user, strlen(t->user), NULL, 0, t->private_key,
                                                   t->private_key_len,
                                                   t->passphrase && *t->passphrase ? t->passphrase : NULL);
    if (rc == 0)
        return 0;
    /* The server's refusal is AUTHENTICATION_FAILED or PUBLICKEY_UNVERIFIED;
     * a key libssh2 cannot parse or decrypt gives FILE, or -1 from the
     * OpenSSH-format parser. */
    bool refused = rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED;
    bool io = rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_SEND ||
              rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_TIMEOUT;
    if (!refused && !io) {
        diag_set(diag, SSH_FAIL_KEY);
        return sb_error(
            err, SB_EINVAL,
            "the private key cannot be read: wrong or missing passphrase, or an unsupported format");
    }
    if (rc == LIBSSH2_ERROR_TIMEOUT) {
        diag_set(diag, SSH_FAIL_CONNECT);
        return sb_error(err, SB_ETIMEOUT, "authentication to %s port %d timed out", t->host, t->port);
    }
    if (rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_SEND ||
        rc == LIBSSH2_ERROR_SOCKET_DISCONNECT) {
        diag_set(diag, SSH_FAIL_IO);
        return sb_error(err, SB_EUPSTREAM, "connection to %s port %d lost during authentication", t->host,
                        t->port);
    }
    diag_set(diag, SSH_FAIL_AUTH);
    if (strcmp(type, "ssh-rsa") == 0)
        return sb_error(
            err, SB_EUPSTREAM,
            "the server refused the RSA key for user '%s': libssh2 1.10 signs RSA with ssh-rsa (SHA-1), "
            "which OpenSSH 8.8 and later refuse; use an ed25519 key",
            t->user);
    return sb_error(err, SB_EUPSTREAM, "the server refused the key for user '%s' (authentication failed)",
                    t->user);
}

int ssh_connect(const struct ssh_target *t, int timeout_ms, struct ssh_session **out, struct ssh_diag *diag,
                struct sb_err *err)
{
    *out = NULL;
    if (diag)
        memset(diag, 0, sizeof *diag);
    int64_t deadline = time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
    int fd = tcp_connect(t->host, t->port, t->tunnel, deadline, diag, err);
    if (fd < 0)
        return fd;
    struct ssh_session *ss = calloc(1, sizeof *ss);
    if (!ss) {
        close(fd);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    ss->fd = fd;
    ss->s = libssh2_session_init();
    if (!ss->s) {
        ssh_session_close(ss);
        return sb_error(err, SB_ENOMEM, "cannot create an SSH session");
    }
    libssh2_session_set_blocking(ss->s, 1);
    int64_t left = deadline - time_mono_ms();
    libssh2_session_set_timeout(ss->s, left > 100 ? (long)left : 100);
    /* Only methods this libssh2 knows: 1.10 drops unknown ones with an
     * overlapping memcpy (ASan reports it), and it has no rsa-sha2 host keys. */
    libssh2_session_method_pref(
        ss->s, LIBSSH2_METHOD_HOSTKEY,
        "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,ssh-rsa");
    int rc = libssh2_session_handshake(ss->s, fd);
    if (rc != 0) {
        diag_set(diag, rc == LIBSSH2_ERROR_TIMEOUT ? SSH_FAIL_CONNECT : SSH_FAIL_HANDSHAKE);
        sb_error(err, rc == LIBSSH2_ERROR_TIMEOUT ? SB_ETIMEOUT : SB_EUPSTREAM,
                 "SSH handshake with %s port %d failed: %s", t->host, t->port, lerr(ss->s));
        ssh_session_close(ss);
        return err ? err->code : SB_EUPSTREAM;
    }
    ssh_fingerprint_of(ss->s, ss->fingerprint, sizeof ss->fingerprint);
    if (diag)
        sb_strlcpy(diag->fingerprint, ss->fingerprint, sizeof diag->fingerprint);
    if (!ss->fingerprint[0]) {
        diag_set(diag, SSH_FAIL_HANDSHAKE);
        ssh_session_close(ss);
        return sb_error(err, SB_EUPSTREAM, "the server at %s port %d sent no usable host key", t->host,
                        t->port);
    }
    /* Fingerprints are public: a plain comparison is fine. */
    if (t->fingerprint && *t->fingerprint && strcmp(t->fingerprint, ss->fingerprint) != 0) {
        diag_set(diag, SSH_FAIL_HOSTKEY);
        sb_error(err, SB_EDENIED,
                 "host key mismatch for %s port %d: the server presented %s, but %s is pinned; refusing to "
                 "connect",
                 t->host, t->port, ss->fingerprint, t->fingerprint);
        ssh_session_close(ss);
        return SB_EDENIED;
    }
    rc = t->handshake_only ? 0 : authenticate(ss, t, diag, err);
    if (rc) {
        ssh_session_close(ss);
        return rc;
    }
    libssh2_session_set_timeout(ss->s, SSH_OP_TIMEOUT_MS);
    libssh2_keepalive_config(ss->s, 0, 30);
    *out = ss;
    return 0;
}

void ssh_session_close(struct ssh_session *s)
{
    if (!s)
        return;
    if (s->s) {
        /* A short timeout: the peer may already be gone. */
        libssh2_session_set_timeout(s->s, 1000);
        libssh2_session_disconnect(s->s, "bye");
        libssh2_session_free(s->s);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

bool ssh_session_looks_dead(struct ssh_session *s)
{
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
        return true;
    char c;
    ssize_t n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* ---- exec ------------------------------------------------------------- */

void ssh_exec_result_init(struct ssh_exec_result *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->out, 0);
    buf_init(&r->err, 0);
}

void ssh_exec_result_release(struct ssh_exec_result *r)
{
    buf_release(&r->out);
    buf_release(&r->err);
}

/* Single-quotes s for sh. */
static int sh_quote(struct buf *b, const char *s)
{
    int rc = buf_putc(b, '\'');
    for (; *s && rc == 0; s++)
        rc = *s == '\'' ? buf_puts(b, "'\\''") : buf_putc(b, *s);
    return rc ? rc : buf_putc(b, '\'');
}

#define PGID_MARK '\036'

/* The command runs in a new session (setsid) whose id the wrapper prints
 * first on stdout, so a timeout can kill the whole process group. */
static int wrap_command(struct buf *b, const char *command)
{
    buf_puts(b,
             "if command -v setsid >/dev/null 2>&1; then exec setsid -w sh -c 'printf \"\\036%s\\n\" \"$$\"; "
             "eval \"$1\"' sbx ");
    sh_quote(b, command);
    buf_puts(b, "; else exec sh -c ");
    sh_quote(b, command);
    return buf_puts(b, "; fi");
}

static int wait_socket(struct ssh_session *s, int64_t deadline)
{
    int dir = libssh2_session_block_directions(s->s);
    struct pollfd pfd = {.fd = s->fd, .events = 0};
    if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
        pfd.events |= POLLIN;
    if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        pfd.events |= POLLOUT;
    if (!pfd.events)
        pfd.events = POLLIN;
    int64_t left = deadline - time_mono_ms();
    if (left <= 0)
        return SB_ETIMEOUT;
    if (left > 1000)
        left = 1000; /* wake to recheck libssh2's buffers */
    poll(&pfd, 1, (int)left);
    return 0;
}

static bool lost(int rc)
{
    return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
           rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
           rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_CHANNEL_FAILURE ||
           rc == LIBSSH2_ERROR_CHANNEL_UNKNOWN || rc == LIBSSH2_ERROR_KEX_FAILURE;
}

/* Appends at most what the cap allows; the rest is dropped. */
static void take(struct buf *b, const char *data, size_t n, size_t cap, bool *truncated)
{
    size_t room = b->len < cap ? cap - b->len : 0;
    if (n > room) {
        *truncated = true;
        n = room;
    }
    if (n)
        buf_append(b, data, n);
}

static void kill_group(struct ssh_session *s, long pgid)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "kill -TERM -- -%ld 2>/dev/null; sleep 1; kill -KILL -- -%ld 2>/dev/null; true",
             pgid, pgid);
    libssh2_session_set_blocking(s->s, 1);
    libssh2_session_set_timeout(s->s, 5000);
    LIBSSH2_CHANNEL *ch = libssh2_channel_open_session(s->s);
    if (!ch) {
        s->broken = true;
        return;
    }
    if (libssh2_channel_exec(ch, cmd) == 0) {
        char tmp[256];
        while (libssh2_channel_read(ch, tmp, sizeof tmp) > 0) {
        }
        libssh2_channel_close(ch);
    } else {
        s->broken = true;
    }
    libssh2_channel_free(ch);
}

int ssh_exec(struct ssh_session *s, const struct ssh_exec_opts *o, struct ssh_exec_result *r,
             struct sb_err *err)
{
    int64_t start = time_mono_ms();
    int64_t deadline = start + (o->timeout_ms > 0 ? o->timeout_ms : 60000);
    size_t cap = o->max_output ? o->max_output : (1u << 20);
    r->exit_code = -1;
    libssh2_session_set_blocking(s->s, 1);
    libssh2_session_set_timeout(s->s, SSH_OP_TIMEOUT_MS);
    LIBSSH2_CHANNEL *ch = libssh2_channel_open_session(s->s);
    if (!ch) {
        int rc = libssh2_session_last_errno(s->s);
        s->broken = lost(rc) || rc == LIBSSH2_ERROR_CHANNEL_FAILURE;
        return sb_error(err, SB_EUPSTREAM, "cannot open a channel on the node: %s", lerr(s->s));
    }
    struct buf cmd;
    buf_init(&cmd, 256 * 1024);
    if (wrap_command(&cmd, o->command)) {
        buf_release(&cmd);
        libssh2_channel_free(ch);
        return sb_error(err, SB_ETOOLARGE, "command too long");
    }
    int rc = libssh2_channel_exec(ch, cmd.data);
    buf_release(&cmd);
    if (rc) {
        s->broken = lost(rc);
        libssh2_channel_free(ch);
        return sb_error(err, SB_EUPSTREAM, "the node refused to run the command: %s", lerr(s->s));
    }
    r->started = true;
    libssh2_session_set_blocking(s->s, 0);

    /* The first stdout line is the process group id from the wrapper. */
    char head[32];
    size_t head_len = 0;
    bool head_done = false;
    long pgid = 0;
    char tmp[32768];
    int ret = 0;
    for (;;) {
        bool progress = false;
        for (int stream = 0; stream < 2; stream++) {
            ssize_t n = libssh2_channel_read_ex(ch, stream, tmp, sizeof tmp);
            if (n > 0) {
                progress = true;
                const char *p = tmp;
                size_t len = (size_t)n;
                if (stream == 0 && !head_done) {
                    while (len && !head_done) {
                        char c = *p++;
                        len--;
                        if (head_len == 0 && c != PGID_MARK) {
                            head_done = true; /* no wrapper (no setsid): all of it is output */
                            p--;
                            len++;
                            break;
                        }
                        if (c == '\n') {
                            head[head_len] = '\0';
                            pgid = strtol(head + 1, NULL, 10);
                            head_done = true;
                        } else if (head_len < sizeof head - 1) {
                            head[head_len++] = c;
                        }
                    }
                }
                take(stream == 0 ? &r->out : &r->err, p, len, cap, &r->truncated);
            } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
                s->broken = true;
                ret = sb_error(err, SB_EUPSTREAM, "the connection to the node broke while the command ran");
                goto close;
            }
        }
        if (libssh2_channel_eof(ch))
            break;
        if (!progress && wait_socket(s, deadline) == SB_ETIMEOUT) {
            r->timed_out = true;
            break;
        }
        if (time_mono_ms() >= deadline) {
            r->timed_out = true;
            break;
        }
    }
close:
    libssh2_session_set_blocking(s->s, 1);
    libssh2_session_set_timeout(s->s, 5000);
    /* Kill first: sshd answers our channel close only once the command's
     * descriptors are closed. */
    if (r->timed_out && !s->broken && pgid > 1)
        kill_group(s, pgid);
    if (!s->broken) {
        if (!r->timed_out)
            libssh2_channel_wait_closed(ch);
        libssh2_channel_close(ch);
        if (!r->timed_out) {
            r->exit_code = libssh2_channel_get_exit_status(ch);
            char *sig = NULL;
            size_t siglen = 0;
            if (libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 && sig) {
                snprintf(r->exit_signal, sizeof r->exit_signal, "%.*s", (int)siglen, sig);
                r->exit_code = -1;
            }
            if (sig)
                libssh2_free(s->s, sig);
        }
    }
    libssh2_channel_free(ch);
    libssh2_session_set_timeout(s->s, SSH_OP_TIMEOUT_MS);
    r->duration_ms = time_mono_ms() - start;
    return ret;
}

/* ---- unix-socket channels --------------------------------------------- */

static void put_string(uint8_t *p, size_t *off, const char *s, size_t len)
{
    p[*off] = (uint8_t)(len >> 24);
    p[*off + 1] = (uint8_t)(len >> 16);
    p[*off + 2] = (uint8_t)(len >> 8);
    p[*off + 3] = (uint8_t)len;
    memcpy(p + *off + 4, s, len);
    *off += 4 + len;
}

LIBSSH2_CHANNEL *ssh_channel_open_streamlocal(struct ssh_session *s, const char *path, struct sb_err *err)
{
    size_t plen = strlen(path);
    if (plen == 0 || plen > 107) {
        sb_error(err, SB_EINVAL, "socket path must be 1 to 107 bytes");
        return NULL;
    }
    /* libssh2 1.10 lacks channel_direct_streamlocal_ex: build the message
     * (socket path, reserved string, reserved uint32) ourselves. */
    uint8_t msg[4 + 107 + 4 + 4];
    size_t off = 0;
    put_string(msg, &off, path, plen);
    put_string(msg, &off, "", 0);
    memset(msg + off, 0, 4);
    off += 4;
    libssh2_session_set_blocking(s->s, 1);
    LIBSSH2_CHANNEL *ch = libssh2_channel_open_ex(
        s->s, "direct-streamlocal@openssh.com", sizeof "direct-streamlocal@openssh.com" - 1,
        LIBSSH2_CHANNEL_WINDOW_DEFAULT, LIBSSH2_CHANNEL_PACKET_DEFAULT, (const char *)msg, (unsigned)off);
    if (!ch) {
        int rc = libssh2_session_last_errno(s->s);
        s->broken = lost(rc) && rc != LIBSSH2_ERROR_CHANNEL_FAILURE;
        sb_error(err, SB_EUPSTREAM, "the node refused a channel to %s: %s", path, lerr(s->s));
    }
    return ch;
}

/* ---- PTY channels -------------------------------------------------------- */

int ssh_pty_open(struct ssh_session *s, const char *term, int cols, int rows, const char *command,
                 LIBSSH2_CHANNEL **out, struct sb_err *err)
{
    *out = NULL;
    libssh2_session_set_blocking(s->s, 1);
    libssh2_session_set_timeout(s->s, SSH_OP_TIMEOUT_MS);
    LIBSSH2_CHANNEL *ch = libssh2_channel_open_session(s->s);
    if (!ch) {
        int rc = libssh2_session_last_errno(s->s);
        s->broken = lost(rc);
        if (rc == LIBSSH2_ERROR_CHANNEL_FAILURE && __atomic_load_n(&s->live_channels, __ATOMIC_RELAXED) > 0)
            return sb_error(err, SB_ECONFLICT,
                            "the node's sshd refuses more channels on one connection (%d terminals are open; "
                            "its MaxSessions, 10 by default, is the limit): close a terminal or raise it",
                            __atomic_load_n(&s->live_channels, __ATOMIC_RELAXED));
        return sb_error(err, SB_EUPSTREAM, "cannot open a channel on the node: %s", lerr(s->s));
    }
    int rc = libssh2_channel_request_pty_ex(ch, term, (unsigned)strlen(term), NULL, 0, cols, rows, 0, 0);
    if (rc == 0)
        rc = libssh2_channel_exec(ch, command);
    if (rc) {
        s->broken = lost(rc);
        char why[160];
        snprintf(why, sizeof why, "%s", lerr(s->s));
        libssh2_session_set_timeout(s->s, 2000);
        libssh2_channel_free(ch);
        libssh2_session_set_timeout(s->s, SSH_OP_TIMEOUT_MS);
        return sb_error(err, SB_EUPSTREAM, "the node refused the terminal: %s", why);
    }
    __atomic_add_fetch(&s->live_channels, 1, __ATOMIC_RELAXED);
    *out = ch;
    return 0;
}

void ssh_pty_close(struct ssh_session *s, LIBSSH2_CHANNEL *ch, int timeout_ms)
{
    if (!ch)
        return;
    libssh2_session_set_blocking(s->s, 1);
    libssh2_session_set_timeout(s->s, s->broken ? 200 : timeout_ms);
    libssh2_channel_close(ch);
    libssh2_channel_free(ch);
    libssh2_session_set_timeout(s->s, SSH_OP_TIMEOUT_MS);
    __atomic_sub_fetch(&s->live_channels, 1, __ATOMIC_RELAXED);
}

bool ssh_session_broken(const struct ssh_session *s)
{
    return s->broken;
}

void ssh_session_mark_broken(struct ssh_session *s)
{
    s->broken = true;
}
