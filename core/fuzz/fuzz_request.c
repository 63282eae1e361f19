/*
 * libFuzzer target for the request layer: routing, JSON bodies, field
 * checks and client-address parsing — everything the daemon does with bytes
 * from the network before a handler runs.
 *
 * Input: one byte choosing the method, then the path up to '\n', then an
 * X-Forwarded-For value up to '\n', then the body.
 */
#include "api/api.h"
#include "http/http.h"

#include <stdlib.h>
#include <string.h>

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "BREW"};

static const char *take_line(const uint8_t **p, const uint8_t *end, char *out, size_t outlen)
{
    size_t n = 0;
    while (*p < end && **p != '\n') {
        if (n + 1 < outlen)
            out[n++] = (char)**p;
        (*p)++;
    }
    if (*p < end)
        (*p)++;
    out[n] = '\0';
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1, *end = data + size;
    const char *method = methods[data[0] % 8];
    char path[4096], xff[1024];
    take_line(&p, end, path, sizeof path);
    take_line(&p, end, xff, sizeof xff);

    const struct http_route *route = NULL;
    const char *names[HTTP_MAX_PARAMS];
    char *values[HTTP_MAX_PARAMS], allow[64];
    size_t n_params = 0;
    http_route_match(api_routes, api_n_routes, method, path, &route, names, values, &n_params, allow,
                     sizeof allow);

    struct http_cidr trusted[8];
    size_t n_trusted = 0;
    http_cidr_parse("private", trusted, 8, &n_trusted, NULL);
    char ip[48];
    http_client_ip("10.0.0.1", xff, trusted, n_trusted, ip, sizeof ip);
    http_cidr_parse(xff, trusted, 8, &n_trusted, NULL);

    struct sb_err err = {0};
    json_t *body = http_parse_json_object((const char *)p, (size_t)(end - p), &err);
    if (body) {
        static const char *const allowed[] = {"message", "labels", "name", NULL};
        http_json_check_fields(body, allowed, &err);
        json_decref(body);
    }
    return 0;
}
