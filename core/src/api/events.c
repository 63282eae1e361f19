/*
 * Live events: GET /api/v1/events (Server-Sent Events) and
 * GET /api/v1/events/history (JSON pages). The bus and the stream are in
 * core/src/events/; this file reads the parameters and replies.
 */
#include "api.h"

#include "../events/events.h"

#include <errno.h>
#include <stdlib.h>

/* Last-Event-ID (header) or ?last_event_id=: a seq >= 0, or -1 when absent. */
static int last_event_id(struct http_request *req, int64_t *out)
{
    const char *v = http_header(req, "Last-Event-ID");
    if (!v || !*v)
        v = http_query(req, "last_event_id");
    *out = -1;
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*end || errno || n < 0) {
        http_reply_error(req, 400, "bad_parameter",
                         "Last-Event-ID must be an event seq (a whole number >= 0)");
        return -1;
    }
    *out = n;
    return 0;
}

static int parse_topics(struct http_request *req, struct events_topics *t)
{
    struct sb_err err = {0};
    if (events_topics_parse(http_query(req, "topics"), t, &err) == 0)
        return 0;
    http_reply_error(req, 400, "bad_parameter", "%s", err.msg);
    return -1;
}

void api_events_stream(struct http_request *req)
{
    struct app *app = req->app;
    int64_t last;
    struct events_topics topics;
    if (last_event_id(req, &last) || parse_topics(req, &topics))
        return;
    struct events_stream_params p = {
        .caller = req->user, .topics = &topics, .last_event_id = last, .conn = req->conn};
    struct MHD_Response *r = NULL;
    struct sb_err err = {0};
    if (events_stream_open(app->events, &p, &r, &err))
        api_fail(req, &err);
    else
        http_reply_response(req, 200, r);
    events_topics_release(&topics);
}

void api_events_history(struct http_request *req)
{
    struct app *app = req->app;
    long after, limit;
    struct events_topics topics;
    if (http_query_int(req, "after", 0, 0, INT64_MAX, &after) ||
        http_query_int(req, "limit", 100, 1, 1000, &limit) || parse_topics(req, &topics))
        return;
    json_t *page = NULL;
    struct sb_err err = {0};
    if (events_history(app->events, req->user, &topics, after, (int)limit, &page, &err))
        api_fail(req, &err);
    else
        http_reply_json(req, 200, page);
    events_topics_release(&topics);
}
