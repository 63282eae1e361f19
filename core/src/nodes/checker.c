/*
 * The health checker: every node-check-interval seconds, on the daemon
 * holding the "node-checks" duty, each node is checked on one of
 * CHECK_WORKERS threads; a change of status is an event (node.online,
 * node.offline, node.hostkey_mismatch), the details of the last check stay
 * in memory (last_check).
 */
#include "internal.h"

#include "../docker/docker.h"
#include "../jobs/jobs.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void nodes_add_pool(struct nodes *n, json_t *node)
{
    struct ssh_pool_stats st;
    ssh_pool_stats(n->pool, json_string_value(json_object_get(node, "id")), &st);
    json_object_set_new(node, "pool",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "open", (json_int_t)st.open,
                                  "busy", (json_int_t)st.busy, "hits", (json_int_t)st.hits, "misses",
                                  (json_int_t)st.misses, "failures", (json_int_t)st.failures, "waits",
                                  (json_int_t)st.waits, "timeouts", (json_int_t)st.timeouts, "channels",
                                  (json_int_t)st.channels));
}

static json_t *check_json(const struct check_result *c)
{
    char at[40];
    time_format_rfc3339(c->checked_us, at, sizeof at);
    json_t *o = json_pack("{s:s, s:s, s:I}", "status", c->status, "checked_at", at, "duration_ms",
                          (json_int_t)c->duration_ms);
    if (c->reason[0])
        json_object_set_new(o, "reason", nodes_json_bytes(c->reason, strlen(c->reason)));
    if (c->uname[0])
        json_object_set_new(o, "uname", nodes_json_bytes(c->uname, strlen(c->uname)));
    if (c->uptime[0])
        json_object_set_new(o, "uptime", nodes_json_bytes(c->uptime, strlen(c->uptime)));
    if (c->docker_status[0]) {
        json_t *d = json_pack("{s:s}", "status", c->docker_status);
        if (c->docker_reason[0])
            json_object_set_new(d, "reason", nodes_json_bytes(c->docker_reason, strlen(c->docker_reason)));
        json_object_set_new(o, "docker", d);
    }
    return o;
}

void nodes_add_last_check(struct nodes *an, json_t *node)
{
    const char *id = json_string_value(json_object_get(node, "id"));
    pthread_mutex_lock(&an->lock);
    for (struct check_result *c = an->checks; c; c = c->next)
        if (strcmp(c->id, id) == 0) {
            json_object_set_new(node, "last_check", check_json(c));
            break;
        }
    pthread_mutex_unlock(&an->lock);
}

/* The node's Docker engine: its /_ping through the node's endpoint (the SSH
 * bridge, whose refusals say in words what is wrong, or the local socket).
 * Fills status ("reachable"/"unreachable") and reason. */
static void check_docker(struct nodes *n, json_t *node, bool ssh_ok, struct check_result *out)
{
    const char *id = json_string_value(json_object_get(node, "id"));
    const char *docker = json_string_value(json_object_get(node, "docker"));
    bool local = docker && strcmp(docker, "local") == 0;
    if (!n->docker) {
        out->docker_status[0] = '\0'; /* no Docker client: not judged */
        return;
    }
    if (!local && !ssh_ok) {
        sb_strlcpy(out->docker_status, "unreachable", sizeof out->docker_status);
        sb_strlcpy(out->docker_reason, "the node is not reachable over SSH", sizeof out->docker_reason);
        return;
    }
    char sock[DOCKER_SOCKET_MAX], name[128];
    struct sb_err err = {0};
    int rc;
    if (local && (!n->local_docker || access(n->local_docker, F_OK) != 0)) {
        rc = sb_error(&err, SB_EUNAVAIL, "Docker socket %s not found on this server (the core's machine)",
                      n->local_docker ? n->local_docker : "(none)");
    } else {
        rc = docker_endpoint_for_node(n->docker, id, sock, sizeof sock, name, sizeof name, &err);
        struct docker_response r = {0};
        if (rc == 0)
            rc = docker_request(sock, "GET", "/_ping", NULL, CHECK_DOCKER_TIMEOUT_MS, &r, &err);
        if (rc == 0 && r.status != 200) {
            /* The bridge's refusals carry the cause in words. */
            json_t *m = r.body.len ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
            const char *msg = json_string_value(json_object_get(m, "message"));
            rc = msg ? sb_error(&err, SB_EUPSTREAM, "%s", msg)
                     : sb_error(&err, SB_EUPSTREAM, "the Docker engine answered its ping with status %ld",
                                r.status);
            json_decref(m);
        }
        docker_response_release(&r);
    }
    if (rc == 0) {
        sb_strlcpy(out->docker_status, "reachable", sizeof out->docker_status);
    } else {
        sb_strlcpy(out->docker_status, "unreachable", sizeof out->docker_status);
        sb_strlcpy(out->docker_reason, err.msg, sizeof out->docker_reason);
    }
}

/* Records the SSH status event of a check that changed it. */
static void record_status(struct nodes *an, json_t *node, const struct ssh_diag *d, const char *type,
                          const struct check_result *out)
{
    const char *id = out->id;
    const char *prev = json_string_value(json_object_get(node, "status"));
    if (!prev || strcmp(prev, out->status) != 0) {
        if (d->failure == SSH_FAIL_HOSTKEY) {
            nodes_note_hostkey_mismatch(an, node, d);
        } else {
            json_t *data = json_pack("{s:s, s:s}", "id", id, "previous", prev ? prev : "unknown");
            if (out->reason[0])
                json_object_set_new(data, "reason", json_string(out->reason));
            if (out->uname[0])
                json_object_set_new(data, "uname", nodes_json_bytes(out->uname, strlen(out->uname)));
            struct sb_err e2 = {0};
            if (nodes_record(an, id, type, data, "success", NULL, &e2))
                log_warn("cannot record node status", "node=%s detail=\"%s\"", id, e2.msg);
            else
                log_info("node status changed", "node=%s status=%s", id, out->status);
            json_decref(data);
        }
    }
}

/* Records the Docker status event of a check that changed it. */
static void record_docker(struct nodes *an, json_t *node, const struct check_result *out)
{
    const char *id = out->id;
    if (!out->docker_status[0])
        return;
    const char *dprev = json_string_value(json_object_get(node, "docker_status"));
    const char *dreason = json_string_value(json_object_get(node, "docker_reason"));
    bool changed = !dprev || strcmp(dprev, out->docker_status) != 0 ||
                   (out->docker_reason[0] && (!dreason || strcmp(dreason, out->docker_reason) != 0));
    if (!changed)
        return;
    json_t *data = json_pack("{s:s, s:s}", "id", id, "previous", dprev ? dprev : "unknown");
    if (out->docker_reason[0])
        json_object_set_new(data, "reason", nodes_json_bytes(out->docker_reason, strlen(out->docker_reason)));
    char dtype[40];
    snprintf(dtype, sizeof dtype, "node.docker_%s", out->docker_status);
    struct sb_err e2 = {0};
    if (nodes_record(an, id, dtype, data, "success", NULL, &e2))
        log_warn("cannot record the node's docker status", "node=%s detail=\"%s\"", id, e2.msg);
    else
        log_info("node docker status changed", "node=%s docker=%s reason=\"%s\"", id, out->docker_status,
                 out->docker_reason);
    json_decref(data);
}

/* Checks one node (given its row, borrowed) and records the status events
 * when something changed. Fills *out.
 *
 * The check opens a connection of its own rather than a pooled session: a
 * pooled session outlives a node that stopped accepting connections (its
 * sshd stopped while the session's own process runs on, a firewall that
 * keeps established flows), and would keep a dead node "online". So a node
 * is online exactly when a new login works now, and a node found offline
 * has its pooled sessions forgotten. */
static void check_node(struct nodes *an, json_t *node, struct check_result *out)
{
    memset(out, 0, sizeof *out);
    const char *id = json_string_value(json_object_get(node, "id"));
    sb_strlcpy(out->id, id, sizeof out->id);
    out->checked_us = time_now_us();
    struct nodes_target t = {.node = json_incref(node)};
    struct sb_err err = {0};
    struct ssh_diag d = {0};
    int rc = nodes_target_load(an, id, &t, &err);
    struct ssh_exec_result r;
    ssh_exec_result_init(&r);
    bool loaded = rc == 0, tunnel_up = false;
    if (rc == 0) {
        struct ssh_session *s = NULL;
        rc = ssh_connect(&t.t, an->check_timeout_ms, &s, &d, &err);
        tunnel_up = rc == 0 || d.failure == SSH_FAIL_AUTH || d.failure == SSH_FAIL_KEY ||
                    d.failure == SSH_FAIL_HOSTKEY;
        if (rc == 0) {
            struct ssh_exec_opts o = {.command = "uname -a; uptime", .timeout_ms = 15000, .max_output = 4096};
            rc = ssh_exec(s, &o, &r, &err);
            if (rc == 0 && (r.timed_out || r.exit_code != 0))
                rc = sb_error(&err, SB_EUPSTREAM, "the check command %s",
                              r.timed_out ? "timed out" : "failed on the node");
        }
        ssh_session_close(s);
    }
    const char *type;
    if (rc == 0) {
        sb_strlcpy(out->status, "online", sizeof out->status);
        char *nl = memchr(r.out.data, '\n', r.out.len);
        if (nl) {
            *nl = '\0';
            sb_strlcpy(out->uname, r.out.data, sizeof out->uname);
            char *up = nl + 1, *end = strchr(up, '\n');
            if (end)
                *end = '\0';
            while (*up == ' ')
                up++;
            sb_strlcpy(out->uptime, up, sizeof out->uptime);
        }
        type = "node.online";
    } else if (d.failure == SSH_FAIL_HOSTKEY) {
        sb_strlcpy(out->status, "hostkey_mismatch", sizeof out->status);
        sb_strlcpy(out->reason, err.msg, sizeof out->reason);
        type = "node.hostkey_mismatch";
    } else {
        sb_strlcpy(out->status, "offline", sizeof out->status);
        sb_strlcpy(out->reason, err.msg, sizeof out->reason);
        type = "node.offline";
    }
    ssh_exec_result_release(&r);
    nodes_target_release(&t);
    /* A tunnel is up when its forward accepted and an SSH server answered
     * through it (the login may still fail: that is the node's status). */
    if (loaded && nodes_is_tunnel(node))
        nodes_tunnel_note(an, node, tunnel_up, err.msg);
    /* The SSH verdict is recorded before anything that may wait on the
     * node's old sessions (forgetting a bridge, the Docker ping): a node
     * that is back is online at once. */
    record_status(an, node, &d, type, out);
    if (rc) {
        /* No stale session answers for a node that does not. */
        ssh_pool_forget(an->pool, id);
        ssh_bridge_forget(an->bridges, id);
    }
    check_docker(an, node, rc == 0, out);
    out->duration_ms = (time_now_us() - out->checked_us) / 1000;
    record_docker(an, node, out);
    pthread_mutex_lock(&an->lock);
    struct check_result *c = an->checks;
    while (c && strcmp(c->id, id) != 0)
        c = c->next;
    if (!c && (c = calloc(1, sizeof *c))) {
        c->next = an->checks;
        an->checks = c;
    }
    if (c) {
        struct check_result *next = c->next;
        *c = *out;
        c->next = next;
    }
    pthread_mutex_unlock(&an->lock);
}

void nodes_check_now(struct nodes *n, json_t *node, json_t **result_out)
{
    struct check_result c;
    check_node(n, node, &c);
    json_t *out = check_json(&c);
    json_object_set_new(out, "id", json_string(c.id));
    *result_out = out;
}

static void *check_worker(void *arg)
{
    struct nodes *an = arg;
    pthread_mutex_lock(&an->lock);
    for (;;) {
        while (!an->stopping && !an->queue)
            pthread_cond_wait(&an->work_cond, &an->lock);
        if (an->stopping)
            break;
        struct check_job *j = an->queue;
        an->queue = j->next;
        if (!an->queue)
            an->queue_tail = NULL;
        pthread_mutex_unlock(&an->lock);
        struct check_result c;
        check_node(an, j->node, &c);
        pthread_mutex_lock(&an->lock);
        json_object_del(an->checking, json_string_value(json_object_get(j->node, "id")));
        json_decref(j->node);
        free(j);
    }
    pthread_mutex_unlock(&an->lock);
    return NULL;
}

/* Queues a check of every node not already queued or being checked.
 * Called with an->lock held. Takes the rows (all, borrowed). */
static void queue_checks(struct nodes *an, json_t *all)
{
    size_t i;
    json_t *n;
    json_array_foreach(all, i, n)
    {
        const char *id = json_string_value(json_object_get(n, "id"));
        if (!id || json_object_get(an->checking, id))
            continue;
        struct check_job *j = calloc(1, sizeof *j);
        if (!j)
            break;
        j->node = json_incref(n);
        json_object_set_new(an->checking, id, json_true());
        if (an->queue_tail)
            an->queue_tail->next = j;
        else
            an->queue = j;
        an->queue_tail = j;
    }
    pthread_cond_broadcast(&an->work_cond);
}

void nodes_check_soon(struct nodes *an, json_t *node)
{
    /* With several daemons only the duty's holder checks (status events once). */
    if (!node || an->n_workers == 0 || !jobs_duty_held(an->jobs, "node-checks"))
        return;
    json_t *one = json_array();
    json_array_append(one, node);
    pthread_mutex_lock(&an->lock);
    if (!an->stopping)
        queue_checks(an, one);
    pthread_mutex_unlock(&an->lock);
    json_decref(one);
}

static void *checker_main(void *arg)
{
    struct nodes *an = arg;
    pthread_mutex_lock(&an->lock);
    while (!an->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += an->interval_s;
        while (!an->stopping && pthread_cond_timedwait(&an->cond, &an->lock, &ts) == 0) {
        }
        if (an->stopping)
            break;
        pthread_mutex_unlock(&an->lock);
        nodes_labels_reload_if_stale(an);
        /* Every daemon keeps its host's tunnel keys equal to the registry
         * (another daemon's registrations and deletions included). */
        nodes_tunnels_sync(an);
        json_t *all = NULL;
        struct sb_err err = {0};
        int rc = store_node_list(an->store, &all, &err);
        pthread_mutex_lock(&an->lock);
        /* With several daemons on one database, only the duty's holder. */
        if (rc == 0 && !an->stopping && jobs_duty_held(an->jobs, "node-checks"))
            queue_checks(an, all);
        json_decref(all);
    }
    pthread_mutex_unlock(&an->lock);
    return NULL;
}

void nodes_checks_forget(struct nodes *n, const char *id)
{
    pthread_mutex_lock(&n->lock);
    for (struct check_result **pp = &n->checks; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            struct check_result *c = *pp;
            *pp = c->next;
            free(c);
            break;
        }
    }
    pthread_mutex_unlock(&n->lock);
}

int nodes_checker_start(struct nodes *an, struct sb_err *err)
{
    if (an->interval_s <= 0)
        return 0;
    an->checking = json_object();
    for (int i = 0; i < CHECK_WORKERS; i++) {
        if (pthread_create(&an->workers[i], NULL, check_worker, an) != 0)
            return sb_error(err, SB_EINTERNAL, "cannot start the node checkers");
        an->n_workers++;
    }
    if (pthread_create(&an->checker, NULL, checker_main, an) != 0)
        return sb_error(err, SB_EINTERNAL, "cannot start the node checker");
    an->checker_running = true;
    return 0;
}

void nodes_checker_stop(struct nodes *an)
{
    pthread_mutex_lock(&an->lock);
    an->stopping = true;
    pthread_cond_broadcast(&an->cond);
    pthread_cond_broadcast(&an->work_cond);
    pthread_mutex_unlock(&an->lock);
    if (an->checker_running)
        pthread_join(an->checker, NULL);
    an->checker_running = false;
    for (int i = 0; i < an->n_workers; i++)
        pthread_join(an->workers[i], NULL);
    an->n_workers = 0;
    for (struct check_job *j = an->queue, *next; j; j = next) {
        next = j->next;
        json_decref(j->node);
        free(j);
    }
    an->queue = an->queue_tail = NULL;
    json_decref(an->checking);
    an->checking = NULL;
    for (struct check_result *c = an->checks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    an->checks = NULL;
}
