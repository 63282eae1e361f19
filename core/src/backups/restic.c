/*
 * Running restic (and pg_dump, pg_restore): posix_spawn with a clean
 * environment and every fd but the ones we hand over closed. The password
 * goes through a pipe restic reads as --password-file /dev/fd/3, so it is in
 * no argv (`ps`), no environment (/proc/<pid>/environ) and no file.
 *
 * stdin can be fed and stdout drained by threads (pg_dump | restic backup
 * --stdin, restic dump | pg_restore); otherwise stdout is split into lines
 * (--json progress) and kept. The caller's cancel hook is polled; on cancel
 * restic gets SIGINT (it removes its lock), then SIGKILL after 10 s.
 */
#include "backups.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX  ((size_t)8 << 20)
#define ERR_KEEP 16384

int backups_spawn(const char *const *argv, const char *const *env, int in_fd, int out_fd, int err_fd,
                  pid_t *pid, struct sb_err *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (err_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    else
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none); /* serve blocks SIGINT/SIGTERM in its threads */
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawnp(pid, argv[0], &fa, &at, (char *const *)argv, (char *const *)env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0)
        return sb_error(err, SB_EUNAVAIL, "cannot run %s: %s", argv[0], strerror(rc));
    return 0;
}

int backups_wait(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

void restic_result_release(struct restic_result *r)
{
    buf_release(&r->out);
    buf_release(&r->errtext);
}

struct pump {
    int (*fn)(void *ctx, int fd, struct sb_err *err);
    void *ctx;
    int fd;
    int rc;
    struct sb_err err;
};

static void *pump_main(void *arg)
{
    struct pump *p = arg;
    p->rc = p->fn(p->ctx, p->fd, &p->err);
    close(p->fd);
    return NULL;
}

static void keep_tail(struct buf *b, const char *data, size_t n)
{
    if (b->len + n > ERR_KEEP * 2)
        buf_consume(b, b->len > ERR_KEEP ? b->len - ERR_KEEP : b->len);
    buf_append(b, data, n < ERR_KEEP ? n : ERR_KEEP);
}

int restic_run(const struct restic_target *t, const char *const *args, const struct restic_io *io,
               struct restic_result *r, struct sb_err *err)
{
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    buf_init(&r->out, OUT_MAX);
    buf_init(&r->errtext, ERR_KEEP * 3);
    const char *argv[64];
    int n = 0;
    char sftp_opt[1200] = "";
    char cache_opt[1100] = "";
    argv[n++] = "restic";
    argv[n++] = "--repo";
    argv[n++] = t->repo;
    argv[n++] = "--password-file=/dev/fd/3";
    if (t->sftp_command) {
        snprintf(sftp_opt, sizeof sftp_opt, "sftp.command=%s", t->sftp_command);
        argv[n++] = "--option";
        argv[n++] = sftp_opt;
    }
    if (t->cache_dir) {
        snprintf(cache_opt, sizeof cache_opt, "--cache-dir=%s", t->cache_dir);
        argv[n++] = cache_opt;
    } else {
        argv[n++] = "--no-cache";
    }
    for (int i = 0; args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    int pw[2], in[2] = {-1, -1}, out[2], er[2];
    if (pipe2(pw, O_CLOEXEC))
        return sb_error(err, SB_EINTERNAL, "pipe: %s", strerror(errno));
    if (pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC) || (io && io->feed && pipe2(in, O_CLOEXEC))) {
        close(pw[0]);
        close(pw[1]);
        return sb_error(err, SB_EINTERNAL, "pipe: %s", strerror(errno));
    }
    /* fd 3 of the child is the password pipe: posix_spawn's dup2 can only
     * target it after the others, so hand it over through a fixed fd. */
    const char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
                         "LANG=C.UTF-8", "RESTIC_PROGRESS_FPS=2", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in[0] >= 0)
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, er[1], 2);
    posix_spawn_file_actions_adddup2(&fa, pw[0], 3);
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid;
    int src = posix_spawnp(&pid, "restic", &fa, &at, (char *const *)argv, (char *const *)env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pw[0]);
    close(out[1]);
    close(er[1]);
    if (in[0] >= 0)
        close(in[0]);
    if (src != 0) {
        close(pw[1]);
        close(out[0]);
        close(er[0]);
        if (in[1] >= 0)
            close(in[1]);
        return sb_error(err, SB_EUNAVAIL, "cannot run restic (is the Debian package restic installed?): %s",
                        strerror(src));
    }
    /* A password is far smaller than a pipe's buffer: this never blocks. */
    size_t plen = strlen(t->password);
    ssize_t w = write(pw[1], t->password, plen);
    (void)w;
    close(pw[1]);

    struct pump feed = {0}, drain = {0};
    pthread_t feed_th, drain_th;
    bool fed = false, drained = false;
    if (io && io->feed) {
        feed = (struct pump){.fn = io->feed, .ctx = io->ctx, .fd = in[1]};
        fed = pthread_create(&feed_th, NULL, pump_main, &feed) == 0;
        if (!fed)
            close(in[1]);
    }
    if (io && io->drain) {
        drain = (struct pump){.fn = io->drain, .ctx = io->ctx, .fd = out[0]};
        drained = pthread_create(&drain_th, NULL, pump_main, &drain) == 0;
        if (!drained) {
            close(out[0]);
        }
        out[0] = -1;
    }

    int64_t deadline = time_mono_ms() + (int64_t)(io && io->timeout_s > 0 ? io->timeout_s : 86400) * 1000;
    int64_t killed_at = 0;
    struct buf line;
    buf_init(&line, 1 << 20);
    int open_fds = (out[0] >= 0) + 1;
    while (open_fds > 0) {
        struct pollfd p[2];
        int np = 0;
        if (out[0] >= 0)
            p[np++] = (struct pollfd){.fd = out[0], .events = POLLIN};
        if (er[0] >= 0)
            p[np++] = (struct pollfd){.fd = er[0], .events = POLLIN};
        int pr = poll(p, (nfds_t)np, 250);
        bool stop = time_mono_ms() > deadline || (io && io->cancelled && io->cancelled(io->ctx));
        if (stop && !killed_at) {
            kill(-pid, SIGINT);
            killed_at = time_mono_ms();
        } else if (killed_at && time_mono_ms() - killed_at > 10000) {
            kill(-pid, SIGKILL);
        }
        if (pr <= 0)
            continue;
        for (int i = 0; i < np; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[16384];
            ssize_t got = read(p[i].fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                close(p[i].fd);
                if (p[i].fd == out[0])
                    out[0] = -1;
                else
                    er[0] = -1;
                open_fds--;
                continue;
            }
            if (p[i].fd == er[0]) {
                keep_tail(&r->errtext, chunk, (size_t)got);
                continue;
            }
            buf_append(&r->out, chunk, (size_t)got);
            for (ssize_t k = 0; k < got; k++) {
                if (chunk[k] != '\n') {
                    buf_putc(&line, chunk[k]);
                    continue;
                }
                if (io && io->line && line.len)
                    io->line(io->ctx, line.data);
                buf_reset(&line);
            }
        }
    }
    buf_release(&line);
    r->exit_code = backups_wait(pid);
    if (killed_at)
        r->exit_code = -1;
    if (fed) {
        pthread_join(feed_th, NULL);
        r->feed_rc = feed.rc;
        r->feed_err = feed.err;
    }
    if (drained) {
        pthread_join(drain_th, NULL);
        r->drain_rc = drain.rc;
        r->drain_err = drain.err;
    }
    if (killed_at)
        return sb_error(err, SB_ETIMEOUT, "restic was stopped (cancelled or past its time)");
    return 0;
}

void restic_error_line(const struct restic_result *r, char *out, size_t len)
{
    /* The last non-empty line of stderr. */
    const char *s = r->errtext.data;
    size_t n = r->errtext.len;
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    size_t start = n;
    while (start && s[start - 1] != '\n')
        start--;
    size_t l = n - start;
    if (l == 0) {
        snprintf(out, len, "restic exited %d", r->exit_code);
        return;
    }
    if (l >= len)
        l = len - 1;
    memcpy(out, s + start, l);
    out[l] = '\0';
}
