/*
 * The route table: every route the daemon serves, with the permission it
 * needs. `serverbox-core routes` prints it; the tests check it against
 * docs/openapi.yaml and generate the permission matrix from it.
 */
#include "api.h"

void api_health_live(struct http_request *req);
void api_health_ready(struct http_request *req);
void api_openapi(struct http_request *req);
void api_metrics(struct http_request *req);
void api_annotation_create(struct http_request *req);
void api_events_stream(struct http_request *req);
void api_events_history(struct http_request *req);

const struct http_route api_routes[] = {
    {"GET", "/health/live", api_health_live, HTTP_ROUTE_INLINE, "public", "the process is serving"},
    {"GET", "/health/ready", api_health_ready, HTTP_ROUTE_INLINE, "public",
     "database reachable and migrated; names each dependency's state"},
    {"GET", "/api/v1/openapi.json", api_openapi, HTTP_ROUTE_INLINE, "public", "this API's OpenAPI description"},
    {"GET", "/metrics", api_metrics, HTTP_ROUTE_INLINE, "public", "Prometheus text metrics"},
    {"POST", "/api/v1/annotations", api_annotation_create, HTTP_ROUTE_BODY, "annotations:create",
     "write a marker (deploy started, maintenance) into the audit log"},
    {"GET", "/api/v1/events", api_events_stream, 0, "events:read",
     "live events as Server-Sent Events; Last-Event-ID replays from the log"},
    {"GET", "/api/v1/events/history", api_events_history, 0, "events:read",
     "pages of the event log after a seq, as JSON"},
};

const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];
