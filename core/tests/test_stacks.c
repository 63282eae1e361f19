/* Unit tests for stacks/'s pure parts: the compose parser fed many good and
 * broken documents (positions, key paths, limits, aliases, YAML 1.1
 * booleans, interpolation), name validation, the policy, the config hash
 * and the plan against sets of existing containers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "stacks/internal.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *two_services =
    "version: '3.8'\n"
    "services:\n"
    "  web:\n"
    "    image: local/busybox:1\n"
    "    command: httpd -f -p 8080 -h /www\n"
    "    environment:\n"
    "      GREETING: ${GREETING:-hello}\n"
    "      PORT: 8080\n"
    "    healthcheck:\n"
    "      test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://127.0.0.1:8080/\"]\n"
    "      interval: 1s\n"
    "      timeout: 1s\n"
    "      retries: 3\n"
    "    volumes:\n"
    "      - data:/www\n"
    "    mem_limit: 64m\n"
    "    cpus: 0.5\n"
    "    labels:\n"
    "      tier: front\n"
    "  worker:\n"
    "    image: local/busybox:1\n"
    "    command: [\"sleep\", \"3600\"]\n"
    "    depends_on:\n"
    "      web:\n"
    "        condition: service_healthy\n"
    "    deploy:\n"
    "      replicas: 2\n"
    "      resources:\n"
    "        limits: {memory: 32M, cpus: '0.25'}\n"
    "volumes:\n"
    "  data:\n";

static int parse(const char *text, json_t *vars, json_t **model, struct sb_err *err)
{
    memset(err, 0, sizeof *err);
    return stacks_compose_parse(text, strlen(text), vars, NULL, model, err);
}

static void expect_error(const char *text, const char *field, const char *needle)
{
    json_t *m = NULL;
    struct sb_err err;
    int rc = parse(text, NULL, &m, &err);
    if (rc == 0 || !strstr(err.msg, needle) || (field && strcmp(err.field, field) != 0))
        fail_msg("document:\n%s\nwanted field '%s' and '%s', got rc %d field '%s' msg '%s'", text,
                 field ? field : "(any)", needle, rc, err.field, err.msg);
    assert_null(m);
}

static void test_parse_two_services(void **state)
{
    json_t *m;
    struct sb_err err;
    assert_int_equal(parse(two_services, NULL, &m, &err), 0);
    json_t *web = json_object_get(json_object_get(m, "services"), "web");
    json_t *cmd = json_object_get(web, "command");
    assert_int_equal(json_array_size(cmd), 6);
    assert_string_equal(json_string_value(json_array_get(cmd, 0)), "httpd");
    json_t *env = json_object_get(web, "environment");
    assert_string_equal(json_string_value(json_object_get(env, "GREETING")), "hello");
    assert_string_equal(json_string_value(json_object_get(env, "PORT")), "8080");
    assert_int_equal(json_integer_value(json_object_get(web, "memory")), 64 << 20);
    assert_int_equal(json_integer_value(json_object_get(web, "nano_cpus")), 500000000);
    json_t *hc = json_object_get(web, "healthcheck");
    assert_int_equal(json_integer_value(json_object_get(hc, "interval_ns")), 1000000000);
    json_t *vol = json_array_get(json_object_get(web, "volumes"), 0);
    assert_string_equal(json_string_value(json_object_get(vol, "type")), "volume");
    assert_string_equal(json_string_value(json_object_get(vol, "source")), "data");
    json_t *worker = json_object_get(json_object_get(m, "services"), "worker");
    assert_int_equal(json_integer_value(json_object_get(worker, "replicas")), 2);
    assert_int_equal(json_integer_value(json_object_get(worker, "memory")), 32 << 20);
    assert_int_equal(json_integer_value(json_object_get(worker, "nano_cpus")), 250000000);
    assert_string_equal(json_string_value(json_object_get(json_object_get(worker, "depends_on"), "web")),
                        "service_healthy");
    json_t *order;
    assert_int_equal(stacks_order(m, &order, &err), 0);
    assert_string_equal(json_string_value(json_array_get(order, 0)), "web");
    json_decref(order);
    json_decref(m);
}

static void test_yaml_errors_have_positions(void **state)
{
    /* libyaml's marks are 0-based; errors are 1-based */
    expect_error("services:\n  web:\n    image: [a\n", "compose", "line 4");
    expect_error(
        "services:\n  web:\n   image: x\n  bad\n", "compose",
        "line 5, column 1: could not find expected ':' while scanning a simple key (from line 4, column 3)");
    expect_error("services: {web: {image: x}\n", "compose", "line 2");
    expect_error("a: b: c\n", "compose", "line 1, column 5");
    expect_error("services:\n\tweb: {}\n", "compose", "line 2");
    expect_error("services:\n  web:\n    image: \"unterminated\n", "compose", "line");
    expect_error("", "compose", "empty");
    expect_error("- a\n- b\n", "compose", "top level must be a mapping");
    expect_error("services: {}\n---\nservices: {}\n", "compose", "only one document");
    expect_error("services:\n  web:\n    image: *nope\n", "compose", "unknown alias");
}

static void test_unknown_keys_name_their_path(void **state)
{
    expect_error("services:\n  web:\n    image: x\n    sysctls:\n      a: 1\n", "services.web.sysctls",
                 "services.web.sysctls: not supported (line 4, column 5)");
    expect_error("services:\n  web:\n    image: x\n    build: .\n", "services.web.build", "GitOps");
    expect_error("services:\n  web:\n    image: x\n    container_name: y\n", "services.web.container_name",
                 "not supported");
    expect_error("configs: {}\nservices:\n  web: {image: x}\n", "configs", "not supported");
    expect_error("services:\n  web:\n    image: x\n    deploy:\n      placement: {}\n",
                 "services.web.deploy.placement", "not supported");
    expect_error("services:\n  web:\n    image: x\n    healthcheck:\n      test: x\n      foo: 1\n",
                 "services.web.healthcheck.foo", "not supported");
    /* routes: host names and ports checked, one service per host */
    expect_error("services:\n  web:\n    image: x\n    x-serverbox: {route: {host: a}}\n",
                 "services.web.x-serverbox.route.host", "host name");
    expect_error("services:\n  web:\n    image: x\n    x-serverbox: {route: {host: a.example.com}}\n",
                 "services.web.x-serverbox.route.port", "required");
    expect_error("services:\n  web:\n    image: x\n    x-serverbox: {route: {host: 'a;b.com', port: 80}}\n",
                 "services.web.x-serverbox.route.host", "host name");
    expect_error(
        "services:\n  web:\n    image: x\n    x-serverbox: {route: {host: A.example.com, port: 80}}\n",
        "services.web.x-serverbox.route.host", "lowercase");
    expect_error(
        "services:\n  web:\n    image: x\n    x-serverbox: {route: {host: -a.example.com, port: 80}}\n",
        "services.web.x-serverbox.route.host", "host name");
    expect_error("services:\n  web:\n    image: x\n    x-serverbox: {route: {host: 10.0.0.1, port: 80}}\n",
                 "services.web.x-serverbox.route.host", "host name");
    expect_error(
        "services:\n  web:\n    image: x\n    x-serverbox: {route: {host: a.example.com, port: 0}}\n",
        "services.web.x-serverbox.route.port", "");
    expect_error("services:\n  web:\n    image: x\n    x-serverbox: {route: {host: a.example.com, port: 80, "
                 "tls: 1}}\n",
                 "services.web.x-serverbox.route.tls", "not supported");
    expect_error("services:\n  web:\n    image: x\n    network_mode: none\n"
                 "    x-serverbox: {route: {host: a.example.com, port: 80}}\n",
                 "services.web.x-serverbox.route", "network_mode");
    expect_error("services:\n  a:\n    image: x\n    x-serverbox: {route: {host: a.example.com, port: 80}}\n"
                 "  b:\n    image: x\n    x-serverbox: {route: {host: a.example.com, port: 80}}\n",
                 "services.b.x-serverbox.route.host", "already the route of a");
    {
        json_t *rm;
        struct sb_err re;
        assert_int_equal(parse("services:\n  web:\n    image: x\n"
                               "    x-serverbox: {route: {host: web.example.com, port: '8080'}}\n",
                               NULL, &rm, &re),
                         0);
        json_t *route = json_object_get(
            json_object_get(json_object_get(json_object_get(rm, "services"), "web"), "x-serverbox"), "route");
        assert_string_equal(json_string_value(json_object_get(route, "host")), "web.example.com");
        assert_int_equal(json_integer_value(json_object_get(route, "port")), 8080);
        /* the route is not the container's: it leaves the config hash alone */
        char h1[65], h2[65];
        json_t *svc = json_object_get(json_object_get(rm, "services"), "web");
        stacks_config_hash(svc, NULL, h1);
        json_object_del(svc, "x-serverbox");
        stacks_config_hash(svc, NULL, h2);
        assert_string_equal(h1, h2);
        json_decref(rm);
    }
    /* extensions are allowed and ignored */
    json_t *m;
    struct sb_err err;
    assert_int_equal(
        parse("x-common: &c {image: x}\nservices:\n  web:\n    <<: *c\n    x-note: hi\n", NULL, &m, &err), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(m, "services"), "web"), "image")),
        "x");
    json_decref(m);
}

static void test_duplicate_keys(void **state)
{
    expect_error("services:\n  web:\n    image: x\n    image: y\n", "compose",
                 "duplicate key services.web.image");
    expect_error("services:\n  web: {image: x}\n  web: {image: y}\n", "compose", "line 3");
    expect_error("services: {}\nservices: {}\n", "compose", "duplicate key services");
}

static void test_limits(void **state)
{
    /* size */
    size_t big = STACKS_COMPOSE_MAX + 1;
    char *t = malloc(big + 1);
    memset(t, '#', big);
    t[big] = 0;
    json_t *m = NULL;
    struct sb_err err = {0};
    assert_int_equal(stacks_compose_parse(t, big, NULL, NULL, &m, &err), SB_ETOOLARGE);
    /* flow nesting: refused before libyaml sees it */
    size_t n = 200000;
    char *deep = malloc(n + 32);
    memcpy(deep, "services: ", 10);
    memset(deep + 10, '[', n);
    deep[10 + n] = 0;
    int64_t t0 = time_mono_ms();
    assert_int_equal(stacks_compose_parse(deep, strlen(deep), NULL, NULL, &m, &err), SB_EINVAL);
    assert_non_null(strstr(err.msg, "nesting"));
    assert_true(time_mono_ms() - t0 < 5000);
    free(deep);
    /* block nesting */
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "services:\n");
    for (int i = 0; i < 40; i++) {
        for (int k = 0; k < i + 1; k++)
            buf_puts(&b, "  ");
        buf_printf(&b, "k%d:\n", i);
    }
    assert_int_equal(parse(b.data, NULL, &m, &err), SB_EINVAL);
    assert_non_null(strstr(err.msg, "nesting"));
    buf_release(&b);
    /* a NUL byte */
    assert_int_equal(stacks_compose_parse("services:\0x", 11, NULL, NULL, &m, &err), SB_EINVAL);
    free(t);
}

static void test_aliases(void **state)
{
    /* an alias inside its own anchor is unknown, never a cycle */
    expect_error("services: &x\n  web: *x\n", "compose", "unknown alias");
    expect_error("a: &x [ *x ]\nservices: {web: {image: x}}\n", "compose", "unknown alias");
    /* billion laughs */
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++)
        buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i,
                   i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    buf_puts(&b, "services: {web: {image: x}}\n");
    int64_t t0 = time_mono_ms();
    expect_error(b.data, "compose", "aliases are expanded");
    assert_true(time_mono_ms() - t0 < 5000);
    buf_release(&b);
}

static void test_yaml11_booleans(void **state)
{
    expect_error("services:\n  web:\n    image: x\n    restart: no\n", "services.web.restart",
                 "read as a boolean by YAML 1.1: quote it (\"no\")");
    expect_error("services:\n  web:\n    image: x\n    environment:\n      DEBUG: yes\n",
                 "services.web.environment.DEBUG", "quote it (\"yes\")");
    expect_error("services:\n  web:\n    image: x\n    labels:\n      a: On\n", "services.web.labels.a",
                 "boolean");
    expect_error("services:\n  web:\n    image: x\n    privileged: \"true\"\n", "services.web.privileged",
                 "true or false");
    json_t *m;
    struct sb_err err;
    assert_int_equal(parse("services:\n  web:\n    image: x\n    restart: \"no\"\n    privileged: yes\n"
                           "    environment: {DEBUG: 'yes', N: 010, H: 0x10, F: 1.50}\n",
                           NULL, &m, &err),
                     0);
    json_t *web = json_object_get(json_object_get(m, "services"), "web");
    assert_string_equal(json_string_value(json_object_get(web, "restart")), "no");
    assert_true(json_is_true(json_object_get(web, "privileged")));
    json_t *env = json_object_get(web, "environment");
    assert_string_equal(json_string_value(json_object_get(env, "DEBUG")), "yes");
    assert_string_equal(json_string_value(json_object_get(env, "N")), "8"); /* YAML 1.1 octal */
    assert_string_equal(json_string_value(json_object_get(env, "H")), "16");
    assert_string_equal(json_string_value(json_object_get(env, "F")), "1.50");
    json_decref(m);
}

static void test_interpolation(void **state)
{
    json_t *vars = json_pack("{s:s,s:s,s:s,s:s}", "TAG", "2", "EMPTY", "", "PORT", "9090", "ONE", "1");
    json_t *m;
    struct sb_err err;
    int rc = parse("services:\n  web:\n    image: local/app:${TAG}\n    environment:\n"
                   "      A: ${EMPTY:-dflt}\n      B: ${EMPTY-dflt}\n      C: $$HOME\n"
                   "      D: ${MISSING:-${TAG}x}\n      E: $TAG-$PORT\n    ports: [\"${PORT}:80\"]\n"
                   "    deploy: {replicas: \"${ONE}\"}\n",
                   vars, &m, &err);
    if (rc)
        fail_msg("%s", err.msg);
    json_t *web = json_object_get(json_object_get(m, "services"), "web");
    assert_string_equal(json_string_value(json_object_get(web, "image")), "local/app:2");
    json_t *env = json_object_get(web, "environment");
    assert_string_equal(json_string_value(json_object_get(env, "A")), "dflt");
    assert_string_equal(json_string_value(json_object_get(env, "B")), "");
    assert_string_equal(json_string_value(json_object_get(env, "C")), "$HOME");
    assert_string_equal(json_string_value(json_object_get(env, "D")), "2x");
    assert_string_equal(json_string_value(json_object_get(env, "E")), "2-9090");
    json_t *port = json_array_get(json_object_get(web, "ports"), 0);
    assert_int_equal(json_integer_value(json_object_get(port, "published")), 9090);
    assert_int_equal(json_integer_value(json_object_get(port, "target")), 80);
    json_decref(m);
    assert_int_equal(parse("services:\n  web:\n    image: ${NOPE}\n", vars, &m, &err), SB_EINVAL);
    assert_string_equal(err.field, "services.web.image");
    assert_non_null(strstr(err.msg, "variable NOPE is not set"));
    assert_int_equal(parse("services:\n  web:\n    image: ${EMPTY:?needs a tag}\n", vars, &m, &err),
                     SB_EINVAL);
    assert_non_null(strstr(err.msg, "needs a tag"));
    assert_int_equal(parse("services:\n  web:\n    image: ${}\n", vars, &m, &err), SB_EINVAL);
    assert_int_equal(parse("services:\n  web:\n    image: ${TAG\n", vars, &m, &err), SB_EINVAL);
    assert_int_equal(parse("services:\n  web:\n    image: a$ b\n", vars, &m, &err), SB_EINVAL);
    json_decref(vars);
}

static void test_names(void **state)
{
    const char *good[] = {"web", "a", "my-app_2", "0x", NULL};
    const char *bad[] = {"", "../x", "a;b", "A", "-x", "_x", "a b", "a/b", "a.b", "x$(id)", NULL};
    for (size_t i = 0; good[i]; i++)
        assert_true(stacks_project_name_ok(good[i]));
    for (size_t i = 0; bad[i]; i++)
        if (stacks_project_name_ok(bad[i]))
            fail_msg("project name '%s' accepted", bad[i]);
    char long_name[80];
    memset(long_name, 'a', 64);
    long_name[64] = 0;
    assert_false(stacks_project_name_ok(long_name));
    assert_true(stacks_object_name_ok("Web.1"));
    assert_false(stacks_object_name_ok("a..b"));
    assert_false(stacks_object_name_ok("../x"));
    assert_false(stacks_object_name_ok("a;b"));
    expect_error("services:\n  \"../x\":\n    image: x\n", "services.../x", "bad service name");
    expect_error("services:\n  \"a;b\":\n    image: x\n", "services.a;b", "bad service name");
    expect_error("services:\n  web: {image: x}\nvolumes:\n  \"a/b\": {}\n", "volumes.a/b", "bad name");
}

static void test_validation(void **state)
{
    expect_error("services:\n  web: {}\n", "services.web", "image is required");
    expect_error("services: {}\n", "services", "at least one");
    expect_error("version: '3'\n", "services", "at least one");
    expect_error("services:\n  web: {image: x, ports: [\"8080-8090:80\"]}\n", "services.web.ports[0]",
                 "ranges");
    expect_error("services:\n  web: {image: x, ports: [\"99999:80\"]}\n", "services.web.ports[0]",
                 "published");
    expect_error("services:\n  web: {image: x, ports: [\"80/sctp\"]}\n", "services.web.ports[0]", "protocol");
    expect_error("services:\n  web: {image: x, volumes: [\"nope:/data\"]}\n", "services.web.volumes[0]",
                 "not declared");
    expect_error("services:\n  web: {image: x, volumes: [\"./rel:/data\"]}\n", "services.web.volumes[0]",
                 "absolute host path");
    expect_error("services:\n  web: {image: x, volumes: [\"/a/../b:/data\"]}\n", "services.web.volumes[0]",
                 "..");
    expect_error("services:\n  web: {image: x, volumes: [\"rel\"]}\n", "services.web.volumes[0]", "absolute");
    expect_error("services:\n  web: {image: x, networks: [back]}\n", "services.web.networks", "not declared");
    expect_error("services:\n  web: {image: x, depends_on: [db]}\n", "services.web.depends_on.db",
                 "no such service");
    expect_error("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
                 "services.a.depends_on", "cycle");
    expect_error(
        "services:\n  a: {image: x, depends_on: {b: {condition: service_healthy}}}\n  b: {image: x}\n",
        "services.a.depends_on.b", "needs a healthcheck");
    expect_error("services:\n  web: {image: x, restart: sometimes}\n", "services.web.restart", "must be");
    expect_error("services:\n  web: {image: x, mem_limit: lots}\n", "services.web.mem_limit", "size");
    expect_error("services:\n  web: {image: x, mem_limit: 1k}\n", "services.web.mem_limit", "at least 6m");
    expect_error("services:\n  web: {image: x, cpus: -1}\n", "services.web.cpus", "between");
    expect_error("services:\n  web: {image: x, deploy: {replicas: 1000}}\n", "services.web.deploy.replicas",
                 "between");
    expect_error("services:\n  web: {image: x, ports: [\"80:80\"], deploy: {replicas: 2}}\n",
                 "services.web.ports", "more than one replica");
    expect_error("services:\n  web: {image: x, healthcheck: {test: [FOO, x]}}\n",
                 "services.web.healthcheck.test", "CMD");
    expect_error("services:\n  web: {image: x, healthcheck: {test: x, interval: soon}}\n",
                 "services.web.healthcheck.interval", "duration");
    expect_error("services:\n  web: {image: x, command: \"echo 'open\"}\n", "services.web.command", "quote");
    expect_error("services:\n  web: {image: x, network_mode: \"service:db\"}\n", "services.web.network_mode",
                 "must be");
    expect_error("services:\n  web: {image: x, labels: {com.docker.compose.project: x}}\n",
                 "services.web.labels", "reserved");
    expect_error("services:\n  web: {image: x, environment: [\"=x\"]}\n", "services.web.environment[0]",
                 "variable name");
    expect_error("services:\n  web: {image: x, env_file: a.env}\n", "services.web.env_file", "not given");
    expect_error("services:\n  web: {image: \"-x\"}\n", "services.web.image", "image reference");
    expect_error("services:\n  web: {image: x}\nnetworks: {default: {}}\n", "networks.default",
                 "made by the stack");
    expect_error("services:\n  web: {image: x}\nnetworks: {n: {driver: overlay}}\n", "networks.n", "bridge");
    /* env_file content given with the stack */
    json_t *files = json_pack("{s:s}", "a.env", "# comment\nA=1\nB=two words\n\n");
    json_t *m;
    struct sb_err err = {0};
    const char *t = "services:\n  web: {image: x, env_file: a.env, environment: {B: over}}\n";
    assert_int_equal(stacks_compose_parse(t, strlen(t), NULL, files, &m, &err), 0);
    json_t *env = json_object_get(json_object_get(json_object_get(m, "services"), "web"), "environment");
    assert_string_equal(json_string_value(json_object_get(env, "A")), "1");
    assert_string_equal(json_string_value(json_object_get(env, "B")), "over");
    json_decref(m);
    json_decref(files);
    /* long port syntax and list environment */
    assert_int_equal(
        parse("services:\n  web:\n    image: x\n    ports:\n      - target: 80\n        published: 8081\n"
              "      - 127.0.0.1:8082:81/udp\n      - 90\n    environment: [A=1, B]\n",
              NULL, &m, &err),
        0);
    json_t *ports = json_object_get(json_object_get(json_object_get(m, "services"), "web"), "ports");
    assert_int_equal(json_array_size(ports), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ports, 1), "host_ip")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ports, 1), "protocol")), "udp");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ports, 2), "published")), 0);
    json_decref(m);
}

static void test_policy(void **state)
{
    struct {
        const char *doc, *path;
    } cases[] = {
        {"services:\n  web: {image: x, privileged: true}\n", "services.web.privileged"},
        {"services:\n  web: {image: x, network_mode: host}\n", "services.web.network_mode"},
        {"services:\n  web: {image: x, pid: host}\n", "services.web.pid"},
        {"services:\n  web: {image: x, ipc: host}\n", "services.web.ipc"},
        {"services:\n  web: {image: x, devices: [\"/dev/kvm\"]}\n", "services.web.devices"},
        {"services:\n  web: {image: x, cap_add: [NET_ADMIN]}\n", "services.web.cap_add"},
        {"services:\n  web: {image: x, volumes: [\"/etc:/host-etc:ro\"]}\n", "services.web.volumes[0]"},
        {"services:\n  web: {image: x, volumes: [\"/srv/stacksX:/d\"]}\n", "services.web.volumes[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *m;
        struct sb_err err = {0};
        assert_int_equal(parse(cases[i].doc, NULL, &m, &err), 0);
        memset(&err, 0, sizeof err);
        assert_int_equal(stacks_policy_check(m, "/srv/stacks", false, &err), SB_EDENIED);
        assert_string_equal(err.field, cases[i].path);
        assert_non_null(strstr(err.msg, "needs an admin"));
        assert_int_equal(stacks_policy_check(m, "/srv/stacks", true, &err), 0);
        json_decref(m);
    }
    json_t *m;
    struct sb_err err = {0};
    assert_int_equal(parse("services:\n  web: {image: x, cap_drop: [ALL], privileged: false,\n"
                           "    volumes: [\"/srv/stacks/app:/d\", \"/srv/stacks:/e\"]}\n",
                           NULL, &m, &err),
                     0);
    assert_int_equal(stacks_policy_check(m, "/srv/stacks/", false, &err), 0);
    assert_int_equal(stacks_policy_check(m, NULL, false, &err), SB_EDENIED);
    json_decref(m);
}

static json_t *container(const char *id, const char *service, const char *hash)
{
    return json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s}}", "id", id, "name", id, "state", "running", "labels",
                     LABEL_PROJECT, "p", LABEL_SERVICE, service, LABEL_HASH, hash, LABEL_ONEOFF, "False");
}

static json_t *step_of(json_t *plan, const char *service)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(plan, "services"), i,
                       s) if (strcmp(json_string_value(json_object_get(s, "service")), service) ==
                              0) return s;
    return NULL;
}

static void test_hash_and_plan(void **state)
{
    json_t *m, *m2;
    struct sb_err err;
    assert_int_equal(parse(two_services, NULL, &m, &err), 0);
    assert_int_equal(parse(two_services, NULL, &m2, &err), 0);
    json_t *web = json_object_get(json_object_get(m, "services"), "web");
    json_t *worker = json_object_get(json_object_get(m, "services"), "worker");
    char h1[65], h2[65], h3[65], hw[65];
    stacks_config_hash(web, NULL, h1);
    stacks_config_hash(json_object_get(json_object_get(m2, "services"), "web"), NULL, h2);
    assert_string_equal(h1, h2); /* deterministic */
    stacks_config_hash(web, "sha256:abc", h3);
    assert_string_not_equal(h1, h3); /* the image id counts */
    stacks_config_hash(worker, NULL, hw);
    /* replicas do not change the hash */
    json_object_set_new(json_object_get(json_object_get(m2, "services"), "worker"), "replicas",
                        json_integer(5));
    char hw2[65];
    stacks_config_hash(json_object_get(json_object_get(m2, "services"), "worker"), NULL, hw2);
    assert_string_equal(hw, hw2);

    /* nothing exists: create both, networks and volume listed */
    json_t *none = json_array(), *plan;
    assert_int_equal(stacks_plan(m, "p", NULL, none, &plan, &err), 0);
    assert_string_equal(json_string_value(json_object_get(step_of(plan, "web"), "action")), "create");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(plan, "services"), 0), "service")),
        "web");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(plan, "networks"), 0), "name")),
        "p_default");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(plan, "volumes"), 0), "name")),
        "p_data");
    json_decref(plan);

    /* everything current: unchanged; one worker missing: scale; a stray
     * service: remove */
    json_t *cur = json_array();
    json_array_append_new(cur, container("w1", "web", h1));
    json_array_append_new(cur, container("k1", "worker", hw));
    json_array_append_new(cur, container("k2", "worker", hw));
    assert_int_equal(stacks_plan(m, "p", NULL, cur, &plan, &err), 0);
    assert_string_equal(json_string_value(json_object_get(step_of(plan, "web"), "action")), "unchanged");
    assert_string_equal(json_string_value(json_object_get(step_of(plan, "worker"), "action")), "unchanged");
    json_decref(plan);
    json_array_remove(cur, 2);
    json_array_append_new(cur, container("o1", "old", "x"));
    assert_int_equal(stacks_plan(m, "p", NULL, cur, &plan, &err), 0);
    assert_string_equal(json_string_value(json_object_get(step_of(plan, "worker"), "action")), "scale");
    assert_string_equal(json_string_value(json_object_get(step_of(plan, "old"), "action")), "remove");
    assert_string_equal(json_string_value(json_array_get(json_object_get(step_of(plan, "old"), "remove"), 0)),
                        "o1");
    json_decref(plan);

    /* a changed image id: recreate start-first (no published port) */
    json_t *ids = json_pack("{s:s}", "web", "sha256:new");
    assert_int_equal(stacks_plan(m, "p", ids, cur, &plan, &err), 0);
    json_t *ws = step_of(plan, "web");
    assert_string_equal(json_string_value(json_object_get(ws, "action")), "recreate");
    assert_string_equal(json_string_value(json_object_get(ws, "strategy")), "start-first");
    assert_string_equal(json_string_value(json_array_get(json_object_get(ws, "remove"), 0)), "w1");
    json_decref(plan);
    json_decref(ids);

    /* a published host port: stop-first with the expected gap */
    json_t *m3;
    assert_int_equal(parse("services:\n  web:\n    image: x\n    ports: [\"8080:80\"]\n"
                           "    healthcheck: {test: \"true\", interval: 2s, start_period: 3s}\n",
                           NULL, &m3, &err),
                     0);
    json_t *one = json_array();
    json_array_append_new(one, container("w1", "web", "stale"));
    assert_int_equal(stacks_plan(m3, "p", NULL, one, &plan, &err), 0);
    ws = step_of(plan, "web");
    assert_string_equal(json_string_value(json_object_get(ws, "strategy")), "stop-first");
    assert_int_equal(json_integer_value(json_object_get(ws, "expected_gap_s")), 15);
    assert_non_null(strstr(json_string_value(json_object_get(ws, "note")), "host port"));
    struct buf sum;
    buf_init(&sum, 0);
    stacks_plan_summary(plan, &sum);
    assert_string_equal(sum.data, "web: recreate stop-first");
    buf_release(&sum);
    json_decref(plan);
    json_decref(one);
    json_decref(m3);
    json_decref(cur);
    json_decref(none);
    json_decref(m);
    json_decref(m2);
}

/* Many small broken documents: none may crash or leak, each fails. */
static void test_broken_corpus(void **state)
{
    const char *docs[] = {
        "services:\n  web:\n    image: x\n    ports: 80\n",
        "services:\n  web:\n    image: x\n    ports: [{target: 0}]\n",
        "services:\n  web:\n    image: x\n    ports: [{published: 80}]\n",
        "services:\n  web:\n    image: [x]\n",
        "services:\n  web:\n    image: x\n    environment: 5\n",
        "services:\n  web:\n    image: x\n    environment: {A: [1]}\n",
        "services:\n  web:\n    image: x\n    volumes: {a: b}\n",
        "services:\n  web:\n    image: x\n    volumes: [{type: tmpfs, target: /x}]\n",
        "services:\n  web:\n    image: x\n    depends_on: 3\n",
        "services:\n  web:\n    image: x\n    depends_on: {a: {condition: maybe}}\n",
        "services:\n  web:\n    image: x\n    healthcheck: yes\n",
        "services:\n  web:\n    image: x\n    healthcheck: {interval: 1s}\n",
        "services:\n  web:\n    image: x\n    logging: {driver: [a]}\n",
        "services:\n  web:\n    image: x\n    logging: {options: {max-size: [1]}}\n",
        "services:\n  web:\n    image: x\n    deploy: {resources: {reservations: {}}}\n",
        "services:\n  web:\n    image: x\n    working_dir: rel\n",
        "services:\n  web:\n    image: x\n    x-serverbox: {probe: {udp: 1}}\n",
        "services:\n  web:\n    image: x\n    x-serverbox: {health_timeout: 0s}\n",
        "services:\n  web:\n    image: x\n    cap_add: NET_ADMIN\n",
        "services:\n  web:\n    image: x\n    networks: {n: {aliases: [a]}}\nnetworks: {n: {}}\n",
        "services:\n  web:\n    image: x\n    network_mode: host\n    networks: [default]\n",
        "services:\n  web: 5\n",
        "services: [web]\n",
        "services:\n  ? [a, b]\n  : {image: x}\n",
        "services:\n  web:\n    image: !!binary aGVsbG8=\n    image2: x\n",
        "version: [1]\nservices: {web: {image: x}}\n",
        "volumes: 3\nservices: {web: {image: x}}\n",
        "volumes: {v: {driver: nfs}}\nservices: {web: {image: x}}\n",
        "networks: {n: {external: maybe}}\nservices: {web: {image: x}}\n",
        "services:\n  web:\n    image: x\n    <<: 5\n",
        "\xff\xfe",
        "services:\n  web:\n    image: \"\\xff\"\n    sysctls: {}\n",
        "{{{{{{{{{{",
        "]]]]",
        "services:\n  web:\n    image: x\n  - y\n",
        "&a services: *a\n",
        "services:\n  web:\n    image: x\n    command: 5\n",
        "services:\n  web:\n    image: x\n    user: [0]\n",
        "services:\n  web:\n    image: x\n    restart: on-failure:0\n",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *m = NULL;
        struct sb_err err = {0};
        int rc = parse(docs[i], NULL, &m, &err);
        if (rc == 0)
            fail_msg("document %zu accepted:\n%s", i, docs[i]);
        assert_null(m);
        assert_true(err.msg[0] != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_two_services),
        cmocka_unit_test(test_yaml_errors_have_positions),
        cmocka_unit_test(test_unknown_keys_name_their_path),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_yaml11_booleans),
        cmocka_unit_test(test_interpolation),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_hash_and_plan),
        cmocka_unit_test(test_broken_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
