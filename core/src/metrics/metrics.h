/*
 * metrics — the core side of node metrics that lives in memory: the latest
 * sample of every node and container (for /metrics and live views), node
 * presence (node.online / node.offline events when batches stop or resume),
 * and the background upkeep of the time-series tables (one-minute roll-ups,
 * partitions made ahead and dropped past retention).
 *
 * Threads: every function may be called from any thread; one background
 * thread (started by metrics_start) does the upkeep and the offline checks.
 */
#ifndef SB_METRICS_H
#define SB_METRICS_H

#include "../store/store.h"
#include "../util/util.h"

#include <jansson.h>

struct metrics;

struct metrics_config {
    struct store *store;
    int raw_days;          /* raw samples kept (days) */
    int rollup_days;       /* one-minute roll-ups kept (days) */
    int offline_intervals; /* missed intervals before node.offline (3) */
    /* Live hook, called with every node's newest sample as it arrives, on
     * the worker that stored the batch (serve.c: the SSE topic
     * metrics/node/<id>). node_id and sample are borrowed. NULL = none. */
    void (*publish)(void *ctx, const char *node_id, json_t *sample);
    void *publish_ctx;
    /* Roll-ups and partition upkeep run only while leader(ctx) is true
     * (serve: the "metrics-rollup" duty, one daemon of several). NULL = always. */
    bool (*leader)(void *ctx);
    void *leader_ctx;
};

struct metrics *metrics_start(const struct metrics_config *cfg, struct sb_err *err);
void metrics_stop(struct metrics *m);

/* Records the newest sample of a node's accepted batch (borrowed; copied),
 * and appends node.online when the node was offline or unknown. Called on
 * the worker thread that handled the batch. */
void metrics_record(struct metrics *m, const char *node_id, int64_t interval_ms, json_t *sample);
/* Notes the oldest sample time (ms) of a stored batch, so the next roll-up
 * reaches back to samples that arrived late from a collector's spool. */
void metrics_note_oldest(struct metrics *m, int64_t ts_ms);
/* The latest sample of a node (a new reference; NULL when none). */
json_t *metrics_latest(struct metrics *m, const char *node_id);
/* Appends the latest values of every node and container, Prometheus text. */
void metrics_prometheus(struct metrics *m, struct buf *out);

#endif
