/*
 * jobs — a MINIMAL stand-in written on the stacks branch while the jobs
 * branch builds the real subsystem (contract: /work/contract/jobs.h). It
 * keeps the contract's calls and events (job.queued/started/succeeded/
 * failed on stream job/<id>, progress and log lines on the ephemeral topic
 * job/<id>), but jobs live in memory only: no table, no lease, no takeover.
 * A job queued or running when the daemon dies is lost; the stacks service
 * marks such deploys failed at start (stacks_recover). The jobs branch
 * replaces this file whole.
 *
 * Bounds: at most JOBS_QUEUE_MAX jobs queued or kept; finished jobs are
 * forgotten oldest first.
 */
#include "jobs.h"

#include "../events/events.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOBS_KINDS_MAX   16
#define JOBS_QUEUE_MAX   256
#define JOBS_WORKERS_MAX 4

struct job {
    char id[37];
    char kind[48];
    char target[128];
    char node_id[64];
    char key[128];
    json_t *args;
    json_t *result;
    char state[12]; /* queued running succeeded failed cancelled */
    char error[256];
    int attempt;
    int64_t created_us, started_us, finished_us;
    int64_t not_before_ms;
    struct event_actor actor; /* strings below */
    char actor_kind[16], actor_id[64], actor_name[128];
    struct job *next;
};

struct job_ctx {
    struct jobs *j;
    struct job *job;
    const struct jobs_kind *kind;
    int64_t deadline_ms;
};

struct jobs {
    struct store *store;
    struct events_bus *events;
    struct jobs_kind kinds[JOBS_KINDS_MAX];
    size_t n_kinds;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head; /* every job kept, newest last */
    size_t count;
    bool stopping;
    pthread_t threads[JOBS_WORKERS_MAX];
    int n_threads;
};

struct jobs *jobs_open(const struct jobs_config *cfg, struct sb_err *err)
{
    struct jobs *j = calloc(1, sizeof *j);
    if (!j) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    j->store = cfg->store;
    j->events = cfg->events;
    j->n_threads = cfg->workers > 0 && cfg->workers <= JOBS_WORKERS_MAX ? cfg->workers : 2;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    return j;
}

int jobs_register(struct jobs *j, const struct jobs_kind *k, struct sb_err *err)
{
    if (j->n_kinds >= JOBS_KINDS_MAX)
        return sb_error(err, SB_ENOMEM, "too many job kinds");
    j->kinds[j->n_kinds++] = *k;
    return 0;
}

static const struct jobs_kind *kind_of(struct jobs *j, const char *kind)
{
    for (size_t i = 0; i < j->n_kinds; i++)
        if (strcmp(j->kinds[i].kind, kind) == 0)
            return &j->kinds[i];
    return NULL;
}

static json_t *job_json(const struct job *jb)
{
    char created[40], started[40] = "", finished[40] = "";
    time_format_rfc3339(jb->created_us, created, sizeof created);
    if (jb->started_us)
        time_format_rfc3339(jb->started_us, started, sizeof started);
    if (jb->finished_us)
        time_format_rfc3339(jb->finished_us, finished, sizeof finished);
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:O,s:i,s:s}", "id", jb->id, "kind", jb->kind, "target", jb->target,
                  "state", jb->state, "args", jb->args, "attempt", jb->attempt, "created_at", created);
    json_object_set_new(o, "node_id", jb->node_id[0] ? json_string(jb->node_id) : json_null());
    json_object_set_new(o, "started_at", started[0] ? json_string(started) : json_null());
    json_object_set_new(o, "finished_at", finished[0] ? json_string(finished) : json_null());
    json_object_set_new(o, "error", jb->error[0] ? json_string(jb->error) : json_null());
    json_object_set(o, "result", jb->result ? jb->result : json_null());
    return o;
}

static void append(struct jobs *j, const struct job *jb, const char *type, json_t *extra)
{
    char stream[48];
    snprintf(stream, sizeof stream, "job/%s", jb->id);
    json_t *d = json_pack("{s:s,s:s,s:s,s:i}", "id", jb->id, "kind", jb->kind, "target", jb->target,
                          "attempt", jb->attempt);
    if (jb->node_id[0])
        json_object_set_new(d, "node_id", json_string(jb->node_id));
    if (extra)
        json_object_update(d, extra);
    struct event_new ev = {.stream = stream,
                           .type = type,
                           .data = d,
                           .actor = jb->actor,
                           .outcome = strcmp(type, "job.failed") == 0 ? "failure" : "success"};
    int64_t seq;
    struct sb_err err = {0};
    if (store_append(j->store, &ev, &seq, &err))
        log_warn("job event not recorded", "type=%s job=%s detail=\"%s\"", type, jb->id, err.msg);
    json_decref(d);
}

static void forget_finished(struct jobs *j)
{
    /* keep at most JOBS_QUEUE_MAX: drop the oldest finished ones */
    struct job **pp = &j->head;
    while (j->count > JOBS_QUEUE_MAX && *pp) {
        struct job *jb = *pp;
        if (strcmp(jb->state, "queued") != 0 && strcmp(jb->state, "running") != 0) {
            *pp = jb->next;
            json_decref(jb->args);
            json_decref(jb->result);
            free(jb);
            j->count--;
        } else {
            pp = &jb->next;
        }
    }
}

int jobs_enqueue(struct jobs *j, const struct jobs_new *in, json_t **job, struct sb_err *err)
{
    if (!kind_of(j, in->kind))
        return sb_error(err, SB_EINTERNAL, "unknown job kind %s", in->kind);
    struct job *jb = calloc(1, sizeof *jb);
    if (!jb)
        return sb_error(err, SB_ENOMEM, "out of memory");
    uuid_v4(jb->id);
    sb_strlcpy(jb->kind, in->kind, sizeof jb->kind);
    sb_strlcpy(jb->target, in->target ? in->target : "", sizeof jb->target);
    sb_strlcpy(jb->node_id, in->node_id ? in->node_id : "", sizeof jb->node_id);
    sb_strlcpy(jb->key, in->concurrency_key ? in->concurrency_key : "", sizeof jb->key);
    jb->args = json_deep_copy(in->args ? in->args : json_object());
    sb_strlcpy(jb->state, "queued", sizeof jb->state);
    jb->created_us = time_now_us();
    sb_strlcpy(jb->actor_kind, in->actor.kind ? in->actor.kind : "system", sizeof jb->actor_kind);
    sb_strlcpy(jb->actor_id, in->actor.id ? in->actor.id : "", sizeof jb->actor_id);
    sb_strlcpy(jb->actor_name, in->actor.name ? in->actor.name : "", sizeof jb->actor_name);
    jb->actor.kind = jb->actor_kind;
    jb->actor.id = jb->actor_id[0] ? jb->actor_id : NULL;
    jb->actor.name = jb->actor_name[0] ? jb->actor_name : NULL;
    jb->actor.ip = NULL;
    pthread_mutex_lock(&j->lock);
    size_t active = 0;
    for (struct job *x = j->head; x; x = x->next)
        active += strcmp(x->state, "queued") == 0 || strcmp(x->state, "running") == 0;
    if (active >= JOBS_QUEUE_MAX || j->stopping) {
        pthread_mutex_unlock(&j->lock);
        json_decref(jb->args);
        free(jb);
        return sb_error(err, SB_EUNAVAIL, "the job queue is full");
    }
    pthread_mutex_unlock(&j->lock);
    json_t *extra = json_pack("{s:O}", "args", jb->args);
    append(j, jb, "job.queued", extra);
    json_decref(extra);
    pthread_mutex_lock(&j->lock);
    struct job **pp = &j->head;
    while (*pp)
        pp = &(*pp)->next;
    *pp = jb;
    j->count++;
    forget_finished(j);
    if (job)
        *job = job_json(jb);
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

int jobs_get(struct jobs *j, const char *id, json_t **job, struct sb_err *err)
{
    pthread_mutex_lock(&j->lock);
    for (struct job *x = j->head; x; x = x->next)
        if (strcmp(x->id, id) == 0) {
            *job = job_json(x);
            pthread_mutex_unlock(&j->lock);
            return 0;
        }
    pthread_mutex_unlock(&j->lock);
    return sb_error(err, SB_ENOTFOUND, "no such job");
}

/* A queued job whose key is free and whose backoff is over. Lock held. */
static struct job *next_runnable(struct jobs *j)
{
    int64_t now = time_mono_ms();
    for (struct job *x = j->head; x; x = x->next) {
        if (strcmp(x->state, "queued") != 0 || x->not_before_ms > now)
            continue;
        bool busy = false;
        for (struct job *y = j->head; y && x->key[0]; y = y->next)
            if (y != x && strcmp(y->state, "running") == 0 && strcmp(y->key, x->key) == 0)
                busy = true;
        /* an earlier queued job with the same key goes first */
        for (struct job *y = j->head; y && y != x && x->key[0]; y = y->next)
            if (strcmp(y->state, "queued") == 0 && strcmp(y->key, x->key) == 0)
                busy = true;
        if (!busy)
            return x;
    }
    return NULL;
}

static void *worker(void *arg)
{
    struct jobs *j = arg;
    pthread_mutex_lock(&j->lock);
    while (!j->stopping) {
        struct job *jb = next_runnable(j);
        if (!jb) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&j->cond, &j->lock, &ts);
            continue;
        }
        sb_strlcpy(jb->state, "running", sizeof jb->state);
        jb->attempt++;
        jb->started_us = time_now_us();
        const struct jobs_kind *k = kind_of(j, jb->kind);
        pthread_mutex_unlock(&j->lock);

        append(j, jb, "job.started", NULL);
        struct job_ctx ctx = {.j = j, .job = jb, .kind = k};
        ctx.deadline_ms = time_mono_ms() + (int64_t)(k->timeout_s > 0 ? k->timeout_s : 3600) * 1000;
        json_t *result = NULL;
        struct sb_err err = {0};
        json_t *args = json_deep_copy(jb->args);
        int rc = k->run(&ctx, args, &result, &err);
        json_decref(args);
        int max = k->max_attempts > 0 ? k->max_attempts : 3;
        bool retry = rc && (rc == SB_EUNAVAIL || rc == SB_ETIMEOUT) && jb->attempt < max && !j->stopping;

        pthread_mutex_lock(&j->lock);
        json_decref(jb->result);
        jb->result = result;
        if (rc)
            sb_strlcpy(jb->error, err.msg[0] ? err.msg : sb_errcode_name(rc), sizeof jb->error);
        if (retry) {
            sb_strlcpy(jb->state, "queued", sizeof jb->state);
            jb->not_before_ms = time_mono_ms() + 1000LL * (1 << (jb->attempt > 5 ? 5 : jb->attempt));
        } else {
            sb_strlcpy(jb->state, rc ? "failed" : "succeeded", sizeof jb->state);
            jb->finished_us = time_now_us();
        }
        pthread_mutex_unlock(&j->lock);
        if (!retry) {
            json_t *extra = rc ? json_pack("{s:s}", "error", jb->error) : NULL;
            append(j, jb, rc ? "job.failed" : "job.succeeded", extra);
            json_decref(extra);
        }
        pthread_mutex_lock(&j->lock);
        pthread_cond_broadcast(&j->cond);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

int jobs_start(struct jobs *j, struct sb_err *err)
{
    for (int i = 0; i < j->n_threads; i++)
        if (pthread_create(&j->threads[i], NULL, worker, j)) {
            j->n_threads = i;
            return sb_error(err, SB_EINTERNAL, "cannot start a jobs worker");
        }
    return 0;
}

void jobs_close(struct jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->n_threads; i++)
        pthread_join(j->threads[i], NULL);
    for (struct job *x = j->head; x;) {
        struct job *next = x->next;
        json_decref(x->args);
        json_decref(x->result);
        free(x);
        x = next;
    }
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

const char *job_id(const struct job_ctx *c)
{
    return c->job->id;
}

void *job_kind_ctx(const struct job_ctx *c)
{
    return c->kind->ctx;
}

int job_attempt(const struct job_ctx *c)
{
    return c->job->attempt;
}

static void publish(struct job_ctx *c, const char *type, json_t *data)
{
    if (!c->j->events)
        return;
    char topic[48];
    snprintf(topic, sizeof topic, "job/%s", c->job->id);
    struct sb_err err = {0};
    events_publish_ephemeral(c->j->events, topic, type, data, &err);
}

void job_progress(struct job_ctx *c, int percent, const char *step)
{
    json_t *d =
        json_pack("{s:s,s:i,s:s}", "job_id", c->job->id, "percent", percent, "step", step ? step : "");
    publish(c, "job.progress", d);
    json_decref(d);
}

void job_log(struct job_ctx *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    json_t *d = json_pack("{s:s,s:s}", "job_id", c->job->id, "line", line);
    if (d)
        publish(c, "job.log", d);
    json_decref(d);
}

bool job_cancelled(const struct job_ctx *c)
{
    return c->j->stopping || time_mono_ms() > c->deadline_ms;
}

int jobs_duty_register(struct jobs *j, const struct jobs_duty *d, struct sb_err *err)
{
    return sb_error(err, SB_EINTERNAL, "duties are not in the stand-in jobs");
}

bool jobs_duty_held(struct jobs *j, const char *name)
{
    return false;
}
