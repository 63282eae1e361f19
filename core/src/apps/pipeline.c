/*
 * The app.deploy job: fetch → detect → build → run → health → route →
 * retire the old containers. Each step is an app.deploy_step event; the
 * progress and every log line go out on job/<id>, and the log is kept with
 * the deployment (app_deployment_logs, the last APPS_LOG_MAX bytes).
 *
 * Invariant: until the new container has passed its health gate, nothing
 * that serves the app is touched — the route still points at the old
 * container and the old container runs. A failed gate removes the new
 * container and records app.deploy_failed with rolled_back true and the
 * new container's last log lines.
 *
 * Safe to run again (a retry, or a takeover after kill -9): the new
 * container is named after the deployment and removed first if an earlier
 * attempt left it; the fetch and the build are incremental.
 */
#include "internal.h"

#include "../docker/docker.h"
#include "../jobs/jobs.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEPLOY_ATTEMPTS 3
#define TAIL_LINES      20

struct run {
    struct apps_env *e;
    struct job_ctx *job;
    json_t *app, *dep;
    const char *app_id, *dep_id;
    char socket[DOCKER_SOCKET_MAX];
    bool local;
    struct buf log;   /* the deployment's log */
    struct buf line;  /* a partial line of build output */
    int64_t saved_us; /* when the log was last stored */
    const char *step;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_save(struct run *r)
{
    struct sb_err err = {0};
    if (store_app_log_put(r->e->store, r->dep_id, r->log.data, &err))
        log_warn("deployment log not stored", "deployment=%s detail=\"%s\"", r->dep_id, err.msg);
    r->saved_us = mono_ms();
}

/* One line into the log (kept within APPS_LOG_MAX: the oldest half goes)
 * and onto job/<id>. */
static void log_line(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(struct run *r, const char *fmt, ...)
{
    char text[1000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    job_log(r->job, "%s", text);
    size_t n = strlen(text);
    if (r->log.len + n + 1 > APPS_LOG_MAX) {
        size_t cut = r->log.len / 2;
        const char *nl = memchr(r->log.data + cut, '\n', r->log.len - cut);
        buf_consume(&r->log, nl ? (size_t)(nl - r->log.data) + 1 : cut);
    }
    buf_append(&r->log, text, n);
    buf_putc(&r->log, '\n');
    if (mono_ms() - r->saved_us > 2000)
        log_save(r);
}

static void record(struct run *r, const char *type, const char *outcome, json_t *data)
{
    char stream[64];
    snprintf(stream, sizeof stream, "app/%s", r->app_id);
    json_object_set_new(data, "id", json_string(r->app_id));
    json_object_set_new(data, "deployment_id", json_string(r->dep_id));
    json_object_set_new(data, "job_id", json_string(job_id(r->job)));
    /* the node scopes the event (events_node_of): a label-scoped caller
     * sees an app's events only when it sees its node */
    json_object_set(data, "node_id", json_object_get(r->app, "node_id"));
    struct event_new ev = {.stream = stream,
                           .type = type,
                           .data = data,
                           .actor = {.kind = "system", .id = job_id(r->job), .name = "apps"},
                           .outcome = outcome};
    struct sb_err err = {0};
    int64_t seq;
    if (store_append(r->e->store, &ev, &seq, &err))
        log_warn("app event not recorded", "type=%s app=%s detail=\"%s\"", type, r->app_id, err.msg);
    json_decref(data);
}

/* A step begins: its event (data stolen, may be NULL), its progress. */
static void step(struct run *r, const char *name, int percent, json_t *data)
{
    r->step = name;
    if (!data)
        data = json_object();
    json_object_set_new(data, "step", json_string(name));
    record(r, "app.deploy_step", "success", data);
    job_progress(r->job, percent, name);
    log_line(r, "==> %s", name);
}

static bool cancelled(void *ctx)
{
    return job_cancelled(((struct run *)ctx)->job);
}

/* ---- fetch ------------------------------------------------------------------ */

static void on_fetch_progress(void *ctx, unsigned received, unsigned total)
{
    struct run *r = ctx;
    static __thread int64_t last;
    int64_t now = mono_ms();
    if (total && (now - last > 500 || received == total)) {
        last = now;
        job_progress(r->job, 5 + (int)(15.0 * received / total), "fetch");
    }
}

static void mirror_path(struct run *r, char *out, size_t len)
{
    snprintf(out, len, "%s/%s.git", r->e->mirrors, r->app_id);
}

/* ---- build ------------------------------------------------------------------ */

static void on_build_output(void *ctx, const char *text)
{
    struct run *r = ctx;
    for (const char *p = text; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            if (r->line.len)
                log_line(r, "%s", r->line.data);
            buf_reset(&r->line);
        } else if (buf_putc(&r->line, *p)) {
            log_line(r, "%s", r->line.data);
            buf_reset(&r->line);
        }
    }
}

static int build(struct run *r, const char *commit, char *image, size_t image_len, char *image_id,
                 size_t id_len, struct sb_err *err)
{
    char mirror[700];
    mirror_path(r, mirror, sizeof mirror);
    const char *subdir = json_string_value(json_object_get(r->app, "subdir"));
    json_t *names = NULL;
    int rc = apps_git_names(mirror, commit, subdir, &names, err);
    if (rc)
        return rc;
    const char *detector;
    char *dockerfile = NULL;
    rc = apps_detect(names, &r->e->static_, (int)json_integer_value(json_object_get(r->app, "port")),
                     &detector, &dockerfile, err);
    json_decref(names);
    if (rc)
        return rc;
    json_t *d = json_pack("{s:s}", "detector", detector);
    if (dockerfile)
        json_object_set_new(d, "dockerfile", json_string(dockerfile));
    step(r, "detect", 22, d);
    log_line(r, "detected: %s%s", detector, dockerfile ? " (generated Dockerfile below)" : "");
    if (dockerfile) {
        const char *p = dockerfile;
        while (*p) {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            log_line(r, "  %.*s", (int)n, p);
            p += n + (e ? 1 : 0);
        }
    }
    struct buf tar;
    buf_init(&tar, APPS_CONTEXT_MAX);
    rc = apps_git_tar(mirror, commit, subdir, dockerfile, &tar, err);
    free(dockerfile);
    if (rc) {
        buf_release(&tar);
        return rc;
    }
    snprintf(image, image_len, "serverbox/%s:%.12s", json_string_value(json_object_get(r->app, "name")),
             commit);
    step(r, "build", 25, json_pack("{s:s}", "image", image));
    log_line(r, "building %s from a %zu-byte context", image, tar.len);
    /* not the deployment: the same commit builds to the same image (cache) */
    json_t *labels = json_pack("{s:s,s:s}", APPS_LABEL_APP, r->app_id, "serverbox.commit", commit);
    struct docker_build b = {.tar = tar.data,
                             .tar_len = tar.len,
                             .tag = image,
                             .labels = labels,
                             .memory = r->e->build_memory,
                             .timeout_ms = (long)r->e->build_timeout_s * 1000,
                             .on_output = on_build_output,
                             .cancelled = cancelled,
                             .ctx = r};
    rc = docker_build_image(r->socket, &b, image_id, id_len, err);
    if (r->line.len) {
        log_line(r, "%s", r->line.data);
        buf_reset(&r->line);
    }
    json_decref(labels);
    buf_release(&tar);
    if (rc == 0)
        log_line(r, "built %s (%s)", image, image_id);
    return rc;
}

/* ---- run and gate ------------------------------------------------------------- */

static int ensure_network(struct run *r, struct sb_err *err)
{
    int rc = docker_call(r->socket, "GET", "/networks/" APPS_NETWORK, NULL, 0, NULL, NULL, err);
    if (rc != SB_ENOTFOUND)
        return rc;
    json_t *body = json_pack("{s:s,s:s,s:b,s:{s:s}}", "Name", APPS_NETWORK, "Driver", "bridge",
                             "CheckDuplicate", 1, "Labels", "serverbox.managed", "true");
    rc = docker_call(r->socket, "POST", "/networks/create", body, 0, NULL, NULL, err);
    /* The engine's default pools can all overlap the host's networks (a
     * host with many bridges): then a /24 of 10.200.0.0/13, picked at
     * random, a few times. */
    for (int i = 0; i < 8 && rc && rc != SB_ECONFLICT && strstr(err->msg, "address pool"); i++) {
        char subnet[32];
        snprintf(subnet, sizeof subnet, "10.%u.%u.0/24", 200 + randombytes_uniform(8),
                 randombytes_uniform(256));
        json_object_set_new(body, "IPAM",
                            json_pack("{s:s,s:[{s:s}]}", "Driver", "default", "Config", "Subnet", subnet));
        rc = docker_call(r->socket, "POST", "/networks/create", body, 0, NULL, NULL, err);
        if (rc == 0)
            log_line(r, "network %s made on %s (the engine's default pools are taken)", APPS_NETWORK, subnet);
    }
    json_decref(body);
    return rc == SB_ECONFLICT ? 0 : rc;
}

static void container_name(struct run *r, char *out, size_t len)
{
    snprintf(out, len, "sbx-%s-%.8s", json_string_value(json_object_get(r->app, "name")), r->dep_id);
}

static int remove_container(struct run *r, const char *id_or_name, struct sb_err *err)
{
    char p[200];
    snprintf(p, sizeof p, "/containers/%s?force=1", id_or_name);
    int rc = docker_call(r->socket, "DELETE", p, NULL, 0, NULL, NULL, err);
    return rc == SB_ENOTFOUND ? 0 : rc;
}

static int run_container(struct run *r, const char *image_ref, char *cid, size_t cid_len, int *host_port,
                         struct sb_err *err)
{
    *host_port = 0;
    char name[96];
    container_name(r, name, sizeof name);
    int rc = remove_container(r, name, err); /* left by an earlier attempt */
    if (rc == 0)
        rc = ensure_network(r, err);
    if (rc)
        return rc;
    json_t *secrets = NULL;
    if ((rc = apps_secrets_open(r->e, r->app_id, &secrets, err)))
        return rc;
    json_t *env = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(r->app, "variables"), k, v)
    {
        char *kv = NULL;
        if (asprintf(&kv, "%s=%s", k, json_string_value(v)) >= 0) {
            json_array_append_new(env, json_string(kv));
            free(kv);
        }
    }
    json_object_foreach(json_object_get(secrets, "env"), k, v)
    {
        char *kv = NULL;
        if (asprintf(&kv, "%s=%s", k, json_string_value(v)) >= 0) {
            json_array_append_new(env, json_string(kv));
            free(kv);
        }
    }
    json_decref(secrets);
    char port[16];
    snprintf(port, sizeof port, "%d/tcp", (int)json_integer_value(json_object_get(r->app, "port")));
    json_t *host =
        json_pack("{s:s,s:{s:[{s:s,s:s}]},s:{s:s}}", "NetworkMode", APPS_NETWORK, "PortBindings", port,
                  "HostIp", "127.0.0.1", "HostPort", "", "RestartPolicy", "Name", "unless-stopped");
    json_t *mem = json_object_get(r->app, "memory"), *cpu = json_object_get(r->app, "nano_cpus");
    if (json_is_integer(mem))
        json_object_set(host, "Memory", mem);
    if (json_is_integer(cpu))
        json_object_set(host, "NanoCpus", cpu);
    json_t *body = json_pack("{s:s,s:o,s:{s:s,s:s,s:s},s:{s:{}},s:o}", "Image", image_ref, "Env", env,
                             "Labels", APPS_LABEL_APP, r->app_id, APPS_LABEL_DEPLOY, r->dep_id,
                             "serverbox.app.name", json_string_value(json_object_get(r->app, "name")),
                             "ExposedPorts", port, "HostConfig", host);
    struct buf path;
    buf_init(&path, 512);
    buf_puts(&path, "/containers/create?name=");
    docker_urlencode(name, &path);
    json_t *created = NULL;
    rc = docker_call(r->socket, "POST", path.data, body, 0, &created, NULL, err);
    json_decref(body);
    buf_release(&path);
    if (rc)
        return rc;
    sb_strlcpy(cid, json_string_value(json_object_get(created, "Id")) ?: "", cid_len);
    json_decref(created);
    char p[200];
    snprintf(p, sizeof p, "/containers/%s/start", cid);
    if ((rc = docker_call(r->socket, "POST", p, NULL, 0, NULL, NULL, err)))
        return rc;
    snprintf(p, sizeof p, "/containers/%s/json", cid);
    json_t *info = NULL;
    if ((rc = docker_call(r->socket, "GET", p, NULL, 0, &info, NULL, err)))
        return rc;
    json_t *b = json_array_get(
        json_object_get(json_object_get(json_object_get(info, "NetworkSettings"), "Ports"), port), 0);
    *host_port = (int)sb_int64(json_string_value(json_object_get(b, "HostPort")) ?: "0");
    json_decref(info);
    if (*host_port <= 0)
        return sb_error(err, SB_EUPSTREAM, "the engine published no host port for %s", port);
    log_line(r, "container %.12s (%s) runs %s, port %s on 127.0.0.1:%d", cid, name, image_ref, port,
             *host_port);
    return 0;
}

static int line_to_tail(void *ctx, int stream, const char *line, size_t len)
{
    json_t *arr = ctx;
    json_t *s = json_stringn(line, len); /* an event holds these lines: UTF-8 only */
    json_array_append_new(arr, s ? s : json_string("<not UTF-8>"));
    if (json_array_size(arr) > TAIL_LINES)
        json_array_remove(arr, 0);
    return 0;
}

static int frames_to_lines(void *ctx, int stream, const char *data, size_t len)
{
    return docker_lines_feed(ctx, stream, data, len);
}

/* The last lines the container wrote (a new array). */
static json_t *container_tail(struct run *r, const char *cid)
{
    json_t *arr = json_array();
    char p[200];
    snprintf(p, sizeof p, "/containers/%s/logs?stdout=1&stderr=1&tail=%d", cid, TAIL_LINES);
    struct docker_response resp;
    struct sb_err err = {0};
    if (docker_request(r->socket, "GET", p, NULL, 0, &resp, &err) == 0) {
        if (resp.status == 200) {
            struct docker_lines l;
            docker_lines_init(&l, line_to_tail, arr);
            struct docker_frames f;
            docker_frames_init(&f, false, frames_to_lines, &l);
            docker_frames_feed(&f, resp.body.data, resp.body.len);
            docker_lines_flush(&l);
            docker_lines_release(&l);
        }
        docker_response_release(&resp);
    }
    return arr;
}

/* The health gate: the container keeps running and the health path answers
 * 2xx/3xx within the app's timeout. */
static int gate(struct run *r, const char *cid, int host_port, struct sb_err *err)
{
    const char *path = json_string_value(json_object_get(r->app, "health_path"));
    int port = (int)json_integer_value(json_object_get(r->app, "port"));
    int timeout_s = (int)json_integer_value(json_object_get(r->app, "health_timeout_s"));
    int64_t deadline = mono_ms() + (int64_t)timeout_s * 1000;
    char last[200] = "no answer yet";
    for (int n = 0;; n++) {
        if (job_cancelled(r->job))
            return sb_error(err, SB_ETIMEOUT, "cancelled during the health check");
        char p[200];
        snprintf(p, sizeof p, "/containers/%s/json", cid);
        json_t *info = NULL;
        int rc = docker_call(r->socket, "GET", p, NULL, 0, &info, NULL, err);
        if (rc)
            return rc;
        json_t *state = json_object_get(info, "State");
        bool running = json_is_true(json_object_get(state, "Running"));
        int exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
        json_decref(info);
        if (!running)
            return sb_error(err, SB_EUPSTREAM, "the new container exited (code %d) before it was healthy",
                            exit_code);
        struct sb_err perr = {0};
        if (r->local) {
            long status;
            if (apps_http_probe(host_port, path, 2000, &status, &perr) == 0) {
                log_line(r, "healthy: GET %s answered %ld", path, status);
                return 0;
            }
        } else {
            /* the core cannot reach the node's loopback: the probe runs in
             * the container, with whichever client the image has */
            char url[400];
            snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
            json_t *probes[3] = {json_pack("[s,s,s,s,s]", "wget", "-q", "-O", "/dev/null", url),
                                 json_pack("[s,s,s,s,s,s]", "busybox", "wget", "-q", "-O", "/dev/null", url),
                                 json_pack("[s,s,s,s,s]", "curl", "-fsS", "-o", "/dev/null", url)};
            bool ok = false;
            for (int i = 0; i < 3 && !ok; i++) {
                struct docker_exec_result res;
                int erc = docker_exec(r->socket, cid, probes[i], 5000, 4096, &res, &perr);
                ok = erc == 0 && res.exit_code == 0;
                bool missing =
                    erc == 0 && (res.exit_code == 126 || res.exit_code == 127 || res.exit_code == -1);
                if (erc == 0 && !ok)
                    snprintf(perr.msg, sizeof perr.msg, "%s exited %d", i == 2 ? "curl" : "wget",
                             res.exit_code);
                if (erc != 0 && strstr(perr.msg, "executable file not found"))
                    missing = true;
                docker_exec_result_release(&res);
                if (!ok && !missing)
                    break; /* the client ran and the app did not answer */
            }
            for (int i = 0; i < 3; i++)
                json_decref(probes[i]);
            if (ok) {
                log_line(r, "healthy: GET %s answered inside the container", path);
                return 0;
            }
        }
        if (strcmp(last, perr.msg) != 0 || n % 10 == 0)
            log_line(r, "not healthy yet: GET %s: %s", path, perr.msg);
        sb_strlcpy(last, perr.msg, sizeof last);
        if (mono_ms() >= deadline)
            return sb_error(err, SB_EUPSTREAM, "the new container was not healthy within %d s (GET %s: %s)",
                            timeout_s, path, last);
        usleep(500 * 1000);
    }
}

/* The ids of the app's containers made by other deployments (a new array):
 * what this deployment replaces, listed before it starts its own. */
static json_t *previous_containers(struct run *r)
{
    struct buf path;
    buf_init(&path, 4096);
    char filter[160];
    snprintf(filter, sizeof filter, "{\"label\":[\"%s=%s\"]}", APPS_LABEL_APP, r->app_id);
    buf_puts(&path, "/containers/json?all=1&filters=");
    docker_urlencode(filter, &path);
    json_t *list = NULL, *out = json_array();
    struct sb_err err = {0};
    docker_call(r->socket, "GET", path.data, NULL, 0, &list, NULL, &err);
    buf_release(&path);
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        const char *dep = json_string_value(json_object_get(json_object_get(c, "Labels"), APPS_LABEL_DEPLOY));
        if (id && !(dep && strcmp(dep, r->dep_id) == 0))
            json_array_append_new(out, json_string(id));
    }
    json_decref(list);
    return out;
}

/* Drains (1 s: requests in flight through the old route finish), stops
 * (5 s grace) and removes `ids` on the engine at `socket`. Only the
 * containers listed before the new one started: never a later
 * deployment's. */
static void retire(const char *socket, json_t *ids, void (*note)(void *ctx, const char *id), void *ctx)
{
    if (!json_array_size(ids))
        return;
    sleep(1);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(v);
        if (!id)
            continue;
        char p[200];
        snprintf(p, sizeof p, "/containers/%s/stop?t=5", id);
        struct sb_err e2 = {0};
        docker_call(socket, "POST", p, NULL, 15000, NULL, NULL, &e2);
        snprintf(p, sizeof p, "/containers/%s?force=1", id);
        docker_call(socket, "DELETE", p, NULL, 0, NULL, NULL, &e2);
        if (note)
            note(ctx, id);
    }
}

static void note_retired(void *ctx, const char *id)
{
    log_line(ctx, "retired the old container %.12s", id);
}

/* The old containers go in a job of their own (app.retire, no concurrency
 * key), so the app's next deployment — a rollback — does not wait for
 * their drain and grace; inline if that job cannot be queued. */
static void retire_later(struct run *r, json_t *ids)
{
    if (!json_array_size(ids))
        return;
    char target[64];
    snprintf(target, sizeof target, "app/%s", r->app_id);
    json_t *args = json_pack("{s:s,s:O,s:O}", "app_id", r->app_id, "node_id",
                             json_object_get(r->app, "node_id"), "containers", ids);
    struct jobs_new in = {.kind = "app.retire",
                          .target = target,
                          .node_id = json_string_value(json_object_get(r->app, "node_id")),
                          .args = args,
                          .actor = {.kind = "system", .id = job_id(r->job), .name = "apps"}};
    json_t *job = NULL;
    struct sb_err err = {0};
    if (jobs_enqueue(r->e->jobs, &in, &job, &err) == 0) {
        log_line(r, "the %zu old container(s) retire in job %s", json_array_size(ids),
                 json_string_value(json_object_get(job, "id")) ?: "?");
    } else {
        retire(r->socket, ids, note_retired, r);
    }
    json_decref(job);
    json_decref(args);
}

static int retire_run(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct apps_env *e = job_kind_ctx(job);
    const char *node_id = json_string_value(json_object_get(args, "node_id"));
    if (!node_id)
        return sb_error(err, SB_EINVAL, "app.retire needs a node_id");
    char socket[DOCKER_SOCKET_MAX], name[128];
    int rc = docker_endpoint_for_node(e->docker, node_id, socket, sizeof socket, name, sizeof name, err);
    if (rc)
        return rc;
    retire(socket, json_object_get(args, "containers"), NULL, NULL);
    *result = json_pack("{s:O}", "retired", json_object_get(args, "containers"));
    return 0;
}

/* ---- the job ----------------------------------------------------------------- */

static int deploy_run(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct apps_env *e = job_kind_ctx(job);
    struct run r = {.e = e, .job = job};
    r.app_id = json_string_value(json_object_get(args, "app_id"));
    r.dep_id = json_string_value(json_object_get(args, "deployment_id"));
    if (!r.app_id || !r.dep_id)
        return sb_error(err, SB_EINVAL, "app.deploy needs an app_id and a deployment_id");
    int rc = store_app_get(e->store, r.app_id, &r.app, err);
    if (rc == 0)
        rc = store_app_deployment_get(e->store, r.dep_id, &r.dep, err);
    if (rc) {
        json_decref(r.app);
        return rc; /* deleted meanwhile: nothing to record on */
    }
    const char *status = json_string_value(json_object_get(r.dep, "status"));
    if (status && (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0)) {
        /* an attempt after the outcome was recorded (the lease was lost
         * after app.deployed): the deployment is over, do not run it again */
        *result = json_pack("{s:s,s:s}", "deployment_id", r.dep_id, "status", status);
        json_decref(r.app);
        json_decref(r.dep);
        return 0;
    }
    buf_init(&r.log, APPS_LOG_MAX + 1024);
    buf_init(&r.line, 4096);
    /* an attempt after a takeover continues the earlier attempts' log */
    char *old = NULL;
    struct sb_err ignore = {0};
    if (store_app_log_get(e->store, r.dep_id, &old, &ignore) == 0 && old) {
        buf_puts(&r.log, old);
        free(old);
    }
    if (job_attempt(job) > 1)
        log_line(&r, "attempt %d", job_attempt(job));
    const char *node_id = json_string_value(json_object_get(r.app, "node_id"));
    r.local = strcmp(node_id, DOCKER_LOCAL_NODE) == 0;
    bool rollback = strcmp(json_string_value(json_object_get(r.dep, "kind")) ?: "", "rollback") == 0;
    char commit[41] = "", image[200] = "", image_id[128] = "", cid[80] = "";
    int host_port = 0;
    bool started = false; /* a new container exists */
    json_t *tail = NULL;

    char name[128];
    rc = docker_endpoint_for_node(e->docker, node_id, r.socket, sizeof r.socket, name, sizeof name, err);
    if (rc == 0 && rollback) {
        sb_strlcpy(commit, json_string_value(json_object_get(r.dep, "commit")) ?: "", sizeof commit);
        sb_strlcpy(image, json_string_value(json_object_get(r.dep, "image")) ?: "", sizeof image);
        sb_strlcpy(image_id, json_string_value(json_object_get(r.dep, "image_id")) ?: "", sizeof image_id);
        step(&r, "image", 20, json_pack("{s:s,s:s}", "image", image, "image_id", image_id));
        char p[200];
        snprintf(p, sizeof p, "/images/%s/json", image_id);
        rc = docker_call(r.socket, "GET", p, NULL, 0, NULL, NULL, err);
        if (rc == SB_ENOTFOUND)
            rc =
                sb_error(err, SB_ENOTFOUND, "the image %s (%.19s) is no longer on the node", image, image_id);
        else if (rc == 0)
            log_line(&r, "rolling back to %s (%s), commit %.12s: no build", image, image_id, commit);
    } else if (rc == 0) {
        const char *url = json_string_value(json_object_get(r.app, "repo_url"));
        const char *branch = json_string_value(json_object_get(r.app, "branch"));
        step(&r, "fetch", 5, NULL);
        log_line(&r, "fetching %s (branch %s)", url, branch);
        char mirror[700];
        mirror_path(&r, mirror, sizeof mirror);
        struct apps_git_hooks h = {.progress = on_fetch_progress,
                                   .cancelled = cancelled,
                                   .ctx = &r,
                                   .host_key_pin = json_string_value(json_object_get(r.app, "git_host_key"))};
        json_t *secrets = NULL;
        if (apps_repo_is_ssh(url) && (rc = apps_secrets_open(e, r.app_id, &secrets, err)) == 0) {
            h.ssh_key = json_string_value(json_object_get(secrets, "deploy_key"));
            h.ssh_pub = json_string_value(json_object_get(r.app, "deploy_key_public"));
        }
        if (rc == 0)
            rc = apps_git_fetch(mirror, url, branch, &h, commit, err);
        json_decref(secrets);
        if (rc == 0 && h.host_key_seen[0] && !h.host_key_pin) {
            /* the first fetch over ssh pins the host's key */
            log_line(&r, "pinned the git host's key %s", h.host_key_seen);
            record(&r, "app.host_key_pinned", "success", json_pack("{s:s}", "git_host_key", h.host_key_seen));
        }
        if (rc == 0) {
            log_line(&r, "commit %s", commit);
            record(&r, "app.deploy_step", "success",
                   json_pack("{s:s,s:s}", "step", "fetched", "commit", commit));
            rc = build(&r, commit, image, sizeof image, image_id, sizeof image_id, err);
        }
    }
    json_t *previous = NULL;
    if (rc == 0) {
        previous = previous_containers(&r);
        step(&r, "run", 60, NULL);
        rc = run_container(&r, image_id[0] ? image_id : image, cid, sizeof cid, &host_port, err);
        started = cid[0] != '\0';
    }
    if (rc == 0) {
        step(&r, "health", 70, json_pack("{s:s,s:i}", "container_id", cid, "host_port", host_port));
        rc = gate(&r, cid, host_port, err);
    }
    if (rc == 0) {
        step(&r, "route", 90, NULL);
        if (r.local && e->caddy_admin && *e->caddy_admin) {
            rc = apps_caddy_route(e, r.app, host_port, err);
            if (rc == 0)
                log_line(&r, "route → 127.0.0.1:%d", host_port);
        } else {
            log_line(&r, "no route: %s",
                     r.local ? "routing is off (--app-caddy-admin)"
                             : "routes on remote nodes are not done yet");
        }
    }
    if (rc == 0) {
        /* live from the route switch on: recorded now, then the old
         * containers go (a drain, then stop) */
        job_progress(job, 95, "retire");
        log_line(&r, "deployed %s at commit %.12s", image, commit);
        log_save(&r);
        record(&r, "app.deployed", "success",
               json_pack("{s:s,s:s,s:s,s:s,s:i}", "commit", commit, "image", image, "image_id", image_id,
                         "container_id", cid, "host_port", host_port));
        retire_later(&r, previous);
        log_save(&r);
        job_progress(job, 100, "done");
        *result = json_pack("{s:s,s:s,s:s,s:s}", "deployment_id", r.dep_id, "status", "succeeded", "commit",
                            commit, "image", image);
    } else if (!((rc == SB_EUNAVAIL || rc == SB_ETIMEOUT) && !job_cancelled(job) &&
                 job_attempt(job) < DEPLOY_ATTEMPTS)) {
        /* failed for good: the old container and route were never touched */
        if (started) {
            tail = container_tail(&r, cid);
            struct sb_err e2 = {0};
            remove_container(&r, cid, &e2);
            log_line(&r, "removed the new container %.12s; the previous one keeps serving", cid);
        } else {
            tail = json_array();
            /* the last lines of the log say why */
            const char *p = r.log.data + r.log.len;
            int lines = 0;
            while (p > r.log.data && lines <= TAIL_LINES)
                if (*--p == '\n')
                    lines++;
            if (*p == '\n')
                p++;
            while (*p) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                json_t *s = json_stringn(p, n);
                json_array_append_new(tail, s ? s : json_string("<not UTF-8>"));
                p += n + (nl ? 1 : 0);
            }
        }
        log_line(&r, "failed at %s: %s", r.step ? r.step : "start", err->msg);
        log_save(&r);
        record(&r, "app.deploy_failed", "failure",
               json_pack("{s:s,s:s,s:b,s:O,s:s}", "step", r.step ? r.step : "start", "reason", err->msg,
                         "rolled_back", started, "log_tail", tail, "commit", commit));
        *result = json_pack("{s:s,s:s,s:s,s:b}", "deployment_id", r.dep_id, "status", "failed", "reason",
                            err->msg, "rolled_back", started);
        if (rc == SB_EUNAVAIL || rc == SB_ETIMEOUT)
            rc = SB_EUPSTREAM;
    } else {
        log_line(&r, "will retry: %s", err->msg);
        log_save(&r);
    }
    json_decref(previous);
    json_decref(tail);
    json_decref(r.app);
    json_decref(r.dep);
    buf_release(&r.log);
    buf_release(&r.line);
    return rc;
}

int apps_jobs_register(struct jobs *j, struct apps_env *e, struct sb_err *err)
{
    struct jobs_kind k = {.kind = "app.deploy",
                          .run = deploy_run,
                          .ctx = e,
                          .max_attempts = DEPLOY_ATTEMPTS,
                          .timeout_s = e->build_timeout_s > 0 ? e->build_timeout_s + 900 : 2700};
    struct jobs_kind retire_kind = {
        .kind = "app.retire", .run = retire_run, .ctx = e, .max_attempts = DEPLOY_ATTEMPTS, .timeout_s = 600};
    int rc = jobs_register(j, &k, err);
    return rc ? rc : jobs_register(j, &retire_kind, err);
}
