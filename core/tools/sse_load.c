/*
 * sse-load: load and misbehaviour for GET /api/v1/events, without the
 * daemon's code (a client only: epoll, raw sockets, chunked decoding).
 *
 *   sse-load bench PORT STREAMS EVENTS RATE [DAEMON_PID]
 *       Opens STREAMS streams, then POSTs EVENTS annotations at RATE per
 *       second (message "bench <i> <send time in µs>") and measures, for each
 *       stream and event, the time from sending the POST to reading the
 *       event. It reads until every stream has every published event, or
 *       no stream has received one for 10 s (stalled), 120 s at most after
 *       the last POST. Prints one JSON line: streams, connected, expected
 *       (connected × annotations the core accepted), delivered, p50_ms,
 *       p99_ms, max_ms, resyncs, posts_failed (POSTs not answered 201),
 *       stalled (streams short of events when reading stopped), and with
 *       DAEMON_PID the daemon's RSS before the streams (rss_idle_kb) and
 *       with them open (rss_streams_kb).
 *   sse-load slow PORT WAIT_MS
 *       One stream from a socket with a tiny receive buffer that reads
 *       nothing for WAIT_MS, then reads until the server ends it (30 s at
 *       most). Prints {"bytes","events","last_event","last_data","ended"}.
 *
 * SBX_TOKEN, when set, is sent as `Authorization: Bearer …`; SSE_LOAD_DEBUG=1
 * prints, after a bench, which events each stream missed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;
static const char *token;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static int connect_to(int rcvbuf, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static int request_text(char *out, size_t n, const char *method, const char *path, const char *body)
{
    char auth[600] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    if (body)
        return snprintf(out, n,
                        "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                        method, path, auth, strlen(body), body);
    return snprintf(out, n, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n",
                    method, path, auth);
}

/* ---- a stream: HTTP head, chunked body, SSE lines ------------------------- */

enum { ST_HEAD, ST_SIZE, ST_DATA, ST_DATA_CRLF, ST_DONE };

struct stream {
    int fd;
    int state;
    bool connected, ok, ended;
    size_t chunk_left;
    char line[8192];
    size_t line_len;
    char size_line[40];
    size_t size_len;
    char last_data[512];
    char head[2048];
    size_t head_len;
    char event[64];
    int events;
    long long last_id;
    int gaps;
    bool resync;
};

static int n_events;
static int64_t *send_us;  /* per event, when its POST was sent */
static int32_t *lat_ms10; /* per stream × event, latency in 0.1 ms, -1 = not received */
static int n_streams;
static bool *post_ok; /* per event: the core answered 201 */
static int posts_ok, posts_failed;
static bool posts_done;    /* the publisher's counters are final */
static size_t matched;     /* latency slots filled, all streams */
static int64_t matched_at; /* when the last one was filled */

static void on_line(struct stream *s, int idx, const char *l, int64_t t)
{
    if (strncmp(l, "id: ", 4) == 0) {
        long long id = strtoll(l + 4, NULL, 10);
        if (s->last_id && id != s->last_id + 1) {
            s->gaps++;
            if (getenv("SSE_LOAD_DEBUG"))
                fprintf(stderr, "stream %d: id %lld after %lld\n", idx, id, s->last_id);
        }
        s->last_id = id;
        return;
    }
    if (strncmp(l, "event: ", 7) == 0) {
        snprintf(s->event, sizeof s->event, "%s", l + 7);
        if (strcmp(s->event, "resync") == 0)
            s->resync = true;
        return;
    }
    if (strncmp(l, "data: ", 6) != 0)
        return;
    s->events++;
    snprintf(s->last_data, sizeof s->last_data, "%s", l + 6);
    const char *m = strstr(l, "\"message\":\"bench ");
    if (!m || !lat_ms10) {
        if (getenv("SSE_LOAD_DEBUG") && lat_ms10)
            fprintf(stderr, "stream %d: unparsed data: %.200s\n", idx, l);
        return;
    }
    int i = (int)strtol(m + 17, NULL, 10);
    int64_t sent = i >= 0 && i < n_events ? __atomic_load_n(&send_us[i], __ATOMIC_SEQ_CST) : 0;
    if (!sent) {
        if (getenv("SSE_LOAD_DEBUG"))
            fprintf(stderr, "stream %d: event %d not sent yet?\n", idx, i);
        return;
    }
    int64_t d = (t - sent) / 100;
    if (lat_ms10[(size_t)idx * n_events + i] < 0) {
        lat_ms10[(size_t)idx * n_events + i] = (int32_t)(d > INT32_MAX ? INT32_MAX : d);
        matched++;
        matched_at = t;
    }
}

static void body_bytes(struct stream *s, int idx, const char *p, size_t n, int64_t t)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\n') {
            s->line[s->line_len] = '\0';
            on_line(s, idx, s->line, t);
            s->line_len = 0;
        } else if (s->line_len < sizeof s->line - 1) {
            s->line[s->line_len++] = c;
        }
    }
}

/* Feeds raw socket bytes through the HTTP head and chunked decoding. */
static void feed(struct stream *s, int idx, const char *p, size_t n, int64_t t)
{
    size_t i = 0;
    while (i < n && s->state != ST_DONE) {
        if (s->state == ST_HEAD) {
            if (s->head_len < sizeof s->head - 1)
                s->head[s->head_len++] = p[i];
            s->head[s->head_len] = '\0';
            i++;
            if (s->head_len >= 4 && strcmp(s->head + s->head_len - 4, "\r\n\r\n") == 0) {
                s->ok = strncmp(s->head, "HTTP/1.1 200", 12) == 0;
                s->state = ST_SIZE;
                s->line_len = 0;
                if (!s->ok)
                    s->state = ST_DONE;
            }
        } else if (s->state == ST_SIZE) {
            char c = p[i++];
            if (c == '\n') {
                s->size_line[s->size_len] = '\0';
                s->chunk_left = strtoul(s->size_line, NULL, 16);
                s->size_len = 0;
                s->state = s->chunk_left ? ST_DATA : ST_DONE;
            } else if (c != '\r' && s->size_len < sizeof s->size_line - 1) {
                s->size_line[s->size_len++] = c;
            }
        } else if (s->state == ST_DATA) {
            size_t k = n - i < s->chunk_left ? n - i : s->chunk_left;
            body_bytes(s, idx, p + i, k, t);
            i += k;
            s->chunk_left -= k;
            if (!s->chunk_left)
                s->state = ST_DATA_CRLF;
        } else if (s->state == ST_DATA_CRLF) {
            if (p[i++] == '\n')
                s->state = ST_SIZE;
        }
    }
}

/* ---- publisher -------------------------------------------------------------- */

static int rate;

static void *publisher(void *arg)
{
    (void)arg;
    int64_t start = now_us();
    for (int i = 0; i < n_events; i++) {
        int64_t due = start + (int64_t)i * 1000000 / rate;
        int64_t wait = due - now_us();
        if (wait > 0)
            usleep((useconds_t)wait);
        char body[128], req[1024], resp[512];
        int fd = connect_to(0, false);
        if (fd < 0) {
            __atomic_add_fetch(&posts_failed, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        __atomic_store_n(&send_us[i], now_us(), __ATOMIC_SEQ_CST);
        snprintf(body, sizeof body, "{\"message\":\"bench %d %lld\"}", i, (long long)send_us[i]);
        int n = request_text(req, sizeof req, "POST", "/api/v1/annotations", body);
        if (write(fd, req, (size_t)n) != n)
            fprintf(stderr, "post %d: short write\n", i);
        /* The status line is in the first read: Connection: close, small answer. */
        ssize_t got = read(fd, resp, sizeof resp - 1);
        bool created = got >= 12 && strncmp(resp, "HTTP/1.1 201", 12) == 0;
        while (got > 0)
            got = read(fd, resp, sizeof resp);
        close(fd);
        post_ok[i] = created;
        __atomic_add_fetch(created ? &posts_ok : &posts_failed, 1, __ATOMIC_SEQ_CST);
    }
    __atomic_store_n(&posts_done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int bench(int streams, int events, int per_second, int pid)
{
    n_streams = streams;
    n_events = events;
    rate = per_second > 0 ? per_second : 100;
    send_us = calloc((size_t)events, sizeof *send_us);
    post_ok = calloc((size_t)events, sizeof *post_ok);
    lat_ms10 = malloc((size_t)streams * (size_t)events * sizeof *lat_ms10);
    memset(lat_ms10, 0xff, (size_t)streams * (size_t)events * sizeof *lat_ms10);
    struct stream *ss = calloc((size_t)streams, sizeof *ss);
    long rss_idle = pid ? rss_kb(pid) : -1;

    int ep = epoll_create1(EPOLL_CLOEXEC);
    int opened = 0, connected = 0;
    char req[1024];
    int reqlen = request_text(req, sizeof req, "GET", "/api/v1/events", NULL);
    struct epoll_event evs[256];
    char buf[65536];
    int64_t deadline = now_us() + 60 * 1000000LL;
    /* Connect in waves so the listen backlog never overflows. */
    while ((connected < streams) && now_us() < deadline) {
        while (opened < streams && opened - connected < 256) {
            struct stream *s = &ss[opened];
            s->fd = connect_to(0, true);
            if (s->fd < 0) {
                fprintf(stderr, "connect %d: %s\n", opened, strerror(errno));
                streams = opened;
                break;
            }
            struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)opened};
            epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e);
            opened++;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        int64_t t = now_us();
        for (int k = 0; k < n; k++) {
            struct stream *s = &ss[evs[k].data.u32];
            if ((evs[k].events & EPOLLOUT) && !s->connected) {
                s->connected = true;
                if (write(s->fd, req, (size_t)reqlen) != reqlen)
                    s->ended = true;
                struct epoll_event e = {.events = EPOLLIN, .data.u32 = evs[k].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(s->fd, buf, sizeof buf);
                if (r > 0)
                    feed(s, (int)evs[k].data.u32, buf, (size_t)r, t);
                else if (r == 0 || errno != EAGAIN) {
                    s->ended = true;
                    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
                }
            }
        }
        connected = 0;
        for (int i = 0; i < opened; i++)
            connected += ss[i].ok || ss[i].ended;
    }
    int ok = 0;
    for (int i = 0; i < streams; i++)
        ok += ss[i].ok && !ss[i].ended;
    usleep(500000);
    long rss_streams = pid ? rss_kb(pid) : -1;

    pthread_t pub;
    pthread_create(&pub, NULL, publisher, NULL);
    /* Read until complete, or stalled: 10 s without a new event on any stream
     * once the publisher is done; 120 s after the last POST at most. */
    int64_t done_at = 0;
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 100);
        int64_t t = now_us();
        for (int k = 0; k < n; k++) {
            struct stream *s = &ss[evs[k].data.u32];
            ssize_t r = read(s->fd, buf, sizeof buf);
            if (r > 0)
                feed(s, (int)evs[k].data.u32, buf, (size_t)r,
                     now_us()); /* after the read: never before the send */
            else if (r == 0 || errno != EAGAIN) {
                s->ended = true;
                epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
            }
        }
        if (!__atomic_load_n(&posts_done, __ATOMIC_SEQ_CST))
            continue;
        if (!done_at)
            done_at = t;
        if (matched >= (size_t)ok * (size_t)posts_ok)
            break;
        int64_t since = matched_at > done_at ? matched_at : done_at;
        if (t - since > 10 * 1000000LL || t - done_at > 120 * 1000000LL)
            break;
    }
    pthread_join(pub, NULL);
    size_t total = (size_t)streams * (size_t)events, got = 0;
    int32_t *lat = malloc(total * sizeof *lat);
    for (size_t i = 0; i < total; i++)
        if (lat_ms10[i] >= 0 && post_ok[i % (size_t)events])
            lat[got++] = lat_ms10[i];
    qsort(lat, got, sizeof *lat, cmp_i32);
    int resyncs = 0, stalled = 0;
    for (int i = 0; i < streams; i++) {
        resyncs += ss[i].resync;
        int have = 0;
        for (int e = 0; e < events; e++)
            have += post_ok[e] && lat_ms10[(size_t)i * events + e] >= 0;
        stalled += ss[i].ok && !ss[i].resync && have < posts_ok;
    }
    if (getenv("SSE_LOAD_DEBUG")) {
        for (int e = 0; e < events; e++) {
            int miss = 0;
            for (int i = 0; i < streams; i++)
                miss += ss[i].ok && post_ok[e] && lat_ms10[(size_t)i * events + e] < 0;
            if (miss)
                fprintf(stderr, "event %d: missing on %d streams (sent %lld)\n", e, miss,
                        (long long)send_us[e]);
        }
        int ended = 0;
        for (int i = 0; i < streams; i++)
            ended += ss[i].ended;
        fprintf(stderr, "streams ended: %d\n", ended);
        for (int i = 0; i < streams; i++) {
            int have = 0;
            for (int e = 0; e < events; e++)
                have += lat_ms10[(size_t)i * events + e] >= 0;
            if (have != events)
                fprintf(stderr, "stream %d: data lines %d, matched %d, last id %lld, gaps %d\n", i,
                        ss[i].events, have, ss[i].last_id, ss[i].gaps);
        }
    }
    printf(
        "{\"streams\":%d,\"connected\":%d,\"expected\":%zu,\"delivered\":%zu,\"p50_ms\":%.1f,\"p99_ms\":%.1f,"
        "\"max_ms\":%.1f,\"resyncs\":%d,\"posts_failed\":%d,\"stalled\":%d,\"rss_idle_kb\":%ld,"
        "\"rss_streams_kb\":%ld}\n",
        streams, ok, (size_t)ok * (size_t)posts_ok, got, got ? lat[got / 2] / 10.0 : -1.0,
        got ? lat[(size_t)((double)got * 0.99)] / 10.0 : -1.0, got ? lat[got - 1] / 10.0 : -1.0, resyncs,
        posts_failed, stalled, rss_idle, rss_streams);
    for (int i = 0; i < opened; i++)
        close(ss[i].fd);
    close(ep);
    free(lat);
    free(ss);
    free(lat_ms10);
    free(send_us);
    free(post_ok);
    return 0;
}

static int slow(int wait_ms)
{
    struct stream s = {0};
    s.fd = connect_to(2048, false);
    if (s.fd < 0) {
        perror("connect");
        return 1;
    }
    char req[1024], buf[4096];
    int n = request_text(req, sizeof req, "GET", "/api/v1/events", NULL);
    if (write(s.fd, req, (size_t)n) != n)
        return 1;
    if (wait_ms > 0) {
        usleep((useconds_t)wait_ms * 1000);
    } else {
        /* until a line on stdin: the caller says when to start reading */
        printf("connected\n");
        fflush(stdout);
        char go[16];
        if (!fgets(go, sizeof go, stdin))
            return 1;
    }
    struct timeval tv = {.tv_sec = 1};
    setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t bytes = 0;
    int64_t deadline = now_us() + 20 * 1000000LL;
    while (now_us() < deadline) {
        ssize_t r = read(s.fd, buf, sizeof buf);
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0) {
            s.ended = r == 0;
            break;
        }
        bytes += (size_t)r;
        feed(&s, 0, buf, (size_t)r, now_us());
    }
    if (s.state == ST_DONE)
        s.ended = true;
    printf("{\"bytes\":%zu,\"events\":%d,\"last_event\":\"%s\",\"last_data\":%s%s%s,\"ended\":%s}\n", bytes,
           s.events, s.event, s.last_data[0] == '{' ? "" : "\"", s.last_data[0] ? s.last_data : "",
           s.last_data[0] == '{' ? "" : "\"", s.ended ? "true" : "false");
    close(s.fd);
    return 0;
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    token = getenv("SBX_TOKEN");
    if (argc >= 6 && strcmp(argv[1], "bench") == 0) {
        port = (int)strtol(argv[2], NULL, 10);
        return bench((int)strtol(argv[3], NULL, 10), (int)strtol(argv[4], NULL, 10),
                     (int)strtol(argv[5], NULL, 10), argc > 6 ? (int)strtol(argv[6], NULL, 10) : 0);
    }
    if (argc >= 4 && strcmp(argv[1], "slow") == 0) {
        port = (int)strtol(argv[2], NULL, 10);
        return slow((int)strtol(argv[3], NULL, 10));
    }
    fprintf(stderr, "usage: sse-load bench PORT STREAMS EVENTS RATE [DAEMON_PID]\n"
                    "       sse-load slow PORT WAIT_MS\n");
    return 2;
}
