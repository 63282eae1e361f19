/*
 * caddy — routes in a Caddy (2.6) through its admin API (libcurl), shared by
 * GitOps apps (apps/) and compose stacks (stacks/).
 *
 * A route is an object with "@id": <id> whose first handler is a
 * reverse_proxy to its upstreams ("host:port" dials). A route with a host
 * name is a host-matched route in the shared server "serverbox" (made on
 * first use, listening on `domain_listen`); a route without one is a server
 * of its own named <id>, listening on `listen`, automatic HTTPS off.
 *
 * Every change is one admin request, and Caddy applies a change whole or not
 * at all: a request is served by the old upstreams or by the new ones, never
 * by none (the cutover of a start-first update).
 *
 * `admin` is "http://host:port" or "unix//path"; NULL or "" = routing off,
 * and every call is a no-op answering 0.
 */
#ifndef SB_CADDY_H
#define SB_CADDY_H

#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>

#define CADDY_SERVER "serverbox" /* the shared server of host routes */

struct caddy_route {
    const char *id;            /* "@id" of the route (and name of its own server) */
    const char *host;          /* host match; NULL = a server of its own */
    const char *listen;        /* without host: "addr:port" the own server listens on */
    const char *domain_listen; /* with host: what CADDY_SERVER listens on when it is made */
    json_t *dials;             /* array of "host:port", at least one */
};

/* Creates the route or replaces it (host, upstreams) in one change. */
int caddy_route_set(const char *admin, const struct caddy_route *r, struct sb_err *err);
/* Removes the route `id` (and its own server when it has one); absent is
 * not an error. */
int caddy_route_delete(const char *admin, const char *id, struct sb_err *err);
/* The @ids of the routes in CADDY_SERVER that start with `prefix`: a new
 * array (empty when the server does not exist). */
int caddy_route_ids(const char *admin, const char *prefix, json_t **ids, struct sb_err *err);
/* The @id of a route in CADDY_SERVER matching `host` other than one
 * starting with `own_prefix`, into `owner` ("" when none). */
int caddy_host_owner(const char *admin, const char *host, const char *own_prefix, char *owner, size_t len,
                     struct sb_err *err);
/* A host name Caddy may match and a node may serve: 1-253 characters of
 * dot-separated labels (1-63 of a-z 0-9 -, not starting or ending with -),
 * lowercase, at least two labels or "localhost". */
bool caddy_host_ok(const char *host);

#endif
