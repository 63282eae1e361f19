/*
 * The registry's life cycle: the SSH pool, the bridges, the label map and
 * the checker, opened in that order and closed in reverse.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int nodes_open(const struct nodes_config *cfg, struct nodes **out, struct sb_err *err)
{
    struct nodes *n = calloc(1, sizeof *n);
    *out = n;
    if (!n)
        return sb_error(err, SB_ENOMEM, "out of memory");
    n->store = cfg->store;
    n->master_key = cfg->master_key;
    n->events = cfg->events;
    n->jobs = cfg->jobs;
    pthread_mutex_init(&n->lock, NULL);
    pthread_mutex_init(&n->labels_lock, NULL);
    n->list_cache = nodes_list_cache_new();
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&n->work_cond, NULL);
    n->interval_s = (int)config_get_int(cfg->cfg, "node-check-interval");
    /* A check must end before the next one is due, so a black-holed node is
     * offline within two intervals: connect + handshake + login within half
     * the interval (2 to 10 s). */
    n->check_timeout_ms = n->interval_s * 500;
    if (n->check_timeout_ms > 10000)
        n->check_timeout_ms = 10000;
    if (n->check_timeout_ms < 2000)
        n->check_timeout_ms = 2000;
    n->max_output = (size_t)config_get_int(cfg->cfg, "exec-max-output");
    struct ssh_pool_config pc = {
        .per_node = (int)config_get_int(cfg->cfg, "ssh-pool-size"),
        .global_max = (int)config_get_int(cfg->cfg, "ssh-pool-max"),
        .idle_ttl_ms = (int)config_get_int(cfg->cfg, "ssh-idle-ttl") * 1000,
        .keepalive_ms = (int)config_get_int(cfg->cfg, "ssh-keepalive") * 1000,
        .acquire_timeout_ms = (int)config_get_int(cfg->cfg, "ssh-acquire-timeout") * 1000,
    };
    n->pool = ssh_pool_new(&pc, err);
    if (!n->pool)
        return err ? err->code : SB_EINTERNAL;
    n->local_docker = config_get(cfg->cfg, "docker-socket");
    n->remote_docker = config_get(cfg->cfg, "node-docker-socket");
    n->watch_events = config_get_int(cfg->cfg, "node-docker-events") != 0;
    int rc = nodes_tunnels_open(n, cfg->cfg, err);
    if (rc)
        return rc;
    rc = nodes_bridges_open(n, err);
    if (rc)
        return rc;
    nodes_labels_start(n);
    return nodes_checker_start(n, err);
}

struct ssh_pool *nodes_ssh_pool(struct nodes *n)
{
    return n ? n->pool : NULL;
}

void nodes_close(struct nodes *n)
{
    if (!n)
        return;
    nodes_checker_stop(n);
    nodes_bridges_close(n);
    ssh_pool_free(n->pool);
    nodes_labels_free(n);
    pthread_mutex_destroy(&n->labels_lock);
    nodes_list_cache_free(n->list_cache);
    pthread_mutex_destroy(&n->tunnel_lock);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    pthread_cond_destroy(&n->work_cond);
    free(n);
}
