/*
 * Pure parts of the client: the multiplexed-stream decoder, the line
 * splitter, and the engine-event translation. No I/O, so the unit tests
 * drive them with every possible split of their input.
 */
#include "docker.h"

#include <stdlib.h>
#include <string.h>

void docker_frames_init(struct docker_frames *f, bool raw, docker_frame_fn on_data, void *ctx)
{
    memset(f, 0, sizeof *f);
    f->raw = raw;
    f->on_data = on_data;
    f->ctx = ctx;
}

int docker_frames_feed(struct docker_frames *f, const char *data, size_t len)
{
    if (f->failed)
        return SB_EUPSTREAM;
    if (f->raw)
        return len ? f->on_data(f->ctx, DOCKER_STDOUT, data, len) : 0;
    while (len) {
        if (f->remaining == 0) {
            /* collecting a header */
            size_t take = 8 - f->have;
            if (take > len)
                take = len;
            memcpy(f->header + f->have, data, take);
            f->have += take;
            data += take;
            len -= take;
            if (f->have < 8)
                return 0;
            f->have = 0;
            const uint8_t *h = f->header;
            if (h[0] > 2 || h[1] || h[2] || h[3]) {
                f->failed = true;
                return SB_EUPSTREAM;
            }
            uint32_t size = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
            if (size > DOCKER_FRAME_MAX) {
                f->failed = true;
                return SB_EUPSTREAM;
            }
            f->stream = h[0];
            f->remaining = size;
            continue;
        }
        size_t take = f->remaining < len ? f->remaining : len;
        int rc = f->on_data(f->ctx, f->stream, data, take);
        if (rc)
            return rc;
        f->remaining -= (uint32_t)take;
        data += take;
        len -= take;
    }
    return 0;
}

void docker_lines_init(struct docker_lines *l, docker_line_fn on_line, void *ctx)
{
    for (int i = 0; i < 3; i++)
        buf_init(&l->pending[i], DOCKER_LINE_MAX + 1);
    l->on_line = on_line;
    l->ctx = ctx;
}

void docker_lines_release(struct docker_lines *l)
{
    for (int i = 0; i < 3; i++)
        buf_release(&l->pending[i]);
}

int docker_lines_feed(struct docker_lines *l, int stream, const char *data, size_t len)
{
    if (stream < 0 || stream > 2)
        return SB_EINVAL;
    struct buf *b = &l->pending[stream];
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t seg = nl ? (size_t)(nl - data) : len;
        size_t room = DOCKER_LINE_MAX - b->len;
        if (seg > room) {
            /* an over-long line: emit what fits as a line of its own */
            buf_append(b, data, room);
            int rc = l->on_line(l->ctx, stream, b->data, b->len);
            buf_reset(b);
            if (rc)
                return rc;
            data += room;
            len -= room;
            continue;
        }
        buf_append(b, data, seg);
        if (!nl)
            return 0;
        size_t n = b->len;
        if (n && b->data[n - 1] == '\r')
            n--;
        int rc = l->on_line(l->ctx, stream, b->data, n);
        buf_reset(b);
        if (rc)
            return rc;
        data += seg + 1;
        len -= seg + 1;
    }
    return 0;
}

int docker_lines_flush(struct docker_lines *l)
{
    for (int i = 0; i < 3; i++) {
        if (l->pending[i].len) {
            int rc = l->on_line(l->ctx, i, l->pending[i].data, l->pending[i].len);
            buf_reset(&l->pending[i]);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int docker_translate_event(const char *node_id, json_t *e, const char **type, json_t **data)
{
    const char *kind = json_string_value(json_object_get(e, "Type"));
    const char *action = json_string_value(json_object_get(e, "Action"));
    json_t *actor = json_object_get(e, "Actor");
    const char *id = json_string_value(json_object_get(actor, "ID"));
    if (!kind || strcmp(kind, "container") != 0 || !action || !id)
        return SB_ENOTFOUND;
    json_t *attrs = json_object_get(actor, "Attributes");
    const char *t = NULL;
    const char *state = NULL;
    const char *health = NULL;
    if (strcmp(action, "create") == 0) {
        t = "container.created";
        state = "created";
    } else if (strcmp(action, "start") == 0) {
        t = "container.started";
        state = "running";
    } else if (strcmp(action, "die") == 0) {
        t = "container.died";
        state = "exited";
    } else if (strcmp(action, "oom") == 0) {
        t = "container.oom";
    } else if (strcmp(action, "pause") == 0) {
        t = "container.paused";
        state = "paused";
    } else if (strcmp(action, "unpause") == 0) {
        t = "container.unpaused";
        state = "running";
    } else if (strcmp(action, "destroy") == 0) {
        t = "container.destroyed";
        state = "removed";
    } else if (strncmp(action, "health_status: ", 15) == 0) {
        t = "container.health_status";
        health = action + 15;
    } else {
        return SB_ENOTFOUND;
    }
    json_t *d = json_pack("{s:s, s:s}", "node_id", node_id, "container_id", id);
    if (!d)
        return SB_ENOTFOUND;
    json_t *labels = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(attrs, k, v)
    {
        if (!json_is_string(v))
            continue;
        if (strcmp(k, "name") == 0 || strcmp(k, "image") == 0)
            json_object_set(d, k, v);
        else if (strcmp(k, "exitCode") == 0)
            json_object_set_new(d, "exit_code", json_integer(strtol(json_string_value(v), NULL, 10)));
        else if (strcmp(k, "execDuration") != 0 && strcmp(k, "signal") != 0)
            json_object_set(labels, k, v);
    }
    /* The log is permanent and readers see it: secret-looking labels are
     * named, never held. */
    docker_redact_labels(labels);
    json_object_set_new(d, "labels", labels);
    if (state)
        json_object_set_new(d, "state", json_string(state));
    if (health)
        json_object_set_new(d, "health", json_string(health));
    json_t *tn = json_object_get(e, "timeNano");
    if (json_is_integer(tn))
        json_object_set_new(d, "engine_time_ns", json_integer(json_integer_value(tn)));
    *type = t;
    *data = d;
    return 0;
}
