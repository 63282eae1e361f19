/* Unit tests for ssh/: path checks, key generation (checked by ssh-keygen
 * and by logging in with the key), and, against a private sshd started with
 * scripts/sshd.sh, SFTP confinement (symlink and ".." escapes refused),
 * atomic replace with mode bits, size limits, and a direct-streamlocal
 * channel to a unix socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/crypto.h"
#include "ssh/ssh.h"
#include "util/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64];
static int port;
static char fingerprint[80];
static struct buf key, pub;

static int run(const char *cmd, char *out, size_t outlen)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t n = out ? fread(out, 1, outlen - 1, f) : 0;
    if (out)
        out[n] = '\0';
    return pclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0 || ssh_global_init() != 0)
        return -1;
    snprintf(dir, sizeof dir, "/tmp/sbx-unit-ssh-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cmd[1024], out[2048];
    snprintf(cmd, sizeof cmd, "scripts/sshd.sh start %s", dir);
    if (run(cmd, out, sizeof out) != 0)
        return -1;
    char *p = strstr(out, "SSHD_PORT=");
    char *f = strstr(out, "SSHD_FP=");
    if (!p || !f)
        return -1;
    port = (int)strtol(p + 10, NULL, 10);
    sscanf(f + 8, "%79s", fingerprint);
    /* A key made by the code under test, authorized on the server. */
    buf_init(&key, 0);
    buf_init(&pub, 0);
    struct sb_err err = {0};
    if (ssh_key_generate_ed25519("unit@test", &key, &pub, &err))
        return -1;
    snprintf(cmd, sizeof cmd, "%s/authorized_keys", dir);
    FILE *ak = fopen(cmd, "a");
    if (!ak)
        return -1;
    fprintf(ak, "%s\n", pub.data);
    fclose(ak);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/base/sub %s/outside && ln -s /etc %s/base/escape && "
             "ln -s /etc/passwd %s/base/link.txt && ln -s ../../outside %s/base/sub/up",
             dir, dir, dir, dir, dir);
    return run(cmd, NULL, 0) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "scripts/sshd.sh stop %s; rm -rf %s", dir, dir);
    run(cmd, NULL, 0);
    crypto_buf_wipe(&key);
    buf_release(&pub);
    ssh_global_cleanup();
    return 0;
}

static struct ssh_session *connect_test(void)
{
    struct ssh_target t = {.node_id = "unit",
                           .host = "127.0.0.1",
                           .port = port,
                           .user = "root",
                           .private_key = key.data,
                           .private_key_len = key.len,
                           .fingerprint = fingerprint};
    struct ssh_session *s = NULL;
    struct ssh_diag d;
    struct sb_err err = {0};
    int rc = ssh_connect(&t, 10000, &s, &d, &err);
    if (rc)
        fprintf(stderr, "connect: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return s;
}

static void test_path_check(void **state)
{
    (void)state;
    struct sb_err err = {0};
    const char *good[] = {"a.txt", "sub/a.txt", "a..b", ".env", "x/.y/z"};
    const char *bad[] = {"", "/etc/passwd", "..", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\nb", "a\\b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(ssh_path_check(good[i], &err), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ssh_path_check(bad[i], &err), SB_EINVAL);
        assert_string_equal(err.field, "path");
    }
}

static void test_generated_key(void **state)
{
    (void)state;
    char type[24];
    ssh_key_type(key.data, key.len, type, sizeof type);
    assert_string_equal(type, "ssh-ed25519");
    assert_non_null(strstr(key.data, "-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    /* ssh-keygen reads our format and derives the same public key. */
    char path[300], cmd[400], out[512];
    snprintf(path, sizeof path, "%s/genkey", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite(key.data, 1, key.len, f);
    fclose(f);
    chmod(path, 0600);
    snprintf(cmd, sizeof cmd, "ssh-keygen -y -f %s", path);
    assert_int_equal(run(cmd, out, sizeof out), 0);
    unlink(path);
    assert_memory_equal(out, pub.data, strlen("ssh-ed25519 ") + 68);
    ssh_key_type("-----BEGIN RSA PRIVATE KEY-----\nabc\n", 37, type, sizeof type);
    assert_string_equal(type, "ssh-rsa");
    ssh_key_type("garbage", 7, type, sizeof type);
    assert_string_equal(type, "");
    /* And it logs in (connect_test authenticates with it). */
    ssh_session_close(connect_test());
}

static void test_sftp_confinement(void **state)
{
    (void)state;
    struct ssh_session *s = connect_test();
    struct sb_err err = {0};
    char base[300], path[400];
    snprintf(base, sizeof base, "%s/base", dir);

    assert_int_equal(ssh_sftp_upload(s, base, "sub/a.txt", "hello", 5, 0640, 1024, &err), 0);
    snprintf(path, sizeof path, "%s/sub/a.txt", base);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_size, 5);
    /* Replacing an existing file is atomic (rename over it) and takes the new mode. */
    assert_int_equal(ssh_sftp_upload(s, base, "sub/a.txt", "bye!!!", 6, 0600, 1024, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 6);
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(ssh_sftp_download(s, base, "sub/a.txt", 1024, &out, &err), 0);
    assert_string_equal(out.data, "bye!!!");

    /* Escapes: text, a symlinked directory, a symlinked parent, a symlinked file. */
    const char *escapes[] = {"../outside/x", "escape/passwd-copy", "sub/up/x", "/etc/x"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_not_equal(ssh_sftp_upload(s, base, escapes[i], "x", 1, 0644, 1024, &err), 0);
        assert_string_equal(err.field, "path");
    }
    snprintf(path, sizeof path, "%s/outside/x", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_not_equal(ssh_sftp_upload(s, base, "link.txt", "x", 1, 0644, 1024, &err), 0);
    assert_int_not_equal(ssh_sftp_download(s, base, "link.txt", 1024, &out, &err), 0);
    assert_string_equal(err.field, "path");
    assert_int_not_equal(ssh_sftp_download(s, base, "escape/passwd", 1024, &out, &err), 0);
    assert_int_not_equal(ssh_sftp_download(s, base, "../outside", 1024, &out, &err), 0);

    /* Size limits both ways. */
    assert_int_equal(ssh_sftp_upload(s, base, "big", "0123456789", 10, 0644, 4, &err), SB_ETOOLARGE);
    assert_int_equal(ssh_sftp_download(s, base, "sub/a.txt", 3, &out, &err), SB_ETOOLARGE);
    /* A larger file crosses several SFTP chunks intact. */
    size_t n = 300000;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(ssh_sftp_upload(s, base, "large.bin", data, n, 0644, n, &err), 0);
    assert_int_equal(ssh_sftp_download(s, base, "large.bin", n, &out, &err), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, data, n);
    free(data);
    buf_release(&out);
    ssh_session_close(s);
}

static void test_streamlocal(void **state)
{
    (void)state;
    char sock[300];
    snprintf(sock, sizeof sock, "%s/echo.sock", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    sb_strlcpy(sa.sun_path, sock, sizeof sa.sun_path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    struct ssh_session *s = connect_test();
    struct sb_err err = {0};
    LIBSSH2_CHANNEL *ch = ssh_channel_open_streamlocal(s, sock, &err);
    assert_non_null(ch);
    int cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    assert_int_equal(libssh2_channel_write(ch, "ping", 4), 4);
    char got[8] = {0};
    assert_int_equal(read(cfd, got, 4), 4);
    assert_string_equal(got, "ping");
    assert_int_equal(write(cfd, "pong", 4), 4);
    memset(got, 0, sizeof got);
    assert_int_equal(libssh2_channel_read(ch, got, 4), 4);
    assert_string_equal(got, "pong");
    libssh2_channel_free(ch);
    close(cfd);
    close(lfd);
    unlink(sock);
    assert_null(ssh_channel_open_streamlocal(s, "/nonexistent/x.sock", &err));
    ssh_session_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_check),
        cmocka_unit_test(test_generated_key),
        cmocka_unit_test(test_sftp_confinement),
        cmocka_unit_test(test_streamlocal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
