/*
 * The window table: a fixed array of keys with a hash index, and a few
 * overflow keys for when it is full. Pure: the caller passes the time and
 * takes the summaries.
 *
 * Invariant: an occurrence is either recorded one by one (note returned
 * true) or counted in exactly one key's window and reported by exactly one
 * summary when that window closes; nothing is dropped, nothing counted twice.
 */
#include "audit.h"

#include <stdlib.h>
#include <string.h>

#define OVERFLOW_KEYS 16
#define NO_ENTRY      ((uint32_t)-1)

struct entry {
    bool used;
    bool hot; /* a follow-on window: records nothing one by one */
    bool overflow;
    enum audit_kind kind;
    char source[AUDIT_KEY_MAX], family[AUDIT_KEY_MAX], reason[AUDIT_KEY_MAX];
    char actor_kind[16], actor_id[64], actor_name[128], actor_ip[48];
    int allowance;
    int64_t start_ms;
    uint64_t count, recorded;
    int64_t first_us, last_us;
    json_t *sample;
    json_t *routes;
    uint32_t hash;
    uint32_t next; /* hash chain */
};

struct audit_window {
    size_t capacity;
    int64_t window_ms;
    struct entry *entries; /* capacity + OVERFLOW_KEYS; the overflow keys are at the end */
    uint32_t *buckets;     /* capacity slots */
    uint32_t free_head;    /* free list through next */
    size_t n_used;
};

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return (h ^ 0xff) * 16777619u;
}

struct audit_window *audit_window_new(size_t capacity, int64_t window_ms)
{
    if (capacity == 0)
        capacity = 1;
    struct audit_window *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->capacity = capacity;
    w->window_ms = window_ms > 0 ? window_ms : 60000;
    w->entries = calloc(capacity + OVERFLOW_KEYS, sizeof *w->entries);
    w->buckets = malloc(capacity * sizeof *w->buckets);
    if (!w->entries || !w->buckets) {
        audit_window_free(w);
        return NULL;
    }
    for (size_t i = 0; i < capacity; i++) {
        w->buckets[i] = NO_ENTRY;
        w->entries[i].next = i + 1 < capacity ? (uint32_t)(i + 1) : NO_ENTRY;
    }
    w->free_head = 0;
    return w;
}

static void entry_clear(struct entry *e)
{
    json_decref(e->sample);
    json_decref(e->routes);
    uint32_t next = e->next;
    memset(e, 0, sizeof *e);
    e->next = next;
}

void audit_window_free(struct audit_window *w)
{
    if (!w)
        return;
    for (size_t i = 0; w->entries && i < w->capacity + OVERFLOW_KEYS; i++)
        entry_clear(&w->entries[i]);
    free(w->entries);
    free(w->buckets);
    free(w);
}

size_t audit_window_keys(const struct audit_window *w)
{
    size_t n = w->n_used;
    for (size_t i = 0; i < OVERFLOW_KEYS; i++)
        n += w->entries[w->capacity + i].used;
    return n;
}

static bool same_key(const struct entry *e, enum audit_kind kind, const char *source, const char *family,
                     const char *reason)
{
    return e->kind == kind && strcmp(e->source, source) == 0 && strcmp(e->family, family) == 0 &&
           strcmp(e->reason, reason) == 0;
}

static void entry_start(struct entry *e, const struct audit_occurrence *o, const char *source,
                        const char *family, int64_t now_ms)
{
    e->used = true;
    e->kind = o->kind;
    sb_strlcpy(e->source, source, sizeof e->source);
    sb_strlcpy(e->family, family, sizeof e->family);
    sb_strlcpy(e->reason, o->reason ? o->reason : "", sizeof e->reason);
    sb_strlcpy(e->actor_kind, o->actor.kind ? o->actor.kind : "system", sizeof e->actor_kind);
    sb_strlcpy(e->actor_id, o->actor.id ? o->actor.id : "", sizeof e->actor_id);
    sb_strlcpy(e->actor_name, o->actor.name ? o->actor.name : "", sizeof e->actor_name);
    sb_strlcpy(e->actor_ip, o->actor.ip ? o->actor.ip : "", sizeof e->actor_ip);
    e->allowance = o->allowance;
    e->start_ms = now_ms;
    e->routes = json_array();
}

/* The key of o, found or made; NULL only when out of memory. */
static struct entry *lookup(struct audit_window *w, const struct audit_occurrence *o, int64_t now_ms)
{
    char source[AUDIT_KEY_MAX], family[AUDIT_KEY_MAX], reason[AUDIT_KEY_MAX];
    sb_strlcpy(source, o->source ? o->source : "", sizeof source);
    sb_strlcpy(family, o->per_family && o->family ? o->family : "*", sizeof family);
    sb_strlcpy(reason, o->reason ? o->reason : "", sizeof reason);
    uint32_t h = fnv(fnv(fnv(2166136261u ^ (uint32_t)o->kind, source), family), reason);
    uint32_t *slot = &w->buckets[h % w->capacity];
    for (uint32_t i = *slot; i != NO_ENTRY; i = w->entries[i].next) {
        struct entry *e = &w->entries[i];
        if (e->hash == h && same_key(e, o->kind, source, family, reason))
            return e;
    }
    if (w->free_head != NO_ENTRY) {
        uint32_t i = w->free_head;
        struct entry *e = &w->entries[i];
        w->free_head = e->next;
        entry_start(e, o, source, family, now_ms);
        e->hash = h;
        e->next = *slot;
        *slot = i;
        w->n_used++;
        return e;
    }
    /* Full: one overflow key per (kind, reason); the last one takes the rest. */
    struct entry *ov = &w->entries[w->capacity];
    for (size_t i = 0; i < OVERFLOW_KEYS; i++) {
        struct entry *e = &ov[i];
        if (!e->used) {
            entry_start(e, o, "*", "*", now_ms);
            e->overflow = true;
            e->allowance = 0;
            e->actor_kind[0] = e->actor_id[0] = e->actor_name[0] = e->actor_ip[0] = '\0';
            sb_strlcpy(e->actor_kind, "system", sizeof e->actor_kind);
            return e;
        }
        if (e->kind == o->kind && strcmp(e->reason, reason) == 0)
            return e;
    }
    return &ov[OVERFLOW_KEYS - 1];
}

static void add_route(struct entry *e, const char *route)
{
    if (!route || !e->routes || json_array_size(e->routes) >= AUDIT_ROUTES_MAX)
        return;
    size_t i;
    json_t *v;
    json_array_foreach(e->routes, i, v) if (strcmp(json_string_value(v), route) == 0) return;
    json_t *s = json_string(route);
    if (s)
        json_array_append_new(e->routes, s);
}

bool audit_window_note(struct audit_window *w, const struct audit_occurrence *o, int64_t now_ms,
                       int64_t wall_us)
{
    struct entry *e = lookup(w, o, now_ms);
    if (!e)
        return false;
    if (e->count == 0)
        e->first_us = wall_us;
    e->count++;
    e->last_us = wall_us;
    add_route(e, o->route);
    int allowance = e->hot || e->overflow ? 0 : e->allowance;
    if (e->recorded < (uint64_t)(allowance > 0 ? allowance : 0)) {
        e->recorded++;
        return true;
    }
    if (!e->sample && o->sample)
        e->sample = json_deep_copy(o->sample);
    return false;
}

static void unlink_entry(struct audit_window *w, uint32_t idx)
{
    struct entry *e = &w->entries[idx];
    uint32_t *pp = &w->buckets[e->hash % w->capacity];
    while (*pp != idx)
        pp = &w->entries[*pp].next;
    *pp = e->next;
    entry_clear(e);
    e->next = w->free_head;
    w->free_head = idx;
    w->n_used--;
}

static void take_summary(struct entry *e, struct audit_summary *s)
{
    memset(s, 0, sizeof *s);
    s->kind = e->kind;
    memcpy(s->source, e->source, sizeof s->source);
    memcpy(s->family, e->family, sizeof s->family);
    memcpy(s->reason, e->reason, sizeof s->reason);
    memcpy(s->actor_kind, e->actor_kind, sizeof s->actor_kind);
    memcpy(s->actor_id, e->actor_id, sizeof s->actor_id);
    memcpy(s->actor_name, e->actor_name, sizeof s->actor_name);
    memcpy(s->actor_ip, e->actor_ip, sizeof s->actor_ip);
    s->overflow = e->overflow;
    s->count = e->count;
    s->recorded = e->recorded;
    s->first_us = e->first_us;
    s->last_us = e->last_us;
    s->sample = e->sample;
    s->routes = e->routes ? e->routes : json_array();
    e->sample = NULL;
    e->routes = NULL;
}

struct audit_summary *audit_window_close(struct audit_window *w, int64_t now_ms, bool all, size_t *n)
{
    *n = 0;
    size_t total = w->capacity + OVERFLOW_KEYS, cap = 0;
    struct audit_summary *out = NULL;
    for (size_t i = 0; i < total; i++) {
        struct entry *e = &w->entries[i];
        if (!e->used || (!all && now_ms - e->start_ms < w->window_ms))
            continue;
        bool unrecorded = e->count > e->recorded;
        if (unrecorded) {
            if (*n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct audit_summary *grown = realloc(out, ncap * sizeof *out);
                if (!grown)
                    break; /* out of memory: the rest close on the next call */
                out = grown;
                cap = ncap;
            }
            take_summary(e, &out[(*n)++]);
        }
        if (unrecorded && !all) {
            /* Still busy: a follow-on window that only counts. */
            e->hot = true;
            e->start_ms += w->window_ms;
            if (now_ms - e->start_ms >= w->window_ms)
                e->start_ms = now_ms;
            e->count = e->recorded = 0;
            e->first_us = e->last_us = 0;
            e->routes = json_array();
            continue;
        }
        if (i < w->capacity) {
            unlink_entry(w, (uint32_t)i);
        } else {
            entry_clear(e);
        }
    }
    return out;
}

void audit_summaries_free(struct audit_summary *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(s[i].sample);
        json_decref(s[i].routes);
    }
    free(s);
}

void audit_route_family(const char *pattern, char *out, size_t outlen)
{
    const char *p = pattern ? pattern : "";
    if (strncmp(p, "/api/v1/", 8) == 0)
        p += 8;
    else if (*p == '/')
        p++;
    size_t n = strcspn(p, "/");
    if (n == 0 || *p == '{') {
        sb_strlcpy(out, "root", outlen);
        return;
    }
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

bool audit_path_prefix(const char *path, char *out, size_t max)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(path ? path : "");
    for (; *p; p++) {
        bool plain = *p > 0x20 && *p < 0x7f && *p != '%' && *p != '"' && *p != '\\';
        size_t need = plain ? 1 : 3;
        if (o + need > max)
            break;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return *p != '\0';
}
