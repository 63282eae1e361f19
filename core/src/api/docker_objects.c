/*
 * Images, volumes and networks on a node's Docker engine:
 *
 *   GET    /api/v1/nodes/{id}/images                 images:read
 *   POST   /api/v1/nodes/{id}/images/pull            images:pull   {"image":"…","tag":"…"}
 *   POST   /api/v1/nodes/{id}/images/prune           images:delete (dangling images)
 *   DELETE /api/v1/nodes/{id}/images/{*ref}          images:delete ?force=
 *   GET    /api/v1/nodes/{id}/volumes                volumes:read
 *   POST   /api/v1/nodes/{id}/volumes                volumes:write {"name":"…","labels":{}}
 *   DELETE /api/v1/nodes/{id}/volumes/{name}         volumes:delete ?force=
 *   POST   /api/v1/nodes/{id}/volumes/prune          volumes:delete
 *   GET    /api/v1/nodes/{id}/networks               networks:read
 *   POST   /api/v1/nodes/{id}/networks               networks:write {"name","driver","internal","labels"}
 *   DELETE /api/v1/nodes/{id}/networks/{nid}         networks:delete
 *   POST   /api/v1/nodes/{id}/networks/prune         networks:delete
 *
 * Mutations are events `<kind>.<verb>_requested` on stream <kind>/<node>/<ref>.
 */
#include "docker_api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool image_ref_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255 || !isalnum((unsigned char)s[0]) || strstr(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("_.-/:@", s[i])))
            return false;
    return true;
}

static int check_labels(json_t *labels, struct sb_err *err)
{
    if (!labels)
        return 0;
    if (!json_is_object(labels) || json_object_size(labels) > 64)
        return sb_field_error(err, "labels", "labels must be an object of at most 64 strings");
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v)
    {
        if (!*k || strlen(k) > 128 || !json_is_string(v) || json_string_length(v) > 1024)
            return sb_field_error(err, "labels", "label keys are 1 to 128 characters, values strings");
        for (const char *p = k; *p; p++)
            if ((unsigned char)*p < 0x20)
                return sb_field_error(err, "labels", "label keys have no control characters");
    }
    return 0;
}

/* Replies 422 naming the field; returns -1 so checks read `return reject(…)`. */
static int reject(struct http_request *req, const char *field, const char *message)
{
    struct sb_err err = {0};
    sb_field_error(&err, field, "%s", message);
    return api_fail(req, &err);
}

static bool name_ok(const char *s)
{
    return api_docker_ref_ok(s, 128);
}

/* The node of the request and the object its path parameter `param` names,
 * checked with `ok`; otherwise replies (404 for the node, 422 naming
 * `field`) and returns -1. */
static int object_target(struct http_request *req, const char *param, bool (*ok)(const char *),
                         const char *field, const char *message, struct api_node *node, const char **ref)
{
    if (api_docker_node(req, http_param(req, "id"), node))
        return -1;
    *ref = http_param(req, param);
    if (!*ref || !ok(*ref))
        return reject(req, field, message);
    return 0;
}

/* The body of a create: a valid `name` and optional `labels`. */
static int create_body(struct http_request *req, const char **name, json_t **labels)
{
    struct sb_err err = {0};
    *name = json_string_value(json_object_get(req->json, "name"));
    *labels = json_object_get(req->json, "labels");
    if (!*name || !name_ok(*name))
        return reject(req, "name", "name is 1 to 128 of letters, digits, _ . -");
    if (check_labels(*labels, &err))
        return api_fail(req, &err);
    return 0;
}

/* A plain read: GET path, reply with `key: result`. */
static void simple_list(struct http_request *req, const char *path, const char *key, const char *inner)
{
    struct api_node node;
    if (api_docker_node(req, http_param(req, "id"), &node))
        return;
    struct sb_err err = {0};
    json_t *j = NULL;
    if (docker_call(node.socket, "GET", path, NULL, 15000, &j, NULL, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *items = inner ? json_incref(json_object_get(j, inner)) : json_incref(j);
    json_decref(j);
    if (!json_is_array(items)) {
        json_decref(items);
        items = json_array();
    }
    http_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:o}", "node_id", node.id, "node_name", node.name, key, items));
}

/* A mutation: call, record the event, reply with the engine's answer (or
 * 204 when it has none). */
static void simple_mutation(struct http_request *req, const struct api_node *node, const char *method,
                            const char *path, json_t *body, const char *kind, const char *ref,
                            const char *type, json_t *data, int ok_status)
{
    struct sb_err err = {0};
    json_t *res = NULL;
    int rc = docker_call(node->socket, method, path, body, 120000, &res, NULL, &err);
    json_t *d = data ? data : json_object();
    if (!rc && json_is_object(res) && json_object_get(res, "SpaceReclaimed"))
        json_object_set(d, "space_reclaimed", json_object_get(res, "SpaceReclaimed"));
    api_docker_record(req, kind, node, ref, type, d, rc ? &err : NULL);
    json_decref(d);
    if (rc) {
        json_decref(res);
        api_fail(req, &err);
        return;
    }
    if (ok_status == 204 || !res) {
        json_decref(res);
        http_reply_json(req, ok_status == 204 ? 204 : ok_status, ok_status == 204 ? NULL : json_object());
        return;
    }
    http_reply_json(req, ok_status, res);
}

/* POST /<kind>s/prune on the node: event <kind>.prune_requested. */
static void prune(struct http_request *req, const char *kind)
{
    struct api_node node;
    if (api_docker_node(req, http_param(req, "id"), &node))
        return;
    char path[32], type[48];
    snprintf(path, sizeof path, "/%ss/prune", kind);
    snprintf(type, sizeof type, "%s.prune_requested", kind);
    simple_mutation(req, &node, "POST", path, NULL, kind, "prune", type, NULL, 200);
}

/* ---- images -------------------------------------------------------------- */

void api_images_list(struct http_request *req)
{
    simple_list(req, "/images/json", "images", NULL);
}

/* What a streamed pull needs to record its event once it has ended, after
 * the request's own memory is gone: copies of everything. */
struct pull_record {
    struct store *store;
    char stream[400];
    json_t *data;
    char kind[16], id[64], name[128], ip[48];
    bool has_id;
};

static void pull_done(void *ctx, bool ok, const char *message)
{
    struct pull_record *p = ctx;
    if (!ok) {
        json_t *m = json_string(message ? message : "pull failed");
        json_object_set_new(p->data, "error", m ? m : json_string("pull failed"));
    }
    struct event_new ev = {
        .stream = p->stream,
        .type = "image.pull_requested",
        .data = p->data,
        .actor = {.kind = p->kind, .id = p->has_id ? p->id : NULL, .name = p->name, .ip = p->ip},
        .outcome = ok ? "success" : "failure"};
    struct sb_err err = {0};
    int64_t seq;
    if (store_append(p->store, &ev, &seq, &err))
        log_warn("action event not recorded", "type=image.pull_requested detail=\"%s\"", err.msg);
    json_decref(p->data);
    free(p);
}

static void pull_streamed(struct http_request *req, const struct api_node *node, const char *path,
                          const char *ref)
{
    struct app *app = req->app;
    struct pull_record *p = calloc(1, sizeof *p);
    if (!p) {
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    struct event_actor a;
    api_actor(req, &a);
    p->store = app->store;
    snprintf(p->stream, sizeof p->stream, "image/%s/%s", node->id, ref);
    p->data = json_pack("{s:s, s:s}", "image", ref, "node_id", node->id);
    sb_strlcpy(p->kind, a.kind ? a.kind : "system", sizeof p->kind);
    p->has_id = a.id != NULL;
    sb_strlcpy(p->id, a.id ? a.id : "", sizeof p->id);
    sb_strlcpy(p->name, a.name ? a.name : "", sizeof p->name);
    sb_strlcpy(p->ip, a.ip ? a.ip : "", sizeof p->ip);
    struct MHD_Response *resp = NULL;
    struct sb_err err = {0};
    if (docker_stream_pull(app->docker, node->socket, path, pull_done, p, req->conn, &resp, &err)) {
        pull_done(p, false, err.msg);
        api_fail(req, &err);
        return;
    }
    http_reply_response(req, 200, resp);
}

void api_image_pull(struct http_request *req)
{
    static const char *const allowed[] = {"image", "tag", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct api_node node;
    if (api_docker_node(req, http_param(req, "id"), &node))
        return;
    const char *image = json_string_value(json_object_get(req->json, "image"));
    json_t *tagj = json_object_get(req->json, "tag");
    const char *tag = json_string_value(tagj);
    if (!image || !image_ref_ok(image)) {
        reject(req, "image", "image is a reference like registry.example/app");
        return;
    }
    if (tagj && (!tag || !name_ok(tag))) {
        reject(req, "tag", "tag is 1 to 128 of letters, digits, _ . -");
        return;
    }
    struct buf path;
    buf_init(&path, 1024);
    buf_puts(&path, "/images/create?fromImage=");
    docker_urlencode(image, &path);
    buf_puts(&path, "&tag=");
    docker_urlencode(tag ? tag : "latest", &path);
    char ref[300];
    snprintf(ref, sizeof ref, "%s:%s", image, tag ? tag : "latest");
    const char *accept = http_header(req, "Accept");
    if (accept && strstr(accept, "text/event-stream")) {
        pull_streamed(req, &node, path.data, ref);
        buf_release(&path);
        return;
    }
    buf_release(&path);
    /* Otherwise a job (docker/jobs.c): 202 {"job"}, progress on job/<id>. */
    char target[400];
    snprintf(target, sizeof target, "image/%s/%s", node.id, ref);
    json_t *args = json_pack("{s:s, s:s}", "image", image, "tag", tag ? tag : "latest");
    api_docker_enqueue(req, "image.pull", &node, target, target, args);
    json_decref(args);
}

void api_image_remove(struct http_request *req)
{
    struct api_node node;
    const char *ref;
    if (object_target(req, "ref", image_ref_ok, "image", "an image is named by id (sha256:…) or reference",
                      &node, &ref))
        return;
    bool force;
    if (api_query_bool(req, "force", false, &force))
        return;
    struct buf path;
    buf_init(&path, 1024);
    buf_puts(&path, "/images/");
    docker_urlencode(ref, &path);
    buf_printf(&path, "?force=%d", force);
    simple_mutation(req, &node, "DELETE", path.data, NULL, "image", ref, "image.remove_requested",
                    json_pack("{s:s, s:b}", "image", ref, "force", force), 200);
    buf_release(&path);
}

void api_images_prune(struct http_request *req)
{
    prune(req, "image");
}

/* ---- volumes ------------------------------------------------------------- */

void api_volumes_list(struct http_request *req)
{
    simple_list(req, "/volumes", "volumes", "Volumes");
}

void api_volume_create(struct http_request *req)
{
    static const char *const allowed[] = {"name", "labels", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct api_node node;
    if (api_docker_node(req, http_param(req, "id"), &node))
        return;
    const char *name;
    json_t *labels;
    if (create_body(req, &name, &labels))
        return;
    json_t *body = json_pack("{s:s, s:s}", "Name", name, "Driver", "local");
    if (labels)
        json_object_set(body, "Labels", labels);
    simple_mutation(req, &node, "POST", "/volumes/create", body, "volume", name, "volume.create_requested",
                    json_pack("{s:s}", "name", name), 201);
    json_decref(body);
}

void api_volume_remove(struct http_request *req)
{
    struct api_node node;
    const char *name;
    if (object_target(req, "name", name_ok, "volume", "a volume is named by letters, digits, _ . -", &node,
                      &name))
        return;
    bool force;
    if (api_query_bool(req, "force", false, &force))
        return;
    char path[200];
    snprintf(path, sizeof path, "/volumes/%s?force=%d", name, force);
    simple_mutation(req, &node, "DELETE", path, NULL, "volume", name, "volume.remove_requested",
                    json_pack("{s:s}", "name", name), 204);
}

void api_volumes_prune(struct http_request *req)
{
    prune(req, "volume");
}

/* ---- networks ------------------------------------------------------------ */

void api_networks_list(struct http_request *req)
{
    simple_list(req, "/networks", "networks", NULL);
}

void api_network_create(struct http_request *req)
{
    static const char *const allowed[] = {"name", "driver", "internal", "labels", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct api_node node;
    if (api_docker_node(req, http_param(req, "id"), &node))
        return;
    const char *name;
    json_t *labels;
    if (create_body(req, &name, &labels))
        return;
    json_t *driverj = json_object_get(req->json, "driver");
    const char *driver = driverj ? json_string_value(driverj) : "bridge";
    json_t *internal = json_object_get(req->json, "internal");
    if (!driver || (strcmp(driver, "bridge") && strcmp(driver, "overlay") && strcmp(driver, "macvlan"))) {
        reject(req, "driver", "driver is bridge, overlay or macvlan");
        return;
    }
    if (internal && !json_is_boolean(internal)) {
        reject(req, "internal", "internal is a boolean");
        return;
    }
    json_t *body = json_pack("{s:s, s:s, s:b, s:b}", "Name", name, "Driver", driver, "Internal",
                             internal && json_is_true(internal), "CheckDuplicate", 1);
    if (labels)
        json_object_set(body, "Labels", labels);
    simple_mutation(req, &node, "POST", "/networks/create", body, "network", name, "network.create_requested",
                    json_pack("{s:s, s:s}", "name", name, "driver", driver), 201);
    json_decref(body);
}

void api_network_remove(struct http_request *req)
{
    struct api_node node;
    const char *nid;
    if (object_target(req, "nid", name_ok, "network",
                      "a network is named by id or name: letters, digits, _ . -", &node, &nid))
        return;
    char path[200];
    snprintf(path, sizeof path, "/networks/%s", nid);
    simple_mutation(req, &node, "DELETE", path, NULL, "network", nid, "network.remove_requested",
                    json_pack("{s:s}", "network", nid), 204);
}

void api_networks_prune(struct http_request *req)
{
    prune(req, "network");
}
