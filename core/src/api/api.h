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

/* Who is calling, as the events record it. The auth layer fills it in
 * (req->user); until then a request is anonymous. */
struct api_caller {
    char kind[16]; /* user | token | guest | agent | system | anonymous */
    char id[64];
    char name[128];
};
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
