/*
 * POST /build: an image built by the engine from a tar context sent as the
 * request body. The answer is a JSON stream, one object per line: "stream"
 * is build output, "aux.ID" the image id, and an error after the output
 * has started arrives as "errorDetail"/"error" inside the 200 — so the
 * stream is scanned, not the status. Closing the connection (the cancel
 * callback returning true) cancels the build on the engine.
 */
#include "docker.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUILD_LINE_MAX ((size_t)1 << 20)

struct build_ctx {
    const struct docker_build *b;
    struct buf line;
    char image_id[128];
    char error[512];
    bool failed;
    long status;
    struct buf body; /* a non-200 answer */
};

static void build_object(struct build_ctx *c, const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    if (!j)
        return;
    const char *s = json_string_value(json_object_get(j, "stream"));
    if (s && c->b->on_output)
        c->b->on_output(c->b->ctx, s);
    const char *id = json_string_value(json_object_get(json_object_get(j, "aux"), "ID"));
    if (id)
        sb_strlcpy(c->image_id, id, sizeof c->image_id);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e)
        e = json_string_value(json_object_get(json_object_get(j, "errorDetail"), "message"));
    if (e) {
        c->failed = true;
        sb_strlcpy(c->error, e, sizeof c->error);
        if (c->b->on_output) {
            char line[600];
            snprintf(line, sizeof line, "error: %s\n", e);
            c->b->on_output(c->b->ctx, line);
        }
    }
    json_decref(j);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct build_ctx *c = ud;
    size_t n = size * nmemb;
    if (c->status != 200) {
        buf_append(&c->body, ptr, n < 4096 ? n : 4096);
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        if (ptr[i] == '\n') {
            build_object(c, c->line.data, c->line.len);
            buf_reset(&c->line);
        } else if (buf_putc(&c->line, ptr[i])) {
            buf_reset(&c->line); /* an absurd line: dropped */
        }
    }
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct build_ctx *c = ud;
    size_t n = size * nmemb;
    int st;
    if (n > 9 && strncmp(ptr, "HTTP/", 5) == 0 && sscanf(ptr, "HTTP/%*s %d", &st) == 1)
        c->status = st;
    return n;
}

static int on_progress(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    struct build_ctx *c = ud;
    return c->b->cancelled && c->b->cancelled(c->b->ctx) ? 1 : 0;
}

int docker_build_image(const char *socket, const struct docker_build *b, char *image_id, size_t len,
                       struct sb_err *err)
{
    image_id[0] = '\0';
    char prefix[16];
    int rc = docker_api_prefix(socket, prefix, sizeof prefix, err);
    if (rc)
        return rc;
    struct buf url;
    buf_init(&url, 16384);
    buf_printf(&url, "http://localhost%s/build?rm=1&forcerm=1&t=", prefix);
    docker_urlencode(b->tag, &url);
    if (b->memory > 0)
        buf_printf(&url, "&memory=%lld&memswap=-1", (long long)b->memory);
    if (b->cpu_quota > 0)
        buf_printf(&url, "&cpuperiod=100000&cpuquota=%lld", (long long)b->cpu_quota);
    if (b->labels) {
        char *l = json_dumps(b->labels, JSON_COMPACT);
        if (l) {
            buf_puts(&url, "&labels=");
            docker_urlencode(l, &url);
            free(l);
        }
    }
    CURL *c = curl_easy_init();
    if (!c) {
        buf_release(&url);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    struct build_ctx ctx = {.b = b};
    buf_init(&ctx.line, BUILD_LINE_MAX);
    buf_init(&ctx.body, 8192);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/x-tar");
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->tar);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->tar_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, b->timeout_ms > 0 ? b->timeout_ms : 1800000L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &ctx);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &ctx);
    ctx.status = -1; /* until the status line arrives */
    CURLcode cr = curl_easy_perform(c);
    if (ctx.line.len)
        build_object(&ctx, ctx.line.data, ctx.line.len);
    if (cr == CURLE_ABORTED_BY_CALLBACK) {
        rc = sb_error(err, SB_ETIMEOUT, "the build was cancelled");
    } else if (cr == CURLE_OPERATION_TIMEDOUT) {
        rc = sb_error(err, SB_ETIMEOUT, "the build took longer than its timeout");
    } else if (cr != CURLE_OK) {
        rc = sb_error(err, SB_EUNAVAIL, "the docker engine is unreachable: %s", curl_easy_strerror(cr));
    } else if (ctx.status != 200) {
        json_t *j = json_loadb(ctx.body.data, ctx.body.len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        rc = sb_error(err, ctx.status == 400 ? SB_EINVAL : SB_EUPSTREAM, "the build was refused (%ld): %s",
                      ctx.status, m ? m : "no message");
        json_decref(j);
    } else if (ctx.failed) {
        rc = sb_error(err, SB_EINVAL, "the build failed: %s", ctx.error);
    } else if (!ctx.image_id[0]) {
        rc = sb_error(err, SB_EUPSTREAM, "the engine did not name the built image");
    } else {
        sb_strlcpy(image_id, ctx.image_id, len);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    buf_release(&url);
    buf_release(&ctx.line);
    buf_release(&ctx.body);
    return rc;
}
