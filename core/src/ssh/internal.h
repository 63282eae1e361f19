/* Private to ssh/: the session structure shared by its files. */
#ifndef SB_SSH_INTERNAL_H
#define SB_SSH_INTERNAL_H

#include "ssh.h"

/* The timeout of single blocking libssh2 calls on an established session. */
#define SSH_OP_TIMEOUT_MS 15000

struct ssh_node; /* pool.c */

struct ssh_session {
    LIBSSH2_SESSION *s;
    int fd;
    char fingerprint[64];
    bool broken; /* an I/O error was seen: close instead of reusing */
    /* pool bookkeeping (pool.c) */
    struct ssh_node *node;
    struct ssh_session *next;
    uint8_t gen[16]; /* hash of the target it was opened for */
    int64_t idle_since_ms;
    int64_t keepalive_at_ms;
    bool in_use;       /* acquired by a caller or by the timer */
    int live_channels; /* long-lived channels (terminals) on it: never released, closed or reused meanwhile */
};

void ssh_fingerprint_of(LIBSSH2_SESSION *s, char *out, size_t outlen);
/* A cheap check that the peer has not closed an idle connection. */
bool ssh_session_looks_dead(struct ssh_session *s);

#endif
