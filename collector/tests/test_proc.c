/* The /proc readers against captured fixture trees, odd ones included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "collector.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FX "collector/tests/fixtures/"

static void test_stat_basic_and_many_cores(void **state)
{
    (void)state;
    struct cpu_times total, *cores;
    size_t n;
    assert_int_equal(proc_read_stat(FX "basic", &total, &cores, &n), 0);
    assert_true(n >= 1);
    assert_true(total.total >= total.busy);
    free(cores);
    assert_int_equal(proc_read_stat(FX "manycores", &total, &cores, &n), 0);
    assert_int_equal(n, 64);
    assert_int_equal(cores[63].total, 1000);
    assert_int_equal(cores[63].busy, 150);
    free(cores);
}

/* Found by fuzz_collector: per-core lines and no usable total line leaked
 * the cores array on every sample (the leak check at exit catches it). */
static void test_stat_cores_without_total(void **state)
{
    (void)state;
    struct cpu_times total, *cores = (struct cpu_times *)1;
    size_t n = 99;
    assert_int_equal(proc_read_stat(FX "nototal", &total, &cores, &n), -1);
    assert_null(cores);
    assert_int_equal(n, 0);
    struct proc_state st = {0};
    struct buf out;
    buf_init(&out, 1 << 20);
    proc_sample(FX "nototal", &st, 1000, &out);
    proc_sample(FX "nototal", &st, 2000, &out);
    assert_null(strstr(out.data, "\"cpu\""));
    buf_release(&out);
    proc_state_release(&st);
}

/* Found by fuzz_collector: an uptime of 2.5e53 was converted to an integer
 * (undefined), a load of nan printed as invalid JSON, kB near INT64_MAX
 * overflowed. Such values are left out of the sample. */
static void test_absurd_numbers_left_out(void **state)
{
    (void)state;
    double up, load[3];
    struct mem_info m;
    assert_int_equal(proc_read_uptime(FX "absurd", &up), -1);
    assert_int_equal(proc_read_loadavg(FX "absurd", load), -1);
    assert_int_equal(proc_read_meminfo(FX "absurd", &m), 0);
    assert_int_equal(m.total, 1024LL * 1024);
    assert_int_equal(m.swap_total, -1);
    struct proc_state st = {0};
    struct buf out;
    buf_init(&out, 1 << 20);
    buf_putc(&out, '{');
    proc_sample(FX "absurd", &st, 1000, &out);
    buf_putc(&out, '}');
    json_t *j = json_loads(out.data, 0, NULL);
    assert_non_null(j);
    assert_null(json_object_get(j, "uptime"));
    assert_null(json_object_get(j, "load1"));
    json_decref(j);
    buf_release(&out);
    proc_state_release(&st);
}

/* Found by fuzz_collector: a rate of 1.47e19 (counters from a fuzzed
 * /proc/diskstats) was cast to an integer before the range was checked. */
static void test_json_numbers_huge_and_odd(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    json_put_num(&b, 1.4757395258967641e19);
    buf_putc(&b, ',');
    json_put_num(&b, -9.3e18);
    buf_putc(&b, ',');
    json_put_num(&b, 42);
    buf_putc(&b, ',');
    json_put_num(&b, 0.125);
    buf_putc(&b, ',');
    json_put_num(&b, NAN);
    assert_string_equal(b.data, "14757395258967640064.00,-9300000000000000000.00,42,0.12,null");
    buf_release(&b);
}

static void test_meminfo_no_swap_no_available(void **state)
{
    (void)state;
    struct mem_info m;
    assert_int_equal(proc_read_meminfo(FX "noswap", &m), 0);
    assert_int_equal(m.total, 2048000LL * 1024);
    assert_int_equal(m.swap_total, 0);
    /* no MemAvailable: free + buffers + cached */
    assert_int_equal(m.available, (512000LL + 100000 + 300000) * 1024);
    assert_int_equal(proc_read_meminfo(FX "basic", &m), 0);
    assert_true(m.available > 0 && m.available <= m.total);
}

static void test_diskstats_partitions_and_loops_skipped(void **state)
{
    (void)state;
    struct dev_counters *d;
    size_t n;
    assert_int_equal(proc_read_diskstats(FX "basic", &d, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(d[0].name, "vda");
    assert_string_equal(d[1].name, "nvme0n1");
    assert_int_equal(d[0].c[0], 1009854ULL * 512);
    assert_int_equal(d[0].c[1], 10911560ULL * 512);
    free(d);
}

static void test_netdev_long_names_and_glued_colon(void **state)
{
    (void)state;
    struct dev_counters *d;
    size_t n;
    assert_int_equal(proc_read_netdev(FX "longnames", &d, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(d[0].name, "veth1234567abcd");
    assert_string_equal(d[1].name, "br-0123456789ab");
    assert_int_equal(d[1].c[0], 300);
    assert_int_equal(d[1].c[1], 400);
    assert_int_equal(d[2].c[0], 18446744073709551615ULL);
    free(d);
    assert_int_equal(proc_read_netdev(FX "basic", &d, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(d[1].errs[0], 2);
    assert_int_equal(d[1].errs[1], 1);
    free(d);
}

static void test_filesystems_skip_pseudo_and_duplicates(void **state)
{
    (void)state;
    struct fs_usage *f;
    size_t n;
    assert_int_equal(proc_read_filesystems(FX "basic", &f, &n), 0);
    /* "/" and the escaped "/mnt/with space"; proc, tmpfs, overlay, cgroup2
     * and the second mount of /dev/vda1 are left out */
    assert_int_equal(n, 2);
    assert_string_equal(f[0].mount, "/");
    assert_string_equal(f[1].mount, "/mnt/with space");
    assert_true(f[0].total > 0);
    free(f);
    assert_true(proc_pseudo_fs("cgroup2"));
    assert_false(proc_pseudo_fs("ext4"));
}

static void test_process_count(void **state)
{
    (void)state;
    long n = -1;
    assert_int_equal(proc_count_processes(FX "basic", &n), 0);
    assert_int_equal(n, 2);
}

/* A sample must always be valid JSON: what is missing is left out. */
static json_t *sample_json(const char *root, struct proc_state *st, int64_t t)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_puts(&b, "{\"ts\":1");
    struct buf p;
    buf_init(&p, 1 << 20);
    proc_sample(root, st, t, &p);
    if (p.len) {
        buf_putc(&b, ',');
        buf_append(&b, p.data, p.len);
    }
    buf_putc(&b, '}');
    json_error_t e;
    json_t *j = json_loads(b.data, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, b.data);
    buf_release(&b);
    buf_release(&p);
    return j;
}

static void test_missing_and_odd_files_never_crash(void **state)
{
    (void)state;
    struct proc_state st = {0};
    json_t *j = sample_json(FX "empty", &st, 1000);
    assert_int_equal(json_object_size(j), 1); /* only ts */
    json_decref(j);
    proc_state_release(&st);
    j = sample_json(FX "odd", &st, 1000);
    assert_null(json_object_get(j, "cpu"));
    assert_null(json_object_get(j, "mem"));
    assert_null(json_object_get(j, "load1"));
    assert_int_equal(json_array_size(json_object_get(j, "net")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "disks")), 0);
    json_decref(j);
    j = sample_json("/nonexistent/root", &st, 2000);
    json_decref(j);
    proc_state_release(&st);
}

static void test_disk_vanishing_between_samples(void **state)
{
    (void)state;
    struct proc_state st = {0};
    json_t *a = sample_json(FX "vanish1", &st, 1000);
    assert_int_equal(json_array_size(json_object_get(a, "disks")), 2);
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(a, "disks"), 0), "read_bps")));
    json_t *b = sample_json(FX "vanish2", &st, 3000);
    json_t *disks = json_object_get(b, "disks");
    assert_int_equal(json_array_size(disks), 1);
    /* (300 - 100) sectors * 512 bytes over 2 s */
    assert_int_equal((int)json_number_value(json_object_get(json_array_get(disks, 0), "read_bps")), 51200);
    assert_int_equal((int)json_number_value(json_object_get(json_object_get(b, "io_total"), "write_bps")),
                     102400);
    /* and back: a disk that appears has no rate yet, never a bogus one */
    json_t *c = sample_json(FX "vanish1", &st, 5000);
    json_t *sdb = json_array_get(json_object_get(c, "disks"), 1);
    assert_true(json_is_null(json_object_get(sdb, "read_bps")));
    /* sda went backwards (counter reset): no rate */
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(c, "disks"), 0), "read_bps")));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    proc_state_release(&st);
}

static void test_json_strings_escaped(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    json_put_str(&b, "a\"b\\c\n\x01\xc3\xa9\xff");
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9?\"");
    buf_reset(&b);
    json_put_num(&b, NAN);
    assert_string_equal(b.data, "null");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat_basic_and_many_cores),
        cmocka_unit_test(test_stat_cores_without_total),
        cmocka_unit_test(test_absurd_numbers_left_out),
        cmocka_unit_test(test_json_numbers_huge_and_odd),
        cmocka_unit_test(test_meminfo_no_swap_no_available),
        cmocka_unit_test(test_diskstats_partitions_and_loops_skipped),
        cmocka_unit_test(test_netdev_long_names_and_glued_colon),
        cmocka_unit_test(test_filesystems_skip_pseudo_and_duplicates),
        cmocka_unit_test(test_process_count),
        cmocka_unit_test(test_missing_and_odd_files_never_crash),
        cmocka_unit_test(test_disk_vanishing_between_samples),
        cmocka_unit_test(test_json_strings_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
