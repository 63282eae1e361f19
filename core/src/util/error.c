#include "util.h"

#include <stdio.h>
#include <string.h>

static int sb_verror(struct sb_err *err, int code, const char *field, const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    sb_strlcpy(err->field, field ? field : "", sizeof err->field);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

int sb_error(struct sb_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_verror(err, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

int sb_field_error(struct sb_err *err, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_verror(err, SB_EINVAL, field, fmt, ap);
    va_end(ap);
    return SB_EINVAL;
}

const char *sb_errcode_name(int code)
{
    switch (code) {
    case SB_OK:
        return "ok";
    case SB_EINVAL:
        return "validation_failed";
    case SB_ENOMEM:
        return "internal";
    case SB_EUNAVAIL:
        return "unavailable";
    case SB_ENOTFOUND:
        return "not_found";
    case SB_ECONFLICT:
        return "conflict";
    case SB_ETOOLARGE:
        return "too_large";
    case SB_EDENIED:
        return "forbidden";
    case SB_EAUTH:
        return "unauthenticated";
    case SB_ETIMEOUT:
        return "timeout";
    case SB_EUPSTREAM:
        return "upstream_error";
    default:
        return "internal";
    }
}

size_t sb_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);
    if (size) {
        size_t c = n < size - 1 ? n : size - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}
