/* Unit tests for util/, http/ routing and addresses, crypto/ and the
 * canonical event body. They include nothing but public headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/crypto.h"
#include "http/http.h"
#include "store/store.h"
#include "util/util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void test_buf_limits(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_string_equal(b.data, "");
    assert_int_equal(buf_puts(&b, "12345678"), 0);
    assert_int_equal(buf_putc(&b, '9'), SB_ETOOLARGE);
    assert_string_equal(b.data, "12345678");
    buf_consume(&b, 3);
    assert_string_equal(b.data, "45678");
    assert_int_equal(buf_printf(&b, "%d", 123), 0);
    assert_string_equal(b.data, "45678123");
    size_t len;
    char *p = buf_detach(&b, &len);
    assert_int_equal(len, 8);
    assert_string_equal(p, "45678123");
    free(p);
    assert_string_equal(b.data, "");
    buf_release(&b);
}

static void test_time_roundtrip(void **state)
{
    (void)state;
    char s[40];
    time_format_rfc3339(1795316514123456LL, s, sizeof s);
    assert_string_equal(s, "2026-11-22T03:01:54.123456Z");
    int64_t us;
    assert_int_equal(time_parse_rfc3339(s, &us), 0);
    assert_int_equal(us, 1795316514123456LL);
    assert_int_equal(time_parse_rfc3339("2026-11-22T05:01:54+02:00", &us), 0);
    assert_int_equal(us, 1795316514000000LL);
    assert_int_equal(time_parse_rfc3339("2026-13-22T03:01:54Z", &us), SB_EINVAL);
    assert_int_equal(time_parse_rfc3339("2026-11-22", &us), SB_EINVAL);
    assert_int_equal(time_parse_rfc3339("2026-11-22T03:01:54Zjunk", &us), SB_EINVAL);
}

static void test_hex_and_uuid(void **state)
{
    (void)state;
    uint8_t in[3] = {0x00, 0xab, 0xff}, out[3];
    char hex[7];
    hex_encode(in, 3, hex);
    assert_string_equal(hex, "00abff");
    assert_int_equal(hex_decode("00ABff", out, 3), 0);
    assert_memory_equal(in, out, 3);
    assert_int_equal(hex_decode("00abf", out, 3), SB_EINVAL);
    assert_int_equal(hex_decode("zzabff", out, 3), SB_EINVAL);
    char u[37];
    uuid_v4(u);
    assert_true(uuid_valid(u));
    assert_int_equal(u[14], '4');
    assert_false(uuid_valid("../../etc/passwd"));
    assert_false(uuid_valid("0123456789abcdef0123456789abcdef0123"));
}

static void test_config_precedence(void **state)
{
    (void)state;
    static const struct config_option opts[] = {
        {"listen", CONFIG_STRING, "127.0.0.1:8080", "", false},
        {"workers", CONFIG_INT, "4", "", false},
        {"trusted-proxy", CONFIG_LIST, NULL, "", false},
        {"log-level", CONFIG_STRING, "info", "", false},
    };
    setenv("SERVERBOX_LISTEN", "0.0.0.0:9", 1);
    setenv("SERVERBOX_WORKERS", "7", 1);
    setenv("SERVERBOX_TRUSTED_PROXY", "loopback,10.0.0.0/8", 1);
    char *argv[] = {"x", "--workers", "3", "migrate", "--log-level=debug", NULL};
    struct config c;
    struct sb_err err = {0};
    assert_int_equal(config_parse(&c, opts, 4, 5, argv, NULL, &err), 0);
    assert_string_equal(config_get(&c, "listen"), "0.0.0.0:9"); /* env beats default */
    assert_int_equal(config_get_int(&c, "workers"), 3);         /* flag beats env */
    assert_string_equal(config_get(&c, "log-level"), "debug");
    const char *const *list;
    assert_int_equal(config_get_list(&c, "trusted-proxy", &list), 2);
    assert_string_equal(list[1], "10.0.0.0/8");
    assert_int_equal(c.n_args, 1);
    assert_string_equal(c.args[0], "migrate");
    config_release(&c);

    char *bad[] = {"x", "--nope", "1", NULL};
    assert_int_not_equal(config_parse(&c, opts, 4, 3, bad, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "unknown option"));
    char *badint[] = {"x", "--workers", "many", NULL};
    assert_int_not_equal(config_parse(&c, opts, 4, 3, badint, NULL, &err), 0);
    config_release(&c);
    char env[64];
    config_env_name("master-key-file", env, sizeof env);
    assert_string_equal(env, "SERVERBOX_MASTER_KEY_FILE");
    unsetenv("SERVERBOX_LISTEN");
    unsetenv("SERVERBOX_WORKERS");
    unsetenv("SERVERBOX_TRUSTED_PROXY");
}

static void handler(struct http_request *r)
{
    (void)r;
}

static void test_router(void **state)
{
    (void)state;
    static const struct http_route routes[] = {
        {"GET", "/api/v1/nodes", handler, 0, "public", ""},
        {"POST", "/api/v1/nodes", handler, 0, "public", ""},
        {"GET", "/api/v1/nodes/{id}", handler, 0, "public", ""},
        {"GET", "/api/v1/nodes/{id}/containers/{cid}/logs", handler, 0, "public", ""},
        {"GET", "/static/{*path}", handler, 0, "public", ""},
    };
    const struct http_route *r = NULL;
    const char *names[HTTP_MAX_PARAMS];
    char *values[HTTP_MAX_PARAMS], allow[64], path[128];
    size_t n;
    snprintf(path, sizeof path, "%s", "/api/v1/nodes/abc/containers/c1/logs");
    assert_int_equal(http_route_match(routes, 5, "GET", path, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_OK);
    assert_ptr_equal(r, &routes[3]);
    assert_int_equal(n, 2);
    assert_string_equal(values[0], "abc");
    assert_string_equal(values[1], "c1");
    assert_int_equal(strncmp(names[1], "cid}", 4), 0);

    snprintf(path, sizeof path, "%s", "/api/v1/nodes");
    assert_int_equal(http_route_match(routes, 5, "DELETE", path, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_WRONG_METHOD);
    assert_string_equal(allow, "GET, POST");
    snprintf(path, sizeof path, "%s", "/api/v1/nodes/");
    assert_int_equal(http_route_match(routes, 5, "GET", path, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_NONE);
    snprintf(path, sizeof path, "%s", "/static/css/app.css");
    assert_int_equal(http_route_match(routes, 5, "HEAD", path, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_OK);
    assert_string_equal(values[0], "css/app.css");
    snprintf(path, sizeof path, "%s", "/api/v1/nodes/a/b");
    assert_int_equal(http_route_match(routes, 5, "GET", path, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_NONE);
}

static void test_client_ip(void **state)
{
    (void)state;
    struct http_cidr t[16];
    size_t n = 0;
    struct sb_err err;
    assert_int_equal(http_cidr_parse("loopback", t, 16, &n, &err), 0);
    assert_int_equal(http_cidr_parse("10.0.0.0/8", t, 16, &n, &err), 0);
    assert_int_not_equal(http_cidr_parse("10.0.0.0/33", t, 16, &n, &err), 0);
    assert_int_not_equal(http_cidr_parse("example.com", t, 16, &n, &err), 0);
    char out[48];
    http_client_ip("127.0.0.1", "203.0.113.7, 10.1.2.3", t, n, out, sizeof out);
    assert_string_equal(out, "203.0.113.7");
    http_client_ip("198.51.100.1", "203.0.113.7", t, n, out, sizeof out); /* untrusted peer */
    assert_string_equal(out, "198.51.100.1");
    http_client_ip("127.0.0.1", "garbage", t, n, out, sizeof out);
    assert_string_equal(out, "127.0.0.1");
    http_client_ip("127.0.0.1", "1.2.3.4, 5.6.7.8", t, n, out, sizeof out); /* rightmost untrusted */
    assert_string_equal(out, "5.6.7.8");
}

static void test_json_body(void **state)
{
    (void)state;
    struct sb_err err = {0};
    assert_null(http_parse_json_object("{\"a\":1,\"a\":2}", 13, &err));
    assert_non_null(strstr(err.msg, "duplicate"));
    assert_null(http_parse_json_object("[1]", 3, &err));
    json_t *o = http_parse_json_object("{\"a\":1,\"b\":2}", 13, &err);
    assert_non_null(o);
    static const char *const only_a[] = {"a", NULL};
    assert_int_equal(http_json_check_fields(o, only_a, &err), SB_EINVAL);
    assert_string_equal(err.field, "b");
    json_decref(o);
}

static void test_event_body_canonical(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s, s:i, s:{s:s}}", "zeta", "last \"q\" é", "alpha", 1, "mid", "k", "v");
    struct event_new ev = {.stream = "node/x",
                           .type = "node.registered",
                           .data = data,
                           .actor = {.kind = "user", .id = "u1", .name = "ana", .ip = "127.0.0.1"},
                           .outcome = "success"};
    char *body = store_event_body(42, &ev, "2026-11-22T03:01:54.000001Z");
    assert_string_equal(body,
                        "{\"actor\":{\"id\":\"u1\",\"ip\":\"127.0.0.1\",\"kind\":\"user\",\"name\":\"ana\"},"
                        "\"data\":{\"alpha\":1,\"mid\":{\"k\":\"v\"},\"zeta\":\"last \\\"q\\\" é\"},"
                        "\"occurred_at\":\"2026-11-22T03:01:54.000001Z\",\"outcome\":\"success\",\"seq\":42,"
                        "\"stream\":\"node/x\",\"type\":\"node.registered\"}");
    uint8_t zero[32] = {0}, h[32], h2[32];
    store_event_hash(zero, body, strlen(body), h);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, zero, 32);
    crypto_hash_sha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_hash_sha256_final(&st, h2);
    assert_memory_equal(h, h2, 32);
    free(body);
    json_decref(data);
}

static void test_secretbox(void **state)
{
    (void)state;
    struct crypto_master_key k, other;
    randombytes_buf(k.key, sizeof k.key);
    randombytes_buf(other.key, sizeof other.key);
    const char secret[] = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n";
    char *sealed = crypto_seal(&k, secret, sizeof secret - 1);
    assert_non_null(sealed);
    assert_null(strstr(sealed, "OPENSSH"));
    assert_int_equal(strncmp(sealed, "sb1:", 4), 0);
    struct buf out;
    buf_init(&out, 0);
    struct sb_err err;
    assert_int_equal(crypto_open(&k, sealed, &out, &err), 0);
    assert_string_equal(out.data, secret);
    assert_int_equal(crypto_open(&other, sealed, &out, &err), SB_EINVAL);
    sealed[10] ^= 1;
    assert_int_equal(crypto_open(&k, sealed, &out, &err), SB_EINVAL);
    assert_int_equal(crypto_open(&k, "plain", &out, &err), SB_EINVAL);
    crypto_buf_wipe(&out);
    free(sealed);
}

/* The one label validator and matcher: every rule's bound, and the selector
 * semantics that scope users, tokens and guests. */
static void test_labels(void **state)
{
    (void)state;
    const struct labels_rule node = {"labels", 2, 8, 5, "._/-", false};
    const struct labels_rule scope = {"node_labels", 2, 8, 5, NULL, true};
    struct sb_err err = {0};
    json_t *ok = json_pack("{s:s, s:s}", "env", "prod", "a/b", "");
    assert_int_equal(labels_check(ok, &node, &err), 0);
    assert_int_equal(labels_check(NULL, &scope, &err), 0);
    assert_int_equal(labels_check(json_null(), &node, &err), SB_EINVAL);
    const char *bad[] = {"{\"a\":1}",
                         "{\"\":\"x\"}",
                         "{\"toolongkey\":\"x\"}",
                         "{\"k\":\"123456\"}",
                         "{\"k;x\":\"v\"}",
                         "{\"k\":\"a\\u0001\"}",
                         "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}",
                         "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *v = json_loads(bad[i], 0, NULL);
        assert_non_null(v);
        memset(&err, 0, sizeof err);
        assert_int_equal(labels_check(v, &node, &err), SB_EINVAL);
        assert_string_equal(err.field, "labels");
        json_decref(v);
    }
    json_t *sel = json_pack("{s:s}", "env", "prod");
    json_t *other = json_pack("{s:s}", "env", "lab");
    json_t *empty = json_object();
    assert_true(labels_match(sel, ok));
    assert_false(labels_match(sel, other));
    assert_false(labels_match(sel, empty));
    assert_false(labels_match(sel, NULL));
    assert_true(labels_match(NULL, other));
    assert_true(labels_match(empty, other));
    json_decref(ok), json_decref(sel), json_decref(other), json_decref(empty);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limits),   cmocka_unit_test(test_time_roundtrip),
        cmocka_unit_test(test_hex_and_uuid), cmocka_unit_test(test_config_precedence),
        cmocka_unit_test(test_router),       cmocka_unit_test(test_client_ip),
        cmocka_unit_test(test_json_body),    cmocka_unit_test(test_event_body_canonical),
        cmocka_unit_test(test_secretbox),    cmocka_unit_test(test_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
