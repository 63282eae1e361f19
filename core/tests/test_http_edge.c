/* Unit tests for the HTTP edge: which Host values --public-host admits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/http.h"

static void test_public_hosts(void **state)
{
    (void)state;
    const char *const hosts[] = {"sbx.example.com", "admin.example.com:8443", "[::1]", "127.0.0.1"};
    size_t n = sizeof hosts / sizeof hosts[0];
    assert_true(http_host_allowed("sbx.example.com", hosts, n));
    assert_true(http_host_allowed("SBX.Example.COM:8080", hosts, n)); /* no port named: any port */
    assert_true(http_host_allowed("admin.example.com:8443", hosts, n));
    assert_false(http_host_allowed("admin.example.com", hosts, n)); /* named with a port: only that one */
    assert_false(http_host_allowed("admin.example.com:443", hosts, n));
    assert_true(http_host_allowed("[::1]:8080", hosts, n));
    assert_true(http_host_allowed("[::1]", hosts, n));
    assert_true(http_host_allowed("127.0.0.1:9", hosts, n));
    assert_false(http_host_allowed("127.0.0.10", hosts, n));
    assert_false(http_host_allowed("sbx.example.com.evil.net", hosts, n));
    assert_false(http_host_allowed("evil.net", hosts, n));
    assert_false(http_host_allowed("", hosts, n));
    assert_false(http_host_allowed(NULL, hosts, n));
    assert_false(http_host_allowed("[::1", hosts, n));
}

static void test_listen_loopback(void **state)
{
    (void)state;
    assert_true(http_listen_is_loopback("127.0.0.1:8080"));
    assert_true(http_listen_is_loopback("127.1.2.3:0"));
    assert_true(http_listen_is_loopback("[::1]:8080"));
    assert_true(http_listen_is_loopback("localhost:80"));
    assert_false(http_listen_is_loopback(":8080"));
    assert_false(http_listen_is_loopback("0.0.0.0:8080"));
    assert_false(http_listen_is_loopback("[::]:8080"));
    assert_false(http_listen_is_loopback("192.0.2.1:8080"));
    assert_false(http_listen_is_loopback("[::ffff:127.0.0.1]:1"));
    assert_false(http_listen_is_loopback("8080"));
    assert_false(http_listen_is_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_public_hosts),
                                       cmocka_unit_test(test_listen_loopback)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
