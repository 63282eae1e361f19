/*
 * util — the small things every subsystem uses: a bounded growable buffer,
 * the one error convention, structured logging, configuration, time and
 * random helpers.
 *
 * Error convention: functions return 0 on success or a negative SB_E* code,
 * and when the caller passes a `struct sb_err *` it is filled with a short
 * lower-case message (no trailing full stop) that is safe to show to a client:
 * it never contains a secret.
 */
#ifndef SB_UTIL_H
#define SB_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

/* ---- errors ---------------------------------------------------------- */

enum sb_errcode {
    SB_OK = 0,
    SB_EINVAL = -1,     /* bad input from the caller (400/422) */
    SB_ENOMEM = -2,     /* out of memory, or a buffer hit its maximum */
    SB_EUNAVAIL = -3,   /* a dependency (database, node, engine) is down (503) */
    SB_ENOTFOUND = -4,  /* no such thing (404) */
    SB_ECONFLICT = -5,  /* conflicts with existing state (409) */
    SB_EINTERNAL = -6,  /* a bug or an unexpected answer (500) */
    SB_ETOOLARGE = -7,  /* over a size limit (413) */
    SB_EDENIED = -8,    /* not allowed (403) */
    SB_EAUTH = -9,      /* not authenticated (401) */
    SB_ETIMEOUT = -10,  /* gave up waiting (504/503) */
    SB_EUPSTREAM = -11, /* a remote peer answered with an error (502) */
};

struct sb_err {
    int code;       /* one of enum sb_errcode */
    char field[64]; /* for SB_EINVAL: the offending field, if any */
    char msg[256];
};

/* Fills err (if not NULL) and returns code, so a failure is one line:
 * `return sb_error(err, SB_EINVAL, "name %s is taken", name);` */
int sb_error(struct sb_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like sb_error, and names the request field at fault. */
int sb_field_error(struct sb_err *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *sb_errcode_name(int code);

/* ---- buffers ----------------------------------------------------------
 * A growable byte buffer with a hard maximum, in the manner of git's strbuf
 * and curl's dynbuf: after buf_init the data pointer is never NULL and the
 * contents are always NUL-terminated. Appends beyond `max` fail with
 * SB_ETOOLARGE and leave the buffer unchanged. The buffer owns its memory;
 * buf_detach hands it to the caller (free() it). */
struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

#define BUF_MAX_DEFAULT ((size_t)64 << 20)

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
char *buf_detach(struct buf *b, size_t *len);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);

/* ---- logging ----------------------------------------------------------
 * One line per call: `time level=… msg="…" key=value …`. The fields are a
 * printf format; control characters in the result are escaped, so a hostile
 * path or header can never forge a log line. The level is checked before
 * the arguments are formatted. */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
extern int log_min_level;

void log_set_level(const char *name);
void log_write(enum log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define log_debug(msg, ...)                                                                                  \
    do {                                                                                                     \
        if (log_min_level <= LOG_DEBUG)                                                                      \
            log_write(LOG_DEBUG, msg, __VA_ARGS__);                                                          \
    } while (0)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

/* ---- configuration ----------------------------------------------------
 * Every option `--foo-bar` has the variable SERVERBOX_FOO_BAR; a flag wins
 * over the environment, which wins over the default. */
enum config_kind { CONFIG_STRING, CONFIG_INT, CONFIG_LIST };

struct config_option {
    const char *name; /* "listen" for --listen */
    enum config_kind kind;
    const char *def; /* default as text, NULL for none */
    const char *help;
    bool secret; /* never printed back */
};

#define CONFIG_MAX_OPTIONS 160
#define CONFIG_MAX_LIST    16

struct config {
    const struct config_option *options;
    size_t n_options;
    /* values, parallel to options; strings point into argv, environ or defaults */
    const char *value[CONFIG_MAX_OPTIONS];
    const char *list[CONFIG_MAX_OPTIONS][CONFIG_MAX_LIST];
    size_t list_len[CONFIG_MAX_OPTIONS];
    /* arguments that are not options, in order (subcommand and its words) */
    const char *args[16];
    size_t n_args;
    bool help;
    char *owned[CONFIG_MAX_OPTIONS]; /* copies made while parsing lists from the environment */
};

/* Parses argv then the environment. Flags not in `options` are an error.
 * Flags may be `--name value` or `--name=value`; a bare `--name` for which
 * `flag_options` lists the name is a boolean "1". */
int config_parse(struct config *c, const struct config_option *options, size_t n, int argc, char **argv,
                 const char *const *bool_flags, struct sb_err *err);
/* Frees what config_parse copied; values from lists are invalid after it. */
void config_release(struct config *c);
const char *config_get(const struct config *c, const char *name);
long config_get_int(const struct config *c, const char *name);
size_t config_get_list(const struct config *c, const char *name, const char *const **out);
void config_print_help(const struct config_option *options, size_t n, const char *usage);
/* "--listen-addr" -> "SERVERBOX_LISTEN_ADDR" into out. */
void config_env_name(const char *name, char *out, size_t outlen);

/* ---- time, random, encoding ------------------------------------------ */

/* Microseconds since the Unix epoch (wall clock). */
int64_t time_now_us(void);
/* Milliseconds from a monotonic clock. */
int64_t time_mono_ms(void);
/* RFC 3339 UTC with microseconds: 2026-11-22T03:01:54.123456Z (out >= 32). */
void time_format_rfc3339(int64_t us, char *out, size_t outlen);
/* Parses RFC 3339 (Z or ±hh:mm offset, optional fraction); 0 or SB_EINVAL. */
int time_parse_rfc3339(const char *s, int64_t *us);

void hex_encode(const uint8_t *in, size_t len, char *out);   /* out: 2*len+1 */
int hex_decode(const char *in, uint8_t *out, size_t outlen); /* exact length */
/* n random bytes as 2n hex characters into out (2n+1). */
void random_hex(char *out, size_t nbytes);
/* A random (version 4) UUID, lower-case, into out[37]. */
void uuid_v4(char out[37]);
bool uuid_valid(const char *s);

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
int file_read_all(const char *path, size_t max, struct buf *out, struct sb_err *err);

/* strlcpy: copies at most size-1 bytes and always terminates. */
size_t sb_strlcpy(char *dst, const char *src, size_t size);
/* A decimal integer from text a trusted source wrote (PostgreSQL's output, a
 * port in a configured URL): its value, or 0 when s (NULL included) is not
 * one whole integer in range. Stands in for atoi/atoll (util/banned.h). */
int64_t sb_int64(const char *s);

/* ---- labels (util/labels.c) ------------------------------------------
 * Labels are a JSON object of string values: on nodes, containers,
 * annotations, and as the node-label selector that scopes users, tokens and
 * guest links. One validator and one matcher for all of them. */
struct labels_rule {
    const char *field;     /* the request field named in errors ("labels") */
    size_t max_labels;     /* at most this many */
    size_t key_max;        /* key length 1..key_max bytes */
    size_t value_max;      /* value length 0..value_max bytes */
    const char *key_extra; /* keys only of letters, digits and these; NULL = any but control characters */
    bool null_ok;          /* JSON null (or absent) means "none" */
};
/* 0, or SB_EINVAL naming rule->field. Control characters are refused in
 * keys and values everywhere. */
int labels_check(json_t *labels, const struct labels_rule *rule, struct sb_err *err);
/* Whether every label of selector is present in labels with an equal string
 * value. A NULL or empty selector matches everything. */
bool labels_match(json_t *selector, json_t *labels);

#endif
