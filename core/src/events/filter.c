/*
 * Which events a stream gets: topics (what the client asked for) and the
 * visibility rule (what its caller may read). Pure functions, unit-tested in
 * core/tests/test_events.c.
 */
#include "events.h"

#include "../api/api.h"

#include <stdlib.h>
#include <string.h>

struct family_rule {
    const char *prefix; /* type's first word */
    const char *family;
};

static const struct family_rule families[] = {
    {"node", "nodes"},
    {"container", "containers"},
    {"image", "containers"},
    {"volume", "containers"},
    {"network", "containers"},
    {"deployment", "deployments"},
    {"stack", "deployments"},
    {"gitops", "deployments"},
    {"annotation", "annotations"},
    {"user", "audit"},
    {"token", "audit"},
    {"session", "audit"},
    {"guest_link", "audit"},
    {"auth", "audit"},
    {"checkpoint", "audit"},
    {"metric", "metrics"},
    {"metrics", "metrics"},
    {"log", "logs"},
    {"logs", "logs"},
    {"terminal", "terminal"},
    {"alert", "alerts"},
    {"job", "jobs"},
    {"alerts", "alerts"},
    {"nodes", "nodes"},
    {"containers", "containers"},
    {"deployments", "deployments"},
    {"annotations", "annotations"},
    {"audit", "audit"},
};

static const char *family_of_word(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strlen(families[i].prefix) == n && strncmp(families[i].prefix, s, n) == 0)
            return families[i].family;
    return NULL;
}

const char *events_family(const char *stream, const char *type)
{
    const char *f = NULL;
    if (type) {
        const char *dot = strchr(type, '.');
        f = family_of_word(type, dot ? (size_t)(dot - type) : strlen(type));
    }
    if (!f && stream) {
        const char *slash = strchr(stream, '/');
        f = family_of_word(stream, slash ? (size_t)(slash - stream) : strlen(stream));
    }
    return f ? f : "other";
}

static bool topic_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/' || c == ':';
}

int events_topics_parse(const char *spec, struct events_topics *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    if (!spec || !*spec)
        return 0;
    if (strlen(spec) > EVENTS_MAX_TOPICS * (EVENTS_TOPIC_MAX + 1))
        return sb_field_error(err, "topics", "topics is too long");
    out->text = strdup(spec);
    if (!out->text)
        return sb_error(err, SB_ENOMEM, "out of memory");
    char *p = out->text;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        size_t n = strlen(p);
        if (n == 0 || n > EVENTS_TOPIC_MAX || strstr(p, "..")) {
            events_topics_release(out);
            return sb_field_error(err, "topics", "each topic is 1 to %d characters of [A-Za-z0-9._:/-]",
                                  EVENTS_TOPIC_MAX);
        }
        for (size_t i = 0; i < n; i++)
            if (!topic_char_ok(p[i])) {
                events_topics_release(out);
                return sb_field_error(err, "topics", "each topic is 1 to %d characters of [A-Za-z0-9._:/-]",
                                      EVENTS_TOPIC_MAX);
            }
        if (out->n >= EVENTS_MAX_TOPICS) {
            events_topics_release(out);
            return sb_field_error(err, "topics", "at most %d topics", EVENTS_MAX_TOPICS);
        }
        out->topic[out->n++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

void events_topics_release(struct events_topics *t)
{
    if (!t)
        return;
    free(t->text);
    memset(t, 0, sizeof *t);
}

static bool topic_matches(const char *t, const char *family, const char *stream, const char *type)
{
    size_t n = strlen(t);
    if (strchr(t, '/'))
        return stream && strncmp(stream, t, n) == 0 &&
               (stream[n] == '\0' || stream[n] == '/' || t[n - 1] == '/');
    if (strcmp(t, family) == 0)
        return true;
    return type && strncmp(type, t, n) == 0 && (type[n] == '\0' || type[n] == '.');
}

bool events_topics_match(const struct events_topics *t, const char *family, const char *stream,
                         const char *type, bool ephemeral)
{
    if (!t || t->n == 0)
        return !ephemeral;
    for (size_t i = 0; i < t->n; i++)
        if (topic_matches(t->topic[i], family, stream, type))
            return true;
    return false;
}

bool events_node_of(const char *stream, json_t *data, char *out, size_t outlen)
{
    const char *n = NULL;
    size_t len = 0;
    if (stream && strncmp(stream, "node/", 5) == 0) {
        n = stream + 5;
        const char *slash = strchr(n, '/');
        len = slash ? (size_t)(slash - n) : strlen(n);
    } else if (stream && strncmp(stream, "metrics/node/", 13) == 0) {
        n = stream + 13;
        const char *slash = strchr(n, '/');
        len = slash ? (size_t)(slash - n) : strlen(n);
    } else {
        json_t *v = json_is_object(data) ? json_object_get(data, "node_id") : NULL;
        if (json_is_string(v)) {
            n = json_string_value(v);
            len = json_string_length(v);
        }
    }
    if (!n || len == 0 || len >= outlen)
        return false;
    memcpy(out, n, len);
    out[len] = '\0';
    return true;
}

static unsigned guest_scopes_for(const char *family)
{
    if (strcmp(family, "metrics") == 0)
        return API_SCOPE_METRICS;
    if (strcmp(family, "containers") == 0)
        return API_SCOPE_CONTAINERS;
    if (strcmp(family, "nodes") == 0)
        return API_SCOPE_METRICS | API_SCOPE_CONTAINERS;
    if (strcmp(family, "logs") == 0)
        return API_SCOPE_LOGS;
    if (strcmp(family, "deployments") == 0)
        return API_SCOPE_DEPLOYMENTS;
    if (strcmp(family, "audit") == 0 || strcmp(family, "annotations") == 0)
        return API_SCOPE_AUDIT;
    return 0;
}

/* Every label of the selector must be present on the node, equal. (The
 * same rule as api_node_visible, on a caller rather than a request.) */
static bool labels_match(json_t *selector, json_t *labels)
{
    const char *key;
    json_t *want;
    json_object_foreach(selector, key, want)
    {
        json_t *have = json_object_get(labels, key);
        if (!json_is_string(have) || !json_equal(have, want))
            return false;
    }
    return true;
}

bool events_caller_may_see(const struct api_caller *c, const char *family, const char *node_id,
                           events_node_labels_fn labels_fn, void *labels_ctx, int64_t now_us)
{
    if (!c)
        return true;
    if (c->expires_us && now_us >= c->expires_us)
        return false;
    if (strcmp(c->kind, "guest") == 0 || strcmp(c->role, "guest") == 0) {
        unsigned need = guest_scopes_for(family);
        if (!(c->scopes & need))
            return false;
    }
    if (node_id && c->node_labels && json_object_size(c->node_labels) > 0) {
        json_t *labels = labels_fn ? labels_fn(labels_ctx, node_id) : NULL;
        bool ok = json_is_object(labels) && labels_match(c->node_labels, labels);
        json_decref(labels);
        return ok;
    }
    return true;
}
