#include "redis.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
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
    r->port = colon ? atoi(colon + 1) : 6379;
    r->db = slash ? atoi(slash + 1) : 0;
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
    if (r->ctx)
        redisFree(r->ctx);
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
