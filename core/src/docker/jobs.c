/*
 * Long Docker operations run as jobs (core/src/jobs/): container.stop,
 * container.restart and image.pull. The API checks the request, resolves the
 * container, enqueues and answers 202 {"job"}; the handler here does the
 * engine call on a jobs worker (no HTTP worker waits meanwhile) and records
 * the same outcome event the synchronous call did (container.<action>_requested,
 * image.pull_requested) with the requesting caller as actor.
 *
 * args (no secrets): {node_id, container_id, action, timeout?, actor{kind,id,name,ip}}
 *                    {node_id, image, tag, actor}
 */
#include "internal.h"

#include "../jobs/jobs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PULL_LOG_LINES 200

static void record(struct docker *d, struct job_ctx *c, json_t *args, const char *kind, const char *node_id,
                   const char *ref, const char *type, json_t *data, const struct sb_err *failure)
{
    char stream[400];
    snprintf(stream, sizeof stream, "%s/%s/%s", kind, node_id, ref);
    json_object_set_new(data, "node_id", json_string(node_id));
    json_object_set_new(data, "job_id", json_string(job_id(c)));
    if (failure) {
        json_t *m = json_string(failure->msg);
        json_object_set_new(data, "error", m ? m : json_string("error"));
    }
    json_t *a = json_object_get(args, "actor");
    struct event_new ev = {.stream = stream,
                           .type = type,
                           .data = data,
                           .actor = {.kind = json_string_value(json_object_get(a, "kind")),
                                     .id = json_string_value(json_object_get(a, "id")),
                                     .name = json_string_value(json_object_get(a, "name")),
                                     .ip = json_string_value(json_object_get(a, "ip"))},
                           .outcome = failure ? "failure" : "success"};
    if (!ev.actor.kind)
        ev.actor.kind = "system";
    struct sb_err err = {0};
    int64_t seq;
    if (store_append(d->store, &ev, &seq, &err))
        log_warn("action event not recorded", "type=%s detail=\"%s\"", type, err.msg);
}

/* The engine call on its own thread, so the handler can report progress
 * while a stop waits out its grace period. */
struct call {
    char socket[DOCKER_SOCKET_MAX];
    char path[300];
    long wait_ms;
    int rc;
    long status;
    struct sb_err err;
    atomic_bool done;
};

static void *call_main(void *arg)
{
    struct call *k = arg;
    k->rc = docker_call(k->socket, "POST", k->path, NULL, k->wait_ms, NULL, &k->status, &k->err);
    atomic_store(&k->done, true);
    return NULL;
}

static int container_action(struct job_ctx *c, json_t *args, json_t **result, struct sb_err *err)
{
    struct docker *d = job_kind_ctx(c);
    const char *node_id = json_string_value(json_object_get(args, "node_id"));
    const char *id = json_string_value(json_object_get(args, "container_id"));
    const char *action = json_string_value(json_object_get(args, "action"));
    json_t *tj = json_object_get(args, "timeout");
    long timeout = json_is_integer(tj) ? (long)json_integer_value(tj) : -1;
    if (!node_id || !id || !action || (strcmp(action, "stop") && strcmp(action, "restart")))
        return sb_error(err, SB_EINVAL, "container job args need node_id, container_id and action");
    struct call *k = calloc(1, sizeof *k);
    if (!k)
        return sb_error(err, SB_ENOMEM, "out of memory");
    char name[128];
    if (docker_endpoint_for_node(d, node_id, k->socket, sizeof k->socket, name, sizeof name, err)) {
        free(k);
        return err->code;
    }
    int n = snprintf(k->path, sizeof k->path, "/containers/%s/%s", id, action);
    if (timeout >= 0)
        snprintf(k->path + n, sizeof k->path - (size_t)n, "?t=%ld", timeout);
    k->wait_ms = timeout >= 0 ? (timeout + 30) * 1000 : 60000;
    char step[64];
    snprintf(step, sizeof step, "%s", strcmp(action, "stop") == 0 ? "stopping" : "restarting");
    job_progress(c, 0, step);
    pthread_t t;
    if (pthread_create(&t, NULL, call_main, k) != 0) {
        free(k);
        return sb_error(err, SB_EUNAVAIL, "cannot start the engine call");
    }
    /* Progress: the share of the grace period elapsed (the engine kills the
     * container when it runs out). */
    int64_t start = time_mono_ms(), last = start;
    long grace_ms = (timeout >= 0 ? timeout : 10) * 1000;
    while (!atomic_load(&k->done)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        nanosleep(&ts, NULL);
        int64_t now = time_mono_ms();
        if (now - last >= 1000 && !atomic_load(&k->done)) {
            last = now;
            int pct = grace_ms > 0 ? (int)((now - start) * 99 / grace_ms) : 50;
            job_progress(c, pct > 99 ? 99 : pct, step);
        }
    }
    pthread_join(t, NULL);
    json_t *data = json_pack("{s:s, s:s}", "container_id", id, "action", action);
    if (timeout >= 0)
        json_object_set_new(data, "timeout", json_integer(timeout));
    char type[64];
    snprintf(type, sizeof type, "container.%s_requested", action);
    record(d, c, args, "container", node_id, id, type, data, k->rc ? &k->err : NULL);
    int rc = k->rc;
    if (rc) {
        *err = k->err;
        json_decref(data);
    } else {
        json_object_set_new(data, "changed", json_boolean(k->status != 304)); /* 304: already so */
        json_object_del(data, "job_id");
        *result = data;
        job_progress(c, 100, "done");
    }
    free(k);
    return rc;
}

static int image_pull(struct job_ctx *c, json_t *args, json_t **result, struct sb_err *err)
{
    struct docker *d = job_kind_ctx(c);
    const char *node_id = json_string_value(json_object_get(args, "node_id"));
    const char *image = json_string_value(json_object_get(args, "image"));
    const char *tag = json_string_value(json_object_get(args, "tag"));
    if (!node_id || !image)
        return sb_error(err, SB_EINVAL, "image.pull args need node_id and image");
    if (!tag)
        tag = "latest";
    char socket[DOCKER_SOCKET_MAX], name[128];
    if (docker_endpoint_for_node(d, node_id, socket, sizeof socket, name, sizeof name, err))
        return err->code;
    struct buf path;
    buf_init(&path, 1024);
    buf_puts(&path, "/images/create?fromImage=");
    docker_urlencode(image, &path);
    buf_puts(&path, "&tag=");
    docker_urlencode(tag, &path);
    char ref[300];
    snprintf(ref, sizeof ref, "%s:%s", image, tag);
    job_progress(c, -1, "pulling");
    struct docker_response r;
    int rc = docker_request(socket, "POST", path.data, NULL, 600000, &r, err);
    buf_release(&path);
    json_t *data = json_pack("{s:s}", "image", ref);
    if (rc) {
        record(d, c, args, "image", node_id, ref, "image.pull_requested", data, err);
        json_decref(data);
        return rc;
    }
    /* Progress objects, one per line; an error can come as a status or as a
     * final {"error": …} line. Distinct status lines go to the job's log. */
    char failure[256] = "", status[256] = "", prev[256] = "";
    int logged = 0;
    for (char *line = r.body.data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        json_t *j = json_loadb(line, len, 0, NULL);
        if (!j)
            continue;
        const char *e = json_string_value(json_object_get(j, "error"));
        const char *s = json_string_value(json_object_get(j, "status"));
        const char *id = json_string_value(json_object_get(j, "id"));
        if (e)
            sb_strlcpy(failure, e, sizeof failure);
        if (s) {
            snprintf(status, sizeof status, "%s%s%s", id ? id : "", id ? ": " : "", s);
            if (strcmp(status, prev) != 0 && logged < PULL_LOG_LINES && !strstr(s, "Downloading") &&
                !strstr(s, "Extracting")) {
                job_log(c, "%s", status);
                logged++;
            }
            sb_strlcpy(prev, status, sizeof prev);
        }
        json_decref(j);
    }
    if (r.status != 200) {
        json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        rc = sb_error(err, r.status == 404 ? SB_ENOTFOUND : SB_EUPSTREAM, "%s", m ? m : "pull failed");
        json_decref(j);
    } else if (failure[0]) {
        rc = sb_error(err, SB_EUPSTREAM, "%s", failure);
    }
    docker_response_release(&r);
    record(d, c, args, "image", node_id, ref, "image.pull_requested", data, rc ? err : NULL);
    if (rc) {
        json_decref(data);
        return rc;
    }
    json_object_del(data, "job_id");
    json_object_set_new(data, "status", json_string(status));
    *result = data;
    job_progress(c, 100, "pulled");
    return 0;
}

int docker_register_jobs(struct docker *d, struct jobs *j, struct sb_err *err)
{
    /* timeout_s: the longest grace (600 s) plus the engine's own time. */
    const struct jobs_kind kinds[] = {
        {.kind = "container.stop", .run = container_action, .ctx = d, .max_attempts = 2, .timeout_s = 700},
        {.kind = "container.restart", .run = container_action, .ctx = d, .max_attempts = 2, .timeout_s = 700},
        {.kind = "image.pull", .run = image_pull, .ctx = d, .max_attempts = 3, .timeout_s = 900},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (jobs_register(j, &kinds[i], err))
            return err->code;
    return 0;
}
