/*
 * Compose file → model: interpolation, then validation and normalization of
 * every supported key; anything else is an error naming its key path. The
 * model is what the plan, the config hash and apply read (README.md).
 */
#include "internal.h"

#include "../caddy/caddy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Key paths are cut at their buffer's size; that is intended. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

struct vctx {
    json_t *marks;
    json_t *vars;
    json_t *env_files;
    struct sb_err *err;
};

static int verr(struct vctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int verr(struct vctx *c, const char *path, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *m = c->marks ? json_object_get(c->marks, path) : NULL;
    if (json_is_array(m))
        return sb_field_error(c->err, path, "%s: %s (line %d, column %d)", path, msg,
                              (int)json_integer_value(json_array_get(m, 0)),
                              (int)json_integer_value(json_array_get(m, 1)));
    return sb_field_error(c->err, path, "%s: %s", path, msg);
}

static const char *written(struct vctx *c, const char *path)
{
    char k[560];
    snprintf(k, sizeof k, "%s#text", path);
    return json_string_value(json_object_get(c->marks, k));
}

/* ---- names ---------------------------------------------------------------- */

bool stacks_project_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > STACKS_NAME_MAX || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

bool stacks_object_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > STACKS_NAME_MAX || !isalnum((unsigned char)s[0]) || strstr(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

void stacks_object_name(const char *project, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s_%s", project, name);
}

/* ---- interpolation ------------------------------------------------------- */

static bool var_char(char c, bool first)
{
    return c == '_' || isalpha((unsigned char)c) || (!first && isdigit((unsigned char)c));
}

/* ${VAR} ${VAR:-def} ${VAR-def} ${VAR:?msg} ${VAR?msg} $VAR $$ */
static int interpolate(struct vctx *c, const char *path, const char *s, json_t **out)
{
    struct buf b;
    buf_init(&b, STACKS_COMPOSE_MAX);
    int rc = 0;
    for (const char *p = s; *p && rc == 0;) {
        if (*p != '$') {
            rc = buf_putc(&b, *p++);
            continue;
        }
        if (p[1] == '$') {
            rc = buf_putc(&b, '$');
            p += 2;
            continue;
        }
        char name[128];
        size_t n = 0;
        const char *def = NULL, *end;
        size_t deflen = 0;
        int mode = 0; /* 0 plain, 1 :- , 2 - , 3 :? , 4 ? */
        if (p[1] == '{') {
            const char *q = p + 2;
            while (var_char(*q, q == p + 2) && n + 1 < sizeof name)
                name[n++] = *q++;
            name[n] = 0;
            if (n == 0) {
                rc = verr(c, path, "invalid interpolation format in \"%.60s\"", s);
                break;
            }
            if (q[0] == ':' && q[1] == '-')
                mode = 1, q += 2;
            else if (q[0] == '-')
                mode = 2, q += 1;
            else if (q[0] == ':' && q[1] == '?')
                mode = 3, q += 2;
            else if (q[0] == '?')
                mode = 4, q += 1;
            def = q;
            int depth = 0;
            while (*q && !(*q == '}' && depth == 0)) {
                if (*q == '{')
                    depth++;
                else if (*q == '}')
                    depth--;
                q++;
            }
            if (*q != '}' || (mode == 0 && q != def)) {
                rc = verr(c, path, "invalid interpolation format in \"%.60s\"", s);
                break;
            }
            deflen = (size_t)(q - def);
            end = q + 1;
        } else {
            const char *q = p + 1;
            while (var_char(*q, q == p + 1) && n + 1 < sizeof name)
                name[n++] = *q++;
            name[n] = 0;
            if (n == 0) {
                rc = verr(c, path, "invalid interpolation format in \"%.60s\" (write $$ for a dollar sign)",
                          s);
                break;
            }
            end = q;
        }
        json_t *jv = c->vars ? json_object_get(c->vars, name) : NULL;
        const char *val = json_string_value(jv);
        bool set = val != NULL, empty = !val || !val[0];
        if (mode == 0) {
            if (!set) {
                rc = verr(c, path, "variable %s is not set", name);
                break;
            }
            rc = buf_puts(&b, val);
        } else if (mode == 1 || mode == 2) {
            if ((mode == 1 && empty) || (mode == 2 && !set)) {
                /* the default may itself hold variables */
                char *d = strndup(def, deflen);
                json_t *dv = NULL;
                rc = interpolate(c, path, d, &dv);
                free(d);
                if (rc == 0)
                    rc = buf_puts(&b, json_string_value(dv));
                json_decref(dv);
            } else {
                rc = buf_puts(&b, val);
            }
        } else {
            if ((mode == 3 && empty) || (mode == 4 && !set)) {
                rc = verr(c, path, "variable %s is required: %.*s", name, (int)(deflen > 80 ? 80 : deflen),
                          def);
                break;
            }
            rc = buf_puts(&b, val);
        }
        p = end;
    }
    if (rc == SB_ETOOLARGE)
        rc = verr(c, path, "interpolated value too large");
    if (rc == 0) {
        *out = json_string(b.data);
        if (!*out)
            rc = verr(c, path, "interpolated value is not valid UTF-8");
    }
    buf_release(&b);
    return rc;
}

static int interpolate_all(struct vctx *c, json_t *v, const char *path)
{
    char sub[512];
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, e)
        {
            snprintf(sub, sizeof sub, path[0] ? "%s.%s" : "%s%s", path, k);
            if (json_is_string(e)) {
                json_t *n;
                int rc = interpolate(c, sub, json_string_value(e), &n);
                if (rc)
                    return rc;
                json_object_set_new(v, k, n);
            } else if (interpolate_all(c, e, sub)) {
                return c->err ? c->err->code : SB_EINVAL;
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (json_is_string(e)) {
                json_t *n;
                int rc = interpolate(c, sub, json_string_value(e), &n);
                if (rc)
                    return rc;
                json_array_set_new(v, i, n);
            } else if (interpolate_all(c, e, sub)) {
                return c->err ? c->err->code : SB_EINVAL;
            }
        }
    }
    return 0;
}

/* ---- typed getters ----------------------------------------------------- */

static int want_string(struct vctx *c, const char *path, json_t *v, const char **out)
{
    if (json_is_boolean(v)) {
        const char *t = written(c, path);
        return verr(c, path, "%s is read as a boolean by YAML 1.1: quote it (\"%s\")", t ? t : "the value",
                    t ? t : "…");
    }
    if (!json_is_string(v))
        return verr(c, path, "must be a string");
    *out = json_string_value(v);
    return 0;
}

/* A string, number or null (environment and label values), as text. */
static int want_scalar_text(struct vctx *c, const char *path, json_t *v, json_t **out)
{
    char tmp[64];
    if (json_is_boolean(v)) {
        const char *t = written(c, path);
        return verr(c, path, "%s is read as a boolean by YAML 1.1: quote it (\"%s\")", t ? t : "the value",
                    t ? t : "…");
    }
    if (json_is_string(v)) {
        *out = json_string(json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
        *out = json_string(tmp);
    } else if (json_is_real(v)) {
        const char *t = written(c, path);
        if (t)
            *out = json_string(t);
        else {
            snprintf(tmp, sizeof tmp, "%g", json_real_value(v));
            *out = json_string(tmp);
        }
    } else if (json_is_null(v)) {
        *out = json_string("");
    } else {
        return verr(c, path, "must be a string, a number or null");
    }
    return 0;
}

static int want_int(struct vctx *c, const char *path, json_t *v, long long lo, long long hi, long long *out)
{
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (!*s || !(isdigit((unsigned char)s[0]) || s[0] == '-'))
            return verr(c, path, "must be an integer");
        x = strtoll(s, &end, 10);
        if (*end)
            return verr(c, path, "must be an integer");
    } else {
        return verr(c, path, "must be an integer");
    }
    if (x < lo || x > hi)
        return verr(c, path, "must be between %lld and %lld", lo, hi);
    *out = x;
    return 0;
}

static int want_bool(struct vctx *c, const char *path, json_t *v, bool *out)
{
    if (!json_is_boolean(v))
        return verr(c, path, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

static int want_string_list(struct vctx *c, const char *path, json_t *v, json_t **out)
{
    if (!json_is_array(v))
        return verr(c, path, "must be a list of strings");
    json_t *arr = json_array();
    size_t i;
    json_t *e;
    char sub[560];
    json_array_foreach(v, i, e)
    {
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        const char *s;
        if (want_string(c, sub, e, &s)) {
            json_decref(arr);
            return SB_EINVAL;
        }
        json_array_append_new(arr, json_string(s));
    }
    *out = arr;
    return 0;
}

/* Durations as compose writes them: 1h2m3s, 1m30s, 500ms, 10s, 2us; a bare
 * number is seconds. */
static int want_duration(struct vctx *c, const char *path, json_t *v, long long *ns)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > 86400)
            return verr(c, path, "must be a duration between 0 and 24h");
        *ns = json_integer_value(v) * 1000000000LL;
        return 0;
    }
    if (!json_is_string(v))
        return verr(c, path, "must be a duration like 10s or 1m30s");
    const char *s = json_string_value(v);
    double total = 0;
    if (!*s)
        return verr(c, path, "must be a duration like 10s or 1m30s");
    while (*s) {
        char *end;
        double x = strtod(s, &end);
        if (end == s || x < 0)
            return verr(c, path, "must be a duration like 10s or 1m30s");
        s = end;
        double unit;
        if (strncmp(s, "ms", 2) == 0)
            unit = 1e6, s += 2;
        else if (strncmp(s, "us", 2) == 0)
            unit = 1e3, s += 2;
        else if (strncmp(s, "ns", 2) == 0)
            unit = 1, s += 2;
        else if (*s == 'h')
            unit = 3600e9, s++;
        else if (*s == 'm')
            unit = 60e9, s++;
        else if (*s == 's')
            unit = 1e9, s++;
        else
            return verr(c, path, "must be a duration like 10s or 1m30s");
        total += x * unit;
    }
    if (total > 86400e9)
        return verr(c, path, "must be at most 24h");
    *ns = (long long)total;
    return 0;
}

/* Byte sizes: 64m, 1g, 512k, 1048576, 1.5g (compose's units, base 1024). */
static int want_bytes(struct vctx *c, const char *path, json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) <= 0)
            return verr(c, path, "must be a positive size");
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return verr(c, path, "must be a size like 64m or 1g");
    const char *s = json_string_value(v);
    char *end;
    double x = strtod(s, &end);
    if (end == s || x <= 0)
        return verr(c, path, "must be a size like 64m or 1g");
    double mul = 1;
    switch (tolower((unsigned char)*end)) {
    case 0:
        break;
    case 'b':
        mul = 1;
        break;
    case 'k':
        mul = 1024;
        break;
    case 'm':
        mul = 1024.0 * 1024;
        break;
    case 'g':
        mul = 1024.0 * 1024 * 1024;
        break;
    default:
        return verr(c, path, "must be a size like 64m or 1g");
    }
    if (*end) {
        end++;
        if (tolower((unsigned char)*end) == 'b')
            end++;
        if (*end)
            return verr(c, path, "must be a size like 64m or 1g");
    }
    if (x * mul > 1e15)
        return verr(c, path, "is too large");
    *out = (long long)(x * mul);
    return 0;
}

static int want_cpus(struct vctx *c, const char *path, json_t *v, long long *nano)
{
    double x;
    if (json_is_number(v)) {
        x = json_number_value(v);
    } else if (json_is_string(v)) {
        char *end;
        x = strtod(json_string_value(v), &end);
        if (end == json_string_value(v) || *end)
            return verr(c, path, "must be a number of CPUs like 0.5");
    } else {
        return verr(c, path, "must be a number of CPUs like 0.5");
    }
    if (x <= 0 || x > 1024)
        return verr(c, path, "must be between 0 and 1024");
    *nano = (long long)(x * 1e9 + 0.5);
    return 0;
}

/* Only `allowed` keys (and x-* extensions) may appear. */
static int check_keys(struct vctx *c, const char *path, json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        bool ok = strncmp(k, "x-", 2) == 0;
        for (size_t i = 0; !ok && allowed[i]; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            char sub[560];
            snprintf(sub, sizeof sub, path[0] ? "%s.%s" : "%s%s", path, k);
            if (strcmp(k, "build") == 0)
                return verr(c, sub, "not supported (building from source is for GitOps apps)");
            return verr(c, sub, "not supported");
        }
    }
    return 0;
}

/* A string splits into words as a POSIX shell would (quotes, backslash),
 * like compose's shlex.split; a list stays as is. */
static int want_command(struct vctx *c, const char *path, json_t *v, json_t **out)
{
    if (json_is_null(v)) {
        *out = json_null();
        return 0;
    }
    if (json_is_array(v))
        return want_string_list(c, path, v, out);
    const char *s;
    if (want_string(c, path, v, &s))
        return SB_EINVAL;
    json_t *arr = json_array();
    struct buf w;
    buf_init(&w, STACKS_COMPOSE_MAX);
    bool in_word = false;
    char q = 0;
    for (const char *p = s;; p++) {
        char ch = *p;
        if (!ch) {
            if (q) {
                buf_release(&w);
                json_decref(arr);
                return verr(c, path, "unterminated quote");
            }
            break;
        }
        if (q == '\'') {
            if (ch == '\'')
                q = 0;
            else
                buf_putc(&w, ch);
            continue;
        }
        if (q == '"') {
            if (ch == '"')
                q = 0;
            else if (ch == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == '$' || p[1] == '`'))
                buf_putc(&w, *++p);
            else
                buf_putc(&w, ch);
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n') {
            if (in_word) {
                json_array_append_new(arr, json_string(w.data));
                buf_reset(&w);
                in_word = false;
            }
            continue;
        }
        in_word = true;
        if (ch == '\'' || ch == '"')
            q = ch;
        else if (ch == '\\' && p[1])
            buf_putc(&w, *++p);
        else
            buf_putc(&w, ch);
    }
    if (in_word)
        json_array_append_new(arr, json_string(w.data));
    buf_release(&w);
    *out = arr;
    return 0;
}

static bool env_name_ok(const char *k)
{
    if (!*k || strchr(k, '='))
        return false;
    for (const char *p = k; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f)
            return false;
    return true;
}

/* KEY=VALUE lines; # comments and blank lines skipped. */
static int parse_env_text(struct vctx *c, const char *path, const char *text, json_t *env)
{
    const char *p = text;
    int line = 0;
    while (*p) {
        line++;
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *l = strndup(p, n);
        if (n && l[n - 1] == '\r')
            l[n - 1] = 0;
        char *s = l;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s && *s != '#') {
            char *eq = strchr(s, '=');
            if (!eq || eq == s) {
                free(l);
                return verr(c, path, "line %d is not KEY=VALUE", line);
            }
            *eq = 0;
            if (!env_name_ok(s)) {
                free(l);
                return verr(c, path, "line %d: bad variable name", line);
            }
            json_object_set_new(env, s, json_string(eq + 1));
        }
        free(l);
        p += n;
        if (*p == '\n')
            p++;
    }
    return 0;
}

static int norm_env(struct vctx *c, const char *path, json_t *v, json_t *env)
{
    char sub[560];
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            if (!env_name_ok(k))
                return verr(c, sub, "bad variable name");
            json_t *t;
            if (json_is_null(e)) { /* from the stack's variables, else left out */
                const char *val = c->vars ? json_string_value(json_object_get(c->vars, k)) : NULL;
                if (val)
                    json_object_set_new(env, k, json_string(val));
                continue;
            }
            if (want_scalar_text(c, sub, e, &t))
                return SB_EINVAL;
            json_object_set_new(env, k, t);
        }
        return 0;
    }
    if (!json_is_array(v))
        return verr(c, path, "must be a mapping or a list of KEY=VALUE");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        const char *s;
        if (want_string(c, sub, e, &s))
            return SB_EINVAL;
        const char *eq = strchr(s, '=');
        char name[256];
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - s) : (int)strlen(s), s);
        if (!env_name_ok(name))
            return verr(c, sub, "bad variable name");
        if (eq) {
            json_object_set_new(env, name, json_string(eq + 1));
        } else {
            const char *val = c->vars ? json_string_value(json_object_get(c->vars, name)) : NULL;
            if (val)
                json_object_set_new(env, name, json_string(val));
        }
    }
    return 0;
}

static int norm_labels(struct vctx *c, const char *path, json_t *v, json_t **out)
{
    json_t *labels = json_object();
    char sub[560];
    int rc = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            json_t *t;
            if ((rc = want_scalar_text(c, sub, e, &t)))
                break;
            json_object_set_new(labels, k, t);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            const char *s;
            if ((rc = want_string(c, sub, e, &s)))
                break;
            const char *eq = strchr(s, '=');
            char *k = strndup(s, eq ? (size_t)(eq - s) : strlen(s));
            json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
            free(k);
        }
    } else {
        rc = verr(c, path, "must be a mapping or a list of key=value");
    }
    const char *k;
    json_t *e;
    if (rc == 0)
        json_object_foreach(labels, k, e)
        {
            if (!*k || strncmp(k, "com.docker.compose.", 19) == 0) {
                rc = verr(c, path, "label \"%.60s\" is reserved or empty", k);
                break;
            }
        }
    if (rc) {
        json_decref(labels);
        return rc;
    }
    *out = labels;
    return 0;
}

static int parse_port_num(const char *s, size_t n, long *out)
{
    if (n == 0 || n > 5)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *out = v;
    return 0;
}

/* Short syntax: [[ip:]published:]target[/proto]; long: {target, published,
 * protocol, host_ip, mode}. Ranges are refused. */
static int norm_port(struct vctx *c, const char *path, json_t *v, json_t **out)
{
    long target = 0, published = 0;
    char proto[8] = "tcp", ip[64] = "";
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 1 || json_integer_value(v) > 65535)
            return verr(c, path, "port must be between 1 and 65535");
        target = (long)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char tmp[128];
        sb_strlcpy(tmp, s, sizeof tmp);
        char *slash = strchr(tmp, '/');
        if (slash) {
            *slash = 0;
            if (strcmp(slash + 1, "tcp") != 0 && strcmp(slash + 1, "udp") != 0)
                return verr(c, path, "protocol must be tcp or udp");
            sb_strlcpy(proto, slash + 1, sizeof proto);
        }
        if (strchr(tmp, '-'))
            return verr(c, path, "port ranges are not supported");
        char *parts[3];
        int np = 0;
        char *save = tmp;
        for (char *q = tmp;; q++) {
            if (*q == ':' || !*q) {
                if (np == 3)
                    return verr(c, path, "must be [[ip:]published:]target[/protocol]");
                bool end = !*q;
                *q = 0;
                parts[np++] = save;
                save = q + 1;
                if (end)
                    break;
            }
        }
        if (parse_port_num(parts[np - 1], strlen(parts[np - 1]), &target))
            return verr(c, path, "container port must be between 1 and 65535");
        if (np >= 2 && parse_port_num(parts[np - 2], strlen(parts[np - 2]), &published))
            return verr(c, path, "published port must be between 1 and 65535");
        if (np == 3) {
            for (const char *q = parts[0]; *q; q++)
                if (!(isxdigit((unsigned char)*q) || *q == '.'))
                    return verr(c, path, "host address must be an IPv4 address");
            sb_strlcpy(ip, parts[0], sizeof ip);
        }
    } else if (json_is_object(v)) {
        static const char *const keys[] = {"target", "published", "protocol", "host_ip", "mode", NULL};
        if (check_keys(c, path, v, keys))
            return SB_EINVAL;
        char sub[560];
        long long t, p = 0;
        snprintf(sub, sizeof sub, "%s.target", path);
        if (want_int(c, sub, json_object_get(v, "target"), 1, 65535, &t))
            return SB_EINVAL;
        snprintf(sub, sizeof sub, "%s.published", path);
        if (json_object_get(v, "published") &&
            want_int(c, sub, json_object_get(v, "published"), 1, 65535, &p))
            return SB_EINVAL;
        target = (long)t;
        published = (long)p;
        const char *pr = json_string_value(json_object_get(v, "protocol"));
        if (pr && strcmp(pr, "tcp") != 0 && strcmp(pr, "udp") != 0)
            return verr(c, path, "protocol must be tcp or udp");
        if (pr)
            sb_strlcpy(proto, pr, sizeof proto);
        const char *hi = json_string_value(json_object_get(v, "host_ip"));
        if (hi)
            sb_strlcpy(ip, hi, sizeof ip);
        const char *mode = json_string_value(json_object_get(v, "mode"));
        if (mode && strcmp(mode, "host") != 0 && strcmp(mode, "ingress") != 0)
            return verr(c, path, "mode must be host or ingress");
    } else {
        return verr(c, path, "must be a string, a number or a mapping");
    }
    *out = json_pack("{s:i,s:i,s:s,s:s}", "target", (int)target, "published", (int)published, "protocol",
                     proto, "host_ip", ip);
    return 0;
}

static bool bind_source(const char *s)
{
    return s[0] == '/' || s[0] == '.' || s[0] == '~';
}

static int norm_volume(struct vctx *c, const char *path, json_t *v, json_t *top_volumes, json_t **out)
{
    const char *type = NULL, *source = "", *target = NULL;
    bool ro = false;
    char src[1024] = "", tgt[1024] = "";
    if (json_is_string(v)) {
        char tmp[2048];
        sb_strlcpy(tmp, json_string_value(v), sizeof tmp);
        char *a = tmp, *b = strchr(a, ':'), *m = NULL;
        if (b) {
            *b++ = 0;
            m = strchr(b, ':');
            if (m) {
                *m++ = 0;
                if (strcmp(m, "ro") == 0)
                    ro = true;
                else if (strcmp(m, "rw") != 0)
                    return verr(c, path, "mode must be ro or rw");
            }
            sb_strlcpy(src, a, sizeof src);
            sb_strlcpy(tgt, b, sizeof tgt);
        } else {
            sb_strlcpy(tgt, a, sizeof tgt);
        }
        source = src;
        target = tgt;
        type = !src[0] ? "volume" : bind_source(src) ? "bind" : "volume";
    } else if (json_is_object(v)) {
        static const char *const keys[] = {"type", "source", "target", "read_only", NULL};
        if (check_keys(c, path, v, keys))
            return SB_EINVAL;
        type = json_string_value(json_object_get(v, "type"));
        source = json_string_value(json_object_get(v, "source"));
        target = json_string_value(json_object_get(v, "target"));
        if (!type || (strcmp(type, "volume") != 0 && strcmp(type, "bind") != 0))
            return verr(c, path, "type must be volume or bind");
        if (!source)
            source = "";
        json_t *r = json_object_get(v, "read_only");
        char sub[560];
        snprintf(sub, sizeof sub, "%s.read_only", path);
        if (r && want_bool(c, sub, r, &ro))
            return SB_EINVAL;
    } else {
        return verr(c, path, "must be a string or a mapping");
    }
    if (!target || target[0] != '/' || strlen(target) > 1000)
        return verr(c, path, "the container path must be absolute");
    if (strcmp(type, "bind") == 0) {
        if (source[0] != '/')
            return verr(c, path, "bind mounts need an absolute host path (no relative or ~ paths)");
        if (strstr(source, "/../") ||
            (strlen(source) >= 3 && strcmp(source + strlen(source) - 3, "/..") == 0))
            return verr(c, path, "bind path must not contain ..");
    } else if (source[0]) {
        if (!stacks_object_name_ok(source))
            return verr(c, path, "bad volume name \"%.60s\"", source);
        if (!json_object_get(top_volumes, source))
            return verr(c, path, "volume %s is not declared in the top-level volumes", source);
    }
    *out = json_pack("{s:s,s:s,s:s,s:b}", "type", type, "source", source, "target", target, "read_only", ro);
    return 0;
}

static int norm_healthcheck(struct vctx *c, const char *path, json_t *v, json_t **out)
{
    static const char *const keys[] = {"test",         "interval", "timeout", "retries",
                                       "start_period", "disable",  NULL};
    if (!json_is_object(v))
        return verr(c, path, "must be a mapping");
    if (check_keys(c, path, v, keys))
        return SB_EINVAL;
    char sub[560];
    bool disable = false;
    json_t *d = json_object_get(v, "disable");
    snprintf(sub, sizeof sub, "%s.disable", path);
    if (d && want_bool(c, sub, d, &disable))
        return SB_EINVAL;
    json_t *test = json_object_get(v, "test");
    json_t *t = NULL;
    snprintf(sub, sizeof sub, "%s.test", path);
    if (disable) {
        t = json_pack("[s]", "NONE");
    } else if (json_is_string(test)) {
        t = json_pack("[ss]", "CMD-SHELL", json_string_value(test));
    } else if (json_is_array(test)) {
        if (want_string_list(c, sub, test, &t))
            return SB_EINVAL;
        const char *k = json_string_value(json_array_get(t, 0));
        if (!k || (strcmp(k, "CMD") != 0 && strcmp(k, "CMD-SHELL") != 0 && strcmp(k, "NONE") != 0) ||
            (strcmp(k, "NONE") != 0 && json_array_size(t) < 2)) {
            json_decref(t);
            return verr(c, sub, "must start with CMD, CMD-SHELL or NONE");
        }
    } else {
        return verr(c, sub, "is required (a string or a list)");
    }
    long long interval = 30000000000LL, timeout = 30000000000LL, start = 0, retries = 3;
    struct {
        const char *k;
        long long *v;
    } durs[] = {{"interval", &interval}, {"timeout", &timeout}, {"start_period", &start}};
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_object_get(v, durs[i].k);
        snprintf(sub, sizeof sub, "%s.%s", path, durs[i].k);
        if (x && want_duration(c, sub, x, durs[i].v)) {
            json_decref(t);
            return SB_EINVAL;
        }
        if (x && strcmp(durs[i].k, "start_period") != 0 && *durs[i].v < 1000000) {
            json_decref(t);
            return verr(c, sub, "must be at least 1ms");
        }
    }
    snprintf(sub, sizeof sub, "%s.retries", path);
    if (json_object_get(v, "retries") && want_int(c, sub, json_object_get(v, "retries"), 1, 100, &retries)) {
        json_decref(t);
        return SB_EINVAL;
    }
    *out =
        json_pack("{s:o,s:I,s:I,s:I,s:I}", "test", t, "interval_ns", (json_int_t)interval, "timeout_ns",
                  (json_int_t)timeout, "start_period_ns", (json_int_t)start, "retries", (json_int_t)retries);
    return 0;
}

static int norm_xserverbox(struct vctx *c, const char *path, json_t *v, json_t **out)
{
    static const char *const keys[] = {"health_timeout", "probe", "route", NULL};
    if (!json_is_object(v))
        return verr(c, path, "must be a mapping");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        bool ok = false;
        for (size_t i = 0; keys[i]; i++)
            ok = ok || strcmp(k, keys[i]) == 0;
        char sub[560];
        snprintf(sub, sizeof sub, "%s.%s", path, k);
        if (!ok)
            return verr(c, sub, "not supported");
    }
    json_t *x = json_object();
    char sub[560];
    json_t *route = json_object_get(v, "route");
    if (route) {
        static const char *const rk[] = {"host", "port", NULL};
        snprintf(sub, sizeof sub, "%s.route", path);
        if (!json_is_object(route) || check_keys(c, sub, route, rk)) {
            json_decref(x);
            return json_is_object(route) ? SB_EINVAL : verr(c, sub, "must be a mapping (host, port)");
        }
        char sub2[600];
        const char *host = json_string_value(json_object_get(route, "host"));
        snprintf(sub2, sizeof sub2, "%s.host", sub);
        if (!caddy_host_ok(host)) {
            json_decref(x);
            return verr(c, sub2,
                        "must be a host name in lowercase (labels of a-z 0-9 -, dot-separated, at least two, "
                        "or localhost)");
        }
        long long port = 0;
        snprintf(sub2, sizeof sub2, "%s.port", sub);
        json_t *pv = json_object_get(route, "port");
        if (!pv) {
            json_decref(x);
            return verr(c, sub2, "is required: the container port the route sends requests to");
        }
        if (want_int(c, sub2, pv, 1, 65535, &port)) {
            json_decref(x);
            return SB_EINVAL;
        }
        json_object_set_new(x, "route", json_pack("{s:s,s:I}", "host", host, "port", (json_int_t)port));
    }
    json_t *ht = json_object_get(v, "health_timeout");
    if (ht) {
        long long ns;
        snprintf(sub, sizeof sub, "%s.health_timeout", path);
        if (want_duration(c, sub, ht, &ns)) {
            json_decref(x);
            return SB_EINVAL;
        }
        if (ns < 1000000000LL || ns > 3600e9) {
            json_decref(x);
            return verr(c, sub, "must be between 1s and 1h");
        }
        json_object_set_new(x, "health_timeout_s", json_integer(ns / 1000000000LL));
    }
    json_t *probe = json_object_get(v, "probe");
    if (probe) {
        static const char *const pk[] = {"tcp", "http", "port", NULL};
        snprintf(sub, sizeof sub, "%s.probe", path);
        if (!json_is_object(probe) || check_keys(c, sub, probe, pk)) {
            json_decref(x);
            return json_is_object(probe) ? SB_EINVAL : verr(c, sub, "must be a mapping");
        }
        long long port = 0;
        json_t *tcp = json_object_get(probe, "tcp"), *http = json_object_get(probe, "http"),
               *pp = json_object_get(probe, "port");
        char sub2[600];
        if (tcp) {
            snprintf(sub2, sizeof sub2, "%s.tcp", sub);
            if (want_int(c, sub2, tcp, 1, 65535, &port)) {
                json_decref(x);
                return SB_EINVAL;
            }
            json_object_set_new(x, "probe", json_pack("{s:s,s:I}", "kind", "tcp", "port", (json_int_t)port));
        } else if (http) {
            snprintf(sub2, sizeof sub2, "%s.port", sub);
            if (!json_is_string(http) || json_string_value(http)[0] != '/' || !pp ||
                want_int(c, sub2, pp, 1, 65535, &port)) {
                json_decref(x);
                return verr(c, sub, "http needs a path starting with / and a port");
            }
            json_object_set_new(x, "probe",
                                json_pack("{s:s,s:s,s:I}", "kind", "http", "path", json_string_value(http),
                                          "port", (json_int_t)port));
        } else {
            json_decref(x);
            return verr(c, sub, "needs tcp: PORT or http: PATH with port");
        }
    }
    *out = x;
    return 0;
}

static const char *const service_keys[] = {
    "image",        "command",    "entrypoint",  "environment", "env_file", "ports",   "volumes",
    "networks",     "depends_on", "healthcheck", "restart",     "labels",   "user",    "working_dir",
    "cap_add",      "cap_drop",   "deploy",      "mem_limit",   "cpus",     "logging", "privileged",
    "network_mode", "pid",        "ipc",         "devices",     NULL};

static int norm_service(struct vctx *c, const char *name, json_t *in, json_t *top, json_t **out)
{
    char path[256], sub[600];
    snprintf(path, sizeof path, "services.%s", name);
    if (!json_is_object(in))
        return verr(c, path, "must be a mapping");
    if (check_keys(c, path, in, service_keys))
        return SB_EINVAL;
    json_t *s = json_object();
    int rc = 0;
#define FAIL(x)                                                                                              \
    do {                                                                                                     \
        if ((rc = (x)) != 0)                                                                                 \
            goto done;                                                                                       \
    } while (0)
#define SUB(k) (snprintf(sub, sizeof sub, "%s.%s", path, k), sub)
    json_t *v;
    const char *str;
    /* image */
    v = json_object_get(in, "image");
    if (!v)
        FAIL(verr(c, path, "image is required"));
    FAIL(want_string(c, SUB("image"), v, &str));
    if (!*str || strlen(str) > 255 || strchr(str, ' ') || str[0] == '-')
        FAIL(verr(c, SUB("image"), "is not an image reference"));
    json_object_set_new(s, "image", json_string(str));
    /* command, entrypoint */
    json_t *t;
    if ((v = json_object_get(in, "command"))) {
        FAIL(want_command(c, SUB("command"), v, &t));
        json_object_set_new(s, "command", t);
    }
    if ((v = json_object_get(in, "entrypoint"))) {
        FAIL(want_command(c, SUB("entrypoint"), v, &t));
        json_object_set_new(s, "entrypoint", t);
    }
    /* environment: env_file first, environment overrides */
    json_t *env = json_object();
    json_object_set_new(s, "environment", env);
    if ((v = json_object_get(in, "env_file"))) {
        json_t *names;
        if (json_is_string(v))
            names = json_pack("[s]", json_string_value(v));
        else
            FAIL(want_string_list(c, SUB("env_file"), v, &names));
        size_t i;
        json_t *e;
        json_array_foreach(names, i, e)
        {
            const char *content = json_string_value(json_object_get(c->env_files, json_string_value(e)));
            if (!content) {
                rc = verr(c, SUB("env_file"), "%.60s was not given with the stack (env_files)",
                          json_string_value(e));
                break;
            }
            if ((rc = parse_env_text(c, SUB("env_file"), content, env)))
                break;
        }
        json_decref(names);
        if (rc)
            goto done;
    }
    if ((v = json_object_get(in, "environment")))
        FAIL(norm_env(c, SUB("environment"), v, env));
    /* ports */
    json_t *ports = json_array();
    json_object_set_new(s, "ports", ports);
    if ((v = json_object_get(in, "ports"))) {
        if (!json_is_array(v))
            FAIL(verr(c, SUB("ports"), "must be a list"));
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char p2[640];
            snprintf(p2, sizeof p2, "%s.ports[%zu]", path, i);
            FAIL(norm_port(c, p2, e, &t));
            json_array_append_new(ports, t);
        }
    }
    /* volumes */
    json_t *vols = json_array();
    json_object_set_new(s, "volumes", vols);
    if ((v = json_object_get(in, "volumes"))) {
        if (!json_is_array(v))
            FAIL(verr(c, SUB("volumes"), "must be a list"));
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char p2[640];
            snprintf(p2, sizeof p2, "%s.volumes[%zu]", path, i);
            FAIL(norm_volume(c, p2, e, json_object_get(top, "volumes"), &t));
            json_array_append_new(vols, t);
        }
    }
    /* network_mode / networks */
    json_t *nm = json_object_get(in, "network_mode");
    if (nm) {
        FAIL(want_string(c, SUB("network_mode"), nm, &str));
        if (strcmp(str, "host") != 0 && strcmp(str, "none") != 0 && strcmp(str, "bridge") != 0)
            FAIL(verr(c, SUB("network_mode"), "must be host, none or bridge"));
        if (json_object_get(in, "networks"))
            FAIL(verr(c, SUB("network_mode"), "cannot be used with networks"));
        json_object_set_new(s, "network_mode", json_string(str));
    }
    json_t *nets = json_array();
    json_object_set_new(s, "networks", nets);
    if ((v = json_object_get(in, "networks"))) {
        json_t *names = NULL;
        if (json_is_object(v)) {
            names = json_array();
            const char *k;
            json_t *e;
            json_object_foreach(v, k, e)
            {
                char p2[640];
                snprintf(p2, sizeof p2, "%s.networks.%s", path, k);
                if (!json_is_null(e) && !(json_is_object(e) && json_object_size(e) == 0)) {
                    json_decref(names);
                    FAIL(verr(c, p2, "per-network options are not supported"));
                }
                json_array_append_new(names, json_string(k));
            }
        } else {
            FAIL(want_string_list(c, SUB("networks"), v, &names));
        }
        size_t i;
        json_t *e;
        json_array_foreach(names, i, e)
        {
            const char *n = json_string_value(e);
            if (strcmp(n, "default") != 0 && !json_object_get(json_object_get(top, "networks"), n)) {
                rc = verr(c, SUB("networks"), "network %.60s is not declared in the top-level networks", n);
                break;
            }
            json_array_append(nets, e);
        }
        json_decref(names);
        if (rc)
            goto done;
    } else if (!nm) {
        json_array_append_new(nets, json_string("default"));
    }
    /* depends_on */
    json_t *deps = json_object();
    json_object_set_new(s, "depends_on", deps);
    if ((v = json_object_get(in, "depends_on"))) {
        if (json_is_array(v)) {
            json_t *names;
            FAIL(want_string_list(c, SUB("depends_on"), v, &names));
            size_t i;
            json_t *e;
            json_array_foreach(names, i, e)
                json_object_set_new(deps, json_string_value(e), json_string("service_started"));
            json_decref(names);
        } else if (json_is_object(v)) {
            const char *k;
            json_t *e;
            json_object_foreach(v, k, e)
            {
                char p2[640];
                snprintf(p2, sizeof p2, "%s.depends_on.%s", path, k);
                static const char *const dk[] = {"condition", NULL};
                if (!json_is_object(e))
                    FAIL(verr(c, p2, "must be a mapping with condition"));
                FAIL(check_keys(c, p2, e, dk));
                const char *cond = json_string_value(json_object_get(e, "condition"));
                if (!cond)
                    cond = "service_started";
                if (strcmp(cond, "service_started") != 0 && strcmp(cond, "service_healthy") != 0 &&
                    strcmp(cond, "service_completed_successfully") != 0)
                    FAIL(verr(c, p2,
                              "condition must be service_started, service_healthy or "
                              "service_completed_successfully"));
                json_object_set_new(deps, k, json_string(cond));
            }
        } else {
            FAIL(verr(c, SUB("depends_on"), "must be a list or a mapping"));
        }
    }
    /* healthcheck */
    if ((v = json_object_get(in, "healthcheck"))) {
        FAIL(norm_healthcheck(c, SUB("healthcheck"), v, &t));
        json_object_set_new(s, "healthcheck", t);
    }
    /* restart */
    if ((v = json_object_get(in, "restart"))) {
        FAIL(want_string(c, SUB("restart"), v, &str));
        long n = 0;
        if (strcmp(str, "no") != 0 && strcmp(str, "always") != 0 && strcmp(str, "unless-stopped") != 0 &&
            strcmp(str, "on-failure") != 0 &&
            !(strncmp(str, "on-failure:", 11) == 0 && (n = strtol(str + 11, NULL, 10)) > 0 && n < 1000))
            FAIL(verr(c, SUB("restart"), "must be no, always, unless-stopped or on-failure[:N]"));
        json_object_set_new(s, "restart", json_string(str));
    }
    /* labels */
    if ((v = json_object_get(in, "labels"))) {
        FAIL(norm_labels(c, SUB("labels"), v, &t));
        json_object_set_new(s, "labels", t);
    } else {
        json_object_set_new(s, "labels", json_object());
    }
    /* user, working_dir */
    if ((v = json_object_get(in, "user"))) {
        FAIL(want_scalar_text(c, SUB("user"), v, &t));
        json_object_set_new(s, "user", t);
    }
    if ((v = json_object_get(in, "working_dir"))) {
        FAIL(want_string(c, SUB("working_dir"), v, &str));
        if (str[0] != '/')
            FAIL(verr(c, SUB("working_dir"), "must be an absolute path"));
        json_object_set_new(s, "working_dir", json_string(str));
    }
    /* capabilities, devices */
    const char *lists[] = {"cap_add", "cap_drop", "devices"};
    for (size_t i = 0; i < 3; i++)
        if ((v = json_object_get(in, lists[i]))) {
            FAIL(want_string_list(c, SUB(lists[i]), v, &t));
            json_object_set_new(s, lists[i], t);
        }
    /* privileged, pid, ipc */
    if ((v = json_object_get(in, "privileged"))) {
        bool b = false;
        FAIL(want_bool(c, SUB("privileged"), v, &b));
        json_object_set_new(s, "privileged", json_boolean(b));
    }
    if ((v = json_object_get(in, "pid"))) {
        FAIL(want_string(c, SUB("pid"), v, &str));
        if (strcmp(str, "host") != 0)
            FAIL(verr(c, SUB("pid"), "must be host"));
        json_object_set_new(s, "pid", json_string(str));
    }
    if ((v = json_object_get(in, "ipc"))) {
        FAIL(want_string(c, SUB("ipc"), v, &str));
        if (strcmp(str, "host") != 0 && strcmp(str, "private") != 0 && strcmp(str, "shareable") != 0)
            FAIL(verr(c, SUB("ipc"), "must be host, private or shareable"));
        json_object_set_new(s, "ipc", json_string(str));
    }
    /* deploy, mem_limit, cpus */
    long long replicas = 1, mem = 0, nano = 0;
    if ((v = json_object_get(in, "deploy"))) {
        static const char *const dk[] = {"replicas", "resources", NULL};
        if (!json_is_object(v))
            FAIL(verr(c, SUB("deploy"), "must be a mapping"));
        FAIL(check_keys(c, SUB("deploy"), v, dk));
        json_t *r = json_object_get(v, "replicas");
        if (r)
            FAIL(want_int(c, SUB("deploy.replicas"), r, 0, STACKS_REPLICAS_MAX, &replicas));
        json_t *res = json_object_get(v, "resources");
        if (res) {
            static const char *const rk[] = {"limits", NULL};
            static const char *const lk[] = {"cpus", "memory", NULL};
            if (!json_is_object(res))
                FAIL(verr(c, SUB("deploy.resources"), "must be a mapping"));
            FAIL(check_keys(c, SUB("deploy.resources"), res, rk));
            json_t *lim = json_object_get(res, "limits");
            if (lim) {
                if (!json_is_object(lim))
                    FAIL(verr(c, SUB("deploy.resources.limits"), "must be a mapping"));
                FAIL(check_keys(c, SUB("deploy.resources.limits"), lim, lk));
                if (json_object_get(lim, "cpus"))
                    FAIL(want_cpus(c, SUB("deploy.resources.limits.cpus"), json_object_get(lim, "cpus"),
                                   &nano));
                if (json_object_get(lim, "memory"))
                    FAIL(want_bytes(c, SUB("deploy.resources.limits.memory"), json_object_get(lim, "memory"),
                                    &mem));
            }
        }
    }
    if ((v = json_object_get(in, "mem_limit")))
        FAIL(want_bytes(c, SUB("mem_limit"), v, &mem));
    if ((v = json_object_get(in, "cpus")))
        FAIL(want_cpus(c, SUB("cpus"), v, &nano));
    if (mem && mem < 6 * 1024 * 1024)
        FAIL(verr(c, SUB("mem_limit"), "must be at least 6m (the engine's minimum)"));
    json_object_set_new(s, "replicas", json_integer(replicas));
    json_object_set_new(s, "memory", json_integer(mem));
    json_object_set_new(s, "nano_cpus", json_integer(nano));
    /* logging */
    if ((v = json_object_get(in, "logging"))) {
        static const char *const lk[] = {"driver", "options", NULL};
        if (!json_is_object(v))
            FAIL(verr(c, SUB("logging"), "must be a mapping"));
        FAIL(check_keys(c, SUB("logging"), v, lk));
        json_t *lg = json_object();
        json_object_set_new(s, "logging", lg);
        json_t *d = json_object_get(v, "driver");
        if (d) {
            FAIL(want_string(c, SUB("logging.driver"), d, &str));
            json_object_set_new(lg, "driver", json_string(str));
        }
        json_t *o = json_object_get(v, "options");
        if (o) {
            if (!json_is_object(o))
                FAIL(verr(c, SUB("logging.options"), "must be a mapping"));
            json_t *opts = json_object();
            json_object_set_new(lg, "options", opts);
            const char *k;
            json_t *e;
            json_object_foreach(o, k, e)
            {
                char p2[700];
                snprintf(p2, sizeof p2, "%s.logging.options.%s", path, k);
                FAIL(want_scalar_text(c, p2, e, &t));
                json_object_set_new(opts, k, t);
            }
        }
    }
    /* x-serverbox */
    if ((v = json_object_get(in, "x-serverbox"))) {
        FAIL(norm_xserverbox(c, SUB("x-serverbox"), v, &t));
        json_object_set_new(s, "x-serverbox", t);
        if (json_object_get(t, "route") && json_object_get(s, "network_mode"))
            FAIL(verr(c, SUB("x-serverbox.route"),
                      "needs the service on a network (Caddy sends to its address there), not network_mode"));
    }
    if (json_array_size(ports) && replicas > 1) {
        size_t i;
        json_t *e;
        json_array_foreach(ports, i, e) if (json_integer_value(json_object_get(e, "published")))
            FAIL(verr(c, SUB("ports"), "a published host port cannot serve more than one replica"));
    }
#undef FAIL
#undef SUB
done:
    if (rc) {
        json_decref(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int norm_top_objects(struct vctx *c, json_t *doc, const char *kind, json_t *model)
{
    json_t *in = json_object_get(doc, kind), *out = json_object();
    json_object_set_new(model, kind, out);
    if (!in || json_is_null(in))
        return 0;
    if (!json_is_object(in))
        return verr(c, kind, "must be a mapping");
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        char path[600];
        snprintf(path, sizeof path, "%s.%s", kind, k);
        if (!stacks_object_name_ok(k))
            return verr(c, path, "bad name (letters, digits, _ . -; at most %d)", STACKS_NAME_MAX);
        if (strcmp(kind, "networks") == 0 && strcmp(k, "default") == 0)
            return verr(c, path, "the default network is made by the stack");
        json_t *o = json_object();
        json_object_set_new(out, k, o);
        if (json_is_null(v))
            v = NULL;
        else if (!json_is_object(v))
            return verr(c, path, "must be a mapping or empty");
        static const char *const keys[] = {"driver", "external", "labels", NULL};
        if (v && check_keys(c, path, v, keys))
            return SB_EINVAL;
        const char *driver = v ? json_string_value(json_object_get(v, "driver")) : NULL;
        if (v && json_object_get(v, "driver") && !driver)
            return verr(c, path, "driver must be a string");
        if (driver && strcmp(kind, "networks") == 0 && strcmp(driver, "bridge") != 0)
            return verr(c, path, "only the bridge driver is supported");
        if (driver && strcmp(kind, "volumes") == 0 && strcmp(driver, "local") != 0)
            return verr(c, path, "only the local driver is supported");
        bool external = false;
        char sub[640];
        snprintf(sub, sizeof sub, "%s.external", path);
        if (v && json_object_get(v, "external") &&
            want_bool(c, sub, json_object_get(v, "external"), &external))
            return SB_EINVAL;
        json_object_set_new(o, "external", json_boolean(external));
        json_t *labels = NULL;
        snprintf(sub, sizeof sub, "%s.labels", path);
        if (v && json_object_get(v, "labels") && norm_labels(c, sub, json_object_get(v, "labels"), &labels))
            return SB_EINVAL;
        json_object_set_new(o, "labels", labels ? labels : json_object());
    }
    return 0;
}

int stacks_compose_parse(const char *text, size_t len, json_t *variables, json_t *env_files, json_t **model,
                         struct sb_err *err)
{
    *model = NULL;
    json_t *doc, *marks;
    int rc = stacks_yaml_to_json(text, len, &doc, &marks, err);
    if (rc)
        return rc;
    struct vctx c = {.marks = marks, .vars = variables, .env_files = env_files, .err = err};
    json_t *m = json_object();
    static const char *const top_keys[] = {"version", "services", "networks", "volumes", NULL};
    if ((rc = check_keys(&c, "", doc, top_keys)))
        goto out;
    if ((rc = interpolate_all(&c, doc, "")))
        goto out;
    json_t *ver = json_object_get(doc, "version");
    if (ver && !json_is_string(ver) && !json_is_number(ver)) {
        rc = verr(&c, "version", "must be a string");
        goto out;
    }
    if ((rc = norm_top_objects(&c, doc, "networks", m)) || (rc = norm_top_objects(&c, doc, "volumes", m)))
        goto out;
    json_t *services = json_object_get(doc, "services");
    if (!json_is_object(services) || json_object_size(services) == 0) {
        rc = services ? verr(&c, "services", "must be a mapping of at least one service")
                      : sb_field_error(err, "services", "services: at least one service is required");
        goto out;
    }
    if (json_object_size(services) > STACKS_SERVICES_MAX) {
        rc = verr(&c, "services", "more than %d services", STACKS_SERVICES_MAX);
        goto out;
    }
    json_t *out_services = json_object();
    json_object_set_new(m, "services", out_services);
    const char *name;
    json_t *sv;
    json_object_foreach(services, name, sv)
    {
        char path[600];
        snprintf(path, sizeof path, "services.%s", name);
        if (!stacks_object_name_ok(name)) {
            rc = verr(&c, path, "bad service name (letters, digits, _ . -; at most %d)", STACKS_NAME_MAX);
            goto out;
        }
        json_t *s = NULL;
        if ((rc = norm_service(&c, name, sv, m, &s)))
            goto out;
        json_object_set_new(out_services, name, s);
    }
    /* cross-service checks: dependencies exist and can be met */
    json_object_foreach(out_services, name, sv)
    {
        const char *dep;
        json_t *cond;
        json_object_foreach(json_object_get(sv, "depends_on"), dep, cond)
        {
            char path[600];
            snprintf(path, sizeof path, "services.%s.depends_on.%s", name, dep);
            json_t *target = json_object_get(out_services, dep);
            if (!target) {
                rc = verr(&c, path, "no such service");
                goto out;
            }
            if (strcmp(dep, name) == 0) {
                rc = verr(&c, path, "a service cannot depend on itself");
                goto out;
            }
            json_t *hc = json_object_get(target, "healthcheck");
            if (strcmp(json_string_value(cond), "service_healthy") == 0 &&
                (!hc ||
                 strcmp(json_string_value(json_array_get(json_object_get(hc, "test"), 0)), "NONE") == 0)) {
                rc = verr(&c, path, "service_healthy needs a healthcheck on %s", dep);
                goto out;
            }
        }
    }
    /* a host name routes to one service */
    json_t *hosts = json_object();
    json_object_foreach(out_services, name, sv)
    {
        const char *host = json_string_value(
            json_object_get(json_object_get(json_object_get(sv, "x-serverbox"), "route"), "host"));
        if (!host)
            continue;
        const char *other = json_string_value(json_object_get(hosts, host));
        if (other) {
            char path[600];
            snprintf(path, sizeof path, "services.%s.x-serverbox.route.host", name);
            rc = verr(&c, path, "%s is already the route of %s", host, other);
            json_decref(hosts);
            goto out;
        }
        json_object_set_new(hosts, host, json_string(name));
    }
    json_decref(hosts);
    json_t *order;
    if ((rc = stacks_order(m, &order, err)))
        goto out;
    json_decref(order);
out:
    json_decref(doc);
    json_decref(marks);
    if (rc) {
        json_decref(m);
        return rc;
    }
    *model = m;
    return 0;
}

/* ---- policy ------------------------------------------------------------ */

static bool path_within(const char *path, const char *base)
{
    size_t n = strlen(base);
    while (n > 1 && base[n - 1] == '/')
        n--;
    if (strncmp(path, base, n) != 0)
        return false;
    return path[n] == 0 || path[n] == '/';
}

int stacks_policy_check(json_t *model, const char *bind_base, bool admin, struct sb_err *err)
{
    if (admin)
        return 0;
    const char *name;
    json_t *s;
    char path[600];
    json_object_foreach(json_object_get(model, "services"), name, s)
    {
#define DENY(key, why)                                                                                       \
    do {                                                                                                     \
        snprintf(path, sizeof path, "services.%s.%s", name, key);                                            \
        sb_error(err, SB_EDENIED, "%s: %s needs an admin (stacks:admin)", path, why);                        \
        if (err)                                                                                             \
            sb_strlcpy(err->field, path, sizeof err->field);                                                 \
        return SB_EDENIED;                                                                                   \
    } while (0)
        if (json_is_true(json_object_get(s, "privileged")))
            DENY("privileged", "a privileged container");
        const char *nm = json_string_value(json_object_get(s, "network_mode"));
        if (nm && strcmp(nm, "host") == 0)
            DENY("network_mode", "the host network");
        const char *pid = json_string_value(json_object_get(s, "pid"));
        if (pid && strcmp(pid, "host") == 0)
            DENY("pid", "the host pid namespace");
        const char *ipc = json_string_value(json_object_get(s, "ipc"));
        if (ipc && strcmp(ipc, "host") == 0)
            DENY("ipc", "the host ipc namespace");
        if (json_array_size(json_object_get(s, "devices")))
            DENY("devices", "access to host devices");
        if (json_array_size(json_object_get(s, "cap_add")))
            DENY("cap_add", "adding capabilities");
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(s, "volumes"), i, v)
        {
            const char *src = json_string_value(json_object_get(v, "source"));
            if (strcmp(json_string_value(json_object_get(v, "type")), "bind") == 0 &&
                (!bind_base || !bind_base[0] || !path_within(src, bind_base))) {
                char key[64];
                snprintf(key, sizeof key, "volumes[%zu]", i);
                DENY(key, "a bind mount outside --stack-bind-base");
            }
        }
#undef DENY
    }
    return 0;
}
