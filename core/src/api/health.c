/*
 * Liveness, readiness and /metrics. Readiness is answered from memory: a
 * monitor thread checks the database (reachable and migrated) and Redis every
 * second, so /health/ready never blocks and a dead database shows within a
 * couple of seconds.
 */
#include "api.h"

#include "../alerts/alerts.h"
#include "../audit/audit.h"
#include "../jobs/jobs.h"

#include "../events/events.h"
#include "../metrics/metrics.h"
#include "../ssh/ssh.h"

#include <stdio.h>
#include <string.h>

#define CHECK_INTERVAL_MS 1000

void api_health_check_now(struct app *app)
{
    struct sb_err err = {0};
    enum store_schema_state state = STORE_SCHEMA_UNMIGRATED;
    int rc = store_check(app->store, &state, &err);
    int was = atomic_exchange(&app->db_up, rc == 0);
    if (was != (rc == 0))
        log_info(rc == 0 ? "database reachable" : "database unreachable", "detail=\"%s\"",
                 rc == 0 ? "ok" : err.msg);
    if (rc == 0)
        atomic_store(&app->schema_state, (int)state);
    int redis_ok = redis_ping(app->redis, NULL) == 0;
    int was_redis = atomic_exchange(&app->redis_up, redis_ok);
    if (redis_configured(app->redis) && was_redis != redis_ok)
        log_info(redis_ok ? "redis reachable" : "redis unreachable", "%s", "");
}

/* Signed checkpoints of the audit chain, every checkpoint_interval. */
static void checkpoint_tick(struct app *app)
{
    if (!app->signer || app->checkpoint_interval_ms <= 0 || !atomic_load(&app->db_up))
        return;
    /* With several daemons on one database, only the holder of the duty. */
    if (!jobs_duty_held(app->jobs, "audit-checkpoint")) {
        app->last_checkpoint_ms = 0; /* when it comes here, it checks at once */
        return;
    }
    int64_t now = time_mono_ms();
    if (app->last_checkpoint_ms && now - app->last_checkpoint_ms < app->checkpoint_interval_ms)
        return;
    app->last_checkpoint_ms = now;
    struct store_checkpoint cp;
    struct sb_err err = {0};
    if (api_audit_checkpoint(app, &cp, &err))
        log_warn("audit checkpoint failed", "detail=\"%s\"", err.msg);
}

static void *monitor_main(void *arg)
{
    struct app *app = arg;
    pthread_mutex_lock(&app->monitor_lock);
    while (!atomic_load(&app->stopping)) {
        pthread_mutex_unlock(&app->monitor_lock);
        api_health_check_now(app);
        checkpoint_tick(app);
        pthread_mutex_lock(&app->monitor_lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += CHECK_INTERVAL_MS / 1000;
        if (!atomic_load(&app->stopping))
            pthread_cond_timedwait(&app->monitor_cond, &app->monitor_lock, &ts);
    }
    pthread_mutex_unlock(&app->monitor_lock);
    return NULL;
}

int api_health_start(struct app *app)
{
    pthread_mutex_init(&app->monitor_lock, NULL);
    pthread_cond_init(&app->monitor_cond, NULL);
    return pthread_create(&app->monitor, NULL, monitor_main, app) ? SB_EINTERNAL : 0;
}

void api_health_stop(struct app *app)
{
    pthread_mutex_lock(&app->monitor_lock);
    atomic_store(&app->stopping, true);
    pthread_cond_signal(&app->monitor_cond);
    pthread_mutex_unlock(&app->monitor_lock);
    pthread_join(app->monitor, NULL);
    pthread_mutex_destroy(&app->monitor_lock);
    pthread_cond_destroy(&app->monitor_cond);
}

void api_health_live(struct http_request *req)
{
    static const char body[] = "{\"status\":\"live\"}";
    http_reply_text(req, 200, "application/json", body, sizeof body - 1);
}

void api_health_ready(struct http_request *req)
{
    struct app *app = req->app;
    bool db_up = atomic_load(&app->db_up);
    enum store_schema_state schema = (enum store_schema_state)atomic_load(&app->schema_state);
    bool redis_cfg = redis_configured(app->redis), redis_up = atomic_load(&app->redis_up);
    bool ready = db_up && schema == STORE_SCHEMA_OK;

    json_t *db = json_pack("{s:s, s:s}", "state", db_up ? "up" : "down", "schema",
                           db_up ? store_schema_state_name(schema) : "unknown");
    /* Redis only speeds things up and spreads them across daemons: without it
     * the daemon still serves, so it is "degraded", not a reason for 503. */
    json_t *redis = json_pack("{s:s}", "state", !redis_cfg ? "not_configured" : redis_up ? "up" : "degraded");
    http_reply_json(req, ready ? 200 : 503,
                    json_pack("{s:s, s:{s:o, s:o}}", "status", ready ? "ready" : "not_ready", "dependencies",
                              "database", db, "redis", redis));
}

void api_openapi(struct http_request *req)
{
    http_reply_text(req, 200, "application/json", api_openapi_json, api_openapi_json_len);
}

void api_metrics(struct http_request *req)
{
    struct app *app = req->app;
    struct http_stats hs;
    struct store_stats ss;
    http_server_stats(app->http, &hs);
    store_get_stats(app->store, &ss);
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_printf(&b,
               "# HELP serverbox_http_requests_total HTTP requests received.\n"
               "# TYPE serverbox_http_requests_total counter\n"
               "serverbox_http_requests_total %llu\n"
               "# HELP serverbox_http_responses_5xx_total HTTP responses with a 5xx status.\n"
               "# TYPE serverbox_http_responses_5xx_total counter\n"
               "serverbox_http_responses_5xx_total %llu\n"
               "# HELP serverbox_http_in_flight Requests being handled now.\n"
               "# TYPE serverbox_http_in_flight gauge\n"
               "serverbox_http_in_flight %llu\n"
               "# HELP serverbox_events_appended_total Events this daemon appended to the log.\n"
               "# TYPE serverbox_events_appended_total counter\n"
               "serverbox_events_appended_total %llu\n"
               "# HELP serverbox_event_groups_committed_total Group-commit transactions.\n"
               "# TYPE serverbox_event_groups_committed_total counter\n"
               "serverbox_event_groups_committed_total %llu\n"
               "# HELP serverbox_db_pool_open Open database connections in the pool.\n"
               "# TYPE serverbox_db_pool_open gauge\n"
               "serverbox_db_pool_open %llu\n"
               "# HELP serverbox_db_pool_busy Pool connections in use.\n"
               "# TYPE serverbox_db_pool_busy gauge\n"
               "serverbox_db_pool_busy %llu\n"
               "# HELP serverbox_up_database 1 when the database is reachable and migrated.\n"
               "# TYPE serverbox_up_database gauge\n"
               "serverbox_up_database %d\n",
               (unsigned long long)hs.requests, (unsigned long long)hs.responses_5xx,
               (unsigned long long)hs.in_flight, (unsigned long long)ss.events_appended,
               (unsigned long long)ss.groups_committed, (unsigned long long)ss.pool_open,
               (unsigned long long)ss.pool_busy,
               atomic_load(&app->db_up) && atomic_load(&app->schema_state) == STORE_SCHEMA_OK);
    buf_printf(
        &b,
        "# HELP serverbox_http_header_timeouts_total Connections cut for not sending headers in time.\n"
        "# TYPE serverbox_http_header_timeouts_total counter\n"
        "serverbox_http_header_timeouts_total %llu\n"
        "# HELP serverbox_http_refused_total Requests refused before routing (framing, Host).\n"
        "# TYPE serverbox_http_refused_total counter\n"
        "serverbox_http_refused_total %llu\n",
        (unsigned long long)hs.header_timeouts, (unsigned long long)hs.refused);
    if (app->audit)
        audit_prometheus(app->audit, &b);
    if (app->events) {
        struct events_stats es;
        events_get_stats(app->events, &es);
        buf_printf(&b,
                   "# HELP serverbox_events_streams Open live-event streams.\n"
                   "# TYPE serverbox_events_streams gauge\n"
                   "serverbox_events_streams %llu\n"
                   "# HELP serverbox_events_published_total Events and ephemeral messages fanned out.\n"
                   "# TYPE serverbox_events_published_total counter\n"
                   "serverbox_events_published_total %llu\n"
                   "# HELP serverbox_events_resyncs_total Streams ended with resync (slow or long replay).\n"
                   "# TYPE serverbox_events_resyncs_total counter\n"
                   "serverbox_events_resyncs_total %llu\n",
                   (unsigned long long)es.subscribers, (unsigned long long)es.published,
                   (unsigned long long)es.resyncs);
    }
    if (app->ssh_pool) {
        struct ssh_pool_stats ps;
        ssh_pool_stats(app->ssh_pool, NULL, &ps);
        buf_printf(&b,
                   "# HELP serverbox_ssh_pool_open SSH sessions open to all nodes.\n"
                   "# TYPE serverbox_ssh_pool_open gauge\n"
                   "serverbox_ssh_pool_open %llu\n"
                   "# HELP serverbox_ssh_pool_busy SSH sessions in use.\n"
                   "# TYPE serverbox_ssh_pool_busy gauge\n"
                   "serverbox_ssh_pool_busy %llu\n"
                   "# HELP serverbox_ssh_pool_failures_total Failed SSH connections.\n"
                   "# TYPE serverbox_ssh_pool_failures_total counter\n"
                   "serverbox_ssh_pool_failures_total %llu\n",
                   (unsigned long long)ps.open, (unsigned long long)ps.busy, (unsigned long long)ps.failures);
    }
    metrics_prometheus(app->metrics, &b);
    jobs_prometheus(app->jobs, &b);
    alerts_prometheus(app->alerts, &b);
    http_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    buf_release(&b);
}
