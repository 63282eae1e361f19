/*
 * Private to api/: helpers shared by the Docker resources (containers.c,
 * docker_objects.c).
 */
#ifndef SB_API_DOCKER_H
#define SB_API_DOCKER_H

#include "../docker/docker.h"
#include "api.h"

/* A node addressed by a request: its id, name and engine socket. */
struct api_node {
    char id[64];
    char name[128];
    char socket[DOCKER_SOCKET_MAX];
};

/* Resolves the {id} path parameter to a node the caller may see; replies
 * 404 (or 503) and returns -1 otherwise. */
int api_docker_node(struct http_request *req, const char *node_id, struct api_node *out);
/* Whether s is a safe Docker object reference (id or name): 1–128 of
 * [A-Za-z0-9_.-], starting with a letter or digit. */
bool api_docker_ref_ok(const char *s, size_t max);
/* Appends an action event on stream <kind>/<node>/<ref> with the caller as
 * actor. `data` is borrowed; node and ref are added to it. */
void api_docker_record(struct http_request *req, const char *kind, const struct api_node *node,
                       const char *ref, const char *type, json_t *data, const struct sb_err *failure);
/* Enqueues a Docker job (kind, args with the caller added as "actor") for a
 * node and answers 202 {"job"}; replies the error otherwise. */
void api_docker_enqueue(struct http_request *req, const char *kind, const struct api_node *node,
                        const char *target, const char *concurrency_key, json_t *args);
/* A boolean query parameter (1/0/true/false); replies 400 and returns -1. */
int api_query_bool(struct http_request *req, const char *name, bool def, bool *out);

#endif
