/* Unit tests for audit/window.c: the windowed summarizer that keeps denials
 * and guest requests from flooding the audit chain. Time is passed in, so
 * every window is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit/audit.h"

#include <stdio.h>
#include <string.h>

static struct audit_occurrence occ(const char *source, const char *family, const char *reason, int allowance)
{
    struct audit_occurrence o = {.kind = AUDIT_DENIAL,
                                 .source = source,
                                 .family = family,
                                 .per_family = true,
                                 .reason = reason,
                                 .allowance = allowance,
                                 .route = "/api/v1/nodes"};
    o.actor.kind = "system";
    return o;
}

static void test_first_few_then_summary(void **state)
{
    (void)state;
    struct audit_window *w = audit_window_new(16, 60000);
    json_t *sample = json_pack("{s:s}", "path", "/api/v1/nodes");
    struct audit_occurrence o = occ("10.0.0.1", "nodes", "permission", 3);
    o.sample = sample;
    int recorded = 0;
    for (int i = 0; i < 1000; i++)
        recorded += audit_window_note(w, &o, 1000 + i, 5000000 + i);
    assert_int_equal(recorded, 3);
    size_t n;
    /* Not closed before the window ends. */
    assert_null(audit_window_close(w, 60999, false, &n));
    assert_int_equal(n, 0);
    struct audit_summary *s = audit_window_close(w, 61000, false, &n);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].count, 1000);
    assert_int_equal(s[0].recorded, 3);
    assert_int_equal(s[0].first_us, 5000000);
    assert_int_equal(s[0].last_us, 5000999);
    assert_string_equal(s[0].reason, "permission");
    assert_string_equal(s[0].family, "nodes");
    assert_non_null(s[0].sample);
    assert_string_equal(json_string_value(json_object_get(s[0].sample, "path")), "/api/v1/nodes");
    assert_int_equal(json_array_size(s[0].routes), 1);
    audit_summaries_free(s, n);
    json_decref(sample);
    audit_window_free(w);
}

static void test_quiet_key_leaves_no_summary(void **state)
{
    (void)state;
    struct audit_window *w = audit_window_new(16, 1000);
    struct audit_occurrence o = occ("10.0.0.1", "nodes", "permission", 3);
    assert_true(audit_window_note(w, &o, 0, 0));
    assert_true(audit_window_note(w, &o, 10, 0));
    size_t n;
    assert_null(audit_window_close(w, 1000, false, &n));
    assert_int_equal(audit_window_keys(w), 0);
    /* A new window records one by one again. */
    assert_true(audit_window_note(w, &o, 1500, 0));
    audit_window_free(w);
}

static void test_anonymous_summaries_only(void **state)
{
    (void)state;
    struct audit_window *w = audit_window_new(16, 1000);
    struct audit_occurrence o = occ("10.0.0.9", "nodes", "no credential", 0);
    for (int i = 0; i < 50; i++)
        assert_false(audit_window_note(w, &o, i, i));
    size_t n;
    struct audit_summary *s = audit_window_close(w, 1000, false, &n);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].count, 50);
    assert_int_equal(s[0].recorded, 0);
    audit_summaries_free(s, n);
    audit_window_free(w);
}

/* A steady flood: after the first window, one summary per window and
 * nothing one by one. */
static void test_steady_flood_one_event_per_window(void **state)
{
    (void)state;
    struct audit_window *w = audit_window_new(16, 1000);
    struct audit_occurrence o = occ("token:abc", "*", "rate limited", 1);
    o.per_family = false;
    int events = 0;
    uint64_t counted = 0;
    for (int64_t t = 0; t < 10000; t += 5) {
        events += audit_window_note(w, &o, t, t);
        size_t n;
        struct audit_summary *s = audit_window_close(w, t, false, &n);
        for (size_t i = 0; i < n; i++)
            counted += s[i].count - s[i].recorded;
        events += (int)n;
        audit_summaries_free(s, n);
    }
    size_t n;
    struct audit_summary *s = audit_window_close(w, 10000, true, &n);
    for (size_t i = 0; i < n; i++)
        counted += s[i].count - s[i].recorded;
    events += (int)n;
    audit_summaries_free(s, n);
    /* 10 windows: the first one by one, then one summary each. */
    assert_in_range(events, 10, 11);
    /* Nothing lost: recorded (1) + summarized = every occurrence. */
    assert_int_equal(counted + 1, 2000);
    audit_window_free(w);
}

static void test_keys_are_separate(void **state)
{
    (void)state;
    struct audit_window *w = audit_window_new(16, 1000);
    struct audit_occurrence a = occ("10.0.0.1", "nodes", "permission", 1);
    struct audit_occurrence b = occ("10.0.0.2", "nodes", "permission", 1);
    struct audit_occurrence c = occ("10.0.0.1", "users", "permission", 1);
    struct audit_occurrence d = occ("10.0.0.1", "users", "csrf", 1);
    assert_true(audit_window_note(w, &a, 0, 0));
    assert_true(audit_window_note(w, &b, 0, 0));
    assert_true(audit_window_note(w, &c, 0, 0));
    assert_true(audit_window_note(w, &d, 0, 0));
    assert_false(audit_window_note(w, &a, 0, 0));
    /* Without per_family the family is not part of the key. */
    struct audit_occurrence e = occ("10.0.0.3", "nodes", "invalid credential", 1);
    e.per_family = false;
    struct audit_occurrence f = e;
    f.family = "users";
    assert_true(audit_window_note(w, &e, 0, 0));
    assert_false(audit_window_note(w, &f, 0, 0));
    assert_int_equal(audit_window_keys(w), 5);
    audit_window_free(w);
}

/* A full table folds new keys into one overflow key per reason, which
 * records nothing one by one: memory and events stay bounded. */
static void test_full_table_overflows(void **state)
{
    (void)state;
    struct audit_window *w = audit_window_new(8, 1000);
    int recorded = 0;
    char src[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(src, sizeof src, "10.1.%d.%d", i / 256, i % 256);
        struct audit_occurrence o = occ(src, "nodes", i % 2 ? "permission" : "invalid credential", 3);
        recorded += audit_window_note(w, &o, 0, 0);
    }
    assert_int_equal(recorded, 8); /* one per key that fit; none for the overflow */
    assert_true(audit_window_keys(w) <= 8 + 16);
    size_t n;
    struct audit_summary *s = audit_window_close(w, 1000, false, &n);
    uint64_t total = 0, overflow = 0;
    for (size_t i = 0; i < n; i++) {
        total += s[i].count;
        if (s[i].overflow)
            overflow++;
    }
    /* the 8 keys left nothing unrecorded (one occurrence each): only the two overflow keys */
    assert_int_equal(overflow, 2);
    assert_int_equal(n, 2);
    assert_int_equal(total, 10000 - 8);
    audit_summaries_free(s, n);
    audit_window_free(w);
}

static void test_guest_routes_and_flush(void **state)
{
    (void)state;
    struct audit_window *w = audit_window_new(16, 60000);
    struct audit_occurrence o = occ("guest:g1", "nodes", "request", 1);
    o.kind = AUDIT_GUEST;
    o.per_family = false;
    const char *routes[] = {"/api/v1/nodes", "/api/v1/nodes/{id}", "/api/v1/audit", "/api/v1/nodes"};
    for (int i = 0; i < 4; i++) {
        o.route = routes[i];
        assert_int_equal(audit_window_note(w, &o, i, i), i == 0);
    }
    size_t n;
    /* Shutdown flushes windows that have not ended. */
    struct audit_summary *s = audit_window_close(w, 10, true, &n);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].kind, AUDIT_GUEST);
    assert_int_equal(s[0].count, 4);
    assert_int_equal(json_array_size(s[0].routes), 3);
    audit_summaries_free(s, n);
    assert_int_equal(audit_window_keys(w), 0);
    audit_window_free(w);
}

static void test_family_and_path_prefix(void **state)
{
    (void)state;
    char f[32];
    audit_route_family("/api/v1/nodes/{id}/containers", f, sizeof f);
    assert_string_equal(f, "nodes");
    audit_route_family("/api/v1/me", f, sizeof f);
    assert_string_equal(f, "me");
    audit_route_family("/g/{token}", f, sizeof f);
    assert_string_equal(f, "g");
    audit_route_family("/{*path}", f, sizeof f);
    assert_string_equal(f, "root");
    char out[129];
    assert_false(audit_path_prefix("/api/v1/nodes", out, 128));
    assert_string_equal(out, "/api/v1/nodes");
    assert_false(audit_path_prefix("/a b\"%\xff\n", out, 128));
    assert_string_equal(out, "/a%20b%22%25%FF%0A");
    char big[12289];
    memset(big, 'A', sizeof big - 1);
    big[0] = '/';
    big[sizeof big - 1] = '\0';
    assert_true(audit_path_prefix(big, out, 128));
    assert_int_equal(strlen(out), 128);
    /* An escape is never cut in half. */
    memset(big, '\x01', 200);
    big[200] = '\0';
    assert_true(audit_path_prefix(big, out, 128));
    assert_int_equal(strlen(out), 126);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_few_then_summary),
        cmocka_unit_test(test_quiet_key_leaves_no_summary),
        cmocka_unit_test(test_anonymous_summaries_only),
        cmocka_unit_test(test_steady_flood_one_event_per_window),
        cmocka_unit_test(test_keys_are_separate),
        cmocka_unit_test(test_full_table_overflows),
        cmocka_unit_test(test_guest_routes_and_flush),
        cmocka_unit_test(test_family_and_path_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
