/* Unit tests for terminal/'s pure parts: the output ring (offsets, wrap,
 * reads across the wrap and before the start), tmux-safe session names, and
 * the asciicast encoding (UTF-8 split between reads at every cut, invalid
 * bytes, escapes), with a recording's hash checked against the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "terminal/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_ring(void **state)
{
    (void)state;
    struct term_ring r;
    assert_int_equal(term_ring_init(&r, 8), 0);
    char out[16];
    term_ring_write(&r, "abcde", 5);
    assert_int_equal(r.start, 0);
    assert_int_equal(r.end, 5);
    assert_int_equal(term_ring_read(&r, 0, out, sizeof out), 5);
    assert_memory_equal(out, "abcde", 5);
    assert_int_equal(term_ring_read(&r, 3, out, sizeof out), 2);
    assert_memory_equal(out, "de", 2);
    term_ring_write(&r, "fghij", 5); /* 10 bytes: 0..1 overwritten */
    assert_int_equal(r.start, 2);
    assert_int_equal(r.end, 10);
    assert_int_equal(term_ring_read(&r, 1, out, sizeof out), 0); /* before the start */
    size_t n = term_ring_read(&r, 2, out, sizeof out);           /* up to the wrap */
    assert_int_equal(n, 6);
    assert_memory_equal(out, "cdefgh", 6);
    assert_int_equal(term_ring_read(&r, 8, out, sizeof out), 2);
    assert_memory_equal(out, "ij", 2);
    assert_int_equal(term_ring_read(&r, 10, out, sizeof out), 0); /* at the end */
    term_ring_write(&r, "0123456789ABCDEFGHIJ", 20);              /* more than the ring */
    assert_int_equal(r.end, 30);
    assert_int_equal(r.start, 22);
    struct buf all;
    buf_init(&all, 0);
    for (uint64_t at = r.start; at < r.end;) {
        n = term_ring_read(&r, at, out, 3);
        assert_true(n > 0);
        buf_append(&all, out, n);
        at += n;
    }
    assert_string_equal(all.data, "CDEFGHIJ");
    buf_release(&all);
    term_ring_release(&r);
}

static void test_names(void **state)
{
    (void)state;
    struct sb_err err = {0};
    assert_int_equal(terminal_name_check("ops", &err), 0);
    assert_int_equal(terminal_name_check("A-z_09", &err), 0);
    assert_int_equal(terminal_name_check("12345678901234567890123456789012", &err), 0);
    const char *bad[] = {"",    "a b",   "a.b", "a:b",      "../x",
                         "x;y", "$(id)", "'",   "\xc3\xa9", "123456789012345678901234567890123",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(terminal_name_check(bad[i], &err), SB_EINVAL);
        assert_string_equal(err.field, "session");
    }
    assert_int_equal(terminal_name_check(NULL, &err), SB_EINVAL);
}

static void test_json_string(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    term_json_string(&b, "a\"\\\n\r\t\x1b\x7f\xc3\xa9", 10);
    assert_string_equal(b.data, "\"a\\\"\\\\\\n\\r\\t\\u001b\\u007f\xc3\xa9\"");
    buf_reset(&b);
    /* invalid: lone continuation, overlong, surrogate, truncated, NUL */
    term_json_string(&b, "\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82|\x00", 13);
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(j);
    assert_true(strstr(json_string_value(j), "\xef\xbf\xbd|") != NULL);
    json_decref(j);
    buf_release(&b);
    /* split points: only an unfinished valid prefix waits */
    assert_int_equal(term_utf8_complete((const unsigned char *)"ab\xe2\x82", 4), 2);
    assert_int_equal(term_utf8_complete((const unsigned char *)"ab\xe2\x82\xac", 5), 5);
    assert_int_equal(term_utf8_complete((const unsigned char *)"ab\xf0\x9f\x98", 5), 2);
    assert_int_equal(term_utf8_complete((const unsigned char *)"ab\xff", 3), 3);
    assert_int_equal(term_utf8_complete((const unsigned char *)"ab\xc3", 3), 2);
}

/* A recording fed every cut of a UTF-8 text replays that text exactly, and
 * the hash it reports is the file's. */
static void test_recording_every_split(void **state)
{
    (void)state;
    const char *text = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\r\n\x1b[1m!";
    size_t n = strlen(text);
    char dir[] = "/tmp/sbx-term-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t cut = 0; cut <= n; cut++) {
        char path[128];
        snprintf(path, sizeof path, "%s/r%zu.cast", dir, cut);
        struct term_recording rec;
        struct sb_err err = {0};
        assert_int_equal(term_recording_open(&rec, path, 80, 24, "t", 1 << 20, &err), 0);
        term_recording_event(&rec, 'o', text, cut);
        term_recording_event(&rec, 'o', text + cut, n - cut);
        char sha[65];
        term_recording_close(&rec, sha);
        struct buf f;
        buf_init(&f, 0);
        assert_int_equal(file_read_all(path, 1 << 20, &f, &err), 0);
        unsigned char h[32];
        crypto_hash_sha256(h, (const unsigned char *)f.data, f.len);
        char hex[65];
        hex_encode(h, 32, hex);
        assert_string_equal(hex, sha);
        /* replay: concatenate the "o" strings */
        struct buf replay;
        buf_init(&replay, 0);
        char *line = strchr(f.data, '\n') + 1;
        while (*line) {
            char *end = strchr(line, '\n');
            json_t *e = json_loadb(line, (size_t)(end - line), 0, NULL);
            assert_non_null(e);
            assert_string_equal(json_string_value(json_array_get(e, 1)), "o");
            buf_puts(&replay, json_string_value(json_array_get(e, 2)));
            json_decref(e);
            line = end + 1;
        }
        assert_string_equal(replay.data, text);
        buf_release(&replay);
        buf_release(&f);
        unlink(path);
    }
    rmdir(dir);
}

static void test_recording_cap(void **state)
{
    (void)state;
    char path[] = "/tmp/sbx-term-cap-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    struct term_recording rec;
    struct sb_err err = {0};
    assert_int_equal(term_recording_open(&rec, path, 80, 24, "t", 400, &err), 0);
    char chunk[100];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 20; i++)
        term_recording_event(&rec, 'o', chunk, sizeof chunk);
    assert_true(rec.truncated);
    char sha[65];
    term_recording_close(&rec, sha);
    struct buf f;
    buf_init(&f, 0);
    assert_int_equal(file_read_all(path, 1 << 20, &f, &err), 0);
    assert_true(f.len < 400 + 200);
    assert_non_null(strstr(f.data, "\"m\", \"serverbox: recording stopped at its size cap of 400 bytes\""));
    buf_release(&f);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring),          cmocka_unit_test(test_names),
        cmocka_unit_test(test_json_string),   cmocka_unit_test(test_recording_every_split),
        cmocka_unit_test(test_recording_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
