/*
 * /proc readers. Files are read whole into a small stack buffer (the
 * biggest, /proc/stat on a many-core machine, is a few KiB per 100 cores) and
 * parsed line by line; a line that does not parse is skipped.
 */
#include "collector.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define FILE_MAX (256 * 1024)

/* Reads root+path into b (NUL-terminated). */
static int slurp(const char *root, const char *path, struct buf *b)
{
    char full[1024];
    snprintf(full, sizeof full, "%s%s", root ? root : "", path);
    FILE *f = fopen(full, "re");
    if (!f)
        return -1;
    buf_init(b, FILE_MAX);
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(b, chunk, n)) {
            rc = -1;
            break;
        }
    fclose(f);
    if (rc)
        buf_release(b);
    return rc;
}

/* Next line of s (modifies s); NULL at the end. */
static char *next_line(char **s)
{
    if (!*s || !**s)
        return NULL;
    char *line = *s, *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *s = nl + 1;
    } else {
        *s = line + strlen(line);
    }
    return line;
}

static bool parse_cpu_line(const char *rest, struct cpu_times *t)
{
    unsigned long long v[10] = {0};
    int n = sscanf(rest, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    if (n < 4)
        return false;
    /* user nice system idle iowait irq softirq steal (guest is inside user) */
    uint64_t idle = v[3] + (n > 4 ? v[4] : 0), total = 0;
    for (int i = 0; i < n && i < 8; i++)
        total += v[i];
    t->total = total;
    t->busy = total - idle;
    return true;
}

int proc_read_stat(const char *root, struct cpu_times *total, struct cpu_times **cores, size_t *n_cores)
{
    struct buf b;
    *cores = NULL;
    *n_cores = 0;
    if (slurp(root, "/proc/stat", &b))
        return -1;
    bool have_total = false;
    size_t cap = 0;
    char *s = b.data, *line;
    while ((line = next_line(&s))) {
        if (strncmp(line, "cpu", 3) != 0)
            continue;
        if (line[3] == ' ') {
            have_total = parse_cpu_line(line + 4, total);
            continue;
        }
        char *end;
        unsigned long idx = strtoul(line + 3, &end, 10);
        if (end == line + 3 || *end != ' ' || idx > 65535)
            continue;
        struct cpu_times t;
        if (!parse_cpu_line(end + 1, &t))
            continue;
        if (*n_cores == cap) {
            cap = cap ? cap * 2 : 8;
            struct cpu_times *g = realloc(*cores, cap * sizeof *g);
            if (!g)
                break;
            *cores = g;
        }
        (*cores)[(*n_cores)++] = t;
    }
    buf_release(&b);
    if (!have_total) {
        /* Per-core lines without a usable total: nothing is measured, and
         * nothing is handed back (found by fuzz_collector: a leak a sample). */
        free(*cores);
        *cores = NULL;
        *n_cores = 0;
        return -1;
    }
    return 0;
}

int proc_read_meminfo(const char *root, struct mem_info *out)
{
    struct buf b;
    out->total = out->available = out->swap_total = out->swap_free = -1;
    if (slurp(root, "/proc/meminfo", &b))
        return -1;
    int64_t free_kb = -1, buffers = 0, cached = 0;
    char *s = b.data, *line;
    while ((line = next_line(&s))) {
        char key[64];
        long long kb;
        /* kb beyond what fits in bytes is garbage, not memory. */
        if (sscanf(line, "%63[^:]: %lld", key, &kb) != 2 || kb < 0 || kb > INT64_MAX / 4096)
            continue;
        int64_t bytes = kb * 1024;
        if (!strcmp(key, "MemTotal"))
            out->total = bytes;
        else if (!strcmp(key, "MemAvailable"))
            out->available = bytes;
        else if (!strcmp(key, "MemFree"))
            free_kb = bytes;
        else if (!strcmp(key, "Buffers"))
            buffers = bytes;
        else if (!strcmp(key, "Cached"))
            cached = bytes;
        else if (!strcmp(key, "SwapTotal"))
            out->swap_total = bytes;
        else if (!strcmp(key, "SwapFree"))
            out->swap_free = bytes;
    }
    buf_release(&b);
    /* Kernels before 3.14 have no MemAvailable. */
    if (out->available < 0 && free_kb >= 0)
        out->available = free_kb + buffers + cached;
    return out->total >= 0 ? 0 : -1;
}

int proc_read_loadavg(const char *root, double load[3])
{
    struct buf b;
    if (slurp(root, "/proc/loadavg", &b))
        return -1;
    int n = sscanf(b.data, "%lf %lf %lf", &load[0], &load[1], &load[2]);
    buf_release(&b);
    /* Printed with %f into JSON: nan, inf or absurd values are left out. */
    for (int i = 0; i < n; i++)
        if (!(load[i] >= 0 && load[i] < 1e9))
            return -1;
    return n == 3 ? 0 : -1;
}

int proc_read_uptime(const char *root, double *uptime)
{
    struct buf b;
    if (slurp(root, "/proc/uptime", &b))
        return -1;
    int n = sscanf(b.data, "%lf", uptime);
    buf_release(&b);
    /* Converted to an integer: nan, inf or out of range would be undefined
     * (found by fuzz_collector). */
    return n == 1 && *uptime >= 0 && *uptime < 1e15 ? 0 : -1;
}

int proc_count_processes(const char *root, long *count)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/proc", root ? root : "");
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *p = e->d_name;
        if (!*p)
            continue;
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == '\0')
            n++;
    }
    closedir(d);
    *count = n;
    return 0;
}

static struct dev_counters *dev_push(struct dev_counters **arr, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        struct dev_counters *g = realloc(*arr, c * sizeof *g);
        if (!g)
            return NULL;
        *arr = g;
        *cap = c;
    }
    struct dev_counters *d = &(*arr)[(*n)++];
    memset(d, 0, sizeof *d);
    return d;
}

/* sda1 of sda, nvme0n1p1 of nvme0n1, mmcblk0p1 of mmcblk0. */
static bool is_partition_of(const char *part, const char *disk)
{
    size_t n = strlen(disk);
    if (strncmp(part, disk, n) != 0 || part[n] == '\0')
        return false;
    const char *p = part + n;
    if (*p == 'p' && isdigit((unsigned char)disk[n - 1]))
        p++;
    if (!*p)
        return false;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

int proc_read_diskstats(const char *root, struct dev_counters **out, size_t *n)
{
    struct buf b;
    *out = NULL;
    *n = 0;
    if (slurp(root, "/proc/diskstats", &b))
        return -1;
    size_t cap = 0;
    char *s = b.data, *line;
    while ((line = next_line(&s))) {
        unsigned major, minor;
        char name[64];
        unsigned long long rd, rd_merged, rd_sectors, rd_ms, wr, wr_merged, wr_sectors;
        if (sscanf(line, " %u %u %63s %llu %llu %llu %llu %llu %llu %llu", &major, &minor, name, &rd,
                   &rd_merged, &rd_sectors, &rd_ms, &wr, &wr_merged, &wr_sectors) != 10)
            continue;
        if (!strncmp(name, "loop", 4) || !strncmp(name, "ram", 3) || !strncmp(name, "zram", 4))
            continue;
        struct dev_counters *d = dev_push(out, n, &cap);
        if (!d)
            break;
        sb_strlcpy(d->name, name, sizeof d->name);
        d->c[0] = rd_sectors * 512; /* diskstats sectors are always 512 bytes */
        d->c[1] = wr_sectors * 512;
    }
    buf_release(&b);
    /* Drop partitions whose disk is listed: the disk already counts them. */
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        bool part = false;
        for (size_t j = 0; j < *n && !part; j++)
            part = i != j && is_partition_of((*out)[i].name, (*out)[j].name);
        if (!part)
            (*out)[w++] = (*out)[i];
    }
    *n = w;
    return 0;
}

int proc_read_netdev(const char *root, struct dev_counters **out, size_t *n)
{
    struct buf b;
    *out = NULL;
    *n = 0;
    if (slurp(root, "/proc/net/dev", &b))
        return -1;
    size_t cap = 0;
    char *s = b.data, *line;
    while ((line = next_line(&s))) {
        /* "  eth0: 123 …" — old kernels glue the number to the colon. */
        char *colon = strchr(line, ':');
        if (!colon || strchr(line, '|'))
            continue;
        *colon = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        unsigned long long v[16];
        int k = sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]);
        if (k < 12 || !*line)
            continue;
        struct dev_counters *d = dev_push(out, n, &cap);
        if (!d)
            break;
        sb_strlcpy(d->name, line, sizeof d->name);
        d->c[0] = v[0]; /* rx bytes */
        d->c[2] = v[1]; /* rx packets */
        d->errs[0] = v[2];
        d->c[1] = v[8]; /* tx bytes */
        d->c[3] = v[9]; /* tx packets */
        d->errs[1] = v[10];
    }
    buf_release(&b);
    return 0;
}

bool proc_pseudo_fs(const char *type)
{
    static const char *const pseudo[] = {
        "proc",       "sysfs",     "tmpfs",    "devtmpfs",    "devpts",     "cgroup",     "cgroup2",
        "securityfs", "pstore",    "bpf",      "debugfs",     "tracefs",    "mqueue",     "hugetlbfs",
        "configfs",   "fusectl",   "autofs",   "binfmt_misc", "rpc_pipefs", "nsfs",       "ramfs",
        "efivarfs",   "selinuxfs", "squashfs", "overlay",     "aufs",       "fuse.lxcfs", "fuse.gvfsd-fuse",
        "nfsd",       "rootfs",    "tracefs",  "shm",         NULL};
    for (int i = 0; pseudo[i]; i++)
        if (strcmp(type, pseudo[i]) == 0)
            return true;
    return false;
}

/* /proc/mounts escapes space, tab, newline and backslash as \ooo. */
static void unescape_mount(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
            r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

int proc_read_filesystems(const char *root, struct fs_usage **out, size_t *n)
{
    struct buf b;
    *out = NULL;
    *n = 0;
    if (slurp(root, "/proc/self/mounts", &b) && slurp(root, "/proc/mounts", &b))
        return -1;
    size_t cap = 0;
    char seen[64][128];
    size_t n_seen = 0;
    char *s = b.data, *line;
    while ((line = next_line(&s))) {
        char dev[128], mnt[256], type[32];
        if (sscanf(line, "%127s %255s %31s", dev, mnt, type) != 3)
            continue;
        if (proc_pseudo_fs(type) || (dev[0] != '/' && strcmp(type, "zfs") && strncmp(type, "nfs", 3) &&
                                     strcmp(type, "cifs") && strcmp(type, "btrfs")))
            continue;
        unescape_mount(mnt);
        /* Docker's bind mounts repeat the host's devices: count each once. */
        bool dup = false;
        for (size_t i = 0; i < n_seen && !dup; i++)
            dup = strcmp(seen[i], dev) == 0;
        if (dup)
            continue;
        char full[1024];
        snprintf(full, sizeof full, "%s%s", root ? root : "", mnt);
        struct statvfs sv;
        if (statvfs(full, &sv) != 0 || sv.f_blocks == 0)
            continue;
        if (n_seen < 64)
            sb_strlcpy(seen[n_seen++], dev, sizeof seen[0]);
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            struct fs_usage *g = realloc(*out, cap * sizeof *g);
            if (!g)
                break;
            *out = g;
        }
        struct fs_usage *f = &(*out)[(*n)++];
        sb_strlcpy(f->mount, mnt, sizeof f->mount);
        sb_strlcpy(f->type, type, sizeof f->type);
        f->total = (uint64_t)sv.f_blocks * sv.f_frsize;
        f->used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
    }
    buf_release(&b);
    return 0;
}

void json_put_str(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)*p);
        } else if (*p < 0x20) {
            buf_printf(b, "\\u%04x", *p);
        } else if (*p >= 0x80) {
            /* Keep valid UTF-8, replace stray bytes: the core parses strictly. */
            int len = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
            bool ok = len > 0;
            for (int i = 1; ok && i < len; i++)
                ok = (p[i] & 0xc0) == 0x80;
            if (ok) {
                buf_append(b, p, (size_t)len);
                p += len - 1;
            } else {
                buf_putc(b, '?');
            }
        } else {
            buf_putc(b, (char)*p);
        }
    }
    buf_putc(b, '"');
}

void json_put_num(struct buf *b, double v)
{
    if (!isfinite(v))
        buf_puts(b, "null");
    else if (fabs(v) < 9e15 && v == (double)(int64_t)v) /* range first: the cast of 1.5e19 is undefined */
        buf_printf(b, "%lld", (long long)v);
    else
        buf_printf(b, "%.2f", v);
}

static double pct(const struct cpu_times *now, const struct cpu_times *prev)
{
    if (now->total <= prev->total || now->busy < prev->busy)
        return NAN;
    double p = 100.0 * (double)(now->busy - prev->busy) / (double)(now->total - prev->total);
    return p > 100 ? 100 : p;
}

static const struct dev_counters *find_dev(const struct dev_counters *arr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(arr[i].name, name) == 0)
            return &arr[i];
    return NULL;
}

/* Counter delta per second; NaN when the device is new or the counter went back. */
static double rate(uint64_t now, uint64_t prev, double secs)
{
    return now >= prev && secs > 0 ? (double)(now - prev) / secs : NAN;
}

void proc_state_release(struct proc_state *st)
{
    free(st->cores);
    free(st->disks);
    free(st->ifaces);
    memset(st, 0, sizeof *st);
}

void proc_sample(const char *root, struct proc_state *st, int64_t now_ms, struct buf *out)
{
    double secs = st->have ? (double)(now_ms - st->t_ms) / 1000.0 : 0;
    bool first = true;
#define SEP() (first ? (void)(first = false) : (void)buf_putc(out, ','))

    struct cpu_times cpu, *cores = NULL;
    size_t n_cores = 0;
    if (proc_read_stat(root, &cpu, &cores, &n_cores) == 0) {
        SEP();
        buf_puts(out, "\"cpu\":{\"total\":");
        json_put_num(out, st->have ? pct(&cpu, &st->cpu) : NAN);
        buf_puts(out, ",\"cores\":[");
        for (size_t i = 0; i < n_cores; i++) {
            if (i)
                buf_putc(out, ',');
            json_put_num(out, st->have && i < st->n_cores ? pct(&cores[i], &st->cores[i]) : NAN);
        }
        buf_puts(out, "]}");
        st->cpu = cpu;
        free(st->cores);
        st->cores = cores;
        st->n_cores = n_cores;
    }

    struct mem_info mi;
    if (proc_read_meminfo(root, &mi) == 0) {
        SEP();
        buf_printf(out, "\"mem\":{\"total\":%lld,\"available\":%lld,\"used\":%lld}", (long long)mi.total,
                   (long long)(mi.available >= 0 ? mi.available : 0),
                   (long long)(mi.available >= 0 ? mi.total - mi.available : 0));
        int64_t st_ = mi.swap_total > 0 ? mi.swap_total : 0, sf = mi.swap_free > 0 ? mi.swap_free : 0;
        buf_printf(out, ",\"swap\":{\"total\":%lld,\"used\":%lld}", (long long)st_,
                   (long long)(st_ >= sf ? st_ - sf : 0));
    }
    double load[3];
    if (proc_read_loadavg(root, load) == 0) {
        SEP();
        buf_printf(out, "\"load1\":%.2f,\"load5\":%.2f,\"load15\":%.2f", load[0], load[1], load[2]);
    }
    double up;
    if (proc_read_uptime(root, &up) == 0) {
        SEP();
        buf_printf(out, "\"uptime\":%lld", (long long)up);
    }
    long procs;
    if (proc_count_processes(root, &procs) == 0) {
        SEP();
        buf_printf(out, "\"procs\":%ld", procs);
    }

    struct fs_usage *fs;
    size_t n_fs;
    if (proc_read_filesystems(root, &fs, &n_fs) == 0) {
        uint64_t total = 0, used = 0;
        SEP();
        buf_puts(out, "\"fs\":[");
        for (size_t i = 0; i < n_fs; i++) {
            buf_puts(out, i ? ",{\"mount\":" : "{\"mount\":");
            json_put_str(out, fs[i].mount);
            buf_puts(out, ",\"type\":");
            json_put_str(out, fs[i].type);
            buf_printf(out, ",\"total\":%llu,\"used\":%llu}", (unsigned long long)fs[i].total,
                       (unsigned long long)fs[i].used);
            total += fs[i].total;
            used += fs[i].used;
        }
        buf_printf(out, "],\"disk_total\":{\"total\":%llu,\"used\":%llu}", (unsigned long long)total,
                   (unsigned long long)used);
        free(fs);
    }

    struct dev_counters *disks;
    size_t n_disks;
    if (proc_read_diskstats(root, &disks, &n_disks) == 0) {
        double rd = 0, wr = 0;
        SEP();
        buf_puts(out, "\"disks\":[");
        for (size_t i = 0; i < n_disks; i++) {
            const struct dev_counters *p = st->have ? find_dev(st->disks, st->n_disks, disks[i].name) : NULL;
            double r = p ? rate(disks[i].c[0], p->c[0], secs) : NAN,
                   w = p ? rate(disks[i].c[1], p->c[1], secs) : NAN;
            buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
            json_put_str(out, disks[i].name);
            buf_puts(out, ",\"read_bps\":");
            json_put_num(out, r);
            buf_puts(out, ",\"write_bps\":");
            json_put_num(out, w);
            buf_putc(out, '}');
            rd += isfinite(r) ? r : 0;
            wr += isfinite(w) ? w : 0;
        }
        buf_puts(out, "],\"io_total\":{\"read_bps\":");
        json_put_num(out, st->have ? rd : NAN);
        buf_puts(out, ",\"write_bps\":");
        json_put_num(out, st->have ? wr : NAN);
        buf_putc(out, '}');
        free(st->disks);
        st->disks = disks;
        st->n_disks = n_disks;
    }

    struct dev_counters *ifs;
    size_t n_ifs;
    if (proc_read_netdev(root, &ifs, &n_ifs) == 0) {
        double rx = 0, tx = 0;
        SEP();
        buf_puts(out, "\"net\":[");
        for (size_t i = 0; i < n_ifs; i++) {
            const struct dev_counters *p = st->have ? find_dev(st->ifaces, st->n_ifaces, ifs[i].name) : NULL;
            double v[4];
            for (int k = 0; k < 4; k++)
                v[k] = p ? rate(ifs[i].c[k], p->c[k], secs) : NAN;
            buf_puts(out, i ? ",{\"iface\":" : "{\"iface\":");
            json_put_str(out, ifs[i].name);
            static const char *const keys[4] = {"rx_bps", "tx_bps", "rx_pps", "tx_pps"};
            for (int k = 0; k < 4; k++) {
                buf_printf(out, ",\"%s\":", keys[k]);
                json_put_num(out, v[k]);
            }
            buf_printf(out, ",\"rx_errs\":%llu,\"tx_errs\":%llu}", (unsigned long long)ifs[i].errs[0],
                       (unsigned long long)ifs[i].errs[1]);
            if (strcmp(ifs[i].name, "lo") != 0) {
                rx += isfinite(v[0]) ? v[0] : 0;
                tx += isfinite(v[1]) ? v[1] : 0;
            }
        }
        buf_puts(out, "],\"net_total\":{\"rx_bps\":");
        json_put_num(out, st->have ? rx : NAN);
        buf_puts(out, ",\"tx_bps\":");
        json_put_num(out, st->have ? tx : NAN);
        buf_putc(out, '}');
        free(st->ifaces);
        st->ifaces = ifs;
        st->n_ifaces = n_ifs;
    }
#undef SEP
    st->have = true;
    st->t_ms = now_ms;
}
