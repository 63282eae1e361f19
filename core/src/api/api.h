/*
 * api — the REST resources, one file per resource, and the route table.
 * Handlers validate input, call the domain and store layers, and set one
 * reply. They never include libpq.
 */
#ifndef SB_API_H
#define SB_API_H

#include "../auth/auth.h"
#include "../crypto/crypto.h"
#include "../http/http.h"
#include "../redis/redis.h"
#include "../ssh/ssh.h"
#include "../store/store.h"
#include "../util/util.h"

struct docker;
struct jobs;
#include "../apps/apps.h"
#include "../stacks/stacks.h"

#include <pthread.h>
#include <stdatomic.h>

struct auth;
struct auth_signer;
struct static_site;
struct events_bus;

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

    /* GitOps apps (apps/), deployed as jobs */
    struct apps_env apps;

    /* compose stacks (stacks/), deployed as jobs */
    struct stacks_env stacks;

    /* nodes over SSH (api/nodes.c) */
    struct ssh_pool *ssh_pool;
    struct api_nodes *nodes;

    /* browser terminals and their recordings (terminal/, api/terminals.c) */
    struct terminals *terminals;
};

/* Whether the caller may see a node with these labels (a JSON object of
 * strings): every label of the caller's selector must be present and equal.
 * Outside the scope a node does not exist for the caller: answer 404. */
bool api_node_visible(const struct http_request *req, json_t *node_labels);
/* Whether selector `labels` is at least as narrow as `ceiling` (every
 * label of the ceiling present and equal); a NULL or empty ceiling allows
 * any. For credentials made by a scoped caller. */
bool api_labels_within(json_t *labels, json_t *ceiling);
/* Loads node `id` into *node (caller owns it) if the caller may see it;
 * otherwise replies (404 for unknown or out of scope, 503 when the store is
 * down) and returns -1. */
int api_node_load_visible(struct http_request *req, const char *id, json_t **node);
/* The actor of an event made by this request (pointers into req). */
void api_actor(struct http_request *req, struct event_actor *out);

/* Validates a body against the allowed fields; replies 422 and returns -1. */
int api_check_fields(struct http_request *req, const char *const *allowed);
/* Validates a node label selector (null, or an object of string labels);
 * SB_EINVAL naming "node_labels". */
int api_check_node_labels(json_t *labels, struct sb_err *err);
/* Replies with err mapped to its status; always returns -1. */
int api_fail(struct http_request *req, const struct sb_err *err);

/* The dashboard (api/dashboard.c). A route whose path a browser also opens
 * as a page (/g/<token>) answers with the app when the client asks for HTML. */
bool api_dashboard_wants_page(const struct http_request *req);
void api_dashboard_page(struct http_request *req);

extern const struct http_route api_routes[];
extern const size_t api_n_routes;

/* The HTTP guard (http_server_config.guard): resolves the credential into
 * req->user, enforces the route's permission through the RBAC table, rate
 * limits (per credential, and per address for unauthenticated requests),
 * CSRF for cookie sessions, and audits denied requests and guest requests
 * through the windowed summarizer (audit/audit.h). */
int api_guard(struct http_request *req);
/* For a route that checks its own credential (a webhook's signature): the
 * audited, bounded 401 every denial gets (keyed by the client address; a
 * few recorded one by one per window, the rest summarized). Returns -1. */
int api_deny_unauthenticated(struct http_request *req, const char *message, const char *reason);
/* Audits a request made with a guest link (req->user a guest): the first of
 * the link's window as guest.request, the rest in its summary. */
void api_guest_request_note(struct http_request *req);
/* The never-blocking part of the guard, for HTTP_ROUTE_INLINE_IF_ADMITTED
 * routes on the MHD thread: admits a cached bearer credential that holds the
 * permission; anything else is left to api_guard on a worker. */
int api_fast_guard(struct http_request *req);

/* Makes a signed checkpoint of the audit chain's head, unless the latest one
 * already covers it. */
struct store_checkpoint;
int api_audit_checkpoint(struct app *app, struct store_checkpoint *out, struct sb_err *err);

/* Terminals (api/terminals.c): terminal_config.closed, recording the
 * terminal.closed event of a terminal that ended by itself (ctx = app). */
struct terminal_closed;
void api_terminal_closed(void *ctx, const struct terminal_closed *c);
/* Starts the terminals (after api_nodes_start) / stops them. */
int api_terminals_start(struct app *app, struct sb_err *err);
void api_terminals_shutdown(struct app *app);
void api_terminals_stop(struct app *app);

/* Starts the thread that checks the database and Redis every second. */
int api_health_start(struct app *app);
void api_health_stop(struct app *app);
/* One check now, synchronously (used at start-up). */
void api_health_check_now(struct app *app);

/* Nodes: the SSH pool and the health checker (api/nodes.c). */
int api_nodes_start(struct app *app, struct sb_err *err);
void api_nodes_stop(struct app *app);
/* Lets the Docker client reach registered nodes (after docker_open). */
void api_nodes_attach_docker(struct app *app);

/* A node's row and its decrypted login, for anything that talks to the node
 * (exec, the docker bridge): `t` points into this struct. The key and
 * passphrase buffers are wiped by api_node_target_release. Set `node` to a
 * row already loaded (ownership passes) or leave it NULL to load it. The
 * caller checks api_node_visible itself. */
struct api_node_target {
    json_t *node;
    struct ssh_target t;
    struct buf key;
    struct buf passphrase;
};
int api_node_target_load(struct app *app, const char *id, struct api_node_target *out, struct sb_err *err);
void api_node_target_release(struct api_node_target *t);

/* The OpenAPI document built into the binary (docs/openapi.yaml as JSON). */
extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

#endif
