/*
 * The request side of the client: one curl easy handle per thread (kept in a
 * pthread key so it is reused, with its connection, across requests and
 * freed when the thread exits), the API version negotiated once per engine,
 * and Docker's error bodies ({"message":"…"}) mapped onto sb_err.
 */
#include "docker.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 3000L
#define RESPONSE_MAX       ((size_t)32 << 20)
#define WANT_API_MAJOR     1
#define WANT_API_MINOR     41

static pthread_key_t curl_key;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_key_free(void *p)
{
    curl_easy_cleanup(p);
}

static void curl_key_init(void)
{
    pthread_key_create(&curl_key, curl_key_free);
}

static CURL *thread_curl(void)
{
    pthread_once(&curl_once, curl_key_init);
    CURL *c = pthread_getspecific(curl_key);
    if (!c) {
        c = curl_easy_init();
        pthread_setspecific(curl_key, c);
    } else {
        curl_easy_reset(c);
    }
    return c;
}

/* Frees this thread's handle now (for threads that outlive their use, and
 * the main thread, whose key destructor never runs). */
void docker_thread_cleanup(void);
void docker_thread_cleanup(void)
{
    pthread_once(&curl_once, curl_key_init);
    CURL *c = pthread_getspecific(curl_key);
    if (c) {
        curl_easy_cleanup(c);
        pthread_setspecific(curl_key, NULL);
    }
}

/* ---- API version cache ------------------------------------------------------ */

#define PREFIX_CACHE 32
static pthread_mutex_t prefix_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char socket[DOCKER_SOCKET_MAX];
    char prefix[16];
} prefix_cache[PREFIX_CACHE];
static int prefix_next;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    if (buf_append(b, ptr, size * nmemb))
        return 0; /* over the cap: abort the transfer */
    return size * nmemb;
}

/* The SSH bridge (ssh/bridge.c) answers a connection it cannot carry with
 * a 502 whose body is {"message": …, "serverbox_bridge": true}: the engine
 * is unreachable (SB_EUNAVAIL, as a transport failure), and the message
 * says why in words. Returns 0 for any other response. */
static int bridge_refusal(struct docker_response *r, struct sb_err *err)
{
    if (r->status != 502 || !r->body.len)
        return 0;
    json_t *m = json_loadb(r->body.data, r->body.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(m, "message"));
    int rc = 0;
    if (msg && json_is_true(json_object_get(m, "serverbox_bridge")))
        rc = sb_error(err, SB_EUNAVAIL, "%s", msg);
    json_decref(m);
    if (rc) {
        docker_response_release(r);
        r->status = 0;
    }
    return rc;
}

static int raw_request_once(const char *socket, const char *method, const char *url_path, json_t *body,
                            long timeout_ms, struct docker_response *out, struct sb_err *err);

static int raw_request(const char *socket, const char *method, const char *url_path, json_t *body,
                       long timeout_ms, struct docker_response *out, struct sb_err *err)
{
    int rc = raw_request_once(socket, method, url_path, body, timeout_ms, out, err);
    return rc ? rc : bridge_refusal(out, err);
}

static int raw_request_once(const char *socket, const char *method, const char *url_path, json_t *body,
                            long timeout_ms, struct docker_response *out, struct sb_err *err)
{
    out->status = 0;
    buf_init(&out->body, RESPONSE_MAX);
    if (strlen(socket) >= DOCKER_SOCKET_MAX)
        return sb_error(err, SB_EINVAL, "docker socket path is longer than %d bytes", DOCKER_SOCKET_MAX - 1);
    CURL *c = thread_curl();
    if (!c)
        return sb_error(err, SB_ENOMEM, "out of memory");
    struct buf url;
    buf_init(&url, 8192);
    if (buf_printf(&url, "http://localhost%s", url_path)) {
        buf_release(&url);
        return sb_error(err, SB_EINVAL, "docker request path is too long");
    }
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hdrs = NULL;
    if (payload)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload ? payload : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(payload ? strlen(payload) : 0));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    CURLcode rc = curl_easy_perform(c);
    int ret = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    } else if (rc == CURLE_WRITE_ERROR) {
        ret =
            sb_error(err, SB_EUPSTREAM, "the docker engine's answer is larger than %zu bytes", RESPONSE_MAX);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        ret = sb_error(err, SB_ETIMEOUT, "the docker engine did not answer in time");
    } else {
        ret = sb_error(err, SB_EUNAVAIL, "the docker engine is unreachable: %s", curl_easy_strerror(rc));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    free(payload);
    buf_release(&url);
    if (ret)
        buf_release(&out->body);
    return ret;
}

void docker_response_release(struct docker_response *r)
{
    buf_release(&r->body);
}

static void forget_prefix(const char *socket)
{
    pthread_mutex_lock(&prefix_lock);
    for (int i = 0; i < PREFIX_CACHE; i++)
        if (strcmp(prefix_cache[i].socket, socket) == 0)
            prefix_cache[i].socket[0] = '\0';
    pthread_mutex_unlock(&prefix_lock);
}

int docker_api_prefix(const char *socket, char *out, size_t len, struct sb_err *err)
{
    pthread_mutex_lock(&prefix_lock);
    for (int i = 0; i < PREFIX_CACHE; i++) {
        if (prefix_cache[i].socket[0] && strcmp(prefix_cache[i].socket, socket) == 0) {
            sb_strlcpy(out, prefix_cache[i].prefix, len);
            pthread_mutex_unlock(&prefix_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&prefix_lock);

    /* /_ping answers even when the daemon is busy and names its API
     * version in a header; /version also gives the minimum it accepts. */
    struct docker_response r;
    int rc = raw_request(socket, "GET", "/_ping", NULL, 5000, &r, err);
    if (rc)
        return rc;
    if (r.status != 200) {
        /* An error in words (the SSH bridge's "Docker socket … not found on
         * the node") is passed on as it is. */
        json_t *m = r.body.len ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(m, "message"));
        rc = msg ? sb_error(err, SB_EUNAVAIL, "%s", msg)
                 : sb_error(err, SB_EUNAVAIL, "the docker engine is not ready (ping answered %ld)", r.status);
        json_decref(m);
        docker_response_release(&r);
        return rc;
    }
    docker_response_release(&r);
    rc = raw_request(socket, "GET", "/version", NULL, 5000, &r, err);
    if (rc)
        return rc;
    json_t *v = json_loadb(r.body.data, r.body.len, 0, NULL);
    docker_response_release(&r);
    const char *api = json_string_value(json_object_get(v, "ApiVersion"));
    const char *min = json_string_value(json_object_get(v, "MinAPIVersion"));
    int maj = 0, mnr = 0, min_maj = 1, min_mnr = 12;
    if (!api || sscanf(api, "%d.%d", &maj, &mnr) != 2) {
        json_decref(v);
        return sb_error(err, SB_EUPSTREAM, "the docker engine did not say its API version");
    }
    if (min)
        sscanf(min, "%d.%d", &min_maj, &min_mnr);
    json_decref(v);
    /* Speak 1.41 when the engine can; an older engine, its own version. */
    if (maj > WANT_API_MAJOR || (maj == WANT_API_MAJOR && mnr > WANT_API_MINOR)) {
        maj = WANT_API_MAJOR;
        mnr = WANT_API_MINOR;
        if (min_maj > maj || (min_maj == maj && min_mnr > mnr))
            return sb_error(err, SB_EUPSTREAM, "the docker engine no longer accepts API %d.%d", maj, mnr);
    }
    if (maj == 1 && mnr < 24)
        return sb_error(err, SB_EUPSTREAM, "the docker engine's API %d.%d is too old (1.24 or later)", maj,
                        mnr);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "/v%d.%d", maj, mnr);
    pthread_mutex_lock(&prefix_lock);
    sb_strlcpy(prefix_cache[prefix_next].socket, socket, sizeof prefix_cache[0].socket);
    sb_strlcpy(prefix_cache[prefix_next].prefix, prefix, sizeof prefix_cache[0].prefix);
    prefix_next = (prefix_next + 1) % PREFIX_CACHE;
    pthread_mutex_unlock(&prefix_lock);
    sb_strlcpy(out, prefix, len);
    return 0;
}

int docker_request(const char *socket, const char *method, const char *path, json_t *body, long timeout_ms,
                   struct docker_response *out, struct sb_err *err)
{
    char prefix[16];
    int rc = docker_api_prefix(socket, prefix, sizeof prefix, err);
    if (rc) {
        out->status = 0;
        buf_init(&out->body, 0);
        return rc;
    }
    struct buf p;
    buf_init(&p, 8192);
    if (buf_printf(&p, "%s%s", prefix, path)) {
        buf_release(&p);
        buf_init(&out->body, 0);
        return sb_error(err, SB_EINVAL, "docker request path is too long");
    }
    rc = raw_request(socket, method, p.data, body, timeout_ms, out, err);
    buf_release(&p);
    /* The engine may have been replaced by another version meanwhile. */
    if (rc == SB_EUNAVAIL)
        forget_prefix(socket);
    return rc;
}

int docker_call(const char *socket, const char *method, const char *path, json_t *body, long timeout_ms,
                json_t **result, long *status, struct sb_err *err)
{
    if (result)
        *result = NULL;
    if (status)
        *status = 0;
    struct docker_response r;
    int rc = docker_request(socket, method, path, body, timeout_ms, &r, err);
    if (rc)
        return rc;
    if (status)
        *status = r.status;
    json_t *j = r.body.len ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
    if ((r.status >= 200 && r.status < 300) || r.status == 304) {
        docker_response_release(&r);
        if (result)
            *result = j;
        else
            json_decref(j);
        return 0;
    }
    /* Docker's own words, passed through. */
    const char *m = json_string_value(json_object_get(j, "message"));
    char msg[200];
    snprintf(msg, sizeof msg, "%s", m ? m : (r.body.len ? r.body.data : "no message"));
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    long st = r.status;
    json_decref(j);
    docker_response_release(&r);
    switch (st) {
    case 404:
        return sb_error(err, SB_ENOTFOUND, "%s", msg);
    case 409:
        return sb_error(err, SB_ECONFLICT, "%s", msg);
    case 400:
        return sb_error(err, SB_EINVAL, "%s", msg);
    default:
        return sb_error(err, SB_EUPSTREAM, "docker engine answered %ld: %s", st, msg);
    }
}

void docker_urlencode(const char *s, struct buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '_' || *p == '.' || *p == '~') {
            buf_putc(out, (char)*p);
        } else {
            buf_putc(out, '%');
            buf_putc(out, hex[*p >> 4]);
            buf_putc(out, hex[*p & 15]);
        }
    }
}

/* ---- exec ------------------------------------------------------------------- */

struct exec_collect {
    struct docker_exec_result *res;
    size_t max;
};

static int exec_on_data(void *ctx, int stream, const char *data, size_t len)
{
    struct exec_collect *c = ctx;
    struct buf *b = stream == DOCKER_STDERR ? &c->res->err : &c->res->out;
    size_t room = b->len < c->max ? c->max - b->len : 0;
    if (len > room) {
        c->res->truncated = true;
        len = room;
    }
    if (len)
        buf_append(b, data, len);
    return 0;
}

void docker_exec_result_release(struct docker_exec_result *r)
{
    buf_release(&r->out);
    buf_release(&r->err);
}

int docker_exec(const char *socket, const char *container, json_t *argv, long timeout_ms, size_t max_output,
                struct docker_exec_result *res, struct sb_err *err)
{
    memset(res, 0, sizeof *res);
    buf_init(&res->out, max_output + 1);
    buf_init(&res->err, max_output + 1);
    res->exit_code = -1;
    struct buf path;
    buf_init(&path, 1024);
    buf_puts(&path, "/containers/");
    docker_urlencode(container, &path);
    buf_puts(&path, "/exec");
    json_t *create = json_pack("{s:O, s:b, s:b, s:b, s:b}", "Cmd", argv, "AttachStdout", 1, "AttachStderr", 1,
                               "AttachStdin", 0, "Tty", 0);
    json_t *created = NULL;
    int rc = docker_call(socket, "POST", path.data, create, 0, &created, NULL, err);
    json_decref(create);
    buf_release(&path);
    if (rc)
        return rc;
    const char *id = json_string_value(json_object_get(created, "Id"));
    if (!id) {
        json_decref(created);
        return sb_error(err, SB_EUPSTREAM, "the docker engine did not return an exec id");
    }
    char exec_id[80];
    sb_strlcpy(exec_id, id, sizeof exec_id);
    json_decref(created);

    char p[160];
    snprintf(p, sizeof p, "/exec/%s/start", exec_id);
    json_t *start = json_pack("{s:b, s:b}", "Detach", 0, "Tty", 0);
    struct docker_response r;
    rc = docker_request(socket, "POST", p, start, timeout_ms, &r, err);
    json_decref(start);
    if (rc)
        return rc;
    if (r.status != 200) {
        json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        rc = sb_error(err,
                      r.status == 409   ? SB_ECONFLICT
                      : r.status == 404 ? SB_ENOTFOUND
                                        : SB_EUPSTREAM,
                      "%s", m ? m : "exec failed to start");
        json_decref(j);
        docker_response_release(&r);
        return rc;
    }
    struct exec_collect col = {.res = res, .max = max_output};
    struct docker_frames f;
    docker_frames_init(&f, false, exec_on_data, &col);
    rc = docker_frames_feed(&f, r.body.data, r.body.len);
    docker_response_release(&r);
    if (rc)
        return sb_error(err, SB_EUPSTREAM, "the exec output is not a valid docker stream");

    snprintf(p, sizeof p, "/exec/%s/json", exec_id);
    json_t *info = NULL;
    rc = docker_call(socket, "GET", p, NULL, 0, &info, NULL, err);
    if (rc)
        return rc;
    json_t *code = json_object_get(info, "ExitCode");
    res->exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
    json_decref(info);
    return 0;
}

/* ---- streaming a body to or from a file descriptor (backups/) --------------- */

struct fd_stream {
    int fd;
    long status;
    CURL *c;
    struct buf errbody; /* a non-2xx answer's body, for its message */
    bool write_failed;
};

static size_t on_body_fd(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct fd_stream *s = ud;
    size_t n = size * nmemb;
    if (s->status == 0)
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status < 200 || s->status >= 300) {
        buf_append(&s->errbody, ptr, n < 4096 ? n : 4096);
        return n;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(s->fd, ptr + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s->write_failed = true;
            return 0;
        }
        off += (size_t)w;
    }
    return n;
}

static size_t on_read_fd(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct fd_stream *s = ud;
    for (;;) {
        ssize_t r = read(s->fd, ptr, size * nmemb);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            s->write_failed = true;
            return CURL_READFUNC_ABORT;
        }
        return (size_t)r;
    }
}

static int fd_transfer(const char *socket, const char *method, const char *path, const char *content_type,
                       int fd, long *status, struct sb_err *err)
{
    *status = 0;
    char prefix[16];
    int rc = docker_api_prefix(socket, prefix, sizeof prefix, err);
    if (rc)
        return rc;
    struct buf url;
    buf_init(&url, 8192);
    if (buf_printf(&url, "http://localhost%s%s", prefix, path)) {
        buf_release(&url);
        return sb_error(err, SB_EINVAL, "docker request path is too long");
    }
    CURL *c = thread_curl();
    if (!c) {
        buf_release(&url);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    struct fd_stream s = {.fd = fd, .c = c};
    buf_init(&s.errbody, 8192);
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    /* No total timeout: a volume may take long. Stalls end the transfer. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body_fd);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    if (strcmp(method, "PUT") == 0) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type ? content_type : "application/octet-stream");
        hdrs = curl_slist_append(hdrs, ct);
        hdrs = curl_slist_append(hdrs, "Expect:");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read_fd);
        curl_easy_setopt(c, CURLOPT_READDATA, &s);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    CURLcode cc = curl_easy_perform(c);
    if (s.status == 0)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s.status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    buf_release(&url);
    *status = s.status;
    if (cc != CURLE_OK) {
        rc = s.write_failed
                 ? sb_error(err, SB_EUPSTREAM, "the stream to or from the engine was cut")
                 : sb_error(err, SB_EUNAVAIL, "the docker engine is unreachable: %s", curl_easy_strerror(cc));
    } else if (s.status < 200 || s.status >= 300) {
        json_t *j = json_loadb(s.errbody.data, s.errbody.len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        rc = sb_error(err, s.status == 404 ? SB_ENOTFOUND : SB_EUPSTREAM, "docker engine: %.200s",
                      m ? m : s.errbody.data);
        json_decref(j);
    }
    buf_release(&s.errbody);
    return rc;
}

int docker_get_to_fd(const char *socket, const char *path, int fd, long *status, struct sb_err *err)
{
    return fd_transfer(socket, "GET", path, NULL, fd, status, err);
}

int docker_put_from_fd(const char *socket, const char *path, const char *content_type, int fd, long *status,
                       struct sb_err *err)
{
    return fd_transfer(socket, "PUT", path, content_type, fd, status, err);
}
