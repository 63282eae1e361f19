/*
 * Container consoles: `docker exec` with a TTY, started attached through an
 * HTTP Upgrade (LIBRARY-NOTES.md "TTY exec"): POST /exec/{id}/start with
 * `Connection: Upgrade`, `Upgrade: tcp` answers 101 and the socket then
 * carries the raw terminal stream both ways (no frame headers with a TTY).
 * libcurl has no use for a connection that stops being HTTP, so this one
 * request is written by hand on a unix socket of its own; the engine's
 * socket is the local one or the node's SSH bridge, the same for both.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HEAD_MAX 8192

static int deadline_io(int fd, bool out, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = out ? POLLOUT : POLLIN};
    int64_t left = deadline - time_mono_ms();
    return left > 0 && poll(&p, 1, (int)left) == 1 ? 0 : -1;
}

int docker_console_open(const char *socket_path, const char *container, int cols, int rows, int *fd_out,
                        char exec_id[80], struct buf *early, struct sb_err *err)
{
    *fd_out = -1;
    exec_id[0] = '\0';
    char prefix[16];
    int rc = docker_api_prefix(socket_path, prefix, sizeof prefix, err);
    if (rc)
        return rc;
    /* bash when the image has it, else sh */
    json_t *body = json_pack("{s:b, s:b, s:b, s:b, s:[s], s:[sss]}", "AttachStdin", 1, "AttachStdout", 1,
                             "AttachStderr", 1, "Tty", 1, "Env", "TERM=xterm-256color", "Cmd", "/bin/sh",
                             "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi");
    char path[300];
    snprintf(path, sizeof path, "/containers/%s/exec", container);
    json_t *created = NULL;
    rc = docker_call(socket_path, "POST", path, body, 10000, &created, NULL, err);
    json_decref(body);
    if (rc)
        return rc;
    const char *id = json_string_value(json_object_get(created, "Id"));
    if (!id || strlen(id) >= 80) {
        json_decref(created);
        return sb_error(err, SB_EUPSTREAM, "the engine gave no exec id");
    }
    sb_strlcpy(exec_id, id, 80);
    json_decref(created);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    sb_strlcpy(sa.sun_path, socket_path, sizeof sa.sun_path);
    int64_t deadline = time_mono_ms() + 10000;
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) ||
        deadline_io(fd, true, deadline)) {
        if (fd >= 0)
            close(fd);
        return sb_error(err, SB_EUNAVAIL, "the engine is unreachable");
    }
    const char *start = "{\"Detach\":false,\"Tty\":true}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST %s/exec/%s/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                     "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %zu\r\n\r\n%s",
                     prefix, exec_id, strlen(start), start);
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, req + off, (size_t)(n - off));
        if (w < 0 && (errno == EAGAIN || errno == EINTR) && deadline_io(fd, true, deadline) == 0)
            continue;
        if (w <= 0) {
            close(fd);
            return sb_error(err, SB_EUNAVAIL, "the engine is unreachable");
        }
        off += (int)w;
    }
    char head[HEAD_MAX + 1];
    size_t hl = 0;
    char *end = NULL;
    while (!end) {
        if (hl == HEAD_MAX || deadline_io(fd, false, deadline)) {
            close(fd);
            return sb_error(err, SB_EUPSTREAM, "the engine did not start the console");
        }
        ssize_t r = read(fd, head + hl, HEAD_MAX - hl);
        if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) {
            close(fd);
            return sb_error(err, SB_EUPSTREAM, "the engine closed the console");
        }
        if (r > 0)
            hl += (size_t)r;
        head[hl] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    if (strncmp(head, "HTTP/1.1 101", 12) != 0 && strncmp(head, "HTTP/1.0 101", 12) != 0) {
        close(fd);
        char *eol = strstr(head, "\r\n");
        if (eol)
            *eol = '\0';
        return sb_error(err, SB_EUPSTREAM, "the engine refused the console: %.120s", head);
    }
    size_t rest = hl - (size_t)(end + 4 - head);
    if (rest)
        buf_append(early, end + 4, rest);
    *fd_out = fd;
    docker_console_resize(socket_path, exec_id, cols, rows, NULL);
    return 0;
}

int docker_console_resize(const char *socket_path, const char *exec_id, int cols, int rows,
                          struct sb_err *err)
{
    char path[200];
    snprintf(path, sizeof path, "/exec/%s/resize?h=%d&w=%d", exec_id, rows, cols);
    return docker_call(socket_path, "POST", path, NULL, 5000, NULL, NULL, err);
}
