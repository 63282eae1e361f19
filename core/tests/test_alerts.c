/* Unit tests for alerts/'s pure parts: rule, silence and channel validation
 * (good and bad inputs), what each event means for each rule kind, metric
 * windows, silence matching, the address policy for channel URLs and the
 * webhook signature against a known HMAC-SHA256 vector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "alerts/alerts.h"
#include "util/util.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return v;
}

static void expect_rule_error(const char *text, const char *field)
{
    json_t *in = J(text), *rule = NULL;
    struct sb_err err = {0};
    int rc = alerts_rule_normalize(in, NULL, &rule, &err);
    if (rc != SB_EINVAL || strcmp(err.field, field) != 0)
        fail_msg("%s: want field %s, got rc %d field '%s' (%s)", text, field, rc, err.field, err.msg);
    assert_null(rule);
    json_decref(in);
}

static void test_rules(void **state)
{
    (void)state;
    expect_rule_error("{\"kind\":\"node_offline\"}", "name");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"nope\"}", "kind");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"metric\",\"metric\":\"node.temp\",\"threshold\":1}",
                      "metric");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"metric\",\"metric\":\"node.cpu\"}", "threshold");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"metric\",\"metric\":\"node.cpu\",\"threshold\":-1}",
                      "threshold");
    expect_rule_error(
        "{\"name\":\"x\",\"kind\":\"metric\",\"metric\":\"node.cpu\",\"threshold\":5,\"for_s\":-1}", "for_s");
    expect_rule_error(
        "{\"name\":\"x\",\"kind\":\"metric\",\"metric\":\"node.cpu\",\"threshold\":5,\"op\":\"==\"}", "op");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"node_offline\",\"threshold\":5}", "threshold");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"node_offline\",\"repeat_s\":5}", "repeat_s");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"node_offline\",\"severity\":\"meh\"}", "severity");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"node_offline\",\"node_labels\":{\"a\":1}}", "node_labels");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"node_offline\",\"channels\":[\"x\"]}", "channels");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"node_offline\",\"color\":\"red\"}", "color");
    expect_rule_error("{\"name\":\"x\",\"kind\":\"container_restart_loop\",\"count\":1}", "count");
    expect_rule_error("{\"name\":\"a\\u0001b\",\"kind\":\"node_offline\"}", "name");

    json_t *in =
        J("{\"name\":\"cpu\",\"kind\":\"metric\",\"metric\":\"node.cpu\",\"threshold\":90,\"for_s\":300,"
          "\"node_labels\":{\"env\":\"lab\"}}");
    json_t *rule = NULL;
    assert_int_equal(alerts_rule_normalize(in, NULL, &rule, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(rule, "severity")), "warning");
    json_t *p = json_object_get(rule, "params");
    assert_string_equal(json_string_value(json_object_get(p, "op")), ">");
    assert_int_equal(json_integer_value(json_object_get(p, "for_s")), 300);
    assert_true(json_is_true(json_object_get(rule, "enabled")));
    /* An update keeps what it does not name; the kind cannot change. */
    json_t *patch = J("{\"threshold\":95}"), *r2 = NULL;
    json_object_set_new(rule, "id", json_string("x"));
    assert_int_equal(alerts_rule_normalize(patch, rule, &r2, NULL), 0);
    assert_true(json_number_value(json_object_get(json_object_get(r2, "params"), "threshold")) == 95.0);
    assert_string_equal(json_string_value(json_object_get(r2, "name")), "cpu");
    json_t *bad = J("{\"kind\":\"node_offline\"}"), *r3 = NULL;
    struct sb_err err = {0};
    assert_int_equal(alerts_rule_normalize(bad, rule, &r3, &err), SB_EINVAL);
    assert_string_equal(err.field, "kind");
    json_decref(bad);
    json_decref(patch);
    json_decref(r2);
    json_decref(rule);
    json_decref(in);

    json_t *defs = alerts_default_rules();
    assert_int_equal(json_array_size(defs), 5);
    json_decref(defs);
}

static json_t *rule_of(const char *kind)
{
    json_t *in = json_pack("{s:s, s:s}", "name", "r", "kind", kind), *rule = NULL;
    assert_int_equal(alerts_rule_normalize(in, NULL, &rule, NULL), 0);
    json_decref(in);
    return rule;
}

static void expect_signal(const char *kind, const char *type, const char *data, const char *action)
{
    json_t *rule = rule_of(kind), *d = J(data);
    json_t *s = alerts_event_signal(rule, type, d);
    if (!action) {
        if (s)
            fail_msg("%s %s: want nothing, got %s", kind, type,
                     json_string_value(json_object_get(s, "action")));
    } else {
        if (!s || strcmp(json_string_value(json_object_get(s, "action")), action) != 0)
            fail_msg("%s %s: want %s", kind, type, action);
    }
    json_decref(s);
    json_decref(d);
    json_decref(rule);
}

static void test_signals(void **state)
{
    (void)state;
    const char *c = "{\"node_id\":\"local\",\"container_id\":\"abc\",\"name\":\"web\",\"exit_code\":137}";
    expect_signal("container_oom", "container.oom", c, "fire");
    expect_signal("container_oom", "container.started", c, "resolve");
    expect_signal("container_oom", "container.destroyed", c, "resolve");
    expect_signal("container_oom", "container.died", c, NULL);
    expect_signal("container_died", "container.died", c, "fire");
    expect_signal("container_died", "container.died",
                  "{\"node_id\":\"n\",\"container_id\":\"c\",\"exit_code\":0}", NULL);
    expect_signal("container_unhealthy", "container.health_status",
                  "{\"node_id\":\"n\",\"container_id\":\"c\",\"health\":\"unhealthy\"}", "fire");
    expect_signal("container_unhealthy", "container.health_status",
                  "{\"node_id\":\"n\",\"container_id\":\"c\",\"health\":\"healthy\"}", "resolve");
    expect_signal("container_restart_loop", "container.died", c, "count");
    expect_signal("stack_deploy_failed", "stack.deploy_failed", "{\"id\":\"s1\",\"reason\":\"boom\"}",
                  "fire");
    expect_signal("stack_rolled_back", "stack.deploy_failed", "{\"id\":\"s1\",\"rolled_back\":false}", NULL);
    expect_signal("stack_rolled_back", "stack.deploy_failed", "{\"id\":\"s1\",\"rolled_back\":true}", "fire");
    expect_signal("stack_deploy_failed", "stack.deployed", "{\"id\":\"s1\"}", "resolve");
    expect_signal("backup_failed", "backup.run_failed", "{\"id\":\"j\",\"plan_id\":\"p1\",\"reason\":\"x\"}",
                  "fire");
    expect_signal("backup_failed", "backup.restore_test_failed", "{\"plan_id\":\"p1\"}", "fire");
    expect_signal("backup_failed", "backup.restore_failed", "{\"repository_id\":\"r1\"}", "fire");
    expect_signal("backup_failed", "backup.run_succeeded", "{\"plan_id\":\"p1\"}", "resolve");
    expect_signal("backup_failed", "backup.restore_test_succeeded", "{\"plan_id\":\"p1\"}", "resolve");
    expect_signal("backup_failed", "backup.plan_deleted", "{\"id\":\"p1\"}", "resolve");
    expect_signal("backup_failed", "backup.run_started", "{\"plan_id\":\"p1\"}", NULL);
    expect_signal("backup_failed", "backup.run_failed", "{\"id\":\"j\"}", NULL); /* no plan */
    expect_signal("stack_deploy_failed", "backup.run_failed", "{\"plan_id\":\"p1\"}", NULL);
    json_t *br = rule_of("backup_failed");
    json_t *bd = J("{\"plan_id\":\"p1\",\"repository_id\":\"r1\",\"reason\":\"repo gone\"}");
    json_t *bs = alerts_event_signal(br, "backup.run_failed", bd);
    assert_string_equal(json_string_value(json_object_get(bs, "target")), "backup_plan/p1");
    assert_string_equal(json_string_value(json_object_get(bs, "summary")), "backup run failed: repo gone");
    json_decref(bs);
    bs = alerts_event_signal(br, "backup.restore_failed", bd); /* a restore is the repository's */
    assert_string_equal(json_string_value(json_object_get(bs, "target")), "backup_repository/r1");
    json_decref(bs);
    json_decref(bd);
    json_decref(br);
    expect_signal("node_offline", "node.offline", "{\"id\":\"n\"}", NULL);        /* a state rule */
    expect_signal("container_oom", "container.oom", "{\"node_id\":\"n\"}", NULL); /* malformed */
}

static void test_windows(void **state)
{
    (void)state;
    json_t *in =
        J("{\"name\":\"d\",\"kind\":\"metric\",\"metric\":\"node.disk\",\"threshold\":90,\"for_s\":300}");
    json_t *rule = NULL;
    assert_int_equal(alerts_rule_normalize(in, NULL, &rule, NULL), 0);
    json_t *w = J("{\"min\":91,\"max\":99,\"last\":95,\"age_s\":299,\"n\":60}");
    assert_true(alerts_window_met(rule, w));
    json_decref(w);
    w = J("{\"min\":89,\"max\":99,\"last\":95,\"age_s\":299,\"n\":60}"); /* one sample under */
    assert_false(alerts_window_met(rule, w));
    json_decref(w);
    w = J("{\"min\":91,\"max\":99,\"last\":95,\"age_s\":100,\"n\":20}"); /* too short */
    assert_false(alerts_window_met(rule, w));
    json_decref(w);
    json_decref(rule);
    json_decref(in);
    in = J("{\"name\":\"m\",\"kind\":\"metric\",\"metric\":\"node.memory\",\"op\":\"<\",\"threshold\":5}");
    assert_int_equal(alerts_rule_normalize(in, NULL, &rule, NULL), 0);
    w = J("{\"min\":1,\"max\":50,\"last\":4,\"age_s\":3,\"n\":2}");
    assert_true(alerts_window_met(rule, w)); /* for_s 0: the last sample */
    json_decref(w);
    w = J("{\"n\":0}");
    assert_false(alerts_window_met(rule, w));
    json_decref(w);
    json_decref(rule);
    json_decref(in);
    assert_true(alerts_threshold_met(">=", 5, 5));
    assert_false(alerts_threshold_met(">", 5, 5));
    assert_false(alerts_threshold_met("!", 5, 5));
}

static int64_t at_us(const char *t)
{
    int64_t us = 0;
    assert_int_equal(time_parse_rfc3339(t, &us), 0);
    return us;
}

static void expect_window_error(const char *in, const char *field)
{
    json_t *j = J(in), *out = NULL;
    struct sb_err err = {0};
    assert_int_equal(alerts_silence_normalize(j, at_us("2026-12-03T10:30:00Z"), &out, &err), SB_EINVAL);
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: want field %s, got %s (%s)", in, field, err.field, err.msg);
    assert_null(out);
    json_decref(j);
}

static void test_maintenance_windows(void **state)
{
    (void)state;
    /* 2026-12-03 is a Thursday. */
    json_t *in = J("{\"node_labels\":{\"env\":\"lab\"},\"recurrence\":{\"days\":[\"thu\",\"mon\"],"
                   "\"start\":\"10:00\",\"duration_s\":3600}}");
    json_t *s = NULL;
    struct sb_err err = {0};
    assert_int_equal(alerts_silence_normalize(in, at_us("2026-12-03T10:30:00Z"), &s, &err), 0);
    json_t *rec = json_object_get(s, "recurrence");
    assert_true(json_is_null(json_object_get(s, "until")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(rec, "days"), 0)), "mon");
    assert_true(alerts_recurrence_open(rec, at_us("2026-12-03T10:00:00Z")));
    assert_true(alerts_recurrence_open(rec, at_us("2026-12-03T10:59:59Z")));
    assert_false(alerts_recurrence_open(rec, at_us("2026-12-03T11:00:00Z")));
    assert_false(alerts_recurrence_open(rec, at_us("2026-12-03T09:59:59Z")));
    assert_false(alerts_recurrence_open(rec, at_us("2026-12-02T10:30:00Z"))); /* a Wednesday */
    assert_true(alerts_recurrence_open(rec, at_us("2026-12-07T10:30:00Z")));  /* a Monday */
    json_decref(s);
    json_decref(in);
    /* Past midnight: Wednesday 23:30 for two hours covers Thursday 00:30. */
    json_t *late = J("{\"days\":[\"wed\"],\"start\":\"23:30\",\"duration_s\":7200}");
    assert_true(alerts_recurrence_open(late, at_us("2026-12-03T00:30:00Z")));
    assert_false(alerts_recurrence_open(late, at_us("2026-12-03T01:30:00Z")));
    json_decref(late);
    json_t *week = J("{\"days\":[\"sun\"],\"start\":\"00:00\",\"duration_s\":604800}");
    assert_true(alerts_recurrence_open(week, at_us("2026-12-05T23:59:00Z"))); /* Saturday, from last Sunday */
    json_decref(week);
    const char *lab = "\"node_labels\":{\"env\":\"lab\"},";
    char b[400];
#define BAD(rec, field)                                                                                      \
    snprintf(b, sizeof b, "{%s\"recurrence\":%s}", lab, rec);                                                \
    expect_window_error(b, field)
    BAD("{\"days\":[\"funday\"],\"start\":\"10:00\",\"duration_s\":3600}", "recurrence.days");
    BAD("{\"days\":[],\"start\":\"10:00\",\"duration_s\":3600}", "recurrence.days");
    BAD("{\"days\":[\"mon\",\"mon\"],\"start\":\"10:00\",\"duration_s\":3600}", "recurrence.days");
    BAD("{\"days\":\"mon\",\"start\":\"10:00\",\"duration_s\":3600}", "recurrence.days");
    BAD("{\"days\":[\"mon\"],\"start\":\"24:00\",\"duration_s\":3600}", "recurrence.start");
    BAD("{\"days\":[\"mon\"],\"start\":\"9:00\",\"duration_s\":3600}", "recurrence.start");
    BAD("{\"days\":[\"mon\"],\"start\":\"10:60\",\"duration_s\":3600}", "recurrence.start");
    BAD("{\"days\":[\"mon\"],\"start\":\"10:00\",\"duration_s\":59}", "recurrence.duration_s");
    BAD("{\"days\":[\"mon\"],\"start\":\"10:00\",\"duration_s\":604801}", "recurrence.duration_s");
    BAD("{\"days\":[\"mon\"],\"start\":\"10:00\"}", "recurrence.duration_s");
    BAD("{\"days\":[\"mon\"],\"start\":\"10:00\",\"duration_s\":60,\"tz\":\"CET\"}", "recurrence");
    BAD("[]", "recurrence");
#undef BAD
    expect_window_error("{\"recurrence\":{\"days\":[\"mon\"],\"start\":\"10:00\",\"duration_s\":60}}",
                        "node_labels");
    expect_window_error(
        "{\"node_labels\":{\"env\":\"lab\"},\"duration_s\":60,\"recurrence\":{\"days\":[\"mon\"],"
        "\"start\":\"10:00\",\"duration_s\":60}}",
        "duration_s");
}

static void test_silences(void **state)
{
    (void)state;
    json_t *alert = J("{\"kind\":\"container_oom\",\"container_name\":\"web-1\",\"node_id\":\"n1\"}");
    json_t *labels = J("{\"env\":\"lab\"}");
    json_t *s = J("{\"matchers\":{\"kind\":\"container_oom\",\"container_name\":\"web-*\"}}");
    assert_true(alerts_silence_matches(s, alert, labels));
    json_decref(s);
    s = J("{\"matchers\":{\"container_name\":\"db\"}}");
    assert_false(alerts_silence_matches(s, alert, labels));
    json_decref(s);
    s = J("{\"matchers\":{},\"node_labels\":{\"env\":\"prod\"}}");
    assert_false(alerts_silence_matches(s, alert, labels));
    json_decref(s);
    s = J("{\"matchers\":{},\"node_labels\":{\"env\":\"lab\"}}");
    assert_true(alerts_silence_matches(s, alert, labels));
    json_decref(s);
    json_decref(alert);
    json_decref(labels);

    int64_t now = 1700000000LL * 1000000;
    json_t *in = J("{\"matchers\":{\"kind\":\"x\"},\"duration_s\":60}"), *out = NULL;
    assert_int_equal(alerts_silence_normalize(in, now, &out, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(out, "until")), "2023-11-14T22:14:20.000000Z");
    json_decref(out);
    json_decref(in);
    const char *bad[] = {"{\"matchers\":{\"kind\":\"x\"}}",
                         "{\"duration_s\":0}",
                         "{\"until\":\"yesterday\"}",
                         "{\"until\":\"2001-01-01T00:00:00Z\"}",
                         "{\"matchers\":{\"colour\":\"x\"},\"duration_s\":5}",
                         "{\"matchers\":[],\"duration_s\":5}",
                         "{\"duration_s\":5,\"extra\":1}",
                         NULL};
    for (size_t i = 0; bad[i]; i++) {
        in = J(bad[i]);
        out = NULL;
        if (alerts_silence_normalize(in, now, &out, NULL) != SB_EINVAL)
            fail_msg("silence %s accepted", bad[i]);
        json_decref(in);
    }
}

static void test_addresses_and_urls(void **state)
{
    (void)state;
    assert_false(alerts_address_allowed("127.0.0.1", false));
    assert_true(alerts_address_allowed("127.0.0.1", true));
    assert_false(alerts_address_allowed("::1", false));
    assert_false(alerts_address_allowed("::ffff:127.0.0.1", false));
    assert_false(alerts_address_allowed("169.254.169.254", true));
    assert_false(alerts_address_allowed("fe80::1", true));
    assert_false(alerts_address_allowed("0.0.0.0", true));
    assert_false(alerts_address_allowed("224.0.0.1", true));
    assert_false(alerts_address_allowed("fd00:ec2::254", true));
    assert_false(alerts_address_allowed("100.100.100.200", true));
    assert_true(alerts_address_allowed("10.1.2.3", false));
    assert_true(alerts_address_allowed("2001:db8::1", false));
    assert_false(alerts_address_allowed("not an address", true));

    struct sb_err err = {0};
    assert_int_equal(alerts_url_check("webhook", "file:///etc/passwd", true, &err), SB_EINVAL);
    assert_string_equal(err.field, "url");
    assert_int_equal(alerts_url_check("webhook", "gopher://127.0.0.1/", true, NULL), SB_EINVAL);
    assert_int_equal(alerts_url_check("webhook", "http://127.0.0.1:9/x", false, NULL), SB_EINVAL);
    assert_int_equal(alerts_url_check("webhook", "http://127.0.0.1:9/x", true, NULL), 0);
    assert_int_equal(alerts_url_check("webhook", "http://[::1]:9/x", true, NULL), 0);
    assert_int_equal(alerts_url_check("webhook", "http://u:p@127.0.0.1/", true, NULL), SB_EINVAL);
    assert_int_equal(alerts_url_check("webhook", "http://127.0.0.1/a b", true, NULL), SB_EINVAL);
    assert_int_equal(alerts_url_check("email", "https://127.0.0.1/", true, NULL), SB_EINVAL);
    assert_int_equal(alerts_url_check("email", "smtp://127.0.0.1:25", true, NULL), 0);
    assert_int_equal(alerts_url_check("slack", "http://169.254.169.254/latest", true, NULL), SB_EINVAL);
    assert_int_equal(alerts_url_check("slack", "notaurl", true, NULL), SB_EINVAL);

    char m[200];
    alerts_url_masked("https://hooks.slack.com/services/T0/B0/secret", m, sizeof m);
    assert_string_equal(m, "https://hooks.slack.com/********");
    alerts_url_masked("smtp://mail.example:587", m, sizeof m);
    assert_string_equal(m, "smtp://mail.example:587/********");
}

static void test_channels(void **state)
{
    (void)state;
    json_t *in = J("{\"name\":\"h\",\"kind\":\"webhook\",\"url\":\"http://127.0.0.1:1/h?t=x\","
                   "\"secret\":\"0123456789abcdef\"}");
    json_t *clear = NULL, *secret = NULL;
    assert_int_equal(alerts_channel_normalize(in, NULL, NULL, true, &clear, &secret, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(clear, "url")), "http://127.0.0.1:1/********");
    assert_string_equal(json_string_value(json_object_get(secret, "secret")), "0123456789abcdef");
    assert_null(json_object_get(clear, "secret"));
    /* The mask keeps the old secret. */
    json_t *patch = J("{\"secret\":\"********\",\"url\":\"http://127.0.0.1:1/********\"}"), *c2 = NULL,
           *s2 = NULL;
    assert_int_equal(alerts_channel_normalize(patch, clear, secret, true, &c2, &s2, NULL), 0);
    assert_true(json_equal(s2, secret));
    json_decref(c2);
    json_decref(s2);
    json_decref(patch);
    json_decref(clear);
    json_decref(secret);
    json_decref(in);
    const char *bad[] = {
        "{\"name\":\"h\",\"kind\":\"webhook\",\"url\":\"http://127.0.0.1/\"}",
        "{\"name\":\"h\",\"kind\":\"slack\",\"url\":\"http://127.0.0.1/\",\"secret\":\"0123456789abcdefg\"}",
        "{\"name\":\"h\",\"kind\":\"email\",\"url\":\"smtp://127.0.0.1\",\"from\":\"a@b\",\"to\":[]}",
        "{\"name\":\"h\",\"kind\":\"email\",\"url\":\"smtp://127.0.0.1\",\"from\":\"a@b\","
        "\"to\":\"x@y\",\"starttls\":\"never\"}",
        "{\"name\":\"h\",\"kind\":\"sms\",\"url\":\"http://127.0.0.1/\"}",
        NULL};
    for (size_t i = 0; bad[i]; i++) {
        in = J(bad[i]);
        if (alerts_channel_normalize(in, NULL, NULL, true, &clear, &secret, NULL) != SB_EINVAL)
            fail_msg("channel %s accepted", bad[i]);
        json_decref(in);
    }
}

static void test_signature_and_text(void **state)
{
    (void)state;
    /* sha256=hex(HMAC-SHA256(secret, timestamp "." body)), checked against
     * Python's hmac module. */
    char sig[72];
    alerts_signature("key", "1700000000", "{\"a\":1}", 7, sig);
    assert_string_equal(sig, "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03");

    json_t *alert =
        J("{\"id\":\"a1\",\"rule_name\":\"OOM\",\"severity\":\"critical\",\"summary\":\"container web "
          "killed\",\"node_id\":\"n1\",\"node_name\":\"lab-1\",\"container_id\":\"0123456789abcdef\","
          "\"container_name\":\"web\",\"target\":\"container/n1/0123456789abcdef\","
          "\"fired_at\":\"2026-01-01T00:00:00Z\"}");
    struct buf b;
    buf_init(&b, 0);
    alerts_text(alert, "firing", &b);
    assert_non_null(strstr(b.data, "[FIRING] critical: OOM - container web killed\n"));
    assert_non_null(strstr(b.data, "Node: lab-1 (n1)"));
    assert_non_null(strstr(b.data, "Container: web (0123456789ab)"));
    assert_non_null(strstr(b.data, "Fired at: 2026-01-01T00:00:00Z"));
    buf_release(&b);
    json_t *p = alerts_payload(alert, "resolved", "d1");
    assert_string_equal(json_string_value(json_object_get(p, "notification")), "resolved");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "alert"), "node_name")),
                        "lab-1");
    assert_non_null(strstr(json_string_value(json_object_get(p, "text")), "[RESOLVED]"));
    json_decref(p);
    json_decref(alert);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_silences),
        cmocka_unit_test(test_maintenance_windows),
        cmocka_unit_test(test_addresses_and_urls),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_signature_and_text),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
