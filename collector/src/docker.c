/*
 * Per-container figures from the Docker Engine API over its unix socket.
 * HTTP/1.0 requests, so the engine answers without chunking and closes the
 * connection; `stats?stream=false&one-shot=true` answers at once, and CPU
 * and I/O rates come from the previous reading kept here.
 */
#include "collector.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DOCKER_TIMEOUT_MS     2000
#define DOCKER_MAX_BODY       (4 << 20)
#define DOCKER_MAX_CONTAINERS 500

struct docker_prev {
    char id[72];
    int64_t t_ms;
    uint64_t cpu, system, rx, tx, blk_r, blk_w;
    bool seen;
};

static int wait_fd(int fd, short ev, int ms)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

/* GET path; returns the parsed JSON body or NULL. */
static json_t *docker_get(const char *sock, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path)
        return NULL;
    memcpy(sa.sun_path, sock, strlen(sock) + 1); /* length checked above */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    json_t *out = NULL;
    struct buf b;
    buf_init(&b, DOCKER_MAX_BODY);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: docker\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || n <= 0 || (size_t)n >= sizeof req ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    for (;;) {
        char chunk[8192];
        if (wait_fd(fd, POLLIN, DOCKER_TIMEOUT_MS))
            goto out;
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        if (buf_append(&b, chunk, (size_t)r))
            goto out;
    }
    char *body = strstr(b.data, "\r\n\r\n");
    if (strncmp(b.data, "HTTP/1.", 7) != 0 || strtol(b.data + 9, NULL, 10) != 200 || !body)
        goto out;
    out = json_loads(body + 4, JSON_DISABLE_EOF_CHECK, NULL);
out:
    close(fd);
    buf_release(&b);
    return out;
}

static uint64_t u64(json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static struct docker_prev *prev_for(struct docker_state *st, const char *id)
{
    for (size_t i = 0; i < st->n_prev; i++)
        if (strcmp(st->prev[i].id, id) == 0)
            return &st->prev[i];
    struct docker_prev *g = realloc(st->prev, (st->n_prev + 1) * sizeof *g);
    if (!g)
        return NULL;
    st->prev = g;
    struct docker_prev *p = &st->prev[st->n_prev++];
    memset(p, 0, sizeof *p);
    sb_strlcpy(p->id, id, sizeof p->id);
    return p;
}

static double drate(uint64_t now, uint64_t prev, double secs)
{
    return now >= prev && secs > 0 ? (double)(now - prev) / secs : NAN;
}

void docker_sample(const char *sock, struct docker_state *st, int64_t now_ms, struct buf *out)
{
    if (!sock || !*sock || access(sock, R_OK | W_OK) != 0)
        return;
    json_t *list = docker_get(sock, "/v1.41/containers/json");
    if (!json_is_array(list)) {
        if (!st->warned)
            log_warn("docker socket did not answer; containers are left out", "socket=%s", sock);
        st->warned = true;
        json_decref(list);
        return;
    }
    st->warned = false;
    for (size_t i = 0; i < st->n_prev; i++)
        st->prev[i].seen = false;
    buf_puts(out, ",\"containers\":[");
    size_t i, written = 0;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "Id"));
        if (!id || strlen(id) > 64 || written >= DOCKER_MAX_CONTAINERS)
            continue;
        const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
        if (name && *name == '/')
            name++;
        char path[160];
        snprintf(path, sizeof path, "/v1.41/containers/%s/stats?stream=false&one-shot=true", id);
        json_t *s = docker_get(sock, path);
        if (!json_is_object(s)) {
            json_decref(s);
            continue;
        }
        json_t *cpu = json_object_get(s, "cpu_stats");
        uint64_t cpu_total = u64(json_object_get(json_object_get(cpu, "cpu_usage"), "total_usage"));
        uint64_t system = u64(json_object_get(cpu, "system_cpu_usage"));
        uint64_t ncpu = u64(json_object_get(cpu, "online_cpus"));
        json_t *mem = json_object_get(s, "memory_stats");
        uint64_t usage = u64(json_object_get(mem, "usage")), limit = u64(json_object_get(mem, "limit"));
        json_t *mstats = json_object_get(mem, "stats");
        /* What `docker stats` shows: usage minus the page cache that can go. */
        uint64_t inactive = u64(json_object_get(mstats, "inactive_file"));
        if (!inactive)
            inactive = u64(json_object_get(mstats, "total_inactive_file"));
        uint64_t used = usage > inactive ? usage - inactive : usage;
        uint64_t rx = 0, tx = 0, br = 0, bw = 0;
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(s, "networks"), k, v)
        {
            rx += u64(json_object_get(v, "rx_bytes"));
            tx += u64(json_object_get(v, "tx_bytes"));
        }
        size_t j;
        json_array_foreach(json_object_get(json_object_get(s, "blkio_stats"), "io_service_bytes_recursive"),
                           j, v)
        {
            const char *op = json_string_value(json_object_get(v, "op"));
            if (op && !strcasecmp(op, "read"))
                br += u64(json_object_get(v, "value"));
            else if (op && !strcasecmp(op, "write"))
                bw += u64(json_object_get(v, "value"));
        }
        json_decref(s);

        struct docker_prev *p = prev_for(st, id);
        double secs = p && p->t_ms ? (double)(now_ms - p->t_ms) / 1000.0 : 0;
        double cpu_pct = NAN;
        if (p && p->t_ms && system > p->system && cpu_total >= p->cpu)
            cpu_pct = 100.0 * (double)(cpu_total - p->cpu) / (double)(system - p->system) *
                      (double)(ncpu ? ncpu : 1);
        buf_puts(out, written ? ",{\"id\":" : "{\"id\":");
        json_put_str(out, id);
        buf_puts(out, ",\"name\":");
        json_put_str(out, name ? name : "");
        buf_puts(out, ",\"cpu\":");
        json_put_num(out, cpu_pct);
        buf_printf(out, ",\"mem\":%llu,\"mem_limit\":%llu", (unsigned long long)used,
                   (unsigned long long)limit);
        buf_puts(out, ",\"net_rx_bps\":");
        json_put_num(out, p && secs > 0 ? drate(rx, p->rx, secs) : NAN);
        buf_puts(out, ",\"net_tx_bps\":");
        json_put_num(out, p && secs > 0 ? drate(tx, p->tx, secs) : NAN);
        buf_puts(out, ",\"blk_read_bps\":");
        json_put_num(out, p && secs > 0 ? drate(br, p->blk_r, secs) : NAN);
        buf_puts(out, ",\"blk_write_bps\":");
        json_put_num(out, p && secs > 0 ? drate(bw, p->blk_w, secs) : NAN);
        buf_putc(out, '}');
        written++;
        if (p) {
            *p = (struct docker_prev){.t_ms = now_ms,
                                      .cpu = cpu_total,
                                      .system = system,
                                      .rx = rx,
                                      .tx = tx,
                                      .blk_r = br,
                                      .blk_w = bw,
                                      .seen = true};
            sb_strlcpy(p->id, id, sizeof p->id);
        }
    }
    buf_putc(out, ']');
    json_decref(list);
    /* Forget containers that are gone. */
    size_t w = 0;
    for (size_t r = 0; r < st->n_prev; r++)
        if (st->prev[r].seen)
            st->prev[w++] = st->prev[r];
    st->n_prev = w;
}

void docker_state_release(struct docker_state *st)
{
    free(st->prev);
    memset(st, 0, sizeof *st);
}
