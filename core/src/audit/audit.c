/*
 * The service around the window table: one lock, a timer thread that closes
 * windows and appends their summaries, the flush at shutdown, and the
 * counters for /metrics.
 *
 * Lock order: a->lock is never held while appending (store_append waits
 * for a commit); summaries are taken out under the lock and appended after.
 */
#include "audit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COUNTERS 256 /* (kind, family, reason) triples counted; then "other" */

struct counter {
    enum audit_kind kind;
    char family[32];
    char reason[32];
    uint64_t n;
};

struct audit {
    struct audit_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    pthread_t thread;
    bool thread_started;
    struct audit_window *w;

    struct counter counters[COUNTERS];
    size_t n_counters;
    uint64_t recorded, summarized, summaries, overflowed;
    atomic_uint_fast64_t append_failures;
};

static void count(struct audit *a, const struct audit_occurrence *o)
{
    char family[32], reason[32];
    sb_strlcpy(family, o->family ? o->family : "", sizeof family);
    sb_strlcpy(reason, o->reason ? o->reason : "", sizeof reason);
    for (char *c = reason; *c; c++)
        if (*c == ' ')
            *c = '_';
    for (size_t i = 0; i < a->n_counters; i++) {
        struct counter *c = &a->counters[i];
        if (c->kind == o->kind && strcmp(c->family, family) == 0 && strcmp(c->reason, reason) == 0) {
            c->n++;
            return;
        }
    }
    struct counter *c;
    if (a->n_counters < COUNTERS - 1) {
        c = &a->counters[a->n_counters++];
        c->kind = o->kind;
        sb_strlcpy(c->family, family, sizeof c->family);
        sb_strlcpy(c->reason, reason, sizeof c->reason);
    } else {
        /* The last counter takes whatever does not fit. */
        c = &a->counters[COUNTERS - 1];
        if (a->n_counters < COUNTERS) {
            a->n_counters = COUNTERS;
            c->kind = o->kind;
            sb_strlcpy(c->family, "other", sizeof c->family);
            sb_strlcpy(c->reason, "other", sizeof c->reason);
        }
    }
    c->n++;
}

bool audit_note(struct audit *a, const struct audit_occurrence *o)
{
    pthread_mutex_lock(&a->lock);
    count(a, o);
    bool record = audit_window_note(a->w, o, time_mono_ms(), time_now_us());
    if (record)
        a->recorded++;
    else
        a->summarized++;
    pthread_mutex_unlock(&a->lock);
    return record;
}

static void append_summary(struct audit *a, const struct audit_summary *s)
{
    char first[40], last[40];
    time_format_rfc3339(s->first_us, first, sizeof first);
    time_format_rfc3339(s->last_us, last, sizeof last);
    json_t *data =
        json_pack("{s:I, s:I, s:I, s:s, s:s, s:O, s:I, s:b}", "count", (json_int_t)s->count, "recorded",
                  (json_int_t)s->recorded, "not_recorded", (json_int_t)(s->count - s->recorded), "first_at",
                  first, "last_at", last, "routes", s->routes, "window_seconds",
                  (json_int_t)(a->cfg.window_ms / 1000), "overflow", s->overflow);
    if (!data)
        return;
    if (s->sample)
        json_object_set(data, "sample", s->sample);
    char stream[160];
    const char *type;
    if (s->kind == AUDIT_GUEST) {
        type = "guest.requests_summary";
        if (s->actor_id[0])
            snprintf(stream, sizeof stream, "guest_link/%s", s->actor_id);
        else
            snprintf(stream, sizeof stream, "access");
        json_object_set_new(data, "link", json_string(s->actor_id));
    } else {
        type = "access.denied_summary";
        /* Where the denials one by one went: a guest's own stream, else access. */
        if (strcmp(s->actor_kind, "guest") == 0 && s->actor_id[0])
            snprintf(stream, sizeof stream, "guest_link/%s", s->actor_id);
        else
            snprintf(stream, sizeof stream, "access");
        json_object_set_new(data, "source", json_string(s->source));
        json_object_set_new(data, "reason", json_string(s->reason));
        json_object_set_new(data, "family", json_string(s->family));
    }
    struct event_new ev = {
        .stream = stream,
        .type = type,
        .data = data,
        .outcome = s->kind == AUDIT_GUEST ? "success" : "denied",
        .actor = {.kind = s->actor_kind[0] ? s->actor_kind : "system",
                  .id = s->actor_id[0] ? s->actor_id : NULL,
                  .name = s->actor_name[0] ? s->actor_name : (s->overflow ? "many" : "anonymous"),
                  .ip = s->actor_ip[0] ? s->actor_ip : NULL}};
    struct sb_err err = {0};
    if (store_append(a->cfg.store, &ev, NULL, &err)) {
        atomic_fetch_add(&a->append_failures, 1);
        log_warn("audit summary not recorded", "type=%s count=%llu detail=\"%s\"", type,
                 (unsigned long long)s->count, err.msg);
    } else {
        log_info("audit summary", "type=%s source=\"%s\" reason=\"%s\" count=%llu", type, s->source,
                 s->reason, (unsigned long long)s->count);
    }
    json_decref(data);
}

static void close_windows(struct audit *a, bool all)
{
    size_t n = 0;
    pthread_mutex_lock(&a->lock);
    struct audit_summary *s = audit_window_close(a->w, time_mono_ms(), all, &n);
    a->summaries += n;
    for (size_t i = 0; i < n; i++)
        a->overflowed += s[i].overflow ? s[i].count : 0;
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < n; i++)
        append_summary(a, &s[i]);
    audit_summaries_free(s, n);
}

void audit_flush(struct audit *a)
{
    close_windows(a, false);
}

static void *timer_main(void *arg)
{
    struct audit *a = arg;
    /* A tick a tenth of a window (at most 1 s) closes each window within
     * that much of its end. */
    int64_t tick_ms = a->cfg.window_ms / 10;
    if (tick_ms > 1000)
        tick_ms = 1000;
    if (tick_ms < 50)
        tick_ms = 50;
    pthread_mutex_lock(&a->lock);
    while (!a->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (tick_ms % 1000) * 1000000;
        ts.tv_sec += tick_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        if (a->stopping)
            break;
        pthread_mutex_unlock(&a->lock);
        close_windows(a, false);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

struct audit *audit_open(const struct audit_config *cfg, struct sb_err *err)
{
    struct audit *a = calloc(1, sizeof *a);
    if (!a) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    if (a->cfg.window_ms <= 0)
        a->cfg.window_ms = 60000;
    if (a->cfg.capacity == 0)
        a->cfg.capacity = 1024;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    a->w = audit_window_new(a->cfg.capacity, a->cfg.window_ms);
    if (!a->w || pthread_create(&a->thread, NULL, timer_main, a) != 0) {
        sb_error(err, SB_ENOMEM, "cannot start the audit summarizer");
        audit_close(a);
        return NULL;
    }
    a->thread_started = true;
    return a;
}

void audit_close(struct audit *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    if (a->thread_started)
        pthread_join(a->thread, NULL);
    if (a->w)
        close_windows(a, true);
    audit_window_free(a->w);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
}

void audit_prometheus(struct audit *a, struct buf *out)
{
    pthread_mutex_lock(&a->lock);
    buf_puts(out, "# HELP serverbox_denials_total Requests the guard refused, by reason and route family.\n"
                  "# TYPE serverbox_denials_total counter\n");
    for (size_t i = 0; i < a->n_counters; i++)
        if (a->counters[i].kind == AUDIT_DENIAL)
            buf_printf(out, "serverbox_denials_total{reason=\"%s\",family=\"%s\"} %llu\n",
                       a->counters[i].reason, a->counters[i].family, (unsigned long long)a->counters[i].n);
    buf_puts(out, "# HELP serverbox_guest_requests_total Requests made with guest links, by route family.\n"
                  "# TYPE serverbox_guest_requests_total counter\n");
    for (size_t i = 0; i < a->n_counters; i++)
        if (a->counters[i].kind == AUDIT_GUEST)
            buf_printf(out, "serverbox_guest_requests_total{family=\"%s\"} %llu\n", a->counters[i].family,
                       (unsigned long long)a->counters[i].n);
    buf_printf(
        out,
        "# HELP serverbox_audit_recorded_total Denials and guest requests recorded one by one.\n"
        "# TYPE serverbox_audit_recorded_total counter\n"
        "serverbox_audit_recorded_total %llu\n"
        "# HELP serverbox_audit_summarized_total Denials and guest requests counted in summaries only.\n"
        "# TYPE serverbox_audit_summarized_total counter\n"
        "serverbox_audit_summarized_total %llu\n"
        "# HELP serverbox_audit_summaries_total Summary events made when windows closed.\n"
        "# TYPE serverbox_audit_summaries_total counter\n"
        "serverbox_audit_summaries_total %llu\n"
        "# HELP serverbox_audit_overflow_total Occurrences folded into overflow keys (table full).\n"
        "# TYPE serverbox_audit_overflow_total counter\n"
        "serverbox_audit_overflow_total %llu\n"
        "# HELP serverbox_audit_rollup_append_failures_total Summaries the store did not take (logged).\n"
        "# TYPE serverbox_audit_rollup_append_failures_total counter\n"
        "serverbox_audit_rollup_append_failures_total %llu\n"
        "# HELP serverbox_audit_keys Keys with an open window.\n"
        "# TYPE serverbox_audit_keys gauge\n"
        "serverbox_audit_keys %zu\n",
        (unsigned long long)a->recorded, (unsigned long long)a->summarized, (unsigned long long)a->summaries,
        (unsigned long long)a->overflowed, (unsigned long long)atomic_load(&a->append_failures),
        audit_window_keys(a->w));
    pthread_mutex_unlock(&a->lock);
}
