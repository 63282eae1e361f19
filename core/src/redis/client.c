#include "redis.h"

#include <hiredis/hiredis.h>
#include <unistd.h>
#include <poll.h>
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct redis_client {
    char host[256];
    int port;
    char unix_path[256];
    char password[128];
    int db;
    bool configured;
    pthread_mutex_t lock;
    redisContext *ctx;
    int64_t retry_at_ms; /* after a failed connect, fail fast until then */
};

static int parse_url(struct redis_client *r, const char *url, struct sb_err *err)
{
    if (strncmp(url, "unix://", 7) == 0) {
        sb_strlcpy(r->unix_path, url + 7, sizeof r->unix_path);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return sb_error(err, SB_EINVAL, "redis URL must start with redis:// or unix://");
    const char *p = url + 8, *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof r->password)
            return sb_error(err, SB_EINVAL, "redis password too long");
        memcpy(r->password, pw, n);
        r->password[n] = '\0';
        p = at + 1;
    }
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    size_t hlen = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hlen == 0 || hlen >= sizeof r->host)
        return sb_error(err, SB_EINVAL, "redis URL has no host");
    memcpy(r->host, p, hlen);
    r->host[hlen] = '\0';
    r->port = colon ? (int)strtol(colon + 1, NULL, 10) : 6379;
    r->db = slash ? (int)strtol(slash + 1, NULL, 10) : 0;
    if (r->port <= 0 || r->port > 65535)
        return sb_error(err, SB_EINVAL, "redis URL has a bad port");
    return 0;
}

struct redis_client *redis_open(const char *url, struct sb_err *err)
{
    struct redis_client *r = calloc(1, sizeof *r);
    if (!r) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    if (url && *url) {
        if (parse_url(r, url, err)) {
            redis_close(r);
            return NULL;
        }
        r->configured = true;
    }
    return r;
}

void redis_close(struct redis_client *r)
{
    if (!r)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

bool redis_configured(const struct redis_client *r)
{
    return r && r->configured;
}

/* Called with the lock held. */
static int ensure_ctx(struct redis_client *r, struct sb_err *err)
{
    if (r->ctx && !r->ctx->err)
        return 0;
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    /* A stopped Redis must cost callers nothing: one attempt per second. */
    if (time_mono_ms() < r->retry_at_ms)
        return sb_error(err, SB_EUNAVAIL, "redis unavailable");
    r->retry_at_ms = time_mono_ms() + 1000;
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    r->ctx = r->unix_path[0] ? redisConnectUnixWithTimeout(r->unix_path, tv)
                             : redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->ctx || r->ctx->err) {
        if (r->ctx) {
            redisFree(r->ctx);
            r->ctx = NULL;
        }
        return sb_error(err, SB_EUNAVAIL, "redis unavailable");
    }
    redisSetTimeout(r->ctx, tv);
    if (r->password[0]) {
        redisReply *rep = redisCommand(r->ctx, "AUTH %s", r->password);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            redisFree(r->ctx);
            r->ctx = NULL;
            return sb_error(err, SB_EUNAVAIL, "redis refused the password");
        }
    }
    if (r->db) {
        redisReply *rep = redisCommand(r->ctx, "SELECT %d", r->db);
        if (rep)
            freeReplyObject(rep);
    }
    return 0;
}

int redis_ping(struct redis_client *r, struct sb_err *err)
{
    if (!redis_configured(r))
        return sb_error(err, SB_EUNAVAIL, "redis not configured");
    pthread_mutex_lock(&r->lock);
    int rc = ensure_ctx(r, err);
    if (rc == 0) {
        redisReply *rep = redisCommand(r->ctx, "PING");
        if (!rep || rep->type == REDIS_REPLY_ERROR)
            rc = sb_error(err, SB_EUNAVAIL, "redis unavailable");
        if (rep)
            freeReplyObject(rep);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* Runs `n` pipelined commands (argv form: user data is never formatted into
 * a command string) and hands each reply to `each`. The lock is held. */
typedef int (*reply_fn)(redisReply *rep, int index, void *arg);

static int pipeline(struct redis_client *r, int n, int *argcs, const char ***argvs, reply_fn each, void *arg,
                    struct sb_err *err)
{
    if (!redis_configured(r))
        return sb_error(err, SB_EUNAVAIL, "redis not configured");
    pthread_mutex_lock(&r->lock);
    int rc = ensure_ctx(r, err);
    for (int i = 0; rc == 0 && i < n; i++)
        if (redisAppendCommandArgv(r->ctx, argcs[i], argvs[i], NULL) != REDIS_OK)
            rc = sb_error(err, SB_EUNAVAIL, "redis unavailable");
    bool sent = rc == 0;
    for (int i = 0; sent && i < n; i++) {
        /* Read every reply, even after an error, so the stream stays in step. */
        redisReply *rep = NULL;
        if (redisGetReply(r->ctx, (void **)&rep) != REDIS_OK || !rep) {
            rc = sb_error(err, SB_EUNAVAIL, "redis unavailable");
            break;
        }
        int one = 0;
        if (rep->type == REDIS_REPLY_ERROR)
            one = sb_error(err, SB_EINTERNAL, "redis refused a command");
        else if (each)
            one = each(rep, i, arg);
        if (rc == 0)
            rc = one;
        freeReplyObject(rep);
    }
    if (r->ctx && r->ctx->err) {
        /* Replies may still be in flight: the context is unusable now. */
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

struct incr_out {
    long long count, ttl;
};

static int incr_reply(redisReply *rep, int i, void *arg)
{
    struct incr_out *o = arg;
    if (rep->type != REDIS_REPLY_INTEGER)
        return SB_EUNAVAIL;
    if (i == 0)
        o->count = rep->integer;
    if (i == 2)
        o->ttl = rep->integer;
    return 0;
}

int redis_incr_window(struct redis_client *r, const char *key, int window_s, long long *count,
                      long long *ttl_s, struct sb_err *err)
{
    char win[16];
    snprintf(win, sizeof win, "%d", window_s);
    const char *a0[] = {"INCR", key}, *a1[] = {"EXPIRE", key, win, "NX"}, *a2[] = {"TTL", key};
    int argcs[] = {2, 4, 2};
    const char **argvs[] = {a0, a1, a2};
    struct incr_out o = {0, 0};
    int rc = pipeline(r, 3, argcs, argvs, incr_reply, &o, err);
    if (rc == 0) {
        *count = o.count;
        *ttl_s = o.ttl > 0 ? o.ttl : window_s;
    }
    return rc;
}

static int get_reply(redisReply *rep, int i, void *arg)
{
    (void)i;
    struct buf *out = arg;
    if (rep->type == REDIS_REPLY_NIL)
        return SB_ENOTFOUND;
    if (rep->type != REDIS_REPLY_STRING)
        return SB_EUNAVAIL;
    return buf_append(out, rep->str, rep->len);
}

int redis_get(struct redis_client *r, const char *key, struct buf *out, struct sb_err *err)
{
    buf_reset(out);
    const char *a0[] = {"GET", key};
    int argcs[] = {2};
    const char **argvs[] = {a0};
    return pipeline(r, 1, argcs, argvs, get_reply, out, err);
}

/* One command whose reply only has to be other than an error. */
static int command_ok(struct redis_client *r, int argc, const char **argv, const size_t *lens,
                      struct sb_err *err)
{
    pthread_mutex_lock(&r->lock);
    int rc = ensure_ctx(r, err);
    if (rc == 0) {
        redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
        if (!rep || rep->type == REDIS_REPLY_ERROR)
            rc = sb_error(err, SB_EUNAVAIL, "redis unavailable");
        if (rep)
            freeReplyObject(rep);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int redis_setex(struct redis_client *r, const char *key, const char *value, size_t len, int ttl_s,
                struct sb_err *err)
{
    if (!redis_configured(r))
        return sb_error(err, SB_EUNAVAIL, "redis not configured");
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[] = {"SET", key, value, "EX", ttl};
    size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
    return command_ok(r, 5, argv, lens, err);
}

int redis_del(struct redis_client *r, const char *key, struct sb_err *err)
{
    const char *a0[] = {"DEL", key};
    int argcs[] = {2};
    const char **argvs[] = {a0};
    return pipeline(r, 1, argcs, argvs, NULL, NULL, err);
}

int redis_publish(struct redis_client *r, const char *channel, const char *msg, size_t len,
                  struct sb_err *err)
{
    if (!redis_configured(r))
        return sb_error(err, SB_EUNAVAIL, "redis not configured");
    const char *argv[3] = {"PUBLISH", channel, msg};
    size_t lens[3] = {7, strlen(channel), len};
    return command_ok(r, 3, argv, lens, err);
}

/* ---- subscriptions ---------------------------------------------------------
 * The thread polls the context's socket with a timeout (so it can stop) and
 * feeds hiredis's reader itself: a blocking read with a timeout would leave
 * the context dead after every quiet second. */

struct redis_subscription {
    struct redis_client cfg; /* parsed URL only; its ctx is the subscription's */
    char *channel;
    redis_message_fn fn;
    void *ctx;
    pthread_t thread;
    int stop_pipe[2];
};

static void sub_handle(struct redis_subscription *s, redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(rep->element[0]->str, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING)
        s->fn(s->ctx, rep->element[2]->str, rep->element[2]->len);
}

static void *sub_main(void *arg)
{
    struct redis_subscription *s = arg;
    struct redis_client *c = &s->cfg;
    int backoff_ms = 100;
    for (;;) {
        if (!c->ctx) {
            struct sb_err err = {0};
            if (ensure_ctx(c, &err) == 0) {
                const char *argv[2] = {"SUBSCRIBE", s->channel};
                redisReply *rep = redisCommandArgv(c->ctx, 2, argv, NULL);
                bool ok = rep && rep->type == REDIS_REPLY_ARRAY;
                if (rep)
                    freeReplyObject(rep);
                if (!ok) {
                    redisFree(c->ctx);
                    c->ctx = NULL;
                } else {
                    backoff_ms = 100;
                }
            }
        }
        struct pollfd p[2] = {{.fd = s->stop_pipe[0], .events = POLLIN},
                              {.fd = c->ctx ? c->ctx->fd : -1, .events = POLLIN}};
        int rc = poll(p, 2, c->ctx ? 1000 : backoff_ms);
        if (!c->ctx && backoff_ms < 2000)
            backoff_ms *= 2;
        if (rc < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (c->ctx && (p[1].revents & (POLLIN | POLLERR | POLLHUP))) {
            if (redisBufferRead(c->ctx) != REDIS_OK) {
                redisFree(c->ctx);
                c->ctx = NULL;
                continue;
            }
            void *rep = NULL;
            while (redisGetReplyFromReader(c->ctx, &rep) == REDIS_OK && rep) {
                sub_handle(s, rep);
                freeReplyObject(rep);
                rep = NULL;
            }
            if (c->ctx->err) {
                redisFree(c->ctx);
                c->ctx = NULL;
            }
        }
    }
    return NULL;
}

struct redis_subscription *redis_subscribe(const char *url, const char *channel, redis_message_fn fn,
                                           void *ctx, struct sb_err *err)
{
    struct redis_subscription *s = calloc(1, sizeof *s);
    if (!s) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    if (parse_url(&s->cfg, url, err) || pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        free(s);
        return NULL;
    }
    s->cfg.configured = true;
    pthread_mutex_init(&s->cfg.lock, NULL);
    s->channel = strdup(channel);
    s->fn = fn;
    s->ctx = ctx;
    if (!s->channel || pthread_create(&s->thread, NULL, sub_main, s) != 0) {
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        pthread_mutex_destroy(&s->cfg.lock);
        free(s->channel);
        free(s);
        sb_error(err, SB_EINTERNAL, "cannot start the redis subscriber");
        return NULL;
    }
    return s;
}

void redis_unsubscribe(struct redis_subscription *s)
{
    if (!s)
        return;
    ssize_t w = write(s->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(s->thread, NULL);
    if (s->cfg.ctx)
        redisFree(s->cfg.ctx);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->cfg.lock);
    free(s->channel);
    free(s);
}
