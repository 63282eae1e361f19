/*
 * Route matching. Patterns are split on '/'; a segment "{name}" matches one
 * non-empty path segment, a final "{*name}" matches the rest of the path.
 * The path is matched in place: '/' separators in `scratch` are replaced by
 * NUL as segments are consumed, so parameters point into it.
 */
#include "http.h"

#include <string.h>

static bool method_is(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0)
        return true;
    /* HEAD is answered by every GET route. */
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Matches one pattern against path; fills names/offsets of parameters. */
static bool pattern_match(const char *pattern, const char *path, const char **names, size_t *starts,
                          size_t *lens, size_t *n)
{
    const char *p = pattern, *s = path;
    *n = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return false;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        size_t slen = se ? (size_t)(se - s) : strlen(s);
        if (plen > 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (*n >= HTTP_MAX_PARAMS)
                return false;
            bool rest = p[1] == '*';
            if (rest)
                slen = strlen(s);
            if (slen == 0)
                return false;
            names[*n] = p; /* the caller copies the name out of the braces */
            starts[*n] = (size_t)(s - path);
            lens[*n] = slen;
            (*n)++;
            if (rest)
                return true;
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            return false;
        }
        p += plen;
        s += slen;
    }
    return *p == '\0' && *s == '\0';
}

static const char *param_name_of(const char *brace)
{
    /* Names are interned as pointers into the pattern: "{id}/x" -> "id}/x".
     * http_param compares up to the closing brace. */
    return brace[1] == '*' ? brace + 2 : brace + 1;
}

enum http_match http_route_match(const struct http_route *routes, size_t n, const char *method, char *scratch,
                                 const struct http_route **route, const char **names, char **values,
                                 size_t *n_params, char *allow, size_t allow_len)
{
    const char *pnames[HTTP_MAX_PARAMS];
    size_t starts[HTTP_MAX_PARAMS], lens[HTTP_MAX_PARAMS], np = 0;
    bool path_seen = false;
    if (allow_len)
        allow[0] = '\0';

    for (size_t i = 0; i < n; i++) {
        if (!pattern_match(routes[i].pattern, scratch, pnames, starts, lens, &np))
            continue;
        if (!method_is(routes[i].method, method)) {
            /* A route that is only a catch-all ("/{*path}", the dashboard)
             * matches every path: letting it answer 405 would turn every
             * unknown POST /api/... into "use GET". */
            if (strncmp(routes[i].pattern, "/{*", 3) == 0)
                continue;
            path_seen = true;
            if (allow_len && !strstr(allow, routes[i].method)) {
                if (allow[0])
                    strncat(allow, ", ", allow_len - strlen(allow) - 1);
                strncat(allow, routes[i].method, allow_len - strlen(allow) - 1);
            }
            continue;
        }
        *route = &routes[i];
        for (size_t k = 0; k < np; k++) {
            names[k] = param_name_of(pnames[k]);
            values[k] = scratch + starts[k];
        }
        /* Terminate every value only now: earlier candidates must see the
         * whole path. */
        for (size_t k = 0; k < np; k++)
            values[k][lens[k]] = '\0';
        *n_params = np;
        return HTTP_MATCH_OK;
    }
    return path_seen ? HTTP_MATCH_WRONG_METHOD : HTTP_MATCH_NONE;
}

const char *http_param(const struct http_request *req, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < req->n_params; i++)
        if (strncmp(req->param_name[i], name, len) == 0 && req->param_name[i][len] == '}')
            return req->param_value[i];
    return NULL;
}
