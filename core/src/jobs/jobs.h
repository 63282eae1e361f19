/*
 * jobs — durable long-running work (contract; the jobs helper implements it,
 * other subsystems code against it; it may be extended, not broken).
 *
 * A job is a row in PostgreSQL claimed with FOR UPDATE SKIP LOCKED under a
 * lease that its daemon renews; a job whose lease lapses is taken over by
 * another daemon and is never run twice at once. State changes
 * (job.queued/started/succeeded/failed/cancelled, stream "job/<id>") are
 * events. Progress goes out on the ephemeral topic "job/<id>".
 *
 * Job args are stored in the jobs table and in the job.queued event: they
 * must never hold a secret (name the stack revision / app / channel id and
 * let the handler load sealed secrets itself).
 */
#ifndef SB_JOBS_H
#define SB_JOBS_H

#include "../store/store.h"
#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>

struct jobs;
struct job_ctx; /* one running attempt, handed to the handler */

/* Outcome of a handler: 0 = succeeded; SB_E* with err filled = failed
 * (retried with backoff while attempts remain and the code is SB_EUNAVAIL or
 * SB_ETIMEOUT; any other code fails at once). *result (may stay NULL) is the
 * handler's answer, stolen, stored on the job and shown in GET /jobs/{id}. */
typedef int (*jobs_handler_fn)(struct job_ctx *ctx, json_t *args, json_t **result, struct sb_err *err);

struct jobs_kind {
    const char *kind; /* "container.stop", "stack.deploy" … */
    jobs_handler_fn run;
    void *ctx;        /* given back by job_kind_ctx */
    int max_attempts; /* default 3 when 0 */
    int timeout_s;    /* the attempt is cancelled after this; 0 = 3600 */
};

/* ---- lifecycle (stacks branch stand-in; the jobs branch owns the real
 * one: durable rows, leases, takeover) ---------------------------------- */
struct events_bus;
struct jobs_config {
    struct store *store;
    struct events_bus *events; /* progress on job/<id>; may be NULL */
    int workers;               /* 0 = 2 */
};
struct jobs *jobs_open(const struct jobs_config *cfg, struct sb_err *err);
int jobs_start(struct jobs *j, struct sb_err *err);
/* Asks running handlers to stop (job_cancelled), waits for them, frees. */
void jobs_close(struct jobs *j);
/* The job as GET /api/v1/jobs/{id} shows it (*job: caller decrefs);
 * SB_ENOTFOUND for an unknown id. */
int jobs_get(struct jobs *j, const char *id, json_t **job, struct sb_err *err);

/* Registers a kind before jobs_start (from serve). */
int jobs_register(struct jobs *j, const struct jobs_kind *k, struct sb_err *err);

struct jobs_new {
    const char *kind;
    const char *target;          /* "node/<id>", "stack/<id>" … (for filters and scope) */
    const char *node_id;         /* the node it acts on, for label scoping; may be NULL */
    const char *concurrency_key; /* at most one running job per key ("stack/<id>"); NULL = none */
    json_t *args;                /* borrowed object; no secrets */
    struct event_actor actor;    /* who asked */
};
/* Appends job.queued and the row in one transaction. *job (caller decrefs)
 * is the job as GET /api/v1/jobs/{id} shows it; answer 202 {"job": *job}. */
int jobs_enqueue(struct jobs *j, const struct jobs_new *in, json_t **job, struct sb_err *err);

/* Inside a handler (on a jobs worker thread). */
const char *job_id(const struct job_ctx *c);
void *job_kind_ctx(const struct job_ctx *c);
int job_attempt(const struct job_ctx *c);                            /* 1, 2, … */
void job_progress(struct job_ctx *c, int percent, const char *step); /* on job/<id>; percent -1 = unknown */
void job_log(struct job_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool job_cancelled(const struct job_ctx *c); /* cancel asked or timeout: stop soon */

/* Singleton duties: with N daemons on one database each duty runs on
 * exactly one (a lease row renewed by its holder), and moves to another
 * within a few seconds when that one dies. `run` is called every
 * interval_ms on the holder only. */
struct jobs_duty {
    const char *name; /* "node-checks", "metrics-rollup", "audit-checkpoint" … */
    int interval_ms;
    void (*run)(void *ctx);
    void *ctx;
};
int jobs_duty_register(struct jobs *j, const struct jobs_duty *d, struct sb_err *err);
/* Whether this daemon holds the duty's lease now. */
bool jobs_duty_held(struct jobs *j, const char *name);
#endif
