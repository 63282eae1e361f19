/* Unit tests for tunnels/: the node's public key check (only an ed25519
 * key re-encoded by the core reaches the file: options, second lines and
 * other key types are refused), the authorized_keys line, port picks, the
 * range parser, and the atomic write (mode, unchanged content not
 * rewritten). The cut is tested end to end by tests/1400. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tunnels/tunnels.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A real key made by ssh-keygen -t ed25519. */
static const char KEY[] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEoznndzQNPhFBlnHiFdUHR4fiZq2pJNGx5oZGdhCqrB";
static const char ID[] = "6f1c1a2e-3b4d-4c5e-8f70-112233445566";

static void test_key_check(void **state)
{
    (void)state;
    char out[TUNNELS_KEY_MAX];
    struct sb_err err = {0};
    assert_int_equal(tunnels_public_key_check(KEY, out, sizeof out, &err), 0);
    assert_string_equal(out, KEY);
    char with_comment[256];
    snprintf(with_comment, sizeof with_comment, "%s root@nat-box", KEY);
    assert_int_equal(tunnels_public_key_check(with_comment, out, sizeof out, &err), 0);
    assert_string_equal(out, KEY); /* the comment is dropped */

    char bad[512];
    const char *refused[] = {
        "",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== x",
        "command=\"/bin/sh\" ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIEoznndzQNPhFBlnHiFdUHR4fiZq2pJNGx5oZGdhCqrB",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEoznndzQNPhFBlnHiFdUHR4fiZq2pJNGx5oZGdhCqr", /* short */
        "ssh-ed25519 !!!!",
        "ssh-ed25519 ",
        /* an RSA blob labelled ed25519 */
        "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(tunnels_public_key_check(refused[i], out, sizeof out, &err), SB_EINVAL);
        assert_string_equal(err.field, "tunnel_public_key");
    }
    snprintf(bad, sizeof bad, "%s x\nrestrict,permitlisten=\"*:22\" %s", KEY, KEY);
    assert_int_equal(tunnels_public_key_check(bad, out, sizeof out, &err), SB_EINVAL);
    snprintf(bad, sizeof bad, "%s\tx", KEY);
    assert_int_equal(tunnels_public_key_check(bad, out, sizeof out, &err), SB_EINVAL);
}

static void test_line(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    struct sb_err err = {0};
    char keyc[256];
    snprintf(keyc, sizeof keyc, "%s some comment", KEY);
    assert_int_equal(tunnels_line(keyc, 42001, ID, &b, &err), 0);
    char want[512];
    snprintf(
        want, sizeof want,
        "restrict,port-forwarding,permitlisten=\"127.0.0.1:42001\",command=\"/bin/false\" %s sbx-node-%s\n",
        KEY, ID);
    assert_string_equal(b.data, want);
    assert_int_equal(tunnels_line(KEY, 0, ID, &b, &err), SB_EINVAL);
    assert_int_equal(tunnels_line(KEY, 42001, "x\nroot", &b, &err), SB_EINVAL);
    assert_int_equal(tunnels_line("ssh-rsa AAAA", 42001, ID, &b, &err), SB_EINVAL);
    buf_release(&b);
}

static void test_ports(void **state)
{
    (void)state;
    struct sb_err err = {0};
    int lo, hi, p;
    assert_int_equal(tunnels_range_parse("42000-42002", &lo, &hi, &err), 0);
    assert_int_equal(lo, 42000);
    assert_int_equal(hi, 42002);
    const char *bad[] = {"", "42000", "42002-42000", "80-90", "42000-70000", "42000-42002x", NULL};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(tunnels_range_parse(bad[i], &lo, &hi, &err), SB_EINVAL);
    int used[] = {42000, 42002};
    assert_int_equal(tunnels_port_pick(42000, 42002, used, 2, &p, &err), 0);
    assert_int_equal(p, 42001);
    int full[] = {42001, 42000, 42002};
    assert_int_equal(tunnels_port_pick(42000, 42002, full, 3, &p, &err), SB_ECONFLICT);
}

static void test_file_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/sbx-tunnels-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/authorized_keys", dir);
    struct sb_err err = {0};
    bool changed;
    mode_t old = umask(077);
    assert_int_equal(tunnels_file_write(path, "a\n", 2, &changed, &err), 0);
    umask(old);
    assert_true(changed);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    ino_t ino = st.st_ino;
    assert_int_equal(tunnels_file_write(path, "a\n", 2, &changed, &err), 0);
    assert_false(changed);
    assert_int_equal(tunnels_file_write(path, "b\nc\n", 4, &changed, &err), 0);
    assert_true(changed);
    assert_int_equal(stat(path, &st), 0);
    assert_int_not_equal(st.st_ino, ino); /* replaced by rename, never rewritten in place */
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(file_read_all(path, 100, &b, &err), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "b\nc\n", 4);
    buf_release(&b);
    /* Empty: no tunnel node. */
    assert_int_equal(tunnels_file_write(path, "", 0, &changed, &err), 0);
    assert_true(changed);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_check),
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_file_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
