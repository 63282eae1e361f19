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
void api_node_create(struct http_request *req);
void api_node_list(struct http_request *req);
void api_node_get(struct http_request *req);
void api_node_update(struct http_request *req);
void api_node_delete(struct http_request *req);
void api_node_exec(struct http_request *req);
void api_node_check(struct http_request *req);

const struct http_route api_routes[] = {
    {"GET", "/health/live", api_health_live, HTTP_ROUTE_INLINE, "public", "the process is serving"},
    {"GET", "/health/ready", api_health_ready, HTTP_ROUTE_INLINE, "public",
     "database reachable and migrated; names each dependency's state"},
    {"GET", "/api/v1/openapi.json", api_openapi, HTTP_ROUTE_INLINE, "public", "this API's OpenAPI description"},
    {"GET", "/metrics", api_metrics, HTTP_ROUTE_INLINE, "public", "Prometheus text metrics"},
    {"POST", "/api/v1/annotations", api_annotation_create, HTTP_ROUTE_BODY, "annotations:create",
     "write a marker (deploy started, maintenance) into the audit log"},
    {"POST", "/api/v1/nodes", api_node_create, HTTP_ROUTE_BODY, "nodes:write",
     "register a node reached over SSH (connects once to verify and pin its host key)"},
    {"GET", "/api/v1/nodes", api_node_list, 0, "nodes:read", "list nodes, optionally filtered by ?label=k=v"},
    {"GET", "/api/v1/nodes/{id}", api_node_get, 0, "nodes:read", "one node with its SSH pool figures"},
    {"PATCH", "/api/v1/nodes/{id}", api_node_update, HTTP_ROUTE_BODY, "nodes:write",
     "change a node (connection changes are verified first)"},
    {"DELETE", "/api/v1/nodes/{id}", api_node_delete, 0, "nodes:delete", "remove a node and its stored key"},
    {"POST", "/api/v1/nodes/{id}/exec", api_node_exec, HTTP_ROUTE_BODY, "nodes:exec",
     "run a command on the node over SSH"},
    {"POST", "/api/v1/nodes/{id}/check", api_node_check, 0, "nodes:read", "run the node's health check now"},
};

const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];
