/*
 * http — the HTTP server: libmicrohttpd in epoll mode with a small thread
 * pool, a router with path parameters and per-route metadata, JSON bodies,
 * the error format of the API contract, and a pool of worker threads.
 *
 * Threads: MHD's epoll threads never block. A route flagged HTTP_ROUTE_INLINE
 * answers from memory on the MHD thread; every other route runs on a worker
 * thread while its connection is suspended, and the connection is resumed
 * when the handler has set its reply. A handler must set exactly one reply.
 */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct MHD_Connection;
struct MHD_Response;
struct http_server;
struct http_request;

typedef void (*http_handler_fn)(struct http_request *req);

enum http_route_flags {
    HTTP_ROUTE_INLINE = 1 << 0,      /* answers from memory on the MHD thread */
    HTTP_ROUTE_BODY = 1 << 1,        /* takes a JSON object body */
    HTTP_ROUTE_SECRET_PATH = 1 << 2, /* the path holds a secret: log the pattern instead */
    /* May answer on the MHD thread when the fast guard admits the caller from
     * memory (a cached credential); otherwise runs on a worker as usual. The
     * handler must then answer from memory too. */
    HTTP_ROUTE_INLINE_IF_ADMITTED = 1 << 3,
};

struct http_route {
    const char *method;  /* "GET", "POST", "PATCH", "DELETE", "PUT" */
    const char *pattern; /* "/api/v1/nodes/{id}"; a final "{*rest}" matches the remainder */
    http_handler_fn handler;
    unsigned flags;         /* enum http_route_flags */
    const char *permission; /* what the caller must hold; "public" for none */
    const char *summary;    /* one line, for `serverbox-core routes` and the docs */
};

#define HTTP_MAX_PARAMS  4
#define HTTP_MAX_HEADERS 8

/* Runs before every non-inline handler, on the worker thread. Returns 0 to
 * go on, or non-zero after setting a reply (401, 403, 429…). */
typedef int (*http_guard_fn)(struct http_request *req);

struct http_server_config {
    const char *listen; /* "127.0.0.1:8080", "[::1]:0", ":8080" */
    const struct http_route *routes;
    size_t n_routes;
    void *app;             /* handed to handlers as req->app */
    size_t max_body_bytes; /* larger bodies get 413 */
    int workers;           /* worker threads for blocking handlers */
    int mhd_threads;       /* MHD epoll threads */
    unsigned connection_limit;
    const char *const *trusted_proxies; /* "loopback", "private", an IP or a CIDR */
    size_t n_trusted_proxies;
    const char *const *public_hosts; /* Host values answered for (others 421); none = any */
    size_t n_public_hosts;
    unsigned per_ip_connection_limit; /* simultaneous connections per address; 0 = no limit */
    int header_timeout_s;             /* a request's headers must arrive within this; 0 = no deadline */
    const char *tls_cert_file;        /* PEM chain, leaf first; with tls_key_file: serve HTTPS */
    const char *tls_key_file;         /* PEM private key matching the leaf */
    http_guard_fn guard;              /* optional */
    /* Optional, for HTTP_ROUTE_INLINE_IF_ADMITTED routes, on the MHD thread:
     * returns 1 when it admitted the caller from memory alone (req->user
     * set, no reply), 0 to leave the request to the worker path and `guard`.
     * It must never block. */
    http_guard_fn fast_guard;
};

struct http_request {
    struct http_server *server;
    struct MHD_Connection *conn;
    const struct http_route *route;
    void *app;
    char method[8];
    char *path; /* decoded path, owned by the request */
    const char *param_name[HTTP_MAX_PARAMS];
    char *param_value[HTTP_MAX_PARAMS];
    size_t n_params;
    char request_id[40];
    char client_ip[48];
    bool via_trusted_proxy; /* the peer is one of the trusted proxies */
    struct buf body;
    json_t *json; /* the parsed body for HTTP_ROUTE_BODY routes; owned by the request */
    int64_t started_us;

    /* the reply */
    int status;
    char *reply_body; /* malloc'd */
    size_t reply_len;
    const char *content_type;
    char *headers[HTTP_MAX_HEADERS][2];
    size_t n_headers;
    struct MHD_Response *custom; /* a response built by the handler (streams) */

    /* free slot for the layers above (auth context); freed by `user_free` */
    void *user;
    void (*user_free)(void *);

    /* private to the server */
    int state;
    bool too_large;
    bool replied;
    struct http_request *next_job;
};

/* Starts the server; returns NULL and fills err on failure. */
struct http_server *http_server_start(const struct http_server_config *cfg, struct sb_err *err);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);
/* Whether the server speaks HTTPS. */
bool http_server_tls(const struct http_server *s);
/* Reads the certificate and key files again (SIGHUP): new handshakes get the
 * new pair; on failure the old one stays and err says why. */
int http_server_reload_tls(struct http_server *s, struct sb_err *err);
/* The served leaf certificate's SHA-256, its public key's (SPKI) SHA-256
 * (what collectors pin), both hex, and its expiry (unix seconds); empty and
 * 0 without TLS. */
void http_server_tls_describe(const struct http_server *s, char *fingerprint, size_t flen, char *spki,
                              size_t slen, int64_t *not_after);
/* Whether a --listen value names only loopback addresses (127/8, ::1,
 * localhost). Pure. */
bool http_listen_is_loopback(const char *listen);
void http_server_stop(struct http_server *s);

/* Figures for /metrics. */
struct http_stats {
    uint64_t requests;
    uint64_t responses_5xx;
    uint64_t in_flight;
    uint64_t header_timeouts; /* connections cut for not sending headers in time */
    uint64_t refused;         /* requests refused before routing (400 framing, 421 host) */
};
/* Whether a Host header value is one of hosts (case-insensitive; an entry
 * without a port matches any port). Pure; for the server and its tests. */
bool http_host_allowed(const char *host, const char *const *hosts, size_t n);
void http_server_stats(const struct http_server *s, struct http_stats *out);

/* ---- route matching (pure; used by the server, the tests and the fuzzer) */
enum http_match { HTTP_MATCH_NONE, HTTP_MATCH_OK, HTTP_MATCH_WRONG_METHOD };
/* Matches method and path against routes. On HTTP_MATCH_OK, *route is set and
 * params are filled with pointers into `scratch` (a copy of path the caller
 * owns and keeps alive). `allow` receives the methods for 405. A route whose
 * pattern is only a catch-all ("/{*path}") never makes a path a 405. */
enum http_match http_route_match(const struct http_route *routes, size_t n, const char *method, char *scratch,
                                 const struct http_route **route, const char **names, char **values,
                                 size_t *n_params, char *allow, size_t allow_len);

/* ---- request accessors --------------------------------------------------- */
const char *http_param(const struct http_request *req, const char *name);
const char *http_query(const struct http_request *req, const char *name);
const char *http_header(const struct http_request *req, const char *name);
const char *http_cookie(const struct http_request *req, const char *name);
/* Whether the client reached us over TLS: the server speaks it, or a
 * trusted proxy said so with X-Forwarded-Proto: https. */
bool http_request_https(const struct http_request *req);
/* The path as logs and audit events may show it (the route's pattern for
 * HTTP_ROUTE_SECRET_PATH routes). */
const char *http_loggable_path(const struct http_request *req);
/* Parses a query parameter as an integer in [min,max]; def when absent.
 * Returns 0, or replies 400 and returns -1. */
int http_query_int(struct http_request *req, const char *name, long def, long min, long max, long *out);

/* Parses body bytes as one JSON object, duplicate keys rejected. Returns
 * NULL and fills err (message with line and column) on failure. */
json_t *http_parse_json_object(const char *data, size_t len, struct sb_err *err);
/* Fails with the first member of obj not in allowed (NULL-terminated). */
int http_json_check_fields(json_t *obj, const char *const *allowed, struct sb_err *err);

/* ---- the error vocabulary (http/errors.c) ---------------------------------
 * Every `code` an error reply may carry, with its usual status. Replies with
 * a code not listed are logged as a bug (and caught by make check). */
struct http_error_code {
    const char *code;
    int status;
    const char *meaning;
};
extern const struct http_error_code http_error_codes[];
extern const size_t http_n_error_codes;
/* The entry for code, or NULL when it is not in the vocabulary. */
const struct http_error_code *http_error_code_find(const char *code);

/* ---- replies: each sets the one reply of a request ----------------------- */
/* Steals `body` (may be NULL for an empty 204). */
void http_reply_json(struct http_request *req, int status, json_t *body);
void http_reply_text(struct http_request *req, int status, const char *content_type, const char *data,
                     size_t len);
/* As http_reply_text, taking ownership of a malloc'd body (freed with the
 * request, or at once if the reply cannot be set). */
void http_reply_take(struct http_request *req, int status, const char *content_type, char *body, size_t len);
/* {"error":{"code":code,"message":…}} */
void http_reply_error(struct http_request *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps an sb_err to its status and code (422 names the field). */
void http_reply_sb_err(struct http_request *req, const struct sb_err *err);
/* Hands a response built by the caller to the server (for streams). */
void http_reply_response(struct http_request *req, int status, struct MHD_Response *response);
/* Replies with `size` bytes of the open file `fd` (ownership passes: it is
 * closed when sent or on failure), with that Content-Type. */
void http_reply_file(struct http_request *req, int status, int fd, uint64_t size, const char *content_type);
/* Adds a header to the reply (copied). */
void http_add_header(struct http_request *req, const char *name, const char *value);
int http_status_for(int sb_code);

/* ---- client address ------------------------------------------------------ */
struct http_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
};
/* Parses "loopback", "private", an address or a CIDR into up to max entries. */
int http_cidr_parse(const char *spec, struct http_cidr *out, size_t max, size_t *n, struct sb_err *err);
/* The client address given the peer, its X-Forwarded-For and the trusted
 * proxies: the rightmost address not itself a trusted proxy. */
void http_client_ip(const char *peer, const char *xff, const struct http_cidr *trusted, size_t n_trusted,
                    char *out, size_t outlen);
bool http_peer_trusted(const char *peer, const struct http_cidr *trusted, size_t n_trusted);

#endif
