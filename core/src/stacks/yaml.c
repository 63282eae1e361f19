/*
 * YAML → JSON for compose files, with libyaml 0.2.5's event parser and our
 * own tree, because the library's loader has none of the limits we need:
 *
 * - input size is capped before parsing, and flow nesting ([ {) is counted
 *   on the raw text first (deep flow nesting is quadratic in 0.2.5);
 * - collection depth is capped while the events arrive;
 * - an anchor is registered only when its node is complete, so an alias
 *   inside its own anchor (`&x [ *x ]`) is an unknown alias, never a cycle;
 * - converting to JSON counts every node visited with aliases expanded
 *   (the billion-laughs document stops at STACKS_NODES_MAX);
 * - duplicate keys are refused; `<<` merge keys are resolved as PyYAML does;
 * - plain scalars are resolved as YAML 1.1 (PyYAML, which docker-compose
 *   uses) resolves them: yes/no/on/off/true/false are booleans, ~ and null
 *   are null, decimal/octal/hex integers and floats are numbers.
 *
 * Each key and item's position goes into a side table (path → [line, col],
 * 1-based) so validation errors can say where.
 */
#include "internal.h"

#include <yaml.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
    int type;
    char *value; /* scalar text */
    bool plain;  /* plain style and no explicit tag: resolve its type */
    int line, col;
    struct ynode **items; /* seq items, or map key/value pairs (2n) */
    size_t n, cap;
    struct ynode *next_alloc;
};

struct yanchor {
    char *name;
    struct ynode *node;
};

struct ytree {
    struct ynode *all; /* every node, for freeing */
    size_t count;
    struct yanchor *anchors;
    size_t n_anchors, cap_anchors;
};

static void tree_free(struct ytree *t)
{
    for (struct ynode *n = t->all; n;) {
        struct ynode *next = n->next_alloc;
        free(n->value);
        free(n->items);
        free(n);
        n = next;
    }
    for (size_t i = 0; i < t->n_anchors; i++)
        free(t->anchors[i].name);
    free(t->anchors);
}

static struct ynode *node_new(struct ytree *t, int type, const yaml_mark_t *m)
{
    if (t->count >= STACKS_NODES_MAX)
        return NULL;
    struct ynode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->type = type;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    n->next_alloc = t->all;
    t->all = n;
    t->count++;
    return n;
}

static int node_add(struct ynode *parent, struct ynode *child)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct ynode **items = realloc(parent->items, cap * sizeof *items);
        if (!items)
            return -1;
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->n++] = child;
    return 0;
}

static int anchor_add(struct ytree *t, const char *name, struct ynode *node)
{
    if (!name)
        return 0;
    if (t->n_anchors == t->cap_anchors) {
        size_t cap = t->cap_anchors ? t->cap_anchors * 2 : 8;
        struct yanchor *a = realloc(t->anchors, cap * sizeof *a);
        if (!a)
            return -1;
        t->anchors = a;
        t->cap_anchors = cap;
    }
    t->anchors[t->n_anchors].name = strdup(name);
    t->anchors[t->n_anchors++].node = node;
    return 0;
}

static struct ynode *anchor_find(struct ytree *t, const char *name)
{
    for (size_t i = t->n_anchors; i-- > 0;) /* the latest definition wins */
        if (strcmp(t->anchors[i].name, name) == 0)
            return t->anchors[i].node;
    return NULL;
}

static int yerr(struct sb_err *err, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int yerr(struct sb_err *err, int line, int col, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sb_field_error(err, "compose", "line %d, column %d: %s", line, col, msg);
}

/* Flow nesting on the raw text, ignoring quoted strings and comments (a
 * conservative count: it may only over-count). */
static int flow_depth_check(const char *s, size_t len, struct sb_err *err)
{
    int depth = 0, line = 1, col = 0;
    char quote = 0;
    bool comment = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        col++;
        if (c == '\n') {
            line++;
            col = 0;
            comment = false;
            continue;
        }
        if (comment)
            continue;
        if (quote) {
            if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '"' || c == '\'') {
            if (i == 0 || s[i - 1] == ' ' || s[i - 1] == '[' || s[i - 1] == '{' || s[i - 1] == ',' ||
                s[i - 1] == ':' || s[i - 1] == '-' || s[i - 1] == '\t')
                quote = c;
            continue;
        }
        if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
            comment = true;
            continue;
        }
        if (c == '[' || c == '{') {
            if (++depth > STACKS_DEPTH_MAX)
                return yerr(err, line, col, "nesting deeper than %d levels", STACKS_DEPTH_MAX);
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

static int build_tree(const char *text, size_t len, struct ytree *t, struct ynode **root, struct sb_err *err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return sb_error(err, SB_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    struct ynode *stack[STACKS_DEPTH_MAX + 2];
    char *stack_anchor[STACKS_DEPTH_MAX + 2];
    int depth = 0, docs = 0, rc = 0;
    *root = NULL;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            const yaml_mark_t *m = p.problem ? &p.problem_mark : &p.context_mark;
            char from[64] = "";
            if (p.context && p.problem &&
                (p.context_mark.line != p.problem_mark.line ||
                 p.context_mark.column != p.problem_mark.column))
                snprintf(from, sizeof from, " (from line %d, column %d)", (int)p.context_mark.line + 1,
                         (int)p.context_mark.column + 1);
            rc = yerr(err, (int)m->line + 1, (int)m->column + 1, "%s%s%s%s",
                      p.problem ? p.problem : "syntax error", p.context ? " " : "",
                      p.context ? p.context : "", from);
            break;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        struct ynode *made = NULL;
        const char *anchor = NULL;
        bool done = false;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = yerr(err, line, col, "only one document is allowed");
            break;
        case YAML_ALIAS_EVENT:
            made = anchor_find(t, (const char *)ev.data.alias.anchor);
            if (!made)
                rc = yerr(err, line, col, "unknown alias *%s", (const char *)ev.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT:
            made = node_new(t, Y_SCALAR, &ev.start_mark);
            if (!made) {
                rc = yerr(err, line, col, "more than %d nodes", STACKS_NODES_MAX);
                break;
            }
            made->value = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
            if (strlen(made->value) != ev.data.scalar.length)
                rc = yerr(err, line, col, "NUL character in a scalar");
            made->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev.data.scalar.plain_implicit;
            anchor = (const char *)ev.data.scalar.anchor;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth >= STACKS_DEPTH_MAX) {
                rc = yerr(err, line, col, "nesting deeper than %d levels", STACKS_DEPTH_MAX);
                break;
            }
            stack[depth] = node_new(t, ev.type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP, &ev.start_mark);
            if (!stack[depth]) {
                rc = yerr(err, line, col, "more than %d nodes", STACKS_NODES_MAX);
                break;
            }
            anchor = ev.type == YAML_SEQUENCE_START_EVENT ? (const char *)ev.data.sequence_start.anchor
                                                          : (const char *)ev.data.mapping_start.anchor;
            stack_anchor[depth] = anchor ? strdup(anchor) : NULL;
            anchor = NULL;
            depth++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            made = stack[depth];
            if (anchor_add(t, stack_anchor[depth], made))
                rc = sb_error(err, SB_ENOMEM, "out of memory");
            free(stack_anchor[depth]);
            break;
        default:
            break;
        }
        if (rc == 0 && made && ev.type == YAML_SCALAR_EVENT && anchor && anchor_add(t, anchor, made))
            rc = sb_error(err, SB_ENOMEM, "out of memory");
        if (rc == 0 && made) {
            if (depth > 0) {
                if (node_add(stack[depth - 1], made))
                    rc = sb_error(err, SB_ENOMEM, "out of memory");
            } else {
                *root = made;
            }
        }
        yaml_event_delete(&ev);
        if (rc || done)
            break;
    }
    while (rc && depth > 0)
        free(stack_anchor[--depth]);
    yaml_parser_delete(&p);
    return rc;
}

/* ---- YAML 1.1 plain scalar resolution (PyYAML's resolver) --------------- */

static bool is_one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static const char *const yaml_true[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", NULL};
static const char *const yaml_false[] = {"no",    "No",  "NO",  "false", "False",
                                         "FALSE", "off", "Off", "OFF",   NULL};
static const char *const yaml_null[] = {"", "~", "null", "Null", "NULL", NULL};

static bool int_text(const char *s, long long *out)
{
    const char *p = s;
    int sign = 1;
    if (*p == '-' || *p == '+')
        sign = *p++ == '-' ? -1 : 1;
    if (!*p)
        return false;
    char digits[64];
    size_t n = 0;
    for (const char *q = p; *q; q++)
        if (*q != '_') {
            if (n + 1 >= sizeof digits)
                return false;
            digits[n++] = *q;
        }
    digits[n] = 0;
    int base = 10;
    const char *d = digits;
    if (d[0] == '0' && (d[1] == 'x' || d[1] == 'X')) {
        base = 16;
        d += 2;
    } else if (d[0] == '0' && (d[1] == 'b' || d[1] == 'B')) {
        base = 2;
        d += 2;
    } else if (d[0] == '0' && d[1]) {
        base = 8;
        d += 1;
    }
    if (!*d)
        return false;
    for (const char *q = d; *q; q++) {
        int v = isdigit((unsigned char)*q)    ? *q - '0'
                : isxdigit((unsigned char)*q) ? tolower(*q) - 'a' + 10
                                              : 99;
        if (v >= base)
            return false;
    }
    if (base == 10 && p[0] == '_')
        return false;
    errno = 0;
    long long v = strtoll(d, NULL, base);
    if (errno)
        return false;
    *out = sign * v;
    return true;
}

static bool float_text(const char *s, double *out)
{
    /* [-+]?([0-9][0-9_]*)?\.[0-9.]*([eE][-+][0-9]+)? — a dot is required */
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    bool dot = false, digit = false;
    for (; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.')
            dot = true;
        else if (isdigit((unsigned char)*p))
            digit = true;
        else if (*p != '_')
            return false;
    }
    if (!dot || !digit)
        return false;
    if (*p) {
        p++;
        if (*p != '-' && *p != '+')
            return false;
        p++;
        if (!*p)
            return false;
        for (; *p; p++)
            if (!isdigit((unsigned char)*p))
                return false;
    }
    char tmp[64];
    size_t n = 0;
    for (const char *q = s; *q && n + 1 < sizeof tmp; q++)
        if (*q != '_')
            tmp[n++] = *q;
    tmp[n] = 0;
    char *end;
    *out = strtod(tmp, &end);
    return *end == 0;
}

/* ---- tree → JSON ----------------------------------------------------- */

struct conv {
    json_t *marks; /* path → [line, col] */
    size_t visited;
    struct sb_err *err;
};

static void mark(struct conv *c, const char *path, const struct ynode *n)
{
    if (path[0])
        json_object_set_new(c->marks, path, json_pack("[ii]", n->line, n->col));
}

static int to_json(struct conv *c, const struct ynode *n, const char *path, json_t **out);

static int merge_into(struct conv *c, json_t *obj, json_t *src, const struct ynode *at, const char *path)
{
    if (!json_is_object(src))
        return yerr(c->err, at->line, at->col, "%s: a merge key (<<) needs a mapping or a list of mappings",
                    path[0] ? path : "(top)");
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        if (!json_object_get(obj, k))
            json_object_set(obj, k, v);
    }
    return 0;
}

static int to_json(struct conv *c, const struct ynode *n, const char *path, json_t **out)
{
    *out = NULL;
    if (++c->visited > STACKS_NODES_MAX)
        return yerr(c->err, n->line, n->col, "more than %d nodes once aliases are expanded",
                    STACKS_NODES_MAX);
    char sub[512];
    if (n->type == Y_SCALAR) {
        const char *s = n->value;
        if (n->plain) {
            long long iv;
            double dv;
            if (is_one_of(s, yaml_null))
                *out = json_null();
            else if (is_one_of(s, yaml_true))
                *out = json_true();
            else if (is_one_of(s, yaml_false))
                *out = json_false();
            else if (int_text(s, &iv))
                *out = json_integer(iv);
            else if (float_text(s, &dv))
                *out = json_real(dv);
        }
        if (!*out)
            *out = json_string(s);
        if (!*out)
            return yerr(c->err, n->line, n->col, "%s: not valid UTF-8", path[0] ? path : "(top)");
        /* remember the text as written, for "quote it" errors */
        if (n->plain && !json_is_string(*out) && path[0]) {
            snprintf(sub, sizeof sub, "%s#text", path);
            json_object_set_new(c->marks, sub, json_string(s));
        }
        return 0;
    }
    if (n->type == Y_SEQ) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n->n; i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            mark(c, sub, n->items[i]);
            json_t *v;
            int rc = to_json(c, n->items[i], sub, &v);
            if (rc) {
                json_decref(arr);
                return rc;
            }
            json_array_append_new(arr, v);
        }
        *out = arr;
        return 0;
    }
    json_t *obj = json_object();
    json_t *merges = NULL; /* applied after the explicit keys, which win */
    const struct ynode *merge_at = NULL;
    int rc = 0;
    for (size_t i = 0; i + 1 < n->n && rc == 0; i += 2) {
        const struct ynode *k = n->items[i], *v = n->items[i + 1];
        if (k->type != Y_SCALAR) {
            rc = yerr(c->err, k->line, k->col, "%s: keys must be plain strings", path[0] ? path : "(top)");
            break;
        }
        if (k->plain && strcmp(k->value, "<<") == 0) {
            json_t *m;
            if ((rc = to_json(c, v, path, &m)))
                break;
            if (!merges)
                merges = json_array();
            if (json_is_array(m)) {
                size_t j;
                json_t *e;
                json_array_foreach(m, j, e) json_array_append(merges, e);
                json_decref(m);
            } else {
                json_array_append_new(merges, m);
            }
            merge_at = k;
            continue;
        }
        if (path[0])
            snprintf(sub, sizeof sub, "%s.%s", path, k->value);
        else
            snprintf(sub, sizeof sub, "%s", k->value);
        if (json_object_get(obj, k->value)) {
            rc = yerr(c->err, k->line, k->col, "duplicate key %s", sub);
            break;
        }
        mark(c, sub, k);
        json_t *jv;
        if ((rc = to_json(c, v, sub, &jv)))
            break;
        if (json_object_set_new(obj, k->value, jv)) {
            rc = yerr(c->err, k->line, k->col, "%s: key is not valid UTF-8", path[0] ? path : "(top)");
            break;
        }
    }
    if (rc == 0 && merges) {
        size_t j;
        json_t *e;
        json_array_foreach(merges, j, e)
        {
            if ((rc = merge_into(c, obj, e, merge_at, path)))
                break;
        }
    }
    json_decref(merges);
    if (rc) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

int stacks_yaml_to_json(const char *text, size_t len, json_t **doc, json_t **marks, struct sb_err *err)
{
    *doc = NULL;
    *marks = NULL;
    if (len > STACKS_COMPOSE_MAX)
        return sb_error(err, SB_ETOOLARGE, "compose file larger than %zu bytes", STACKS_COMPOSE_MAX);
    if (memchr(text, 0, len))
        return sb_field_error(err, "compose", "compose file contains a NUL byte");
    int rc = flow_depth_check(text, len, err);
    if (rc)
        return rc;
    struct ytree t = {0};
    struct ynode *root = NULL;
    rc = build_tree(text, len, &t, &root, err);
    if (rc == 0 && !root)
        rc = sb_field_error(err, "compose", "the compose file is empty");
    if (rc == 0 && root->type != Y_MAP)
        rc = yerr(err, root->line, root->col, "the top level must be a mapping");
    if (rc == 0) {
        struct conv c = {.marks = json_object(), .err = err};
        rc = to_json(&c, root, "", doc);
        if (rc)
            json_decref(c.marks);
        else
            *marks = c.marks;
    }
    tree_free(&t);
    return rc;
}
