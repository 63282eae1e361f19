/* Unit tests for apps/'s pure parts: configuration checks (names, branches,
 * URLs that must never reach the local disk, subdirectories, limits), the
 * detector (a Dockerfile wins; the generated static Dockerfile) and webhook
 * verification (GitHub HMAC-SHA256 against a known vector, GitLab tokens,
 * push refs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apps/apps.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static void test_names(void **state)
{
    assert_true(apps_name_ok("web"));
    assert_true(apps_name_ok("a-1"));
    assert_false(apps_name_ok(""));
    assert_false(apps_name_ok("-web"));
    assert_false(apps_name_ok("web-"));
    assert_false(apps_name_ok("Web"));
    assert_false(apps_name_ok("web_app"));
    assert_false(apps_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 41 */
    assert_true(apps_branch_ok("main"));
    assert_true(apps_branch_ok("feature/x-1"));
    const char *bad[] = {"",    "-x",  "/x",   "x/",     "a..b", "a b",  "a~b",  "a^b",  "a:b", "a?b",
                         "a*b", "a[b", "a\\b", "x.lock", ".x",   "a/.b", "a//b", "a@{b", "@",   "x."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(apps_branch_ok(bad[i]));
}

static int check(const char *json, bool create, json_t **out, struct sb_err *err)
{
    json_t *in = json_loads(json, 0, NULL);
    assert_non_null(in);
    int rc = apps_config_check(in, create, out, err);
    json_decref(in);
    return rc;
}

static void test_config(void **state)
{
    json_t *out;
    struct sb_err err = {0};
    assert_int_equal(
        check("{\"name\":\"web\",\"node_id\":\"local\",\"repo_url\":\"git://h/r.git\"}", true, &out, &err),
        0);
    assert_string_equal(json_string_value(json_object_get(out, "branch")), "main");
    assert_int_equal(json_integer_value(json_object_get(out, "port")), 80);
    assert_string_equal(json_string_value(json_object_get(out, "health_path")), "/");
    assert_true(json_is_null(json_object_get(out, "memory")));
    json_decref(out);
    assert_int_equal(
        check("{\"name\":\"web\",\"node_id\":\"local\",\"repo_url\":\"git@github.com:o/r.git\","
              "\"cpus\":0.5,\"memory\":67108864,\"subdir\":\"apps/web\",\"domain\":\"a.example.com\"}",
              true, &out, &err),
        0);
    assert_int_equal(json_integer_value(json_object_get(out, "nano_cpus")), 500000000);
    json_decref(out);
    /* an update gives only what it names */
    assert_int_equal(check("{\"branch\":\"dev\"}", false, &out, &err), 0);
    assert_int_equal(json_object_size(out), 1);
    json_decref(out);
    struct {
        const char *json, *field;
    } bad[] = {
        {"{\"node_id\":\"local\",\"repo_url\":\"git://h/r\"}", "name"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"file:///etc/passwd\"}", "repo_url"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"/srv/git/r.git\"}", "repo_url"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"file:x@y:z\"}", "repo_url"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git:///etc\"}", "repo_url"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"subdir\":\"a/../b\"}", "subdir"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"subdir\":\"/abs\"}", "subdir"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"port\":0}", "port"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"health_path\":\"x\"}",
         "health_path"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"health_timeout_s\":0}",
         "health_timeout_s"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"domain\":\"a..b\"}", "domain"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"memory\":100}", "memory"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"cpus\":\"1\"}", "cpus"},
        {"{\"name\":\"w\",\"node_id\":\"local\",\"repo_url\":\"git://h/r\",\"branch\":\"a b\"}", "branch"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(check(bad[i].json, true, &out, &err), SB_EINVAL);
        assert_null(out);
        assert_string_equal(err.field, bad[i].field);
    }
}

static void test_ssh_urls_and_host_keys(void **state)
{
    assert_true(apps_repo_is_ssh("ssh://git@h:22/o/r.git"));
    assert_true(apps_repo_is_ssh("git@github.com:o/r.git"));
    assert_false(apps_repo_is_ssh("https://github.com/o/r.git"));
    assert_false(apps_repo_is_ssh("git://h/r.git"));
    assert_false(apps_repo_is_ssh("https://user@h:443/r.git"));
    assert_true(apps_host_key_ok("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"));
    assert_false(apps_host_key_ok("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY"));
    assert_false(apps_host_key_ok("MD5:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"));
    assert_false(apps_host_key_ok("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5S$8"));
    assert_false(apps_host_key_ok(NULL));
}

static void test_detect(void **state)
{
    struct apps_static_config sc = {
        .image = "local/busybox:1", .root = "/www", .command = "httpd -f -p {port} -h /www"};
    const char *det;
    char *df;
    struct sb_err err = {0};
    json_t *both = json_pack("[s,s,s]", "index.html", "Dockerfile", "README.md");
    assert_int_equal(apps_detect(both, &sc, 8080, &det, &df, &err), 0);
    assert_string_equal(det, "dockerfile");
    assert_null(df);
    json_decref(both);
    json_t *site = json_pack("[s,s]", "index.html", "style.css");
    assert_int_equal(apps_detect(site, &sc, 8080, &det, &df, &err), 0);
    assert_string_equal(det, "static");
    assert_non_null(strstr(df, "FROM local/busybox:1\n"));
    assert_non_null(strstr(df, "COPY . /www\n"));
    assert_non_null(strstr(df, "CMD [\"httpd\",\"-f\",\"-p\",\"8080\",\"-h\",\"/www\"]\n"));
    free(df);
    sc.command = "[\"nginx\", \"-g\", \"daemon off;\"]";
    assert_int_equal(apps_detect(site, &sc, 80, &det, &df, &err), 0);
    assert_non_null(strstr(df, "CMD [\"nginx\",\"-g\",\"daemon off;\"]\n"));
    free(df);
    sc.command = "";
    assert_int_equal(apps_detect(site, &sc, 80, &det, &df, &err), 0);
    assert_null(strstr(df, "CMD"));
    free(df);
    json_decref(site);
    json_t *none = json_pack("[s]", "main.c");
    assert_int_equal(apps_detect(none, &sc, 80, &det, &df, &err), SB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no Dockerfile"));
    json_decref(none);
}

static void test_webhook(void **state)
{
    /* GitHub's documented example: secret "It's a Secret to Everybody",
     * payload "Hello, World!" */
    const char *sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_true(apps_github_signature_ok("It's a Secret to Everybody", "Hello, World!", 13, sig));
    assert_false(apps_github_signature_ok("It's a Secret to Everybody", "Hello, World?", 13, sig));
    assert_false(apps_github_signature_ok("another secret", "Hello, World!", 13, sig));
    assert_false(apps_github_signature_ok("It's a Secret to Everybody", "Hello, World!", 13, sig + 7));
    assert_false(apps_github_signature_ok("It's a Secret to Everybody", "Hello, World!", 13, "sha256=zz"));
    assert_false(apps_github_signature_ok("", "Hello, World!", 13, sig));
    assert_false(apps_github_signature_ok("It's a Secret to Everybody", "Hello, World!", 13, NULL));
    assert_true(apps_gitlab_token_ok("tok-123", "tok-123"));
    assert_false(apps_gitlab_token_ok("tok-123", "tok-1234"));
    assert_false(apps_gitlab_token_ok("tok-123", NULL));
    assert_false(apps_gitlab_token_ok("", ""));
    json_t *p = json_pack("{s:s}", "ref", "refs/heads/main");
    assert_true(apps_push_matches(p, "main"));
    assert_false(apps_push_matches(p, "mai"));
    json_decref(p);
    p = json_pack("{s:s}", "ref", "refs/tags/main");
    assert_false(apps_push_matches(p, "main"));
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_ssh_urls_and_host_keys),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_webhook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
