/*
 * ssh — nodes over SSH with libssh2 1.10: a pool of authenticated sessions
 * per node, remote commands with timeouts and output caps, channels to unix
 * sockets (the Docker socket), SFTP upload and download confined to a base
 * directory, host-key pinning, and ed25519 key generation.
 *
 * Threads: a `struct ssh_session` (and every channel or SFTP handle made
 * from it) belongs to the one thread that acquired it until it is released.
 * The pool itself is thread-safe; a timer thread sends keepalives on idle
 * sessions and closes those idle longer than the TTL.
 *
 * Secrets: a target's private key and passphrase are only read during
 * authentication; the pool keeps a hash of them (to notice a changed key),
 * never the key. Error messages never contain them.
 */
#ifndef SB_SSH_H
#define SB_SSH_H

#include "../util/util.h"

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Call once before any thread (wraps libssh2_init). */
int ssh_global_init(void);
void ssh_global_cleanup(void);

/* How to reach and log in to one node. All pointers are borrowed. */
struct ssh_target {
    const char *node_id; /* the pool's key (a node uuid) */
    const char *host;
    int port;
    const char *user;
    const char *private_key; /* OpenSSH or PEM text */
    size_t private_key_len;
    const char *passphrase;  /* NULL or "" for none */
    const char *fingerprint; /* pinned "SHA256:…"; NULL or "" accepts any key (registration only) */
    bool handshake_only; /* ssh_connect: stop after the host-key check (learn the key without logging in) */
    bool tunnel; /* the core's own tunnel forward on 127.0.0.1 (tunnels/): not under the address policy */
};

/* Why a connection failed, for the caller's status and events. */
enum ssh_failure {
    SSH_FAIL_NONE,
    SSH_FAIL_RESOLVE,   /* host name does not resolve */
    SSH_FAIL_CONNECT,   /* TCP refused, unreachable or timed out */
    SSH_FAIL_HANDSHAKE, /* not an SSH server, or no common algorithm */
    SSH_FAIL_HOSTKEY,   /* the server presented another host key than the pinned one */
    SSH_FAIL_KEY,       /* the private key cannot be read (format or passphrase) */
    SSH_FAIL_AUTH,      /* the server refused the key for this user */
    SSH_FAIL_BUSY,      /* every pooled session of the node stayed busy */
    SSH_FAIL_IO,        /* the connection broke during the operation */
    SSH_FAIL_POLICY,    /* the host resolves only to addresses the address policy refuses */
};
const char *ssh_failure_name(enum ssh_failure f);

struct ssh_diag {
    enum ssh_failure failure;
    char fingerprint[64]; /* the host key the server presented ("SHA256:…"), when known */
    char key_type[24];    /* the client key's type ("ssh-ed25519", "ssh-rsa"…), when known */
};

struct ssh_session;

/* Which addresses connections may reach (--node-allowed-networks): called
 * with the numeric form of every address the host name resolves to (IPv4
 * mapped IPv6 addresses as IPv4), just before connecting to it, so the
 * address checked is the address connected to. false refuses it. Set once
 * at start, before any connection; NULL (the default) allows every address. */
typedef bool (*ssh_address_policy_fn)(const char *ip);
void ssh_set_address_policy(ssh_address_policy_fn fn);

/* A one-off connection outside the pool (registration, health checks of
 * unknown nodes, the benchmark). Free it with ssh_session_close. */
int ssh_connect(const struct ssh_target *t, int timeout_ms, struct ssh_session **out, struct ssh_diag *diag,
                struct sb_err *err);
void ssh_session_close(struct ssh_session *s);
/* The libssh2 handles, for the docker bridge. The session is in blocking
 * mode with a timeout when handed out; restore that before releasing. */
LIBSSH2_SESSION *ssh_session_raw(struct ssh_session *s);
int ssh_session_fd(const struct ssh_session *s);
/* "SHA256:…" of the host key this session verified. */
const char *ssh_session_fingerprint(const struct ssh_session *s);

/* ---- the pool --------------------------------------------------------- */

struct ssh_pool_config {
    int per_node;           /* sessions per node (default 3) */
    int global_max;         /* sessions in all (default 256) */
    int idle_ttl_ms;        /* close sessions idle longer (default 300000) */
    int keepalive_ms;       /* keepalive period on idle sessions (default 30000) */
    int connect_timeout_ms; /* TCP + handshake + auth (default 10000) */
    int acquire_timeout_ms; /* how long to wait for a busy node (default 10000) */
};

struct ssh_pool;

/* Starts the keepalive/eviction timer thread. Zero fields take defaults. */
struct ssh_pool *ssh_pool_new(const struct ssh_pool_config *cfg, struct sb_err *err);
/* Closes every session; no session may be acquired any more. */
void ssh_pool_free(struct ssh_pool *p);

/* Hands out an idle authenticated session of the node, or opens one, or
 * waits up to acquire_timeout_ms (then SB_EUNAVAIL, diag SSH_FAIL_BUSY).
 * A changed target (host, port, user, key, passphrase, fingerprint) closes
 * the node's older sessions. Connection failures: SB_EUPSTREAM (connect,
 * auth), SB_EDENIED (host key), SB_EINVAL (unreadable key), SB_ETIMEOUT. */
int ssh_pool_acquire(struct ssh_pool *p, const struct ssh_target *t, struct ssh_session **out,
                     struct ssh_diag *diag, struct sb_err *err);
/* Gives the session back; `broken` closes it instead of keeping it. */
void ssh_pool_release(struct ssh_pool *p, struct ssh_session *s, bool broken);
/* Closes the node's sessions (now for idle ones, at release for busy ones). */
void ssh_pool_forget(struct ssh_pool *p, const char *node_id);

struct ssh_pool_stats {
    uint64_t open, busy, hits, misses, failures, waits, timeouts;
    uint64_t channels; /* live long-lived channels (terminals) on busy sessions */
};
/* Figures for one node (zeros for an unknown node), or all when node_id is NULL. */
void ssh_pool_stats(struct ssh_pool *p, const char *node_id, struct ssh_pool_stats *out);

/* ---- remote commands -------------------------------------------------- */

struct ssh_exec_opts {
    const char *command; /* run by the login shell as `sh -c` in its own process group */
    int timeout_ms;      /* then the channel is closed and the process group killed */
    size_t max_output;   /* per stream; the rest is read and dropped (truncated) */
};

struct ssh_exec_result {
    int exit_code;        /* -1 when killed by a signal or timed out */
    char exit_signal[32]; /* "KILL"… when the command died of a signal */
    struct buf out, err;  /* owned; release with ssh_exec_result_release */
    bool truncated;
    bool timed_out;
    bool started; /* the command was sent to the node (never retried after) */
    int64_t duration_ms;
};
void ssh_exec_result_init(struct ssh_exec_result *r);
void ssh_exec_result_release(struct ssh_exec_result *r);

/* Runs one command on an acquired session. A failure before the command
 * started leaves r->started false (safe to retry on another session). */
int ssh_exec(struct ssh_session *s, const struct ssh_exec_opts *o, struct ssh_exec_result *r,
             struct sb_err *err);
/* Acquire + exec + release, retrying once on a fresh session when the
 * pooled one turned out dead before the command started. */
int ssh_pool_exec(struct ssh_pool *p, const struct ssh_target *t, const struct ssh_exec_opts *o,
                  struct ssh_exec_result *r, struct ssh_diag *diag, struct sb_err *err);

/* ---- channels to unix sockets ----------------------------------------- */

/* A direct-streamlocal@openssh.com channel to `path` on the node (e.g.
 * "/var/run/docker.sock"). The channel is the caller's until it frees it
 * with libssh2_channel_free, before releasing the session. */
LIBSSH2_CHANNEL *ssh_channel_open_streamlocal(struct ssh_session *s, const char *path, struct sb_err *err);

/* ---- PTY channels (terminals) -------------------------------------------
 * A long-lived interactive channel: a PTY of type `term` and size
 * cols x rows, then `command` run by the login shell. The channel counts as
 * live on its session: the pool refuses to release (and so never closes,
 * evicts or hands out) a session that still carries one, and its figures
 * report it. The session must be acquired and used by one thread (the
 * caller's) for the channel's whole life; the session is left in blocking
 * mode with its timeout. Close it with ssh_pty_close before releasing. */
int ssh_pty_open(struct ssh_session *s, const char *term, int cols, int rows, const char *command,
                 LIBSSH2_CHANNEL **out, struct sb_err *err);
/* Closes the channel (waits at most timeout_ms for the peer) and stops
 * counting it. */
void ssh_pty_close(struct ssh_session *s, LIBSSH2_CHANNEL *ch, int timeout_ms);
/* Whether the session saw an I/O error (then release it as broken). */
bool ssh_session_broken(const struct ssh_session *s);
/* Marks the session broken (an I/O error seen by the caller). */
void ssh_session_mark_broken(struct ssh_session *s);

/* ---- unix-socket bridges (the remote Docker engine) ----------------------
 * A local unix socket per node whose connections are carried, each on its
 * own direct-streamlocal channel of one pooled session, to a socket on the
 * node (its Docker socket). The sockets live in a private directory (0700)
 * under /tmp; each node's bridge is one thread, started on first use. The
 * pooled session is held while the bridge has connections and a few seconds
 * after (so it counts against the node's per_node sessions). When the node
 * cannot be reached a local connection is closed at once. */
#define DOCKER_BRIDGE_PATH_MAX 108
struct ssh_bridge_config {
    struct ssh_pool *pool;
    /* Fills the node's login (pointers valid until target_release(handle));
     * called on the bridge thread before it acquires a session. */
    int (*target_load)(void *ctx, const char *node_id, struct ssh_target *t, void **handle,
                       struct sb_err *err);
    void (*target_release)(void *ctx, void *handle);
    void *ctx;
};
struct ssh_bridges;
struct ssh_bridges *ssh_bridges_new(const struct ssh_bridge_config *cfg, struct sb_err *err);
/* Stops every bridge (closing its connections) and removes the sockets;
 * before ssh_pool_free. */
void ssh_bridges_free(struct ssh_bridges *b);
/* The local socket path (into out, >= DOCKER_BRIDGE_PATH_MAX) bridged to
 * remote_path on node_id (a uuid). Starts the bridge on first use; a changed
 * remote_path restarts it. */
int ssh_bridge_socket(struct ssh_bridges *b, const char *node_id, const char *remote_path, char *out,
                      size_t len, struct sb_err *err);
/* Stops a node's bridge (node changed or removed); the next use starts anew. */
void ssh_bridge_forget(struct ssh_bridges *b, const char *node_id);
/* Local connections bridged so far (for tests and the benchmark). */
uint64_t ssh_bridges_connections(struct ssh_bridges *b);

/* ---- SFTP confined to a base directory -------------------------------- */

/* Checks a path relative to a base: not empty, not absolute, no "." or ".."
 * component, no empty component, no control characters, at most 1024 bytes. */
int ssh_path_check(const char *relpath, struct sb_err *err);
/* Writes data to base/relpath atomically (temporary name in the same
 * directory, then rename) with the given mode. The parent directory must
 * exist, and its real path on the node (symlinks resolved) must be inside
 * the real path of base; an existing target that is a symlink is refused.
 * Sizes above max_bytes are refused (SB_ETOOLARGE). */
int ssh_sftp_upload(struct ssh_session *s, const char *base, const char *relpath, const void *data,
                    size_t len, long mode, size_t max_bytes, struct sb_err *err);
/* Reads base/relpath (whose real path must be inside base) into out
 * (cleared first); files above max_bytes are refused. */
int ssh_sftp_download(struct ssh_session *s, const char *base, const char *relpath, size_t max_bytes,
                      struct buf *out, struct sb_err *err);

/* ---- keys ------------------------------------------------------------- */

/* A fresh ed25519 keypair made with libsodium: the private key in OpenSSH
 * format (unencrypted; the caller seals it) into priv, and the
 * authorized_keys line into pub. */
int ssh_key_generate_ed25519(const char *comment, struct buf *priv, struct buf *pub, struct sb_err *err);
/* The key type named by a private key's text ("ssh-ed25519", "ssh-rsa",
 * "ecdsa-sha2-nistp256", "ssh-dss"), or "" when it cannot be told without
 * decrypting. Never fails. */
void ssh_key_type(const char *key, size_t len, char *out, size_t outlen);

#endif
