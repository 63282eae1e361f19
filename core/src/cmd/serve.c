/*
 * serve: wires configuration, store, Redis and HTTP together and runs until
 * SIGINT or SIGTERM, then shuts down in reverse order so that no request is
 * cut off while a dependency it uses is being torn down.
 */
#include "cmd.h"

#include "../alerts/alerts.h"
#include "../api/api.h"
#include "../audit/audit.h"
#include "../auth/auth.h"
#include "../static/static.h"
#include "../docker/docker.h"
#include "../events/events.h"
#include "../jobs/jobs.h"
#include "../metrics/metrics.h"
#include "../nodes/nodes.h"
#include "../oidc/oidc.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The stop signals, and SIGHUP (reload the TLS certificate). */
static void serve_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

static void log_tls(const struct http_server *http, const char *msg)
{
    char fp[65], spki[65];
    int64_t not_after;
    http_server_tls_describe(http, fp, sizeof fp, spki, sizeof spki, &not_after);
    char when[32] = "";
    time_format_rfc3339(not_after * 1000000, when, sizeof when);
    log_info(msg, "sha256=%s spki_sha256=%s not_after=%s", fp, spki, when);
}

/* Waits for SIGINT or SIGTERM; a SIGHUP meanwhile reloads the certificate. */
static int wait_for_signal(struct http_server *http)
{
    sigset_t set;
    serve_signals(&set);
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig != SIGHUP)
            return sig;
        struct sb_err err = {0};
        if (!http_server_tls(http))
            log_info("SIGHUP: no TLS certificate to reload", "%s", "");
        else if (http_server_reload_tls(http, &err))
            log_error("TLS certificate not reloaded; the previous one is still served", "detail=\"%s\"",
                      err.msg);
        else
            log_tls(http, "TLS certificate reloaded");
    }
}

/* Singleton duties (jobs/README.md): with several daemons on one database
 * each runs on the one daemon holding its lease. */
static const char *const duties[] = {"node-checks", "metrics-rollup", "audit-checkpoint",
                                     "node-docker-events"};

static bool holds_metrics_rollup(void *ctx)
{
    return jobs_duty_held(ctx, "metrics-rollup");
}

static bool holds_node_docker_events(void *ctx)
{
    return jobs_duty_held(ctx, "node-docker-events");
}

/* The newest sample of a node, live on the SSE topic metrics/node/<id>. */
static void publish_metrics(void *ctx, const char *node_id, json_t *sample)
{
    struct app *app = ctx;
    char topic[64];
    snprintf(topic, sizeof topic, "metrics/node/%s", node_id);
    json_t *data = json_pack("{s:s, s:O}", "node_id", node_id, "sample", sample);
    struct sb_err err = {0};
    if (data && events_publish_ephemeral(app->events, topic, "metrics.sample", data, &err))
        log_debug("metrics sample not published", "node=%s detail=\"%s\"", node_id, err.msg);
    json_decref(data);
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
    serve_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    raise_fd_limit();
    apps_global_init(); /* libgit2, once before any thread */

    /* The route table must only name permissions the RBAC table knows. */
    if (auth_check_routes(api_routes, api_n_routes, &err)) {
        fprintf(stderr, "serverbox-core: refusing to serve: %s\n", err.msg);
        return 2;
    }
    const char *data_dir = config_get(cfg, "data-dir");
    char key_path[1024];
    const char *key_file = config_get(cfg, "master-key-file");
    if (!key_file || !*key_file) {
        snprintf(key_path, sizeof key_path, "%s/master.key", data_dir);
        key_file = key_path;
    }
    mkdir(data_dir, 0700);
    if (crypto_master_key_load(key_file, true, &app.master_key, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        return 2;
    }
    app.master_key_loaded = true;
    struct auth_signer signer;
    if (auth_signer_load(data_dir, &signer, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        crypto_master_key_wipe(&app.master_key);
        return 2;
    }
    app.signer = &signer;
    app.checkpoint_interval_ms = config_get_int(cfg, "checkpoint-interval") * 1000;

    struct store_config sc = {.database_url = config_get(cfg, "database-url"),
                              .pool_size = (int)config_get_int(cfg, "db-pool-size"),
                              .acquire_timeout_ms = 5000};
    app.store = store_open(&sc, &err);
    if (!app.store) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    app.redis = redis_open(config_get(cfg, "redis-url"), &err);
    if (!app.redis) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }

    struct auth_config ac = {.store = app.store,
                             .redis = app.redis,
                             .session_idle_s = config_get_int(cfg, "session-idle-timeout"),
                             .session_max_s = config_get_int(cfg, "session-max-age"),
                             .token_rate_per_s = (int)config_get_int(cfg, "token-rate-limit"),
                             .login_ip_limit = (int)config_get_int(cfg, "login-ip-limit"),
                             .login_user_limit = (int)config_get_int(cfg, "login-user-limit")};
    app.auth = auth_open(&ac, &err);
    if (!app.auth) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    /* Single sign-on, when configured; discovery is fetched at the first login. */
    struct oidc_config oc = {.issuer = config_get(cfg, "oidc-issuer"),
                             .client_id = config_get(cfg, "oidc-client-id"),
                             .client_secret = config_get(cfg, "oidc-client-secret"),
                             .algorithm = config_get(cfg, "oidc-algorithm"),
                             .scopes = config_get(cfg, "oidc-scopes"),
                             .name = config_get(cfg, "oidc-name"),
                             .mapping_json = config_get(cfg, "oidc-mapping")};
    app.oidc = oidc_open(&oc, &err);
    if (!app.oidc && err.code) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    app.oidc_redirect_uri = config_get(cfg, "oidc-redirect-uri");
    const char *pl = config_get(cfg, "password-login");
    app.password_login = !pl || strcmp(pl, "off") != 0;
    app.break_glass_user = config_get(cfg, "break-glass-user");
    if (!app.password_login && !app.oidc) {
        fprintf(stderr, "serverbox-core: --password-login off needs --oidc-issuer\n");
        goto out;
    }
    /* Denials and guest requests reach the chain through windows. */
    struct audit_config auc = {.store = app.store, .window_ms = config_get_int(cfg, "audit-window") * 1000};
    app.audit = audit_open(&auc, &err);
    if (!app.audit) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    app.anon_ip_limit = (int)config_get_int(cfg, "anon-ip-limit");

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

    /* The bus follows the log from its head now, so a stream opened as
     * soon as we listen misses nothing. */
    struct events_config ec = {.store = app.store,
                               .redis_url = config_get(cfg, "redis-url"),
                               .heartbeat_ms = (int)config_get_int(cfg, "events-heartbeat-ms")};
    app.events = events_open(&ec, &err);
    if (!app.events) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    struct jobs_config jc = {.store = app.store,
                             .events = app.events,
                             .workers = (int)config_get_int(cfg, "job-workers"),
                             .lease_ms = (int)config_get_int(cfg, "job-lease-ms"),
                             .retry_base_ms = (int)config_get_int(cfg, "job-retry-base-ms"),
                             .retention_days = (int)config_get_int(cfg, "job-retention-days"),
                             .prune_interval_ms = (int)config_get_int(cfg, "job-prune-interval") * 1000};
    app.jobs = jobs_open(&jc, &err);
    if (!app.jobs) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    app.job_test_kinds = config_get_int(cfg, "job-test-kinds") == 1;
    if (app.job_test_kinds && jobs_register_test_kinds(app.jobs, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    for (size_t i = 0; i < sizeof duties / sizeof duties[0]; i++) {
        /* A daemon that has a duty's work turned off does not compete for
         * it: the lease would leave the duty undone on every daemon. */
        if ((strcmp(duties[i], "node-checks") == 0 && config_get_int(cfg, "node-check-interval") <= 0) ||
            (strcmp(duties[i], "audit-checkpoint") == 0 && config_get_int(cfg, "checkpoint-interval") <= 0))
            continue;
        struct jobs_duty d = {.name = duties[i]};
        if (jobs_duty_register(app.jobs, &d, &err)) {
            fprintf(stderr, "serverbox-core: %s\n", err.msg);
            goto out;
        }
    }
    if (cmd_node_networks_load(cfg, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    struct nodes_config nc = {.cfg = cfg,
                              .store = app.store,
                              .master_key = &app.master_key,
                              .events = app.events,
                              .jobs = app.jobs};
    int nodes_rc = nodes_open(&nc, &app.nodes, &err);
    app.ssh_pool = nodes_ssh_pool(app.nodes);
    if (nodes_rc) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    if (api_terminals_start(&app, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    /* Without a dashboard the API still serves; "/" answers 404. */
    const char *dash = config_get(cfg, "dashboard-dir");
    if (dash && *dash) {
        struct sb_err derr = {0};
        app.dashboard = static_site_load(dash, &derr);
        if (app.dashboard)
            log_info("dashboard loaded", "dir=\"%s\" files=%zu", dash, static_site_count(app.dashboard));
        else
            log_warn("no dashboard served", "detail=\"%s\"", derr.msg);
    }

    struct docker_config dc = {.local_socket = config_get(cfg, "docker-socket"), .store = app.store};
    app.docker = docker_open(&dc, &err);
    if (!app.docker) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    docker_set_remote_watch_gate(app.docker, holds_node_docker_events, app.jobs);
    nodes_attach_docker(app.nodes, app.docker);
    if (docker_register_jobs(app.docker, app.jobs, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    /* Compose stacks deploy and scale as jobs (stacks/service.c). */
    app.stacks = (struct stacks_env){.store = app.store,
                                     .docker = app.docker,
                                     .key = &app.master_key,
                                     .bind_base = config_get(cfg, "stack-bind-base"),
                                     .health_timeout_s = (int)config_get_int(cfg, "stack-health-timeout"),
                                     .caddy_admin = config_get(cfg, "app-caddy-admin"),
                                     .domain_listen = config_get(cfg, "app-domain-listen")};
    if (stacks_jobs_register(app.jobs, &app.stacks, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }

    /* Backups run, restore and check as jobs; the schedule is a duty. */
    app.backups = (struct backups_env){.store = app.store,
                                       .docker = app.docker,
                                       .jobs = app.jobs,
                                       .key = &app.master_key,
                                       .data_dir = data_dir,
                                       .master_key_file = key_file,
                                       .database_url = cmd_admin_database_url(cfg),
                                       .helper_image = config_get(cfg, "backup-helper-image"),
                                       .check_percent = (int)config_get_int(cfg, "backup-check-percent"),
                                       .scratch_database_url = config_get(cfg, "backup-scratch-database-url"),
                                       .checkpoint_post_url = config_get(cfg, "checkpoint-post-url")};
    if (backups_register(app.jobs, &app.backups, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    /* GitOps apps deploy as jobs (apps/pipeline.c). */
    app.apps = (struct apps_env){.store = app.store,
                                 .docker = app.docker,
                                 .jobs = app.jobs,
                                 .key = &app.master_key,
                                 .static_ = {.image = config_get(cfg, "app-static-image"),
                                             .root = config_get(cfg, "app-static-root"),
                                             .command = config_get(cfg, "app-static-command")},
                                 .caddy_admin = config_get(cfg, "app-caddy-admin"),
                                 .route_host = config_get(cfg, "app-route-host"),
                                 .domain_listen = config_get(cfg, "app-domain-listen"),
                                 .build_timeout_s = (int)config_get_int(cfg, "app-build-timeout"),
                                 .build_memory = config_get_int(cfg, "app-build-memory")};
    snprintf(app.apps.mirrors, sizeof app.apps.mirrors, "%s/apps", data_dir ? data_dir : ".");
    if (mkdir(app.apps.mirrors, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "serverbox-core: cannot make %s: %s\n", app.apps.mirrors, strerror(errno));
        goto out;
    }
    {
        const char *ports = config_get(cfg, "app-route-ports");
        if (ports && *ports &&
            (sscanf(ports, "%d-%d", &app.apps.route_port_min, &app.apps.route_port_max) != 2 ||
             app.apps.route_port_min < 1 || app.apps.route_port_max > 65535 ||
             app.apps.route_port_min > app.apps.route_port_max)) {
            fprintf(stderr, "serverbox-core: --app-route-ports is \"FIRST-LAST\" (got %s)\n", ports);
            goto out;
        }
    }
    if (apps_jobs_register(app.jobs, &app.apps, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }

    struct metrics_config mc = {.store = app.store,
                                .raw_days = (int)config_get_int(cfg, "metrics-raw-days"),
                                .rollup_days = (int)config_get_int(cfg, "metrics-rollup-days"),
                                .offline_intervals = 3,
                                .publish = publish_metrics,
                                .publish_ctx = &app,
                                .leader = holds_metrics_rollup,
                                .leader_ctx = app.jobs};
    app.metrics = metrics_start(&mc, &err);
    if (!app.metrics) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }

    /* Alerts: the evaluation duty and the delivery jobs (alerts/). */
    struct alerts_config alc = {.store = app.store,
                                .jobs = app.jobs,
                                .key = &app.master_key,
                                .interval_ms = (int)config_get_int(cfg, "alerts-interval") * 1000,
                                .allow_loopback = config_get_int(cfg, "alerts-allow-loopback") == 1,
                                .ca_file = config_get(cfg, "alerts-ca-file"),
                                .run_evaluation = config_get_int(cfg, "alerts-interval") > 0};
    app.alerts = alerts_open(&alc, &err);
    if (!app.alerts) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }

    if (jobs_start(app.jobs, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }

    const char *const *proxies;
    size_t n_proxies = config_get_list(cfg, "trusted-proxy", &proxies);
    const char *const *public_hosts;
    size_t n_public_hosts = config_get_list(cfg, "public-host", &public_hosts);
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
        .public_hosts = public_hosts,
        .n_public_hosts = n_public_hosts,
        .per_ip_connection_limit = (unsigned)config_get_int(cfg, "per-ip-connection-limit"),
        .header_timeout_s = (int)config_get_int(cfg, "header-timeout"),
        .tls_cert_file = config_get(cfg, "tls-cert"),
        .tls_key_file = config_get(cfg, "tls-key"),
        .guard = api_guard,
        .fast_guard = api_fast_guard,
    };
    app.http = http_server_start(&hc, &err);
    if (!app.http) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        goto out;
    }
    api_health_start(&app);
    bool tls = http_server_tls(app.http);
    if (tls)
        log_tls(app.http, "TLS certificate loaded");
    else if (!http_listen_is_loopback(hc.listen))
        log_warn("serving plain HTTP beyond loopback: passwords and tokens cross the network readable; give "
                 "--tls-cert and --tls-key, or put a TLS proxy in front",
                 "listen=%s", hc.listen);
    log_info("listening", "url=%s://%s port=%d", tls ? "https" : "http", hc.listen,
             http_server_port(app.http));

    int sig = wait_for_signal(app.http);
    log_info("stopping", "signal=%d", sig);
    rc = 0;
    api_health_stop(&app);
out:
    /* Streams end first so no connection stays suspended; the engines'
     * threads and the bus go after the last handler that could use them. */
    events_shutdown(app.events);
    docker_shutdown_streams(app.docker);
    /* Terminals detach (tmux keeps the sessions) and record terminal.closed
     * while the store is up; their streams end before the server stops. */
    api_terminals_shutdown(&app);
    atomic_store(&app.stopping, true);
    http_server_stop(app.http);
    audit_close(app.audit); /* the open windows' summaries, while the store is up */
    jobs_stop(app.jobs);
    metrics_stop(app.metrics);
    events_free(app.events);
    api_terminals_stop(&app);
    nodes_close(app.nodes);
    app.nodes = NULL;
    app.ssh_pool = NULL;
    jobs_free(app.jobs);
    alerts_close(app.alerts);
    apps_global_shutdown();
    static_site_free(app.dashboard);
    auth_close(app.auth);
    oidc_close(app.oidc);
    docker_close(app.docker);
    redis_close(app.redis);
    store_close(app.store);
    auth_signer_wipe(&signer);
    crypto_master_key_wipe(&app.master_key);
    return rc;
}
