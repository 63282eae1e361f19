/*
 * A minimal HTTP/1.1 client: one POST per connection, with connect, send
 * and receive bounded by a deadline. http:// or https:// (tls.c, BearSSL:
 * the core's certificate is verified or its key pinned). Batches are signed,
 * so their integrity does not depend on the transport; TLS keeps the
 * enrollment token and the figures private and the core authenticated.
 */
#include "collector.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESP_MAX (64 * 1024)

static char last_error[384];

const char *net_last_error(void)
{
    return last_error;
}

/* http[s]://host[:port][/prefix] into parts. */
static int parse_url(const char *url, bool *https, char *host, size_t hl, char *port, size_t pl, char *prefix,
                     size_t xl)
{
    size_t skip;
    if (strncmp(url, "http://", 7) == 0)
        skip = 7, *https = false;
    else if (strncmp(url, "https://", 8) == 0)
        skip = 8, *https = true;
    else
        return -1;
    const char *h = url + skip, *end = h + strcspn(h, "/");
    const char *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb)
            return -1;
        if ((size_t)(rb - h - 1) >= hl)
            return -1;
        memcpy(host, h + 1, (size_t)(rb - h - 1));
        host[rb - h - 1] = '\0';
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        size_t n = (size_t)((colon ? colon : end) - h);
        if (n == 0 || n >= hl)
            return -1;
        memcpy(host, h, n);
        host[n] = '\0';
    }
    if (colon) {
        size_t n = (size_t)(end - colon - 1);
        if (n == 0 || n >= pl)
            return -1;
        memcpy(port, colon + 1, n);
        port[n] = '\0';
    } else {
        sb_strlcpy(port, *https ? "443" : "80", pl);
    }
    sb_strlcpy(prefix, end, xl);
    size_t pn = strlen(prefix);
    if (pn && prefix[pn - 1] == '/')
        prefix[pn - 1] = '\0';
    return 0;
}

static int remaining(int64_t deadline)
{
    int64_t r = deadline - time_mono_ms();
    return r > 0 ? (int)r : 0;
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int r;
    do
        r = poll(&p, 1, remaining(deadline));
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

static int connect_to(const char *host, const char *port, int64_t deadline)
{
    /* A numeric address first: resolving a name loads the NSS modules,
     * about a tenth of the agent's resident memory, for good. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST},
                    *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0) {
        hints.ai_flags = 0;
        if (getaddrinfo(host, port, &hints, &res) != 0)
            return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
            int e = 0;
            socklen_t el = sizeof e;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
            r = e == 0 ? 0 : -1;
        }
        if (r != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline))
                return -1;
            continue;
        }
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int net_post(const char *base_url, const char *path, const char *extra_headers, const char *body, size_t len,
             int timeout_ms, struct buf *resp)
{
    char host[256], port[16], prefix[256];
    bool https;
    last_error[0] = '\0';
    if (parse_url(base_url, &https, host, sizeof host, port, sizeof port, prefix, sizeof prefix)) {
        snprintf(last_error, sizeof last_error, "not an http:// or https:// URL");
        return -1;
    }
    int64_t deadline = time_mono_ms() + timeout_ms;
    int fd = connect_to(host, port, deadline);
    if (fd < 0) {
        snprintf(last_error, sizeof last_error, "cannot connect to %s port %s", host, port);
        return -1;
    }
    struct buf head;
    buf_init(&head, 8192);
    buf_printf(&head,
               "POST %s%s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: serverbox-collector\r\n"
               "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
               prefix, path, host, port, len, extra_headers ? extra_headers : "");
    int status = -1;
    struct buf in;
    buf_init(&in, RESP_MAX);
    if (https) {
        if (tls_exchange(fd, host, head.data, head.len, body, len, deadline, &in, last_error,
                         sizeof last_error))
            goto out;
        goto answer;
    }
    if (send_all(fd, head.data, head.len, deadline) || send_all(fd, body, len, deadline))
        goto out;
    for (;;) {
        char chunk[4096];
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLIN, deadline))
                break;
            continue;
        }
        if (r <= 0)
            break;
        if (buf_append(&in, chunk, (size_t)r))
            break; /* an over-long answer: the status line is what matters */
    }
answer:
    if (strncmp(in.data, "HTTP/1.", 7) == 0 && in.len > 12)
        status = (int)strtol(in.data + 9, NULL, 10);
    if (resp) {
        char *b = strstr(in.data, "\r\n\r\n");
        buf_reset(resp);
        if (b)
            buf_puts(resp, b + 4);
    }
out:
    if (status < 0 && !last_error[0])
        snprintf(last_error, sizeof last_error, "no answer from %s port %s", host, port);
    close(fd);
    buf_release(&head);
    buf_release(&in);
    return status > 0 ? status : -1;
}
