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

/* Escapes control characters and backslashes so one call is one line. */
static void put_escaped(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            buf_printf(b, "\\x%02x", c);
        else
            buf_putc(b, (char)c);
    }
}

void log_write(enum log_level level, const char *msg, const char *fields_fmt, ...)
{
    if ((int)level < log_min_level)
        return;
    char ts[40], tmp[2048];
    time_format_rfc3339(time_now_us(), ts, sizeof ts);

    struct buf line;
    buf_init(&line, 8192);
    buf_printf(&line, "%s level=%s msg=\"", ts, level_names[level]);
    put_escaped(&line, msg, strlen(msg));
    buf_putc(&line, '"');
    if (fields_fmt && *fields_fmt) {
        va_list ap;
        va_start(ap, fields_fmt);
        int n = vsnprintf(tmp, sizeof tmp, fields_fmt, ap);
        va_end(ap);
        if (n > 0) {
            buf_putc(&line, ' ');
            put_escaped(&line, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
        }
    }
    buf_putc(&line, '\n');
    /* One write(2) per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line.data, line.len);
    (void)w;
    buf_release(&line);
}
