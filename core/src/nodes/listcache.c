/* The node list as PostgreSQL answered it, kept per (scope, filter, fields)
 * while the store's node generation is the one it was read under (issue #23:
 * the query was most of the cost of GET /api/v1/nodes). Every change to the
 * nodes projection is a node.* event, and the generation moves when one is
 * committed: by this daemon before its append returns, so a read after a
 * write misses the cache; by another daemon when our follower reads the
 * event, as fast as event streams learn of it. LIST_TTL_MS bounds the age
 * of an answer should an invalidation ever be missed. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define LIST_ENTRIES  32        /* distinct scopes and filters kept */
#define LIST_BODY_MAX (1 << 20) /* a larger list is not kept */
#define LIST_TTL_MS   5000

struct list_entry {
    char *key; /* NULL: free slot */
    char *body;
    size_t len;
    uint64_t gen;
    int64_t at_ms;
    uint64_t used; /* for least recently used */
};

struct nodes_list_cache {
    pthread_mutex_t lock;
    uint64_t tick;
    struct list_entry e[LIST_ENTRIES];
};

struct nodes_list_cache *nodes_list_cache_new(void)
{
    struct nodes_list_cache *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->lock, NULL);
    return c;
}

void nodes_list_cache_free(struct nodes_list_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < LIST_ENTRIES; i++) {
        free(c->e[i].key);
        free(c->e[i].body);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* One string for the four filters: each NULL or its text, with separators
 * no JSON text contains raw. */
static char *list_key(const char *scope, const char *pairs, const char *keys, const char *fields)
{
    const char *part[4] = {scope, pairs, keys, fields};
    size_t n = 1;
    for (size_t i = 0; i < 4; i++)
        n += (part[i] ? strlen(part[i]) : 0) + 2;
    char *k = malloc(n), *p = k;
    if (!k)
        return NULL;
    for (size_t i = 0; i < 4; i++) {
        *p++ = part[i] ? '\x1f' : '\x1e';
        size_t l = part[i] ? strlen(part[i]) : 0;
        memcpy(p, part[i] ? part[i] : "", l);
        p += l;
    }
    *p = '\0';
    return k;
}

static bool list_get(struct nodes_list_cache *c, const char *key, uint64_t gen, char **out, size_t *len)
{
    bool hit = false;
    int64_t now = time_mono_ms();
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < LIST_ENTRIES && !hit; i++) {
        struct list_entry *e = &c->e[i];
        if (!e->key || e->gen != gen || now - e->at_ms > LIST_TTL_MS || strcmp(e->key, key) != 0)
            continue;
        *out = malloc(e->len + 1);
        if (*out) {
            memcpy(*out, e->body, e->len + 1);
            *len = e->len;
            e->used = ++c->tick;
            hit = true;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

/* Takes key; copies body. Replaces the entry of the same key, else a free
 * or the least recently used slot. */
static void list_put(struct nodes_list_cache *c, char *key, const char *body, size_t len, uint64_t gen)
{
    char *copy = malloc(len + 1);
    if (!copy) {
        free(key);
        return;
    }
    memcpy(copy, body, len + 1);
    pthread_mutex_lock(&c->lock);
    struct list_entry *slot = &c->e[0];
    for (size_t i = 0; i < LIST_ENTRIES; i++) {
        struct list_entry *e = &c->e[i];
        if (e->key && strcmp(e->key, key) == 0) {
            slot = e;
            break;
        }
        if (!e->key || (slot->key && e->used < slot->used))
            slot = e;
    }
    free(slot->key);
    free(slot->body);
    *slot = (struct list_entry){key, copy, len, gen, time_mono_ms(), ++c->tick};
    pthread_mutex_unlock(&c->lock);
}

int nodes_list_view(struct nodes *n, const char *scope, const char *pairs, const char *keys,
                    const char *fields, char **out, size_t *len, struct sb_err *err)
{
    char *key = n->list_cache ? list_key(scope, pairs, keys, fields) : NULL;
    uint64_t gen = store_nodes_generation(n->store);
    if (key && list_get(n->list_cache, key, gen, out, len)) {
        free(key);
        return 0;
    }
    int rc = store_node_list_view(n->store, scope, pairs, keys, fields, out, len, err);
    /* Kept only if no node event was committed meanwhile: the answer may
     * predate it. */
    if (rc == 0 && key && *len <= LIST_BODY_MAX && store_nodes_generation(n->store) == gen)
        list_put(n->list_cache, key, *out, *len, gen);
    else
        free(key);
    return rc;
}
