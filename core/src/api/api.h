/*
 * api — the REST resources, one file per resource, and the route table.
 * Handlers validate input, call the domain and store layers, and set one
 * reply. They never include libpq.
 */
#ifndef SB_API_H
#define SB_API_H

#include "../http/http.h"
#include "../redis/redis.h"
#include "../store/store.h"
#include "../util/util.h"

#include <pthread.h>
#include <stdatomic.h>

/* Everything a handler can reach, built by `serve`. */
struct app {
    const struct config *cfg;
    struct store *store;
    struct redis_client *redis;
    struct http_server *http;
    struct metrics *metrics; /* latest samples, node presence (metrics/metrics.h) */
    int64_t started_us;

    /* readiness, kept current by the health monitor thread */
    atomic_int db_up;               /* 1 when the last check reached the database */
    atomic_int schema_state;        /* enum store_schema_state */
    atomic_int redis_up;
    pthread_t monitor;
    atomic_bool stopping;
    pthread_mutex_t monitor_lock;
    pthread_cond_t monitor_cond;
};

/* Who is calling. The auth guard fills one in (req->user, freed with the
 * request) before any non-public handler runs; a request without one is
 * anonymous. Handlers read it, never build it. */
enum api_guest_scope {
    API_SCOPE_METRICS = 1 << 0,     /* view:metrics */
    API_SCOPE_CONTAINERS = 1 << 1,  /* view:containers */
    API_SCOPE_LOGS = 1 << 2,        /* view:logs */
    API_SCOPE_DEPLOYMENTS = 1 << 3, /* view:deployments */
    API_SCOPE_AUDIT = 1 << 4,       /* view:audit */
};

struct api_caller {
    char kind[16];      /* user | token | guest | agent | system */
    char id[64];        /* user, token, guest link or node id */
    char name[128];     /* username, token name, guest note */
    char role[16];      /* admin | operator | viewer | guest */
    char user_id[64];   /* the user a token or session belongs to; empty for guests */
    unsigned scopes;    /* enum api_guest_scope, for guests */
    json_t *node_labels; /* owned; label selector {"env":"staging"} limiting visible nodes, NULL = all */
    int64_t expires_us; /* when this credential stops working (0 = never) */
};

/* Frees a caller (for req->user_free). */
void api_caller_free(void *caller);
/* Whether the caller may see a node with these labels (a JSON object of
 * strings): every label of the caller's selector must be present and equal.
 * Outside the scope a node does not exist for the caller: answer 404. */
bool api_node_visible(const struct http_request *req, json_t *node_labels);
/* The actor of an event made by this request (pointers into req). */
void api_actor(struct http_request *req, struct event_actor *out);

/* Validates a body against the allowed fields; replies 422 and returns -1. */
int api_check_fields(struct http_request *req, const char *const *allowed);
/* Replies with err mapped to its status; always returns -1. */
int api_fail(struct http_request *req, const struct sb_err *err);

extern const struct http_route api_routes[];
extern const size_t api_n_routes;

/* Starts the thread that checks the database and Redis every second. */
int api_health_start(struct app *app);
void api_health_stop(struct app *app);
/* One check now, synchronously (used at start-up). */
void api_health_check_now(struct app *app);

/* The OpenAPI document built into the binary (docs/openapi.yaml as JSON). */
extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

#endif
