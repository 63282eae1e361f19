/*
 * Recordings as asciicast v2: a header line, then one JSON array per event,
 * [seconds since start, "o" | "i" | "r" | "m", text]. Text must be UTF-8:
 * a sequence split between two reads waits for its end, and invalid bytes
 * become U+FFFD, so the file replays exactly the output for any UTF-8
 * program. Every byte written goes through SHA-256 as it is written; the
 * hash is what terminal.closed carries. At the size cap a marker event says
 * the recording stopped, and nothing more is written.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Length of the valid UTF-8 sequence at p (1..4), 0 when invalid, -1 when
 * it could still become valid with more bytes. */
static int utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    int len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -1;
        unsigned char b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
            return 0;
    }
    return len;
}

size_t term_utf8_complete(const unsigned char *p, size_t n)
{
    /* Only the last three bytes can start an unfinished sequence. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const unsigned char *q = p + n - back;
        if (*q < 0x80)
            break;
        if (*q >= 0xc0) {
            if (utf8_seq(q, back) == -1)
                return n - back;
            break;
        }
    }
    return n;
}

int term_json_string(struct buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    int rc = buf_putc(out, '"');
    size_t i = 0;
    while (i < n && rc == 0) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') {
                char e[3] = {'\\', (char)c, 0};
                rc = buf_puts(out, e);
            } else if (c == '\n')
                rc = buf_puts(out, "\\n");
            else if (c == '\r')
                rc = buf_puts(out, "\\r");
            else if (c == '\t')
                rc = buf_puts(out, "\\t");
            else if (c < 0x20 || c == 0x7f)
                rc = buf_printf(out, "\\u%04x", c);
            else
                rc = buf_putc(out, (char)c);
            i++;
            continue;
        }
        int len = utf8_seq(p + i, n - i);
        if (len > 0) {
            rc = buf_append(out, p + i, (size_t)len);
            i += (size_t)len;
        } else {
            rc = buf_puts(out, "\xef\xbf\xbd");
            i++;
        }
    }
    return rc ? rc : buf_putc(out, '"');
}

static void rec_write(struct term_recording *rec, const char *p, size_t n)
{
    if (!rec->f || rec->failed)
        return;
    if (fwrite(p, 1, n, rec->f) != n) {
        rec->failed = true;
        return;
    }
    crypto_hash_sha256_update(&rec->sha, (const unsigned char *)p, n);
    rec->bytes += n;
}

int term_recording_open(struct term_recording *rec, const char *path, int cols, int rows, const char *title,
                        uint64_t max, struct sb_err *err)
{
    memset(rec, 0, sizeof *rec);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb_error(err, SB_EINTERNAL, "cannot create the recording: %s", strerror(errno));
    rec->f = fdopen(fd, "w");
    if (!rec->f) {
        close(fd);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    crypto_hash_sha256_init(&rec->sha);
    rec->max = max;
    rec->start_us = time_now_us();
    struct buf h;
    buf_init(&h, 4096);
    buf_printf(&h,
               "{\"version\":2,\"width\":%d,\"height\":%d,\"timestamp\":%lld,"
               "\"env\":{\"TERM\":\"xterm-256color\"},\"title\":",
               cols, rows, (long long)(rec->start_us / 1000000));
    term_json_string(&h, title, strlen(title));
    buf_puts(&h, "}\n");
    rec_write(rec, h.data, h.len);
    buf_release(&h);
    return 0;
}

static void rec_line(struct term_recording *rec, char kind, const char *p, size_t n)
{
    if (!rec->f || rec->truncated || rec->failed)
        return;
    struct buf line;
    buf_init(&line, 0);
    double t = (double)(time_now_us() - rec->start_us) / 1e6;
    buf_printf(&line, "[%.6f, \"%c\", ", t, kind);
    term_json_string(&line, p, n);
    buf_puts(&line, "]\n");
    if (rec->bytes + line.len > rec->max) {
        rec->truncated = true;
        buf_reset(&line);
        buf_printf(&line, "[%.6f, \"m\", \"serverbox: recording stopped at its size cap of %llu bytes\"]\n",
                   t, (unsigned long long)rec->max);
    }
    rec_write(rec, line.data, line.len);
    buf_release(&line);
}

void term_recording_event(struct term_recording *rec, char kind, const char *p, size_t n)
{
    unsigned char *tail = kind == 'i' ? rec->itail : rec->tail;
    size_t *tail_len = kind == 'i' ? &rec->itail_len : &rec->tail_len;
    if (!rec->f || rec->truncated)
        return;
    /* Finish a sequence left over from the previous chunk first. */
    struct buf b;
    buf_init(&b, 0);
    buf_append(&b, tail, *tail_len);
    buf_append(&b, p, n);
    size_t ok = term_utf8_complete((const unsigned char *)b.data, b.len);
    *tail_len = b.len - ok;
    memcpy(tail, b.data + ok, *tail_len);
    if (ok)
        rec_line(rec, kind, b.data, ok);
    buf_release(&b);
}

void term_recording_resize(struct term_recording *rec, int cols, int rows)
{
    char s[32];
    snprintf(s, sizeof s, "%dx%d", cols, rows);
    rec_line(rec, 'r', s, strlen(s));
}

void term_recording_close(struct term_recording *rec, char sha256_hex[65])
{
    if (rec->tail_len)
        rec_line(rec, 'o', (const char *)rec->tail, rec->tail_len);
    rec->tail_len = 0;
    unsigned char h[32];
    if (rec->f) {
        if (fclose(rec->f) != 0)
            rec->failed = true;
        rec->f = NULL;
    }
    crypto_hash_sha256_final(&rec->sha, h);
    hex_encode(h, 32, sha256_hex);
}
