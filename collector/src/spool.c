/*
 * The spool: one file per batch, named by its sequence number (20 digits,
 * so names sort as numbers). Every batch is written here first and removed
 * once a core accepted it, so a crash or an outage loses nothing within the
 * bound; beyond it the oldest batches are dropped (and counted).
 */
#include "collector.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH_FILE_MAX (8 << 20)

static void path_of(const struct spool *sp, int64_t seq, char *out, size_t len)
{
    snprintf(out, len, "%s/%020lld.json", sp->dir, (long long)seq);
}

int spool_open(struct spool *sp, const char *dir, size_t max_batches)
{
    memset(sp, 0, sizeof *sp);
    sb_strlcpy(sp->dir, dir, sizeof sp->dir);
    sp->max_batches = max_batches ? max_batches : 1;
    sp->lo = 1;
    sp->hi = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    bool any = false;
    while ((e = readdir(d))) {
        char *end;
        long long seq = strtoll(e->d_name, &end, 10);
        if (end == e->d_name || strcmp(end, ".json") != 0 || seq <= 0)
            continue;
        if (!any || seq < sp->lo)
            sp->lo = seq;
        if (!any || seq > sp->hi)
            sp->hi = seq;
        any = true;
    }
    closedir(d);
    return 0;
}

void spool_pop(struct spool *sp)
{
    if (sp->lo > sp->hi)
        return;
    char p[600];
    path_of(sp, sp->lo, p, sizeof p);
    unlink(p);
    sp->lo++;
}

int spool_put(struct spool *sp, int64_t seq, const char *data, size_t len)
{
    char p[600], tmp[620];
    path_of(sp, seq, p, sizeof p);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    close(fd);
    if (rename(tmp, p) != 0) {
        unlink(tmp);
        return -1;
    }
    if (sp->lo > sp->hi)
        sp->lo = seq;
    sp->hi = seq;
    while (spool_count(sp) > sp->max_batches) {
        spool_pop(sp);
        sp->dropped++;
    }
    return 0;
}

int spool_peek(struct spool *sp, int64_t *seq, struct buf *out)
{
    while (sp->lo <= sp->hi) {
        char p[600];
        path_of(sp, sp->lo, p, sizeof p);
        struct sb_err err = {0};
        buf_reset(out);
        if (file_read_all(p, BATCH_FILE_MAX, out, &err) == 0) {
            *seq = sp->lo;
            return 0;
        }
        /* A hole (removed by hand, or a crash before rename): skip it. */
        sp->lo++;
    }
    return -1;
}
