/*
 * redis — a small thread-safe Redis client over hiredis: one connection per
 * client guarded by a mutex, reconnected on the next call after any failure
 * (hiredis contexts are dead after an error). Every call has a timeout, so a
 * stalled Redis never stalls a worker for long.
 */
#ifndef SB_REDIS_H
#define SB_REDIS_H

#include "../util/util.h"

#include <stdbool.h>
#include <stddef.h>

struct redis_client;

/* url: redis://[:password@]host:port[/db] or unix:///path. NULL url gives a
 * client that is always unavailable (Redis not configured). */
struct redis_client *redis_open(const char *url, struct sb_err *err);
void redis_close(struct redis_client *r);

/* PING; 0 when Redis answered. */
int redis_ping(struct redis_client *r, struct sb_err *err);
bool redis_configured(const struct redis_client *r);

/* Counts one hit in a fixed window: INCR key, and EXPIRE key window_s when
 * the key is new, in one round trip. *count gets the count in this window,
 * *ttl_s the seconds left in it. SB_EUNAVAIL when Redis is down. */
int redis_incr_window(struct redis_client *r, const char *key, int window_s, long long *count,
                      long long *ttl_s, struct sb_err *err);
/* GET into out (cleared first); SB_ENOTFOUND for a missing key. */
int redis_get(struct redis_client *r, const char *key, struct buf *out, struct sb_err *err);
/* SET key value EX ttl_s. */
int redis_setex(struct redis_client *r, const char *key, const char *value, size_t len, int ttl_s,
                struct sb_err *err);
int redis_del(struct redis_client *r, const char *key, struct sb_err *err);
/* PUBLISH channel message; 0 when Redis took it (whatever the receivers). */
int redis_publish(struct redis_client *r, const char *channel, const char *msg, size_t len,
                  struct sb_err *err);

/* A subscription: its own connection and thread (pub/sub needs a connection
 * of its own), reconnected and re-subscribed after any failure. fn is called
 * on that thread for every message, in order; messages published while
 * disconnected are lost (pub/sub is for ephemeral data only). */
struct redis_subscription;
typedef void (*redis_message_fn)(void *ctx, const char *msg, size_t len);
struct redis_subscription *redis_subscribe(const char *url, const char *channel, redis_message_fn fn,
                                           void *ctx, struct sb_err *err);
/* Stops the thread and closes the connection; NULL is a no-op. */
void redis_unsubscribe(struct redis_subscription *s);

#endif
