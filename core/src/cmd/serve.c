/*
 * serve: wires configuration, store, Redis and HTTP together and runs until
 * SIGINT or SIGTERM, then shuts down in reverse order so that no request is
 * cut off while a dependency it uses is being torn down.
 */
#include "cmd.h"

#include "../api/api.h"
#include "../metrics/metrics.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int wait_for_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    return sig;
}

int cmd_serve(const struct config *cfg)
{
    struct sb_err err = {0};
    struct app app;
    memset(&app, 0, sizeof app);
    app.cfg = cfg;
    app.started_us = time_now_us();
    int rc = 1;

    /* Block the stop signals in every thread; the main thread waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    raise_fd_limit();

    struct store_config sc = {.database_url = config_get(cfg, "database-url"),
                              .pool_size = (int)config_get_int(cfg, "db-pool-size"),
                              .acquire_timeout_ms = 5000};
    app.store = store_open(&sc, &err);
    if (!app.store) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        return 2;
    }
    app.redis = redis_open(config_get(cfg, "redis-url"), &err);
    if (!app.redis) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }

    /* Refuse to serve a schema this binary does not match. An unreachable
     * database is not fatal: the daemon serves 503 until it comes back. */
    enum store_schema_state state = STORE_SCHEMA_OK;
    if (store_check(app.store, &state, &err) == 0) {
        atomic_store(&app.db_up, 1);
        atomic_store(&app.schema_state, (int)state);
        if (state != STORE_SCHEMA_OK) {
            fprintf(stderr, "serverbox-core: refusing to serve: database schema is %s: %s%s\n",
                    store_schema_state_name(state), err.msg,
                    state == STORE_SCHEMA_UNMIGRATED ? " (run 'serverbox-core migrate')" : "");
            goto out;
        }
    } else {
        log_warn("database unreachable at start; serving 503 until it returns", "detail=\"%s\"", err.msg);
    }

    struct metrics_config mc = {.store = app.store,
                                .raw_days = (int)config_get_int(cfg, "metrics-raw-days"),
                                .rollup_days = (int)config_get_int(cfg, "metrics-rollup-days"),
                                .offline_intervals = 3};
    app.metrics = metrics_start(&mc, &err);
    if (!app.metrics) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }

    const char *const *proxies;
    size_t n_proxies = config_get_list(cfg, "trusted-proxy", &proxies);
    struct http_server_config hc = {
        .listen = config_get(cfg, "listen"),
        .routes = api_routes,
        .n_routes = api_n_routes,
        .app = &app,
        .max_body_bytes = (size_t)config_get_int(cfg, "max-body-bytes"),
        .workers = (int)config_get_int(cfg, "workers"),
        .mhd_threads = (int)config_get_int(cfg, "http-threads"),
        .connection_limit = (unsigned)config_get_int(cfg, "connection-limit"),
        .trusted_proxies = proxies,
        .n_trusted_proxies = n_proxies,
    };
    app.http = http_server_start(&hc, &err);
    if (!app.http) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    api_health_start(&app);
    log_info("listening", "url=http://%s port=%d", hc.listen, http_server_port(app.http));

    int sig = wait_for_signal();
    log_info("stopping", "signal=%d", sig);
    rc = 0;
    api_health_stop(&app);
out:
    http_server_stop(app.http);
    metrics_stop(app.metrics);
    redis_close(app.redis);
    store_close(app.store);
    return rc;
}
