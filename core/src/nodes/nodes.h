/*
 * nodes — the registry of hosts reached over SSH: registering and changing
 * them (verified with one connection), remote commands, the health checker
 * (a singleton duty), the node label map the event bus filters with, and
 * the targets (row + decrypted login) everything that talks to a node uses.
 * README.md beside this file explains the design.
 *
 * Nothing here knows about HTTP: callers pass what they parsed and an
 * event actor, and get rows, results and error codes back (ssh_diag says
 * which connection step failed, for the status they answer).
 */
#ifndef SB_NODES_H
#define SB_NODES_H

#include "../crypto/crypto.h"
#include "../ssh/ssh.h"
#include "../store/store.h"
#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct docker;
struct events_bus;
struct jobs;
struct nodes;

struct nodes_config {
    const struct config *cfg; /* node-check-interval, ssh-pool-*, exec-max-output, docker sockets */
    struct store *store;
    const struct crypto_master_key *master_key; /* opens the sealed node keys */
    struct events_bus *events;                  /* NULL: no label map for the bus */
    struct jobs *jobs;                          /* the checker runs under the "node-checks" duty */
};

/* Opens the SSH pool and the bridges, loads the label map, and starts the
 * checker (when node-check-interval > 0). On failure *out may still hold a
 * partly opened registry: nodes_close it. */
int nodes_open(const struct nodes_config *cfg, struct nodes **out, struct sb_err *err);
/* Lets the Docker client reach registered nodes and starts their engine
 * watchers (--node-docker-events). Before nodes_close, the watchers stop. */
void nodes_attach_docker(struct nodes *n, struct docker *docker);
void nodes_close(struct nodes *n);
/* The pool sessions to nodes come from (owned by the registry). */
struct ssh_pool *nodes_ssh_pool(struct nodes *n);

/* ---- input ------------------------------------------------------------------ */

/* The fields of a registration or change (borrowed from the body). */
struct nodes_input {
    json_t *name, *host, *port, *user, *key, *pass, *fp, *labels, *docker, *generate;
    json_t *connection, *tunnel_key; /* "direct" | "tunnel"; the node's tunnel public key */
};
/* Reads and validates body's node fields; create requires name, host,
 * ssh_user and a key. SB_EINVAL naming the field. */
int nodes_input_read(json_t *body, bool create, struct nodes_input *in, struct sb_err *err);
/* ?label=k=v[,k2] as the filters of store_node_list_view: the pairs that
 * must be contained and the keys that must be present (a key alone: present).
 * New references, the caller's. */
void nodes_label_filter_parse(const char *filter, json_t **pairs, json_t **keys);
/* store_node_list_view (same arguments and answer), from a cache that is
 * current with every node event this daemon has committed or read
 * (listcache.c). *out is the caller's. */
int nodes_list_view(struct nodes *n, const char *scope, const char *pairs, const char *keys,
                    const char *fields, char **out, size_t *len, struct sb_err *err);

/* ---- commands (each records its event, failures included) ------------------- */

/* Registers a node after one connection to it (with generate_key, a
 * handshake only: the public key is not installed yet). *node_out is the
 * new row (caller owns it). SB_ECONFLICT for a taken name; a failed
 * connection sets d->failure. */
int nodes_register(struct nodes *n, const struct nodes_input *in, const struct event_actor *actor,
                   json_t **node_out, struct ssh_diag *d, struct sb_err *err);
/* Changes node `node` (its current row, borrowed); reconnects to verify
 * when the connection settings change. *node_out is the new row. */
int nodes_update(struct nodes *n, json_t *node, const struct nodes_input *in, const struct event_actor *actor,
                 json_t **node_out, struct ssh_diag *d, struct sb_err *err);
/* Deletes node `node` (its row, borrowed) and forgets its sessions. */
int nodes_delete(struct nodes *n, json_t *node, const struct event_actor *actor, struct sb_err *err);

struct nodes_exec {
    const char *command;
    int timeout_ms;
};
/* Runs a command on node `node` (its row; ownership passes) and records
 * node.exec. *result_out: stdout, stderr, exit_code (null when killed or
 * timed out), signal, duration_ms, truncated, timed_out. */
int nodes_exec_run(struct nodes *n, json_t *node, const struct nodes_exec *x, const struct event_actor *actor,
                   json_t **result_out, struct ssh_diag *d, struct sb_err *err);

/* ---- health ----------------------------------------------------------------- */

/* Checks node `node` (its row, borrowed) now; records the status event on
 * a change. *result_out is the check (as last_check, plus "id"). */
void nodes_check_now(struct nodes *n, json_t *node, json_t **result_out);
/* Adds "pool" (the SSH pool's figures) and "last_check" (this daemon's last
 * check, when there is one) to a node row. */
void nodes_add_pool(struct nodes *n, json_t *node);
void nodes_add_last_check(struct nodes *n, json_t *node);
/* Adds "tunnel_command" to a tunnel node's row: the client command the node
 * runs (with --tunnel-endpoint), and "tunnel_known_hosts", the line that
 * pins the tunnel sshd's host key (with --tunnel-host-key); for callers who
 * see connection details. */
void nodes_add_tunnel(struct nodes *n, json_t *node);

/* ---- targets ---------------------------------------------------------------- */

/* A node's row and its decrypted login, for anything that talks to the node
 * (exec, the docker bridge, terminals): `t` points into this struct. The key
 * and passphrase buffers are wiped by nodes_target_release. Set `node` to a
 * row already loaded (ownership passes) or leave it NULL to load it. The
 * caller checks the caller's scope itself. */
struct nodes_target {
    json_t *node;
    struct ssh_target t;
    struct buf key;
    struct buf passphrase;
};
int nodes_target_load(struct nodes *n, const char *id, struct nodes_target *out, struct sb_err *err);
void nodes_target_release(struct nodes_target *t);

#endif
