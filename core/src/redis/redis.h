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

#endif
