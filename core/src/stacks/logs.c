/*
 * The logs of a service: the last lines of each of its containers (the
 * Engine API's logs, decoded with docker/'s frame and line decoders),
 * merged by time and bounded, each line naming its container.
 */
#include "internal.h"

#include "../docker/docker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct collect {
    const char *container;
    json_t *lines;
};

static int on_line(void *ctx, int stream, const char *line, size_t len)
{
    struct collect *c = ctx;
    json_t *o = json_pack("{s:s,s:s}", "container", c->container, "stream",
                          stream == DOCKER_STDERR ? "stderr" : "stdout");
    const char *sp = memchr(line, ' ', len); /* "2026-12-03T10:01:54.123456789Z message" */
    int64_t us = 0;
    if (sp && (size_t)(sp - line) < 64) {
        char ts[64];
        memcpy(ts, line, (size_t)(sp - line));
        ts[sp - line] = 0;
        if (time_parse_rfc3339(ts, &us) == 0) {
            json_object_set_new(o, "ts", json_string(ts));
            len -= (size_t)(sp - line) + 1;
            line = sp + 1;
        }
    }
    json_t *s = json_stringn(line, len);
    json_object_set_new(o, "line", s ? s : json_string("\xef\xbf\xbd"));
    json_object_set_new(o, "us", json_integer(us));
    json_array_append_new(c->lines, o);
    return 0;
}

static int on_frame(void *ctx, int stream, const char *data, size_t len)
{
    return docker_lines_feed(ctx, stream, data, len);
}

static int by_time(const void *a, const void *b)
{
    json_t *p = *(json_t *const *)a, *q = *(json_t *const *)b;
    json_int_t x = json_integer_value(json_object_get(p, "us")),
               y = json_integer_value(json_object_get(q, "us"));
    if (x != y)
        return x < y ? -1 : 1;
    x = json_integer_value(json_object_get(p, "seq"));
    y = json_integer_value(json_object_get(q, "seq"));
    return x < y ? -1 : x > y;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

/* The containers in name order (a stable answer). */
static json_t *sorted_by_name(json_t *arr)
{
    size_t n = json_array_size(arr), i;
    json_t **v = calloc(n ? n : 1, sizeof *v), *out = json_array();
    for (i = 0; v && i < n; i++)
        v[i] = json_array_get(arr, i);
    if (v)
        qsort(v, n, sizeof *v, by_name);
    for (i = 0; v && i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    json_decref(arr);
    return out;
}

int stacks_service_logs(const char *socket, const char *project, const char *service, int tail,
                        json_t **containers, json_t **lines, struct sb_err *err)
{
    *containers = NULL;
    *lines = NULL;
    if (tail < 0)
        tail = 0;
    if (tail > STACKS_LOG_TAIL_MAX)
        tail = STACKS_LOG_TAIL_MAX;
    json_t *cs = NULL;
    int rc = stacks_containers(socket, project, &cs, err);
    if (rc)
        return rc;
    json_t *names = json_array(), *all = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(cs, i, c)
    {
        const char *s = json_string_value(json_object_get(json_object_get(c, "labels"), LABEL_SERVICE));
        if (!s || strcmp(s, service) != 0)
            continue;
        const char *name = json_string_value(json_object_get(c, "name"));
        json_array_append_new(names,
                              json_pack("{s:s,s:O}", "name", name, "state", json_object_get(c, "state")));
        char path[300];
        snprintf(path, sizeof path, "/containers/%s/logs?stdout=1&stderr=1&timestamps=1&tail=%d",
                 json_string_value(json_object_get(c, "id")), tail);
        struct docker_response r = {0};
        struct sb_err e = {0};
        if (docker_request(socket, "GET", path, NULL, 30000, &r, &e) || r.status != 200) {
            docker_response_release(&r);
            continue; /* gone meanwhile: its lines are not there */
        }
        struct collect col = {.container = name, .lines = json_array()};
        struct docker_lines dl;
        docker_lines_init(&dl, on_line, &col);
        struct docker_frames fr;
        docker_frames_init(&fr, false, on_frame, &dl); /* stack containers never have a TTY */
        docker_frames_feed(&fr, r.body.data, r.body.len);
        docker_lines_flush(&dl);
        docker_lines_release(&dl);
        docker_response_release(&r);
        json_array_extend(all, col.lines);
        json_decref(col.lines);
    }
    json_decref(cs);
    /* merged by time (stable for equal times: a container's own order),
     * the last `tail` of them */
    size_t n = json_array_size(all);
    json_t **v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        json_decref(names);
        json_decref(all);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    for (i = 0; i < n; i++) {
        v[i] = json_array_get(all, i);
        json_object_set_new(v[i], "seq", json_integer((json_int_t)i));
    }
    qsort(v, n, sizeof *v, by_time);
    json_t *out = json_array();
    for (i = n > (size_t)tail ? n - (size_t)tail : 0; i < n; i++) {
        json_object_del(v[i], "us");
        json_object_del(v[i], "seq");
        json_array_append(out, v[i]);
    }
    free(v);
    json_decref(all);
    *containers = sorted_by_name(names);
    *lines = out;
    return 0;
}
