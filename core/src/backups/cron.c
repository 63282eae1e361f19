/*
 * Pure parts: cron schedules, retention flags, a tiny ustar writer/reader.
 * Unit-tested by core/tests/test_backups.c.
 */
#include "backups.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int number(const char **p, int lo, const char *const *names, int n_names, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        int digits = 0;
        while (isdigit((unsigned char)*s) && digits < 4) {
            v = v * 10 + (*s++ - '0');
            digits++;
        }
        if (isdigit((unsigned char)*s))
            return -1;
        *out = (int)v;
        *p = s;
        return 0;
    }
    for (int i = 0; names && i < n_names; i++)
        if (strncasecmp(s, names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = i + lo;
            *p = s + 3;
            return 0;
        }
    return -1;
}

/* One field into bits (bit v for value v); lo..hi inclusive. */
static int field(const char *text, int lo, int hi, const char *const *names, int n_names, uint64_t *bits,
                 bool *star)
{
    *bits = 0;
    *star = strcmp(text, "*") == 0 || strncmp(text, "*/", 2) == 0;
    const char *p = text;
    for (;;) {
        int a, b, step = 1;
        if (*p == '*') {
            a = lo;
            b = hi;
            p++;
        } else {
            if (number(&p, lo, names, n_names, &a))
                return -1;
            b = a;
            if (*p == '-') {
                p++;
                if (number(&p, lo, names, n_names, &b))
                    return -1;
            }
        }
        if (*p == '/') {
            p++;
            if (number(&p, 0, NULL, 0, &step) || step < 1 || step > hi)
                return -1;
            if (b == a && text[0] != '*')
                b = hi;
        }
        if (a < lo || b > hi || a > b)
            return -1;
        for (int v = a; v <= b; v += step)
            *bits |= (uint64_t)1 << v;
        if (*p == ',') {
            p++;
            continue;
        }
        return *p ? -1 : 0;
    }
}

int backups_cron_parse(const char *text, struct backups_cron *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text || strlen(text) > 120)
        return sb_field_error(err, "schedule", "schedule is a cron expression of at most 120 characters");
    static const struct {
        const char *name, *expr;
    } macros[] = {{"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
                  {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
                  {"@annually", "0 0 1 1 *"}};
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
        if (strcmp(text, macros[i].name) == 0)
            text = macros[i].expr;
    if (text[0] == '@')
        return sb_field_error(err, "schedule",
                              "schedule: unknown macro %.20s (@hourly, @daily, @weekly, "
                              "@monthly, @yearly)",
                              text);
    char copy[128], *f[6];
    sb_strlcpy(copy, text, sizeof copy);
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == 5)
            return sb_field_error(err, "schedule",
                                  "schedule has more than 5 fields (minute hour "
                                  "day-of-month month day-of-week)");
        f[n++] = t;
    }
    if (n != 5)
        return sb_field_error(err, "schedule",
                              "schedule needs 5 fields (minute hour day-of-month month day-of-week), got %d",
                              n);
    static const char *const what[] = {"minute", "hour", "day of month", "month", "day of week"};
    static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
    uint64_t bits[5];
    bool star[5];
    for (int i = 0; i < 5; i++)
        if (field(f[i], lo[i], hi[i],
                  i == 3   ? months
                  : i == 4 ? days
                           : NULL,
                  i == 3   ? 12
                  : i == 4 ? 7
                           : 0,
                  &bits[i], &star[i]))
            return sb_field_error(err, "schedule",
                                  "schedule: bad %s field '%.20s' (%d-%d, *, lists, ranges, "
                                  "steps)",
                                  what[i], f[i], lo[i], hi[i]);
    if (bits[4] & (1u << 7))
        bits[4] = (bits[4] | 1u) & 0x7f;
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    out->dow = (uint8_t)bits[4];
    out->dom_star = star[2];
    out->dow_star = star[4];
    return 0;
}

static bool day_matches(const struct backups_cron *c, const struct tm *t)
{
    bool dom = (c->dom >> t->tm_mday) & 1, dow = (c->dow >> t->tm_wday) & 1;
    if (c->dom_star || c->dow_star)
        return dom && dow;
    return dom || dow;
}

int64_t backups_cron_next(const struct backups_cron *c, int64_t after_us)
{
    time_t t = (time_t)(after_us / 1000000);
    t = t - t % 60 + 60; /* the next whole minute */
    time_t end = t + (time_t)5 * 366 * 86400;
    while (t < end) {
        struct tm tm;
        gmtime_r(&t, &tm);
        if (!((c->month >> (tm.tm_mon + 1)) & 1) || !day_matches(c, &tm)) {
            t += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60); /* next midnight */
            continue;
        }
        if (!((c->hour >> tm.tm_hour) & 1)) {
            t += 3600 - tm.tm_min * 60;
            continue;
        }
        if (!((c->minute >> tm.tm_min) & 1)) {
            t += 60;
            continue;
        }
        return (int64_t)t * 1000000;
    }
    return 0;
}

/* ---- retention ------------------------------------------------------------ */

static const char *const keep_keys[] = {"daily", "weekly", "monthly"};
static const char *const keep_flags[] = {"--keep-daily", "--keep-weekly", "--keep-monthly"};

int backups_retention_check(json_t *r, struct sb_err *err)
{
    if (!r || json_is_null(r))
        return 0;
    if (!json_is_object(r))
        return sb_field_error(err, "retention", "retention is an object {daily, weekly, monthly}");
    const char *k;
    json_t *v;
    json_object_foreach(r, k, v)
    {
        bool known = false;
        for (int i = 0; i < 3; i++)
            known = known || strcmp(k, keep_keys[i]) == 0;
        if (!known)
            return sb_field_error(err, "retention", "retention.%.20s: unknown (daily, weekly, monthly)", k);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000)
            return sb_field_error(err, "retention", "retention.%s is a whole number from 0 to 1000", k);
    }
    return 0;
}

int backups_retention_args(json_t *r, const char **argv, char store[3][24])
{
    int n = 0;
    for (int i = 0; i < 3; i++) {
        json_int_t v = json_integer_value(json_object_get(r, keep_keys[i]));
        if (v <= 0)
            continue;
        snprintf(store[i], 24, "%lld", (long long)v);
        argv[n++] = keep_flags[i];
        argv[n++] = store[i];
    }
    return n;
}

/* ---- ustar ------------------------------------------------------------------ */

static void octal(char *dst, size_t width, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%0*llo", (int)(width - 1), (unsigned long long)v);
    memcpy(dst, tmp, width - 1);
    dst[width - 1] = '\0';
}

int backups_tar_add(struct buf *out, const char *name, const void *data, size_t len, unsigned mode)
{
    if (!name || !*name || strlen(name) >= 100)
        return SB_EINVAL;
    char h[512];
    memset(h, 0, sizeof h);
    memcpy(h, name, strlen(name));
    octal(h + 100, 8, mode & 07777);
    octal(h + 108, 8, 0);
    octal(h + 116, 8, 0);
    octal(h + 124, 12, len);
    octal(h + 136, 12, (uint64_t)time(NULL));
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    static const char zeros[512];
    if (buf_append(out, h, 512) || buf_append(out, data, len) ||
        buf_append(out, zeros, (512 - len % 512) % 512))
        return SB_ENOMEM;
    return 0;
}

void backups_tar_finish(struct buf *out)
{
    static const char zeros[1024];
    buf_append(out, zeros, sizeof zeros);
}

static uint64_t parse_octal(const char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && p[i]; i++) {
        if (p[i] == ' ')
            continue;
        if (p[i] < '0' || p[i] > '7')
            break;
        v = v * 8 + (uint64_t)(p[i] - '0');
    }
    return v;
}

int backups_tar_each(const char *data, size_t len,
                     int (*fn)(void *ctx, const char *name, const char *data, size_t len, unsigned mode),
                     void *ctx, struct sb_err *err)
{
    size_t off = 0;
    while (off + 512 <= len) {
        const char *h = data + off;
        bool zero = true;
        for (int i = 0; i < 512 && zero; i++)
            zero = h[i] == 0;
        if (zero)
            return 0;
        char name[101];
        memcpy(name, h, 100);
        name[100] = '\0';
        uint64_t size = parse_octal(h + 124, 12);
        unsigned mode = (unsigned)parse_octal(h + 100, 8);
        if (size > len - off - 512)
            return sb_error(err, SB_EINVAL, "the key archive is truncated");
        if (h[156] == '0' || h[156] == '\0') {
            int rc = fn(ctx, name, h + 512, (size_t)size, mode);
            if (rc)
                return rc;
        }
        off += 512 + (size_t)((size + 511) / 512 * 512);
    }
    return 0;
}
