/* Unit tests for static/: content types, hashed names, and that a URL path
 * can only name a loaded file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/http.h"
#include "static/static.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_content_types(void **state)
{
    (void)state;
    assert_string_equal(static_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(static_content_type("js/app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(static_content_type("a/b.CSS"), "text/css; charset=utf-8");
    assert_string_equal(static_content_type("logo.svg"), "image/svg+xml");
    assert_string_equal(static_content_type("font.woff2"), "font/woff2");
    assert_string_equal(static_content_type("README"), "application/octet-stream");
    assert_string_equal(static_content_type(".js"), "application/octet-stream");
    assert_string_equal(static_content_type("x.exe"), "application/octet-stream");
}

static void test_hashed_names(void **state)
{
    (void)state;
    assert_true(static_name_is_hashed("app.3f9a1c2e.js"));
    assert_true(static_name_is_hashed("assets/chunk-0a1b2c3d4e.css"));
    assert_false(static_name_is_hashed("app.js"));
    assert_false(static_name_is_hashed("app.3f9a1c2.js")); /* 7 digits */
    assert_false(static_name_is_hashed("deadbeef.js"));    /* no separator before the hash */
    assert_false(static_name_is_hashed("app.3f9a1c2g.js"));
    assert_false(static_name_is_hashed("3f9a1c2e3f/app.js"));
}

static void test_find(void **state)
{
    (void)state;
    char dir[] = "/tmp/sbx-static-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[256];
    snprintf(p, sizeof p, "%s/sub", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/index.html", dir);
    FILE *f = fopen(p, "w");
    fputs("<p>hi</p>", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/sub/a.js", dir);
    f = fopen(p, "w");
    fclose(f);

    struct sb_err err = {0};
    struct static_site *site = static_site_load(dir, &err);
    assert_non_null(site);
    assert_int_equal(static_site_count(site), 2);
    const struct static_file *idx = static_site_find(site, "/index.html");
    assert_non_null(idx);
    assert_int_equal(idx->len, 9);
    assert_memory_equal(idx->data, "<p>hi</p>", 9);
    assert_non_null(static_site_find(site, "/sub/a.js"));
    const char *bad[] = {"index.html",    "/",           "//index.html", "/sub//a.js", "/sub/../index.html",
                         "/./index.html", "/sub/./a.js", "/..",          "/sub\\a.js", "/sub/a.js/",
                         "/index.html\n", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_null(static_site_find(site, bad[i]));
    static_site_free(site);

    assert_null(static_site_load("/nonexistent/sbx", &err));
    assert_int_equal(err.code, SB_EINVAL);

    snprintf(p, sizeof p, "%s/sub/a.js", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/index.html", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/sub", dir);
    rmdir(p);
    rmdir(dir);
}

static void dummy(struct http_request *req)
{
    (void)req;
}

/* The dashboard's catch-all matches GETs only and never produces a 405. */
static void test_catch_all_route(void **state)
{
    (void)state;
    static const struct http_route routes[] = {
        {"GET", "/health/live", dummy, 0, "public", ""},
        {"GET", "/", dummy, 0, "public", ""},
        {"GET", "/{*path}", dummy, 0, "public", ""},
    };
    const struct http_route *r = NULL;
    const char *names[HTTP_MAX_PARAMS];
    char *values[HTTP_MAX_PARAMS];
    size_t n = 0;
    char allow[64];
    char p1[] = "/nodes/abc";
    assert_int_equal(http_route_match(routes, 3, "GET", p1, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_OK);
    assert_ptr_equal(r, &routes[2]);
    assert_string_equal(values[0], "nodes/abc");
    char p2[] = "/api/v1/nope";
    assert_int_equal(http_route_match(routes, 3, "POST", p2, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_NONE);
    char p3[] = "/health/live";
    assert_int_equal(http_route_match(routes, 3, "DELETE", p3, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_WRONG_METHOD);
    assert_string_equal(allow, "GET");
    char p4[] = "/";
    assert_int_equal(http_route_match(routes, 3, "GET", p4, &r, names, values, &n, allow, sizeof allow),
                     HTTP_MATCH_OK);
    assert_ptr_equal(r, &routes[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_hashed_names),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_catch_all_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
