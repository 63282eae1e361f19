/* Unit tests for docker/'s pure parts: the multiplexed frame decoder fed
 * every split of its input (one cut at every byte boundary, and byte by
 * byte), the line splitter, and the engine-event translation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "docker/docker.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct collected {
    struct buf out, err;
    int calls;
};

static int collect(void *ctx, int stream, const char *data, size_t len)
{
    struct collected *c = ctx;
    c->calls++;
    return buf_append(stream == DOCKER_STDERR ? &c->err : &c->out, data, len);
}

static size_t frame(uint8_t *p, int stream, const char *payload)
{
    size_t n = strlen(payload);
    p[0] = (uint8_t)stream;
    p[1] = p[2] = p[3] = 0;
    p[4] = (uint8_t)(n >> 24);
    p[5] = (uint8_t)(n >> 16);
    p[6] = (uint8_t)(n >> 8);
    p[7] = (uint8_t)n;
    memcpy(p + 8, payload, n);
    return 8 + n;
}

static size_t sample(uint8_t *p)
{
    size_t n = 0;
    n += frame(p + n, 1, "hello\n");
    n += frame(p + n, 2, "oops: something\n");
    n += frame(p + n, 1, "");
    n += frame(p + n, 1, "a longer line that spans the cut\nand a second");
    n += frame(p + n, 2, "x");
    n += frame(p + n, 1, " part\n");
    return n;
}

static void check(struct collected *c)
{
    assert_string_equal(c->out.data, "hello\na longer line that spans the cut\nand a second part\n");
    assert_string_equal(c->err.data, "oops: something\nx");
}

static void test_frames_every_split(void **state)
{
    (void)state;
    uint8_t data[512];
    size_t n = sample(data);
    for (size_t cut = 0; cut <= n; cut++) {
        struct collected c;
        buf_init(&c.out, 4096);
        buf_init(&c.err, 4096);
        struct docker_frames f;
        docker_frames_init(&f, false, collect, &c);
        assert_int_equal(docker_frames_feed(&f, (const char *)data, cut), 0);
        assert_int_equal(docker_frames_feed(&f, (const char *)data + cut, n - cut), 0);
        check(&c);
        buf_release(&c.out);
        buf_release(&c.err);
    }
    /* byte by byte */
    struct collected c;
    buf_init(&c.out, 4096);
    buf_init(&c.err, 4096);
    struct docker_frames f;
    docker_frames_init(&f, false, collect, &c);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(docker_frames_feed(&f, (const char *)data + i, 1), 0);
    check(&c);
    buf_release(&c.out);
    buf_release(&c.err);
}

static void test_frames_two_cuts(void **state)
{
    (void)state;
    uint8_t data[512];
    size_t n = sample(data);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            struct collected c;
            buf_init(&c.out, 4096);
            buf_init(&c.err, 4096);
            struct docker_frames f;
            docker_frames_init(&f, false, collect, &c);
            assert_int_equal(docker_frames_feed(&f, (const char *)data, a), 0);
            assert_int_equal(docker_frames_feed(&f, (const char *)data + a, b - a), 0);
            assert_int_equal(docker_frames_feed(&f, (const char *)data + b, n - b), 0);
            check(&c);
            buf_release(&c.out);
            buf_release(&c.err);
        }
    }
}

static void test_frames_bad_and_raw(void **state)
{
    (void)state;
    struct collected c;
    buf_init(&c.out, 4096);
    buf_init(&c.err, 4096);
    struct docker_frames f;
    docker_frames_init(&f, false, collect, &c);
    /* unknown stream 7 */
    const uint8_t bad[8] = {7, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(docker_frames_feed(&f, (const char *)bad, 8), SB_EUPSTREAM);
    assert_int_equal(docker_frames_feed(&f, "x", 1), SB_EUPSTREAM); /* stays failed */
    /* oversized frame */
    docker_frames_init(&f, false, collect, &c);
    const uint8_t big[8] = {1, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(docker_frames_feed(&f, (const char *)big, 8), SB_EUPSTREAM);
    /* a TTY stream is raw: every byte is stdout, headers or not */
    docker_frames_init(&f, true, collect, &c);
    assert_int_equal(docker_frames_feed(&f, "\x01\x00raw", 5), 0);
    assert_int_equal(c.out.len, 5);
    buf_release(&c.out);
    buf_release(&c.err);
}

struct lines_seen {
    char text[1024];
};

static int on_line(void *ctx, int stream, const char *line, size_t len)
{
    struct lines_seen *s = ctx;
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof s->text - n, "%d:%.*s|", stream, (int)len, line);
    return 0;
}

static int count_line(void *ctx, int stream, const char *line, size_t len)
{
    size_t *lens = ctx;
    (void)stream;
    (void)line;
    if (lens[0] < 3)
        lens[1 + lens[0]] = len;
    lens[0]++;
    return 0;
}

static void test_lines(void **state)
{
    (void)state;
    const char *in = "one\r\ntwo\nthr";
    for (size_t cut = 0; cut <= strlen(in); cut++) {
        struct lines_seen s = {{0}};
        struct docker_lines l;
        docker_lines_init(&l, on_line, &s);
        docker_lines_feed(&l, 1, in, cut);
        docker_lines_feed(&l, 2, "e\n", 2);
        docker_lines_feed(&l, 1, in + cut, strlen(in) - cut);
        docker_lines_flush(&l);
        docker_lines_release(&l);
        assert_non_null(strstr(s.text, "1:one|"));
        assert_non_null(strstr(s.text, "1:two|"));
        assert_non_null(strstr(s.text, "1:thr|"));
        assert_non_null(strstr(s.text, "2:e|"));
    }
    /* an over-long line is cut at DOCKER_LINE_MAX */
    char *big = malloc(DOCKER_LINE_MAX + 10);
    memset(big, 'a', DOCKER_LINE_MAX + 10);
    size_t lens[4] = {0};
    struct docker_lines l;
    docker_lines_init(&l, count_line, lens);
    docker_lines_feed(&l, 1, big, DOCKER_LINE_MAX + 10);
    docker_lines_feed(&l, 1, "\n", 1);
    docker_lines_release(&l);
    assert_int_equal(lens[0], 2);
    assert_int_equal(lens[1], DOCKER_LINE_MAX);
    assert_int_equal(lens[2], 10);
    free(big);
}

static void test_translate(void **state)
{
    (void)state;
    json_t *e =
        json_loads("{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"abc\",\"Attributes\":"
                   "{\"name\":\"web\",\"image\":\"local/busybox:1\",\"exitCode\":\"137\",\"app\":\"x\"}},"
                   "\"timeNano\":12}",
                   0, NULL);
    const char *type;
    json_t *data;
    assert_int_equal(docker_translate_event("local", e, &type, &data), 0);
    assert_string_equal(type, "container.died");
    assert_int_equal(json_integer_value(json_object_get(data, "exit_code")), 137);
    assert_string_equal(json_string_value(json_object_get(data, "name")), "web");
    assert_string_equal(json_string_value(json_object_get(json_object_get(data, "labels"), "app")), "x");
    assert_null(json_object_get(json_object_get(data, "labels"), "exitCode"));
    assert_string_equal(json_string_value(json_object_get(data, "state")), "exited");
    json_decref(data);
    json_decref(e);
    e = json_loads(
        "{\"Type\":\"container\",\"Action\":\"health_status: unhealthy\",\"Actor\":{\"ID\":\"abc\"}}", 0,
        NULL);
    assert_int_equal(docker_translate_event("local", e, &type, &data), 0);
    assert_string_equal(type, "container.health_status");
    assert_string_equal(json_string_value(json_object_get(data, "health")), "unhealthy");
    json_decref(data);
    json_decref(e);
    e = json_loads("{\"Type\":\"network\",\"Action\":\"connect\",\"Actor\":{\"ID\":\"n\"}}", 0, NULL);
    assert_int_equal(docker_translate_event("local", e, &type, &data), SB_ENOTFOUND);
    json_decref(e);
}

static void test_redact(void **state)
{
    (void)state;
    assert_true(docker_name_is_secret("DB_PASSWORD"));
    assert_true(docker_name_is_secret("com.example.api_token"));
    assert_true(docker_name_is_secret("AWS_SECRET_ACCESS_KEY"));
    assert_false(docker_name_is_secret("com.docker.compose.project"));
    json_t *doc = json_loads("{\"Config\":{\"Env\":[\"A=1\",\"DB_PASSWORD=x=y\",\"NOVALUE\"],"
                             "\"Labels\":{\"app\":\"web\",\"my.secret\":\"s\"}}}",
                             0, NULL);
    assert_non_null(doc);
    docker_redact_inspect(doc);
    char *t = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        t, "{\"Config\":{\"Env\":[\"A=<redacted>\",\"DB_PASSWORD=<redacted>\","
           "\"NOVALUE=<redacted>\"],\"Labels\":{\"app\":\"web\",\"my.secret\":\"<redacted>\"}}}");
    free(t);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_every_split), cmocka_unit_test(test_frames_two_cuts),
        cmocka_unit_test(test_frames_bad_and_raw), cmocka_unit_test(test_lines),
        cmocka_unit_test(test_translate),          cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
