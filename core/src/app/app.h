/*
 * app — what the daemon is made of, built by `serve` (cmd/serve.c) and
 * handed to every request (req->app) and to the callbacks that need more
 * than one subsystem. It only names the subsystems; each one's interface is
 * its own header. Outside api/ and cmd/, code takes the few pointers it
 * needs in its own config struct rather than this one.
 */
#ifndef SB_APP_H
#define SB_APP_H

#include "../crypto/crypto.h"
#include "../apps/apps.h"
#include "../backups/backups.h"
#include "../stacks/stacks.h"
#include "../util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct alerts;
struct audit;
struct auth;
struct auth_signer;
struct docker;
struct events_bus;
struct http_server;
struct jobs;
struct metrics;
struct nodes;
struct oidc;
struct redis_client;
struct ssh_pool;
struct static_site;
struct store;
struct terminals;

/* Everything a handler can reach, built by `serve`. */
struct app {
    const struct config *cfg;
    struct store *store;
    struct redis_client *redis;
    struct http_server *http;
    struct docker *docker;     /* Docker engines (docker/) */
    struct events_bus *events; /* live events (events/events.h) */
    struct metrics *metrics;   /* latest samples, node presence (metrics/metrics.h) */
    struct audit *audit;       /* denials and guest requests, windowed (audit/audit.h) */
    int anon_ip_limit;         /* unauthenticated requests per minute per address; 0 = none */
    struct jobs *jobs;         /* durable jobs and singleton duties (jobs/jobs.h) */
    bool job_test_kinds;       /* --job-test-kinds: POST /api/v1/jobs/test enqueues test kinds */
    int64_t started_us;
    struct static_site *dashboard; /* --dashboard-dir in memory; NULL when absent */

    /* identity and access (auth/) */
    struct auth *auth;
    struct auth_signer *signer;     /* signs audit checkpoints */
    int64_t checkpoint_interval_ms; /* 0 = only on demand */
    int64_t last_checkpoint_ms;     /* monitor thread only */
    /* secrets at rest: the key that seals node SSH keys and other secrets */
    struct crypto_master_key master_key;

    /* readiness, kept current by the health monitor thread */
    atomic_int db_up;        /* 1 when the last check reached the database */
    atomic_int schema_state; /* enum store_schema_state */
    atomic_int redis_up;
    pthread_t monitor;
    atomic_bool stopping;
    pthread_mutex_t monitor_lock;
    pthread_cond_t monitor_cond;

    /* secrets at rest (SSH keys): loaded by serve before any handler runs */
    bool master_key_loaded;

    /* compose stacks (stacks/), deployed as jobs */
    struct stacks_env stacks;

    /* nodes over SSH (nodes/nodes.h); ssh_pool is nodes_ssh_pool(nodes) */
    struct ssh_pool *ssh_pool;
    struct nodes *nodes;

    /* browser terminals and their recordings (terminal/, api/terminals.c) */
    struct terminals *terminals;

    /* GitOps apps (apps/), deployed as jobs */
    struct apps_env apps;

    /* backups (backups/): repositories, plans, runs and restores as jobs */
    struct backups_env backups;

    /* alert rules, alerts and notifications (alerts/) */
    struct alerts *alerts;

    /* single sign-on (oidc/); NULL when not configured */
    struct oidc *oidc;
    const char *oidc_redirect_uri; /* NULL: from the request's Host */
    bool password_login;           /* false: only SSO and the break-glass user */
    const char *break_glass_user;
};

#endif
