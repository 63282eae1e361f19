/*
 * Containers on every node's Docker engine:
 *
 *   GET    /api/v1/containers                      aggregated over nodes (?node= &state= &label= &name=)
 *   GET    /api/v1/nodes/{id}/containers           one node's
 *   POST   /api/v1/nodes/{id}/containers           create (and start) from an image
 *   GET    /api/v1/nodes/{id}/containers/{cid}     inspect
 *   POST   /api/v1/nodes/{id}/containers/{cid}/{action}  start|stop|restart|kill|pause|unpause
 *          (stop and restart run as jobs: 202 {"job"}; docker/jobs.c)
 *   DELETE /api/v1/nodes/{id}/containers/{cid}     ?force= &volumes=
 *   POST   /api/v1/nodes/{id}/containers/{cid}/exec {"command":[…]}
 *   GET    /api/v1/nodes/{id}/containers/{cid}/stats  one sample
 *   GET    /api/v1/nodes/{id}/containers/{cid}/logs   ?tail= &since= &timestamps= &follow=
 *
 * Every mutation is an event `container.<action>_requested` on stream
 * container/<node>/<id> with the caller as actor and outcome success or
 * failure. The engine's own events (container.started…) come from the
 * docker/ watcher.
 */
#include "docker_api.h"

#include "../auth/auth.h"
#include "../jobs/jobs.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_OUTPUT_MAX ((size_t)1 << 20)
#define LOGS_MAX        ((size_t)16 << 20)

/* ---- shared helpers (declared in docker_api.h) --------------------------- */

/* Readers (viewers, guests with view:containers) see a container without
 * its environment's values and secret-looking labels' values. */
static bool may_operate(const struct http_request *req)
{
    const struct api_caller *c = req->user;
    return c && auth_caller_allows(c, "containers:operate");
}

bool api_docker_ref_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

int api_docker_node(struct http_request *req, const char *node_id, struct api_node *out)
{
    struct app *app = req->app;
    struct sb_err err = {0};
    if (!node_id || strlen(node_id) >= sizeof out->id || !api_docker_ref_ok(node_id, 63)) {
        http_reply_error(req, 404, "not_found", "no such node");
        return -1;
    }
    /* The local engine carries no labels; a registered node is checked
     * against its own. Outside the caller's scope a node does not exist. */
    bool visible;
    if (strcmp(node_id, DOCKER_LOCAL_NODE) == 0) {
        visible = api_node_visible(req, NULL);
    } else {
        json_t *n = NULL;
        int rc = store_node_get(app->store, node_id, &n, &err);
        if (rc && rc != SB_ENOTFOUND)
            return api_fail(req, &err);
        visible = rc == 0 && api_node_visible(req, json_object_get(n, "labels"));
        json_decref(n);
    }
    if (!visible) {
        http_reply_error(req, 404, "not_found", "no such node");
        return -1;
    }
    if (docker_endpoint_for_node(app->docker, node_id, out->socket, sizeof out->socket, out->name,
                                 sizeof out->name, &err))
        return api_fail(req, &err);
    sb_strlcpy(out->id, node_id, sizeof out->id);
    return 0;
}

void api_docker_record(struct http_request *req, const char *kind, const struct api_node *node,
                       const char *ref, const char *type, json_t *data, const struct sb_err *failure)
{
    struct app *app = req->app;
    char stream[400];
    snprintf(stream, sizeof stream, "%s/%s/%s", kind, node->id, ref);
    json_t *d = data ? json_deep_copy(data) : json_object();
    json_object_set_new(d, "node_id", json_string(node->id));
    if (failure) {
        json_t *m = json_string(failure->msg);
        json_object_set_new(d, "error", m ? m : json_string("error"));
    }
    struct event_new ev = {
        .stream = stream, .type = type, .data = d, .outcome = failure ? "failure" : "success"};
    api_actor(req, &ev.actor);
    struct sb_err err = {0};
    int64_t seq;
    if (store_append(app->store, &ev, &seq, &err))
        log_warn("action event not recorded", "type=%s detail=\"%s\"", type, err.msg);
    json_decref(d);
}

void api_docker_enqueue(struct http_request *req, const char *kind, const struct api_node *node,
                        const char *target, const char *concurrency_key, json_t *args)
{
    struct app *app = req->app;
    struct jobs_new in = {.kind = kind,
                          .target = target,
                          .node_id = node->id,
                          .concurrency_key = concurrency_key,
                          .args = args};
    api_actor(req, &in.actor);
    json_object_set_new(args, "node_id", json_string(node->id));
    json_object_set_new(args, "actor",
                        json_pack("{s:s?, s:s?, s:s?, s:s?}", "kind", in.actor.kind, "id", in.actor.id,
                                  "name", in.actor.name, "ip", in.actor.ip));
    json_t *job = NULL;
    struct sb_err err = {0};
    if (jobs_enqueue(app->jobs, &in, &job, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 202, json_pack("{s:o}", "job", job));
}

int api_query_bool(struct http_request *req, const char *name, bool def, bool *out)
{
    const char *v = http_query(req, name);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "0") || !strcmp(v, "false")) {
        *out = false;
        return 0;
    }
    http_reply_error(req, 400, "bad_parameter", "query parameter '%s' must be 1, 0, true or false", name);
    return -1;
}

/* The {cid} parameter, validated; replies 422 and returns NULL. */
static const char *container_param(struct http_request *req)
{
    const char *cid = http_param(req, "cid");
    if (!cid || !api_docker_ref_ok(cid, 128)) {
        struct sb_err err = {0};
        sb_field_error(&err, "container", "a container is named by its id or name: letters, digits, _ . -");
        api_fail(req, &err);
        return NULL;
    }
    return cid;
}

/* The node and container a /nodes/{id}/containers/{cid}/… request names;
 * NULL after replying 404/422. */
static const char *container_target(struct http_request *req, struct api_node *node)
{
    if (api_docker_node(req, http_param(req, "id"), node))
        return NULL;
    return container_param(req);
}

/* Inspects a container: its full id and name, and the whole document.
 * Replies (404, 503…) and returns -1 on failure; for a mutation (`type`
 * not NULL) the failure is recorded as that event. */
static int inspect_for(struct http_request *req, const struct api_node *node, const char *cid, json_t **doc,
                       char *id, size_t idlen, const char *type)
{
    char path[200];
    snprintf(path, sizeof path, "/containers/%s/json", cid);
    struct sb_err err = {0};
    json_t *j = NULL;
    if (docker_call(node->socket, "GET", path, NULL, 0, &j, NULL, &err)) {
        if (type) {
            json_t *data = json_pack("{s:s}", "container_id", cid);
            api_docker_record(req, "container", node, cid, type, data, &err);
            json_decref(data);
        }
        return api_fail(req, &err);
    }
    const char *full = json_string_value(json_object_get(j, "Id"));
    sb_strlcpy(id, full ? full : cid, idlen);
    if (doc)
        *doc = j;
    else
        json_decref(j);
    return 0;
}

static int inspect(struct http_request *req, const struct api_node *node, const char *cid, json_t **doc,
                   char *id, size_t idlen)
{
    return inspect_for(req, node, cid, doc, id, idlen, NULL);
}

static const char *strip_slash(const char *s)
{
    return s && s[0] == '/' ? s + 1 : (s ? s : "");
}

/* ---- list ----------------------------------------------------------------- */

static const char *const STATES[] = {"created",  "running", "paused", "restarting",
                                     "removing", "exited",  "dead",   NULL};

static bool label_filter_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return s[0] != '=';
}

static void list_node(struct http_request *req, const struct api_node *node, const char *filters,
                      const char *name_filter, json_t *rows, json_t *unavailable)
{
    struct buf path;
    buf_init(&path, 4096);
    buf_puts(&path, "/containers/json?all=1");
    if (filters) {
        buf_puts(&path, "&filters=");
        docker_urlencode(filters, &path);
    }
    struct sb_err err = {0};
    json_t *list = NULL;
    int rc = docker_call(node->socket, "GET", path.data, NULL, 10000, &list, NULL, &err);
    buf_release(&path);
    if (rc) {
        json_array_append_new(unavailable, json_pack("{s:s, s:s, s:s}", "node_id", node->id, "node_name",
                                                     node->name, "message", err.msg));
        return;
    }
    (void)req;
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *name = strip_slash(json_string_value(json_array_get(json_object_get(c, "Names"), 0)));
        if (name_filter && !strstr(name, name_filter))
            continue;
        json_t *labels = json_object_get(c, "Labels");
        json_t *row = json_pack(
            "{s:s, s:s, s:O, s:s, s:O, s:O, s:O, s:O, s:O, s:O}", "node_id", node->id, "node_name",
            node->name, "id", json_object_get(c, "Id"), "name", name, "image", json_object_get(c, "Image"),
            "state", json_object_get(c, "State"), "status", json_object_get(c, "Status"), "created",
            json_object_get(c, "Created"), "labels", json_is_object(labels) ? labels : json_object(), "ports",
            json_object_get(c, "Ports") ? json_object_get(c, "Ports") : json_array());
        if (row)
            json_array_append_new(rows, row);
    }
    json_decref(list);
}

/* One node's listing on its own thread: an unreachable node costs the
 * aggregated list its timeout once, not once per node. */
#define LIST_PARALLEL 8
struct list_job {
    struct api_node node;
    const char *filters, *name;
    json_t *rows, *unavailable; /* the job's own, merged after the join */
    pthread_t thread;
    bool threaded;
};

static void *list_job_main(void *arg)
{
    struct list_job *j = arg;
    list_node(NULL, &j->node, j->filters, j->name, j->rows, j->unavailable);
    return NULL;
}

static void list_nodes(struct list_job *jobs, size_t n, json_t *rows, json_t *unavailable)
{
    for (size_t i = 0; i < n; i += LIST_PARALLEL) {
        size_t end = i + LIST_PARALLEL < n ? i + LIST_PARALLEL : n;
        for (size_t k = i; k < end; k++) {
            /* The last of a batch runs here; so does a single node, which
             * keeps this worker's kept-alive engine connection in use. */
            jobs[k].threaded =
                k + 1 < end && pthread_create(&jobs[k].thread, NULL, list_job_main, &jobs[k]) == 0;
            if (!jobs[k].threaded)
                list_job_main(&jobs[k]);
        }
        for (size_t k = i; k < end; k++)
            if (jobs[k].threaded)
                pthread_join(jobs[k].thread, NULL);
    }
    for (size_t k = 0; k < n; k++) {
        json_array_extend(rows, jobs[k].rows);
        json_array_extend(unavailable, jobs[k].unavailable);
        json_decref(jobs[k].rows);
        json_decref(jobs[k].unavailable);
    }
}

static void list_containers(struct http_request *req, const char *only_node)
{
    const char *node_q = only_node ? only_node : http_query(req, "node");
    const char *state = http_query(req, "state");
    const char *label = http_query(req, "label");
    const char *name = http_query(req, "name");
    if (state) {
        bool ok = false;
        for (int i = 0; STATES[i]; i++)
            ok |= strcmp(state, STATES[i]) == 0;
        if (!ok) {
            http_reply_error(
                req, 400, "bad_parameter",
                "state must be one of created, running, paused, restarting, removing, exited, dead");
            return;
        }
    }
    if (label && !label_filter_ok(label)) {
        http_reply_error(req, 400, "bad_parameter",
                         "label must be key or key=value without control characters");
        return;
    }
    if (name && (strlen(name) > 128 || !*name)) {
        http_reply_error(req, 400, "bad_parameter", "name must be 1 to 128 characters");
        return;
    }
    json_t *f = json_object();
    if (state)
        json_object_set_new(f, "status", json_pack("[s]", state));
    if (label)
        json_object_set_new(f, "label", json_pack("[s]", label));
    char *filters = json_object_size(f) ? json_dumps(f, JSON_COMPACT) : NULL;
    json_decref(f);

    /* Every node the caller may see: the registered ones, then the local
     * engine unless a registered node (docker "local") already stands for
     * it, so each engine is listed once. */
    struct app *app = req->app;
    struct sb_err err = {0};
    json_t *registry = NULL;
    if (store_node_list(app->store, &registry, &err)) {
        free(filters);
        api_fail(req, &err);
        return;
    }
    json_t *ids = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(registry, i, n)
    {
        if (api_node_visible(req, json_object_get(n, "labels")))
            json_array_append(ids, json_object_get(n, "id"));
    }
    json_decref(registry);
    if (api_node_visible(req, NULL))
        json_array_append_new(ids, json_string(DOCKER_LOCAL_NODE));
    json_t *rows = json_array(), *unavailable = json_array(), *engines = json_object();
    bool found = false;
    struct list_job *jobs = calloc(json_array_size(ids) + 1, sizeof *jobs);
    size_t n_jobs = 0;
    json_array_foreach(ids, i, n)
    {
        const char *id = json_string_value(n);
        if (node_q && strcmp(node_q, id) != 0)
            continue;
        struct api_node node;
        struct sb_err e = {0};
        sb_strlcpy(node.id, id, sizeof node.id);
        if (docker_endpoint_for_node(app->docker, id, node.socket, sizeof node.socket, node.name,
                                     sizeof node.name, &e)) {
            if (e.code != SB_ENOTFOUND)
                json_array_append_new(unavailable, json_pack("{s:s, s:s, s:s}", "node_id", id, "node_name",
                                                             id, "message", e.msg));
            continue;
        }
        found = true;
        if (!node_q && json_object_get(engines, node.socket))
            continue;
        json_object_set_new(engines, node.socket, json_true());
        if (!jobs)
            continue;
        jobs[n_jobs] = (struct list_job){.node = node,
                                         .filters = filters,
                                         .name = name,
                                         .rows = json_array(),
                                         .unavailable = json_array()};
        n_jobs++;
    }
    if (jobs)
        list_nodes(jobs, n_jobs, rows, unavailable);
    else
        json_array_append_new(unavailable, json_pack("{s:s, s:s, s:s}", "node_id", "*", "node_name", "*",
                                                     "message", "out of memory"));
    free(jobs);
    json_decref(ids);
    json_decref(engines);
    free(filters);
    if (node_q && !found) {
        json_decref(rows);
        json_decref(unavailable);
        http_reply_error(req, 404, "not_found", "no such node");
        return;
    }
    if (!may_operate(req)) {
        size_t k;
        json_t *row;
        json_array_foreach(rows, k, row) docker_redact_labels(json_object_get(row, "labels"));
    }
    http_reply_json(req, 200, json_pack("{s:o, s:o}", "containers", rows, "unavailable", unavailable));
}

void api_containers_list(struct http_request *req)
{
    list_containers(req, NULL);
}

void api_node_containers_list(struct http_request *req)
{
    struct api_node node;
    if (api_docker_node(req, http_param(req, "id"), &node))
        return;
    list_containers(req, node.id);
}

/* ---- inspect, actions, remove --------------------------------------------- */

void api_container_inspect(struct http_request *req)
{
    struct api_node node;
    const char *cid = container_target(req, &node);
    if (!cid)
        return;
    json_t *doc = NULL;
    char id[80];
    if (inspect(req, &node, cid, &doc, id, sizeof id))
        return;
    if (!may_operate(req))
        docker_redact_inspect(doc);
    json_object_set_new(doc, "node_id", json_string(node.id));
    json_object_set_new(doc, "node_name", json_string(node.name));
    http_reply_json(req, 200, doc);
}

void api_container_action(struct http_request *req)
{
    struct api_node node;
    const char *cid = container_target(req, &node);
    if (!cid)
        return;
    const char *action = http_param(req, "action");
    static const char *const actions[] = {"start", "stop", "restart", "kill", "pause", "unpause", NULL};
    bool known = false;
    for (int i = 0; actions[i]; i++)
        known |= action && strcmp(action, actions[i]) == 0;
    if (!known) {
        http_reply_error(req, 404, "not_found",
                         "no such action; use start, stop, restart, kill, pause or unpause");
        return;
    }
    long timeout = -1;
    if ((!strcmp(action, "stop") || !strcmp(action, "restart")) &&
        http_query_int(req, "timeout", -1, 0, 600, &timeout))
        return;
    const char *sig = http_query(req, "signal");
    if (sig && (strcmp(action, "kill") || strlen(sig) > 12 || !api_docker_ref_ok(sig, 12))) {
        http_reply_error(req, 400, "bad_parameter",
                         "signal is a name like SIGTERM or a number, for kill only");
        return;
    }
    char type[64];
    snprintf(type, sizeof type, "container.%s_requested", action);
    char id[80];
    if (inspect_for(req, &node, cid, NULL, id, sizeof id, type))
        return;
    if (!strcmp(action, "stop") || !strcmp(action, "restart")) {
        /* Can take the whole grace period: a job (docker/jobs.c), 202. */
        char kind[32], target[200];
        snprintf(kind, sizeof kind, "container.%s", action);
        snprintf(target, sizeof target, "container/%s/%s", node.id, id);
        json_t *args = json_pack("{s:s, s:s}", "container_id", id, "action", action);
        if (timeout >= 0)
            json_object_set_new(args, "timeout", json_integer(timeout));
        api_docker_enqueue(req, kind, &node, target, target, args);
        json_decref(args);
        return;
    }
    char path[256];
    int n = snprintf(path, sizeof path, "/containers/%s/%s", id, action);
    if (timeout >= 0)
        snprintf(path + n, sizeof path - (size_t)n, "?t=%ld", timeout);
    else if (sig)
        snprintf(path + n, sizeof path - (size_t)n, "?signal=%s", sig);
    struct sb_err err = {0};
    long status = 0;
    long wait_ms = timeout >= 0 ? (timeout + 30) * 1000 : 60000;
    int rc = docker_call(node.socket, "POST", path, NULL, wait_ms, NULL, &status, &err);
    json_t *data = json_pack("{s:s, s:s}", "container_id", id, "action", action);
    if (timeout >= 0)
        json_object_set_new(data, "timeout", json_integer(timeout));
    if (sig)
        json_object_set_new(data, "signal", json_string(sig));
    api_docker_record(req, "container", &node, id, type, data, rc ? &err : NULL);
    if (rc) {
        json_decref(data);
        api_fail(req, &err);
        return;
    }
    json_object_set_new(data, "node_id", json_string(node.id));
    /* 304: already in the wanted state */
    json_object_set_new(data, "changed", json_boolean(status != 304));
    http_reply_json(req, 200, data);
}

void api_container_remove(struct http_request *req)
{
    struct api_node node;
    const char *cid = container_target(req, &node);
    if (!cid)
        return;
    bool force, volumes;
    if (api_query_bool(req, "force", false, &force) || api_query_bool(req, "volumes", false, &volumes))
        return;
    char id[80];
    if (inspect_for(req, &node, cid, NULL, id, sizeof id, "container.remove_requested"))
        return;
    char path[256];
    snprintf(path, sizeof path, "/containers/%s?force=%d&v=%d", id, force, volumes);
    struct sb_err err = {0};
    int rc = docker_call(node.socket, "DELETE", path, NULL, 60000, NULL, NULL, &err);
    json_t *data = json_pack("{s:s, s:b, s:b}", "container_id", id, "force", force, "volumes", volumes);
    api_docker_record(req, "container", &node, id, "container.remove_requested", data, rc ? &err : NULL);
    json_decref(data);
    if (rc) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 204, NULL);
}

/* ---- create ----------------------------------------------------------------- */

static bool image_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255 || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || strchr("_.-/:@", c)))
            return false;
    }
    return strstr(s, "..") == NULL;
}

static bool text_ok(const char *s, size_t max, bool allow_empty)
{
    size_t n = strlen(s);
    if ((!allow_empty && n == 0) || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool env_key_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

static int check_string_array(json_t *a, const char *field, size_t max_items, struct sb_err *err)
{
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > max_items)
        return sb_field_error(err, field, "%s must be a non-empty array of at most %zu strings", field,
                              max_items);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || !text_ok(json_string_value(v), 4096, i > 0))
            return sb_field_error(err, field, "%s items are strings without control characters", field);
    }
    return 0;
}

/* Builds the engine's create body from ours; fills err naming the field. */
static int build_create(json_t *in, json_t **out_cfg, struct sb_err *err)
{
    json_t *image = json_object_get(in, "image");
    if (!json_is_string(image) || !image_ok(json_string_value(image)))
        return sb_field_error(err, "image", "image is required: a reference like local/busybox:1");
    json_t *cfg = json_pack("{s:O}", "Image", image);
    json_t *host = json_object();
    json_object_set_new(cfg, "HostConfig", host);
    *out_cfg = cfg;

    json_t *cmd = json_object_get(in, "command");
    if (cmd) {
        if (check_string_array(cmd, "command", 256, err))
            return err->code;
        json_object_set(cfg, "Cmd", cmd);
    }
    json_t *env = json_object_get(in, "env");
    if (env) {
        if (!json_is_object(env) || json_object_size(env) > 256)
            return sb_field_error(err, "env", "env must be an object of at most 256 string values");
        json_t *list = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
            if (!env_key_ok(k) || !json_is_string(v) || !text_ok(json_string_value(v), 8192, true)) {
                json_decref(list);
                return sb_field_error(err, "env", "env names are [A-Za-z_][A-Za-z0-9_]*, values strings");
            }
            json_array_append_new(list, json_sprintf("%s=%s", k, json_string_value(v)));
        }
        json_object_set_new(cfg, "Env", list);
    }
    json_t *labels = json_object_get(in, "labels");
    if (labels) {
        if (!json_is_object(labels) || json_object_size(labels) > 64)
            return sb_field_error(err, "labels", "labels must be an object of at most 64 strings");
        const char *k;
        json_t *v;
        json_object_foreach(labels, k, v)
        {
            if (!text_ok(k, 128, false) || !json_is_string(v) || !text_ok(json_string_value(v), 1024, true))
                return sb_field_error(err, "labels",
                                      "label keys and values are strings without control characters");
        }
        json_object_set(cfg, "Labels", labels);
    }
    json_t *ports = json_object_get(in, "ports");
    if (ports) {
        if (!json_is_array(ports) || json_array_size(ports) > 64)
            return sb_field_error(err, "ports", "ports must be an array of at most 64 mappings");
        json_t *exposed = json_object(), *bindings = json_object();
        json_object_set_new(cfg, "ExposedPorts", exposed);
        json_object_set_new(host, "PortBindings", bindings);
        size_t i;
        json_t *p;
        json_array_foreach(ports, i, p)
        {
            static const char *const allowed[] = {"container", "host", "protocol", "host_ip", NULL};
            if (!json_is_object(p) || http_json_check_fields(p, allowed, err))
                return sb_field_error(err, "ports", "each port is {container, host, protocol, host_ip}");
            json_t *cp = json_object_get(p, "container"), *hp = json_object_get(p, "host");
            const char *proto = json_string_value(json_object_get(p, "protocol"));
            const char *hip = json_string_value(json_object_get(p, "host_ip"));
            if (!json_is_integer(cp) || json_integer_value(cp) < 1 || json_integer_value(cp) > 65535 ||
                (hp &&
                 (!json_is_integer(hp) || json_integer_value(hp) < 0 || json_integer_value(hp) > 65535)))
                return sb_field_error(err, "ports", "ports are whole numbers from 1 to 65535");
            if (json_object_get(p, "protocol") && (!proto || (strcmp(proto, "tcp") && strcmp(proto, "udp"))))
                return sb_field_error(err, "ports", "protocol is tcp or udp");
            if (json_object_get(p, "host_ip") &&
                (!hip || strlen(hip) > 45 || strspn(hip, "0123456789abcdefABCDEF.:") != strlen(hip)))
                return sb_field_error(err, "ports", "host_ip is an IP address");
            char key[32];
            snprintf(key, sizeof key, "%lld/%s", (long long)json_integer_value(cp), proto ? proto : "tcp");
            json_object_set_new(exposed, key, json_object());
            json_t *b = json_object_get(bindings, key);
            if (!b) {
                b = json_array();
                json_object_set_new(bindings, key, b);
            }
            json_t *hb = json_object();
            char hport[8] = "";
            if (hp && json_integer_value(hp) > 0)
                snprintf(hport, sizeof hport, "%lld", (long long)json_integer_value(hp));
            json_object_set_new(hb, "HostPort", json_string(hport));
            if (hip)
                json_object_set_new(hb, "HostIp", json_string(hip));
            json_array_append_new(b, hb);
        }
    }
    json_t *volumes = json_object_get(in, "volumes");
    if (volumes) {
        if (!json_is_array(volumes) || json_array_size(volumes) > 64)
            return sb_field_error(err, "volumes", "volumes must be an array of at most 64 mounts");
        json_t *mounts = json_array();
        json_object_set_new(host, "Mounts", mounts);
        size_t i;
        json_t *v;
        json_array_foreach(volumes, i, v)
        {
            static const char *const allowed[] = {"source", "target", "read_only", NULL};
            if (!json_is_object(v) || http_json_check_fields(v, allowed, err))
                return sb_field_error(err, "volumes", "each volume is {source, target, read_only}");
            const char *src = json_string_value(json_object_get(v, "source"));
            const char *dst = json_string_value(json_object_get(v, "target"));
            json_t *ro = json_object_get(v, "read_only");
            /* Named volumes only: a host path would hand the host's files
             * (and so root on it) to anyone who may create containers. */
            if (!src || !api_docker_ref_ok(src, 128))
                return sb_field_error(err, "volumes", "source is a volume name (letters, digits, _ . -)");
            if (!dst || dst[0] != '/' || !text_ok(dst, 1024, false) || strstr(dst, "..") || strchr(dst, ':'))
                return sb_field_error(err, "volumes", "target is an absolute path inside the container");
            if (ro && !json_is_boolean(ro))
                return sb_field_error(err, "volumes", "read_only is a boolean");
            json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:b}", "Type", "volume", "Source", src,
                                                    "Target", dst, "ReadOnly", ro && json_is_true(ro)));
        }
    }
    json_t *mem = json_object_get(in, "memory_bytes");
    if (mem) {
        if (!json_is_integer(mem) || json_integer_value(mem) < 6 * 1024 * 1024 ||
            json_integer_value(mem) > ((json_int_t)1 << 42))
            return sb_field_error(err, "memory_bytes", "memory_bytes is a whole number from 6 MiB to 4 TiB");
        json_object_set(host, "Memory", mem);
    }
    json_t *cpus = json_object_get(in, "cpus");
    if (cpus) {
        if (!json_is_number(cpus) || json_number_value(cpus) <= 0 || json_number_value(cpus) > 512)
            return sb_field_error(err, "cpus", "cpus is a number above 0 and at most 512");
        json_object_set_new(host, "NanoCpus", json_integer((json_int_t)(json_number_value(cpus) * 1e9)));
    }
    json_t *rp = json_object_get(in, "restart_policy");
    if (rp) {
        const char *name = json_string_value(json_is_object(rp) ? json_object_get(rp, "name") : rp);
        json_t *retries = json_is_object(rp) ? json_object_get(rp, "max_retries") : NULL;
        if (!name || (strcmp(name, "no") && strcmp(name, "always") && strcmp(name, "unless-stopped") &&
                      strcmp(name, "on-failure")))
            return sb_field_error(err, "restart_policy",
                                  "restart_policy is no, always, unless-stopped or on-failure");
        if (retries && (!json_is_integer(retries) || json_integer_value(retries) < 0 ||
                        json_integer_value(retries) > 1000 || strcmp(name, "on-failure")))
            return sb_field_error(err, "restart_policy", "max_retries (0 to 1000) goes with on-failure only");
        json_t *p = json_pack("{s:s}", "Name", name);
        if (retries)
            json_object_set(p, "MaximumRetryCount", retries);
        json_object_set_new(host, "RestartPolicy", p);
    }
    json_t *start = json_object_get(in, "start");
    if (start && !json_is_boolean(start))
        return sb_field_error(err, "start", "start is a boolean");
    return 0;
}

void api_container_create(struct http_request *req)
{
    static const char *const allowed[] = {"name",           "image",   "command",      "env",
                                          "ports",          "volumes", "memory_bytes", "cpus",
                                          "restart_policy", "labels",  "start",        NULL};
    if (api_check_fields(req, allowed))
        return;
    struct api_node node;
    if (api_docker_node(req, http_param(req, "id"), &node))
        return;
    struct sb_err err = {0};
    json_t *name = json_object_get(req->json, "name");
    if (name && (!json_is_string(name) || !api_docker_ref_ok(json_string_value(name), 128))) {
        sb_field_error(&err, "name",
                       "name is 1 to 128 of letters, digits, _ . - starting with a letter or digit");
        api_fail(req, &err);
        return;
    }
    json_t *cfg = NULL;
    if (build_create(req->json, &cfg, &err)) {
        json_decref(cfg);
        api_fail(req, &err);
        return;
    }
    struct buf path;
    buf_init(&path, 512);
    buf_puts(&path, "/containers/create");
    if (name) {
        buf_puts(&path, "?name=");
        docker_urlencode(json_string_value(name), &path);
    }
    json_t *created = NULL;
    int rc = docker_call(node.socket, "POST", path.data, cfg, 60000, &created, NULL, &err);
    buf_release(&path);
    json_decref(cfg);
    const char *id = json_string_value(json_object_get(created, "Id"));
    json_t *data = json_pack("{s:O}", "image", json_object_get(req->json, "image"));
    if (name)
        json_object_set(data, "name", name);
    if (!rc && id)
        json_object_set_new(data, "container_id", json_string(id));
    bool start = !json_is_false(json_object_get(req->json, "start"));
    if (!rc && id && start) {
        char p[160];
        snprintf(p, sizeof p, "/containers/%s/start", id);
        rc = docker_call(node.socket, "POST", p, NULL, 60000, NULL, NULL, &err);
        if (rc) {
            /* Leave nothing half-made: a container that cannot start goes. */
            struct sb_err ignore = {0};
            snprintf(p, sizeof p, "/containers/%s?force=1", id);
            docker_call(node.socket, "DELETE", p, NULL, 30000, NULL, NULL, &ignore);
        }
    }
    json_object_set_new(data, "started", json_boolean(!rc && start));
    api_docker_record(req, "container", &node, id ? id : (name ? json_string_value(name) : "new"),
                      "container.create_requested", data, rc ? &err : NULL);
    if (rc) {
        json_decref(data);
        json_decref(created);
        api_fail(req, &err);
        return;
    }
    json_object_set_new(data, "node_id", json_string(node.id));
    json_object_set_new(data, "node_name", json_string(node.name));
    json_object_set_new(data, "id", json_string(id ? id : ""));
    json_t *warnings = json_object_get(created, "Warnings");
    json_object_set(data, "warnings", json_is_array(warnings) ? warnings : json_array());
    json_decref(created);
    http_reply_json(req, 201, data);
}

/* ---- exec ------------------------------------------------------------------- */

void api_container_exec(struct http_request *req)
{
    static const char *const allowed[] = {"command", "timeout", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct api_node node;
    const char *cid = container_target(req, &node);
    if (!cid)
        return;
    struct sb_err err = {0};
    json_t *cmd = json_object_get(req->json, "command");
    if (check_string_array(cmd, "command", 256, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *t = json_object_get(req->json, "timeout");
    if (t && (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 600)) {
        sb_field_error(&err, "timeout", "timeout is whole seconds from 1 to 600");
        api_fail(req, &err);
        return;
    }
    long timeout_ms = t ? (long)json_integer_value(t) * 1000 : 60000;
    char id[80];
    if (inspect_for(req, &node, cid, NULL, id, sizeof id, "container.exec_requested"))
        return;
    struct docker_exec_result res;
    int rc = docker_exec(node.socket, id, cmd, timeout_ms, EXEC_OUTPUT_MAX, &res, &err);
    /* The program only: arguments may hold secrets. */
    json_t *data = json_pack("{s:s, s:O, s:i}", "container_id", id, "program", json_array_get(cmd, 0), "argc",
                             (int)json_array_size(cmd));
    if (!rc)
        json_object_set_new(data, "exit_code", json_integer(res.exit_code));
    api_docker_record(req, "container", &node, id, "container.exec_requested", data, rc ? &err : NULL);
    json_decref(data);
    if (rc) {
        docker_exec_result_release(&res);
        api_fail(req, &err);
        return;
    }
    json_t *out = json_stringn(res.out.data, res.out.len);
    json_t *errs = json_stringn(res.err.data, res.err.len);
    json_t *reply =
        json_pack("{s:i, s:o, s:o, s:b}", "exit_code", res.exit_code, "stdout", out ? out : json_string(""),
                  "stderr", errs ? errs : json_string(""), "truncated", res.truncated);
    if (!out || !errs)
        json_object_set_new(reply, "binary", json_true());
    docker_exec_result_release(&res);
    http_reply_json(req, 200, reply);
}

/* ---- stats -------------------------------------------------------------------- */

static json_int_t jint(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

void api_container_stats(struct http_request *req)
{
    struct api_node node;
    const char *cid = container_target(req, &node);
    if (!cid)
        return;
    char path[200];
    snprintf(path, sizeof path, "/containers/%s/stats?stream=false", cid);
    struct sb_err err = {0};
    json_t *s = NULL;
    if (docker_call(node.socket, "GET", path, NULL, 15000, &s, NULL, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *cpu = json_object_get(s, "cpu_stats"), *pre = json_object_get(s, "precpu_stats");
    double cpu_delta =
        (double)(jint(cpu, "cpu_usage", "total_usage") - jint(pre, "cpu_usage", "total_usage"));
    double sys_delta = (double)(jint(cpu, "system_cpu_usage", NULL) - jint(pre, "system_cpu_usage", NULL));
    json_int_t ncpu = jint(cpu, "online_cpus", NULL);
    double cpu_pct =
        sys_delta > 0 && cpu_delta > 0 ? cpu_delta / sys_delta * (double)(ncpu ? ncpu : 1) * 100.0 : 0;
    json_t *mem = json_object_get(s, "memory_stats");
    json_int_t usage = jint(mem, "usage", NULL), limit = jint(mem, "limit", NULL);
    json_int_t cache = jint(json_object_get(mem, "stats"), "inactive_file", NULL);
    json_int_t rx = 0, tx = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(s, "networks"), k, v)
    {
        rx += jint(v, "rx_bytes", NULL);
        tx += jint(v, "tx_bytes", NULL);
    }
    json_int_t rd = 0, wr = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(json_object_get(s, "blkio_stats"), "io_service_bytes_recursive"), i, e)
    {
        const char *op = json_string_value(json_object_get(e, "op"));
        if (op && !strcasecmp(op, "read"))
            rd += jint(e, "value", NULL);
        else if (op && !strcasecmp(op, "write"))
            wr += jint(e, "value", NULL);
    }
    json_t *reply = json_pack(
        "{s:s, s:O, s:O, s:f, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I}", "node_id", node.id, "id",
        json_object_get(s, "id") ? json_object_get(s, "id") : json_null(), "read",
        json_object_get(s, "read") ? json_object_get(s, "read") : json_null(), "cpu_percent", cpu_pct,
        "online_cpus", (json_int_t)ncpu, "memory_bytes", usage - cache, "memory_limit_bytes", limit,
        "memory_percent", limit > 0 ? (double)(usage - cache) * 100.0 / (double)limit : 0.0,
        "network_rx_bytes", rx, "network_tx_bytes", tx, "block_read_bytes", rd, "block_write_bytes", wr,
        "pids", jint(s, "pids_stats", "current"));
    json_decref(s);
    http_reply_json(req, 200, reply);
}

/* ---- logs ----------------------------------------------------------------------- */

struct ndjson {
    struct buf *out;
    bool timestamps;
    bool full;
};

static int ndjson_line(void *ctx, int stream, const char *line, size_t len)
{
    struct ndjson *n = ctx;
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(stream == DOCKER_STDERR ? "stderr" : "stdout"));
    if (n->timestamps) {
        const char *sp = memchr(line, ' ', len);
        if (sp) {
            json_object_set_new(o, "ts", json_stringn(line, (size_t)(sp - line)));
            len -= (size_t)(sp - line) + 1;
            line = sp + 1;
        }
    }
    json_t *s = json_stringn(line, len);
    json_object_set_new(o, "line", s ? s : json_string("\xef\xbf\xbd"));
    char *j = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (j && (buf_puts(n->out, j) || buf_putc(n->out, '\n')))
        n->full = true;
    free(j);
    return 0;
}

static int ndjson_frame(void *ctx, int stream, const char *data, size_t len)
{
    return docker_lines_feed(ctx, stream, data, len);
}

void api_container_logs(struct http_request *req)
{
    struct api_node node;
    const char *cid = container_target(req, &node);
    if (!cid)
        return;
    bool follow, timestamps;
    if (api_query_bool(req, "follow", false, &follow) ||
        api_query_bool(req, "timestamps", false, &timestamps))
        return;
    const char *tail = http_query(req, "tail");
    long tail_n = -1;
    if (tail && strcmp(tail, "all") != 0 && http_query_int(req, "tail", -1, 0, 100000, &tail_n))
        return;
    if (!tail)
        tail_n = follow ? 0 : 1000;
    const char *since = http_query(req, "since");
    long long since_s = 0;
    if (since) {
        int64_t us;
        char *end;
        long long v = strtoll(since, &end, 10);
        if (*since && !*end && v >= 0)
            since_s = v;
        else if (time_parse_rfc3339(since, &us) == 0 && us >= 0)
            since_s = us / 1000000;
        else {
            http_reply_error(req, 400, "bad_parameter", "since is an RFC 3339 time or Unix seconds");
            return;
        }
    }
    json_t *doc = NULL;
    char id[80];
    if (inspect(req, &node, cid, &doc, id, sizeof id))
        return;
    bool tty = json_is_true(json_object_get(json_object_get(doc, "Config"), "Tty"));
    json_decref(doc);

    char path[320];
    int n = snprintf(path, sizeof path, "/containers/%s/logs?stdout=1&stderr=1&timestamps=%d&follow=%d", id,
                     timestamps, follow);
    if (tail_n >= 0)
        n += snprintf(path + n, sizeof path - (size_t)n, "&tail=%ld", tail_n);
    if (since_s)
        snprintf(path + n, sizeof path - (size_t)n, "&since=%lld", since_s);
    struct sb_err err = {0};
    struct app *app = req->app;
    if (follow) {
        struct MHD_Response *resp = NULL;
        if (docker_follow_logs(app->docker, node.socket, path, tty, timestamps, req->conn, &resp, &err)) {
            api_fail(req, &err);
            return;
        }
        http_reply_response(req, 200, resp);
        return;
    }
    struct docker_response r;
    if (docker_request(node.socket, "GET", path, NULL, 30000, &r, &err)) {
        api_fail(req, &err);
        return;
    }
    if (r.status != 200) {
        json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        sb_error(&err, r.status == 404 ? SB_ENOTFOUND : SB_EUPSTREAM, "%s",
                 m ? m : "the engine refused the logs");
        json_decref(j);
        docker_response_release(&r);
        api_fail(req, &err);
        return;
    }
    struct buf out;
    buf_init(&out, LOGS_MAX);
    struct ndjson nd = {.out = &out, .timestamps = timestamps};
    struct docker_lines lines;
    docker_lines_init(&lines, ndjson_line, &nd);
    struct docker_frames frames;
    docker_frames_init(&frames, tty, ndjson_frame, &lines);
    int rc = docker_frames_feed(&frames, r.body.data, r.body.len);
    docker_lines_flush(&lines);
    docker_lines_release(&lines);
    docker_response_release(&r);
    if (rc) {
        buf_release(&out);
        http_reply_error(req, 502, "upstream_error", "the engine sent a malformed log stream");
        return;
    }
    if (nd.full)
        http_add_header(req, "X-Truncated", "1");
    http_reply_text(req, 200, "application/x-ndjson", out.data, out.len);
    buf_release(&out);
}
