/* nodes/ internal: the registry's state, shared by its files. */
#ifndef SB_NODES_INTERNAL_H
#define SB_NODES_INTERNAL_H

#include "nodes.h"

#include <pthread.h>

#define NODES_KEY_MAX           16384
#define NODES_PASSPHRASE_MAX    1024
#define CHECK_WORKERS           8 /* node health checks at once */
#define CHECK_DOCKER_TIMEOUT_MS 5000

/* The last health check of each node, in memory (checks record events
 * only on a change of status, so the details live here). */
struct check_result {
    char id[37];
    char status[24];
    char reason[256];
    char uname[256];
    char uptime[128];
    char docker_status[16]; /* reachable | unreachable; empty when not judged */
    char docker_reason[384];
    int64_t checked_us;
    int64_t duration_ms;
    struct check_result *next;
};

struct check_job {
    json_t *node; /* its row, owned */
    struct check_job *next;
};

struct nodes {
    struct store *store;
    const struct crypto_master_key *master_key;
    struct events_bus *events;
    struct jobs *jobs;
    struct docker *docker; /* after nodes_attach_docker */
    struct ssh_pool *pool;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    pthread_t checker;
    bool checker_running;
    int interval_s;
    int check_timeout_ms; /* a check's connect: at most 10 s, and below the interval */
    /* Checks run on CHECK_WORKERS threads fed by the checker's ticks, so a
     * node that hangs until its connect timeout holds one worker, not the
     * other nodes' checks; a node still being checked is not queued again. */
    pthread_t workers[CHECK_WORKERS];
    int n_workers;
    pthread_cond_t work_cond;
    struct check_job *queue, *queue_tail;
    json_t *checking; /* node id → true while queued or being checked */
    size_t max_output;
    struct check_result *checks;

    /* Node id → labels, for the event bus's visibility rule (labels.c). */
    pthread_mutex_t labels_lock;
    struct nodes_list_cache *list_cache; /* listcache.c; NULL: not cached */
    json_t *labels;                      /* object; NULL until the first load */
    json_t *gone;      /* labels of deleted nodes, so their node.deleted stays visible (bounded) */
    bool labels_stale; /* the last load failed: retry at the next event or check */

    /* Docker on nodes: the local engine for docker = "local", else a bridge
     * to --node-docker-socket over SSH (ssh/bridge.c). */
    struct ssh_bridges *bridges;
    const char *local_docker;  /* --docker-socket */
    const char *remote_docker; /* --node-docker-socket */
    bool watch_events;         /* --node-docker-events */
    json_t *watched;           /* node id → true: engine watchers started (under lock) */

    /* Nodes behind NAT (tunnel.c, tunnels/): the tunnel sshd's
     * authorized_keys (NULL: no tunnel nodes on this core), the ports their
     * forwards get, and what their command dials. */
    const char *tunnel_keys;
    int tunnel_port_min, tunnel_port_max;
    const char *tunnel_endpoint, *tunnel_user;
    char tunnel_host_key[256];   /* "ssh-ed25519 AAAA…" of --tunnel-host-key, or "" */
    pthread_mutex_t tunnel_lock; /* one writer of the file at a time */
};

/* registry.c */
int nodes_record(struct nodes *n, const char *id, const char *type, json_t *data, const char *outcome,
                 const struct event_actor *actor, struct sb_err *err);
/* Valid UTF-8 as a JSON string; invalid bytes become U+FFFD. */
json_t *nodes_json_bytes(const char *s, size_t len);
/* Marks the node and records node.hostkey_mismatch when a connection met
 * another host key than the pinned one (once per change of status). */
void nodes_note_hostkey_mismatch(struct nodes *n, json_t *node, const struct ssh_diag *d);

/* targets.c: starts or stops the engine watcher of a node (its row,
 * borrowed; NULL when deleted) to match its docker setting. */
void nodes_docker_follow(struct nodes *n, const char *id, json_t *node);
int nodes_bridges_open(struct nodes *n, struct sb_err *err);
void nodes_bridges_close(struct nodes *n);

/* checker.c */
int nodes_checker_start(struct nodes *n, struct sb_err *err);
void nodes_checker_stop(struct nodes *n);
void nodes_checks_forget(struct nodes *n, const char *id);
/* Queues a check of a node (its row, borrowed) now rather than at the next
 * tick: a new or changed node gets its SSH and Docker status at once. */
void nodes_check_soon(struct nodes *n, json_t *node);

/* tunnel.c */
int nodes_tunnels_open(struct nodes *n, const struct config *cfg, struct sb_err *err);
bool nodes_is_tunnel(json_t *node);
/* Rewrites the tunnel sshd's authorized_keys from the registry (no-op
 * without --tunnel-authorized-keys), then cuts the live tunnels whose port
 * no tunnel node owns (a revoked node's); logs what fails. */
void nodes_tunnels_sync(struct nodes *n);
/* For a tunnel registration: the normal form of the node's key (key,
 * >= TUNNELS_KEY_MAX) and a free port. 422 without tunnels configured, 409
 * for a key another node has or a full range. */
int nodes_tunnel_prepare(struct nodes *n, const struct nodes_input *in, char *key, size_t keylen, int *port,
                         struct sb_err *err);
/* After a check of a tunnel node: records node.tunnel_up / node.tunnel_down
 * on a change. up: the forward accepted and an SSH server answered. */
void nodes_tunnel_note(struct nodes *n, json_t *node, bool up, const char *reason);

/* labels.c */
void nodes_labels_start(struct nodes *n);
void nodes_labels_reload_if_stale(struct nodes *n);
void nodes_labels_free(struct nodes *n);

/* listcache.c */
struct nodes_list_cache *nodes_list_cache_new(void);
void nodes_list_cache_free(struct nodes_list_cache *c);

#endif
