#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROLLUP_EVERY_MS   60000
#define ROLLUP_WINDOW_MS  (15 * 60 * 1000) /* late batches from a spool are rolled up again */
#define MAINTAIN_EVERY_MS (3600 * 1000)

struct node_state {
    char id[64];
    int64_t last_ms; /* monotonic time of the last batch */
    int64_t interval_ms;
    bool online;
    json_t *latest;
};

struct metrics {
    struct metrics_config cfg;
    pthread_mutex_t lock;
    struct node_state *nodes;
    size_t n, cap;
    pthread_t thread;
    pthread_cond_t cond;
    bool stopping;
    int64_t oldest_late_ms; /* oldest sample stored since the last roll-up (0 = none) */
};

static struct node_state *find(struct metrics *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->nodes[i].id, id) == 0)
            return &m->nodes[i];
    return NULL;
}

/* Room for one more node; called with the lock held. */
static int grow(struct metrics *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct node_state *g = realloc(m->nodes, cap * sizeof *g);
    if (!g)
        return SB_ENOMEM;
    m->nodes = g;
    m->cap = cap;
    return 0;
}

static void presence_event(struct metrics *m, const char *node_id, const char *type, int64_t interval_ms)
{
    char stream[96];
    snprintf(stream, sizeof stream, "node/%s", node_id);
    /* "id" and "source" let the nodes projection set agent_status (the SSH
     * health check's events, without "source", set status). */
    json_t *data = json_pack("{s:s, s:s, s:s, s:I}", "id", node_id, "node_id", node_id, "source", "collector",
                             "interval_ms", (json_int_t)interval_ms);
    if (strcmp(type, "node.offline") == 0)
        json_object_set_new(data, "reason", json_string("the collector missed three intervals"));
    struct event_new ev = {.stream = stream,
                           .type = type,
                           .data = data,
                           .actor = {.kind = "system", .name = "metrics"},
                           .outcome = "success"};
    struct sb_err err = {0};
    int64_t seq;
    if (store_append(m->cfg.store, &ev, &seq, &err))
        log_warn("presence event not recorded", "node=%s type=%s detail=\"%s\"", node_id, type, err.msg);
    json_decref(data);
}

void metrics_record(struct metrics *m, const char *node_id, int64_t interval_ms, json_t *sample)
{
    if (!m)
        return;
    json_t *copy = sample ? json_deep_copy(sample) : NULL;
    bool came_online = false;
    pthread_mutex_lock(&m->lock);
    struct node_state *n = find(m, node_id);
    if (!n) {
        /* First batch of this node since start: the projection says whether
         * its collector was reporting (a query: not under the lock). */
        pthread_mutex_unlock(&m->lock);
        bool was_online = false;
        struct sb_err err = {0};
        if (store_node_agent_online(m->cfg.store, node_id, &was_online, &err))
            was_online = false;
        pthread_mutex_lock(&m->lock);
        n = find(m, node_id);
        if (!n) {
            if (m->n == m->cap && grow(m)) {
                pthread_mutex_unlock(&m->lock);
                json_decref(copy);
                return;
            }
            n = &m->nodes[m->n++];
            memset(n, 0, sizeof *n);
            sb_strlcpy(n->id, node_id, sizeof n->id);
            n->online = was_online;
        }
    }
    n->last_ms = time_mono_ms();
    n->interval_ms = interval_ms > 0 ? interval_ms : 5000;
    if (copy) {
        json_decref(n->latest);
        n->latest = copy;
        json_incref(copy); /* a batch of the same node may replace it meanwhile */
    }
    if (!n->online) {
        n->online = true;
        came_online = true;
    }
    pthread_mutex_unlock(&m->lock);

    if (came_online)
        presence_event(m, node_id, "node.online", interval_ms);
    if (copy && m->cfg.publish)
        m->cfg.publish(m->cfg.publish_ctx, node_id, copy);
    json_decref(copy);
}

void metrics_note_oldest(struct metrics *m, int64_t ts_ms)
{
    if (!m || ts_ms <= 0)
        return;
    pthread_mutex_lock(&m->lock);
    if (!m->oldest_late_ms || ts_ms < m->oldest_late_ms)
        m->oldest_late_ms = ts_ms;
    pthread_mutex_unlock(&m->lock);
}

json_t *metrics_latest(struct metrics *m, const char *node_id)
{
    if (!m)
        return NULL;
    json_t *r = NULL;
    pthread_mutex_lock(&m->lock);
    struct node_state *n = find(m, node_id);
    if (n && n->latest)
        r = json_incref(n->latest);
    pthread_mutex_unlock(&m->lock);
    return r;
}

/* Prometheus label values escape backslash, double quote and newline. */
static void put_label(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_putc(b, '\\');
        if (*s == '\n') {
            buf_puts(b, "\\n");
            continue;
        }
        buf_putc(b, *s);
    }
}

struct prom_metric {
    const char *name, *help, *path[2];
};

static bool number_at(json_t *o, const char *const path[2], double *out)
{
    json_t *v = json_object_get(o, path[0]);
    if (path[1])
        v = json_object_get(v, path[1]);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return isfinite(*out);
}

void metrics_prometheus(struct metrics *m, struct buf *out)
{
    static const struct prom_metric host[] = {
        {"serverbox_node_cpu_percent", "CPU busy, percent of all cores.", {"cpu", "total"}},
        {"serverbox_node_memory_total_bytes", "Memory installed.", {"mem", "total"}},
        {"serverbox_node_memory_used_bytes", "Memory in use (total - available).", {"mem", "used"}},
        {"serverbox_node_swap_total_bytes", "Swap configured.", {"swap", "total"}},
        {"serverbox_node_swap_used_bytes", "Swap in use.", {"swap", "used"}},
        {"serverbox_node_load1", "Load average over one minute.", {"load1", NULL}},
        {"serverbox_node_procs", "Processes.", {"procs", NULL}},
        {"serverbox_node_uptime_seconds", "Seconds since boot.", {"uptime", NULL}},
        {"serverbox_node_disk_used_bytes", "Bytes used on real filesystems.", {"disk_total", "used"}},
        {"serverbox_node_disk_total_bytes", "Size of real filesystems.", {"disk_total", "total"}},
        {"serverbox_node_network_receive_bytes_per_second",
         "Bytes received per second, all interfaces.",
         {"net_total", "rx_bps"}},
        {"serverbox_node_network_transmit_bytes_per_second",
         "Bytes sent per second, all interfaces.",
         {"net_total", "tx_bps"}},
    };
    static const struct prom_metric cont[] = {
        {"serverbox_container_cpu_percent", "Container CPU, percent of one core.", {"cpu", NULL}},
        {"serverbox_container_memory_used_bytes", "Container memory in use.", {"mem", NULL}},
        {"serverbox_container_network_receive_bytes_per_second",
         "Container bytes received per second.",
         {"net_rx_bps", NULL}},
        {"serverbox_container_network_transmit_bytes_per_second",
         "Container bytes sent per second.",
         {"net_tx_bps", NULL}},
    };
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    buf_puts(out, "# HELP serverbox_node_up 1 while the node's collector reports, 0 after three missed "
                  "intervals.\n# TYPE serverbox_node_up gauge\n");
    for (size_t i = 0; i < m->n; i++) {
        buf_puts(out, "serverbox_node_up{node=\"");
        put_label(out, m->nodes[i].id);
        buf_printf(out, "\"} %d\n", m->nodes[i].online ? 1 : 0);
    }
    for (size_t k = 0; k < sizeof host / sizeof host[0]; k++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", host[k].name, host[k].help, host[k].name);
        for (size_t i = 0; i < m->n; i++) {
            double v;
            if (!m->nodes[i].latest || !number_at(m->nodes[i].latest, host[k].path, &v))
                continue;
            buf_printf(out, "%s{node=\"", host[k].name);
            put_label(out, m->nodes[i].id);
            buf_printf(out, "\"} %.17g\n", v);
        }
    }
    for (size_t k = 0; k < sizeof cont / sizeof cont[0]; k++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", cont[k].name, cont[k].help, cont[k].name);
        for (size_t i = 0; i < m->n; i++) {
            json_t *cs = json_object_get(m->nodes[i].latest, "containers");
            size_t j;
            json_t *c;
            json_array_foreach(cs, j, c)
            {
                double v;
                const char *id = json_string_value(json_object_get(c, "id"));
                if (!id || !number_at(c, cont[k].path, &v))
                    continue;
                buf_printf(out, "%s{node=\"", cont[k].name);
                put_label(out, m->nodes[i].id);
                buf_puts(out, "\",container=\"");
                put_label(out, id);
                buf_puts(out, "\",name=\"");
                put_label(out, json_string_value(json_object_get(c, "name")));
                buf_printf(out, "\"} %.17g\n", v);
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
}

static void check_offline(struct metrics *m)
{
    char gone[64][64];
    int64_t gone_iv[64];
    size_t n_gone = 0;
    int64_t now = time_mono_ms();
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n && n_gone < 64; i++) {
        struct node_state *n = &m->nodes[i];
        if (n->online && now - n->last_ms > (int64_t)m->cfg.offline_intervals * n->interval_ms) {
            n->online = false;
            sb_strlcpy(gone[n_gone], n->id, sizeof gone[0]);
            gone_iv[n_gone++] = n->interval_ms;
        }
    }
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n_gone; i++)
        presence_event(m, gone[i], "node.offline", gone_iv[i]);
}

static void upkeep(struct metrics *m, bool maintain, int64_t rollup_since_ms)
{
    struct sb_err err = {0};
    if (maintain) {
        int dropped = 0;
        if (store_metrics_maintain(m->cfg.store, m->cfg.raw_days, m->cfg.rollup_days, &dropped, &err))
            log_warn("metrics partitions not maintained", "detail=\"%s\"", err.msg);
        else if (dropped)
            log_info("metrics partitions dropped", "count=%d", dropped);
    }
    if (rollup_since_ms && store_metrics_rollup(m->cfg.store, rollup_since_ms, &err))
        log_warn("metrics roll-up failed", "detail=\"%s\"", err.msg);
}

/* A node the log says is online starts with a full grace period: if it
 * never reports again, it goes offline like any other. */
static void seed_online(void *arg, const char *node_id, int64_t interval_ms)
{
    struct metrics *m = arg;
    pthread_mutex_lock(&m->lock);
    if (!find(m, node_id) && (m->n < m->cap || grow(m) == 0)) {
        struct node_state *n = &m->nodes[m->n++];
        memset(n, 0, sizeof *n);
        sb_strlcpy(n->id, node_id, sizeof n->id);
        n->online = true;
        n->interval_ms = interval_ms > 0 ? interval_ms : 5000;
        n->last_ms = time_mono_ms();
    }
    pthread_mutex_unlock(&m->lock);
}

static void *metrics_main(void *arg)
{
    struct metrics *m = arg;
    struct sb_err err = {0};
    if (store_nodes_agent_online(m->cfg.store, seed_online, m, &err))
        log_warn("node presence not loaded", "detail=\"%s\"", err.msg);
    int64_t next_rollup = time_mono_ms() + ROLLUP_EVERY_MS,
            next_maintain = time_mono_ms() + MAINTAIN_EVERY_MS;
    bool caught_up = false; /* the start-up upkeep, once leader */
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
        if (m->stopping)
            break;
        pthread_mutex_unlock(&m->lock);
        check_offline(m);
        if (m->cfg.leader && !m->cfg.leader(m->cfg.leader_ctx)) {
            caught_up = false; /* another daemon does the upkeep */
            pthread_mutex_lock(&m->lock);
            continue;
        }
        if (!caught_up) {
            /* Newly leader (or just started): reach back two hours. */
            caught_up = true;
            upkeep(m, true, time_now_us() / 1000 - 2 * 3600 * 1000);
            next_rollup = time_mono_ms() + ROLLUP_EVERY_MS;
            next_maintain = time_mono_ms() + MAINTAIN_EVERY_MS;
        }
        int64_t now = time_mono_ms();
        bool maintain = now >= next_maintain, rollup = now >= next_rollup;
        if (maintain)
            next_maintain = now + MAINTAIN_EVERY_MS;
        if (rollup)
            next_rollup = now + ROLLUP_EVERY_MS;
        if (maintain || rollup) {
            int64_t since = time_now_us() / 1000 - ROLLUP_WINDOW_MS;
            if (rollup) {
                pthread_mutex_lock(&m->lock);
                if (m->oldest_late_ms && m->oldest_late_ms < since)
                    since = m->oldest_late_ms;
                m->oldest_late_ms = 0;
                pthread_mutex_unlock(&m->lock);
            }
            upkeep(m, maintain, rollup ? since : 0);
        }
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

struct metrics *metrics_start(const struct metrics_config *cfg, struct sb_err *err)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    if (m->cfg.offline_intervals <= 0)
        m->cfg.offline_intervals = 3;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    if (pthread_create(&m->thread, NULL, metrics_main, m)) {
        pthread_mutex_destroy(&m->lock);
        pthread_cond_destroy(&m->cond);
        free(m);
        sb_error(err, SB_EINTERNAL, "cannot start the metrics thread");
        return NULL;
    }
    return m;
}

void metrics_stop(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    for (size_t i = 0; i < m->n; i++)
        json_decref(m->nodes[i].latest);
    free(m->nodes);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    free(m);
}
