/*
 * Terminals and their recordings (issue #16). The work is in terminal/;
 * this file parses, checks the caller's node scope, records the events and
 * replies.
 *
 * POST   /api/v1/nodes/{id}/terminals {"session","cols"?,"rows"?}  open or re-attach
 * DELETE /api/v1/nodes/{id}/terminals/{session}  kill a tmux session no terminal shows
 * GET    /api/v1/terminals                      open terminals (in the caller's scope)
 * GET    /api/v1/terminals/{id}
 * GET    /api/v1/terminals/{id}/output?offset=N  Server-Sent Events (Last-Event-ID works too)
 * POST   /api/v1/terminals/{id}/input            raw bytes, or {"data": base64}
 * POST   /api/v1/terminals/{id}/resize {"cols","rows"}
 * DELETE /api/v1/terminals/{id}?kill=1            detach (and kill the tmux session)
 * POST   /api/v1/nodes/{id}/containers/{cid}/console {"cols"?,"rows"?}  a TTY exec (bash, else sh)
 * GET    /api/v1/recordings                       ?node= &limit=
 * GET    /api/v1/recordings/{id}                  the asciicast v2 file
 */
#include "api.h"

#include "../terminal/terminal.h"
#include "docker_api.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct terminals *terms_of(struct http_request *req)
{
    struct app *app = req->app;
    if (!app->terminals)
        http_reply_error(req, 503, "unavailable", "terminals are not available on this server");
    return app->terminals;
}

static int append_event(struct app *app, struct http_request *req, const char *node_id, const char *type,
                        json_t *data, struct sb_err *err)
{
    char stream[64];
    snprintf(stream, sizeof stream, "node/%s", node_id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = "success"};
    if (req)
        api_actor(req, &ev.actor);
    else
        ev.actor = (struct event_actor){.kind = "system", .name = "terminal"};
    int64_t seq;
    return store_append(app->store, &ev, &seq, err);
}

static json_t *closed_data(const struct terminal_closed *c)
{
    char at[40];
    time_format_rfc3339(c->info.opened_us, at, sizeof at);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:{s:s, s:s, s:I, s:b}}", "terminal_id",
                          c->info.id, "node_id", c->info.node_id, "session", c->info.session, "opened_by",
                          c->info.opened_by, "opened_at", at, "reason", c->reason ? c->reason : "closed",
                          "killed", c->killed, "bytes_out", (json_int_t)c->info.end_offset, "recording", "id",
                          c->recording_id, "sha256", c->recording_sha256, "bytes",
                          (json_int_t)c->recording_bytes, "truncated", c->recording_truncated);
    if (c->info.container[0])
        json_object_set_new(o, "container", json_string(c->info.container));
    return o;
}

/* terminal_config.closed: a terminal ended by itself. */
void api_terminal_closed(void *ctx, const struct terminal_closed *c)
{
    struct app *app = ctx;
    json_t *data = closed_data(c);
    struct sb_err err = {0};
    if (append_event(app, NULL, c->info.node_id, "terminal.closed", data, &err))
        log_error("terminal.closed not recorded", "terminal=%s detail=\"%s\"", c->info.id, err.msg);
    json_decref(data);
}

/* The open terminal `id` in the caller's scope, or a reply and -1. */
static int load_visible(struct http_request *req, struct terminal_info *info)
{
    struct terminals *ts = terms_of(req);
    if (!ts)
        return -1;
    struct sb_err err = {0};
    if (terminal_get(ts, http_param(req, "id"), info, &err))
        return api_fail(req, &err);
    if (strcmp(info->node_id, DOCKER_LOCAL_NODE) == 0) {
        if (api_node_visible(req, NULL))
            return 0;
        http_reply_error(req, 404, "not_found", "no such terminal");
        return -1;
    }
    json_t *node = NULL;
    if (api_node_load_visible(req, info->node_id, &node)) {
        /* out of scope: the terminal does not exist for this caller */
        return -1;
    }
    json_decref(node);
    return 0;
}

void api_terminal_open(struct http_request *req)
{
    static const char *const allowed[] = {"session", "cols", "rows", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct terminals *ts = terms_of(req);
    if (!ts)
        return;
    struct app *app = req->app;
    const char *node_id = http_param(req, "id");
    json_t *node = NULL;
    if (api_node_load_visible(req, node_id, &node))
        return;
    json_decref(node);
    struct sb_err err = {0};
    json_t *sv = json_object_get(req->json, "session");
    json_t *cv = json_object_get(req->json, "cols"), *rv = json_object_get(req->json, "rows");
    if (sv && !json_is_string(sv))
        sb_field_error(&err, "session", "session is a string of A-Z a-z 0-9 _ -");
    else if (cv && !json_is_integer(cv))
        sb_field_error(&err, "cols", "cols must be a whole number from 2 to 1000");
    else if (rv && !json_is_integer(rv))
        sb_field_error(&err, "rows", "rows must be a whole number from 1 to 1000");
    else if (cv && (json_integer_value(cv) < 2 || json_integer_value(cv) > 1000))
        sb_field_error(&err, "cols", "cols must be 2 to 1000");
    else if (rv && (json_integer_value(rv) < 1 || json_integer_value(rv) > 1000))
        sb_field_error(&err, "rows", "rows must be 1 to 1000");
    const char *session = sv ? json_string_value(sv) : "main";
    if (!err.code)
        terminal_name_check(session, &err);
    if (err.code) {
        api_fail(req, &err);
        return;
    }
    struct event_actor actor;
    api_actor(req, &actor);
    struct terminal_open_opts o = {.node_id = node_id,
                                   .session = session,
                                   .opened_by = actor.name,
                                   .cols = cv ? (int)json_integer_value(cv) : 0,
                                   .rows = rv ? (int)json_integer_value(rv) : 0};
    struct terminal_info info;
    bool joined = false;
    if (terminal_open(ts, &o, &info, &joined, &err)) {
        if (strstr(err.msg, "tmux is not installed")) {
            http_reply_error(req, 409, "tmux_missing", "%s", err.msg);
            return;
        }
        api_fail(req, &err);
        return;
    }
    json_t *data = json_pack("{s:s, s:s, s:s, s:i, s:i, s:b, s:s}", "terminal_id", info.id, "node_id",
                             info.node_id, "session", info.session, "cols", info.cols, "rows", info.rows,
                             "joined", joined, "recording_id", info.id);
    int rc = append_event(app, req, node_id, "terminal.opened", data, &err);
    json_decref(data);
    if (rc) {
        /* No terminal without its event: undo a fresh one. */
        if (!joined) {
            struct terminal_closed c;
            struct sb_err e2 = {0};
            terminal_close(ts, info.id, false, &c, &e2);
        }
        api_fail(req, &err);
        return;
    }
    json_t *body = terminal_info_json(&info);
    json_object_set_new(body, "joined", json_boolean(joined));
    json_object_set_new(body, "recording_id", json_string(info.id));
    http_reply_json(req, joined ? 200 : 201, body);
}

void api_terminals_list(struct http_request *req)
{
    struct terminals *ts = terms_of(req);
    if (!ts)
        return;
    struct app *app = req->app;
    const char *only = http_query(req, "node");
    json_t *all = terminals_list(ts), *items = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(all, i, t)
    {
        const char *nid = json_string_value(json_object_get(t, "node_id"));
        if (only && strcmp(only, nid) != 0)
            continue;
        json_t *node = NULL;
        struct sb_err err = {0};
        if (strcmp(nid, DOCKER_LOCAL_NODE) == 0 ? api_node_visible(req, NULL)
                                                : store_node_get(app->store, nid, &node, &err) == 0 &&
                                                      api_node_visible(req, json_object_get(node, "labels")))
            json_array_append(items, t);
        json_decref(node);
    }
    json_decref(all);
    http_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

void api_terminal_get(struct http_request *req)
{
    struct terminal_info info;
    if (load_visible(req, &info))
        return;
    http_reply_json(req, 200, terminal_info_json(&info));
}

void api_terminal_output(struct http_request *req)
{
    struct terminal_info info;
    if (load_visible(req, &info))
        return;
    /* ?offset= wins; else Last-Event-ID (the id of each output event is the offset after it). */
    const char *q = http_query(req, "offset");
    const char *h = http_header(req, "Last-Event-ID");
    const char *v = q ? q : h;
    unsigned long long offset = info.start_offset; /* all the ring still holds */
    if (v) {
        char *end;
        offset = strtoull(v, &end, 10);
        if (!*v || *end || v[0] == '-') {
            http_reply_error(req, 400, "bad_parameter", "offset is a byte offset (a whole number)");
            return;
        }
    }
    struct MHD_Response *resp = NULL;
    struct sb_err err = {0};
    if (terminal_stream(((struct app *)req->app)->terminals, info.id, offset, req->conn, &resp, &err)) {
        api_fail(req, &err);
        return;
    }
    http_reply_response(req, 200, resp);
}

void api_terminal_input(struct http_request *req)
{
    struct terminal_info info;
    if (load_visible(req, &info))
        return;
    struct sb_err err = {0};
    const char *ct = http_header(req, "Content-Type");
    unsigned char *raw = NULL;
    const char *data = req->body.data;
    size_t len = req->body.len;
    if (ct && strncasecmp(ct, "application/json", 16) == 0) {
        json_t *j = http_parse_json_object(req->body.data, req->body.len, &err);
        if (!j) {
            http_reply_error(req, 400, "malformed_json", "%s", err.msg);
            return;
        }
        json_t *d = json_object_get(j, "data");
        static const char *const allowed[] = {"data", NULL};
        size_t out = 0;
        if (http_json_check_fields(j, allowed, &err)) {
            /* named */
        } else if (!json_is_string(d)) {
            sb_field_error(&err, "data", "data is the input as base64");
        } else if (!(raw = malloc(json_string_length(d) + 1))) {
            sb_error(&err, SB_ENOMEM, "out of memory");
        } else if (sodium_base642bin(raw, json_string_length(d) + 1, json_string_value(d),
                                     json_string_length(d), "\r\n", &out, NULL,
                                     sodium_base64_VARIANT_ORIGINAL) != 0) {
            sb_field_error(&err, "data", "data is not valid base64");
        }
        json_decref(j);
        if (err.code) {
            free(raw);
            api_fail(req, &err);
            return;
        }
        data = (const char *)raw;
        len = out;
    }
    if (len == 0) {
        free(raw);
        http_reply_json(req, 200, json_pack("{s:i}", "accepted", 0));
        return;
    }
    int rc = terminal_input(((struct app *)req->app)->terminals, info.id, data, len, &err);
    free(raw);
    if (rc) {
        if (rc == SB_ETOOLARGE) {
            http_add_header(req, "Retry-After", "1");
            http_reply_error(req, 429, "input_backlog_full", "%s", err.msg);
            return;
        }
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, json_pack("{s:I}", "accepted", (json_int_t)len));
}

void api_terminal_resize(struct http_request *req)
{
    static const char *const allowed[] = {"cols", "rows", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct terminal_info info;
    if (load_visible(req, &info))
        return;
    json_t *cv = json_object_get(req->json, "cols"), *rv = json_object_get(req->json, "rows");
    struct sb_err err = {0};
    if (!json_is_integer(cv) || json_integer_value(cv) < 2 || json_integer_value(cv) > 1000)
        sb_field_error(&err, "cols", "cols must be a whole number from 2 to 1000");
    else if (!json_is_integer(rv) || json_integer_value(rv) < 1 || json_integer_value(rv) > 1000)
        sb_field_error(&err, "rows", "rows must be a whole number from 1 to 1000");
    else
        terminal_resize(((struct app *)req->app)->terminals, info.id, (int)json_integer_value(cv),
                        (int)json_integer_value(rv), &err);
    if (err.code) {
        api_fail(req, &err);
        return;
    }
    http_reply_json(
        req, 200,
        json_pack("{s:i, s:i}", "cols", (int)json_integer_value(cv), "rows", (int)json_integer_value(rv)));
}

void api_terminal_close(struct http_request *req)
{
    struct terminal_info info;
    if (load_visible(req, &info))
        return;
    bool kill;
    if (api_query_bool(req, "kill", false, &kill))
        return;
    struct app *app = req->app;
    struct terminal_closed c;
    struct sb_err err = {0};
    if (terminal_close(app->terminals, info.id, kill, &c, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *data = closed_data(&c);
    int rc = append_event(app, req, c.info.node_id, "terminal.closed", data, &err);
    if (rc) {
        json_decref(data);
        log_error("terminal.closed not recorded", "terminal=%s detail=\"%s\"", c.info.id, err.msg);
        api_fail(req, &err);
        return;
    }
    http_reply_json(req, 200, data);
}

void api_terminal_kill_session(struct http_request *req)
{
    struct terminals *ts = terms_of(req);
    if (!ts)
        return;
    const char *node_id = http_param(req, "id");
    json_t *node = NULL;
    if (api_node_load_visible(req, node_id, &node))
        return;
    json_decref(node);
    const char *session = http_param(req, "session");
    struct sb_err err = {0};
    if (terminal_kill_session(ts, node_id, session, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *data = json_pack("{s:s, s:s}", "node_id", node_id, "session", session);
    append_event(req->app, req, node_id, "terminal.session_killed", data, &err);
    json_decref(data);
    http_reply_json(req, 204, NULL);
}

void api_container_console(struct http_request *req)
{
    static const char *const allowed[] = {"cols", "rows", NULL};
    if (api_check_fields(req, allowed))
        return;
    struct terminals *ts = terms_of(req);
    if (!ts)
        return;
    struct app *app = req->app;
    struct api_node node;
    if (api_docker_node(req, http_param(req, "id"), &node))
        return;
    const char *cid = http_param(req, "cid");
    struct sb_err err = {0};
    if (!api_docker_ref_ok(cid, 128)) {
        http_reply_error(req, 404, "not_found", "no such container");
        return;
    }
    json_t *cv = json_object_get(req->json, "cols"), *rv = json_object_get(req->json, "rows");
    if (cv && (!json_is_integer(cv) || json_integer_value(cv) < 2 || json_integer_value(cv) > 1000))
        sb_field_error(&err, "cols", "cols must be a whole number from 2 to 1000");
    else if (rv && (!json_is_integer(rv) || json_integer_value(rv) < 1 || json_integer_value(rv) > 1000))
        sb_field_error(&err, "rows", "rows must be a whole number from 1 to 1000");
    if (err.code) {
        api_fail(req, &err);
        return;
    }
    char path[200];
    snprintf(path, sizeof path, "/containers/%s/json", cid);
    json_t *doc = NULL;
    if (docker_call(node.socket, "GET", path, NULL, 0, &doc, NULL, &err)) {
        api_fail(req, &err);
        return;
    }
    char full[80];
    sb_strlcpy(full, json_string_value(json_object_get(doc, "Id")) ?: cid, sizeof full);
    bool running = json_is_true(json_object_get(json_object_get(doc, "State"), "Running"));
    json_decref(doc);
    if (!running) {
        http_reply_error(req, 409, "not_running", "the container is not running; start it first");
        return;
    }
    struct event_actor actor;
    api_actor(req, &actor);
    struct terminal_open_opts o = {.node_id = node.id,
                                   .opened_by = actor.name,
                                   .cols = cv ? (int)json_integer_value(cv) : 0,
                                   .rows = rv ? (int)json_integer_value(rv) : 0};
    struct terminal_info info;
    if (terminal_console_open(ts, &o, full, &info, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "terminal_id", info.id, "node_id",
                             info.node_id, "container", info.container, "session", info.session, "cols",
                             info.cols, "rows", info.rows, "recording_id", info.id);
    int rc = append_event(app, req, node.id, "terminal.opened", data, &err);
    json_decref(data);
    if (rc) {
        struct terminal_closed c;
        struct sb_err e2 = {0};
        terminal_close(ts, info.id, false, &c, &e2);
        api_fail(req, &err);
        return;
    }
    json_t *body = terminal_info_json(&info);
    json_object_set_new(body, "recording_id", json_string(info.id));
    http_reply_json(req, 201, body);
}

/* ---- recordings ---------------------------------------------------------- */

void api_recordings_list(struct http_request *req)
{
    struct app *app = req->app;
    long limit;
    if (http_query_int(req, "limit", 100, 1, 1000, &limit))
        return;
    const char *node = http_query(req, "node");
    if (node && !uuid_valid(node) && strcmp(node, DOCKER_LOCAL_NODE) != 0) {
        http_reply_error(req, 400, "bad_parameter", "node is a node id (or local)");
        return;
    }
    json_t *rows = NULL;
    struct sb_err err = {0};
    if (store_recordings_list(app->store, node, (int)limit, &rows, &err)) {
        api_fail(req, &err);
        return;
    }
    json_t *items = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        if (!api_node_visible(req, json_object_get(r, "node_labels")))
            continue;
        char path[1100];
        struct sb_err e2 = {0};
        json_object_set_new(
            r, "available",
            json_boolean(app->terminals &&
                         terminal_recording_path(app->terminals, json_string_value(json_object_get(r, "id")),
                                                 path, sizeof path, &e2) == 0));
        json_object_del(r, "node_labels");
        json_array_append(items, r);
    }
    json_decref(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "items", items));
}

void api_recording_get(struct http_request *req)
{
    struct app *app = req->app;
    json_t *row = NULL;
    struct sb_err err = {0};
    if (store_recording_get(app->store, http_param(req, "id"), &row, &err)) {
        api_fail(req, &err);
        return;
    }
    bool visible = api_node_visible(req, json_object_get(row, "node_labels"));
    char sha[65];
    sb_strlcpy(sha, json_string_value(json_object_get(row, "sha256")) ?: "", sizeof sha);
    json_decref(row);
    if (!visible) {
        http_reply_error(req, 404, "not_found", "no such recording");
        return;
    }
    struct terminals *ts = terms_of(req);
    if (!ts)
        return;
    int fd = -1;
    uint64_t size = 0;
    if (terminal_recording_open(ts, http_param(req, "id"), &fd, &size, &err)) {
        api_fail(req, &err);
        return;
    }
    char cd[96];
    snprintf(cd, sizeof cd, "attachment; filename=\"%s.cast\"", http_param(req, "id"));
    http_add_header(req, "X-Recording-SHA256", sha);
    http_add_header(req, "Cache-Control", "no-store");
    http_add_header(req, "Content-Disposition", cd);
    http_reply_file(req, 200, fd, size, "application/x-asciicast");
}

/* ---- start and stop ------------------------------------------------------- */

static int target_load(void *ctx, const char *node_id, struct ssh_target *t, void **handle,
                       struct sb_err *err)
{
    struct app *app = ctx;
    struct nodes_target *nt = calloc(1, sizeof *nt);
    if (!nt)
        return sb_error(err, SB_ENOMEM, "out of memory");
    int rc = nodes_target_load(app->nodes, node_id, nt, err);
    if (rc) {
        free(nt);
        return rc;
    }
    *t = nt->t;
    *handle = nt;
    return 0;
}

static void target_release(void *ctx, void *handle)
{
    (void)ctx;
    nodes_target_release(handle);
    free(handle);
}

static int console_open(void *ctx, const char *node_id, const char *container, int cols, int rows, int *fd,
                        char exec_id[80], struct buf *early, struct sb_err *err)
{
    struct app *app = ctx;
    char sock[DOCKER_SOCKET_MAX], name[128];
    int rc = app->docker
                 ? docker_endpoint_for_node(app->docker, node_id, sock, sizeof sock, name, sizeof name, err)
                 : sb_error(err, SB_EUNAVAIL, "docker is not available");
    return rc ? rc : docker_console_open(sock, container, cols, rows, fd, exec_id, early, err);
}

static void console_resize(void *ctx, const char *node_id, const char *exec_id, int cols, int rows)
{
    struct app *app = ctx;
    char sock[DOCKER_SOCKET_MAX], name[128];
    struct sb_err err = {0};
    if (app->docker &&
        docker_endpoint_for_node(app->docker, node_id, sock, sizeof sock, name, sizeof name, &err) == 0)
        docker_console_resize(sock, exec_id, cols, rows, &err);
}

int api_terminals_start(struct app *app, struct sb_err *err)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/recordings", config_get(app->cfg, "data-dir"));
    long idle = config_get_int(app->cfg, "terminal-idle-timeout");
    long ring = config_get_int(app->cfg, "terminal-ring-bytes");
    if (ring < 0 || ring > (64L << 20))
        return sb_error(err, SB_EINVAL, "--terminal-ring-bytes must be from 1 to 67108864");
    struct terminal_config tc = {
        .pool = app->ssh_pool,
        .target_load = target_load,
        .target_release = target_release,
        .closed = api_terminal_closed,
        .console_open = console_open,
        .console_resize = console_resize,
        .ctx = app,
        .recordings_dir = dir,
        .record_input = config_get_int(app->cfg, "record-input") != 0,
        .recording_max_bytes = (size_t)config_get_int(app->cfg, "recording-max-bytes"),
        .idle_timeout_ms = idle > 0 ? (int)(idle * 1000) : -1,
        .max_per_node = (int)config_get_int(app->cfg, "terminal-max-per-node"),
        .ring_bytes = ring > 0 ? (size_t)ring : 0,
        .retention_days = (int)config_get_int(app->cfg, "recording-retention-days"),
    };
    app->terminals = terminals_new(&tc, err);
    return app->terminals ? 0 : (err ? err->code : SB_EINTERNAL);
}

void api_terminals_shutdown(struct app *app)
{
    terminals_shutdown(app->terminals);
}

void api_terminals_stop(struct app *app)
{
    terminals_free(app->terminals);
    app->terminals = NULL;
}
