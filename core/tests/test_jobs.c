/* Unit tests for jobs/: the pure parts — the retry backoff, the outcome of
 * an attempt, the state machine the projection enforces, kind names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "jobs/jobs.h"

#include <string.h>

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(jobs_backoff_ms(1, 1000, 600000), 1000);
    assert_int_equal(jobs_backoff_ms(2, 1000, 600000), 2000);
    assert_int_equal(jobs_backoff_ms(3, 1000, 600000), 4000);
    assert_int_equal(jobs_backoff_ms(10, 1000, 600000), 512000);
    /* capped, and no overflow for absurd attempts */
    assert_int_equal(jobs_backoff_ms(11, 1000, 600000), 600000);
    assert_int_equal(jobs_backoff_ms(1000000, 1000, 600000), 600000);
    /* attempt 0 or negative: the first delay; a zero base still waits */
    assert_int_equal(jobs_backoff_ms(0, 300, 600000), 300);
    assert_int_equal(jobs_backoff_ms(-5, 300, 600000), 300);
    assert_true(jobs_backoff_ms(1, 0, 600000) >= 1);
    /* monotone */
    for (int a = 1; a < 40; a++)
        assert_true(jobs_backoff_ms(a + 1, 700, 600000) >= jobs_backoff_ms(a, 700, 600000));
}

static void test_decide(void **state)
{
    (void)state;
    assert_int_equal(jobs_decide(0, 1, 3, false), JOBS_SUCCEEDED);
    /* finished its work although asked to stop: it succeeded */
    assert_int_equal(jobs_decide(0, 1, 3, true), JOBS_SUCCEEDED);
    assert_int_equal(jobs_decide(SB_EUNAVAIL, 1, 3, false), JOBS_RETRY);
    assert_int_equal(jobs_decide(SB_ETIMEOUT, 2, 3, false), JOBS_RETRY);
    /* attempts exhausted */
    assert_int_equal(jobs_decide(SB_EUNAVAIL, 3, 3, false), JOBS_FAILED);
    /* permanent errors fail at once */
    assert_int_equal(jobs_decide(SB_EINVAL, 1, 3, false), JOBS_FAILED);
    assert_int_equal(jobs_decide(SB_ENOTFOUND, 1, 3, false), JOBS_FAILED);
    assert_int_equal(jobs_decide(SB_EUPSTREAM, 1, 3, false), JOBS_FAILED);
    /* a cancel asked wins over a retry */
    assert_int_equal(jobs_decide(SB_EUNAVAIL, 1, 3, true), JOBS_CANCELLED);
    assert_int_equal(jobs_decide(SB_ECONFLICT, 1, 3, true), JOBS_CANCELLED);
}

static void test_states(void **state)
{
    (void)state;
    assert_string_equal(jobs_next_state("queued", "started"), "running");
    assert_string_equal(jobs_next_state("running", "started"), "running"); /* a takeover */
    assert_string_equal(jobs_next_state("running", "retrying"), "queued");
    assert_string_equal(jobs_next_state("running", "succeeded"), "succeeded");
    assert_string_equal(jobs_next_state("running", "failed"), "failed");
    assert_string_equal(jobs_next_state("running", "cancel_requested"), "running");
    assert_string_equal(jobs_next_state("queued", "cancelled"), "cancelled");
    assert_string_equal(jobs_next_state("running", "cancelled"), "cancelled");
    /* what the projection refuses */
    assert_null(jobs_next_state("queued", "succeeded"));
    assert_null(jobs_next_state("queued", "failed"));
    assert_null(jobs_next_state("queued", "retrying"));
    assert_null(jobs_next_state("queued", "cancel_requested"));
    const char *final[] = {"succeeded", "failed", "cancelled"};
    const char *evs[] = {"started",          "retrying",  "succeeded", "failed",
                         "cancel_requested", "cancelled", "queued"};
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < sizeof evs / sizeof evs[0]; k++)
            assert_null(jobs_next_state(final[i], evs[k]));
    assert_null(jobs_next_state("running", "exploded"));
    assert_null(jobs_next_state(NULL, "started"));
    assert_null(jobs_next_state("queued", NULL));
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_true(jobs_kind_valid("container.stop"));
    assert_true(jobs_kind_valid("stack.deploy"));
    assert_true(jobs_kind_valid("a_b-c.9"));
    assert_false(jobs_kind_valid(""));
    assert_false(jobs_kind_valid(NULL));
    assert_false(jobs_kind_valid("Container.stop"));
    assert_false(jobs_kind_valid("a,b")); /* would break the claim's array literal */
    assert_false(jobs_kind_valid("a b"));
    assert_false(jobs_kind_valid("a\"b"));
    assert_false(jobs_kind_valid("{x}"));
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_false(jobs_kind_valid(long_name));
}

static void test_open_refuses_without_store(void **state)
{
    (void)state;
    struct sb_err err = {0};
    struct jobs_config cfg = {0};
    assert_null(jobs_open(&cfg, &err));
    assert_int_equal(err.code, SB_EINVAL);
    assert_null(jobs_open(NULL, &err));
    jobs_free(NULL);
    jobs_stop(NULL);
    assert_false(jobs_duty_held(NULL, "node-checks"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_open_refuses_without_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
