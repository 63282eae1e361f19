/*
 * audit — keeps what outsiders can make the daemon write to the audit chain
 * bounded. Denied requests and guest requests pass through a windowed
 * summarizer: per key (kind, source, route family, reason) the first few
 * occurrences of a window are recorded one by one by the caller, the rest
 * are only counted, and when the window closes one summary event
 * (access.denied_summary, guest.requests_summary) holds their count, the
 * first and last time, a sample and the route patterns. A key still busy
 * when its window closes starts a follow-on window that records nothing one
 * by one, so a steady flood costs one summary per key per window.
 *
 * Memory is fixed: at most `capacity` keys; when the table is full, new keys
 * fold into one overflow key per (kind, reason), which records nothing one by
 * one. Bound on the chain, per window: per key at most `allowance` events
 * plus one summary; in all at most capacity x (allowance + 1) + the overflow
 * summaries.
 *
 * The window table (window.c) is pure: time is passed in, summaries are
 * handed back. The service (audit.c) adds a lock, a timer thread that closes
 * windows and appends the summaries, the flush at shutdown, and the counters
 * for /metrics (every occurrence counts, recorded or not).
 */
#ifndef SB_AUDIT_H
#define SB_AUDIT_H

#include "../store/store.h"
#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define AUDIT_KEY_MAX    96 /* longest source, family or reason kept (longer is cut) */
#define AUDIT_ROUTES_MAX 16 /* route patterns kept per summary */

enum audit_kind { AUDIT_DENIAL, AUDIT_GUEST };

/* One denied request or guest request. Strings and sample are borrowed. */
struct audit_occurrence {
    enum audit_kind kind;
    const char *source; /* client address (an IPv6 /64), or "<kind>:<id>" of a credential */
    const char *family; /* route family ("nodes", "me" …) */
    bool per_family;    /* whether the family is part of the key ("*" otherwise) */
    const char *reason; /* "no credential", "permission" …; "request" for guests */
    int allowance;      /* occurrences recorded one by one per window (0 = summaries only) */
    const char *route;  /* the route pattern */
    json_t *sample;     /* the data an event would hold; the first one not recorded is kept */
    struct event_actor actor;
};

/* What a closed window leaves. Owns sample and routes. */
struct audit_summary {
    enum audit_kind kind;
    char source[AUDIT_KEY_MAX], family[AUDIT_KEY_MAX], reason[AUDIT_KEY_MAX];
    char actor_kind[16], actor_id[64], actor_name[128], actor_ip[48];
    bool overflow;     /* the table was full: many keys folded into this one */
    uint64_t count;    /* occurrences in the window */
    uint64_t recorded; /* of which recorded one by one */
    int64_t first_us, last_us;
    json_t *sample; /* may be NULL */
    json_t *routes; /* array of route patterns */
};

/* ---- the window table (pure, not thread-safe; window.c) ------------------ */
struct audit_window;
struct audit_window *audit_window_new(size_t capacity, int64_t window_ms);
void audit_window_free(struct audit_window *w);
/* Notes one occurrence at monotonic now_ms (wall clock wall_us). Returns
 * true when the caller should record it one by one. */
bool audit_window_note(struct audit_window *w, const struct audit_occurrence *o, int64_t now_ms,
                       int64_t wall_us);
/* Closes the windows that ended by now_ms (every window when `all`) and
 * returns the summaries of those that left occurrences unrecorded: a malloc'd
 * array of *n (NULL when none), freed with audit_summaries_free. */
struct audit_summary *audit_window_close(struct audit_window *w, int64_t now_ms, bool all, size_t *n);
void audit_summaries_free(struct audit_summary *s, size_t n);
/* Keys held now (for tests and /metrics). */
size_t audit_window_keys(const struct audit_window *w);

/* The route family of a pattern: the first segment after /api/v1/ (or the
 * first segment), e.g. "/api/v1/nodes/{id}" -> "nodes", "/g/{token}" -> "g". */
void audit_route_family(const char *pattern, char *out, size_t outlen);
/* A bounded, escaped prefix of a path for an event: bytes outside printable
 * ASCII, '%' and '"' as %XX, at most max output bytes. Returns whether the
 * path was cut. out needs max + 1 bytes. */
bool audit_path_prefix(const char *path, char *out, size_t max);

/* ---- the service (audit.c) -------------------------------------------------- */
struct audit;
struct audit_config {
    struct store *store;
    int64_t window_ms; /* 60000 */
    size_t capacity;   /* keys (1024) */
};
/* Starts the timer thread. */
struct audit *audit_open(const struct audit_config *cfg, struct sb_err *err);
/* Appends the summaries of every open window, stops the thread, frees. */
void audit_close(struct audit *a);
/* Counts the occurrence and notes it; true when the caller should append
 * its own event for it now. Any thread. */
bool audit_note(struct audit *a, const struct audit_occurrence *o);
/* Closes the windows that ended and appends their summaries now (the timer
 * does this on its own; for tests). */
void audit_flush(struct audit *a);
/* The counters, Prometheus text. */
void audit_prometheus(struct audit *a, struct buf *out);

#endif
