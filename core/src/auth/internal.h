/* Private to auth/. */
#ifndef SB_AUTH_INTERNAL_H
#define SB_AUTH_INTERNAL_H

#include "auth.h"

#include <pthread.h>

#define CRED_BUCKETS  1024
#define LIMIT_BUCKETS 512

/* A resolved credential cached in memory for a short while. */
struct cred_entry {
    char hash[65];
    struct store_credential cred; /* node_labels owned */
    int64_t cached_ms;            /* monotonic */
    bool refreshing;              /* one thread re-reads it; the others may use it a little longer */
    int64_t touched_ms;           /* last time use was written to the database */
    double bucket;                /* request-rate token bucket */
    int64_t bucket_ms;
    struct cred_entry *next;
};

/* In-process fixed-window counter, used when Redis is down. */
struct limit_entry {
    char key[160];
    int64_t window_start_ms;
    int count;
    struct limit_entry *next;
};

struct auth {
    struct auth_config cfg;
    char dummy_hash[AUTH_HASH_MAX];

    pthread_mutex_t cred_lock;
    struct cred_entry *creds[CRED_BUCKETS];
    size_t n_creds;

    pthread_mutex_t limit_lock;
    struct limit_entry *limits[LIMIT_BUCKETS];
    size_t n_limits;
};

void auth_cred_cache_clear(struct auth *a);
void auth_limits_clear(struct auth *a);
uint32_t auth_hash_str(const char *s);

#endif
