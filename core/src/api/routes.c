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
void api_agent_enroll_token(struct http_request *req);
void api_agent_enroll(struct http_request *req);
void api_agent_metrics(struct http_request *req);
void api_node_metrics(struct http_request *req);
void api_container_metrics(struct http_request *req);

const struct http_route api_routes[] = {
    {"GET", "/health/live", api_health_live, HTTP_ROUTE_INLINE, "public", "the process is serving"},
    {"GET", "/health/ready", api_health_ready, HTTP_ROUTE_INLINE, "public",
     "database reachable and migrated; names each dependency's state"},
    {"GET", "/api/v1/openapi.json", api_openapi, HTTP_ROUTE_INLINE, "public", "this API's OpenAPI description"},
    {"GET", "/metrics", api_metrics, HTTP_ROUTE_INLINE, "public", "Prometheus text metrics"},
    {"POST", "/api/v1/annotations", api_annotation_create, HTTP_ROUTE_BODY, "annotations:create",
     "write a marker (deploy started, maintenance) into the audit log"},
    {"POST", "/api/v1/nodes/{id}/enroll-token", api_agent_enroll_token, HTTP_ROUTE_BODY, "nodes:write",
     "issue a one-time, expiring token that enrolls a collector for this node"},
    {"POST", "/api/v1/agent/enroll", api_agent_enroll, HTTP_ROUTE_BODY, "public",
     "a collector registers its Ed25519 public key, consuming an enrollment token"},
    {"POST", "/api/v1/agent/metrics", api_agent_metrics, HTTP_ROUTE_BODY, "agent",
     "a batch of samples signed by an enrolled collector"},
    {"GET", "/api/v1/nodes/{id}/metrics", api_node_metrics, 0, "metrics:read",
     "a node's metric series, downsampled to at most 2000 points"},
    {"GET", "/api/v1/nodes/{id}/containers/{cid}/metrics", api_container_metrics, 0, "metrics:read",
     "one container's metric series on a node"},
};

const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];
