/*
 * Apply: a plan run through the Docker Engine API (docker/docker.h), the
 * same calls for the local engine and a node behind the SSH bridge.
 *
 * Every object carries the compose 1.29 labels, so `docker-compose -p NAME
 * ps` on the node lists the stack. Containers are named
 * <project>_<service>_<n>, n one above the highest of the service, so a
 * start-first update can run the new container beside the old one.
 *
 * Re-running a plan after a crash is safe: the plan is recomputed from the
 * containers that exist, and a recreate counts containers that already carry
 * the desired hash (and run) towards the replica count.
 */
#include "internal.h"

#include "../caddy/caddy.h"
#include "../docker/docker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_S 10

static const char *label_of(json_t *container, const char *k)
{
    return json_string_value(json_object_get(json_object_get(container, "labels"), k));
}

static void hook_log(const struct stacks_apply *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void hook_log(const struct stacks_apply *a, const char *fmt, ...)
{
    if (!a->hooks.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    a->hooks.log(a->hooks.ctx, line);
}

static bool cancelled(const struct stacks_apply *a)
{
    return a->hooks.cancelled && a->hooks.cancelled(a->hooks.ctx);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- listing --------------------------------------------------------- */

static void filters_path(const char *base, const char *project, bool oneoff_false, struct buf *out)
{
    char f[400];
    if (oneoff_false)
        snprintf(f, sizeof f, "{\"label\":[\"%s=%s\",\"%s=False\"]}", LABEL_PROJECT, project, LABEL_ONEOFF);
    else
        snprintf(f, sizeof f, "{\"label\":[\"%s=%s\"]}", LABEL_PROJECT, project);
    buf_puts(out, base);
    buf_puts(out, "filters=");
    docker_urlencode(f, out);
}

static const char *health_of_status(const char *status)
{
    if (!status)
        return "none";
    if (strstr(status, "(healthy)"))
        return "healthy";
    if (strstr(status, "(unhealthy)"))
        return "unhealthy";
    if (strstr(status, "health: starting"))
        return "starting";
    return "none";
}

int stacks_containers(const char *socket, const char *project, json_t **out, struct sb_err *err)
{
    struct buf path;
    buf_init(&path, 4096);
    filters_path("/containers/json?all=1&", project, true, &path);
    json_t *list = NULL;
    int rc = docker_call(socket, "GET", path.data, NULL, 0, &list, NULL, err);
    buf_release(&path);
    if (rc)
        return rc;
    json_t *arr = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:s,s:O,s:s}", "id", json_string_value(json_object_get(c, "Id")),
                           "name", name ? (name[0] == '/' ? name + 1 : name) : "", "state",
                           json_string_value(json_object_get(c, "State")) ?: "unknown", "health",
                           health_of_status(json_string_value(json_object_get(c, "Status"))), "labels",
                           json_object_get(c, "Labels"), "image",
                           json_string_value(json_object_get(c, "ImageID")) ?: ""));
    }
    json_decref(list);
    *out = arr;
    return 0;
}

/* ---- images ------------------------------------------------------------ */

static int image_id(const char *socket, const char *ref, char *id, size_t len, struct sb_err *err)
{
    struct buf path;
    buf_init(&path, 1024);
    buf_puts(&path, "/images/");
    docker_urlencode(ref, &path);
    buf_puts(&path, "/json");
    json_t *img = NULL;
    int rc = docker_call(socket, "GET", path.data, NULL, 0, &img, NULL, err);
    buf_release(&path);
    if (rc)
        return rc;
    const char *s = json_string_value(json_object_get(img, "Id"));
    sb_strlcpy(id, s ? s : "", len);
    json_decref(img);
    return s ? 0 : sb_error(err, SB_EINTERNAL, "image %s has no id", ref);
}

/* POST /images/create streams JSON objects; an error arrives inside a 200. */
static int image_pull(const char *socket, const char *ref, struct sb_err *err)
{
    char name[300], tag[130] = "latest";
    sb_strlcpy(name, ref, sizeof name);
    char *at = strchr(name, '@');
    char *colon = strrchr(name, ':');
    if (!at && colon && !strchr(colon, '/')) {
        *colon = 0;
        sb_strlcpy(tag, colon + 1, sizeof tag);
    }
    struct buf path;
    buf_init(&path, 2048);
    buf_puts(&path, "/images/create?fromImage=");
    docker_urlencode(name, &path);
    if (!at) {
        buf_puts(&path, "&tag=");
        docker_urlencode(tag, &path);
    }
    struct docker_response r = {0};
    int rc = docker_request(socket, "POST", path.data, NULL, 600000, &r, err);
    buf_release(&path);
    if (rc)
        return rc;
    if (r.status / 100 != 2 || strstr(r.body.data, "\"error\"")) {
        /* the engine's message, first line only */
        const char *m = strstr(r.body.data, "\"message\":\"");
        if (!m)
            m = strstr(r.body.data, "\"error\":\"");
        char msg[160] = "pull failed";
        if (m) {
            m = strchr(m, ':') + 2;
            size_t n = strcspn(m, "\"");
            snprintf(msg, sizeof msg, "%.*s", (int)(n > 150 ? 150 : n), m);
        }
        docker_response_release(&r);
        return sb_error(err, SB_ENOTFOUND, "image %s cannot be pulled: %s", ref, msg);
    }
    docker_response_release(&r);
    return 0;
}

int stacks_resolve_images(const char *socket, json_t *model, json_t *pinned, bool pull, json_t **image_ids,
                          json_t **missing, struct sb_err *err)
{
    json_t *ids = json_object(), *absent = json_array();
    const char *name;
    json_t *svc;
    json_object_foreach(json_object_get(model, "services"), name, svc)
    {
        const char *ref = json_string_value(json_object_get(svc, "image"));
        const char *pin = json_string_value(json_object_get(pinned, name));
        char id[160];
        char field[128];
        snprintf(field, sizeof field, "services.%s.image", name);
        struct sb_err e = {0};
        int rc;
        if (pin) {
            rc = image_id(socket, pin, id, sizeof id, &e);
            if (rc == SB_ENOTFOUND)
                rc = sb_error(&e, SB_ENOTFOUND, "the pinned image %.80s of %s is no longer on the node", pin,
                              name);
        } else {
            rc = image_id(socket, ref, id, sizeof id, &e);
            if (rc == SB_ENOTFOUND && !pull) {
                json_array_append_new(absent, json_string(name));
                continue;
            }
            if (rc == SB_ENOTFOUND) {
                rc = image_pull(socket, ref, &e);
                if (rc == 0)
                    rc = image_id(socket, ref, id, sizeof id, &e);
            }
        }
        if (rc) {
            json_decref(ids);
            json_decref(absent);
            sb_error(err, rc, "%s: %s", field, e.msg);
            if (err)
                sb_strlcpy(err->field, field, sizeof err->field);
            return rc;
        }
        json_object_set_new(ids, name, json_string(id));
    }
    *image_ids = ids;
    if (missing)
        *missing = absent;
    else
        json_decref(absent);
    return 0;
}

/* ---- networks and volumes ---------------------------------------------- */

/* The two kinds of project objects a stack creates when absent. */
struct object_kind {
    const char *plural;   /* plan and model key, Engine API path */
    const char *singular; /* plan entry key naming the compose-level name */
    const char *label;    /* compose's label naming it */
};
static const struct object_kind NETWORKS = {"networks", "network", LABEL_NETWORK};
static const struct object_kind VOLUMES = {"volumes", "volume", LABEL_VOLUME};

/* 0 when the object exists, SB_ENOTFOUND when it is to be created; an
 * absent external one is an error the user must fix. */
static int object_lookup(const struct stacks_apply *a, const struct object_kind *k, json_t *entry,
                         struct sb_err *err)
{
    const char *full = json_string_value(json_object_get(entry, "name"));
    char path[300];
    snprintf(path, sizeof path, "/%s/%s", k->plural, full);
    json_t *got = NULL;
    struct sb_err e = {0};
    int rc = docker_call(a->socket, "GET", path, NULL, 0, &got, NULL, &e);
    json_decref(got);
    if (rc == 0 || (rc == SB_ENOTFOUND && !json_is_true(json_object_get(entry, "external"))))
        return rc;
    if (rc == SB_ENOTFOUND)
        return sb_error(err, SB_ENOTFOUND, "external %s %s does not exist", k->singular, full);
    if (err)
        *err = e;
    return rc;
}

/* The object's compose-file labels plus the ones docker-compose sets. */
static json_t *object_labels(const struct stacks_apply *a, const struct object_kind *k,
                             const char *short_name)
{
    json_t *labels = json_deep_copy(
        json_object_get(json_object_get(json_object_get(a->model, k->plural), short_name), "labels"));
    if (!labels)
        labels = json_object();
    json_object_set_new(labels, LABEL_PROJECT, json_string(a->project));
    json_object_set_new(labels, k->label, json_string(short_name));
    json_object_set_new(labels, LABEL_VERSION, json_string(COMPOSE_VERSION));
    return labels;
}

static int ensure_objects(const struct stacks_apply *a, const struct object_kind *k, json_t *created,
                          struct sb_err *err)
{
    size_t i;
    json_t *entry;
    json_array_foreach(json_object_get(a->plan, k->plural), i, entry)
    {
        int rc = object_lookup(a, k, entry, err);
        if (rc == 0)
            continue;
        if (rc != SB_ENOTFOUND || json_is_true(json_object_get(entry, "external")))
            return rc;
        const char *full = json_string_value(json_object_get(entry, "name"));
        json_t *labels = object_labels(a, k, json_string_value(json_object_get(entry, k->singular)));
        json_t *body = k == &NETWORKS
                           ? json_pack("{s:s,s:s,s:b,s:o}", "Name", full, "Driver", "bridge",
                                       "CheckDuplicate", 1, "Labels", labels)
                           : json_pack("{s:s,s:s,s:o}", "Name", full, "Driver", "local", "Labels", labels);
        char path[64];
        snprintf(path, sizeof path, "/%s/create", k->plural);
        rc = docker_call(a->socket, "POST", path, body, 0, NULL, NULL, err);
        json_decref(body);
        if (rc)
            return rc;
        json_array_append_new(created, json_string(full));
        hook_log(a, "%s %s created", k->singular, full);
    }
    return 0;
}

static int ensure_networks(const struct stacks_apply *a, json_t *created, struct sb_err *err)
{
    return ensure_objects(a, &NETWORKS, created, err);
}

static int ensure_volumes(const struct stacks_apply *a, json_t *created, struct sb_err *err)
{
    return ensure_objects(a, &VOLUMES, created, err);
}

/* ---- containers ---------------------------------------------------------- */

static json_t *container_body(const struct stacks_apply *a, const char *service, json_t *svc, int number,
                              const char *hash)
{
    json_t *body = json_object(), *host = json_object();
    const char *id = json_string_value(json_object_get(a->image_ids, service));
    const char *ref = json_string_value(json_object_get(svc, "image"));
    /* the reference when it still names the wanted image, else the id */
    char current[160] = "";
    struct sb_err e = {0};
    if (id && image_id(a->socket, ref, current, sizeof current, &e) == 0 && strcmp(current, id) != 0)
        ref = id;
    json_object_set_new(body, "Image", json_string(ref));
    json_t *cmd = json_object_get(svc, "command");
    if (json_is_array(cmd))
        json_object_set(body, "Cmd", cmd);
    json_t *ep = json_object_get(svc, "entrypoint");
    if (json_is_array(ep))
        json_object_set(body, "Entrypoint", ep);
    json_t *env = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(svc, "environment"), k, v)
    {
        char *kv = NULL;
        if (asprintf(&kv, "%s=%s", k, json_string_value(v)) > 0) {
            json_array_append_new(env, json_string(kv));
            free(kv);
        }
    }
    json_object_set_new(body, "Env", env);
    json_t *labels = json_deep_copy(json_object_get(svc, "labels"));
    char num[16];
    snprintf(num, sizeof num, "%d", number);
    json_object_set_new(labels, LABEL_PROJECT, json_string(a->project));
    json_object_set_new(labels, LABEL_SERVICE, json_string(service));
    json_object_set_new(labels, LABEL_NUMBER, json_string(num));
    json_object_set_new(labels, LABEL_ONEOFF, json_string("False"));
    json_object_set_new(labels, LABEL_HASH, json_string(hash));
    json_object_set_new(labels, LABEL_VERSION, json_string(COMPOSE_VERSION));
    json_object_set_new(labels, LABEL_WORKDIR, json_string(a->working_dir ? a->working_dir : "/"));
    json_object_set_new(labels, LABEL_FILES,
                        json_string(a->config_files ? a->config_files : "docker-compose.yml"));
    json_object_set_new(body, "Labels", labels);
    const char *user = json_string_value(json_object_get(svc, "user"));
    if (user)
        json_object_set_new(body, "User", json_string(user));
    const char *wd = json_string_value(json_object_get(svc, "working_dir"));
    if (wd)
        json_object_set_new(body, "WorkingDir", json_string(wd));
    json_t *hc = json_object_get(svc, "healthcheck");
    if (hc)
        json_object_set_new(body, "Healthcheck",
                            json_pack("{s:O,s:O,s:O,s:O,s:O}", "Test", json_object_get(hc, "test"),
                                      "Interval", json_object_get(hc, "interval_ns"), "Timeout",
                                      json_object_get(hc, "timeout_ns"), "Retries",
                                      json_object_get(hc, "retries"), "StartPeriod",
                                      json_object_get(hc, "start_period_ns")));
    /* ports */
    json_t *exposed = json_object(), *bindings = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(svc, "ports"), i, p)
    {
        char key[32];
        snprintf(key, sizeof key, "%d/%s", (int)json_integer_value(json_object_get(p, "target")),
                 json_string_value(json_object_get(p, "protocol")));
        json_object_set_new(exposed, key, json_object());
        int pub = (int)json_integer_value(json_object_get(p, "published"));
        char hp[16] = "";
        if (pub)
            snprintf(hp, sizeof hp, "%d", pub);
        json_t *list = json_object_get(bindings, key);
        if (!list) {
            list = json_array();
            json_object_set_new(bindings, key, list);
        }
        json_array_append_new(list,
                              json_pack("{s:s,s:s}", "HostIp",
                                        json_string_value(json_object_get(p, "host_ip")), "HostPort", hp));
    }
    json_object_set_new(body, "ExposedPorts", exposed);
    json_object_set_new(host, "PortBindings", bindings);
    /* mounts */
    json_t *mounts = json_array();
    json_array_foreach(json_object_get(svc, "volumes"), i, p)
    {
        const char *type = json_string_value(json_object_get(p, "type"));
        const char *src = json_string_value(json_object_get(p, "source"));
        json_t *m = json_pack("{s:s,s:O,s:O}", "Type", type, "Target", json_object_get(p, "target"),
                              "ReadOnly", json_object_get(p, "read_only"));
        if (strcmp(type, "volume") == 0 && src[0]) {
            json_t *decl = json_object_get(json_object_get(a->model, "volumes"), src);
            char full[200];
            stacks_object_name(a->project, src, full, sizeof full);
            json_object_set_new(m, "Source",
                                json_string(json_is_true(json_object_get(decl, "external")) ? src : full));
        } else if (strcmp(type, "bind") == 0) {
            json_object_set_new(m, "Source", json_string(src));
        }
        json_array_append_new(mounts, m);
    }
    json_object_set_new(host, "Mounts", mounts);
    const char *restart = json_string_value(json_object_get(svc, "restart"));
    if (restart) {
        char name[32];
        int max = 0;
        sb_strlcpy(name, restart, sizeof name);
        char *colon = strchr(name, ':');
        if (colon) {
            *colon = 0;
            max = (int)strtol(colon + 1, NULL, 10);
        }
        json_object_set_new(host, "RestartPolicy",
                            json_pack("{s:s,s:i}", "Name", name, "MaximumRetryCount", max));
    }
    const char *lists[][2] = {{"cap_add", "CapAdd"}, {"cap_drop", "CapDrop"}};
    for (size_t j = 0; j < 2; j++)
        if (json_object_get(svc, lists[j][0]))
            json_object_set(host, lists[j][1], json_object_get(svc, lists[j][0]));
    json_object_set(host, "Memory", json_object_get(svc, "memory"));
    json_object_set(host, "NanoCpus", json_object_get(svc, "nano_cpus"));
    json_t *lg = json_object_get(svc, "logging");
    if (lg) {
        const char *drv = json_string_value(json_object_get(lg, "driver"));
        json_t *opts = json_object_get(lg, "options");
        json_object_set_new(host, "LogConfig",
                            json_pack("{s:s,s:o}", "Type", drv ? drv : "json-file", "Config",
                                      opts ? json_incref(opts) : json_object()));
    }
    if (json_is_true(json_object_get(svc, "privileged")))
        json_object_set_new(host, "Privileged", json_true());
    const char *pid = json_string_value(json_object_get(svc, "pid"));
    if (pid)
        json_object_set_new(host, "PidMode", json_string(pid));
    const char *ipc = json_string_value(json_object_get(svc, "ipc"));
    if (ipc)
        json_object_set_new(host, "IpcMode", json_string(ipc));
    json_t *devs = json_array();
    json_array_foreach(json_object_get(svc, "devices"), i, p)
    {
        char d[600];
        sb_strlcpy(d, json_string_value(p), sizeof d);
        char *c1 = strchr(d, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c1)
            *c1++ = 0;
        if (c2)
            *c2++ = 0;
        json_array_append_new(devs, json_pack("{s:s,s:s,s:s}", "PathOnHost", d, "PathInContainer",
                                              c1 ? c1 : d, "CgroupPermissions", c2 ? c2 : "rwm"));
    }
    json_object_set_new(host, "Devices", devs);
    /* networks: the first at create, the others connected after */
    const char *nm = json_string_value(json_object_get(svc, "network_mode"));
    json_t *nets = json_object_get(svc, "networks");
    if (nm) {
        json_object_set_new(host, "NetworkMode", json_string(nm));
    } else if (json_array_size(nets)) {
        const char *first = json_string_value(json_array_get(nets, 0));
        json_t *decl = json_object_get(json_object_get(a->model, "networks"), first);
        char full[200];
        stacks_object_name(a->project, first, full, sizeof full);
        const char *net = json_is_true(json_object_get(decl, "external")) ? first : full;
        json_object_set_new(host, "NetworkMode", json_string(net));
        json_object_set_new(body, "NetworkingConfig",
                            json_pack("{s:{s:{s:[s]}}}", "EndpointsConfig", net, "Aliases", service));
    }
    json_object_set_new(body, "HostConfig", host);
    return body;
}

static int container_create(const struct stacks_apply *a, const char *service, json_t *svc, int number,
                            const char *hash, char *id, size_t idlen, struct sb_err *err)
{
    char name[300], path[400];
    snprintf(name, sizeof name, "%s_%s_%d", a->project, service, number);
    snprintf(path, sizeof path, "/containers/create?name=%s", name);
    json_t *body = container_body(a, service, svc, number, hash);
    json_t *res = NULL;
    int rc = docker_call(a->socket, "POST", path, body, 0, &res, NULL, err);
    json_decref(body);
    if (rc)
        return rc;
    sb_strlcpy(id, json_string_value(json_object_get(res, "Id")) ?: "", idlen);
    json_decref(res);
    /* further networks */
    json_t *nets = json_object_get(svc, "networks");
    for (size_t i = 1; i < json_array_size(nets) && !json_object_get(svc, "network_mode"); i++) {
        const char *n = json_string_value(json_array_get(nets, i));
        json_t *decl = json_object_get(json_object_get(a->model, "networks"), n);
        char full[200];
        stacks_object_name(a->project, n, full, sizeof full);
        snprintf(path, sizeof path, "/networks/%s/connect",
                 json_is_true(json_object_get(decl, "external")) ? n : full);
        json_t *b = json_pack("{s:s,s:{s:[s]}}", "Container", id, "EndpointConfig", "Aliases", service);
        rc = docker_call(a->socket, "POST", path, b, 0, NULL, NULL, err);
        json_decref(b);
        if (rc)
            return rc;
    }
    hook_log(a, "%s: container %s created", service, name);
    return 0;
}

static int container_op(const char *socket, const char *id, const char *op, struct sb_err *err)
{
    char path[300];
    long timeout = 0;
    if (strcmp(op, "remove") == 0) {
        snprintf(path, sizeof path, "/containers/%s?force=1", id);
        int rc = docker_call(socket, "DELETE", path, NULL, 0, NULL, NULL, err);
        return rc == SB_ENOTFOUND ? 0 : rc;
    }
    if (strcmp(op, "stop") == 0 || strcmp(op, "restart") == 0) {
        snprintf(path, sizeof path, "/containers/%s/%s?t=%d", id, op, STOP_TIMEOUT_S);
        timeout = (STOP_TIMEOUT_S + 20) * 1000L;
    } else {
        snprintf(path, sizeof path, "/containers/%s/%s", id, op);
    }
    return docker_call(socket, "POST", path, NULL, timeout, NULL, NULL, err);
}

static int remove_container(const struct stacks_apply *a, const char *id)
{
    struct sb_err e = {0};
    int rc = container_op(a->socket, id, "remove", &e);
    if (rc)
        hook_log(a, "could not remove %.12s: %s", id, e.msg);
    return rc;
}

/* Waits until the container is healthy (its healthcheck, else the
 * x-serverbox probe, else running for a second), up to timeout_s. */
static int wait_ready(const struct stacks_apply *a, const char *service, json_t *svc, const char *id,
                      int timeout_s, struct sb_err *err)
{
    char path[300];
    snprintf(path, sizeof path, "/containers/%s/json", id);
    json_t *probe = json_object_get(json_object_get(svc, "x-serverbox"), "probe");
    json_t *hc = json_object_get(svc, "healthcheck");
    bool has_hc =
        hc && strcmp(json_string_value(json_array_get(json_object_get(hc, "test"), 0)), "NONE") != 0;
    int64_t deadline = time_mono_ms() + (int64_t)timeout_s * 1000, running_since = 0;
    char last[200] = "";
    for (;;) {
        if (cancelled(a))
            return sb_error(err, SB_ETIMEOUT, "%s: cancelled while waiting for health", service);
        json_t *doc = NULL;
        struct sb_err e = {0};
        int rc = docker_call(a->socket, "GET", path, NULL, 0, &doc, NULL, &e);
        if (rc) {
            if (err)
                *err = e;
            return rc;
        }
        json_t *st = json_object_get(doc, "State");
        char status_buf[32], health_buf[32];
        sb_strlcpy(status_buf, json_string_value(json_object_get(st, "Status")) ?: "", sizeof status_buf);
        sb_strlcpy(health_buf,
                   json_string_value(json_object_get(json_object_get(st, "Health"), "Status")) ?: "",
                   sizeof health_buf);
        const char *status = status_buf, *health = health_buf;
        json_t *log = json_object_get(json_object_get(st, "Health"), "Log");
        const char *out =
            json_string_value(json_object_get(json_array_get(log, json_array_size(log) - 1), "Output"));
        if (out && *out) {
            snprintf(last, sizeof last, "%.180s", out);
            for (char *q = last; *q; q++)
                if (*q == '\n' || *q == '\r')
                    *q = ' ';
        }
        bool running = status && strcmp(status, "running") == 0;
        int exit_code = (int)json_integer_value(json_object_get(st, "ExitCode"));
        json_decref(doc);
        if (status && (strcmp(status, "exited") == 0 || strcmp(status, "dead") == 0))
            return sb_error(err, SB_EUPSTREAM, "%s: the new container exited (code %d) before it was healthy",
                            service, exit_code);
        if (running) {
            if (has_hc) {
                if (health && strcmp(health, "healthy") == 0)
                    return 0;
            } else if (probe) {
                const char *kind = json_string_value(json_object_get(probe, "kind"));
                char url[300], port[16];
                snprintf(port, sizeof port, "%d", (int)json_integer_value(json_object_get(probe, "port")));
                json_t *argv;
                if (strcmp(kind, "tcp") == 0) {
                    argv = json_pack("[ssss]", "nc", "-z", "127.0.0.1", port);
                } else {
                    snprintf(url, sizeof url, "http://127.0.0.1:%s%s", port,
                             json_string_value(json_object_get(probe, "path")));
                    argv = json_pack("[ssss]", "wget", "-q", "-O-", url);
                }
                struct docker_exec_result r = {0};
                struct sb_err pe = {0};
                int prc = docker_exec(a->socket, id, argv, 5000, 4096, &r, &pe);
                json_decref(argv);
                bool ok = prc == 0 && r.exit_code == 0;
                if (!ok)
                    snprintf(last, sizeof last, "probe: %.150s", prc ? pe.msg : r.err.data);
                docker_exec_result_release(&r);
                if (ok)
                    return 0;
            } else {
                if (!running_since)
                    running_since = time_mono_ms();
                else if (time_mono_ms() - running_since >= 1000)
                    return 0;
            }
        } else {
            running_since = 0;
        }
        if (time_mono_ms() > deadline)
            return sb_error(err, SB_EUPSTREAM, "%s: not healthy within %d s%s%s", service, timeout_s,
                            last[0] ? ": " : "", last);
        sleep_ms(250);
    }
}

static int health_timeout(const struct stacks_apply *a, json_t *svc)
{
    json_t *t = json_object_get(json_object_get(svc, "x-serverbox"), "health_timeout_s");
    if (json_is_integer(t))
        return (int)json_integer_value(t);
    return a->health_timeout_s > 0 ? a->health_timeout_s : 60;
}

static int next_number(json_t *containers, const char *service)
{
    int max = 0;
    size_t i;
    json_t *c;
    json_array_foreach(containers, i, c)
    {
        const char *s = label_of(c, LABEL_SERVICE);
        const char *n = label_of(c, LABEL_NUMBER);
        if (s && n && strcmp(s, service) == 0 && (int)sb_int64(n) > max)
            max = (int)sb_int64(n);
    }
    return max + 1;
}

static json_t *find_container(json_t *containers, const char *id)
{
    size_t i;
    json_t *c;
    json_array_foreach(containers, i,
                       c) if (strcmp(json_string_value(json_object_get(c, "id")), id) == 0) return c;
    return NULL;
}

/* Starts `count` new containers of a service and gates them all; on failure
 * every one of them is removed. `made` gets their ids. */
static int start_new(const struct stacks_apply *a, const char *service, json_t *svc, const char *hash,
                     int count, int *number, json_t *made, struct sb_err *err)
{
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        char id[80];
        if ((rc = container_create(a, service, svc, (*number)++, hash, id, sizeof id, err)))
            break;
        json_array_append_new(made, json_string(id));
        rc = container_op(a->socket, id, "start", err);
        if (rc && err &&
            (strstr(err->msg, "userland proxy") || strstr(err->msg, "already allocated") ||
             strstr(err->msg, "address already in use"))) {
            struct buf ports;
            buf_init(&ports, 512);
            size_t k;
            json_t *p;
            json_array_foreach(json_object_get(svc, "ports"), k,
                               p) if (json_integer_value(json_object_get(p, "published")))
                buf_printf(&ports, "%s%s%s%d", ports.len ? ", " : "",
                           json_string_value(json_object_get(p, "host_ip")),
                           json_string_value(json_object_get(p, "host_ip"))[0] ? ":" : "",
                           (int)json_integer_value(json_object_get(p, "published")));
            sb_error(err, rc, "%s: a published host port is already in use on the node (%s)", service,
                     ports.data);
            buf_release(&ports);
        } else if (rc && err) {
            char m[200];
            sb_strlcpy(m, err->msg, sizeof m);
            sb_error(err, rc, "%s: cannot start: %s", service, m);
        }
    }
    size_t i;
    json_t *v;
    json_array_foreach(made, i, v)
    {
        if (rc)
            break;
        rc = wait_ready(a, service, svc, json_string_value(v), health_timeout(a, svc), err);
    }
    if (rc) {
        json_array_foreach(made, i, v) remove_container(a, json_string_value(v));
    }
    return rc;
}

static int stop_remove(const struct stacks_apply *a, json_t *ids)
{
    size_t i;
    json_t *v;
    int rc = 0;
    json_array_foreach(ids, i, v)
    {
        struct sb_err e = {0};
        container_op(a->socket, json_string_value(v), "stop", &e);
        if (remove_container(a, json_string_value(v)))
            rc = SB_EUPSTREAM;
    }
    return rc;
}

/* Start-first: the old containers leave their networks first (their DNS
 * alias goes, so new lookups find only the new ones), get a moment to
 * finish what they serve, then stop and go. */
#define DRAIN_MS 1000
static int drain_remove(const struct stacks_apply *a, json_t *ids, bool routed)
{
    size_t i;
    json_t *v;
    if (routed && json_array_size(ids)) {
        /* requests Caddy sent before the switch finish on the old address */
        hook_log(a, "draining %zu old container(s) behind the route", json_array_size(ids));
        sleep_ms(DRAIN_MS);
    }
    json_array_foreach(ids, i, v)
    {
        char path[300];
        snprintf(path, sizeof path, "/containers/%s/json", json_string_value(v));
        json_t *doc = NULL;
        struct sb_err e = {0};
        if (docker_call(a->socket, "GET", path, NULL, 0, &doc, NULL, &e))
            continue;
        const char *net;
        json_t *x;
        json_object_foreach(json_object_get(json_object_get(doc, "NetworkSettings"), "Networks"), net, x)
        {
            snprintf(path, sizeof path, "/networks/%s/disconnect", net);
            json_t *b = json_pack("{s:s}", "Container", json_string_value(v));
            docker_call(a->socket, "POST", path, b, 0, NULL, NULL, &e);
            json_decref(b);
        }
        json_decref(doc);
    }
    if (json_array_size(ids)) {
        hook_log(a, "draining %zu old container(s)", json_array_size(ids));
        sleep_ms(DRAIN_MS);
    }
    return stop_remove(a, ids);
}

/* ---- routes (x-serverbox.route, through caddy/) ----------------------------- */

static json_t *route_of(json_t *svc)
{
    return json_object_get(json_object_get(svc, "x-serverbox"), "route");
}

static void route_id(const struct stacks_apply *a, const char *service, char *out, size_t len)
{
    snprintf(out, len, "%s%s", a->route_prefix ? a->route_prefix : "sbx-stack-", service);
}

/* The address of a container on the service's first network. */
static int container_address(const struct stacks_apply *a, json_t *svc, const char *id, char *ip, size_t len,
                             struct sb_err *err)
{
    const char *first = json_string_value(json_array_get(json_object_get(svc, "networks"), 0));
    json_t *decl = json_object_get(json_object_get(a->model, "networks"), first ? first : "");
    char net[200];
    if (json_is_true(json_object_get(decl, "external")))
        sb_strlcpy(net, first, sizeof net);
    else
        stacks_object_name(a->project, first ? first : "default", net, sizeof net);
    char path[300];
    snprintf(path, sizeof path, "/containers/%s/json", id);
    json_t *doc = NULL;
    int rc = docker_call(a->socket, "GET", path, NULL, 0, &doc, NULL, err);
    if (rc)
        return rc;
    const char *addr = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "NetworkSettings"), "Networks"), net),
        "IPAddress"));
    if (addr && *addr)
        sb_strlcpy(ip, addr, len);
    else
        rc = sb_error(err, SB_EUPSTREAM, "container %.12s has no address on %s", id, net);
    json_decref(doc);
    return rc;
}

/* Points the service's route at `ids` (running containers) in one change;
 * no ids removes the route. 0 for a service without a route. */
static int route_to(const struct stacks_apply *a, const char *service, json_t *svc, json_t *ids,
                    struct sb_err *err)
{
    json_t *route = route_of(svc);
    if (!route)
        return 0;
    if (!a->caddy_admin || !*a->caddy_admin)
        return sb_error(err, SB_EINVAL, "%s has a route but routing is off (--app-caddy-admin is empty)",
                        service);
    char rid[200];
    route_id(a, service, rid, sizeof rid);
    const char *host = json_string_value(json_object_get(route, "host"));
    if (!json_array_size(ids)) {
        hook_log(a, "%s: no container left: route %s removed", service, host);
        return caddy_route_delete(a->caddy_admin, rid, err);
    }
    char owner[200];
    int rc = caddy_host_owner(a->caddy_admin, host, rid, owner, sizeof owner, err);
    if (rc == 0 && owner[0])
        return sb_error(err, SB_ECONFLICT, "%s: the host %s is already routed by %s", service, host, owner);
    if (rc)
        return rc;
    json_t *dials = json_array();
    size_t i;
    json_t *v;
    int port = (int)json_integer_value(json_object_get(route, "port"));
    json_array_foreach(ids, i, v)
    {
        char ip[64], dial[96];
        if ((rc = container_address(a, svc, json_string_value(v), ip, sizeof ip, err)))
            break;
        snprintf(dial, sizeof dial, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
        json_array_append_new(dials, json_string(dial));
    }
    struct caddy_route r = {.id = rid, .host = host, .domain_listen = a->domain_listen, .dials = dials};
    if (rc == 0)
        rc = caddy_route_set(a->caddy_admin, &r, err);
    if (rc == 0) {
        char *list = json_dumps(dials, JSON_COMPACT);
        hook_log(a, "%s: route %s -> %s", service, host, list ? list : "");
        free(list);
    } else if (err) {
        char m[200];
        sb_strlcpy(m, err->msg, sizeof m);
        sb_error(err, rc, "%s: the route %s was not switched: %s", service, host, m);
    }
    json_decref(dials);
    return rc;
}

/* After a successful run: routes of this stack whose service has none now
 * (removed from the file, or its route removed) go. */
static void routes_prune(const struct stacks_apply *a)
{
    if (!a->caddy_admin || !*a->caddy_admin || !a->route_prefix)
        return;
    json_t *ids = NULL;
    struct sb_err e = {0};
    if (caddy_route_ids(a->caddy_admin, a->route_prefix, &ids, &e) == 0) {
        size_t i, n = strlen(a->route_prefix);
        json_t *v;
        json_array_foreach(ids, i, v)
        {
            const char *service = json_string_value(v) + n;
            if (route_of(json_object_get(json_object_get(a->model, "services"), service)))
                continue;
            if (caddy_route_delete(a->caddy_admin, json_string_value(v), &e) == 0)
                hook_log(a, "route of %s removed", service);
        }
    }
    json_decref(ids);
}

/* Waits for each service_healthy dependency that this run did not gate. */
static int wait_dependencies(const struct stacks_apply *a, const char *service, json_t *svc, json_t *gated,
                             struct sb_err *err)
{
    const char *dep;
    json_t *cond;
    json_object_foreach(json_object_get(svc, "depends_on"), dep, cond)
    {
        if (strcmp(json_string_value(cond), "service_healthy") != 0 || json_object_get(gated, dep))
            continue;
        json_t *cs = NULL;
        int rc = stacks_containers(a->socket, a->project, &cs, err);
        if (rc)
            return rc;
        json_t *depsvc = json_object_get(json_object_get(a->model, "services"), dep);
        size_t i;
        json_t *c;
        json_array_foreach(cs, i, c)
        {
            const char *s = label_of(c, LABEL_SERVICE);
            if (!s || strcmp(s, dep) != 0)
                continue;
            if ((rc = wait_ready(a, dep, depsvc, json_string_value(json_object_get(c, "id")),
                                 health_timeout(a, depsvc), err)))
                break;
        }
        json_decref(cs);
        if (rc)
            return rc;
        hook_log(a, "%s: dependency %s is healthy", service, dep);
    }
    return 0;
}

static int apply_service(const struct stacks_apply *a, json_t *step, json_t *containers, json_t *gated,
                         json_t *outcome, bool *rolled_back, struct sb_err *err)
{
    const char *service = json_string_value(json_object_get(step, "service"));
    const char *action = json_string_value(json_object_get(step, "action"));
    const char *strategy = json_string_value(json_object_get(step, "strategy"));
    const char *hash = json_string_value(json_object_get(step, "config_hash"));
    json_t *svc = json_object_get(json_object_get(a->model, "services"), service);
    int replicas = (int)json_integer_value(json_object_get(step, "replicas"));
    json_t *made = json_array();
    json_object_set_new(outcome, "action", json_string(action));
    json_object_set(outcome, "containers", made);
    int rc = 0;
    if (strcmp(action, "remove") == 0) {
        char rid[200];
        route_id(a, service, rid, sizeof rid);
        struct sb_err e = {0};
        if (a->caddy_admin && *a->caddy_admin)
            caddy_route_delete(a->caddy_admin, rid, &e);
        rc = stop_remove(a, json_object_get(step, "remove"));
        goto out;
    }
    bool routed = route_of(svc) != NULL;
    if (strcmp(action, "unchanged") == 0 && !routed) {
        json_decref(made);
        return 0;
    }
    if (strcmp(action, "unchanged") != 0 && (rc = wait_dependencies(a, service, svc, gated, err)))
        goto out;
    int number = next_number(containers, service);
    /* containers already carrying the desired hash that run count (a
     * resumed run); stopped ones go */
    json_t *keep = json_array(), *drop = json_deep_copy(json_object_get(step, "remove"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(step, "keep"), i, v)
    {
        json_t *c = find_container(containers, json_string_value(v));
        if (c && strcmp(json_string_value(json_object_get(c, "state")), "running") == 0)
            json_array_append(keep, v);
        else
            json_array_append(drop, v);
    }
    int have = (int)json_array_size(keep);
    if (strcmp(action, "unchanged") == 0) {
        /* the route follows the running containers (a changed host, a
         * Caddy that lost its config) */
        rc = route_to(a, service, svc, keep, err);
        goto done;
    }
    if (strcmp(action, "scale") == 0 || strcmp(action, "create") == 0 ||
        (strcmp(action, "recreate") == 0 && strategy && strcmp(strategy, "start-first") == 0)) {
        if (have > replicas) { /* scale down: the highest numbers go first */
            json_t *extra = json_array();
            while ((int)json_array_size(keep) > replicas) {
                size_t best = 0;
                int bestn = -1;
                json_array_foreach(keep, i, v)
                {
                    json_t *c = find_container(containers, json_string_value(v));
                    int n = (int)sb_int64(label_of(c, LABEL_NUMBER));
                    if (n > bestn)
                        bestn = n, best = i;
                }
                json_array_append(extra, json_array_get(keep, best));
                json_array_remove(keep, best);
            }
            json_array_extend(drop, extra);
            json_decref(extra);
        }
        if (replicas > have) {
            hook_log(a, "%s: starting %d new container(s)%s", service, replicas - have,
                     json_array_size(drop) ? " beside the old ones" : "");
            rc = start_new(a, service, svc, hash, replicas - have, &number, made, err);
            if (rc) {
                *rolled_back = json_array_size(drop) > 0;
                if (*rolled_back)
                    hook_log(a, "%s: the new container(s) were removed; the old ones keep serving", service);
                goto done;
            }
        }
        if (routed && strcmp(action, "recreate") == 0 && have > 0) {
            /* a resumed run: containers of the new config an earlier
             * attempt started were never routed to; gate them first */
            json_array_foreach(keep, i, v)
            {
                if (rc == 0)
                    rc = wait_ready(a, service, svc, json_string_value(v), health_timeout(a, svc), err);
            }
            if (rc) {
                json_array_foreach(made, i, v) remove_container(a, json_string_value(v));
                *rolled_back = json_array_size(drop) > 0;
                goto done;
            }
        }
        if (routed) {
            /* the switch: after the new ones are healthy, before the old
             * ones drain; a failed switch leaves the route as it was */
            json_t *serving = json_deep_copy(keep);
            json_array_extend(serving, made);
            rc = route_to(a, service, svc, serving, err);
            json_decref(serving);
            if (rc) {
                json_array_foreach(made, i, v) remove_container(a, json_string_value(v));
                *rolled_back = json_array_size(drop) > 0;
                goto done;
            }
        }
        /* a routed service drains even when it only shrinks: Caddy may
         * still be answering through the containers that leave */
        rc = json_array_size(made) || routed ? drain_remove(a, drop, routed) : stop_remove(a, drop);
        if (rc)
            sb_error(err, rc, "%s: could not remove an old container", service);
    } else { /* recreate stop-first: the old ones stop, then start again if the new ones fail */
        json_array_extend(drop, keep);
        json_array_foreach(drop, i, v)
        {
            struct sb_err e = {0};
            container_op(a->socket, json_string_value(v), "stop", &e);
        }
        hook_log(a, "%s: old container(s) stopped (stop-first: the service publishes a host port)", service);
        rc = start_new(a, service, svc, hash, replicas, &number, made, err);
        if (rc == 0 && routed && (rc = route_to(a, service, svc, made, err)))
            json_array_foreach(made, i, v) remove_container(a, json_string_value(v));
        if (rc) {
            json_array_foreach(drop, i, v)
            {
                struct sb_err e = {0};
                container_op(a->socket, json_string_value(v), "start", &e);
            }
            *rolled_back = true;
            hook_log(a, "%s: the new container(s) failed; the old ones were started again", service);
            if (routed) { /* restarted, they may have new addresses */
                struct sb_err e = {0};
                route_to(a, service, svc, drop, &e);
            }
            goto done;
        }
        json_array_foreach(drop, i, v) remove_container(a, json_string_value(v));
    }
done:
    json_decref(keep);
    json_decref(drop);
out:
    json_object_set_new(outcome, "outcome", json_string(rc ? "failed" : "done"));
    if (rc == 0 && strcmp(action, "unchanged") != 0) /* only what this run gated */
        json_object_set_new(gated, service, json_true());
    json_decref(made);
    return rc;
}

/* A failed run leaves no network or volume it made behind when the project
 * has no container left (a first deploy that failed changes nothing). */
static void undo_objects(const struct stacks_apply *a, json_t *nets, json_t *vols)
{
    json_t *cs = NULL;
    struct sb_err e = {0};
    if (stacks_containers(a->socket, a->project, &cs, &e) || json_array_size(cs)) {
        json_decref(cs);
        return;
    }
    json_decref(cs);
    size_t i;
    json_t *v;
    char path[300];
    json_array_foreach(nets, i, v)
    {
        snprintf(path, sizeof path, "/networks/%s", json_string_value(v));
        docker_call(a->socket, "DELETE", path, NULL, 0, NULL, NULL, &e);
    }
    json_array_foreach(vols, i, v)
    {
        snprintf(path, sizeof path, "/volumes/%s", json_string_value(v));
        docker_call(a->socket, "DELETE", path, NULL, 0, NULL, NULL, &e);
    }
    if (json_array_size(nets) || json_array_size(vols))
        hook_log(a, "the networks and volumes this deploy made were removed");
}

int stacks_apply_run(const struct stacks_apply *a, json_t **result, struct sb_err *err)
{
    json_t *services = json_object(), *digests = json_object();
    json_t *made_nets = json_array(), *made_vols = json_array();
    bool rolled_back = false;
    const char *failed = NULL;
    int rc = 0;
    json_t *containers = NULL;
    if (a->hooks.progress)
        a->hooks.progress(a->hooks.ctx, 0, "networks and volumes");
    if ((rc = ensure_networks(a, made_nets, err)) || (rc = ensure_volumes(a, made_vols, err)))
        goto out;
    if ((rc = stacks_containers(a->socket, a->project, &containers, err)))
        goto out;
    json_t *steps = json_object_get(a->plan, "services");
    json_t *gated = json_object();
    size_t n = json_array_size(steps), i;
    json_t *step;
    json_array_foreach(steps, i, step)
    {
        const char *service = json_string_value(json_object_get(step, "service"));
        if (cancelled(a)) {
            rc = sb_error(err, SB_ETIMEOUT, "cancelled before %s", service);
            failed = service;
            break;
        }
        if (a->hooks.progress) {
            char s[200];
            snprintf(s, sizeof s, "%s: %s", service, json_string_value(json_object_get(step, "action")));
            a->hooks.progress(a->hooks.ctx, (int)(5 + 90 * i / (n ? n : 1)), s);
        }
        json_t *outcome = json_object();
        json_object_set_new(services, service, outcome);
        if ((rc = apply_service(a, step, containers, gated, outcome, &rolled_back, err))) {
            failed = service;
            break;
        }
    }
    json_decref(gated);
    if (rc == 0)
        routes_prune(a);
    const char *name;
    json_t *id;
    json_object_foreach(a->image_ids, name, id) json_object_set(digests, name, id);
out:
    json_decref(containers);
    if (rc)
        undo_objects(a, made_nets, made_vols);
    json_decref(made_nets);
    json_decref(made_vols);
    if (rc == 0 && a->hooks.progress)
        a->hooks.progress(a->hooks.ctx, 100, "done");
    if (result) {
        *result =
            json_pack("{s:o,s:o,s:b}", "services", services, "digests", digests, "rolled_back", rolled_back);
        if (failed)
            json_object_set_new(*result, "failed_service", json_string(failed));
        if (rc)
            json_object_set_new(*result, "reason", json_string(err ? err->msg : "failed"));
    } else {
        json_decref(services);
        json_decref(digests);
    }
    return rc;
}

int stacks_scale(const struct stacks_apply *a, const char *service, int replicas, json_t **result,
                 struct sb_err *err)
{
    json_t *model = json_deep_copy(a->model);
    json_t *svc = json_object_get(json_object_get(model, "services"), service);
    if (!svc) {
        json_decref(model);
        return sb_error(err, SB_ENOTFOUND, "no service %s in this stack", service);
    }
    json_object_set_new(svc, "replicas", json_integer(replicas));
    json_t *containers = NULL, *plan = NULL;
    int rc = stacks_containers(a->socket, a->project, &containers, err);
    if (rc == 0)
        rc = stacks_plan(model, a->project, a->image_ids, containers, &plan, err);
    json_decref(containers);
    if (rc == 0) {
        /* only the scaled service moves */
        json_t *steps = json_array();
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(plan, "services"), i,
                           s) if (strcmp(json_string_value(json_object_get(s, "service")), service) == 0)
            json_array_append(steps, s);
        json_object_set_new(plan, "services", steps);
        struct stacks_apply b = *a;
        b.model = model;
        b.plan = plan;
        rc = stacks_apply_run(&b, result, err);
    }
    json_decref(plan);
    json_decref(model);
    return rc;
}

int stacks_status(const char *socket, const char *project, json_t *model, json_t **out, struct sb_err *err)
{
    json_t *cs = NULL;
    int rc = stacks_containers(socket, project, &cs, err);
    if (rc)
        return rc;
    json_t *res = json_object();
    const char *name;
    json_t *svc;
    json_object_foreach(json_object_get(model, "services"), name, svc)
    {
        json_t *e = json_pack("{s:O,s:i,s:i,s:[]}", "desired", json_object_get(svc, "replicas"), "running", 0,
                              "healthy", 0, "containers");
        if (route_of(svc))
            json_object_set(e, "route", route_of(svc));
        json_object_set_new(res, name, e);
    }
    size_t i;
    json_t *c;
    json_array_foreach(cs, i, c)
    {
        const char *s = label_of(c, LABEL_SERVICE);
        if (!s)
            continue;
        json_t *e = json_object_get(res, s);
        if (!e) {
            e = json_pack("{s:i,s:i,s:i,s:[]}", "desired", 0, "running", 0, "healthy", 0, "containers");
            json_object_set_new(res, s, e);
        }
        bool running = strcmp(json_string_value(json_object_get(c, "state")), "running") == 0;
        const char *h = json_string_value(json_object_get(c, "health"));
        bool healthy = running && (strcmp(h, "healthy") == 0 || strcmp(h, "none") == 0);
        json_object_set_new(e, "running",
                            json_integer(json_integer_value(json_object_get(e, "running")) + running));
        json_object_set_new(e, "healthy",
                            json_integer(json_integer_value(json_object_get(e, "healthy")) + healthy));
        json_array_append_new(json_object_get(e, "containers"),
                              json_pack("{s:O,s:O,s:O,s:O,s:s}", "id", json_object_get(c, "id"), "name",
                                        json_object_get(c, "name"), "state", json_object_get(c, "state"),
                                        "health", json_object_get(c, "health"), "config_hash",
                                        label_of(c, LABEL_HASH) ?: ""));
    }
    json_decref(cs);
    *out = res;
    return 0;
}

int stacks_containers_action(const char *socket, const char *project, const char *service, const char *action,
                             struct sb_err *err)
{
    json_t *cs = NULL;
    int rc = stacks_containers(socket, project, &cs, err);
    if (rc)
        return rc;
    size_t i;
    json_t *c;
    json_array_foreach(cs, i, c)
    {
        const char *s = label_of(c, LABEL_SERVICE);
        if (service && (!s || strcmp(s, service) != 0))
            continue;
        struct sb_err e = {0};
        int r = container_op(socket, json_string_value(json_object_get(c, "id")), action, &e);
        if (r) {
            rc = r;
            if (err)
                *err = e;
        }
    }
    json_decref(cs);
    return rc;
}

int stacks_down(const char *socket, const char *project, bool volumes, json_t **removed, struct sb_err *err)
{
    json_t *gone = json_pack("{s:[],s:[],s:[]}", "containers", "networks", "volumes");
    struct buf path;
    buf_init(&path, 4096);
    filters_path("/containers/json?all=1&", project, false, &path);
    json_t *list = NULL;
    int rc = docker_call(socket, "GET", path.data, NULL, 0, &list, NULL, err);
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        struct sb_err e = {0};
        container_op(socket, id, "stop", &e);
        if (container_op(socket, id, "remove", &e) == 0)
            json_array_append_new(json_object_get(gone, "containers"), json_string(id));
    }
    json_decref(list);
    list = NULL;
    buf_reset(&path);
    filters_path("/networks?", project, false, &path);
    if (rc == 0 && (rc = docker_call(socket, "GET", path.data, NULL, 0, &list, NULL, err)) == 0) {
        json_array_foreach(list, i, c)
        {
            const char *name = json_string_value(json_object_get(c, "Name"));
            char p[300];
            snprintf(p, sizeof p, "/networks/%s", json_string_value(json_object_get(c, "Id")));
            struct sb_err e = {0};
            if (docker_call(socket, "DELETE", p, NULL, 0, NULL, NULL, &e) == 0)
                json_array_append_new(json_object_get(gone, "networks"), json_string(name));
        }
    }
    json_decref(list);
    list = NULL;
    if (rc == 0 && volumes) {
        buf_reset(&path);
        filters_path("/volumes?", project, false, &path);
        if ((rc = docker_call(socket, "GET", path.data, NULL, 0, &list, NULL, err)) == 0) {
            json_array_foreach(json_object_get(list, "Volumes"), i, c)
            {
                const char *name = json_string_value(json_object_get(c, "Name"));
                struct buf p;
                buf_init(&p, 1024);
                buf_puts(&p, "/volumes/");
                docker_urlencode(name, &p);
                struct sb_err e = {0};
                if (docker_call(socket, "DELETE", p.data, NULL, 0, NULL, NULL, &e) == 0)
                    json_array_append_new(json_object_get(gone, "volumes"), json_string(name));
                buf_release(&p);
            }
        }
        json_decref(list);
    }
    buf_release(&path);
    if (removed)
        *removed = gone;
    else
        json_decref(gone);
    return rc;
}
