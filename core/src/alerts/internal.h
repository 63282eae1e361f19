/*
 * Private to alerts/: the service's state, shared by service.c (CRUD, the
 * /metrics figure), eval.c (the duty) and notify.c (the delivery jobs).
 */
#ifndef SB_ALERTS_INTERNAL_H
#define SB_ALERTS_INTERNAL_H

#include "alerts.h"

#include "../jobs/jobs.h"

#include <pthread.h>
#include <stdatomic.h>

struct alerts {
    struct alerts_config cfg;
    pthread_mutex_t eval_lock; /* one evaluation round at a time in this daemon */
    int64_t last_chain_check_ms;
    bool chain_broken;      /* the last verification's outcome */
    bool chain_checked;     /* there was one */
    atomic_llong firing[3]; /* open alerts per severity: info, warning, critical */
    pthread_t counter;      /* refreshes `firing` for /metrics */
    bool counter_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
};

/* Appends an event as the system actor "alerts". */
int alerts_append(struct alerts *a, const char *stream, const char *type, json_t *data, struct sb_err *err);
/* Appends an alert transition (`type` on `stream`, as the system actor
 * "alerts") together with one "notification" delivery job per channel of
 * the rule (every enabled channel when the rule names none; rule NULL: no
 * job) for `alert` (its id and node_id), in one transaction: both or
 * neither. *queued is the number of jobs. */
int alerts_transition(struct alerts *a, const char *stream, const char *type, json_t *data, json_t *rule,
                      json_t *alert, const char *notification, int *queued, struct sb_err *err);
/* The alert.deliver job handler (notify.c). */
int alerts_deliver_job(struct job_ctx *c, json_t *args, json_t **result, struct sb_err *err);
/* A channel's secrets, opened (an empty object when none). */
int alerts_channel_secrets(struct alerts *a, const char *id, json_t **secret, struct sb_err *err);
/* Makes the default rules unless a rule was ever recorded (eval.c). Two
 * daemons doing it at once make one set: rule names are unique. */
void alerts_seed_defaults(struct alerts *a);
/* The duty's round (eval.c). */
void alerts_eval_run(void *ctx);

#endif
