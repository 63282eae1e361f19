/*
 * The server: libmicrohttpd in epoll mode with a thread pool, and a pool of
 * worker threads for handlers that may block.
 *
 * Life of a request (the access handler is called several times):
 *   1st call  headers only: route it, and refuse a too-large Content-Length
 *             with 413 now (the only moment it can be queued).
 *   middle    body bytes, appended to a capped buffer.
 *   final     (size 0) run an inline handler and queue its reply; or suspend
 *             the connection, hand the request to a worker, and return.
 *   resumed   the worker has set the reply and resumed the connection; MHD
 *             calls us once more and we queue it.
 * Replies are queued on the final call, never the first: 0.9.75 answers
 * `Connection: close` to a reply queued with the headers. The exceptions
 * are the refusals that must close the connection anyway: a request with
 * both Content-Length and Transfer-Encoding (RFC 9112 6.1), a Host not in
 * --public-host (421), a 413 announced by Content-Length.
 *
 * Header deadline: MHD's connection timeout is inactivity only, so a client
 * sending a header byte a second holds a connection forever. Every
 * connection is tracked (MHD_OPTION_NOTIFY_CONNECTION) with the time it
 * started waiting for a request's headers (its opening, or its previous
 * answer); a reaper thread shuts down the socket of any connection still
 * waiting after header_timeout_s. The list lock is held by the reaper and by
 * the close notification, so a socket is never shut down after MHD closed it.
 *
 * TLS: with a certificate and key (tls.c) MHD speaks HTTPS through GnuTLS,
 * TLS 1.2 and 1.3 only; every reply carries Strict-Transport-Security, and
 * http_server_reload_tls swaps the pair for new handshakes.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum req_state { REQ_RECEIVING, REQ_WORKING, REQ_DONE };

/* One open connection, for the header deadline. */
struct conn_track {
    struct conn_track *prev, *next;
    int fd;
    atomic_int_fast64_t waiting_since_ms; /* monotonic; 0 while a request is being handled */
    bool cut;
};

#define MAX_TRUSTED 32

struct http_server {
    struct http_server_config cfg;
    struct MHD_Daemon *mhd;
    int listen_fd;
    int port;
    struct http_cidr trusted[MAX_TRUSTED];
    size_t n_trusted;
    struct http_tls *tls; /* NULL: plain HTTP */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct http_request *queue_head, *queue_tail;
    bool stopping;
    pthread_t *workers;
    int n_workers;

    atomic_uint_fast64_t requests, responses_5xx, in_flight, header_timeouts, refused;
    atomic_bool stopping_flag; /* read by MHD threads without the lock */

    /* header deadline */
    pthread_mutex_t conn_lock;
    pthread_cond_t reaper_cond;
    struct conn_track *conns;
    bool reaper_stop;
    bool reaper_started;
    pthread_t reaper;
};

/* ---- worker pool ---------------------------------------------------------- */

static void run_handler(struct http_request *req)
{
    if (req->server->cfg.guard && !req->replied && req->server->cfg.guard(req))
        goto out;
    if (!req->replied)
        req->route->handler(req);
out:
    if (!req->replied)
        http_reply_error(req, 500, "internal", "the handler set no reply");
}

static void *worker_main(void *arg)
{
    struct http_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->queue_head && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        struct http_request *req = s->queue_head;
        if (!req) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        s->queue_head = req->next_job;
        if (!s->queue_head)
            s->queue_tail = NULL;
        pthread_mutex_unlock(&s->lock);

        run_handler(req);
        req->state = REQ_DONE;
        MHD_resume_connection(req->conn);
    }
}

static void enqueue(struct http_server *s, struct http_request *req)
{
    req->next_job = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->queue_tail)
        s->queue_tail->next_job = req;
    else
        s->queue_head = req;
    s->queue_tail = req;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* ---- replies -------------------------------------------------------------- */

static void reply_clear(struct http_request *req)
{
    free(req->reply_body);
    req->reply_body = NULL;
    req->reply_len = 0;
}

void http_reply_take(struct http_request *req, int status, const char *content_type, char *body, size_t len)
{
    reply_clear(req);
    req->status = status;
    req->content_type = content_type;
    req->reply_body = body;
    req->reply_len = body ? len : 0;
    req->replied = true;
}

void http_reply_text(struct http_request *req, int status, const char *content_type, const char *data,
                     size_t len)
{
    reply_clear(req);
    req->status = status;
    req->content_type = content_type;
    if (len) {
        req->reply_body = malloc(len);
        if (req->reply_body)
            memcpy(req->reply_body, data, len);
        req->reply_len = req->reply_body ? len : 0;
    }
    req->replied = true;
}

void http_reply_json(struct http_request *req, int status, json_t *body)
{
    reply_clear(req);
    req->status = status;
    req->content_type = "application/json";
    if (body) {
        req->reply_body = json_dumps(body, JSON_COMPACT);
        req->reply_len = req->reply_body ? strlen(req->reply_body) : 0;
        json_decref(body);
    }
    req->replied = true;
}

static void reply_error_json(struct http_request *req, int status, const char *code, const char *message,
                             const char *field)
{
    if (!http_error_code_find(code))
        log_error("error code not in the vocabulary (http/errors.c)", "code=%s status=%d", code, status);
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (e && field && *field)
        json_object_set_new(e, "field", json_string(field));
    if (!e) {
        /* A message that is not valid UTF-8 (echoed input): say so plainly. */
        e = json_pack("{s:s, s:s}", "code", code, "message", "invalid text in request");
    }
    http_reply_json(req, status, json_pack("{s:o}", "error", e));
}

void http_reply_error(struct http_request *req, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_error_json(req, status, code, msg, NULL);
}

int http_status_for(int code)
{
    switch (code) {
    case SB_EINVAL:
        return 422;
    case SB_ENOTFOUND:
        return 404;
    case SB_ECONFLICT:
        return 409;
    case SB_ETOOLARGE:
        return 413;
    case SB_EDENIED:
        return 403;
    case SB_EAUTH:
        return 401;
    case SB_EUNAVAIL:
        return 503;
    case SB_ETIMEOUT:
        return 503;
    case SB_EUPSTREAM:
        return 502;
    default:
        return 500;
    }
}

void http_reply_sb_err(struct http_request *req, const struct sb_err *err)
{
    int status = http_status_for(err->code);
    const char *code = status == 422 ? "validation_failed" : sb_errcode_name(err->code);
    reply_error_json(req, status, code, err->msg[0] ? err->msg : code, err->field);
}

void http_reply_response(struct http_request *req, int status, struct MHD_Response *response)
{
    reply_clear(req);
    req->status = status;
    req->custom = response;
    req->replied = true;
}

void http_reply_file(struct http_request *req, int status, int fd, uint64_t size, const char *content_type)
{
    struct MHD_Response *r = MHD_create_response_from_fd(size, fd);
    if (!r) {
        close(fd);
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    if (content_type)
        MHD_add_response_header(r, "Content-Type", content_type);
    http_reply_response(req, status, r);
}

void http_add_header(struct http_request *req, const char *name, const char *value)
{
    if (req->n_headers >= HTTP_MAX_HEADERS)
        return;
    req->headers[req->n_headers][0] = strdup(name);
    req->headers[req->n_headers][1] = strdup(value);
    req->n_headers++;
}

/* ---- request accessors ---------------------------------------------------- */

const char *http_query(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

bool http_request_https(const struct http_request *req)
{
    if (req->server->tls)
        return true;
    const char *proto = http_header(req, "X-Forwarded-Proto");
    return req->via_trusted_proxy && proto && strcasecmp(proto, "https") == 0;
}

const char *http_loggable_path(const struct http_request *req)
{
    if (req->route && (req->route->flags & HTTP_ROUTE_SECRET_PATH))
        return req->route->pattern;
    return req->path;
}

int http_query_int(struct http_request *req, const char *name, long def, long min, long max, long *out)
{
    const char *v = http_query(req, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max) {
        http_reply_error(req, 400, "bad_parameter",
                         "query parameter '%s' must be a whole number from %ld to %ld", name, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

/* ---- the access handler --------------------------------------------------- */

static bool valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return false;
    }
    return n > 0 && n <= 36;
}

static void peer_address(struct MHD_Connection *conn, char *out, size_t outlen)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    sb_strlcpy(out, "unknown", outlen);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)outlen);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)outlen);
}

/* ---- connections and the header deadline ---------------------------------- */

static struct conn_track *conn_track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_track *t = ci ? calloc(1, sizeof *t) : NULL;
        if (!t)
            return; /* untracked: only MHD's own timeout applies */
        t->fd = ci->connect_fd;
        atomic_store(&t->waiting_since_ms, time_mono_ms());
        pthread_mutex_lock(&s->conn_lock);
        t->next = s->conns;
        if (s->conns)
            s->conns->prev = t;
        s->conns = t;
        pthread_mutex_unlock(&s->conn_lock);
        *socket_context = t;
        return;
    }
    struct conn_track *t = *socket_context;
    if (!t)
        return;
    pthread_mutex_lock(&s->conn_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        s->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&s->conn_lock);
    free(t);
    *socket_context = NULL;
}

static void *reaper_main(void *arg)
{
    struct http_server *s = arg;
    int64_t limit_ms = (int64_t)s->cfg.header_timeout_s * 1000;
    int64_t tick_ms = limit_ms / 4 > 500 ? 500 : (limit_ms / 4 > 50 ? limit_ms / 4 : 50);
    pthread_mutex_lock(&s->conn_lock);
    while (!s->reaper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + tick_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&s->reaper_cond, &s->conn_lock, &ts);
        int64_t now = time_mono_ms();
        for (struct conn_track *t = s->conns; t; t = t->next) {
            int64_t since = atomic_load(&t->waiting_since_ms);
            if (!since || t->cut || now - since < limit_ms)
                continue;
            /* MHD sees the socket end and closes the connection itself. */
            shutdown(t->fd, SHUT_RDWR);
            t->cut = true;
            atomic_fetch_add(&s->header_timeouts, 1);
        }
    }
    pthread_mutex_unlock(&s->conn_lock);
    return NULL;
}

bool http_host_allowed(const char *host, const char *const *hosts, size_t n)
{
    if (!host)
        return false;
    /* The host part: "[v6]:port", "name:port" or a bare name. */
    size_t hlen = strlen(host);
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        hlen = close ? (size_t)(close - host) + 1 : hlen;
    } else {
        const char *colon = strchr(host, ':');
        if (colon && !strchr(colon + 1, ':'))
            hlen = (size_t)(colon - host);
    }
    for (size_t i = 0; i < n; i++) {
        const char *want = hosts[i];
        if (strcasecmp(want, host) == 0)
            return true;
        bool want_port = want[0] == '[' ? strstr(want, "]:") != NULL : strchr(want, ':') != NULL;
        if (!want_port && strlen(want) == hlen && strncasecmp(want, host, hlen) == 0)
            return true;
    }
    return false;
}

static struct http_request *request_new(struct http_server *s, struct MHD_Connection *conn, const char *url,
                                        const char *method)
{
    struct http_request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->server = s;
    req->conn = conn;
    req->app = s->cfg.app;
    req->started_us = time_now_us();
    sb_strlcpy(req->method, method, sizeof req->method);
    req->path = strdup(url);
    buf_init(&req->body, s->cfg.max_body_bytes);
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && valid_request_id(rid))
        sb_strlcpy(req->request_id, rid, sizeof req->request_id);
    else
        random_hex(req->request_id, 8);
    char peer[48];
    peer_address(conn, peer, sizeof peer);
    req->via_trusted_proxy = http_peer_trusted(peer, s->trusted, s->n_trusted);
    http_client_ip(peer, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For"), s->trusted,
                   s->n_trusted, req->client_ip, sizeof req->client_ip);
    atomic_fetch_add(&s->requests, 1);
    atomic_fetch_add(&s->in_flight, 1);
    struct conn_track *t = conn_track_of(conn);
    if (t)
        atomic_store(&t->waiting_since_ms, 0);
    return req;
}

static void request_free(struct http_request *req)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        free(req->headers[i][0]);
        free(req->headers[i][1]);
    }
    if (req->user_free)
        req->user_free(req->user);
    if (req->custom)
        MHD_destroy_response(req->custom);
    json_decref(req->json);
    buf_release(&req->body);
    free(req->reply_body);
    free(req->path);
    free(req);
}

static enum MHD_Result queue_reply(struct http_request *req)
{
    struct MHD_Response *r = req->custom;
    req->custom = NULL;
    if (!r) {
        r = MHD_create_response_from_buffer(req->reply_len, req->reply_body, MHD_RESPMEM_MUST_FREE);
        if (!r)
            return MHD_NO;
        req->reply_body = NULL; /* now MHD's */
        if (req->content_type)
            MHD_add_response_header(r, "Content-Type", req->content_type);
        bool cache_set = false;
        for (size_t i = 0; i < req->n_headers; i++)
            cache_set |= strcasecmp(req->headers[i][0], "Cache-Control") == 0;
        if (!cache_set)
            MHD_add_response_header(r, "Cache-Control", "no-store");
    }
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    /* Browsers remember to use HTTPS only for a host that answered over it. */
    if (req->server->tls)
        MHD_add_response_header(r, "Strict-Transport-Security", "max-age=31536000");
    for (size_t i = 0; i < req->n_headers; i++)
        MHD_add_response_header(r, req->headers[i][0], req->headers[i][1]);
    if (req->status >= 500)
        atomic_fetch_add(&req->server->responses_5xx, 1);
    enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)req->status, r);
    MHD_destroy_response(r);
    return ret;
}

static bool is_json_content_type(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Routes the request; sets an error reply when it cannot be served. */
static void route_request(struct http_request *req)
{
    struct http_server *s = req->server;
    char allow[64];
    switch (http_route_match(s->cfg.routes, s->cfg.n_routes, req->method, req->path, &req->route,
                             req->param_name, req->param_value, &req->n_params, allow, sizeof allow)) {
    case HTTP_MATCH_OK:
        return;
    case HTTP_MATCH_WRONG_METHOD:
        http_add_header(req, "Allow", allow);
        http_reply_error(req, 405, "method_not_allowed", "%s is not allowed here; use %s", req->method,
                         allow);
        return;
    case HTTP_MATCH_NONE:
        http_reply_error(req, 404, "not_found", "no such route");
        return;
    }
}

/* Checks and parses the body of a body-taking route; sets an error reply. */
static void prepare_body(struct http_request *req)
{
    if (req->too_large) {
        http_reply_error(req, 413, "too_large", "the request body is larger than %zu bytes",
                         req->server->cfg.max_body_bytes);
        return;
    }
    if (!(req->route->flags & HTTP_ROUTE_BODY))
        return;
    if (!is_json_content_type(http_header(req, "Content-Type"))) {
        http_reply_error(req, 415, "unsupported_media_type", "send the body as application/json");
        return;
    }
    struct sb_err err = {0};
    req->json = http_parse_json_object(req->body.data, req->body.len, &err);
    if (!req->json)
        http_reply_error(req, 400, "malformed_json", "%s", err.msg);
}

/* Answers now, on the first call, and closes the connection afterwards. */
static enum MHD_Result refuse(struct http_request *req)
{
    atomic_fetch_add(&req->server->refused, 1);
    http_add_header(req, "Connection", "close");
    req->state = REQ_DONE;
    return queue_reply(req);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct http_server *s = cls;
    struct http_request *req = *con_cls;
    (void)version;

    if (!req) {
        req = request_new(s, conn, url, method);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
        if (cl && te) {
            /* Two framings: refuse, and close (the body's end is unknown). */
            http_reply_error(req, 400, "bad_request",
                             "a request may not carry both Content-Length and Transfer-Encoding");
            return refuse(req);
        }
        if (s->cfg.n_public_hosts &&
            !http_host_allowed(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host"),
                               s->cfg.public_hosts, s->cfg.n_public_hosts)) {
            http_reply_error(req, 421, "misdirected_request",
                             "this server does not answer for that host name");
            return refuse(req);
        }
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body_bytes) {
            http_reply_error(req, 413, "too_large", "the request body is larger than %zu bytes",
                             s->cfg.max_body_bytes);
            req->state = REQ_DONE;
            return queue_reply(req);
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        if (!req->too_large && buf_append(&req->body, upload_data, *upload_data_size))
            req->too_large = true;
        if (req->too_large)
            buf_release(&req->body);
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (req->state == REQ_DONE)
        return queue_reply(req);
    if (req->state == REQ_WORKING)
        return MHD_YES; /* spurious call while suspended: nothing to do */

    route_request(req);
    if (!req->replied)
        prepare_body(req);
    if (!req->replied && (req->route->flags & HTTP_ROUTE_INLINE_IF_ADMITTED) && s->cfg.fast_guard &&
        s->cfg.fast_guard(req)) {
        req->route->handler(req);
        if (!req->replied)
            http_reply_error(req, 500, "internal", "the handler set no reply");
        req->state = REQ_DONE;
        return queue_reply(req);
    }
    if (req->replied || (req->route->flags & HTTP_ROUTE_INLINE)) {
        if (!req->replied)
            run_handler(req);
        req->state = REQ_DONE;
        return queue_reply(req);
    }
    /* The workers are gone or going once stop began: answer now rather than
     * suspend a connection nobody would resume. */
    if (atomic_load(&s->stopping_flag)) {
        http_reply_error(req, 503, "shutting_down", "the server is shutting down");
        req->state = REQ_DONE;
        return queue_reply(req);
    }
    /* Suspend before the worker can possibly resume. */
    req->state = REQ_WORKING;
    MHD_suspend_connection(conn);
    enqueue(s, req);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_request *req = *con_cls;
    if (!req)
        return;
    double ms = (double)(time_now_us() - req->started_us) / 1000.0;
    log_info("request", "method=%s path=%s status=%d duration_ms=%.3f request_id=%s client_ip=%s%s",
             req->method, http_loggable_path(req), req->status, ms, req->request_id, req->client_ip,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    atomic_fetch_sub(&s->in_flight, 1);
    request_free(req);
    *con_cls = NULL;
    /* The next request's headers are due within the deadline from now. */
    struct conn_track *t = conn_track_of(conn);
    if (t)
        atomic_store(&t->waiting_since_ms, time_mono_ms());
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("libmicrohttpd", "detail=\"%s\"", msg);
}

/* ---- start and stop ------------------------------------------------------- */

static int open_listener(const char *listen_spec, int *fd_out, int *port_out, struct sb_err *err)
{
    char host[128] = "";
    const char *colon = strrchr(listen_spec, ':');
    if (!colon)
        return sb_error(err, SB_EINVAL, "--listen '%s' is not host:port", listen_spec);
    size_t hlen = (size_t)(colon - listen_spec);
    if (hlen >= sizeof host)
        return sb_error(err, SB_EINVAL, "--listen host is too long");
    memcpy(host, listen_spec, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535)
        return sb_error(err, SB_EINVAL, "--listen port in '%s' is not valid", listen_spec);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    int family;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0) {
        family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        family = AF_INET;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        family = AF_INET6;
    } else if (strcmp(host, "localhost") == 0) {
        family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        return sb_error(err, SB_EINVAL, "--listen host '%s' is not an IP address", host);
    }
    if (family == AF_INET) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        sl = sizeof *in4;
    } else {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        sl = sizeof *in6;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return sb_error(err, SB_EINTERNAL, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        return sb_error(err, SB_EUNAVAIL, "cannot listen on %s: %s", listen_spec, strerror(e));
    }
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(family == AF_INET ? in4->sin_port : in6->sin6_port);
    *fd_out = fd;
    return 0;
}

struct http_server *http_server_start(const struct http_server_config *cfg, struct sb_err *err)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->listen_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_cond_init(&s->reaper_cond, NULL);
    for (size_t i = 0; i < cfg->n_trusted_proxies; i++)
        if (http_cidr_parse(cfg->trusted_proxies[i], s->trusted, MAX_TRUSTED, &s->n_trusted, err))
            goto fail;
    if ((cfg->tls_cert_file && *cfg->tls_cert_file) != (cfg->tls_key_file && *cfg->tls_key_file)) {
        sb_error(err, SB_EINVAL, "--tls-cert and --tls-key go together");
        goto fail;
    }
    if (cfg->tls_cert_file && *cfg->tls_cert_file) {
        s->tls = http_tls_open(cfg->tls_cert_file, cfg->tls_key_file, err);
        if (!s->tls)
            goto fail;
    }
    if (open_listener(cfg->listen, &s->listen_fd, &s->port, err))
        goto fail;

    s->n_workers = cfg->workers > 0 ? cfg->workers : 8;
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    for (int i = 0; i < s->n_workers; i++)
        pthread_create(&s->workers[i], NULL, worker_main, s);

    unsigned limit = cfg->connection_limit ? cfg->connection_limit : 4096;
    /* With TLS, the certificate comes from a callback (reloadable) and the
     * options after MHD_OPTION_HTTPS_PRIORITIES apply; without it the
     * array ends the list early. */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)http_tls_cert_callback},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    s->mhd = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
            (s->tls ? MHD_USE_TLS : 0),
        0, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_LISTEN_SOCKET,
        s->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->mhd_threads > 0 ? cfg->mhd_threads : 2),
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        /* 0.9.75 zero-fills each connection's pool at accept, so this is
         * RSS per connection: 16 KiB keeps thousands of idle SSE streams
         * cheap and still takes large Authorization/Cookie headers. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_connection_limit, MHD_OPTION_NOTIFY_CONNECTION,
        cfg->header_timeout_s > 0 ? on_connection : NULL, s, MHD_OPTION_ARRAY,
        s->tls ? tls_opts : &tls_opts[2], MHD_OPTION_END);
    if (!s->mhd) {
        sb_error(err, SB_EINTERNAL, "libmicrohttpd failed to start on %s", cfg->listen);
        goto fail;
    }
    if (cfg->header_timeout_s > 0) {
        if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
            sb_error(err, SB_EINTERNAL, "cannot start the header deadline thread");
            goto fail;
        }
        s->reaper_started = true;
    }
    return s;
fail:
    http_server_stop(s);
    return NULL;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

bool http_server_tls(const struct http_server *s)
{
    return s->tls != NULL;
}

int http_server_reload_tls(struct http_server *s, struct sb_err *err)
{
    if (!s->tls)
        return sb_error(err, SB_EINVAL, "the server is not serving TLS");
    return http_tls_reload(s->tls, err);
}

void http_server_tls_describe(const struct http_server *s, char *fingerprint, size_t flen, char *spki,
                              size_t slen, int64_t *not_after)
{
    fingerprint[0] = spki[0] = '\0';
    *not_after = 0;
    if (s->tls)
        http_tls_describe(s->tls, fingerprint, flen, spki, slen, not_after);
}

void http_server_stats(const struct http_server *s, struct http_stats *out)
{
    out->requests = atomic_load(&s->requests);
    out->responses_5xx = atomic_load(&s->responses_5xx);
    out->in_flight = atomic_load(&s->in_flight);
    out->header_timeouts = atomic_load(&s->header_timeouts);
    out->refused = atomic_load(&s->refused);
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping_flag, true);
    if (s->reaper_started) {
        pthread_mutex_lock(&s->conn_lock);
        s->reaper_stop = true;
        pthread_cond_broadcast(&s->reaper_cond);
        pthread_mutex_unlock(&s->conn_lock);
        pthread_join(s->reaper, NULL);
    }
    if (s->mhd)
        MHD_quiesce_daemon(s->mhd);
    /* Let queued handlers finish: they resume their connections. */
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; s->workers && i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    /* A request queued in the instant between the stopping check and the
     * workers' exit: answer it so its connection is resumed before MHD stops. */
    pthread_mutex_lock(&s->lock);
    for (struct http_request *req = s->queue_head, *next; req; req = next) {
        next = req->next_job;
        http_reply_error(req, 503, "shutting_down", "the server is shutting down");
        req->state = REQ_DONE;
        MHD_resume_connection(req->conn);
    }
    s->queue_head = s->queue_tail = NULL;
    pthread_mutex_unlock(&s->lock);
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    http_tls_free(s->tls);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->conn_lock);
    pthread_cond_destroy(&s->reaper_cond);
    free(s);
}
