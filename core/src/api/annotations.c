/*
 * Annotations: free-text markers that operators and CI systems write into
 * the audit log ("deploy 1.4.2 started", "maintenance window"). They are
 * plain events on stream annotation/<uuid>.
 *
 * POST /api/v1/annotations {"message": "...", "labels": {"k": "v"}}
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

#define MESSAGE_MAX   2000
#define LABELS_MAX    16
#define LABEL_LEN_MAX 100

static int check_labels(json_t *labels, struct sb_err *err)
{
    static const struct labels_rule rule = {"labels", LABELS_MAX, LABEL_LEN_MAX, LABEL_LEN_MAX, NULL, true};
    return labels_check(labels, &rule, err);
}

void api_annotation_create(struct http_request *req)
{
    static const char *const allowed[] = {"message", "labels", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct sb_err err = {0};
    json_t *message = json_object_get(req->json, "message");
    json_t *labels = json_object_get(req->json, "labels");
    if (!json_is_string(message) || json_string_length(message) == 0) {
        sb_field_error(&err, "message", "message is required and must be a non-empty string");
        api_fail(req, &err);
        return;
    }
    if (json_string_length(message) > MESSAGE_MAX) {
        sb_field_error(&err, "message", "message is longer than %d bytes", MESSAGE_MAX);
        api_fail(req, &err);
        return;
    }
    if (check_labels(labels, &err)) {
        api_fail(req, &err);
        return;
    }

    char id[37], stream[64];
    uuid_v4(id);
    snprintf(stream, sizeof stream, "annotation/%s", id);
    json_t *data = json_pack("{s:s, s:O}", "id", id, "message", message);
    if (labels)
        json_object_set(data, "labels", labels);
    struct event_new ev = {
        .stream = stream, .type = "annotation.created", .data = data, .outcome = "success"};
    api_actor(req, &ev.actor);
    int64_t seq = 0;
    struct app *app = req->app;
    int rc = store_append(app->store, &ev, &seq, &err);
    if (rc) {
        json_decref(data);
        api_fail(req, &err);
        return;
    }
    json_object_set_new(data, "seq", json_integer(seq));
    http_reply_json(req, 201, data);
}
