#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int log_min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, level_names[i]) == 0)
            log_min_level = i;
}

/* A line is built in a fixed stack buffer: no allocation per line (this is
 * on every request's path) and nothing to free at thread exit. Over-long
 * lines are cut. */
struct line {
    char data[8192];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof l->data - 1 - l->len;
    if (n > room)
        n = room;
    memcpy(l->data + l->len, s, n);
    l->len += n;
}

/* Escapes control characters and backslashes so one call is one line;
 * runs of safe bytes are copied at once. */
static void put_escaped(struct line *l, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f && c != '\\')
            continue;
        char esc[5];
        put(l, s + run, i - run);
        snprintf(esc, sizeof esc, "\\x%02x", c);
        put(l, esc, 4);
        run = i + 1;
    }
    put(l, s + run, n - run);
}

/* The date and time part changes once a second: format it once per second
 * per thread. */
static void timestamp(char *out, size_t outlen)
{
    static __thread time_t cached_sec = -1;
    static __thread char cached[64];
    int64_t us = time_now_us();
    time_t sec = (time_t)(us / 1000000);
    if (sec != cached_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_sec = sec;
    }
    snprintf(out, outlen, "%s.%06ldZ", cached, (long)(us % 1000000));
}

void log_write(enum log_level level, const char *msg, const char *fields_fmt, ...)
{
    if ((int)level < log_min_level)
        return;
    struct line l;
    l.len = 0;
    char head[96], tmp[2048];
    timestamp(tmp, sizeof tmp);
    int hn = snprintf(head, sizeof head, "%s level=%s msg=\"", tmp, level_names[level]);
    put(&l, head, (size_t)hn);
    put_escaped(&l, msg, strlen(msg));
    put(&l, "\"", 1);
    if (fields_fmt && *fields_fmt) {
        va_list ap;
        va_start(ap, fields_fmt);
        int n = vsnprintf(tmp, sizeof tmp, fields_fmt, ap);
        va_end(ap);
        if (n > 0) {
            put(&l, " ", 1);
            put_escaped(&l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
        }
    }
    l.data[l.len++] = '\n';
    /* One write(2) per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, l.data, l.len);
    (void)w;
}
