/* The spool: bounded, oldest first, survives a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_bound_order_and_reopen(void **state)
{
    (void)state;
    char dir[] = "/tmp/sbx-spool-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[64];
    snprintf(sub, sizeof sub, "%s/spool", dir);
    struct spool sp;
    assert_int_equal(spool_open(&sp, sub, 3), 0);
    assert_int_equal(spool_count(&sp), 0);
    for (int s = 100; s < 105; s++) {
        char data[32];
        snprintf(data, sizeof data, "batch %d", s);
        assert_int_equal(spool_put(&sp, s, data, strlen(data)), 0);
    }
    assert_int_equal(spool_count(&sp), 3);
    assert_int_equal(sp.dropped, 2);
    struct buf b;
    buf_init(&b, 1024);
    int64_t seq;
    assert_int_equal(spool_peek(&sp, &seq, &b), 0);
    assert_int_equal(seq, 102);
    assert_string_equal(b.data, "batch 102");
    spool_pop(&sp);

    struct spool again;
    assert_int_equal(spool_open(&again, sub, 3), 0);
    assert_int_equal(again.lo, 103);
    assert_int_equal(again.hi, 104);
    assert_int_equal(spool_peek(&again, &seq, &b), 0);
    assert_string_equal(b.data, "batch 103");
    spool_pop(&again);
    spool_pop(&again);
    assert_int_equal(spool_count(&again), 0);
    assert_int_equal(spool_peek(&again, &seq, &b), -1);
    buf_release(&b);
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bound_order_and_reopen)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
