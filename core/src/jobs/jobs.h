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
/* Appends `lead` (the caller's event) and the job.queued of each of ins[0..n-1]
 * (n at most 64) in one transaction: the event and its jobs commit together
 * or not at all (a projection refusing `lead` queues no job). */
int jobs_enqueue_with(struct jobs *j, const struct event_new *lead, const struct jobs_new *ins, int n,
                      struct sb_err *err);

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
 * interval_ms on the holder only; with run NULL the duty is a lease only and
 * its owner asks jobs_duty_held before each round (the node checker, the
 * metrics upkeep, the checkpoint tick do). */
struct jobs_duty {
    const char *name; /* "node-checks", "metrics-rollup", "audit-checkpoint" … */
    int interval_ms;
    void (*run)(void *ctx);
    void *ctx;
};
int jobs_duty_register(struct jobs *j, const struct jobs_duty *d, struct sb_err *err);
/* Whether this daemon holds the duty's lease now. */
bool jobs_duty_held(struct jobs *j, const char *name);

/* ---- the daemon's side (serve, the API; not part of the handlers' view) -- */

struct events_bus;
struct jobs_config {
    struct store *store;
    struct events_bus *events; /* progress and log lines; may be NULL */
    int workers;               /* attempts run at once by this daemon (each a thread); default 8 */
    int lease_ms;              /* job and duty leases; renewed every lease_ms / 3; default 5000 */
    int poll_ms;               /* how often idle workers look for due jobs; default 500 */
    int retry_base_ms;         /* first retry's delay, doubled each attempt; default 1000 */
    int retention_days;        /* finished jobs older than this are pruned ("job-prune" duty); 0 = kept */
    int prune_interval_ms;     /* how often the duty's holder prunes; default 1 hour */
};
/* Nothing runs until jobs_start. Returns NULL only for bad configuration. */
struct jobs *jobs_open(const struct jobs_config *cfg, struct sb_err *err);
/* Starts the workers, the lease renewer and the duties. Kinds and duties are
 * registered before. */
int jobs_start(struct jobs *j, struct sb_err *err);
/* Asks handlers to stop (job_cancelled turns true), waits for them, hands
 * unfinished jobs over (their leases lapse now, another daemon takes them)
 * and gives up the duties. */
void jobs_stop(struct jobs *j);
void jobs_free(struct jobs *j); /* after jobs_stop; NULL is a no-op */
/* This daemon's holder id (a fresh uuid per process). */
const char *jobs_daemon_id(const struct jobs *j);

/* GET /api/v1/jobs/{id}: *job is the caller's. SB_ENOTFOUND. */
int jobs_get(struct jobs *j, const char *id, json_t **job, struct sb_err *err);
/* GET /api/v1/jobs: newest first, *out a new array (caller decrefs). */
int jobs_list(struct jobs *j, const struct store_jobs_filter *f, json_t **out, struct sb_err *err);
/* Cancels a queued job at once (job.cancelled), or asks a running one to stop
 * (job.cancel_requested; its handler sees job_cancelled and the worker
 * records job.cancelled). A cancelled job is answered as it is; a finished
 * one is SB_ECONFLICT. *job (the caller's) is the job afterwards. */
int jobs_cancel(struct jobs *j, const char *id, const struct event_actor *actor, json_t **job,
                struct sb_err *err);

/* Prometheus lines: serverbox_jobs_running, serverbox_duty_held{duty=…}
 * (1 on the daemon holding it). NULL j appends nothing. */
void jobs_prometheus(struct jobs *j, struct buf *out);

/* The kinds the black-box tests use (testkinds.c); serve registers them
 * only with --job-test-kinds 1. */
int jobs_register_test_kinds(struct jobs *j, struct sb_err *err);

/* ---- pure parts (unit-tested) ---------------------------------------------- */

/* Delay before attempt `attempt + 1` after attempt `attempt` (1, 2, …) failed:
 * base * 2^(attempt-1), at most cap_ms. */
int64_t jobs_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);
enum jobs_outcome { JOBS_SUCCEEDED, JOBS_RETRY, JOBS_FAILED, JOBS_CANCELLED };
/* What the worker records after a handler returned rc for `attempt`. */
enum jobs_outcome jobs_decide(int rc, int attempt, int max_attempts, bool cancel_asked);
/* The state after `event` (a job.* type without "job.") in `state`, or NULL
 * when the event does not apply there (the projection refuses it). */
const char *jobs_next_state(const char *state, const char *event);
/* Whether s is a valid kind name ([a-z0-9_.-], 1..63). */
bool jobs_kind_valid(const char *s);
#endif
