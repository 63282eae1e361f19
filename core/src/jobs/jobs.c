/*
 * jobs: durable work claimed from PostgreSQL under a lease, and singleton
 * duties under a lease row. Design and guarantees: README.md beside this.
 *
 * Threads: `workers` worker threads (each runs at most one attempt: there is
 * no in-memory queue, a worker claims a job only when it is free), one
 * renewer (job leases and duty leases), and one thread per duty that has a
 * `run`. Handlers run on worker threads.
 */
#include "jobs.h"

#include "../events/events.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_KINDS      32
#define MAX_DUTIES     16
#define MAX_WORKERS    256
#define MAX_ARGS_BYTES (16 * 1024)
#define MAX_LOG_LINE   1000
#define RETRY_CAP_MS   (10 * 60 * 1000)
#define PRUNE_BATCH    500 /* job ids per job.pruned event */
#define PRUNE_BATCHES  20  /* events per round: at most 10,000 rows */
#define PRUNE_TICK_MS  60000

struct job_ctx {
    struct jobs *j;
    const struct jobs_kind *kind;
    char id[37];
    char holder[80];
    char node_id[64];
    int attempt;
    int64_t deadline_ms;         /* monotonic: the attempt's timeout */
    _Atomic int64_t lease_ok_ms; /* monotonic: the lease is surely still ours before this */
    atomic_bool cancel_asked;
    atomic_bool lost;
};

struct duty {
    struct jobs_duty d;
    char name[64];
    _Atomic int64_t held_until_ms; /* monotonic; 0 = not held */
    pthread_t runner;
    bool has_runner;
};

struct jobs {
    struct jobs_config cfg;
    char daemon_id[37];
    struct jobs_kind kinds[MAX_KINDS];
    int n_kinds;
    char *kinds_array; /* PostgreSQL array literal of the kinds */
    struct duty duties[MAX_DUTIES];
    int n_duties;
    int64_t last_prune_ms; /* monotonic; the prune duty's thread only */

    pthread_t *workers;
    int n_started;
    pthread_t renewer;
    bool renewer_started;
    struct job_ctx **running; /* one slot per worker */
    atomic_bool stopping;
    atomic_uint_fast64_t claims;
    pthread_mutex_t lock;     /* wake, work, stopping, claiming, idle_until_ms */
    pthread_cond_t wake;      /* the renewer and duty threads sleep on it (stop) */
    pthread_cond_t work;      /* idle workers: a job may be due */
    bool claiming;            /* one worker at a time asks the database */
    int64_t idle_until_ms;    /* the last claim found nothing: next look then */
    pthread_mutex_t run_lock; /* running[] */
};

/* ---- pure parts ------------------------------------------------------------ */

int64_t jobs_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    if (attempt < 1)
        attempt = 1;
    int64_t d = base_ms > 0 ? base_ms : 1;
    for (int i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    return d < cap_ms ? d : cap_ms;
}

enum jobs_outcome jobs_decide(int rc, int attempt, int max_attempts, bool cancel_asked)
{
    if (rc == 0)
        return JOBS_SUCCEEDED;
    if (cancel_asked)
        return JOBS_CANCELLED;
    if ((rc == SB_EUNAVAIL || rc == SB_ETIMEOUT) && attempt < max_attempts)
        return JOBS_RETRY;
    return JOBS_FAILED;
}

const char *jobs_next_state(const char *state, const char *event)
{
    if (!state || !event)
        return NULL;
    bool queued = strcmp(state, "queued") == 0, running = strcmp(state, "running") == 0;
    if (strcmp(event, "started") == 0)
        return queued || running ? "running" : NULL; /* running: a takeover */
    if (strcmp(event, "retrying") == 0)
        return running ? "queued" : NULL;
    if (strcmp(event, "succeeded") == 0 || strcmp(event, "failed") == 0)
        return running ? (event[0] == 's' ? "succeeded" : "failed") : NULL;
    if (strcmp(event, "cancel_requested") == 0)
        return running ? "running" : NULL;
    if (strcmp(event, "cancelled") == 0)
        return queued || running ? "cancelled" : NULL;
    return NULL;
}

bool jobs_kind_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

/* ---- set-up ------------------------------------------------------------------ */

/* ---- retention: finished jobs older than --job-retention-days ---------------- */

/* The "job-prune" duty, every prune_interval_ms on its holder (checked every
 * minute at most, so a daemon restarted more often than the interval still
 * prunes): finished jobs go in job.pruned events naming their ids, which the
 * projection deletes (store/jobs.c). Bounded per round; the rest next round. */
static void prune_run(void *ctx)
{
    struct jobs *j = ctx;
    int64_t now = time_mono_ms();
    if (j->last_prune_ms && now - j->last_prune_ms < j->cfg.prune_interval_ms)
        return;
    j->last_prune_ms = now;
    char before[40];
    time_format_rfc3339(time_now_us() - (int64_t)j->cfg.retention_days * 86400 * 1000000, before,
                        sizeof before);
    for (int b = 0; b < PRUNE_BATCHES && !atomic_load(&j->stopping); b++) {
        json_t *ids = NULL;
        struct sb_err err = {0};
        if (store_jobs_prunable(j->cfg.store, before, PRUNE_BATCH, &ids, &err)) {
            log_warn("cannot list finished jobs to prune", "detail=\"%s\"", err.msg);
            j->last_prune_ms = 0; /* again at the next tick */
            return;
        }
        size_t n = json_array_size(ids);
        if (n == 0) {
            json_decref(ids);
            return;
        }
        json_t *data = json_pack("{s:o, s:I, s:s, s:i}", "ids", ids, "count", (json_int_t)n,
                                 "finished_before", before, "retention_days", j->cfg.retention_days);
        struct event_new ev = {.stream = "jobs",
                               .type = "job.pruned",
                               .data = data,
                               .outcome = "success",
                               .actor = {.kind = "system", .name = "job-pruner"}};
        int64_t seq;
        int rc = data ? store_append(j->cfg.store, &ev, &seq, &err) : SB_ENOMEM;
        json_decref(data);
        if (rc) {
            log_warn("cannot prune finished jobs", "detail=\"%s\"", err.msg);
            j->last_prune_ms = 0;
            return;
        }
        log_info("finished jobs pruned", "count=%zu finished_before=%s", n, before);
        if (n < PRUNE_BATCH)
            return;
    }
}

struct jobs *jobs_open(const struct jobs_config *cfg, struct sb_err *err)
{
    if (!cfg || !cfg->store) {
        sb_error(err, SB_EINVAL, "jobs need a store");
        return NULL;
    }
    struct jobs *j = calloc(1, sizeof *j);
    if (!j) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    j->cfg = *cfg;
    if (j->cfg.workers <= 0)
        j->cfg.workers = 8;
    if (j->cfg.workers > MAX_WORKERS)
        j->cfg.workers = MAX_WORKERS;
    if (j->cfg.lease_ms < 600)
        j->cfg.lease_ms = 5000;
    if (j->cfg.poll_ms <= 0)
        j->cfg.poll_ms = 500;
    if (j->cfg.retry_base_ms <= 0)
        j->cfg.retry_base_ms = 1000;
    if (j->cfg.prune_interval_ms <= 0)
        j->cfg.prune_interval_ms = 3600 * 1000;
    uuid_v4(j->daemon_id);
    pthread_mutex_init(&j->lock, NULL);
    pthread_mutex_init(&j->run_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->wake, &ca);
    pthread_cond_init(&j->work, &ca);
    pthread_condattr_destroy(&ca);
    if (j->cfg.retention_days > 0) {
        int tick = j->cfg.prune_interval_ms < PRUNE_TICK_MS ? j->cfg.prune_interval_ms : PRUNE_TICK_MS;
        struct jobs_duty d = {.name = "job-prune", .interval_ms = tick, .run = prune_run, .ctx = j};
        if (jobs_duty_register(j, &d, err)) {
            jobs_free(j);
            return NULL;
        }
    }
    return j;
}

const char *jobs_daemon_id(const struct jobs *j)
{
    return j->daemon_id;
}

int jobs_register(struct jobs *j, const struct jobs_kind *k, struct sb_err *err)
{
    if (!k || !jobs_kind_valid(k->kind) || !k->run)
        return sb_error(err, SB_EINVAL, "a job kind needs a valid name and a handler");
    if (j->n_started)
        return sb_error(err, SB_ECONFLICT, "kinds are registered before jobs_start");
    if (j->n_kinds == MAX_KINDS)
        return sb_error(err, SB_ETOOLARGE, "too many job kinds");
    for (int i = 0; i < j->n_kinds; i++)
        if (strcmp(j->kinds[i].kind, k->kind) == 0)
            return sb_error(err, SB_ECONFLICT, "job kind %s registered twice", k->kind);
    struct jobs_kind *slot = &j->kinds[j->n_kinds++];
    *slot = *k;
    if (slot->max_attempts <= 0)
        slot->max_attempts = 3;
    if (slot->timeout_s <= 0)
        slot->timeout_s = 3600;
    return 0;
}

static const struct jobs_kind *kind_find(const struct jobs *j, const char *kind)
{
    for (int i = 0; i < j->n_kinds; i++)
        if (strcmp(j->kinds[i].kind, kind) == 0)
            return &j->kinds[i];
    return NULL;
}

int jobs_duty_register(struct jobs *j, const struct jobs_duty *d, struct sb_err *err)
{
    if (!d || !jobs_kind_valid(d->name) || (d->run && d->interval_ms <= 0))
        return sb_error(err, SB_EINVAL, "a duty needs a valid name and, with run, an interval");
    if (j->n_started)
        return sb_error(err, SB_ECONFLICT, "duties are registered before jobs_start");
    if (j->n_duties == MAX_DUTIES)
        return sb_error(err, SB_ETOOLARGE, "too many duties");
    struct duty *slot = &j->duties[j->n_duties++];
    memset(slot, 0, sizeof *slot);
    slot->d = *d;
    sb_strlcpy(slot->name, d->name, sizeof slot->name);
    slot->d.name = slot->name;
    return 0;
}

bool jobs_duty_held(struct jobs *j, const char *name)
{
    if (!j || !name)
        return false;
    for (int i = 0; i < j->n_duties; i++)
        if (strcmp(j->duties[i].name, name) == 0)
            return atomic_load(&j->duties[i].held_until_ms) > time_mono_ms();
    return false;
}

void jobs_prometheus(struct jobs *j, struct buf *out)
{
    if (!j)
        return;
    int running = 0;
    pthread_mutex_lock(&j->run_lock);
    for (int i = 0; j->running && i < j->cfg.workers; i++)
        running += j->running[i] != NULL;
    pthread_mutex_unlock(&j->run_lock);
    buf_printf(out,
               "# HELP serverbox_jobs_running Job attempts running on this daemon.\n# TYPE "
               "serverbox_jobs_running gauge\nserverbox_jobs_running %d\n",
               running);
    buf_printf(out,
               "# HELP serverbox_jobs_workers Job attempts this daemon runs at once at most.\n# TYPE "
               "serverbox_jobs_workers gauge\nserverbox_jobs_workers %d\n",
               j->cfg.workers);
    buf_puts(out, "# HELP serverbox_duty_held 1 while this daemon holds the singleton duty.\n# TYPE "
                  "serverbox_duty_held gauge\n");
    for (int i = 0; i < j->n_duties; i++) /* names are [a-z0-9_.-]: no escaping */
        buf_printf(out, "serverbox_duty_held{duty=\"%s\"} %d\n", j->duties[i].name,
                   jobs_duty_held(j, j->duties[i].name) ? 1 : 0);
}

/* ---- handler side -------------------------------------------------------------- */

const char *job_id(const struct job_ctx *c)
{
    return c->id;
}

void *job_kind_ctx(const struct job_ctx *c)
{
    return c->kind->ctx;
}

int job_attempt(const struct job_ctx *c)
{
    return c->attempt;
}

bool job_cancelled(const struct job_ctx *c)
{
    int64_t now = time_mono_ms();
    return atomic_load(&c->cancel_asked) || atomic_load(&c->lost) || atomic_load(&c->j->stopping) ||
           now >= c->deadline_ms || now >= atomic_load(&c->lease_ok_ms);
}

static void publish(struct job_ctx *c, const char *type, json_t *data)
{
    if (!c->j->cfg.events || !data)
        return;
    char topic[64];
    snprintf(topic, sizeof topic, "job/%s", c->id);
    json_object_set_new(data, "job_id", json_string(c->id));
    json_object_set_new(data, "attempt", json_integer(c->attempt));
    if (c->node_id[0])
        json_object_set_new(data, "node_id", json_string(c->node_id));
    struct sb_err err = {0};
    if (events_publish_ephemeral(c->j->cfg.events, topic, type, data, &err))
        log_debug("job progress not published", "job=%s detail=\"%s\"", c->id, err.msg);
    json_decref(data);
}

void job_progress(struct job_ctx *c, int percent, const char *step)
{
    if (percent > 100)
        percent = 100;
    json_t *d = json_object();
    json_object_set_new(d, "percent", percent < 0 ? json_null() : json_integer(percent));
    if (step) {
        char s[200];
        sb_strlcpy(s, step, sizeof s);
        json_object_set_new(d, "step", json_string(s));
    }
    publish(c, "job.progress", d);
}

void job_log(struct job_ctx *c, const char *fmt, ...)
{
    char line[MAX_LOG_LINE + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    json_t *s = json_string(line);
    if (!s) /* not UTF-8 */
        return;
    publish(c, "job.log", json_pack("{s:o}", "line", s));
}

/* ---- events --------------------------------------------------------------------- */

static int append(struct jobs *j, const char *id, const char *type, json_t *data,
                  const struct event_actor *actor, struct sb_err *err)
{
    char stream[48];
    snprintf(stream, sizeof stream, "job/%s", id);
    json_object_set_new(data, "id", json_string(id));
    struct event_actor system = {.kind = "system", .id = j->daemon_id, .name = "jobs"};
    struct event_new ev = {
        .stream = stream, .type = type, .data = data, .actor = actor ? *actor : system, .outcome = "success"};
    int64_t seq;
    int rc = store_append(j->cfg.store, &ev, &seq, err);
    json_decref(data);
    return rc;
}

static json_t *error_json(int rc, const struct sb_err *err)
{
    json_t *e =
        json_pack("{s:s, s:s}", "code", sb_errcode_name(rc), "message", err->msg[0] ? err->msg : "failed");
    if (err->field[0])
        json_object_set_new(e, "field", json_string(err->field));
    return e;
}

static void wake_one(struct jobs *j)
{
    pthread_mutex_lock(&j->lock);
    j->idle_until_ms = 0;
    pthread_cond_signal(&j->work);
    pthread_mutex_unlock(&j->lock);
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    int64_t ns = ts->tv_nsec + ms * 1000000;
    ts->tv_sec += ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

/* Claims the next due job, one worker of this daemon at a time (so idle
 * workers cost one pool connection and one query per poll interval, not
 * one each): false when stopping. */
static bool claim_next(struct jobs *j, const char *holder, struct store_job_claim *cl, bool *found)
{
    *found = false;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        if (atomic_load(&j->stopping)) {
            pthread_mutex_unlock(&j->lock);
            return false;
        }
        int64_t now = time_mono_ms();
        if (!j->claiming && now >= j->idle_until_ms)
            break;
        struct timespec ts;
        int64_t wait = j->claiming ? j->cfg.poll_ms : j->idle_until_ms - now;
        deadline_in(&ts, wait > 0 ? wait : 1);
        pthread_cond_timedwait(&j->work, &j->lock, &ts);
    }
    j->claiming = true;
    pthread_mutex_unlock(&j->lock);
    struct sb_err err = {0};
    int rc = j->n_kinds
                 ? store_job_claim(j->cfg.store, holder, j->cfg.lease_ms, j->kinds_array, cl, found, &err)
                 : 0;
    if (rc)
        log_debug("job claim failed", "detail=\"%s\"", err.msg);
    pthread_mutex_lock(&j->lock);
    j->claiming = false;
    if (*found)
        pthread_cond_signal(&j->work); /* there may be more: another free worker looks */
    else
        j->idle_until_ms = time_mono_ms() + j->cfg.poll_ms;
    pthread_mutex_unlock(&j->lock);
    return true;
}

/* The data of the job.queued event of a new job `id` (with "id"), in *d. */
static int queued_data(struct jobs *j, const struct jobs_new *in, const char *id, json_t **d,
                       struct sb_err *err)
{
    *d = NULL;
    const struct jobs_kind *k = in && in->kind ? kind_find(j, in->kind) : NULL;
    if (!k)
        return sb_error(err, SB_EINVAL, "unknown job kind");
    if (in->args && !json_is_object(in->args))
        return sb_error(err, SB_EINVAL, "job args must be an object");
    char *text = in->args ? json_dumps(in->args, JSON_COMPACT) : NULL;
    size_t n = text ? strlen(text) : 0;
    free(text);
    if (n > MAX_ARGS_BYTES)
        return sb_error(err, SB_ETOOLARGE, "job args over %d bytes", MAX_ARGS_BYTES);
    json_t *by =
        json_pack("{s:s?, s:s?, s:s?}", "kind", in->actor.kind, "id", in->actor.id, "name", in->actor.name);
    json_t *args = in->args ? json_incref(in->args) : json_object();
    *d = json_pack("{s:s, s:s?, s:s?, s:s?, s:o, s:i, s:i, s:o, s:s}", "kind", k->kind, "target", in->target,
                   "node_id", in->node_id, "concurrency_key", in->concurrency_key, "args", args,
                   "max_attempts", k->max_attempts, "timeout_s", k->timeout_s, "created_by", by, "id", id);
    if (!*d)
        return sb_error(err, SB_EINVAL, "job fields must be UTF-8");
    return 0;
}

int jobs_enqueue(struct jobs *j, const struct jobs_new *in, json_t **job, struct sb_err *err)
{
    if (job)
        *job = NULL;
    char id[37];
    uuid_v4(id);
    json_t *d = NULL;
    int rc = queued_data(j, in, id, &d, err);
    if (rc)
        return rc;
    rc = append(j, id, "job.queued", d, &in->actor, err);
    if (rc)
        return rc;
    wake_one(j);
    return job ? store_job_get(j->cfg.store, id, job, err) : 0;
}

#define ENQUEUE_WITH_MAX 64

int jobs_enqueue_with(struct jobs *j, const struct event_new *lead, const struct jobs_new *ins, int n,
                      struct sb_err *err)
{
    if (n < 0 || n > ENQUEUE_WITH_MAX)
        return sb_error(err, SB_EINVAL, "at most %d jobs are queued with an event", ENQUEUE_WITH_MAX);
    struct event_new evs[ENQUEUE_WITH_MAX + 1];
    char streams[ENQUEUE_WITH_MAX][48];
    json_t *datas[ENQUEUE_WITH_MAX];
    evs[0] = *lead;
    int rc = 0, made = 0;
    for (; made < n && rc == 0; made++) {
        char id[37];
        uuid_v4(id);
        rc = queued_data(j, &ins[made], id, &datas[made], err);
        if (rc)
            break;
        snprintf(streams[made], sizeof streams[made], "job/%s", id);
        evs[made + 1] = (struct event_new){.stream = streams[made],
                                           .type = "job.queued",
                                           .data = datas[made],
                                           .actor = ins[made].actor,
                                           .outcome = "success"};
    }
    if (rc == 0)
        rc = store_append_all(j->cfg.store, evs, n + 1, NULL, err);
    for (int i = 0; i < made; i++)
        json_decref(datas[i]);
    if (rc == 0 && n > 0)
        wake_one(j);
    return rc;
}

int jobs_get(struct jobs *j, const char *id, json_t **job, struct sb_err *err)
{
    return store_job_get(j->cfg.store, id, job, err);
}

int jobs_list(struct jobs *j, const struct store_jobs_filter *f, json_t **out, struct sb_err *err)
{
    return store_jobs_list(j->cfg.store, f, out, err);
}

static void local_cancel(struct jobs *j, const char *id)
{
    pthread_mutex_lock(&j->run_lock);
    for (int i = 0; i < j->cfg.workers; i++)
        if (j->running && j->running[i] && strcmp(j->running[i]->id, id) == 0)
            atomic_store(&j->running[i]->cancel_asked, true);
    pthread_mutex_unlock(&j->run_lock);
}

int jobs_cancel(struct jobs *j, const char *id, const struct event_actor *actor, json_t **job,
                struct sb_err *err)
{
    *job = NULL;
    for (int tries = 0; tries < 5; tries++) {
        json_t *row = NULL;
        int rc = store_job_get(j->cfg.store, id, &row, err);
        if (rc)
            return rc;
        const char *state = json_string_value(json_object_get(row, "state"));
        json_t *node = json_object_get(row, "node_id");
        int attempt = (int)json_integer_value(json_object_get(row, "attempt"));
        bool asked = json_is_true(json_object_get(row, "cancel_requested"));
        if (strcmp(state, "cancelled") == 0 || (strcmp(state, "running") == 0 && asked)) {
            if (asked)
                local_cancel(j, id);
            *job = row;
            return 0;
        }
        if (!jobs_next_state(state, "cancelled")) {
            sb_error(err, SB_ECONFLICT, "the job already %s", state);
            json_decref(row);
            return SB_ECONFLICT;
        }
        bool queued = strcmp(state, "queued") == 0;
        json_t *d = queued ? json_pack("{s:i, s:s}", "attempt", attempt, "from", "queued") : json_object();
        if (json_is_string(node))
            json_object_set(d, "node_id", node);
        json_decref(row);
        rc = append(j, id, queued ? "job.cancelled" : "job.cancel_requested", d, actor, err);
        if (rc == SB_ECONFLICT)
            continue; /* its state changed meanwhile (claimed, finished): look again */
        if (rc)
            return rc;
        if (!queued)
            local_cancel(j, id);
        return store_job_get(j->cfg.store, id, job, err);
    }
    return sb_error(err, SB_ECONFLICT, "the job keeps changing state; try again");
}

/* ---- workers ----------------------------------------------------------------------- */

static void running_set(struct jobs *j, int slot, struct job_ctx *c)
{
    pthread_mutex_lock(&j->run_lock);
    j->running[slot] = c;
    pthread_mutex_unlock(&j->run_lock);
}

/* Records an attempt's outcome; the lease stays renewed meanwhile, and a
 * database outage is waited out (the lease lapses only if we stay unable to
 * renew, and then the job is someone else's). */
static void record(struct jobs *j, struct job_ctx *c, const char *type, json_t *d)
{
    if (c->node_id[0])
        json_object_set_new(d, "node_id", json_string(c->node_id));
    json_object_set_new(d, "attempt", json_integer(c->attempt));
    for (int tries = 0;; tries++) {
        struct sb_err err = {0};
        int rc = append(j, c->id, type, json_incref(d), NULL, &err);
        if (rc == 0 || rc != SB_EUNAVAIL || atomic_load(&c->lost) ||
            time_mono_ms() >= atomic_load(&c->lease_ok_ms) || tries > 100) {
            if (rc)
                log_warn("job outcome not recorded", "job=%s type=%s detail=\"%s\"", c->id, type, err.msg);
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    json_decref(d);
}

static void *worker_main(void *arg);

struct worker_arg {
    struct jobs *j;
    int slot;
};

static void *worker_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct jobs *j = wa->j;
    int slot = wa->slot;
    free(wa);
    while (!atomic_load(&j->stopping)) {
        struct store_job_claim cl;
        bool found = false;
        char holder[80];
        unsigned long long n = (unsigned long long)atomic_fetch_add(&j->claims, 1) + 1;
        snprintf(holder, sizeof holder, "%s#%llu", j->daemon_id, n);
        if (!claim_next(j, holder, &cl, &found))
            break;
        if (found) {
            const struct jobs_kind *k = kind_find(j, cl.kind);
            struct job_ctx c = {.j = j, .kind = k, .attempt = cl.attempt + 1};
            sb_strlcpy(c.id, cl.id, sizeof c.id);
            sb_strlcpy(c.node_id, cl.node_id, sizeof c.node_id);
            sb_strlcpy(c.holder, holder, sizeof c.holder);
            int64_t now = time_mono_ms();
            atomic_store(&c.lease_ok_ms, now + j->cfg.lease_ms * 4 / 5);
            c.deadline_ms = now + (int64_t)cl.timeout_s * 1000;
            running_set(j, slot, &c);
            if (cl.was_running && cl.cancel_requested) {
                c.attempt = cl.attempt;
                record(j, &c, "job.cancelled", json_pack("{s:s}", "from", "running"));
            } else if (c.attempt > cl.max_attempts) {
                c.attempt = cl.attempt;
                record(j, &c, "job.failed",
                       json_pack("{s:{s:s, s:s}}", "error", "code", "lease_lost", "message",
                                 "the daemon running it stopped and no attempts are left"));
            } else {
                json_t *sd = json_pack("{s:s, s:s, s:i, s:b}", "kind", cl.kind, "holder", holder, "attempt",
                                       c.attempt, "takeover", cl.was_running);
                if (c.node_id[0])
                    json_object_set_new(sd, "node_id", json_string(c.node_id));
                struct sb_err serr = {0};
                if (append(j, c.id, "job.started", sd, NULL, &serr) == 0) {
                    log_info("job started", "job=%s kind=%s attempt=%d", c.id, cl.kind, c.attempt);
                    json_error_t je;
                    json_t *args = json_loads(cl.args ? cl.args : "{}", 0, &je);
                    if (!args)
                        args = json_object();
                    json_t *result = NULL;
                    struct sb_err herr = {0};
                    int hrc = k->run(&c, args, &result, &herr);
                    json_decref(args);
                    /* The lease not surely ours any more (a freeze, the database
                     * away): ask before recording anything. */
                    if (!atomic_load(&c.lost) && time_mono_ms() >= atomic_load(&c.lease_ok_ms)) {
                        bool still = false, cancel = false;
                        struct sb_err lerr = {0};
                        if (store_job_renew(j->cfg.store, c.id, holder, j->cfg.lease_ms, &still, &cancel,
                                            &lerr) == 0 &&
                            !still)
                            atomic_store(&c.lost, true);
                    }
                    bool stopping = atomic_load(&j->stopping);
                    bool timed_out = time_mono_ms() >= c.deadline_ms;
                    if (atomic_load(&c.lost)) {
                        log_warn("job lease lost; outcome dropped", "job=%s attempt=%d", c.id, c.attempt);
                        json_decref(result);
                    } else if (hrc != 0 && stopping) {
                        /* Interrupted by our shutdown: hand it over at once. */
                        store_job_release(j->cfg.store, c.id, holder, &herr);
                        json_decref(result);
                    } else {
                        if (hrc != 0 && timed_out && !atomic_load(&c.cancel_asked)) {
                            hrc = SB_ETIMEOUT;
                            snprintf(herr.msg, sizeof herr.msg, "the attempt timed out after %d s",
                                     cl.timeout_s);
                        }
                        enum jobs_outcome o =
                            jobs_decide(hrc, c.attempt, cl.max_attempts, atomic_load(&c.cancel_asked));
                        if (o == JOBS_SUCCEEDED) {
                            record(j, &c, "job.succeeded",
                                   json_pack("{s:o}", "result", result ? result : json_null()));
                            result = NULL;
                        } else if (o == JOBS_CANCELLED) {
                            record(j, &c, "job.cancelled", json_pack("{s:s}", "from", "running"));
                        } else if (o == JOBS_RETRY) {
                            int64_t delay = jobs_backoff_ms(c.attempt, j->cfg.retry_base_ms, RETRY_CAP_MS);
                            char at[40];
                            time_format_rfc3339(time_now_us() + delay * 1000, at, sizeof at);
                            record(j, &c, "job.retrying",
                                   json_pack("{s:o, s:s, s:I}", "error", error_json(hrc, &herr), "run_at", at,
                                             "delay_ms", (json_int_t)delay));
                        } else {
                            record(j, &c, "job.failed", json_pack("{s:o}", "error", error_json(hrc, &herr)));
                        }
                        json_decref(result);
                        log_info("job attempt ended", "job=%s attempt=%d outcome=%d", c.id, c.attempt,
                                 (int)o);
                    }
                } else {
                    /* Cancelled or taken meanwhile: not ours to run. */
                    store_job_release(j->cfg.store, c.id, holder, &serr);
                }
            }
            running_set(j, slot, NULL);
            free(cl.args);
            continue; /* look for the next at once */
        }
    }
    return NULL;
}

/* ---- the renewer: job leases and duty leases ----------------------------------------- */

static void renew_jobs(struct jobs *j)
{
    /* Renewed under the lock so a slot's context cannot end meanwhile; a
     * worker finishing waits for at most one round. */
    pthread_mutex_lock(&j->run_lock);
    for (int i = 0; i < j->cfg.workers; i++) {
        struct job_ctx *c = j->running[i];
        if (!c || atomic_load(&c->lost))
            continue;
        int64_t t0 = time_mono_ms();
        bool held = false, cancel = false;
        struct sb_err err = {0};
        if (store_job_renew(j->cfg.store, c->id, c->holder, j->cfg.lease_ms, &held, &cancel, &err) != 0)
            continue; /* the lease_ok deadline runs out by itself */
        if (!held) {
            atomic_store(&c->lost, true);
            log_warn("job lease lost", "job=%s attempt=%d", c->id, c->attempt);
            continue;
        }
        atomic_store(&c->lease_ok_ms, t0 + j->cfg.lease_ms * 4 / 5);
        if (cancel)
            atomic_store(&c->cancel_asked, true);
    }
    pthread_mutex_unlock(&j->run_lock);
}

static void renew_duties(struct jobs *j)
{
    for (int i = 0; i < j->n_duties; i++) {
        struct duty *d = &j->duties[i];
        int64_t t0 = time_mono_ms();
        bool held = false;
        struct sb_err err = {0};
        if (store_duty_acquire(j->cfg.store, d->name, j->daemon_id, j->cfg.lease_ms, &held, &err) != 0)
            continue;
        int64_t before = atomic_load(&d->held_until_ms);
        if (held) {
            if (before <= t0)
                log_info("duty taken", "duty=%s", d->name);
            atomic_store(&d->held_until_ms, t0 + j->cfg.lease_ms * 4 / 5);
        } else {
            if (before > t0)
                log_info("duty lost", "duty=%s", d->name);
            atomic_store(&d->held_until_ms, 0);
        }
    }
}

static bool sleep_unless_stopping(struct jobs *j, int ms)
{
    pthread_mutex_lock(&j->lock);
    if (!atomic_load(&j->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&j->wake, &j->lock, &ts);
    }
    pthread_mutex_unlock(&j->lock);
    return !atomic_load(&j->stopping);
}

static void *renewer_main(void *arg)
{
    struct jobs *j = arg;
    int period = j->cfg.lease_ms / 4;
    do {
        renew_duties(j);
        renew_jobs(j);
    } while (sleep_unless_stopping(j, period));
    return NULL;
}

struct duty_arg {
    struct jobs *j;
    struct duty *d;
};

static void *duty_runner(void *arg)
{
    struct duty_arg *da = arg;
    struct jobs *j = da->j;
    struct duty *d = da->d;
    free(da);
    while (sleep_unless_stopping(j, d->d.interval_ms)) {
        if (atomic_load(&d->held_until_ms) > time_mono_ms())
            d->d.run(d->d.ctx);
    }
    return NULL;
}

int jobs_start(struct jobs *j, struct sb_err *err)
{
    struct buf b;
    buf_init(&b, 0);
    buf_putc(&b, '{');
    for (int i = 0; i < j->n_kinds; i++)
        buf_printf(&b, "%s%s", i ? "," : "", j->kinds[i].kind); /* names are [a-z0-9_.-] */
    buf_putc(&b, '}');
    j->kinds_array = buf_detach(&b, NULL);
    j->running = calloc((size_t)j->cfg.workers, sizeof *j->running);
    j->workers = calloc((size_t)j->cfg.workers, sizeof *j->workers);
    if (!j->running || !j->workers || !j->kinds_array)
        return sb_error(err, SB_ENOMEM, "out of memory");
    /* The renewer takes the duties at once (not here: a database that is
     * down at start must not hold the daemon's start-up). */
    if (pthread_create(&j->renewer, NULL, renewer_main, j) != 0)
        return sb_error(err, SB_EINTERNAL, "cannot start the jobs renewer");
    j->renewer_started = true;
    for (int i = 0; i < j->n_duties; i++) {
        if (!j->duties[i].d.run)
            continue;
        struct duty_arg *da = malloc(sizeof *da);
        if (!da)
            return sb_error(err, SB_ENOMEM, "out of memory");
        *da = (struct duty_arg){.j = j, .d = &j->duties[i]};
        if (pthread_create(&j->duties[i].runner, NULL, duty_runner, da) != 0) {
            free(da);
            return sb_error(err, SB_EINTERNAL, "cannot start a duty thread");
        }
        j->duties[i].has_runner = true;
    }
    for (int i = 0; i < j->cfg.workers; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            return sb_error(err, SB_ENOMEM, "out of memory");
        *wa = (struct worker_arg){.j = j, .slot = i};
        if (pthread_create(&j->workers[i], NULL, worker_main, wa) != 0) {
            free(wa);
            return sb_error(err, SB_EINTERNAL, "cannot start a jobs worker");
        }
        j->n_started = i + 1;
    }
    log_info("jobs started", "daemon=%s workers=%d kinds=%d duties=%d lease_ms=%d", j->daemon_id,
             j->cfg.workers, j->n_kinds, j->n_duties, j->cfg.lease_ms);
    return 0;
}

void jobs_stop(struct jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    atomic_store(&j->stopping, true);
    pthread_cond_broadcast(&j->wake);
    pthread_cond_broadcast(&j->work);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->n_started; i++)
        pthread_join(j->workers[i], NULL);
    j->n_started = 0;
    for (int i = 0; i < j->n_duties; i++)
        if (j->duties[i].has_runner) {
            pthread_join(j->duties[i].runner, NULL);
            j->duties[i].has_runner = false;
        }
    if (j->renewer_started) {
        pthread_join(j->renewer, NULL);
        j->renewer_started = false;
    }
    for (int i = 0; i < j->n_duties; i++) {
        struct sb_err err = {0};
        if (atomic_load(&j->duties[i].held_until_ms) > 0)
            store_duty_release(j->cfg.store, j->duties[i].name, j->daemon_id, &err);
        atomic_store(&j->duties[i].held_until_ms, 0);
    }
}

void jobs_free(struct jobs *j)
{
    if (!j)
        return;
    free(j->kinds_array);
    free(j->running);
    free(j->workers);
    pthread_mutex_destroy(&j->lock);
    pthread_mutex_destroy(&j->run_lock);
    pthread_cond_destroy(&j->wake);
    pthread_cond_destroy(&j->work);
    free(j);
}
